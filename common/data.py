"""Where datasets live, and what both workflows' DataModules share: splits held as tensors on the training
device, batches gathered from them in one indexing operation, and ``steps_per_execution`` batches handed to
Lightning at a time."""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler, TensorDataset

from common.errors import require


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data folder: the given one, else the ``DATA_DIR`` environment variable, else ``./data``."""
    return Path(data_dir or os.environ.get("DATA_DIR") or "data").expanduser()


def cache_dir() -> Path:
    """A writable folder for files unpacked from read-only sources (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightning-keras-classics"


class TensorBatches(TensorDataset):
    """Tensors indexed a whole batch at a time: DataLoader calls ``__getitems__`` with a batch's indices, so a
    batch is one indexing operation (on whatever device the tensors are), not one per sample and a collate. A
    list of index lists (an execution) gives a list of batches."""

    def __getitems__(self, indices: list) -> tuple[torch.Tensor, ...] | list[tuple[torch.Tensor, ...]]:
        if indices and isinstance(indices[0], list):
            return [self.__getitems__(batch) for batch in indices]
        index = torch.as_tensor(indices, device=self.tensors[0].device)
        return tuple(tensor[index] for tensor in self.tensors)


class Executions(BatchSampler):
    """Groups of ``steps`` consecutive batches: what one Lightning batch holds when the LightningModule takes
    several optimizer steps per batch. The batches, and their order, are those that ``batches(sampler)`` gives
    (a plain ``BatchSampler`` of ``batch_size`` by default), so the steps see exactly what one step per batch
    would. ``sampler`` is the first argument, as for any BatchSampler, so that Lightning can swap in its
    distributed sampler."""

    def __init__(
        self,
        sampler: Sampler | Iterable,
        batch_size: int,
        drop_last: bool = False,
        *,
        steps: int = 1,
        batches: Callable[[Sampler | Iterable], Iterable[list[int]]] | None = None,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.steps, self.batches = steps, batches

    def _batches(self) -> Iterable[list[int]]:
        if self.batches is not None:
            return self.batches(self.sampler)
        return BatchSampler(self.sampler, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[list[list[int]]]:
        group = []
        for batch in self._batches():
            group.append(list(batch))
            if len(group) == self.steps:
                yield group
                group = []
        if group:
            yield group

    @property
    def batches_per_epoch(self) -> int:
        """Optimizer steps an epoch takes: batches of ``batch_size``."""
        return len(self._batches())

    def __len__(self) -> int:
        return -(-self.batches_per_epoch // self.steps)


def _as_is(batch):
    return batch


class TensorDataModule(L.LightningDataModule):
    """A DataModule whose splits are tensors: the batch sizes, the device the tensors live on, and the four
    loaders. A subclass provides ``split(name)`` ("train", "val", "test": inputs and labels) and may change how
    indices are batched (``batches``) and each batch after indexing (``collate``).

    Each split is moved to the training device once, the first time it is asked for, and batches are gathered
    there: no per-step copy from the host.

    Args:
        batch_size: samples per optimizer step.
        eval_batch_size: samples per batch for validation, test and predict; their figures do not depend on it.
        steps_per_execution: training batches (optimizer steps) per Lightning batch (Keras's name, an argument
            of its ``compile``): each step has its own batch of ``batch_size``, in the order one step per
            Lightning batch would take them, so the computation is the same; Lightning's per-batch work (loop,
            hooks, logging) is paid once per execution instead of once per step.
    """

    def __init__(self, batch_size: int = 32, eval_batch_size: int = 1000, steps_per_execution: int = 1) -> None:
        super().__init__()
        require(batch_size >= 1, f"batch_size must be at least 1, not {batch_size}.")
        require(eval_batch_size >= 1, f"eval_batch_size must be at least 1, not {eval_batch_size}.")
        require(steps_per_execution >= 1, f"steps_per_execution must be at least 1, not {steps_per_execution}.")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.steps_per_execution = steps_per_execution
        self._resident: dict[str, tuple[torch.Tensor, ...]] = {}

    def split(self, name: str) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    @property
    def static_shapes(self) -> bool:
        """Whether every full training batch has the same shape (what a captured CUDA graph replays)."""
        return True

    def batches(self, name: str, sampler: Sampler | Iterable, batch_size: int) -> Iterable[list[int]]:
        """The index batches of a split: plain batches of ``batch_size`` in the sampler's order."""
        return BatchSampler(sampler, batch_size, drop_last=False)

    def collate(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return batch

    def resident(self, name: str) -> tuple[torch.Tensor, ...]:
        """A split's tensors on the training device (the CPU without a Trainer)."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if name not in self._resident or self._resident[name][0].device != device:
            self._resident[name] = tuple(tensor.to(device) for tensor in self.split(name))
        return self._resident[name]

    def forget_resident(self) -> None:
        """Drops the device copies, e.g. when a split's tensors change (a restored tokenizer)."""
        self._resident.clear()

    def train_dataloader(self) -> DataLoader:
        tensors = self.resident("train")
        executions = Executions(
            RandomSampler(range(len(tensors[0]))),
            self.batch_size,
            steps=self.steps_per_execution,
            batches=lambda sampler: self.batches("train", sampler, self.batch_size),
        )
        return DataLoader(TensorBatches(*tensors), batch_sampler=executions, collate_fn=self._collate_execution)

    def _collate_execution(self, execution: list[tuple[torch.Tensor, ...]]) -> list[tuple[torch.Tensor, ...]]:
        return [self.collate(batch) for batch in execution]

    def _eval_loader(self, name: str) -> DataLoader:
        tensors = self.resident(name)
        index_batches = self.batches(name, SequentialSampler(range(len(tensors[0]))), self.eval_batch_size)
        return DataLoader(TensorBatches(*tensors), batch_sampler=index_batches, collate_fn=self.collate)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        inputs = self.resident("test")[0]
        return DataLoader(TensorBatches(inputs), batch_size=self.eval_batch_size, collate_fn=_as_is)
