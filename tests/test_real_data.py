"""One short epoch of each workflow on the genuine datasets, when they are on this machine."""

import json

import pytest

from fashion_cnn.train import main as fashion_main
from sst2_bilstm.train import main as sst2_main
from tests.conftest import REAL_DATA_DIR

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
