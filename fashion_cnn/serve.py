"""Serve a Fashion-MNIST checkpoint, or its export, with LitServe (docs/serving.md).

    fashion-cnn-serve --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt --port 8000
    fashion-cnn-serve --model exported/ --port 8000          # onnxruntime, no torch
    curl -s localhost:8000/predict -d '{"inputs": ["<base64 PNG>"], "resize": true}'

An input is a PNG or JPEG image as base64 (at most MAX_PIXELS pixels), or a 28x28 array of pixels in [0, 1] (a
light garment on black). The server takes these two formats only (``open_image``'s default); the predict command
and training also read BMP, GIF, WebP, TIFF and PPM/PGM files.
"""

import base64
import binascii
import contextlib
import io
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, PlainValidator, TypeAdapter, ValidationError, WithJsonSchema

from common.decoding import MAX_PIXELS, image_pixels, open_image
from common.deploy.contract import checked_inputs, inputs_schema, json_kind, refuse
from common.deploy.serve import ClassifierAPI, Decoded, serve_command
from common.errors import InputTooLarge
from fashion_cnn.predict import load

IMAGE = {
    "type": "string",
    "contentEncoding": "base64",
    "description": "a PNG or JPEG image, base64 (the formats this server takes; convert others first)",
}
NUMBER = {"type": "number", "minimum": 0, "maximum": 1}
ROW = {"type": "array", "items": NUMBER, "minItems": 28, "maxItems": 28}
PIXELS = {"type": "array", "items": ROW, "minItems": 28, "maxItems": 28, "description": "28 rows of 28 pixels"}
ONE = "a base64 PNG/JPEG image or a 28 x 28 array of pixels in [0, 1]"


# Rows of numbers, JSON's true and false refused (they would pass as 1 and 0): checked in pydantic's compiled core,
# because a Python loop over 784 values is the dearest step of a request in the server's busiest process.
NUMBER_ROWS = TypeAdapter(list[list[float]], config=ConfigDict(strict=True))


def checked_image(item: Any, i: int) -> str | np.ndarray:
    """A base64 string, left for the worker to decode, or a pixel array, checked here and made a numpy array."""
    if isinstance(item, str):
        return item
    if not isinstance(item, list):
        raise refuse(f"input {i} is {json_kind(item)}: give {ONE}.")
    try:
        NUMBER_ROWS.validate_python(item)
    except ValidationError:
        if not all(isinstance(row, list) for row in item):
            raise refuse(f"input {i} is a list that is not of rows: give {ONE}.") from None
        wrong = [v for row in item for v in row if isinstance(v, bool) or not isinstance(v, int | float)]
        if not wrong:  # an integer too large for a float
            raise refuse(f"input {i} has pixels outside [0, 1].") from None
        raise refuse(f"input {i} holds {json_kind(wrong[0])} among its pixels: pixels are numbers in [0, 1].") from None
    if not item:
        raise refuse(f"input {i} is an empty array, not 28 x 28.")
    widths = sorted({len(row) for row in item})
    if len(item) != 28 or widths != [28]:
        shape = f"{len(item)} x {widths[0]}" if len(widths) == 1 else f"{len(item)}-row ragged"
        raise refuse(f"input {i} is a {shape} array, not 28 x 28.")
    pixels = np.array(item, dtype=np.float32)
    if not (pixels.min() >= 0 and pixels.max() <= 1):  # NaN fails too
        raise refuse(f"input {i} has pixels outside [0, 1].")
    return pixels


class ImageRequest(BaseModel):
    """The body of ``POST /predict``, checked as it is read: a bad request is refused before it joins a batch."""

    model_config = ConfigDict(strict=True)  # "resize": 1 or "yes" is refused, not taken as true

    inputs: Annotated[
        list,
        PlainValidator(lambda value: checked_inputs(value, checked_image, ONE)),
        WithJsonSchema(inputs_schema(IMAGE, {"anyOf": [IMAGE, PIXELS]}, f"{ONE}")),
    ]
    resize: bool = False
    invert: bool = False


class FashionAPI(ClassifierAPI):
    def decode_request(self, request: ImageRequest):  # the annotation is the endpoint's body
        return super().decode_request(request)

    def decode(self, request: ImageRequest) -> Decoded:
        # All the request's images checked from their headers before one is decoded: each one's size, and the sum.
        opened = {}
        with contextlib.ExitStack() as closing:
            for i, item in enumerate(request.inputs):
                if isinstance(item, str):
                    opened[i] = closing.enter_context(open_image(image_file(item, i), f"input {i}"))
            total = sum(image.size[0] * image.size[1] for image in opened.values())
            if total > MAX_PIXELS:
                raise InputTooLarge(f"the images are {total:,} pixels in all; at most {MAX_PIXELS:,} a request.")
            channels, size, _ = self.predictor.input_shape  # the model's input
            images, notes = [], []
            for i, item in enumerate(request.inputs):
                note = ""
                if i in opened:
                    shape = {"size": size, "channels": channels}
                    pixels, note = image_pixels(
                        opened[i], request.resize, request.invert, f"input {i}", "send resize: true", **shape
                    )
                elif (size, channels) != (28, 1):
                    raise ValueError(f"input {i} is an array: this model takes {size}x{size} images, as PNG or JPEG.")
                else:
                    pixels = 1 - item if request.invert else item
                images.append(pixels.reshape(channels, size, size))
                notes.append(note)
        return Decoded(np.stack(images), notes)


def image_file(item: str, i: int) -> io.BytesIO:
    try:
        return io.BytesIO(base64.b64decode(item, validate=True))
    except binascii.Error:
        raise ValueError(f"input {i} is neither a base64 PNG/JPEG image nor a 28x28 array.") from None


def main(args: list[str] | None = None) -> None:
    serve_command(args, workflow="fashion_cnn", load=load, api_class=FashionAPI, limits={"pixels": MAX_PIXELS})


if __name__ == "__main__":
    main()
