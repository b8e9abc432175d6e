"""Train, test and report the SST-2 BiLSTM.

python -m sst2_bilstm.train                       # the whole reference workflow (sst2-bilstm once installed)
python -m sst2_bilstm.train fit --config configs/sst2_bilstm.yaml --trainer.max_epochs 2
python -m sst2_bilstm.train test --ckpt_path runs/sst2_bilstm/version_0/checkpoints/last.ckpt
"""

from operator import attrgetter

from lightning.pytorch.cli import ArgsType

from common.cli.main import run_cli
from common.data import class_names_of
from sst2_bilstm.data import HubTextsDataModule, SST2DataModule, TextDataModule, TextFilesDataModule
from sst2_bilstm.model import SST2BiLSTM

# The embedding has a row per token id: its size is the tokenizer's, never an option of its own; the output
# follows the data's classes.
LINKS = (
    ("data", "model.vocab_size", attrgetter("num_words"), "instantiate"),
    ("data", "model.class_names", class_names_of, "instantiate"),
)
# One DataModule per source (--data CLASS); the option naming a source names its class too (None: no option, the
# reference's).
SOURCES = {
    None: SST2DataModule,
    "train_file": TextFilesDataModule,
    "hf_dataset": HubTextsDataModule,
    "data_dir": SST2DataModule,
}


def main(args: ArgsType = None) -> None:
    run_cli(SST2BiLSTM, TextDataModule, "sst2_bilstm.yaml", args, command="sst2-bilstm", links=LINKS, sources=SOURCES)


if __name__ == "__main__":
    main()
