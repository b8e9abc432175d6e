"""Each bad input gets one clear message, exit status 2, no traceback, and leaves an earlier run untouched."""

import hashlib
import shutil

import pytest
import torch

from common.texts import OFFLINE_VARIABLES, PROXY_VARIABLES
from fashion_cnn.train import main as fashion_main
from sst2_bilstm.train import main as sst2_main
from tests.conftest import tiny_run, write_fashion_mnist, write_idx, write_sst2


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """Good data, and one finished run of each workflow under runs/<workflow>/version_0."""
    root = tmp_path_factory.mktemp("earlier")
    fashion, sst2 = write_fashion_mnist(root / "fashion"), write_sst2(root / "sst2")
    fashion_main(tiny_run("fashion_cnn", fashion, root / "runs" / "fashion"))
    sst2_main(tiny_run("sst2_bilstm", sst2, root / "runs" / "sst2"))
    return root


def snapshot(folder):
    """Every file under ``folder`` and its content: a failed run neither changes nor adds anything."""
    return {p.relative_to(folder): hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def raw(data):
    return data / "FashionMNIST" / "raw"


def gzip_instead(data):  # replace the plain files by gzipped ones, one of which is not gzip at all
    shutil.rmtree(data)
    write_fashion_mnist(data, compress=True)
    (raw(data) / "train-labels-idx1-ubyte.gz").write_bytes(b"plain text, not gzip")


FASHION_CASES = {
    "truncated IDX": (
        lambda d: (raw(d) / "t10k-images-idx3-ubyte").write_bytes(
            (raw(d) / "t10k-images-idx3-ubyte").read_bytes()[:5000]
        ),
        [],
        "t10k-images-idx3-ubyte is truncated",
    ),
    "wrongly sized IDX": (
        lambda d: write_idx(raw(d) / "train-images-idx3-ubyte", torch.zeros(64, 32, 32, dtype=torch.uint8)),
        [],
        "holds data of shape (64, 32, 32), expected ('N', 28, 28)",
    ),
    "header not IDX": (
        lambda d: (raw(d) / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04" + bytes(100)),
        [],
        "train-labels-idx1-ubyte is not an IDX file",
    ),
    ".gz not gzip": (gzip_instead, [], "train-labels-idx1-ubyte.gz is not a readable gzip file"),
    "unknown config key": (None, ["--model.learning_rate", "0.1"], "learning_rate"),
    "wrong type": (None, ["--data.batch_size", "abc"], "Expected a <class 'int'>. Got value: abc"),
    "other model's checkpoint": (None, ["--ckpt_path", "SST2_CKPT"], "was not saved by a FashionCNN"),
    "batch of 0": (None, ["--data.batch_size", "0"], "batch_size must be at least 1, not 0."),
    "negative epochs": (None, ["--trainer.max_epochs", "-3"], "`max_epochs` must be a non-negative integer or -1"),
    "dropout of 1": (None, ["--model.dropout", "1"], "dropout must be in [0, 1), not 1.0."),
    "best outside fit": (None, ["--ckpt_path", "best"], "give the file instead"),
}
SST2_CASES = {
    "no label column": (
        lambda d: (d / "SST-2" / "train.tsv").write_text("sentence\tscore\nfine\t1\n"),
        "starts with 'sentence\\tscore'",
    ),
    "label not 0/1": (
        lambda d: (d / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nfine\t1\nbad\t-1\n"),
        "dev.tsv, line 3: label '-1'",
    ),
    "empty TSV": (lambda d: (d / "SST-2" / "dev.tsv").write_text(""), "dev.tsv is empty"),
    "non-UTF-8 text": (
        lambda d: (d / "SST-2" / "train.tsv").write_bytes(b"sentence\tlabel\nd\xe9j\xe0 vu\t1\n"),
        "train.tsv is not UTF-8 text",
    ),
    "other model's checkpoint": (None, "was not saved by a SST2BiLSTM"),
    "vocabulary size given": (
        ["--model.vocab_size", "5"],
        'Linked "model.vocab_size" must be given via "data"',
    ),
    "validation fraction of 1": (["--data.val_fraction", "1"], "val_fraction must be between 0 and 1, not 1.0."),
}


def run(main, args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", FASHION_CASES)
def test_fashion_bad_input(case, earlier, tmp_path, capsys):
    damage, extra, message = FASHION_CASES[case]
    data = write_fashion_mnist(tmp_path / "data")
    if damage:
        damage(data)
    extra = [str(earlier / "runs/sst2/version_0/checkpoints/last.ckpt") if a == "SST2_CKPT" else a for a in extra]
    before = snapshot(earlier / "runs")
    status, err = run(fashion_main, tiny_run("fashion_cnn", data, earlier / "runs" / "fashion", *extra), capsys)
    assert status == 2 and message in err and "Traceback" not in err and err.count("error:") == 1
    assert snapshot(earlier / "runs") == before  # nothing earlier changed, no folder left behind


@pytest.mark.parametrize("case", SST2_CASES)
def test_sst2_bad_input(case, earlier, tmp_path, capsys):
    damage, message = SST2_CASES[case]
    data = write_sst2(tmp_path / "data")
    extra = damage if isinstance(damage, list) else []
    if damage is None:
        extra = ["--ckpt_path", str(earlier / "runs/fashion/version_0/checkpoints/last.ckpt")]
    elif callable(damage):
        damage(data)
    before = snapshot(earlier / "runs")
    status, err = run(sst2_main, tiny_run("sst2_bilstm", data, earlier / "runs" / "sst2", *extra), capsys)
    assert status == 2 and message in err and "Traceback" not in err and err.count("error:") == 1
    assert snapshot(earlier / "runs") == before


def test_missing_data_leaves_no_folder_behind(tmp_path, capsys, monkeypatch):
    sst2 = write_sst2(tmp_path / "data")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no hub either, wherever the suite runs
    for name in PROXY_VARIABLES + OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    cases = [
        (sst2_main, sst2 / "SST-2", f"names the folder that holds SST-2/: {sst2}"),  # one level too deep
        (sst2_main, tmp_path / "nowhere", "the Hugging Face hub cannot be reached"),
    ]
    for main, data_dir, message in cases:
        root = tmp_path / "new" / "runs"
        status, err = run(
            main, ["fit", "--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(root)], capsys
        )
        assert status == 2 and message in err and "Traceback" not in err
        assert not (tmp_path / "new").exists()


def test_a_non_finite_loss_stops_training_naming_the_step(tmp_path, capsys):
    data = write_fashion_mnist(tmp_path / "data")
    args = tiny_run("fashion_cnn", data, tmp_path / "runs", "--trainer.max_epochs", "3", "--model.lr", "1e30")
    status, err = run(fashion_main, args, capsys)
    # Adam's first step moves every weight by ~1e30: the second step's activations overflow.
    assert status == 2 and "the training loss became nan or infinite at step 1 (epoch 1)" in err
    assert "Traceback" not in err and not (tmp_path / "runs" / "version_0" / "metrics.json").exists()


@pytest.mark.parametrize("option", [["--model.learning_rate", "0.1"], ["--data.batch_size", "abc"]])
def test_option_errors_are_a_few_lines_not_the_whole_usage(option, capsys):
    status, err = run(fashion_main, ["fit", *option], capsys)
    assert status == 2 and "usage:" not in err and len(err.strip().splitlines()) <= 3
    assert "python -m fashion_cnn.train fit --help" in err
