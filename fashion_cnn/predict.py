"""Classify garment images with a trained Fashion-MNIST checkpoint, or with its ONNX export (without torch).

    fashion-cnn-predict --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt shirt.png photos/
    fashion-cnn-predict --ckpt ... --resize --invert photo.jpg --output predictions.csv
    fashion-cnn-predict --model exported/ shirt.png      # an export of fashion-cnn-export: onnxruntime, no torch

(``python -m fashion_cnn.predict`` is the same command without installing.)

Fashion-MNIST images are 28x28 grayscale, a light garment on a black background. Other sizes are refused unless
``--resize`` is given; photographs of dark garments on a light background need ``--invert``.
"""

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from common.decoding import load_image
from common.deploy.console import program, write_rows
from common.deploy.exported import ExportedModel
from common.deploy.predictor import Predictor
from common.errors import DataError, exit_on_reported_error
from common.images import IMAGES, images_under, say_skipped

COLUMNS = ["file", "label", "probability", "top3", "note"]


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


class FashionPredictor(Predictor):
    """``predict`` takes float images in [0, 1] of ``input_shape``, (N, channels, size, size) (Fashion-MNIST's: (N,
    1, 28, 28)), or one of (size, size) in grayscale, as a torch tensor or a numpy array, and refuses anything else.
    ``probabilities`` is the model's: a checkpoint's network, or an export's. Image files are converted to
    ``input_shape``."""

    def __init__(self, probabilities, class_names: list[str], size: int = 28, channels: int = 1) -> None:
        self._probabilities = probabilities
        self.class_names = list(class_names)
        self.input_shape = (channels, size, size)

    def class_probabilities(self, images) -> np.ndarray:
        """(N, classes) class probabilities."""
        channels, size, _ = self.input_shape
        return self._probabilities(checked_images(images, size, channels))

    def predict(self, images) -> list[dict]:
        """One dict per image: ``label``, its ``probability``, and the ``top3`` (class, probability) pairs."""
        rows = []
        for p in self.class_probabilities(images).tolist():
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

    from common.checkpoints import batched_probabilities
    from common.ensemble import load_models
    from fashion_cnn.model import FashionCNN

    model, _ = load_models(paths, FashionCNN)

    def probabilities(images: np.ndarray) -> np.ndarray:
        return batched_probabilities(model, torch.from_numpy(images), batch_size).float().numpy()

    trained = model.data_hparams()  # the classes and input the checkpoint was trained with
    return FashionPredictor(probabilities, trained["class_names"], trained["image_size"], trained["in_channels"])


def named_files(inputs: list[str]) -> list[Path]:
    """The files named, and the image files of the folders named, listed as training lists a class folder (at any
    depth, by extension; what a file holds is checked when it is read). What a folder held besides is said in one
    line on standard error."""
    files = []
    for name in map(Path, inputs):
        if name.is_dir():
            skipped = Counter()
            found = images_under(name, skipped)
            if not found:
                raise DataError(f"{name} holds no {IMAGES}.")
            say_skipped(name, skipped)
            files += [name / path for path in found]
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
    parser.add_argument("inputs", nargs="+", help="image files (PNG, JPEG, BMP, GIF, WebP, TIFF, PPM/PGM), or folders")
    parser.add_argument("--resize", action="store_true", help="scale images that are not 28x28")
    parser.add_argument("--invert", action="store_true", help="for dark garments on a light background")
    parser.add_argument("--output", type=Path, help="write CSV or JSON (by extension) instead of a table")
    options = parser.parse_args(args)
    with exit_on_reported_error():
        predictor = load(*(options.ckpt or [options.model]))
        files = named_files(options.inputs)
        channels, size, _ = predictor.input_shape
        shape = {"size": size, "channels": channels}
        resize = {"resize": options.resize, "to_resize": "pass --resize"}
        images, notes = zip(*(load_image(f, invert=options.invert, **resize, **shape) for f in files))
        predictions = predictor.predict(np.stack(images))
        rows = [{"file": str(f), **p, "note": note} for f, p, note in zip(files, predictions, notes)]
        write_rows(rows, options.output, COLUMNS)


if __name__ == "__main__":
    main()
