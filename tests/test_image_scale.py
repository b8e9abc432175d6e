"""Folders of camera photos read at the machine's pace (issue 38): decoded in several processes, a large JPEG at
a reduced size within what the resize blurs, held as bytes and made floats per batch, on the device, to the bit
of the float images they were."""

import json
from functools import partial

import numpy as np
import PIL
import pytest
import torch
from PIL import ExifTags, Image

from common import images as image_reading
from common.decoding import load_image, training_pixels
from common.errors import DataError
from fashion_cnn import data as fashion_data
from fashion_cnn.data import ImageFolderDataModule
from fashion_cnn.train import main
from tests.conftest import tiny_run
from tests.test_own_images import write_folder


def photo(path, width, height, seed=0):
    """A photo-like JPEG: smooth light, things with sharp edges in it, and a sensor's grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    light = [np.sin(6 * x + c) * np.cos(4 * y - c) for c in range(3)]
    things = rng.normal(0, 40, (height // 12 + 1, width // 12 + 1, 3)).repeat(12, 0).repeat(12, 1)[:height, :width]
    pixels = 128 + 60 * np.stack(light, -1) + things + rng.normal(0, 12, (height, width, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def test_a_large_jpeg_decodes_reduced_to_within_the_resize_blur(tmp_path):
    large, small = photo(tmp_path / "large.jpg", 640, 480), photo(tmp_path / "small.jpg", 120, 100)
    reduced = load_image(large, resize=True, size=32, channels=3)
    full = load_image(large, resize=True, size=32, channels=3, reduced=False)
    assert reduced[1] == full[1] == "resized from 640x480"  # the file's size, though decoded at 1/4 (twice 32)
    assert 0 < np.abs(reduced[0] - full[0]).max() * 255 <= 8  # levels of 255, where neighbours differ by tens
    # Under four times the size, the whole image is decoded: the pixels are the full decode's.
    assert np.array_equal(load_image(small, True, size=32)[0], load_image(small, True, size=32, reduced=False)[0])


def test_the_predict_command_and_the_server_read_a_photo_as_training_does(tmp_path):
    import io

    from common.decoding import image_pixels, open_image

    large = photo(tmp_path / "large.jpg", 640, 480)
    from fashion_cnn.predict import read_image

    trained = training_pixels(large, 32, 3)  # what the image cache holds
    predicted = read_image(large, resize=True, size=32, channels=3).numpy()  # the predict module's reading
    with open_image(io.BytesIO(large.read_bytes()), "input 0") as image:  # fashion_cnn/serve.py's
        served = image_pixels(image, True, False, "input 0", size=32, channels=3)[0]
    assert np.array_equal(np.rint(predicted * 255), trained) and np.array_equal(served, predicted)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_turned_photo_decodes_reduced_to_within_the_resize_blur(orientation, tmp_path):
    # 650x430 at 1/4 ends in partial 8x8 blocks: the box that leaves them out must turn with the photo.
    image = Image.open(photo(tmp_path / "photo.jpg", 650, 430))
    exif = image.getexif()
    exif[ExifTags.Base.Orientation] = orientation
    image.save(tmp_path / "turned.jpg", exif=exif, quality=90)
    reduced = load_image(tmp_path / "turned.jpg", resize=True, size=32, channels=3)
    full = load_image(tmp_path / "turned.jpg", resize=True, size=32, channels=3, reduced=False)
    assert reduced[1] == full[1] == ("resized from 650x430" if orientation < 5 else "resized from 430x650")
    assert np.abs(reduced[0] - full[0]).max() * 255 <= 8


def test_processes_decode_the_pixels_of_one_process(tmp_path):
    files = [photo(tmp_path / f"{i}.jpg", 90 + 7 * i, 70, seed=i) for i in range(5)]
    for i in range(5, 70):  # enough for chunks of several files
        Image.new("RGBA", (30, 20), (10, 3 * i, 30, 128)).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    decode = partial(training_pixels, size=16, channels=3)
    one = image_reading.decode_all(files, decode, 1)
    assert one.dtype == np.uint8 and one.shape == (70, 3, 16, 16)
    assert np.array_equal(image_reading.decode_all(files, decode, 2), one)


def test_a_large_folder_is_decoded_by_every_core_and_a_bad_file_said_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(image_reading.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert image_reading.processes(image_reading.PROCESSES_FROM) == 3 and image_reading.processes(1000) == 1
    started = []
    decode_all = image_reading.decode_all
    monkeypatch.setattr(image_reading, "decode_all", lambda *args: started.append(args[2]) or decode_all(*args))
    monkeypatch.setattr(image_reading, "PROCESSES_FROM", 0)
    images = write_folder(tmp_path / "shapes")
    (images / "train" / "star" / "005.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"005.png is not a PNG, JPEG"):
        ImageFolderDataModule(image_folder=str(images)).setup("fit")
    assert started == [3]


def test_a_folder_is_held_as_bytes_and_batches_are_its_float_images(tmp_path):
    data = ImageFolderDataModule(image_folder=str(write_folder(tmp_path / "shapes")), image_channels=3, val_fraction=0)
    data.setup("fit")
    images, labels = data.split("train")
    assert images.dtype == torch.uint8
    floats = images.float().div_(255)  # the float images the folder was read as before (issue 38)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:7]
    converted, batch_labels = data.on_after_batch_transfer((images[order], labels[order]), 0)
    assert torch.equal(converted, floats[order]) and torch.equal(batch_labels, labels[order])  # to the last bit
    every_byte = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(fashion_data.as_floats(every_byte), every_byte.float().div_(255))
    assert torch.equal(data.on_after_batch_transfer((images,), 0)[0], floats)  # predict's batches
    assert np.array_equal(data.baseline_split("train")[0], floats.flatten(1).numpy())
    files = sorted((tmp_path / "shapes" / "test" / "star").iterdir())
    first = image_reading.read_images(files, partial(training_pixels, size=8, channels=3), "bytes")
    again = image_reading.read_images(files, partial(training_pixels, size=8, channels=3), "bytes")
    assert isinstance(again, np.memmap) and np.array_equal(again, first)  # the cache's pages, not a copy of them


def test_only_a_folder_with_jpegs_is_decoded_anew(tmp_path, monkeypatch):
    settings = []
    read_images = fashion_data.read_images
    monkeypatch.setattr(fashion_data, "read_images", lambda *args: settings.append(args[2]) or read_images(*args))
    pngs = write_folder(tmp_path / "pngs")
    for path in pngs.rglob("*.jpg"):
        path.unlink()
    ImageFolderDataModule(image_folder=str(pngs)).setup("fit")
    ImageFolderDataModule(image_folder=str(write_folder(tmp_path / "mixed"))).setup("fit")
    # A folder of PNGs keeps its cached arrays (the key of the float images' reading); one with JPEGs is read again
    # (write_folder's test images are PNGs).
    assert settings[0] == f"decode 1, Pillow {PIL.__version__}, 28x28x1"
    assert [line.split(",")[0] for line in settings] == ["decode 1", "decode 1", "decode 2", "decode 1"]


def figures(run):
    return json.loads((run / "metrics.json").read_text())  # every figure, per class and per epoch; no wall times


def test_a_folder_trains_to_the_figures_of_its_float_images(tmp_path, monkeypatch):
    images = write_folder(tmp_path / "shapes")
    options = ["--data.image_folder", str(images), "--data.image_channels", "3", "--data.image_size", "16"]
    main(tiny_run("fashion_cnn", tmp_path, tmp_path / "bytes", *options, "--data.augment", "true"))
    load_folder = fashion_data.load_folder

    def as_before(*args, **kwargs):  # the float32 images load_folder returned before issue 38
        images, labels, files = load_folder(*args, **kwargs)
        return images.float().div_(255), labels, files

    monkeypatch.setattr(fashion_data, "load_folder", as_before)
    main(tiny_run("fashion_cnn", tmp_path, tmp_path / "floats", *options, "--data.augment", "true"))
    assert figures(tmp_path / "bytes" / "version_0") == figures(tmp_path / "floats" / "version_0")


def test_a_folder_is_cached_without_a_second_copy_of_its_images_in_memory(tmp_path, monkeypatch):
    import tracemalloc

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    files = [tmp_path / f"{i}.png" for i in range(2000)]
    for file in files:
        file.touch()
    tracemalloc.start()  # numpy's arrays are traced too
    try:
        images = image_reading.read_images(files, lambda path: np.ones((3, 32, 32), np.uint8), "test", None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert images.nbytes == 2000 * 3 * 32 * 32 and peak < 1.5 * images.nbytes  # the array, written as it is
