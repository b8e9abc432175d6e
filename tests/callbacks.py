"""Callbacks that tests add to real runs (``--trainer.callbacks+=...`` on the command line, or a Trainer's list)."""

import errno
import json
import time
from pathlib import Path

import lightning as L
import torch

from common.files import WholeCheckpointIO, written_whole


class PauseAtStep(L.Callback):
    """Once optimizer step ``step`` is reached, writes ``marker`` ("epoch batch_idx") and waits, so that a test can
    kill the process there. Only once: a run resumed with the same callback goes on. ``skip_runs``: runs that reach
    the step and go on before the one that waits (a search's first trials), counted in ``marker``.runs."""

    def __init__(self, step: int, marker: str, skip_runs: int = 0) -> None:
        self.step, self.marker, self.skip_runs = step, Path(marker), skip_runs
        self.counted = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step < self.step or self.marker.exists() or self.counted:
            return
        self.counted = True  # once a run
        runs = self.marker.with_name(self.marker.name + ".runs")
        before = int(runs.read_text()) if runs.exists() else 0
        runs.write_text(str(before + 1))
        if before >= self.skip_runs:
            self.marker.write_text(f"{trainer.current_epoch} {batch_idx}")
            time.sleep(600)


class GradientRecorder(L.Callback):
    """Records, for every optimizer step, the gradients the optimizer applied (after any clipping; Lightning
    computes them inside ``optimizer.step``, so they are read after it):
    their total 2-norm and their largest absolute value, and writes them to ``path`` as JSON when training ends."""

    def __init__(self, path: str) -> None:
        self.path, self.norms, self.largest = Path(path), [], []

    def on_train_start(self, trainer, pl_module) -> None:
        trainer.optimizers[0].register_step_post_hook(self._record)

    def _record(self, optimizer, args, kwargs) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        self.largest.append(max(float(g.abs().max()) for g in grads))

    def on_train_end(self, trainer, pl_module) -> None:
        self.path.write_text(json.dumps({"norms": self.norms, "largest": self.largest}))


class SlowSteps(L.Callback):
    """Makes each training step take at least ``seconds`` longer, for time limits to act within an epoch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        time.sleep(self.seconds)


class RefuseAtStart(L.Callback):
    """Fails as training starts, after the run's config is written and before its first step."""

    def on_train_start(self, trainer, pl_module) -> None:
        from common.errors import ConfigError

        raise ConfigError("refused at the start of training, as the test asks.")


class FillDiskAtEpoch(L.Callback):
    """At the start of training epoch ``epoch``, writes ``ballast``, a file outside the run: with ``fill``, one that
    fills its filesystem but ``leave`` bytes, so that the checkpoint that epoch saves no longer fits; without, an
    empty one, which tells FullDiskCheckpointIO that the disk is now full."""

    def __init__(self, epoch: int, ballast: str, fill: bool = True, leave: int = 100_000) -> None:
        self.epoch, self.ballast, self.fill, self.leave = epoch, Path(ballast), fill, leave

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not self.ballast.exists():
            import shutil

            free = shutil.disk_usage(self.ballast.parent).free
            self.ballast.write_bytes(bytes(max(0, free - self.leave) if self.fill else 0))


class FullDiskCheckpointIO(WholeCheckpointIO):
    """WholeCheckpointIO on a disk that is full once ``ballast`` exists (FillDiskAtEpoch without ``fill``): a
    checkpoint's write then stops halfway with ENOSPC, as on a full disk. For machines where the tests cannot
    mount a small filesystem."""

    def __init__(self, ballast: str) -> None:
        super().__init__()
        self.ballast = Path(ballast)

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if not self.ballast.exists():
            return super().save_checkpoint(checkpoint, path, storage_options)
        with written_whole(path, "wb", size=2_000) as file:
            file.write(bytes(1_000))
            raise OSError(errno.ENOSPC, "No space left on device")
