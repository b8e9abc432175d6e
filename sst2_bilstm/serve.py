"""Serve an SST-2 checkpoint, or its export, with LitServe (docs/serving.md).

    sst2-bilstm-serve --ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt --port 8000
    sst2-bilstm-serve --model exported/ --port 8000          # onnxruntime, no torch
    curl -s localhost:8000/predict -d '{"inputs": ["a gorgeous film", "dull"]}'

An input is a sentence; ``inputs`` is one sentence or a list of them.
"""

from common.serve import Decoded, serve_command
from sst2_bilstm.predict import load
from sst2_bilstm.tokenizer import encode


def decode(inputs: list, request, predictor) -> Decoded:
    for i, sentence in enumerate(inputs):
        if not isinstance(sentence, str):
            raise ValueError(f"input {i} is not a sentence.")
        if not sentence.strip():
            raise ValueError(f"input {i} is an empty sentence.")
    tokens = encode(predictor.tokenizer, inputs)
    return Decoded(tokens, [predictor.note(sentence, ids) for sentence, ids in zip(inputs, tokens)])


def main(args: list[str] | None = None) -> None:
    serve_command(args, workflow="sst2_bilstm", load=load, decode=decode)


if __name__ == "__main__":
    main()
