"""Writes the CLI's predictions: a CSV per run (per process under DDP)."""

import csv
from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from common.checkpoints import per_class


class PredictionWriter(BasePredictionWriter):
    """Writes what ``predict`` returns to ``<folder>/<name>.csv``, one row per input: its index, what names it where
    the DataModule names its inputs (``input_names``: a file's path, a sentence), the predicted class and the
    probability of each class. ``folder`` defaults to the Trainer's log_dir; under DDP each process writes
    its own share, ``<name>-rank<N>.csv``."""

    def __init__(self, folder: Path | None = None, name: str = "predictions") -> None:
        super().__init__(write_interval="epoch")
        self.folder, self.name = folder, name
        self.path: Path | None = None

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        names = list(trainer.datamodule.class_names)
        input_names = getattr(trainer.datamodule, "input_names", lambda: None)()
        probabilities = per_class(torch.cat(predictions).float())
        indices = [i for batches in batch_indices for batch in batches for i in batch]
        folder = self.folder or Path(trainer.log_dir or trainer.default_root_dir)
        path = folder / (
            f"{self.name}.csv" if trainer.world_size == 1 else f"{self.name}-rank{trainer.global_rank}.csv"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["index", *(["input"] if input_names else []), "predicted", *(f"p_{n}" for n in names)])
            for index, row in zip(indices, probabilities.tolist()):
                named = [input_names[index]] if input_names else []
                predicted = names[max(range(len(row)), key=row.__getitem__)]
                writer.writerow([index, *named, predicted, *(f"{p:.6f}" for p in row)])
        self.path = path
