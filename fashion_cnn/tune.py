"""Search the Fashion-MNIST CNN's options for the best validation accuracy (docs/search.md).

python -m fashion_cnn.tune --trials 20                     # configs/search/fashion_cnn.yaml's space
python -m fashion_cnn.tune --space my_space.yaml --trials 50 --data.image_folder photos/ --trainer.max_epochs 5
"""

from lightning.pytorch.cli import ArgsType

from common.search.run import main as search


def main(args: ArgsType = None) -> None:
    # The reference validates on the test split: a search holds out a tenth of the training data instead.
    search("fashion_cnn", args, "fashion-cnn-tune", held_out={"data.val_fraction": 0.1})


if __name__ == "__main__":
    main()
