"""Train, test and report the Fashion-MNIST CNN.

python -m fashion_cnn.train                       # the whole reference workflow (fashion-cnn once installed)
python -m fashion_cnn.train fit --config configs/fashion_cnn.yaml --trainer.max_epochs 2
python -m fashion_cnn.train test --ckpt_path runs/fashion_cnn/version_0/checkpoints/last.ckpt
"""

from lightning.pytorch.cli import ArgsType

from common.cli.main import run_cli
from fashion_cnn.data import FashionMNISTDataModule
from fashion_cnn.model import FashionCNN


def main(args: ArgsType = None) -> None:
    run_cli(FashionCNN, FashionMNISTDataModule, "fashion_cnn.yaml", args, command="fashion-cnn")


if __name__ == "__main__":
    main()
