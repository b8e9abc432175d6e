"""Interrupted runs resume to the same figures, and one seed always gives one metrics.json."""

import json
import logging
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from fashion_cnn.data import FashionMNISTDataModule
from fashion_cnn.train import main
from sst2_bilstm.train import main as sst2_main
from tests.conftest import REPO, STALLED, tiny_run, write_fashion_mnist

# On the CPU, where the same seed gives the same figures; a GPU needs deterministic kernels for that.
ON_CPU = ["--trainer.accelerator", "cpu"]


def batches_per_epoch(data_dir):
    """Training batches an epoch of the reference config takes on ``data_dir``."""
    data = FashionMNISTDataModule(data_dir=str(data_dir), download=False)
    data.setup("fit")
    return len(data.train_dataloader())


def metrics(root, version=0):
    return json.loads((root / f"version_{version}" / "metrics.json").read_text())


def test_the_same_seed_gives_the_same_metrics(fashion_dir, tmp_path):
    main(tiny_run("fashion_cnn", fashion_dir, tmp_path / "first", *ON_CPU, "--trainer.max_epochs", "2"))
    main(tiny_run("fashion_cnn", fashion_dir, tmp_path / "second", *ON_CPU, "--trainer.max_epochs", "2"))
    main(
        tiny_run(
            "fashion_cnn",
            fashion_dir,
            tmp_path / "other",
            *ON_CPU,
            "--trainer.max_epochs",
            "2",
            "--seed_everything",
            "7",
        )
    )
    first, second, other = metrics(tmp_path / "first"), metrics(tmp_path / "second"), metrics(tmp_path / "other")
    assert first == second and first["seed"] == 42
    assert other["seed"] == 7 and other["history"] != first["history"]


def test_a_killed_run_resumes_in_its_folder_to_the_same_metrics(tmp_path):
    data_dir = write_fashion_mnist(tmp_path / "data", n_train=320, n_test=64)  # 10 batches an epoch
    narrow = [*ON_CPU, "--model.channels", "[4, 8]", "--model.dense_size", "16", "--trainer.max_epochs", "4"]
    main(tiny_run("fashion_cnn", data_dir, tmp_path / "straight", *narrow))

    killed, marker = tmp_path / "killed", tmp_path / "paused"
    pause = {"class_path": "tests.callbacks.PauseAtStep", "init_args": {"step": 15, "marker": str(marker)}}
    args = tiny_run("fashion_cnn", data_dir, killed, *narrow, f"--trainer.callbacks+={json.dumps(pause)}")
    process = subprocess.Popen(
        [sys.executable, "-m", "fashion_cnn.train", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not marker.exists() or not marker.read_text():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before step 15"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    # Killed in the middle of the second epoch, after the first epoch's checkpoint.
    epoch, batch_idx = map(int, marker.read_text().split())
    assert epoch == 1 and 0 < batch_idx < batches_per_epoch(data_dir) - 1
    checkpoints = sorted(p.name for p in (killed / "version_0" / "checkpoints").iterdir())
    assert checkpoints == ["epoch=0-step=10.ckpt", "last.ckpt"]
    assert not (killed / "version_0" / "metrics.json").exists()

    # The run's own config.yaml brings its callbacks back, the pause included: it has paused once already.
    main(tiny_run("fashion_cnn", data_dir, killed, *narrow, "--ckpt_path", "last"))
    assert not (killed / "version_1").exists()  # continued in its own folder
    assert metrics(killed) == metrics(tmp_path / "straight")
    assert [e["epoch"] for e in metrics(killed)["history"]] == [1, 2, 3, 4]


def test_resuming_keeps_the_runs_own_settings(fashion_dir, tmp_path, capsys, caplog):
    root = tmp_path / "runs"
    main(tiny_run("fashion_cnn", fashion_dir, root, *ON_CPU, "--data.batch_size", "16", "--model.dropout", "0.3"))
    run = root / "version_0"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    # A flag that would change the computation is refused, and the run is left as it was.
    with pytest.raises(SystemExit) as exit_info:
        main(
            tiny_run(
                "fashion_cnn",
                fashion_dir,
                root,
                *ON_CPU,
                "--trainer.max_epochs",
                "2",
                "--data.batch_size",
                "64",
                "--ckpt_path",
                "last",
            )
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "data.batch_size: 16 in the run, 64 given" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    # Without flags, the run goes on with its own batch size and dropout, not today's defaults; a longer
    # max_epochs is allowed, said, and recorded in the run's config.yaml.
    with caplog.at_level(logging.INFO):
        main(tiny_run("fashion_cnn", fashion_dir, root, *ON_CPU, "--trainer.max_epochs", "2", "--ckpt_path", "last"))
    assert f"Resuming {run}: trainer.max_epochs 1 -> 2" in caplog.text
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["init_args"]["batch_size"] == 16 and config["model"]["dropout"] == 0.3
    assert config["trainer"]["max_epochs"] == 2
    assert (run / "checkpoints" / "epoch=1-step=8.ckpt").is_file()  # 64 images in batches of 16: 4 steps an epoch
    assert [e["epoch"] for e in metrics(root)["history"]] == [1, 2]


def test_a_run_without_its_config_resumes_in_its_own_folder(fashion_dir, tmp_path):
    root = tmp_path / "runs"
    main(tiny_run("fashion_cnn", fashion_dir, root, *ON_CPU))
    (root / "version_0" / "config.yaml").unlink()  # e.g. a run copied without it
    main(tiny_run("fashion_cnn", fashion_dir, root, *ON_CPU, "--trainer.max_epochs", "2", "--ckpt_path", "last"))
    assert [p.name for p in root.iterdir()] == ["version_0"]
    assert [e["epoch"] for e in metrics(root)["history"]] == [1, 2]


def test_a_one_cycle_run_cannot_be_resumed_for_longer(fashion_dir, tmp_path, capsys):
    plus = REPO / "configs" / "fashion_cnn_plus.yaml"
    main(tiny_run("fashion_cnn", fashion_dir, tmp_path, *ON_CPU, config=plus))
    with pytest.raises(SystemExit) as exit_info:
        main(
            tiny_run(
                "fashion_cnn",
                fashion_dir,
                tmp_path,
                *ON_CPU,
                "--trainer.max_epochs",
                "2",
                "--ckpt_path",
                "last",
                config=plus,
            )
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "one-cycle schedule was fixed at 1 steps" in err and "Traceback" not in err
    assert [e["epoch"] for e in metrics(tmp_path)["history"]] == [1]


def test_a_resumed_run_keeps_the_plateau_schedule(sst2_dir, tmp_path):
    # A rate too small to improve val_loss: the plateau schedule halves it after every epoch from the second on.
    slow = [*STALLED, *ON_CPU]

    def fit(root, epochs, *extra):
        sst2_main(tiny_run("sst2_bilstm", sst2_dir, root, *slow, "--trainer.max_epochs", str(epochs), *extra))

    fit(tmp_path / "straight", 4)
    fit(tmp_path / "resumed", 2)
    fit(tmp_path / "resumed", 4, "--ckpt_path", "last")
    straight, resumed = metrics(tmp_path / "straight"), metrics(tmp_path / "resumed")
    assert [e["lr"] for e in straight["history"]] == [1e-12, 1e-12, 5e-13, 2.5e-13]
    assert resumed["history"] == straight["history"] and resumed["test"] == straight["test"]


def test_loading_a_model_leaves_the_callers_random_state_alone(tiny_fashion, tiny_sst2):
    """A checkpoint saves the random state for resuming; loading it any other way must not restore it over the
    caller's seed."""
    from fashion_cnn import predict as fashion_predict
    from fashion_cnn.model import FashionCNN
    from sst2_bilstm import predict as sst2_predict
    from sst2_bilstm.model import SST2BiLSTM

    fashion, sst2 = tiny_fashion[1], tiny_sst2[1]
    assert "torch_rng_state" in torch.load(fashion, weights_only=True)  # there is a state to restore
    loads = {
        "FashionCNN.load_from_checkpoint": lambda: FashionCNN.load_from_checkpoint(fashion),
        "SST2BiLSTM.load_from_checkpoint": lambda: SST2BiLSTM.load_from_checkpoint(sst2),
        "fashion_cnn.predict.load": lambda: fashion_predict.load(fashion),
        "sst2_bilstm.predict.load": lambda: sst2_predict.load(sst2, sst2),
    }
    torch.manual_seed(7)
    expected = torch.rand(4)
    for way, load in loads.items():
        torch.manual_seed(7)
        load()
        assert torch.equal(torch.rand(4), expected), way


@pytest.mark.parametrize("stage", ["validate", "test", "predict"])
def test_evaluating_a_checkpoint_leaves_the_callers_random_state_alone(stage, tiny_fashion):
    """Only a Trainer resuming a fit takes the checkpoint's random state (ClassifierModule.on_load_checkpoint):
    a Trainer evaluating through ckpt_path loads the checkpoint into the model it is given, where no fork of the
    generator protects the caller's. Each DataLoader iterator draws its base seed from that generator, so the
    caller's state after the run is compared with a run of the same weights without ckpt_path."""
    import lightning as L

    from fashion_cnn.model import FashionCNN

    data_dir, checkpoint = tiny_fashion
    model = FashionCNN.load_from_checkpoint(checkpoint)  # the checkpoint's weights, loaded already

    def state_after(**ckpt_path) -> torch.Tensor:
        data = FashionMNISTDataModule(data_dir=str(data_dir), download=False)
        quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
        trainer = L.Trainer(accelerator="cpu", devices=1, enable_checkpointing=False, **quiet)
        torch.manual_seed(7)
        getattr(trainer, stage)(model, datamodule=data, **ckpt_path)
        return torch.get_rng_state()

    torch.manual_seed(7)
    assert not torch.equal(torch.load(checkpoint, weights_only=True)["torch_rng_state"], torch.get_rng_state())
    assert torch.equal(state_after(ckpt_path=str(checkpoint)), state_after())
