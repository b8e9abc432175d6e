"""The same configs on two CPU processes (DDP, gloo): metrics reduced across processes, one report."""

import importlib
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, write_fashion_mnist, write_sst2

TINY_SST2 = ["--model.embedding_dim", "8", "--model.hidden_sizes", "[4, 4]"]
PACKED = str(REPO / "configs" / "sst2_bilstm_packed.yaml")
CASES = {  # workflow, data writer, test-set size, extra arguments
    "fashion_cnn": ("fashion_cnn", write_fashion_mnist, 32, ["--data.download", "false"]),
    "sst2_bilstm": ("sst2_bilstm", write_sst2, 20, TINY_SST2),
    "sst2_bilstm_packed": ("sst2_bilstm", write_sst2, 20, ["--config", PACKED, *TINY_SST2]),
}


@pytest.mark.parametrize("case", CASES)
def test_ddp_on_two_cpu_processes(case, tmp_path):
    workflow, write_data, n_test, extra = CASES[case]
    data_dir, root = write_data(tmp_path / "data"), tmp_path / "ddp"
    common = ["--data.data_dir", str(data_dir), "--trainer.enable_progress_bar", "false", *extra]
    command = [
        sys.executable,
        "-m",
        f"{workflow}.train",
        "fit",
        *common,
        "--trainer.default_root_dir",
        str(root),
        "--trainer.max_epochs",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Report: ") == 1 and [p.name for p in root.iterdir()] == ["version_0"]
    ddp = json.loads((root / "version_0" / "metrics.json").read_text())
    confusion = ddp["confusion_matrix"]
    assert sum(map(sum, confusion)) == n_test  # both processes' halves of the test set
    assert ddp["test"]["accuracy"] == pytest.approx(sum(row[i] for i, row in enumerate(confusion)) / n_test)

    # One process testing the same checkpoint on the same kind of device finds the same figures.
    main = importlib.import_module(f"{workflow}.train").main
    main(
        [
            "test",
            *common,
            "--trainer.default_root_dir",
            str(tmp_path / "single"),
            "--trainer.accelerator",
            "cpu",
            "--ckpt_path",
            str(root / "version_0" / "checkpoints" / "last.ckpt"),
        ]
    )
    single = json.loads((tmp_path / "single" / "version_0" / "metrics.json").read_text())
    assert single["confusion_matrix"] == confusion
    assert single["test"]["accuracy"] == pytest.approx(ddp["test"]["accuracy"])
    assert single["test"]["loss"] == pytest.approx(ddp["test"]["loss"], rel=1e-5)
    print(f"{case}: DDP test accuracy {ddp['test']['accuracy']:.4f}, loss {ddp['test']['loss']:.4f}")
