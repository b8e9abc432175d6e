"""Export an SST-2 checkpoint to ONNX, with its tokenizer beside it, for prediction and serving without torch.

sst2-bilstm-export --ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt --output exported/
sst2-bilstm-predict --model exported/ "a gorgeous film"
"""

from pathlib import Path

import torch

from common.export import class_metadata, export_command
from sst2_bilstm.data import CLASS_NAMES
from sst2_bilstm.model import SST2BiLSTM
from sst2_bilstm.predict import TOKENIZER_FILE, saved_tokenizer


def write_tokenizer(ckpt_path: str, folder: Path) -> None:
    saved_tokenizer(ckpt_path).save(str(folder / TOKENIZER_FILE))


def main(args: list[str] | None = None) -> None:
    # Token ids of any batch size and length: a checkpoint's tokenizer pads to its own max_length.
    example = torch.randint(2, 10, (2, 50), generator=torch.Generator().manual_seed(0))  # the caller's untouched
    metadata = class_metadata("sst2_bilstm", CLASS_NAMES)
    export_command(
        args,
        workflow="sst2_bilstm",
        model_class=SST2BiLSTM,
        example=example,
        metadata=metadata,
        sequence=True,
        beside=write_tokenizer,
    )


if __name__ == "__main__":
    main()
