"""Export an SST-2 checkpoint to ONNX, with its tokenizer beside it, for prediction and serving without torch.

sst2-bilstm-export --ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt --output exported/
sst2-bilstm-export --ckpt run1.ckpt --ckpt run2.ckpt --output exported/   # their ensemble (one tokenizer)
sst2-bilstm-predict --model exported/ "a gorgeous film"
"""

from pathlib import Path

import onnx
import torch
from onnxscript import opset18 as op

from common.deploy.export import export_command
from sst2_bilstm.model import SST2BiLSTM
from sst2_bilstm.predict import TOKENIZER_FILE, shared_tokenizer


def write_tokenizer(ckpt_paths: list[str], checkpoints: list[dict], folder: Path) -> None:
    shared_tokenizer(ckpt_paths, checkpoints).save(str(folder / TOKENIZER_FILE))


def packed_bidirectional_onnx(inputs, lengths, weights):
    """``packed_bidirectional`` as ONNX's LSTM, which reads each sequence only up to its ``sequence_lens``: one
    operator, as the padded model's LSTM is. ONNX orders the gates i, o, f, c where torch orders them i, f, c, o,
    and stacks the two directions' weights."""
    hidden = weights[1].shape[1]
    order = op.Constant(value_ints=[k * hidden + row for k in (0, 3, 1, 2) for row in range(hidden)])
    w_ih, w_hh, b_ih, b_hh, *backward = (op.Unsqueeze(op.Gather(w, order), [0]) for w in weights)
    w_ih_back, w_hh_back, b_ih_back, b_hh_back = backward
    outputs, last_states, _ = op.LSTM(
        op.Transpose(inputs, perm=[1, 0, 2]),  # (L, N, C)
        op.Concat(w_ih, w_ih_back, axis=0),
        op.Concat(w_hh, w_hh_back, axis=0),
        op.Concat(op.Concat(b_ih, b_hh, axis=1), op.Concat(b_ih_back, b_hh_back, axis=1), axis=0),
        op.Cast(lengths, to=onnx.TensorProto.INT32),
        direction="bidirectional",
        hidden_size=hidden,
    )
    # (L, 2, N, H) to (N, L, 2H)
    return op.Reshape(op.Transpose(outputs, perm=[2, 0, 1, 3]), op.Constant(value_ints=[0, 0, -1])), last_states


# The model's own operators, and how ONNX writes them.
TRANSLATIONS = {torch.ops.sst2_bilstm.packed_bidirectional.default: packed_bidirectional_onnx}


def main(args: list[str] | None = None) -> None:
    # Token ids of any batch size and length: a checkpoint's tokenizer pads to its own max_length.
    example = torch.randint(2, 10, (2, 50), generator=torch.Generator().manual_seed(0))  # the caller's untouched
    metadata = {"workflow": "sst2_bilstm"}  # the classes: the model's export_metadata
    export_command(
        args,
        workflow="sst2_bilstm",
        model_class=SST2BiLSTM,
        example=example,
        metadata=metadata,
        sequence=True,
        beside=write_tokenizer,
        translations=TRANSLATIONS,
    )


if __name__ == "__main__":
    main()
