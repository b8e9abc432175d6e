"""Callbacks that tests add to real command-line runs (``--trainer.callbacks+=...``)."""

import time
from pathlib import Path

import lightning as L


class PauseAtStep(L.Callback):
    """Once optimizer step ``step`` is reached (a Lightning batch may hold several), writes ``marker`` ("epoch
    batch_idx") and waits, so that a test can kill the process there. Only once: a run resumed with the same
    callback goes on."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, Path(marker)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and not self.marker.exists():
            self.marker.write_text(f"{trainer.current_epoch} {batch_idx}")
            time.sleep(600)
