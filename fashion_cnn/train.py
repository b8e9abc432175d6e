"""Train, test and report the Fashion-MNIST CNN.

python -m fashion_cnn.train                       # the whole reference workflow (fashion-cnn once installed)
python -m fashion_cnn.train fit --config configs/fashion_cnn.yaml --trainer.max_epochs 2
python -m fashion_cnn.train test --ckpt_path runs/fashion_cnn/version_0/checkpoints/last.ckpt
python -m fashion_cnn.train fit --data.image_folder photos/   # one's own images: photos/train/<class>/*.png
"""

from lightning.pytorch.cli import ArgsType

from common.cli.main import run_cli
from common.data import class_names_of
from fashion_cnn.data import FashionMNISTDataModule
from fashion_cnn.model import FashionCNN

# The model's input and output follow the data: no options of their own.
LINKS = (
    ("data.image_size", "model.image_size"),
    ("data.image_channels", "model.in_channels"),
    ("data", "model.class_names", class_names_of, "instantiate"),  # a folder's classes
)


def main(args: ArgsType = None) -> None:
    run_cli(FashionCNN, FashionMNISTDataModule, "fashion_cnn.yaml", args, command="fashion-cnn", links=LINKS)


if __name__ == "__main__":
    main()
