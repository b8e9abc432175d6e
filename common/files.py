"""Files written whole or not at all, and a full disk said in one line.

A file is written under a hidden temporary name in its own folder, then renamed over its name once complete: a
rename within one filesystem replaces the old file at once, so a reader (or a resumed run) finds the old file or
the new one, never a part of one. Checkpoints go the same way through Lightning's CheckpointIO plugin interface.
"""

import contextlib
import errno
import io
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from common.errors import DataError

FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(DataError):
    """A file that did not fit on its disk."""


def disk_full(path: Path, size: int | None = None) -> DiskFull:
    folder = path.parent
    needed = ""
    if size is not None:
        free = shutil.disk_usage(folder).free
        needed = f" ({size:,} bytes, and {free:,} are free)"
    return DiskFull(
        f"no space left in {folder}: {path.name} could not be written{needed}. Nothing was left half-written: free "
        "some space, and a resumed run goes on from its last whole checkpoint."
    )


@contextlib.contextmanager
def written_whole(path: str | Path, mode: str = "w", size: int | None = None) -> Iterator[IO[Any]]:
    """A file to write ``path``'s content into (``mode`` "w" text, "wb" bytes), which becomes ``path`` once it is
    closed whole; on any failure ``path`` is left as it was, and a full disk is a DiskFull (``size``: the bytes)."""
    path = Path(path)
    # Its own name per writer: processes writing one file at once (DDP's ranks filling a cache) each rename a
    # whole file of their own, and the last one stays.
    partial = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        with open(partial, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
        os.replace(partial, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(error, OSError) and error.errno in FULL:
            raise disk_full(path, size) from None
        raise


def nearest_existing(folder: Path) -> tuple[Path, Path | None]:
    """The nearest folder at or above ``folder`` (made absolute) that exists, and the outermost one below it that
    does not (None where ``folder`` exists): what making ``folder`` would create."""
    existing, missing = folder.absolute(), None
    while not existing.exists():
        existing, missing = existing.parent, existing
    return existing, missing


def write_text(path: str | Path, text: str) -> None:
    with written_whole(path, size=len(text.encode())) as file:
        file.write(text)


def write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    with written_whole(path, "wb", size=len(data)) as file:
        file.write(data)


def save_figure(figure, path: str | Path, **options) -> None:
    """A matplotlib figure as a PNG file, written whole."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **options)
    write_bytes(path, buffer.getbuffer())


class WholeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, each checkpoint written whole or not at all: after a full disk or a killed
    process the last whole checkpoint stays, and ``last.ckpt``'s link still points to a whole file (Lightning
    links and deletes only after a save that succeeded). A full disk ends the run with one line (DiskFull)."""

    def save_checkpoint(self, checkpoint: dict, path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, as Lightning's TorchCheckpointIO.")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # whole in memory first, as Lightning's own writer does
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, buffer.getbuffer())
