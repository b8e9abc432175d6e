"""Serve a Fashion-MNIST checkpoint, or its export, with LitServe (docs/serving.md).

    fashion-cnn-serve --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt --port 8000
    fashion-cnn-serve --model exported/ --port 8000          # onnxruntime, no torch
    curl -s localhost:8000/predict -d '{"inputs": ["<base64 PNG>"], "resize": true}'

An input is a PNG or JPEG image as base64, or a 28x28 array of pixels in [0, 1] (a light garment on black).
"""

import base64
import binascii
import io

import numpy as np

from common.errors import DataError
from common.serve import Decoded, serve_command
from fashion_cnn.predict import load, load_image


def decode(inputs: list, request, predictor) -> Decoded:
    images, notes = [], []
    for i, item in enumerate(inputs):
        note = ""
        if isinstance(item, str):
            try:
                data = base64.b64decode(item, validate=True)
            except binascii.Error:
                raise ValueError(f"input {i} is neither a base64 PNG/JPEG image nor a 28x28 array.") from None
            try:
                pixels, note = load_image(
                    io.BytesIO(data), request.resize, request.invert, f"input {i}", "send resize: true"
                )
            except DataError as error:
                raise ValueError(str(error)) from None
        else:
            pixels = np.asarray(item, dtype=np.float32)
            if pixels.shape != (28, 28):
                raise ValueError(f"input {i} is a {' x '.join(map(str, pixels.shape))} array, not 28 x 28.")
            if pixels.size and not (pixels.min() >= 0 and pixels.max() <= 1):
                raise ValueError(f"input {i} has pixels outside [0, 1].")
            pixels = 1 - pixels if request.invert else pixels
        images.append(pixels.reshape(1, 28, 28))
        notes.append(note)
    return Decoded(np.stack(images), notes)


def main(args: list[str] | None = None) -> None:
    serve_command(args, workflow="fashion_cnn", load=load, decode=decode)


if __name__ == "__main__":
    main()
