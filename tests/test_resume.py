"""Interrupted runs resume to the same figures, and one seed always gives one metrics.json."""

import json
import signal
import subprocess
import sys
import time

from fashion_cnn.train import main
from tests.conftest import REPO, write_fashion_mnist


def fit_args(data_dir, root, *extra):
    return [
        "fit", "--data.data_dir", str(data_dir), "--data.download", "false", "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", "false", *extra,
    ]  # fmt: skip


def metrics(root, version=0):
    return json.loads((root / f"version_{version}" / "metrics.json").read_text())


def test_the_same_seed_gives_the_same_metrics(fashion_dir, tmp_path):
    main(fit_args(fashion_dir, tmp_path / "first", "--trainer.max_epochs", "2"))
    main(fit_args(fashion_dir, tmp_path / "second", "--trainer.max_epochs", "2"))
    main(fit_args(fashion_dir, tmp_path / "other", "--trainer.max_epochs", "2", "--seed_everything", "7"))
    first, second, other = metrics(tmp_path / "first"), metrics(tmp_path / "second"), metrics(tmp_path / "other")
    assert first == second and first["seed"] == 42
    assert other["seed"] == 7 and other["history"] != first["history"]


def test_a_killed_run_resumes_in_its_folder_to_the_same_metrics(tmp_path):
    data_dir = write_fashion_mnist(tmp_path / "data", n_train=3000, n_test=64)  # ~94 batches an epoch
    main(fit_args(data_dir, tmp_path / "straight", "--trainer.max_epochs", "4"))

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "fashion_cnn.train", *fit_args(data_dir, killed, "--trainer.max_epochs", "4")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists():  # written at the end of the first epoch
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.01)
    time.sleep(0.2)  # well into the second epoch
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (killed / "version_0" / "metrics.json").exists()

    main(fit_args(data_dir, killed, "--trainer.max_epochs", "4", "--ckpt_path", "last"))
    assert not (killed / "version_1").exists()  # continued in its own folder
    assert metrics(killed) == metrics(tmp_path / "straight")
    assert [e["epoch"] for e in metrics(killed)["history"]] == [1, 2, 3, 4]
