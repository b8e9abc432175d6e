"""The speed-run configs (docs/results.md, "The speed runs"), each a few steps on tiny data on top of its
workflow's reference config."""

import json
from pathlib import Path

import lightning as L
import pytest
import yaml

import fashion_cnn.train
import sst2_bilstm.train
from tests.conftest import REPO, write_fashion_mnist


class StepRates(L.Callback):
    """Writes to ``path`` (JSON) the learning rate of each optimizer step, as the step reads it."""

    def __init__(self, path: str) -> None:
        self.path, self.rates = Path(path), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module) -> None:
        self.path.write_text(json.dumps(self.rates))


def fit_fast(main, config: str, data: list[str], root) -> tuple[dict, dict]:
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", "--config", str(REPO / "configs" / config), *data, "--trainer.default_root_dir", str(root), *quiet])
    config = yaml.safe_load((root / "version_0" / "config.yaml").read_text())
    return config, json.loads((root / "version_0" / "metrics.json").read_text())


def lrs(metrics: dict) -> list[float]:
    return [epoch["lr"] for epoch in metrics["history"]]


def test_the_fashion_speed_run_trains_without_validating_and_tests(tmp_path):
    # 160 training images in batches of 16: 30 steps, whose warm-up (30%) ends on a step, the 9th, at the peak.
    data_dir, rates = write_fashion_mnist(tmp_path / "data", n_train=160), tmp_path / "rates.json"
    data = ["--data.data_dir", str(data_dir), "--data.download", "false", "--data.batch_size", "16"]
    record = {"class_path": "tests.test_fast_configs.StepRates", "init_args": {"path": str(rates)}}
    data.append(f"--trainer.callbacks+={json.dumps(record)}")
    config, metrics = fit_fast(fashion_cnn.train.main, "fashion_cnn_fast.yaml", data, tmp_path / "runs")
    assert config["model"]["channels"] == [16, 64] and config["model"]["eps"] == 1e-7  # the rest from the reference
    # Three epochs, none validated: the test split is only for the final figure.
    assert len(metrics["history"]) == 3 and all("val_acc" not in epoch for epoch in metrics["history"])
    assert sum(map(sum, metrics["confusion_matrix"])) == 32 and metrics["checkpoint"].endswith("epoch=2-step=30.ckpt")
    # One cycle over the whole fit: the rate rises at every step to the configured one, then decays at every step.
    steps = json.loads(rates.read_text())
    peak = steps.index(max(steps))
    assert len(steps) == 30 and steps[peak] == pytest.approx(config["model"]["lr"], rel=1e-12)
    rising, decaying = steps[: peak + 1], steps[peak:]
    assert 0 < peak < 29 and rising == sorted(set(rising)) and decaying == sorted(set(decaying), reverse=True)


def test_the_sst2_speed_run_validates_on_training_sentences_and_tests_the_best_epoch(sst2_dir, tmp_path):
    data = ["--data.data_dir", str(sst2_dir), "--data.batch_size", "8"]
    config, metrics = fit_fast(sst2_bilstm.train.main, "sst2_bilstm_fast.yaml", data, tmp_path)
    assert (
        config["model"]["one_cycle"]
        and config["model"]["pooling"] == "mean_max"
        and config["data"]["init_args"]["val_fraction"] == 0.05
    )
    assert config["model"]["embedding_dim"] == 256  # the rest from the reference
    history = metrics["history"]
    assert len(history) == 3 and all("val_loss" in epoch for epoch in history)  # 5 of the 100 training sentences
    best = min(history, key=lambda epoch: epoch["val_loss"])["epoch"]
    assert (
        metrics["checkpoint"].endswith(f"best-epoch={best - 1}.ckpt")
        and sum(map(sum, metrics["confusion_matrix"])) == 20
    )
    # The one-cycle schedule, not the plateau one, moved the rate.
    assert lrs(metrics)[0] > lrs(metrics)[1] > lrs(metrics)[2]
