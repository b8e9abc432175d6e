"""Search the SST-2 BiLSTM's options for the best validation accuracy (docs/search.md).

python -m sst2_bilstm.tune --trials 20                     # configs/search/sst2_bilstm.yaml's space
python -m sst2_bilstm.tune --space my_space.yaml --trials 50 --data.train_file texts.csv --objective val_loss
"""

from lightning.pytorch.cli import ArgsType

from common.search.run import main as search


def main(args: ArgsType = None) -> None:
    # Validation is always held out of the training split (data.val_fraction): nothing to add.
    search("sst2_bilstm", args, "sst2-bilstm-tune")


if __name__ == "__main__":
    main()
