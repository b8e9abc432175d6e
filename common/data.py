"""Where datasets live, and what both workflows' DataModules share: splits held as tensors on the training
device, and batches gathered from them in one indexing operation."""

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler, TensorDataset

from common.errors import DataError, require


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data folder: the given one, else the ``DATA_DIR`` environment variable, else ``./data``."""
    return Path(data_dir or os.environ.get("DATA_DIR") or "data").expanduser()


def cache_dir() -> Path:
    """A writable folder for files unpacked from read-only sources (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightning-keras-classics"


def hold_out_end(split: tuple[Sequence, ...], val_fraction: float) -> tuple[tuple, tuple]:
    """A split's training part and its held-out end (its inputs and labels alike), cut before any shuffling as
    Keras's ``validation_split`` cuts it: the first ``floor(n * (1 - val_fraction))`` items train."""
    kept = math.floor(len(split[0]) * (1 - val_fraction))
    return tuple(part[:kept] for part in split), tuple(part[kept:] for part in split)


def check_splits(splits: dict[str, tuple], class_names: Sequence[str], how: str) -> None:
    """Refuses a split without rows, and a class without training rows (its output would never learn), in one
    line naming the splits' sizes and ``how`` they were cut."""
    sizes = ", ".join(f"{name} {len(split[1]):,}" for name, split in splits.items())
    if empty := [name for name, split in splits.items() if len(split[1]) == 0]:
        raise DataError(f"the {empty[0]} split is empty ({sizes}): {how}")
    trained = set(torch.as_tensor(splits["train"][1]).long().unique().tolist())
    if missing := [name for i, name in enumerate(class_names) if i not in trained]:
        raise DataError(f"the training split has no {', '.join(missing)} ({sizes}): {how}")


def class_names_of(data: "L.LightningDataModule") -> list[str]:
    """A DataModule's classes, for a link to the model's ``class_names`` once the data is built (a function of
    the module, not a lambda: ddp_spawn pickles the parser that holds the links)."""
    return list(data.class_names)


class TensorBatches(TensorDataset):
    """Tensors indexed a whole batch at a time: DataLoader calls ``__getitems__`` with a batch's indices, so a
    batch is one indexing operation (on whatever device the tensors are), not one per sample and a collate."""

    def __getitems__(self, indices: list) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, device=self.tensors[0].device)
        return tuple(tensor[index] for tensor in self.tensors)


class BatchesLoader(DataLoader):
    """A DataLoader of index batches (``batch_sampler``) that shows the sampler the batches draw from as its own
    ``sampler``, as a DataLoader given ``sampler`` and ``batch_size`` does. Lightning reads that to know whether a
    loader shuffles: ``overfit_batches`` swaps a shuffling sampler for a sequential one, so that the same batches
    come every epoch, and would not see the shuffling inside a batch sampler."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "sampler", self.batch_sampler.sampler)  # DataLoader's attributes are read-only


def _as_is(batch):
    return batch


class TensorDataModule(L.LightningDataModule):
    """A DataModule whose splits are tensors: the batch sizes, the device the tensors live on, and the four
    loaders. A subclass provides ``split(name)`` ("train", "val", "test": inputs and labels) and may change how
    indices are batched (``batches``) and each batch after indexing (``collate``).

    Each split is moved to the training device once, the first time it is asked for, and batches are gathered
    there: no per-step copy from the host.

    Args:
        batch_size: samples per training batch.
        eval_batch_size: samples per batch for validation, test and predict; their figures do not depend on it.
    """

    def __init__(self, batch_size: int = 32, eval_batch_size: int = 1000) -> None:
        super().__init__()
        require(batch_size >= 1, f"batch_size must be at least 1, not {batch_size}.")
        require(eval_batch_size >= 1, f"eval_batch_size must be at least 1, not {eval_batch_size}.")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self._resident: dict[str, tuple[torch.Tensor, ...]] = {}

    def split(self, name: str) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def batches(self, name: str, sampler: Sampler | Iterable, batch_size: int) -> Iterable[list[int]]:
        """The index batches of a split: plain batches of ``batch_size`` in the sampler's order."""
        return BatchSampler(sampler, batch_size, drop_last=False)

    def collate(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return batch

    def input_names(self) -> list[str] | None:
        """What names each input ``predict`` reads (the test split's), for the predictions file: a file's path, a
        sentence; None where the inputs have no names (an IDX file's images)."""
        return None

    def baseline_split(self, name: str) -> tuple[Sequence, Sequence]:
        """A split as a classic baseline (the report's yardstick) reads it: inputs and labels. By default, each
        input's tensor flattened into one row of numbers; a DataModule of texts gives the texts."""
        inputs, labels = self.split(name)[:2]
        return inputs.flatten(1).cpu().numpy(), labels.cpu().numpy()

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
        return self._loader("train", RandomSampler, self.batch_size)

    def _eval_loader(self, name: str) -> DataLoader:
        return self._loader(name, SequentialSampler, self.eval_batch_size)

    def _loader(self, name: str, sampler_class: type, batch_size: int) -> DataLoader:
        tensors = self.resident(name)
        sampler = sampler_class(range(len(tensors[0])))
        index_batches = self.batches(name, sampler, batch_size)
        if type(index_batches) is BatchSampler:
            # Plain batches, given as sampler and batch size: Lightning rebuilds such a loader with its own sampler
            # (DDP's shares, overfit_batches) and keeps the batch size, which it cannot read from a batch sampler.
            return DataLoader(TensorBatches(*tensors), sampler=sampler, batch_size=batch_size, collate_fn=self.collate)
        return BatchesLoader(TensorBatches(*tensors), batch_sampler=index_batches, collate_fn=self.collate)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        inputs = self.resident("test")[0]
        return DataLoader(TensorBatches(inputs), batch_size=self.eval_batch_size, collate_fn=_as_is)
