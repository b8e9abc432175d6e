"""The image workflow's data sources, one DataModule each: Fashion-MNIST (or MNIST, KMNIST) as in-memory tensors,
found locally, downloaded, or taken from Debian's package; and a user's folder of images, one sub-folder per
class."""

import gzip
import hashlib
import math
import os
import struct
import zlib
from functools import cache, partial
from pathlib import Path
from typing import Literal

import PIL
import torch
import torch.nn.functional as F
from torchvision.datasets import KMNIST, MNIST, FashionMNIST

from common.data import TensorDataModule, cache_dir, check_splits, hold_out_end, resolve_data_dir
from common.errors import DataError, require
from common.images import CACHE_LIMIT, class_folders, image_files, image_splits, read_images

CLASS_NAMES = tuple(FashionMNIST.classes)
# torchvision's datasets of 28x28 grayscale images in the same IDX layout: <data_dir>/<name>/raw/.
DATASETS = {"FashionMNIST": FashionMNIST, "MNIST": MNIST, "KMNIST": KMNIST}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES = (*FILES["train"], *FILES["test"])
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist


def locate(data_dir: Path, download: bool = True, dataset: str = "FashionMNIST") -> Path:
    """The root torchvision reads (``root/<dataset>/raw/<file>``), preparing the files if needed.

    In order: plain files under ``data_dir``; gzipped ones there; a download into ``data_dir``; Debian's
    package (Fashion-MNIST's only). Gzipped files are unpacked into a cache, never beside the originals, so a
    read-only folder works (and Debian's files, whose gzip headers defeat torchvision's md5 check, are handled the
    same way).
    """
    raw = data_dir / dataset / "raw"
    if _missing(raw) == []:
        return data_dir
    if _missing(raw, ".gz") == []:
        return _unpack(raw, dataset)
    download_problem = "downloading was not allowed (download: false)"
    if download:
        try:
            DATASETS[dataset](data_dir, download=True)  # fetches all four files
            return data_dir
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            download_problem = "downloading failed: " + str(error).strip().splitlines()[-1]
    if dataset != "FashionMNIST":
        raise DataError(
            f"{dataset} not found: {', '.join(_missing(raw))} missing from {raw} (plain or .gz); {download_problem}. "
            f"Put the files there, point DATA_DIR (or --data.data_dir) at a folder holding {dataset}/raw/, or run "
            f"where the network reaches the {dataset} mirrors."
        )
    if _missing(DEBIAN_DIR, ".gz") == []:
        return _unpack(DEBIAN_DIR, dataset)
    raise DataError(
        f"Fashion-MNIST not found: {', '.join(_missing(raw))} missing from {raw} (plain or .gz), and "
        f"{DEBIAN_DIR} does not hold them either; {download_problem}. Provide the files in one of these ways: "
        "put them in that folder; point DATA_DIR (or --data.data_dir) at a folder holding FashionMNIST/raw/; "
        "on Debian, `apt-get install dataset-fashion-mnist` (`make data` does it); or run where the network "
        "reaches the Fashion-MNIST mirrors."
    )


def _missing(folder: Path, suffix: str = "") -> list[str]:
    return [name + suffix for name in ALL_FILES if not (folder / (name + suffix)).is_file()]


def _unpack(source: Path, dataset: str) -> Path:
    key = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
    root = cache_dir() / f"{dataset.lower()}-{key}"
    raw = root / dataset / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in ALL_FILES:
        packed, target = source / f"{name}.gz", raw / name
        if target.is_file() and target.stat().st_mtime >= packed.stat().st_mtime:
            continue
        partial = target.with_suffix(f".{os.getpid()}.partial")
        try:
            partial.write_bytes(gzip.decompress(packed.read_bytes()))
        except (OSError, EOFError, zlib.error) as error:
            partial.unlink(missing_ok=True)
            raise DataError(f"{packed} is not a readable gzip file ({error}); replace it with a good copy.") from None
        partial.replace(target)  # atomic: concurrent processes never see half a file
    return root


def check_idx(path: Path, shape: tuple[int | None, ...]) -> None:
    """Raises DataError unless ``path`` is a complete unsigned-byte IDX file of the given shape (None: any)."""
    ndim = len(shape)
    with path.open("rb") as file:
        header = file.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim or header[:4] != bytes([0, 0, 8, ndim]):
        raise DataError(
            f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s) (it starts with "
            f"{header[:4].hex() or 'nothing'}, expected {bytes([0, 0, 8, ndim]).hex()}); replace it with a good copy."
        )
    dims = struct.unpack(f">{ndim}I", header[4:])
    if any(want is not None and got != want for got, want in zip(dims, shape)):
        raise DataError(f"{path} holds data of shape {dims}, expected {tuple(d or 'N' for d in shape)}.")
    expected, size = len(header) + math.prod(dims), path.stat().st_size
    if size != expected:
        raise DataError(
            f"{path} is {'truncated' if size < expected else 'longer than its header says'}: its header announces "
            f"{'x'.join(map(str, dims))} values ({expected:,} bytes) but the file has {size:,} bytes; replace it "
            "with a good copy."
        )


def load_split(root: Path, train: bool, dataset: str = "FashionMNIST") -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 (N, 1, 28, 28) in [0, 1] and labels as int64 (N,), checked before they are used."""
    images_file, labels_file = (root / dataset / "raw" / name for name in FILES["train" if train else "test"])
    check_idx(images_file, (None, 28, 28))
    check_idx(labels_file, (None,))
    read = DATASETS[dataset](root, train=train)
    images, labels = read.data, read.targets
    if len(images) != len(labels):
        raise DataError(f"{images_file} holds {len(images):,} images but {labels_file} {len(labels):,} labels.")
    if len(labels) and int(labels.max()) >= len(read.classes):
        raise DataError(f"{labels_file} holds label {int(labels.max())}; {dataset} labels are 0 to 9.")
    return images.unsqueeze(1).float().div_(255), labels


def load_folder(
    folder: Path,
    class_names: list[str],
    size: int,
    channels: int,
    every_class: bool = True,
    cache_limit=CACHE_LIMIT,
    in_use: set[Path] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A folder's images (one sub-folder per class of ``class_names``; with ``every_class`` false, some may be
    missing) as uint8 (N, channels, size, size), converted as the predict command converts an image (``--resize``;
    a large JPEG decoded reduced), their labels, and their files. Bytes, a quarter of float32's memory: they
    become floats in [0, 1] on the device, batch by batch (``as_floats``)."""
    from common.decoding import training_pixels  # load_image, what prediction and the server read images with

    files, labels = image_files(folder, class_names, every_class)
    # The decoder's version in the cache's key: a change to how images are converted must not reuse old arrays.
    # 2: a large JPEG decoded reduced, which changes its pixels a little; a folder without JPEGs keeps 1's arrays.
    jpegs = any(path.suffix.lower() in (".jpg", ".jpeg") for path in files)
    settings = f"decode {2 if jpegs else 1}, Pillow {PIL.__version__}, {size}x{size}x{channels}"
    images = read_images(files, partial(training_pixels, size=size, channels=channels), settings, cache_limit, in_use)
    return torch.from_numpy(images), torch.tensor(labels), [str(path) for path in files]


# Each byte's float, made as the float32 images of a folder were (a division on the CPU): indexing this table on
# the device gives them to the last bit, where a division there may not (CUDA multiplies by the reciprocal).
FLOATS = torch.arange(256, dtype=torch.uint8).float().div_(255)


def as_floats(images: torch.Tensor) -> torch.Tensor:
    """Images of bytes as float32 in [0, 1], on their device; float images as they are."""
    if images.dtype != torch.uint8:
        return images
    return _floats_on(images.device)[images.long()]


@cache
def _floats_on(device: torch.device) -> torch.Tensor:
    return FLOATS.to(device)  # once per device, not a copy from the host every batch


class ImageDataModule(TensorDataModule):
    """What the image sources share: their splits held as tensors on the training device, the classes and image
    shape the model follows, and the training batches' augmentation. A subclass reads its source in ``setup``
    into ``train_set``, ``val_set`` (None: validation runs on the test split) and ``test_set``.

    Args:
        batch_size: samples per training batch (optimizer step).
        eval_batch_size: samples per batch for validation, test and predict.
        val_fraction: above 0, that share of the training split, taken from its end (as Keras's
            ``validation_split`` cuts it), validates and is left out of training, so that choices made on
            validation never see the test split; 0 validates on the test split.
        augment: flip each training image left-right with probability 1/2 and shift it by up to ``max_shift``
            pixels each way, on the device, batch by batch (not in the reference).
        max_shift: the largest shift of ``augment``, in pixels.
    """

    image_size: int = 28
    image_channels: int = 1

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int = 1000,
        val_fraction: float = 0.0,
        augment: bool = False,
        max_shift: int = 2,
    ) -> None:
        super().__init__(batch_size, eval_batch_size)
        require(max_shift >= 0, f"max_shift must be at least 0, not {max_shift}.")
        require(0 <= val_fraction < 1, f"val_fraction must be in [0, 1), not {val_fraction}.")
        self.val_fraction = val_fraction
        self.augment = augment
        self.max_shift = max_shift
        self.train_set: tuple[torch.Tensor, torch.Tensor] | None = None
        self.test_set: tuple[torch.Tensor, torch.Tensor] | None = None
        self.val_set: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name == "val" and self.val_fraction:
            return self.val_set
        return self.train_set if name == "train" else self.test_set

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, *rest = batch  # predict's batches are the images alone
        augment = self.augment and self.trainer is not None and self.trainer.training
        if images.dtype != torch.uint8 and not augment:
            return batch
        images = as_floats(images)
        return (flip_and_shift(images, self.max_shift) if augment else images), *rest

    def baseline_split(self, name: str):
        inputs, labels = super().baseline_split(name)
        return as_floats(torch.from_numpy(inputs)).numpy(), labels


class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST's 60,000 training and 10,000 test images (or MNIST's, KMNIST's), held as tensors on the
    training device. As in the reference, validation during training runs on the test split, unless
    ``val_fraction`` holds out part of the training split instead.

    Args:
        data_dir: folder holding ``<dataset>/raw/``; defaults to ``$DATA_DIR``, else ``./data``.
        batch_size: samples per training batch (optimizer step).
        download: whether to download the files when they are not found locally.
        augment, max_shift, eval_batch_size, val_fraction: as ImageDataModule's (not in the reference).
        dataset: torchvision's FashionMNIST, MNIST or KMNIST (the same IDX files, 28x28 grayscale).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 32,
        download: bool = True,
        augment: bool = False,
        max_shift: int = 2,
        eval_batch_size: int = 1000,
        val_fraction: float = 0.0,
        dataset: Literal["FashionMNIST", "MNIST", "KMNIST"] = "FashionMNIST",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_fraction, augment, max_shift)
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)
        self.download = download
        self.dataset = dataset

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(DATASETS[self.dataset].classes)

    def prepare_data(self) -> None:
        locate(self.data_dir, self.download, self.dataset)

    def setup(self, stage: str) -> None:
        root = locate(self.data_dir, download=False, dataset=self.dataset)  # prepare_data ran on one process per node
        held_out = stage == "validate" and self.val_fraction  # validation is then part of the training split
        if (stage == "fit" or held_out) and self.train_set is None:
            self.train_set, self.val_set = hold_out_end(load_split(root, True, self.dataset), self.val_fraction)
        if self.test_set is None:
            self.test_set = load_split(root, False, self.dataset)

    def baseline_split(self, name: str):
        if self.train_set is None:  # a test alone reads no training images, on which the report's baseline trains
            self.setup("fit")
        return super().baseline_split(name)


class ImageFolderDataModule(ImageDataModule):
    """A folder of one's own images, one sub-folder per class, read as torchvision's ImageFolder and Keras's
    image_dataset_from_directory read it (common/images.py), once, and cached.

    Its own validation: ``val_fraction`` of the training images, in an order shuffled once with seed 0, validate
    and do not train, so that early stopping, the best checkpoint and schedules never select on the test split.

    Args:
        image_folder: a folder holding ``train/<class>/`` and optionally ``test/<class>/``, or, as Keras takes a
            folder, the ``<class>/`` folders themselves: the classes are those sub-folders, sorted; their images
            may sit at any depth. Without ``test/``, the last ``test_fraction`` of the training images, in an order
            shuffled once with seed 0 (as Keras's ``image_dataset_from_directory`` shuffles before its
            ``validation_split``), is the test split.
        image_size: the images are scaled to ``image_size`` x ``image_size`` (the model follows).
        image_channels: 1 reads the images as grayscale, 3 as RGB (the model follows).
        test_fraction: the share of the training images that tests, when the folder has no ``test/``.
        val_fraction: the share of the (remaining) training images that validates; 0 validates on the test split,
            as the Fashion-MNIST reference does (and so selects on it).
        cache_limit: gigabytes (GiB) the image cache may hold; past it the least recently used arrays go
            (``python -m common.cache clear`` empties it).
        batch_size, augment, max_shift, eval_batch_size: as ImageDataModule's.
    """

    def __init__(
        self,
        image_folder: str,
        batch_size: int = 32,
        augment: bool = False,
        max_shift: int = 2,
        eval_batch_size: int = 1000,
        val_fraction: float = 0.1,
        image_size: int = 28,
        image_channels: Literal[1, 3] = 1,
        test_fraction: float = 0.2,
        cache_limit: float = CACHE_LIMIT / 2**30,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_fraction, augment, max_shift)
        self.save_hyperparameters()
        require(0 < test_fraction < 1, f"test_fraction must be between 0 and 1, not {test_fraction}.")
        require(
            image_size >= 10, f"image_size must be at least 10 (the network's two conv/pool blocks), not {image_size}."
        )
        require(cache_limit >= 0, f"cache_limit must be at least 0 (gigabytes), not {cache_limit}.")
        self.folder = Path(image_folder).expanduser()
        self.image_size = image_size
        self.image_channels = image_channels
        self.test_fraction = test_fraction
        self.cache_limit = int(cache_limit * 2**30)
        self.arrays_in_use: set[Path] = set()  # the cache files of its folders, kept while it reads them
        self._class_names: tuple[str, ...] | None = None
        self.test_files: list[str] = []

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class folders, listed when first asked for (the model's output follows them)."""
        if self._class_names is None:
            self._class_names = tuple(class_folders(image_splits(self.folder)[0]))
        return self._class_names

    def prepare_data(self) -> None:
        # Lightning runs this on one process per machine before any setup: the folders are decoded there, into the
        # image cache, so that the processes of a DDP run read the cache instead of each decoding them on all cores.
        self.read_folders()

    def read_folders(self) -> tuple[tuple, tuple | None]:
        """The training folder's and the test folder's (None without one) images, labels and files."""
        train_folder, test_folder = image_splits(self.folder)
        read = {"size": self.image_size, "channels": self.image_channels, "cache_limit": self.cache_limit}
        read["in_use"] = self.arrays_in_use
        train = load_folder(train_folder, list(self.class_names), **read)
        test = load_folder(test_folder, list(self.class_names), every_class=False, **read) if test_folder else None
        return train, test

    def setup(self, stage: str) -> None:
        if self.test_set is not None:
            return
        train, test = self.read_folders()  # from the cache prepare_data filled
        if test is None or self.val_fraction:
            order = torch.randperm(len(train[1]), generator=torch.Generator().manual_seed(0))
            train = (train[0][order], train[1][order], [train[2][i] for i in order])
        if test is None:
            train, test = hold_out_end(train, self.test_fraction)
        train, val = hold_out_end(train, self.val_fraction)
        self.train_set, self.val_set, self.test_set = train[:2], val[:2], test[:2]
        self.test_files = list(test[2])
        splits = {"train": self.train_set, "test": self.test_set} | ({"val": self.val_set} if self.val_fraction else {})
        how = "add images, or lower --data.test_fraction or --data.val_fraction."
        check_splits(splits, self.class_names, how)

    def input_names(self) -> list[str]:
        return self.test_files


def flip_and_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image of (N, C, H, W) flipped left-right with probability 1/2 and moved by up to ``max_shift`` pixels
    along each axis, the uncovered border black; drawn per image, in a few whole-batch operations."""
    n, channels, height, width = images.shape
    device = images.device
    flip = torch.rand(n, 1, 1, 1, device=device) < 0.5
    padded = F.pad(torch.where(flip, images.flip(-1), images), (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1, 1), device=device)
    rows = torch.arange(height, device=device).view(1, height, 1) + dy
    columns = torch.arange(width, device=device).view(1, 1, width) + dx
    sample, channel = torch.arange(n, device=device).view(n, 1, 1, 1), torch.arange(channels, device=device)
    return padded[sample, channel.view(1, channels, 1, 1), rows.unsqueeze(1), columns.unsqueeze(1)]
