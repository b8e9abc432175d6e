"""A new run that fails before its first optimizer step leaves nothing behind."""

import shutil
import time
from pathlib import Path

import lightning as L

from common.files import nearest_existing

# What a run without a logger writes into the run root itself.
ROOT_FILES = ("config.yaml", "tokenizer.json")


class RemoveUnusedRun(L.Callback):
    """Removes what a new run wrote when it fails (any exception Lightning reports to ``on_exception``) before its
    first optimizer step: its run folder (nothing in it but the config and an empty event file, unless it saved a
    checkpoint), or, without a logger, the files it wrote into the root; then the folders made for it that this
    leaves empty. A run folder that existed before (a resumed run, predictions beside a checkpoint) is kept."""

    def __init__(self, run: Path | None, root: Path) -> None:
        """``run``: the logger's run folder (None without a folder logger), ``root``: the Trainer's
        default_root_dir; made before anything is written (a logger makes its folder when the run sets up)."""
        self.run = run if run is not None and not run.exists() else None  # an existing run's folder stays
        self.since = time.time()
        # The outermost folder that this run makes (none for an existing run's)
        self.created = None if run is not None and self.run is None else nearest_existing(run or root)[1]

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.global_step > 0 or not trainer.is_global_zero:
            return
        if self.run is not None:
            if self.run.is_dir() and not (self.run / "checkpoints").exists():
                shutil.rmtree(self.run)
            remove_empty(self.run.parent, self.created)
        elif trainer.logger is None:
            root = Path(trainer.default_root_dir)
            for name in ROOT_FILES:
                written = root / name
                if written.is_file() and written.stat().st_mtime >= self.since:
                    written.unlink()
            remove_empty(root, self.created)


def remove_empty(folder: Path, created: Path | None) -> None:
    """Removes ``folder`` and its parents while they are empty, up to ``created`` (None: nothing)."""
    folder = folder.absolute()
    while created is not None and folder.is_relative_to(created) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
