"""A checkpoint exported to ONNX predicts as the checkpoint does, read by onnxruntime without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_cnn import predict as fashion_predict
from fashion_cnn.export import main as fashion_export
from sst2_bilstm import predict as sst2_predict
from tests.conftest import REPO

# Run in a process where ``import torch`` fails: what an export needs is onnxruntime, numpy, Pillow, tokenizers.
WITHOUT_TORCH = "import runpy, sys; sys.modules['torch'] = None; sys.argv[0] = sys.argv[1]; del sys.argv[1]; runpy.run_module(sys.argv[0], run_name='__main__')"


def without_torch(module, *args):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, module, *args], cwd=REPO, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def fashion(tiny_fashion, fashion_exported, tmp_path_factory):
    images = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(images / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8)).save(images / "big.png")
    return tiny_fashion[1], fashion_exported, images


@pytest.fixture(scope="module")
def sst2(tiny_sst2, sst2_exported):
    return tiny_sst2[1], sst2_exported


def test_the_fashion_export_gives_the_checkpoints_probabilities(fashion):
    ckpt, exported, _ = fashion
    images = np.random.default_rng(1).random((257, 1, 28, 28), dtype=np.float32)  # more than one chunk of 100
    torch_p = fashion_predict.load(ckpt, batch_size=100).class_probabilities(images)
    onnx_p = fashion_predict.load(exported, batch_size=100).class_probabilities(images)
    assert onnx_p.shape == (257, 10) and np.abs(onnx_p - torch_p).max() <= 1e-5
    assert (onnx_p.argmax(axis=1) == torch_p.argmax(axis=1)).all()


def test_the_fashion_export_predicts_files_without_torch(fashion, tmp_path):
    ckpt, exported, images = fashion
    files = [str(images / f"{i}.png") for i in range(6)] + [str(images / "big.png")]
    result = without_torch(
        "fashion_cnn.predict", "--model", str(exported), *files, "--resize", "--output", str(tmp_path / "onnx.json")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    fashion_predict.main(["--ckpt", str(ckpt), *files, "--resize", "--output", str(tmp_path / "torch.json")])
    onnx_rows, torch_rows = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("onnx", "torch"))
    assert [(r["file"], r["label"], r["note"]) for r in onnx_rows] == [
        (r["file"], r["label"], r["note"]) for r in torch_rows
    ]
    assert onnx_rows[-1]["note"] == "resized from 30x40"  # width x height
    for a, b in zip(onnx_rows, torch_rows):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


def test_the_sst2_export_reads_sentences_as_the_checkpoint_does_without_torch(sst2, tmp_path):
    ckpt, exported = sst2
    assert (exported / "tokenizer.json").is_file()
    sentences = ["good the film is , really", "", "zzzz qqqq", "bad the film is", " ".join(["good film"] * 40)]
    (tmp_path / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8-sig")
    args = ["--file", str(tmp_path / "sentences.txt"), "--output"]
    result = without_torch("sst2_bilstm.predict", "--model", str(exported), *args, str(tmp_path / "onnx.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    sst2_predict.main(["--ckpt", str(ckpt), *args, str(tmp_path / "torch.json")])
    onnx_rows, torch_rows = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("onnx", "torch"))
    keys = ("sentence", "label", "note")
    assert [[r[k] for k in keys] for r in onnx_rows] == [[r[k] for k in keys] for r in torch_rows]
    assert [r["note"] for r in onnx_rows] == ["", "empty", "no known word", "", "read the first 50 of 80 words"]
    for a, b in zip(onnx_rows, torch_rows):
        assert a["probability_positive"] == pytest.approx(b["probability_positive"], abs=1e-5)


def test_exports_refuse_what_they_cannot_use(fashion, sst2, tmp_path, capsys):
    fashion_ckpt, fashion_exported, images = fashion
    sst2_ckpt, _ = sst2
    (tmp_path / "file").write_text("")
    cases = [
        (fashion_export, ["--ckpt", str(sst2_ckpt), "--output", str(tmp_path / "x")], "was not saved by a FashionCNN"),
        (fashion_export, ["--ckpt", str(fashion_ckpt), "--output", str(tmp_path / "file")], "is a file; give a folder"),
        (
            sst2_predict.main,
            ["--model", str(fashion_exported), "fine"],
            "was exported from fashion_cnn, not sst2_bilstm",
        ),
        (fashion_predict.main, ["--model", str(tmp_path), str(images / "0.png")], "model.onnx does not exist"),
    ]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("a user's file")
    (tmp_path / "corrupt.ckpt").write_bytes(b"\x00garbage" * 100)
    unwritable = [(Path("/proc/x"), "cannot be written"), (Path("/sys/kernel/x"), "cannot be written")]
    cases += [
        (fashion_export, ["--ckpt", str(fashion_ckpt), "--output", str(folder)], message)
        for folder, message in unwritable
        if folder.parent.is_dir()  # Linux's own read-only places, where the machine has them
    ]
    cases += [
        (
            fashion_export,
            ["--ckpt", str(fashion_ckpt), "--output", str(tmp_path / "notes")],
            "holds other files and no export: give a new or empty folder, or add --force",
        ),
        (fashion_export, ["--ckpt", str(tmp_path / "corrupt.ckpt"), "--output", str(tmp_path / "x")], "not a readable"),
    ]
    for main, args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists() and not Path("/proc/x").exists()
    assert [f.name for f in (tmp_path / "notes").iterdir()] == ["mine.txt"]  # nothing written, nothing lost


def test_a_failed_export_leaves_nothing_behind_and_force_writes_beside_other_files(
    fashion, tmp_path, capsys, monkeypatch
):
    fashion_ckpt, _, _ = fashion
    target = tmp_path / "new" / "deeper"

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("common.deploy.export.export_onnx", fails)
    with pytest.raises(SystemExit) as exit_info:
        fashion_export(["--ckpt", str(fashion_ckpt), "--output", str(target)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "writing the export failed (No space left on device)" in err
    assert not (tmp_path / "new").exists()  # neither the staging folder nor the folders made for it
    monkeypatch.undo()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("a user's file")
    fashion_export(["--ckpt", str(fashion_ckpt), "--output", str(tmp_path / "notes"), "--force"])
    assert sorted(f.name for f in (tmp_path / "notes").iterdir()) == ["mine.txt", "model.onnx"]


@pytest.mark.parametrize("pooling", ["last", "mean_max"])  # _packed.yaml's, and _plus.yaml and _fast.yaml's
def test_a_packed_bilstm_exports_what_it_predicts(tmp_path, pooling):
    """torch.export cannot trace packed sequences: the export writes ONNX's LSTM with its sequence lengths, which
    gives the last states (pooling "last") and the outputs (the others) of the packed LSTM."""
    import torch

    from common.checkpoints import batched_probabilities, per_class
    from common.deploy.export import export_onnx
    from common.deploy.exported import ExportedModel
    from sst2_bilstm.export import TRANSLATIONS
    from sst2_bilstm.model import SST2BiLSTM

    torch.manual_seed(0)
    model = SST2BiLSTM(vocab_size=60, embedding_dim=16, hidden_sizes=(8, 4), dense_size=8, packed=True, pooling=pooling)
    example = torch.randint(2, 10, (2, 50), generator=torch.Generator().manual_seed(0))
    export_onnx(model, example, tmp_path, {"workflow": "sst2_bilstm"}, True, TRANSLATIONS)  # classes: the model's
    lengths = torch.tensor([50, 49, 25, 2, 1, 0, *torch.randint(1, 51, (26,)).tolist()])  # 0: an empty sentence
    tokens = torch.randint(2, 60, (len(lengths), 50)) * (torch.arange(50) < lengths.unsqueeze(1))
    expected = per_class(batched_probabilities(model.eval(), tokens, 1000)).numpy()
    exported = ExportedModel(tmp_path, "sst2_bilstm").probabilities(tokens.numpy())
    assert np.abs(exported - expected).max() < 1e-5
