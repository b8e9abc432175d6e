"""fit / validate / test / predict the table MLP: ``python -m examples.tabular.train --data.train_path ...``"""

from pathlib import Path

from lightning.pytorch.cli import ArgsType

from common.cli.main import run_cli
from examples.tabular.data import TableDataModule
from examples.tabular.model import TableMLP

# The output layer has one unit per class name: never an option of its own.
LINKS = (("data.class_names", "model.num_classes", len),)


def main(args: ArgsType = None) -> None:
    run_cli(TableMLP, TableDataModule, Path(__file__).with_name("tabular.yaml"), args, links=LINKS)


if __name__ == "__main__":
    main()
