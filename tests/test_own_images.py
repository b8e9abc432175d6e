"""One's own images (docs/own_data.md): a folder of class sub-folders trains, tests, predicts, exports and serves
with its own classes and input; MNIST and KMNIST by name; bad folders refused in one line."""

import base64
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from common import decoding
from fashion_cnn import predict as fashion_predict
from fashion_cnn.data import ImageFolderDataModule
from fashion_cnn.export import main as export_main
from fashion_cnn.train import main
from tests.conftest import check_test_with_no_data_options, copied_run, tiny_run, write_idx
from tests.test_serve import Server

CLASSES = ["circle", "square", "star"]


def write_folder(root, splits=(("train", 8), ("test", 3)), classes=CLASSES):
    """Images of every size, mode and format a user's folder may hold; each class has its own brightness and hue."""
    rng = np.random.default_rng(0)
    for split, n in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60, (24 + i, 30, 3), dtype=np.uint8)
                pixels[..., c % 3] += np.uint8(60 + 60 * c)
                image = Image.fromarray(pixels)
                kind = i % 4
                if kind == 1:
                    image.convert("L").save(folder / f"{i:03d}.png")
                elif kind == 2:
                    image.convert("RGBA").save(folder / f"{i:03d}.png")
                else:
                    image.save(folder / f"{i:03d}.{'jpg' if kind == 3 else 'png'}")
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A 3-class RGB folder read at 20x20, two epochs with augmentation (flips and shifts of all three channels),
    and its export."""
    root = tmp_path_factory.mktemp("own-images")
    images = write_folder(root / "shapes")
    shape = [
        "--data.image_size",
        "20",
        "--data.image_channels",
        "3",
        "--data.batch_size",
        "8",
        "--data.augment",
        "true",
    ]
    main(tiny_run("fashion_cnn", root / "unused", root / "runs", "--data.image_folder", str(images), *shape))
    run = root / "runs" / "version_0"
    export_main(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--output", str(root / "export")])
    return images, run, root / "export"


def test_a_folder_trains_and_tests_with_its_own_classes_and_input(folder_run):
    _, run, _ = folder_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["per_class"]) == CLASSES and sum(map(sum, metrics["confusion_matrix"])) == 9
    assert "| **star** |" in (run / "report.md").read_text()
    hparams = (run / "hparams.yaml").read_text()
    assert "class_names:\n- circle\n- square\n- star" in hparams and "in_channels: 3" in hparams


def test_predict_export_and_serve_use_the_checkpoints_classes_and_input(folder_run, tmp_path):
    images, run, exported = folder_run
    files = sorted(str(p) for p in (images / "test" / "star").iterdir())
    ckpt = run / "checkpoints" / "last.ckpt"
    rows = {}
    for name, source in (("ckpt", ["--ckpt", str(ckpt)]), ("onnx", ["--model", str(exported)])):
        fashion_predict.main([*source, *files, "--resize", "--output", str(tmp_path / f"{name}.json")])
        rows[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert [r["label"] for r in rows["ckpt"]] == [r["label"] for r in rows["onnx"]]
    assert all(r["label"] in CLASSES and r["note"] == "resized from 30x24" for r in rows["ckpt"][:1])
    checkpoint, export = fashion_predict.load(ckpt), fashion_predict.load(exported)
    assert checkpoint.class_names == export.class_names == CLASSES and export.input_shape == (3, 20, 20)
    pixels = np.random.default_rng(1).random((5, 3, 20, 20), dtype=np.float32)
    assert np.abs(checkpoint.class_probabilities(pixels) - export.class_probabilities(pixels)).max() <= 1e-5
    with pytest.raises(ValueError, match="N x 3 x 20 x 20"):
        checkpoint.class_probabilities(np.zeros((1, 1, 28, 28), np.float32))

    server = Server("fashion_cnn", "--model", str(exported))
    try:
        encoded = base64.b64encode(Path(files[0]).read_bytes()).decode()
        status, reply = server.predict({"inputs": [encoded], "resize": True})
        assert status == 200 and list(reply["predictions"][0]["probabilities"]) == CLASSES
        expected = export.class_probabilities(fashion_predict.load_image(files[0], True, size=20, channels=3)[0][None])
        assert reply["predictions"][0]["probabilities"]["star"] == pytest.approx(expected[0][2], abs=1e-6)
        status, reply = server.predict({"inputs": [np.zeros((28, 28)).tolist()]})
        assert status == 422 and "takes 20x20 images" in reply["detail"]
    finally:
        server.stop()


def test_a_folder_without_test_images_tests_on_a_share_of_its_training_images(tmp_path):
    images = write_folder(tmp_path / "shapes", splits=(("train", 10),))
    data = ImageFolderDataModule(image_folder=str(images), test_fraction=0.2, val_fraction=0.25)
    data.setup("fit")
    assert [len(data.split(name)[1]) for name in ("train", "val", "test")] == [18, 6, 6]  # 30: 24 + 6; 24: 18 + 6
    assert data.class_names == tuple(CLASSES) and data.split("train")[0].shape[1:] == (1, 28, 28)
    every = np.concatenate([data.split(name)[1].numpy() for name in ("train", "val", "test")])
    assert sorted(every.tolist()) == sorted([0, 1, 2] * 10)  # each image once, the order shuffled (seed 0)
    assert len(set(data.split("test")[1].tolist())) > 1  # not the last class alone


def test_a_folder_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    images = write_folder(tmp_path / "shapes")
    decoded = []
    original = decoding.load_image

    def counting(*args, **kwargs):
        decoded.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(decoding, "load_image", counting)
    first = ImageFolderDataModule(image_folder=str(images))
    first.setup("fit")
    assert len(decoded) == 33
    second = ImageFolderDataModule(image_folder=str(images))
    second.setup("fit")
    assert len(decoded) == 33 and all((a == b).all() for a, b in zip(first.split("train"), second.split("train")))
    (images / "train" / "star" / "000.png").touch()  # a changed file: its folder is read again, test/ is not
    ImageFolderDataModule(image_folder=str(images)).setup("fit")
    assert len(decoded) == 33 + 24
    # prepare_data (one process per machine, before every process's setup) decodes; setup then reads the cache.
    (images / "test" / "star" / "000.png").touch()
    third = ImageFolderDataModule(image_folder=str(images))
    third.prepare_data()
    assert len(decoded) == 33 + 24 + 9
    third.setup("fit")
    assert len(decoded) == 33 + 24 + 9
    # A cache smaller than the two folders keeps both while this process uses them: each decoded once.
    for split in ("train", "test"):
        (images / split / "star" / "001.png").touch()
    small = ImageFolderDataModule(image_folder=str(images), cache_limit=1e-9)
    small.prepare_data()
    small.setup("fit")
    assert len(decoded) == 33 + 24 + 9 + 33


def damage_cases():
    def empty_class(root):
        for path in (root / "train" / "star").iterdir():
            path.unlink()

    def one_class(root):
        for name in ("square", "star"):
            for split in ("train", "test"):
                for path in (root / split / name).iterdir():
                    path.unlink()
                (root / split / name).rmdir()

    def not_an_image(root):
        (root / "train" / "star" / "005.png").write_bytes(b"not a png")

    def unseen_class(root):
        (root / "test" / "hexagon").mkdir()
        Image.new("L", (8, 8)).save(root / "test" / "hexagon" / "0.png")

    def no_train(root):
        (root / "train").rename(root / "training")

    def empty_test(root):
        shutil.rmtree(root / "test")
        (root / "test").mkdir()

    return {
        "empty class folder": (empty_class, [], "train/star holds no images (.png .jpg"),
        "one class": (one_class, [], "needs a sub-folder per class, at least two; it has only circle/"),
        "not an image": (not_an_image, [], "005.png is not a PNG, JPEG, BMP, GIF, WebP, TIFF or PPM/PGM image"),
        "class training never saw": (unseen_class, [], "has classes the training images have not: hexagon"),
        "no train folder": (no_train, [], "holds no train/ folder"),
        "empty test folder": (empty_test, [], "test holds no class folder with images"),
        "a class left out of training": (
            None,
            ["--data.val_fraction", "0.9"],
            "the training split has no circle, square (train 2, test 9, val 22)",
        ),
        "an empty training split": (None, ["--data.val_fraction", "0.99"], "the train split is empty (train 0, test 9"),
        "size for an IDX dataset": (
            None,
            ["--data.image_folder", "null", "--data.image_size", "32"],
            "(ImageFolderDataModule): the following arguments are required: image_folder",
        ),
    }


@pytest.mark.parametrize("case", damage_cases())
def test_a_bad_folder_is_refused_in_one_line_and_leaves_nothing(case, tmp_path, capsys):
    damage, extra, message = damage_cases()[case]
    images = write_folder(tmp_path / "shapes")
    if damage:
        damage(images)
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_run("fashion_cnn", tmp_path / "none", tmp_path / "runs", "--data.image_folder", str(images), *extra))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err, err[-1500:]
    assert not (tmp_path / "runs").exists()


def test_other_files_in_a_class_folder_are_skipped_and_counted(tmp_path, capsys):
    images = write_folder(tmp_path / "shapes")
    (images / "train" / "star" / "notes.txt").write_text("taken on a Tuesday")
    data = ImageFolderDataModule(image_folder=str(images), val_fraction=0)  # every training image trains
    data.setup("fit")
    assert len(data.split("train")[1]) == 24 and "shapes/train: skipped 1 .txt file.\n" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["MNIST", "KMNIST"])
def test_mnist_and_kmnist_by_name(dataset, tmp_path):
    from torchvision.datasets import KMNIST, MNIST

    from fashion_cnn.data import FILES

    raw = tmp_path / "data" / dataset / "raw"
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images_name, labels_name = FILES[split]
        write_idx(raw / images_name, torch.from_numpy(rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)))
        write_idx(raw / labels_name, torch.from_numpy(labels))
    main(tiny_run("fashion_cnn", tmp_path / "data", tmp_path / "runs", "--data.dataset", dataset))
    metrics = json.loads((tmp_path / "runs" / "version_0" / "metrics.json").read_text())
    assert list(metrics["per_class"]) == {"MNIST": MNIST, "KMNIST": KMNIST}[dataset].classes


def test_a_checkpoint_is_refused_with_data_of_other_classes(folder_run, fashion_dir, tmp_path, capsys):
    _, run, _ = folder_run
    ckpt = str(run / "checkpoints" / "last.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_run("fashion_cnn", fashion_dir, tmp_path / "runs", "--ckpt_path", ckpt, command="test"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "was trained on other data: class_names ['circle'" in err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_a_runs_checkpoint_is_tested_on_its_own_data_with_no_data_options(folder_run, tmp_path, capsys):
    _, trained_run, _ = folder_run
    check_test_with_no_data_options(main, trained_run, tmp_path, capsys)


def test_a_folder_validates_on_training_images_by_default(tmp_path):
    """Own data hold out their own validation share (seeded): nothing selects on the test split."""
    images = write_folder(tmp_path / "shapes", splits=(("train", 10), ("test", 3)))
    data = ImageFolderDataModule(image_folder=str(images))
    data.setup("fit")
    train, val, test = (data.split(name) for name in ("train", "val", "test"))
    assert [len(split[1]) for split in (train, val, test)] == [27, 3, 9]  # 30 training images: 27 + 3
    assert not any(torch.equal(image, seen) for image in val[0] for seen in test[0])
    again = ImageFolderDataModule(image_folder=str(images))
    again.setup("fit")
    assert torch.equal(again.split("val")[0], val[0])  # the same share every run


def test_a_folder_in_keras_layout_trains(tmp_path):
    """Class folders directly under the folder, as image_dataset_from_directory takes them: the test split is cut
    from them."""
    images = write_folder(tmp_path / "keras", splits=(("train", 10),))
    keras = tmp_path / "flat"
    (images / "train").rename(keras)
    main(tiny_run("fashion_cnn", tmp_path / "none", tmp_path / "runs", "--data.image_folder", str(keras)))
    metrics = json.loads((tmp_path / "runs" / "version_0" / "metrics.json").read_text())
    assert list(metrics["per_class"]) == CLASSES and sum(map(sum, metrics["confusion_matrix"])) == 6


def test_predictions_name_their_images(folder_run, tmp_path, capsys):
    _, trained_run, _ = folder_run
    run = copied_run(trained_run, tmp_path)
    main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--trainer.enable_progress_bar", "false"])
    with (run / "predictions-last.csv").open() as file:
        rows = list(csv.DictReader(file))
    images = yaml.safe_load((run / "config.yaml").read_text())["data"]["init_args"]["image_folder"]
    files = sorted(str(path) for path in (Path(images).resolve() / "test").rglob("*.*"))
    assert sorted(row["input"] for row in rows) == files and list(rows[0])[:3] == ["index", "input", "predicted"]
    # Each row's class folder is the true class: the test split's files and labels stay together.
    truth = [CLASSES.index(Path(row["input"]).parent.name) for row in rows]
    tested = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    assert sum(CLASSES.index(row["predicted"]) == t for row, t in zip(rows, truth)) / len(rows) == pytest.approx(tested)
