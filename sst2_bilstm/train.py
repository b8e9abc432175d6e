"""Train, test and report the SST-2 BiLSTM.

python -m sst2_bilstm.train                       # the whole reference workflow (sst2-bilstm once installed)
python -m sst2_bilstm.train fit --config configs/sst2_bilstm.yaml --trainer.max_epochs 2
python -m sst2_bilstm.train test --ckpt_path runs/sst2_bilstm/version_0/checkpoints/last.ckpt
"""

from lightning.pytorch.cli import ArgsType

from common.cli.main import run_cli
from common.data import class_names_of
from sst2_bilstm.data import SST2DataModule
from sst2_bilstm.model import SST2BiLSTM

# The embedding has a row per token id: its size is the tokenizer's, never an option of its own; the output
# follows the data's classes.
LINKS = (
    ("data.num_words", "model.vocab_size"),
    ("data", "model.class_names", class_names_of, "instantiate"),
)


def main(args: ArgsType = None) -> None:
    run_cli(SST2BiLSTM, SST2DataModule, "sst2_bilstm.yaml", args, command="sst2-bilstm", links=LINKS)


if __name__ == "__main__":
    main()
