"""A folder of images in torchvision's ``ImageFolder`` layout (one sub-folder per class, named after it), read once
into arrays and cached, so that the next run with the same files and settings decodes nothing."""

import hashlib
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# A progress bar from this many images on: fewer decode in a moment.
PROGRESS_FROM = 2000


def class_folders(folder: Path) -> list[str]:
    """The classes: the names of ``folder``'s sub-folders, sorted (as ``ImageFolder`` orders them)."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder.")
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if len(names) < 2:
        found = f"only {names[0]}/" if names else "none"
        raise DataError(f"{folder} needs a sub-folder per class, at least two; it has {found}.")
    return names


def image_files(folder: Path, class_names: list[str], every_class: bool = True) -> tuple[list[Path], list[int]]:
    """The PNG and JPEG files of each class folder of ``folder`` and their class indices, ordered by file name
    across the classes (files named by number keep that order). Other files are skipped, and said so; a class
    folder without images is refused, and so is a folder of a class not in ``class_names`` (a test folder's class
    that training never saw). ``every_class``: each class has its folder (a training folder). The paths are
    absolute, so that they key the cache wherever the run starts."""
    folder = folder.resolve()
    present = {entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")}
    if unknown := sorted(present - set(class_names)):
        raise DataError(f"{folder} has classes the training images have not: {', '.join(unknown)}.")
    if every_class and (missing := [name for name in class_names if name not in present]):
        raise DataError(f"{folder} has no folder for the classes {', '.join(missing)}.")
    files, skipped = [], 0
    for label, name in enumerate(class_names):
        if name not in present:
            continue
        entries = [e for e in os.scandir(folder / name) if e.is_file() and not e.name.startswith(".")]
        images = [e.name for e in entries if e.name.lower().endswith(IMAGE_SUFFIXES)]
        if not images:
            raise DataError(f"{folder / name} holds no PNG or JPEG images: remove the folder or add its images.")
        skipped += len(entries) - len(images)
        files += [(image, label) for image in images]
    if skipped:
        print(f"{folder}: skipped {skipped} files that are not PNG or JPEG.", file=sys.stderr)
    if not files:
        raise DataError(f"{folder} holds no class folder with images: add them, or remove {folder.name}/.")
    files.sort()
    return [folder / class_names[label] / name for name, label in files], [label for _, label in files]


def read_images(files: list[Path], decode: Callable[[Path], np.ndarray], settings: str) -> np.ndarray:
    """The images ``decode`` makes of ``files`` (float arrays in [0, 1]), as one uint8 array: from the cache when
    the same files (by path, size and time) were read with the same ``settings`` before, else decoded and cached."""
    # Here, not at the top: the rest of this module (IMAGE_SUFFIXES, for the torch-free predictor) needs no torch.
    from common.data import cache_dir
    from common.files import write_bytes

    key = hashlib.sha1(settings.encode())
    for path in map(str, files):  # absolute (image_files): resolving 70,000 paths would cost seconds
        stat = os.stat(path)  # a file copied over another with its time kept changes its inode and ctime
        key.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}\0{stat.st_ctime_ns}\n".encode())
    cached = cache_dir() / "images" / f"{key.hexdigest()}.npy"
    if cached.is_file():
        try:
            return np.load(cached)
        except (OSError, ValueError):
            pass  # a damaged cache file: read the images again
    images = np.stack([np.rint(decode(path) * 255).astype(np.uint8) for path in _progress(files)])
    cached.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, images)
    write_bytes(cached, buffer.getbuffer())
    return images


def _progress(files: list[Path]):
    if len(files) < PROGRESS_FROM:
        return files
    from tqdm import tqdm  # Lightning's progress bars use it

    return tqdm(files, desc=f"reading {files[0].parent.parent}", unit=" images", file=sys.stderr)
