"""Training and validation curves as Keras's TensorBoard callback writes them, for TensorBoard to overlay."""

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter

from common.callbacks.figures import EpochFigures

# Keras's tag for each epoch figure, and the names this project logs it under.
TAGS = {"epoch_loss": "loss", "epoch_accuracy": "acc"}
SPLITS = {"train": "train", "validation": "val"}


class KerasCurves(EpochFigures):
    """Writes each epoch's loss and accuracy of training and validation to ``train/`` and ``validation/`` in the
    run folder, under Keras's tags ``epoch_loss`` and ``epoch_accuracy``, at the epoch's last optimizer step (the
    step axis of every other scalar of the run; Keras counts epochs instead). An epoch that did not validate has
    no validation point.

    TensorBoard shows each folder as a run of its own and draws runs that share a tag in one chart: one chart of
    the loss and one of the accuracy, each with the training and validation curves, as Keras users know them.
    The run's own tags (``train_loss``, ``val_acc``, ...) stay as they are.
    """

    def __init__(self) -> None:
        super().__init__()
        self.writers: dict[str, SummaryWriter] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        figures, step = self.epoch_figures(trainer, pl_module), max(trainer.global_step - 1, 0)
        if not trainer.is_global_zero or not isinstance(trainer.logger, TensorBoardLogger):
            return
        for folder, split in SPLITS.items():
            for tag, name in TAGS.items():
                value = figures.get(f"{split}_{name}")
                if value is not None:
                    self._writer(trainer, folder).add_scalar(tag, value, step)
        for writer in self.writers.values():
            writer.flush()

    def _writer(self, trainer: L.Trainer, folder: str) -> SummaryWriter:
        if folder not in self.writers:
            self.writers[folder] = SummaryWriter(str(Path(trainer.logger.log_dir) / folder))
        return self.writers[folder]

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
