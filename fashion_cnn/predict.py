"""Classify garment images with a trained Fashion-MNIST checkpoint, or with its ONNX export (without torch).

    fashion-cnn-predict --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt shirt.png photos/
    fashion-cnn-predict --ckpt ... --resize --invert photo.jpg --output predictions.csv
    fashion-cnn-predict --model exported/ shirt.png      # an export of fashion-cnn-export: onnxruntime, no torch

(``python -m fashion_cnn.predict`` is the same command without installing.)

Fashion-MNIST images are 28x28 grayscale, a light garment on a black background. Other sizes are refused unless
``--resize`` is given; photographs of dark garments on a light background need ``--invert``.
"""

import argparse
import contextlib
import struct
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.deploy.console import program, write_rows
from common.deploy.exported import ExportedModel
from common.errors import DataError, InputTooLarge, exit_on_reported_error
from common.images import IMAGE_SUFFIXES

IMAGE_FORMATS = ("PNG", "JPEG")
# An image is refused above this many pixels before it is decoded, and a server's request above this many in all
# its images, so that one request cannot take the server's memory, or its worker for long: a 24-megapixel photo
# passes (about 1 s and 500 MB to decode with transparency, on one core), a decompression bomb does not.
MAX_PIXELS = 25_000_000
COLUMNS = ["file", "label", "probability", "top3", "note"]


@contextlib.contextmanager
def _reading(source, name: str) -> Iterator[None]:
    """What Pillow raises for a file that is not a whole PNG or JPEG, as one-line DataErrors."""
    try:
        yield
    except Image.DecompressionBombError:
        raise InputTooLarge(f"{name} is over {MAX_PIXELS:,} pixels; scale it down first.") from None
    except UnidentifiedImageError:
        raise DataError(f"{name} is not a PNG or JPEG image (the formats read here).") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:  # truncated, corrupt chunks
        why = f" ({error})" if isinstance(source, str | Path) else ""
        raise DataError(f"{name} is not a readable PNG or JPEG image{why}.") from None


def open_image(source, name: str | None = None) -> Image.Image:
    """A PNG or JPEG image opened from its header alone: another format is refused, and so is an image over
    MAX_PIXELS (``InputTooLarge``), before a single pixel is decoded."""
    name = name or str(source)
    with _reading(source, name), warnings.catch_warnings():
        # Pillow warns from 89 megapixels and refuses from 179; MAX_PIXELS, checked here, is lower.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(source, formats=IMAGE_FORMATS)
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise InputTooLarge(f"{name} is {width}x{height}, over {MAX_PIXELS:,} pixels; scale it down first.")
    return image


def load_image(
    source,
    resize: bool = False,
    invert: bool = False,
    name: str | None = None,
    to_resize: str = "pass --resize",
    size: int = 28,
    channels: int = 1,
) -> tuple[np.ndarray, str]:
    """A (channels, size, size) float32 array in [0, 1] from a PNG or JPEG file (or file object, called ``name`` in
    messages), converted to grayscale (1 channel) or RGB (3), and a note of what was done to the image to get it (a
    resize), or "". Checked from its header first (``open_image``); a JPEG photo's EXIF orientation is applied, as
    viewers show it."""
    name = name or str(source)
    with open_image(source, name) as image:
        return image_pixels(image, resize, invert, name, to_resize, size, channels)


def image_pixels(
    image: Image.Image,
    resize: bool,
    invert: bool,
    name: str,
    to_resize: str = "pass --resize",
    size: int = 28,
    channels: int = 1,
) -> tuple[np.ndarray, str]:
    """``load_image`` of an image ``open_image`` gave: its pixels decoded, and the note."""
    with _reading(image.filename or None, name):
        if image.format == "JPEG":  # cameras' rotation; reading a PNG's would decode it a second time
            ImageOps.exif_transpose(image, in_place=True)
        width, height = image.size
        wrong_size = f"{name} is {width}x{height}, not {size}x{size}; {to_resize}"
        pixels, note = _pixels(image, resize, invert, wrong_size, size, channels)
    return (1 - pixels if invert else pixels), note


def _pixels(
    image: Image.Image, resize: bool, invert: bool, wrong_size: str, size: int, channels: int
) -> tuple[np.ndarray, str]:
    """Pixels in [0, 1] from any mode a PNG or JPEG opens in: 16-bit grayscale keeps its 65,536 levels (Pillow's
    conversion to 8 bits would clip them), and transparent pixels become the background (black, or white before
    ``invert``), which is what a garment's cut-out stands on."""
    mode = "L" if channels == 1 else "RGB"
    if image.mode.startswith("I"):  # a 16-bit grayscale PNG: I;16 (or I in older Pillow)
        image = Image.fromarray(np.asarray(image, dtype=np.float32) / 65535, mode="F")
        levels = 1.0
    else:
        if image.mode in ("LA", "PA", "RGBA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.new(mode, rgba.size, (255 if invert else 0,) * channels)  # the model's mode, not RGBA
            image.paste(rgba.convert(mode), mask=rgba.getchannel("A"))
        image = image.convert("RGB").convert(mode) if image.mode == "CMYK" else image.convert(mode)
        levels = 255.0
    note = ""
    if image.size != (size, size):
        if not resize:
            raise DataError(f"{wrong_size} to scale it.")
        note = f"resized from {image.size[0]}x{image.size[1]}"
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.float32) / levels
    pixels = pixels.reshape(1, size, size) if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if len(pixels) != channels:  # 16-bit grayscale for an RGB model: the one channel three times
        pixels = np.repeat(pixels, channels, axis=0)
    return np.clip(pixels, 0, 1), note  # LANCZOS overshoots a little; 8 bits saturate, floats must be clipped


def read_image(path: Path, resize: bool = False, invert: bool = False, size: int = 28, channels: int = 1):
    """``load_image``'s pixels as a torch tensor, for the checkpoint's Python API."""
    import torch

    return torch.from_numpy(load_image(path, resize, invert, size=size, channels=channels)[0])


def checked_images(images, size: int = 28, channels: int = 1) -> np.ndarray:
    """``images`` (a torch tensor or a numpy array) as float32 (N, channels, size, size), or a ValueError: what the
    model was trained on is such floats in [0, 1] (28x28 grayscale for Fashion-MNIST), and anything else would be
    reshaped into believable nonsense."""
    kind = getattr(images, "dtype", type(images).__name__)
    if type(images).__module__.startswith("torch"):
        images = images.detach().cpu()
        images = images.float().numpy() if images.is_floating_point() else images.numpy()
    if not isinstance(images, np.ndarray) or not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be a float tensor with pixels in [0, 1], not {kind} (uint8: divide by 255).")
    shape, one = tuple(images.shape), (size, size) if channels == 1 else (channels, size, size)
    if shape != one and not (len(shape) == 4 and shape[1:] == (channels, size, size)):
        found, wanted = " x ".join(map(str, shape)), " x ".join(map(str, one))
        kind = "grayscale" if channels == 1 else "RGB"
        raise ValueError(f"images must be N x {channels} x {size} x {size} (or one {wanted}), {kind}, not {found}.")
    if images.size and not (float(images.min()) >= 0 and float(images.max()) <= 1):
        raise ValueError(f"pixels must be in [0, 1]; these span [{float(images.min()):g}, {float(images.max()):g}].")
    return images.reshape(-1, channels, size, size).astype(np.float32, copy=False)


class FashionPredictor:
    """``predict`` takes float images in [0, 1] of shape (N, channels, size, size) (Fashion-MNIST's: (N, 1, 28,
    28)), or one of (size, size) in grayscale, as a torch tensor or a numpy array, and refuses anything else.
    ``probabilities`` is the model's: a checkpoint's network, or an export's. ``size`` and ``channels`` are the
    model's input, which image files are converted to."""

    def __init__(self, probabilities, class_names: list[str], size: int = 28, channels: int = 1) -> None:
        self._probabilities = probabilities
        self.class_names = list(class_names)
        self.size, self.channels = size, channels

    def probabilities(self, images) -> np.ndarray:
        """(N, classes) class probabilities."""
        return self._probabilities(checked_images(images, self.size, self.channels))

    class_probabilities = probabilities  # what the server asks of both workflows' predictors

    def predict(self, images) -> list[dict]:
        """One dict per image: ``label``, its ``probability``, and the ``top3`` (class, probability) pairs."""
        rows = []
        for p in self.probabilities(images).tolist():
            top = sorted(range(len(p)), key=lambda k: -p[k])[:3]  # ties keep the class order
            top3 = [(self.class_names[k], p[k]) for k in top]
            rows.append({"label": top3[0][0], "probability": top3[0][1], "top3": top3})
        return rows


def load(*paths: str | Path, batch_size: int = 1000, shared_cores: bool = False) -> FashionPredictor:
    """The predictor of a Fashion-MNIST checkpoint (torch), of several as one ensemble, or of a folder written by
    the export (onnxruntime; ``shared_cores`` as ExportedModel's)."""
    if not paths:
        raise TypeError("load takes one checkpoint path or more, or one export folder.")
    if any(Path(path).is_dir() for path in paths):
        if len(paths) > 1:
            raise DataError("an export is one model: give one --model folder, or several checkpoints.")
        exported = ExportedModel(paths[0], "fashion_cnn", batch_size, shared_cores)
        size, channels = (
            int(exported.metadata.get(key, default)) for key, default in (("image_size", 28), ("channels", 1))
        )
        return FashionPredictor(exported.probabilities, exported.class_names, size, channels)
    import torch

    from common.checkpoints import batched_probabilities, load_models
    from fashion_cnn.model import FashionCNN

    model = load_models(paths, FashionCNN)

    def probabilities(images: np.ndarray) -> np.ndarray:
        return batched_probabilities(model, torch.from_numpy(images), batch_size).float().numpy()

    trained = model.data_hparams()  # the classes and input the checkpoint was trained with
    return FashionPredictor(probabilities, trained["class_names"], trained["image_size"], trained["in_channels"])


def image_files(inputs: list[str]) -> list[Path]:
    """The files named, and the PNG and JPEG files of the folders named (by extension; what a file holds is
    checked when it is read). A folder's other files are skipped, and said so on standard error."""
    files = []
    for name in map(Path, inputs):
        if name.is_dir():
            entries = sorted(p for p in name.iterdir() if p.is_file())
            found = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
            if not found:
                raise DataError(f"{name} holds no PNG or JPEG images.")
            if skipped := [p.name for p in entries if p not in found]:
                shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
                print(f"skipped {len(skipped)} files of {name} that are not PNG or JPEG: {shown}", file=sys.stderr)
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
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument(
        "--ckpt",
        action="append",
        help="a checkpoint of fashion-cnn (python -m fashion_cnn.train); repeated, an ensemble",
    )
    weights.add_argument("--model", help="a folder written by fashion-cnn-export (needs onnxruntime, not torch)")
    parser.add_argument("inputs", nargs="+", help="PNG or JPEG files, or folders of them")
    parser.add_argument("--resize", action="store_true", help="scale images that are not 28x28")
    parser.add_argument("--invert", action="store_true", help="for dark garments on a light background")
    parser.add_argument("--output", type=Path, help="write CSV or JSON (by extension) instead of a table")
    options = parser.parse_args(args)
    with exit_on_reported_error():
        predictor = load(*(options.ckpt or [options.model]))
        files = image_files(options.inputs)
        shape = {"size": predictor.size, "channels": predictor.channels}
        images, notes = zip(*(load_image(f, options.resize, options.invert, **shape) for f in files))
        predictions = predictor.predict(np.stack(images))
        rows = [{"file": str(f), **p, "note": note} for f, p, note in zip(files, predictions, notes)]
        write_rows(rows, options.output, COLUMNS)


if __name__ == "__main__":
    main()
