import gzip
from types import SimpleNamespace

import pytest
import torch

from common.errors import ConfigError, DataError
from fashion_cnn.data import ALL_FILES, CLASS_NAMES, FashionMNISTDataModule, flip_and_shift, locate
from tests.conftest import training_batches, write_fashion_mnist, write_idx


def test_splits_shapes_and_ranges(fashion_dir):
    data = FashionMNISTDataModule(data_dir=str(fashion_dir), batch_size=32, download=False)
    data.setup("fit")
    images, labels = data.train_set
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.5
    assert labels.dtype == torch.int64 and labels.tolist() == [i % 10 for i in range(64)]
    # As the reference: validation and test are both the test split.
    assert len(data.val_dataloader().dataset) == len(data.test_dataloader().dataset) == 32
    batch_images, batch_labels = training_batches(data)[0]
    assert batch_images.shape == (32, 1, 28, 28) and batch_labels.shape == (32,)
    assert len(CLASS_NAMES) == 10 and CLASS_NAMES[0] == "T-shirt/top" and CLASS_NAMES[9] == "Ankle boot"


def test_val_fraction_validates_on_the_end_of_the_training_split_instead_of_the_test_split(fashion_dir):
    data = FashionMNISTDataModule(data_dir=str(fashion_dir), download=False, val_fraction=0.25)
    data.setup("fit")
    train_labels, val_labels = data.split("train")[1], data.split("val")[1]
    assert len(train_labels) == 48 and val_labels.tolist() == [i % 10 for i in range(48, 64)]  # cut, not shuffled
    assert len(data.test_dataloader().dataset) == 32  # the test split stays whole, for the final figure only
    alone = FashionMNISTDataModule(data_dir=str(fashion_dir), download=False, val_fraction=0.25)
    alone.setup("validate")  # the validate subcommand finds the same held-out images
    assert torch.equal(alone.split("val")[0], data.split("val")[0])
    with pytest.raises(ConfigError, match="val_fraction must be in"):
        FashionMNISTDataModule(data_dir=str(fashion_dir), val_fraction=1.0)


def test_training_batches_are_shuffled_and_cover_the_split(fashion_dir):
    data = FashionMNISTDataModule(data_dir=str(fashion_dir), batch_size=8, download=False)
    data.setup("fit")
    torch.manual_seed(0)
    orders = [torch.cat([labels for _, labels in training_batches(data)]) for _ in range(2)]
    assert sorted(orders[0].tolist()) == sorted(data.train_set[1].tolist())
    assert not torch.equal(orders[0], data.train_set[1]) and not torch.equal(orders[0], orders[1])
    test_order = torch.cat([labels for _, labels in data.test_dataloader()])
    assert torch.equal(test_order, data.test_set[1])


def test_data_dir_comes_from_the_environment(fashion_dir, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(fashion_dir))
    data = FashionMNISTDataModule(download=False)
    assert data.data_dir == fashion_dir
    data.setup("test")
    assert len(data.test_set[0]) == 32


def test_gzipped_files_are_unpacked_to_the_cache_not_beside_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = write_fashion_mnist(tmp_path / "readonly", compress=True)
    before = sorted(p.name for p in (source / "FashionMNIST" / "raw").iterdir())
    root = locate(source, download=False)
    assert root.is_relative_to(tmp_path / "cache")
    assert sorted(p.name for p in (source / "FashionMNIST" / "raw").iterdir()) == before
    data = FashionMNISTDataModule(data_dir=str(source), download=False)
    data.setup("fit")
    assert len(data.train_set[0]) == 64


def test_debian_package_copy_is_used_when_nothing_else_is_there(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    for name in ALL_FILES:  # Debian's layout: the four .gz files in one folder
        packed = write_fashion_mnist(tmp_path / "tmp", compress=True) / "FashionMNIST" / "raw" / f"{name}.gz"
        debian.mkdir(exist_ok=True)
        (debian / f"{name}.gz").write_bytes(packed.read_bytes())
    monkeypatch.setattr("fashion_cnn.data.DEBIAN_DIR", debian)
    data = FashionMNISTDataModule(data_dir=str(tmp_path / "empty"), download=False)
    data.prepare_data()
    data.setup("fit")
    assert len(data.train_set[0]) == 64 and len(data.test_set[0]) == 32


def test_missing_data_names_the_files_and_the_remedies(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error Name or service not known>")

    monkeypatch.setattr("fashion_cnn.data.FashionMNIST", offline)
    with pytest.raises(DataError) as error:
        locate(tmp_path / "nowhere", download=True)
    message = str(error.value)
    for needle in (*ALL_FILES, "DATA_DIR", "apt-get install dataset-fashion-mnist", "Name or service not known"):
        assert needle in message


def truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def bad_magic(path):
    path.write_bytes(b"\x00\x00\x09\x03" + path.read_bytes()[4:])


def wrong_size(path):
    write_idx(path, torch.zeros(64, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize(
    "damage, expected",
    [(truncate, "is truncated"), (bad_magic, "is not an IDX file"), (wrong_size, "holds data of shape (64, 32, 32)")],
)
def test_damaged_idx_files_give_a_clear_error(fashion_dir, damage, expected):
    damage(fashion_dir / "FashionMNIST" / "raw" / "train-images-idx3-ubyte")
    data = FashionMNISTDataModule(data_dir=str(fashion_dir), download=False)
    with pytest.raises(DataError, match="train-images-idx3-ubyte") as error:
        data.setup("fit")
    assert expected in str(error.value)


def test_labels_out_of_range_are_refused(fashion_dir):
    write_idx(fashion_dir / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte", torch.full((32,), 12, dtype=torch.uint8))
    with pytest.raises(DataError, match="label 12"):
        FashionMNISTDataModule(data_dir=str(fashion_dir), download=False).setup("test")


def test_a_gz_that_is_not_gzip_is_refused(tmp_path):
    source = write_fashion_mnist(tmp_path / "data", compress=True)
    (source / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is not a readable gzip file"):
        locate(source, download=False)


def test_a_truncated_gz_is_refused(tmp_path):
    source = write_fashion_mnist(tmp_path / "data", compress=True)
    packed = source / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"
    packed.write_bytes(gzip.compress(b"x" * 1000)[:-20])
    with pytest.raises(DataError, match="not a readable gzip file"):
        locate(source, download=False)


def test_flip_and_shift_moves_whole_images_within_the_frame():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 28, 28)
    flipped_or_not = flip_and_shift(images, max_shift=0)
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(-1)) for a, b in zip(flipped_or_not, images))
    assert 0 < sum(not torch.equal(a, b) for a, b in zip(flipped_or_not, images)) < 64
    shifted = flip_and_shift(images, max_shift=2)
    assert shifted.shape == images.shape
    for out, image in zip(shifted, images):  # some flip and shift of the image, zeros where it moved in
        candidates = [
            torch.roll(torch.nn.functional.pad(view, (2, 2, 2, 2)), (dy, dx), (-2, -1))[..., 2:30, 2:30]
            for view in (image, image.flip(-1))
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        ]
        assert any(torch.equal(out, candidate) for candidate in candidates)


def test_augmentation_touches_training_batches_only(fashion_dir):
    torch.manual_seed(0)
    data = FashionMNISTDataModule(data_dir=str(fashion_dir), download=False, augment=True)
    batch = (torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))
    data.trainer = SimpleNamespace(training=False)
    assert data.on_after_batch_transfer(batch, 0) is batch
    data.trainer = SimpleNamespace(training=True)
    images, labels = data.on_after_batch_transfer(batch, 0)
    assert not torch.equal(images, batch[0]) and labels is batch[1]
    more, _ = data.on_after_batch_transfer(batch, 0)
    assert not torch.equal(images, more)  # drawn anew for each batch
