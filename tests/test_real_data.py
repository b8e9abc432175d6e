"""One short epoch of each workflow on the genuine datasets, when they are on this machine."""

import json

import pytest
import torch

from fashion_cnn.train import main as fashion_main
from sst2_bilstm.train import main as sst2_main
from tests.conftest import REAL_DATA_DIR, tiny_run

pytestmark = pytest.mark.real_data
FASHION = REAL_DATA_DIR / "FashionMNIST" / "raw"
SST2 = REAL_DATA_DIR / "SST-2"


def short_epoch(data_dir, root):
    return [
        "fit",
        "--data.data_dir",
        str(data_dir),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "150",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.enable_progress_bar",
        "false",
    ]


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(), reason=f"no Fashion-MNIST in {FASHION}")
def test_fashion_mnist_short_epoch(tmp_path):
    fashion_main([*short_epoch(REAL_DATA_DIR, tmp_path), "--data.download", "false"])
    metrics = json.loads((tmp_path / "version_0" / "metrics.json").read_text())
    assert sum(row["support"] for row in metrics["per_class"].values()) == 10_000
    assert metrics["test"]["accuracy"] > 0.7  # 150 batches are enough to be far above chance (0.1)


@pytest.mark.skipif(not (SST2 / "train.tsv").exists(), reason=f"no SST-2 in {SST2}")
def test_sst2_short_epoch(tmp_path):
    sst2_main(short_epoch(REAL_DATA_DIR, tmp_path))
    metrics = json.loads((tmp_path / "version_0" / "metrics.json").read_text())
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert (tn + fp, fn + tp) == (428, 444)  # GLUE validation: 428 negative, 444 positive
    assert metrics["test"]["accuracy"] > 0.6


def same_figures(first: dict, second: dict) -> None:
    """Two metrics.json alike but for the classes' names (a folder names a class by its sub-folder)."""
    assert list(first.pop("per_class").values()) == list(second.pop("per_class").values())
    assert first == second


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(), reason=f"no Fashion-MNIST in {FASHION}")
def test_fashion_mnist_as_png_files_trains_as_its_idx_files_do(tmp_path):
    """A slice of the genuine data written both ways (IDX files; PNG files, class folders 0-9, files named by
    their index so that the folder's order is the IDX files' order): one epoch, seed for seed, the same figures."""
    from PIL import Image

    from fashion_cnn.data import FILES, load_split, locate
    from tests.conftest import write_idx

    root = locate(REAL_DATA_DIR, download=False)
    for split, n in (("train", 2000), ("test", 500)):
        images, labels = load_split(root, train=split == "train")
        pixels = images[:n, 0].mul(255).round().to(torch.uint8)
        write_idx(tmp_path / "idx" / "FashionMNIST" / "raw" / FILES[split][0], pixels)
        write_idx(tmp_path / "idx" / "FashionMNIST" / "raw" / FILES[split][1], labels[:n].to(torch.uint8))
        for i, (image, label) in enumerate(zip(pixels.numpy(), labels[:n].tolist())):
            folder = tmp_path / "png" / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}.png")
    narrow = ["--model.channels", "[8, 16]", "--trainer.accelerator", "cpu", "--data.download", "false"]
    fashion_main(tiny_run("fashion_cnn", tmp_path / "idx", tmp_path / "from_idx", *narrow))
    # Validating on the test split as the reference does, not on a share of the folder's training images.
    folder = ["--data.image_folder", str(tmp_path / "png"), "--data.val_fraction", "0"]
    fashion_main(tiny_run("fashion_cnn", tmp_path / "none", tmp_path / "from_png", *narrow, *folder))
    from_idx, from_png = (
        json.loads((tmp_path / run / "version_0" / "metrics.json").read_text()) for run in ("from_idx", "from_png")
    )
    assert sum(map(sum, from_idx["confusion_matrix"])) == 500
    same_figures(from_idx, from_png)


@pytest.mark.skipif(not (SST2 / "train.tsv").exists(), reason=f"no SST-2 in {SST2}")
def test_sst2_as_a_csv_with_named_labels_trains_as_its_tsv_files_do(tmp_path):
    """GLUE's rows (the first 3,000 of train.tsv, all of dev.tsv) as GLUE TSV files, and as CSV files whose labels
    are the class names: one epoch of a small BiLSTM, the same figures."""
    import csv

    from sst2_bilstm.data import CLASS_NAMES, load_tsv

    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    for name, n in (("train", 3000), ("dev", None)):
        lines = (SST2 / f"{name}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        (tmp_path / "glue" / "SST-2" / f"{name}.tsv").write_text("".join(lines[: n and n + 1]), encoding="utf-8")
        sentences, labels = load_tsv(tmp_path / "glue" / "SST-2" / f"{name}.tsv")
        with (tmp_path / f"{name}.csv").open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["sentence", "label"])
            writer.writerows((s, CLASS_NAMES[int(label)]) for s, label in zip(sentences, labels.tolist()))
    small = ["--trainer.accelerator", "cpu", "--data.batch_size", "64"]
    sst2_main(tiny_run("sst2_bilstm", tmp_path / "glue", tmp_path / "from_tsv", *small))
    files = ["--data.train_file", str(tmp_path / "train.csv"), "--data.test_file", str(tmp_path / "dev.csv")]
    sst2_main(tiny_run("sst2_bilstm", tmp_path / "none", tmp_path / "from_csv", *small, *files))
    from_tsv, from_csv = (
        json.loads((tmp_path / run / "version_0" / "metrics.json").read_text()) for run in ("from_tsv", "from_csv")
    )
    assert sum(map(sum, from_tsv["confusion_matrix"])) == 872
    same_figures(from_tsv, from_csv)
