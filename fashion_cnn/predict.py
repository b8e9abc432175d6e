"""Classify garment images with a trained Fashion-MNIST checkpoint.

    fashion-cnn-predict --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt shirt.png photos/
    fashion-cnn-predict --ckpt ... --resize --invert photo.jpg --output predictions.csv

(``python -m fashion_cnn.predict`` is the same command without installing.)

Fashion-MNIST images are 28x28 grayscale, a light garment on a black background. Other sizes are refused unless
``--resize`` is given; photographs of dark garments on a light background need ``--invert``.
"""

import argparse
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from common.errors import DataError, exit_on_reported_error
from common.parser import program
from common.predict import batched_probabilities, load_checkpoint, write_rows
from fashion_cnn.data import CLASS_NAMES
from fashion_cnn.model import FashionCNN

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
COLUMNS = ["file", "label", "probability", "top3", "note"]


def read_image(path: Path, resize: bool = False, invert: bool = False) -> torch.Tensor:
    """A (1, 28, 28) float tensor in [0, 1] from an image file, converted to grayscale."""
    return load_image(path, resize, invert)[0]


def load_image(path: Path, resize: bool = False, invert: bool = False) -> tuple[torch.Tensor, str]:
    """``read_image``'s tensor, and a note of what was done to the image to get it (a resize), or ""."""
    note = ""
    try:
        with Image.open(path) as image:
            image = image.convert("L")
            if image.size != (28, 28):
                if not resize:
                    raise DataError(f"{path} is {image.size[0]}x{image.size[1]}, not 28x28; pass --resize to scale it.")
                note = f"resized from {image.size[0]}x{image.size[1]}"
                image = image.resize((28, 28), Image.Resampling.LANCZOS)
            pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(1, 28, 28)
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path} is not a readable image ({error}).") from None
    pixels = pixels.float().div_(255)
    return (1 - pixels if invert else pixels), note


def checked_images(images: torch.Tensor) -> torch.Tensor:
    """``images`` as (N, 1, 28, 28), or a ValueError: what the model was trained on is 28x28 grayscale floats in
    [0, 1], and anything else would be reshaped into believable nonsense."""
    if not torch.is_tensor(images) or not images.is_floating_point():
        kind = images.dtype if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a float tensor with pixels in [0, 1], not {kind} (uint8: divide by 255).")
    shape = tuple(images.shape)
    if shape != (28, 28) and not (len(shape) == 4 and shape[1:] == (1, 28, 28)):
        found = " x ".join(map(str, shape))
        raise ValueError(f"images must be N x 1 x 28 x 28 (or one 28 x 28), grayscale, not {found}.")
    if images.numel() and not (float(images.min()) >= 0 and float(images.max()) <= 1):
        raise ValueError(f"pixels must be in [0, 1]; these span [{float(images.min()):g}, {float(images.max()):g}].")
    return images.reshape(-1, 1, 28, 28)


class FashionPredictor:
    """A trained FashionCNN; ``predict`` takes float images in [0, 1] of shape (N, 1, 28, 28), or one of (28, 28),
    and refuses anything else."""

    def __init__(self, model: FashionCNN, batch_size: int = 1000) -> None:
        self.model = model
        self.batch_size = batch_size

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return batched_probabilities(self.model, checked_images(images), self.batch_size)

    def predict(self, images: torch.Tensor) -> list[dict]:
        """One dict per image: ``label``, its ``probability``, and the ``top3`` (class, probability) pairs."""
        top = self.probabilities(images).topk(3, dim=1)
        return [
            {"label": CLASS_NAMES[i[0]], "probability": p[0], "top3": [(CLASS_NAMES[k], q) for k, q in zip(i, p)]}
            for p, i in zip(top.values.tolist(), top.indices.tolist())
        ]


def load(ckpt_path: str | Path) -> FashionPredictor:
    """The predictor of a Fashion-MNIST checkpoint."""
    model, _ = load_checkpoint(ckpt_path, FashionCNN)
    return FashionPredictor(model)


def image_files(inputs: list[str]) -> list[Path]:
    files = []
    for name in map(Path, inputs):
        if name.is_dir():
            found = sorted(p for p in name.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{name} holds no PNG or JPEG images.")
            files += found
        elif name.is_file():
            files.append(name)
        else:
            raise DataError(f"{name} does not exist.")
    return files


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=program("fashion-cnn-predict", "fashion_cnn.predict"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint of fashion-cnn (python -m fashion_cnn.train)")
    parser.add_argument("inputs", nargs="+", help="PNG or JPEG files, or folders of them")
    parser.add_argument("--resize", action="store_true", help="scale images that are not 28x28")
    parser.add_argument("--invert", action="store_true", help="for dark garments on a light background")
    parser.add_argument("--output", type=Path, help="write CSV or JSON (by extension) instead of a table")
    options = parser.parse_args(args)
    with exit_on_reported_error():
        predictor = load(options.ckpt)
        files = image_files(options.inputs)
        images, notes = zip(*(load_image(f, options.resize, options.invert) for f in files))
        predictions = predictor.predict(torch.stack(images))
        rows = [{"file": str(f), **p, "note": note} for f, p, note in zip(files, predictions, notes)]
        write_rows(rows, options.output, COLUMNS)


if __name__ == "__main__":
    main()
