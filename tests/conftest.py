"""Tiny real data files written by the tests, and helpers to run the CLIs on them."""

import gzip
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch

from fashion_cnn.data import FILES

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each of pytest-xdist's workers shares the CPUs with the others: one thread each, for the processes the
    # tests start too, instead of every process spinning on every core.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
# Read before the autouse fixture below hides DATA_DIR from the other tests.
REAL_DATA_DIR = Path(os.environ.get("DATA_DIR") or REPO.parent / "shared" / "datasets")


def write_idx(path: Path, data: torch.Tensor, compress: bool = False) -> Path:
    """An unsigned-byte IDX file, as the Fashion-MNIST distribution has them."""
    payload = bytes([0, 0, 8, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape) + data.numpy().tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_fashion_mnist(root: Path, n_train: int = 64, n_test: int = 32, compress: bool = False) -> Path:
    """Fashion-MNIST-shaped IDX files under root/FashionMNIST/raw; each class has its own brightness, so a
    model can learn something from them."""
    generator = torch.Generator().manual_seed(0)
    raw = root / "FashionMNIST" / "raw"
    for split, n in (("train", n_train), ("test", n_test)):
        labels = torch.arange(n, dtype=torch.uint8) % 10
        noise = torch.randint(0, 40, (n, 28, 28), generator=generator, dtype=torch.uint8)
        images = noise + (labels * 20).view(-1, 1, 1).to(torch.uint8)
        images_name, labels_name = FILES[split]
        write_idx(raw / images_name, images, compress)
        write_idx(raw / labels_name, labels, compress)
    return root


@pytest.fixture(autouse=True, scope="session")
def isolated_environment(tmp_path_factory):
    """No test (module-scoped fixtures included) reads the user's DATA_DIR, writes the user's cache, or finds
    Debian's copy of the data."""
    root = tmp_path_factory.mktemp("environment")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATA_DIR", raising=False)
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        patch.setattr("fashion_cnn.data.DEBIAN_DIR", root / "no-debian-package")
        yield


@pytest.fixture
def fashion_dir(tmp_path) -> Path:
    return write_fashion_mnist(tmp_path / "data")


POSITIVE = ["good", "great", "fine", "superb", "moving", "funny"]
NEGATIVE = ["bad", "dull", "awful", "boring", "weak", "flat"]


def write_sst2(root: Path, n_train: int = 100, n_test: int = 20, misleading_validation: bool = False) -> Path:
    """GLUE-layout SST-2 files (header sentence<TAB>label) whose labels follow the words, so models can learn.
    With ``misleading_validation``, the last 20% of train.tsv (the validation part) has every label flipped, so
    the validation loss rises as the model learns and the best epoch is not the last."""
    folder = root / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_test)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            label = i % 2
            words = (POSITIVE if label else NEGATIVE)[i % 6], "the", "film", "is", f"word{i % 7}"
            flip = misleading_validation and name == "train.tsv" and i >= 0.8 * n
            rows.append(f"{' '.join(words)} , really\t{1 - label if flip else label}")
        (folder / name).write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def sst2_dir(tmp_path) -> Path:
    return write_sst2(tmp_path / "data")


def training_batches(data) -> list:
    """A DataModule's training batches, one per optimizer step."""
    return list(data.train_dataloader())


ONE_QUIET_EPOCH = ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
TINY_SST2 = ["--model.embedding_dim", "16", "--model.hidden_sizes", "[8, 4]", "--model.dense_size", "8"]
# A rate too small to move val_loss by Keras's min_delta: every epoch after the first is a plateau, and SST-2's
# plateau schedule (patience 1) halves the rate after each of them.
STALLED = ["--model.lr", "1e-12", "--model.min_lr", "0", "--model.plateau_patience", "1"]


OTHER_SOURCES = ("--data", "--data.image_folder", "--data.train_file", "--data.hf_dataset")


def tiny_run(
    workflow: str, data_dir: Path, root: Path, *extra: str, command: str | None = "fit", config: Path | None = None
) -> list[str]:
    """The command line of a quick run of ``workflow`` on the tests' tiny data, into ``root``: one epoch, no
    progress bar, nothing downloaded, SST-2's BiLSTM small (TINY_SST2). ``config`` comes first and ``extra`` last,
    so that each overrides what stands before it, as on any LightningCLI command line. ``command=None`` leaves out
    the subcommand."""
    # data_dir and download are the reference data's options: not given where extra names another source.
    other_source = any(arg.split("=")[0] in OTHER_SOURCES for arg in extra)
    options = TINY_SST2 if workflow == "sst2_bilstm" else [] if other_source else ["--data.download", "false"]
    return [
        *([command] if command else []),
        *(["--config", str(config)] if config else []),
        *([] if other_source else ["--data.data_dir", str(data_dir)]),
        *("--trainer.default_root_dir", str(root)),
        *ONE_QUIET_EPOCH,
        *options,
        *extra,
    ]


# Trained once per test process and shared by the tests of what a trained model does outside training (export,
# serving, the page, the predictors): each reads them, or copies them to write beside them.


@pytest.fixture(scope="session")
def tiny_fashion(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny Fashion-MNIST data and the last.ckpt of one epoch on it."""
    from fashion_cnn.train import main

    root = tmp_path_factory.mktemp("tiny-fashion")
    data = write_fashion_mnist(root / "data")
    main(tiny_run("fashion_cnn", data, root / "runs"))
    return data, root / "runs" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def tiny_sst2(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny SST-2 data and the last.ckpt of one epoch of a small BiLSTM on it."""
    from sst2_bilstm.train import main

    root = tmp_path_factory.mktemp("tiny-sst2")
    data = write_sst2(root / "data")
    main(tiny_run("sst2_bilstm", data, root / "runs"))
    return data, root / "runs" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def fashion_exported(tiny_fashion, tmp_path_factory) -> Path:
    from fashion_cnn.export import main

    folder = tmp_path_factory.mktemp("fashion-export")
    main(["--ckpt", str(tiny_fashion[1]), "--output", str(folder)])
    return folder


@pytest.fixture(scope="session")
def sst2_exported(tiny_sst2, tmp_path_factory) -> Path:
    from sst2_bilstm.export import main

    folder = tmp_path_factory.mktemp("sst2-export")
    main(["--ckpt", str(tiny_sst2[1]), "--output", str(folder)])
    return folder


def copied_run(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of a shared fixture's run, to write beside: the fixture's run stays as other tests read it."""
    run = tmp_path / "runs" / "version_0"
    shutil.copytree(trained_run, run, symlinks=True)
    return run


def check_test_with_no_data_options(main, trained_run: Path, tmp_path: Path, capsys) -> None:
    """test of a run's checkpoint reads the data options from the run's config.yaml and reports beside the run's
    own report, which stays as fit wrote it; the figures are fit's test of the same checkpoint."""
    run = copied_run(trained_run, tmp_path)
    trained = json.loads((run / "metrics.json").read_text())
    main(["test", "--ckpt_path", str(run / trained["checkpoint"]), "--trainer.enable_progress_bar", "false"])
    folder = run / f"test-{Path(trained['checkpoint']).stem}"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"Report: {folder / 'report.md'}"
    tested = json.loads((folder / "metrics.json").read_text())
    assert tested["test"] == trained["test"] and tested["confusion_matrix"] == trained["confusion_matrix"]
    assert json.loads((run / "metrics.json").read_text()) == trained  # fit's report as it was
