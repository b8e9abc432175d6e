"""A CSV table of numeric features and an integer class label in its last column."""

import csv
from pathlib import Path

import torch

from common.data import TensorDataModule, hold_out_end
from common.errors import DataError, require


def read_table(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with path.open(newline="") as file:
            rows = list(csv.reader(file))[1:]  # a header first
        features = torch.tensor([[float(x) for x in row[:-1]] for row in rows])
        labels = torch.tensor([int(row[-1]) for row in rows])
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a table of numbers with a class id in its last column ({error}).") from None
    return features, labels


class TableDataModule(TensorDataModule):
    """Training and test tables; the last ``val_fraction`` of the training rows validate, as Keras's
    ``validation_split`` takes them (the end, not shuffled).

    Args:
        train_path: the training CSV.
        test_path: the test CSV.
        class_names: the name of each class id, in order.
        val_fraction: the share of training rows held out for validation, from the end.
        batch_size, eval_batch_size: ``common.data.TensorDataModule``'s.
    """

    def __init__(
        self,
        train_path: str = "train.csv",
        test_path: str = "test.csv",
        class_names: tuple[str, ...] = ("a", "b"),
        val_fraction: float = 0.2,
        batch_size: int = 32,
        eval_batch_size: int = 1000,
    ) -> None:
        super().__init__(batch_size, eval_batch_size)
        self.save_hyperparameters()
        require(0 < val_fraction < 1, f"val_fraction must be between 0 and 1, not {val_fraction}.")
        self.class_names = class_names
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, stage: str) -> None:
        if self.splits:
            return
        train, val = hold_out_end(read_table(Path(self.hparams.train_path)), self.hparams.val_fraction)
        self.splits = {"train": train, "val": val, "test": read_table(Path(self.hparams.test_path))}

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.splits[name]
