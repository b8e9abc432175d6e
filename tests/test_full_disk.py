"""A full disk loses nothing and says so: checkpoints (Lightning's CheckpointIO plugin) and the run's own files
are written whole or not at all, and the run ends with one line, exit 2, also when it is resumed on that disk.

Where the tests may mount a filesystem (root on Linux), a real 64 MB tmpfs holds the run and a callback fills it
as the second epoch starts; elsewhere a CheckpointIO fails its write halfway with ENOSPC."""

import errno
import json
import subprocess
from pathlib import Path

import pytest
import torch

from common.files import DiskFull, write_text, written_whole
from fashion_cnn.train import main as fashion_train
from sst2_bilstm.train import main as sst2_train
from tests.conftest import tiny_run, write_fashion_mnist, write_sst2


@pytest.fixture
def small_disk(tmp_path):
    """A mounted 64 MB tmpfs, or None where this machine does not let the tests mount one."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


WORKFLOWS = {"fashion_cnn": (fashion_train, write_fashion_mnist), "sst2_bilstm": (sst2_train, write_sst2)}


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_a_full_disk_ends_the_run_in_one_line_and_keeps_the_last_whole_checkpoint(
    workflow, small_disk, tmp_path, capsys
):
    train, write_data = WORKFLOWS[workflow]
    root = (small_disk or tmp_path) / "runs"
    ballast = (small_disk or tmp_path) / "ballast"
    args = tiny_run(
        workflow, write_data(tmp_path / "data"), root, "--data.batch_size", "16", "--trainer.max_epochs", "3"
    )
    fault = ["--trainer.callbacks+=tests.callbacks.FillDiskAtEpoch", "--trainer.callbacks.epoch=1"]
    fault += [f"--trainer.callbacks.ballast={ballast}", f"--trainer.callbacks.fill={small_disk is not None}"]
    if not small_disk:
        plugin = {"class_path": "tests.callbacks.FullDiskCheckpointIO", "init_args": {"ballast": str(ballast)}}
        fault += ["--trainer.plugins", json.dumps([plugin])]
    with pytest.raises(SystemExit) as exit_info:
        train([*args, *fault])
    err = capsys.readouterr().err
    checkpoints = root / "version_0" / "checkpoints"
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: no space left in {checkpoints}: ")
    assert not list(root.rglob("*.partial"))
    for path in checkpoints.glob("*.ckpt"):  # whole: each loads, and they are the first epoch's
        assert torch.load(path, weights_only=True)["epoch"] == 0
    last = checkpoints / "last.ckpt"
    assert last.resolve().is_file() and torch.load(last, weights_only=True)["epoch"] == 0

    # Resumed on the same full disk (the run's config.yaml brings its plugins and callbacks): the same one line.
    with pytest.raises(SystemExit) as exit_info:
        train([*args, "--ckpt_path", str(last)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: no space left in {checkpoints}: ")
    assert torch.load(last, weights_only=True)["epoch"] == 0 and not list(root.rglob("*.partial"))


def test_a_file_is_written_whole_or_left_as_it_was(tmp_path):
    """The report, metrics.json, the curves and tokenizer.json are written this way."""
    path = tmp_path / "metrics.json"
    write_text(path, "the old figures")
    message = rf"no space left in {tmp_path}: metrics.json could not be written \(2,000 "
    with pytest.raises(DiskFull, match=message), written_whole(path, size=2_000) as file:
        file.write("the new fig")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(KeyboardInterrupt), written_whole(path) as file:
        file.write("the new fig")
        raise KeyboardInterrupt
    assert path.read_text() == "the old figures" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    write_text(path, "the new figures")
    assert path.read_text() == "the new figures" and Path(path).stat().st_size == 15
