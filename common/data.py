"""Where datasets live, and batches sliced from in-memory tensors."""

import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data folder: the given one, else the ``DATA_DIR`` environment variable, else ``./data``."""
    return Path(data_dir or os.environ.get("DATA_DIR") or "data").expanduser()


def cache_dir() -> Path:
    """A writable folder for files unpacked from read-only sources (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightning-keras-classics"


class TensorBatches(TensorDataset):
    # DataLoader calls __getitems__ with a whole batch of indices: one indexing operation per batch instead of
    # one per sample followed by a collate.
    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        return tuple(tensor[index] for tensor in self.tensors)


def _as_is(batch):
    return batch


def tensor_loader(*tensors: torch.Tensor, batch_size: int, shuffle: bool = False) -> DataLoader:
    """A standard DataLoader (so Lightning can still add its distributed sampler) over in-memory tensors."""
    return DataLoader(TensorBatches(*tensors), batch_size=batch_size, shuffle=shuffle, collate_fn=_as_is)
