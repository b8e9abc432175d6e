"""Train, test and report the Fashion-MNIST CNN.

python -m fashion_cnn.train                       # the whole reference workflow (fashion-cnn once installed)
python -m fashion_cnn.train fit --config configs/fashion_cnn.yaml --trainer.max_epochs 2
python -m fashion_cnn.train test --ckpt_path runs/fashion_cnn/version_0/checkpoints/last.ckpt
python -m fashion_cnn.train fit --data.image_folder photos/   # one's own images: photos/train/<class>/*.png
"""

from operator import attrgetter

from lightning.pytorch.cli import ArgsType

from common.cli.main import run_cli
from common.data import class_names_of
from fashion_cnn.data import FashionMNISTDataModule, ImageDataModule, ImageFolderDataModule
from fashion_cnn.model import FashionCNN

# The model's input and output follow the data: no options of their own.
LINKS = (
    ("data", "model.image_size", attrgetter("image_size"), "instantiate"),
    ("data", "model.in_channels", attrgetter("image_channels"), "instantiate"),
    ("data", "model.class_names", class_names_of, "instantiate"),  # a folder's classes
)
# One DataModule per source (--data CLASS); the option naming a source names its class too (None: no option, the
# reference's).
SOURCES = {None: FashionMNISTDataModule, "image_folder": ImageFolderDataModule, "data_dir": FashionMNISTDataModule}


def main(args: ArgsType = None) -> None:
    run_cli(FashionCNN, ImageDataModule, "fashion_cnn.yaml", args, command="fashion-cnn", links=LINKS, sources=SOURCES)


if __name__ == "__main__":
    main()
