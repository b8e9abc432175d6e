"""The speed-run configs (docs/results.md, "The speed runs"), each a few steps on tiny data on top of its
workflow's reference config."""

import json

import yaml

import fashion_cnn.train
import sst2_bilstm.train
from tests.conftest import REPO


def fit_fast(main, config: str, data: list[str], root) -> tuple[dict, dict]:
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", "--config", str(REPO / "configs" / config), *data, "--trainer.default_root_dir", str(root), *quiet])
    config = yaml.safe_load((root / "version_0" / "config.yaml").read_text())
    return config, json.loads((root / "version_0" / "metrics.json").read_text())


def lrs(metrics: dict) -> list[float]:
    return [epoch["lr"] for epoch in metrics["history"]]


def test_the_fashion_speed_run_trains_without_validating_and_tests(fashion_dir, tmp_path):
    data = ["--data.data_dir", str(fashion_dir), "--data.download", "false", "--data.batch_size", "16"]
    config, metrics = fit_fast(fashion_cnn.train.main, "fashion_cnn_fast.yaml", data, tmp_path)
    assert config["model"]["channels"] == [16, 64] and config["model"]["eps"] == 1e-7  # the rest from the reference
    # Three epochs, none validated: the test split is only for the final figure.
    assert len(metrics["history"]) == 3 and all("val_acc" not in epoch for epoch in metrics["history"])
    assert sum(map(sum, metrics["confusion_matrix"])) == 32 and metrics["checkpoint"].endswith("epoch=2-step=12.ckpt")
    first, second, third = lrs(metrics)
    assert first > second > third and max(lrs(metrics)) <= config["model"]["lr"]  # one cycle: rises then decays


def test_the_sst2_speed_run_validates_on_training_sentences_and_tests_the_best_epoch(sst2_dir, tmp_path):
    data = ["--data.data_dir", str(sst2_dir), "--data.batch_size", "8"]
    config, metrics = fit_fast(sst2_bilstm.train.main, "sst2_bilstm_fast.yaml", data, tmp_path)
    assert (
        config["model"]["one_cycle"]
        and config["model"]["pooling"] == "mean_max"
        and config["data"]["val_fraction"] == 0.05
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
