import json
import logging

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_cnn.data import CLASS_NAMES
from fashion_cnn.train import main
from tests.conftest import REPO, tiny_run

SPLIT_KEYS = {"accuracy", "loss"}
SCORE_KEYS = {"precision", "recall", "f1", "support"}


# 2 batches an epoch: the epochs end off the logging steps.
TWO_EPOCHS = ["--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "3"]


def test_fit_trains_tests_and_writes_the_whole_report(fashion_dir, tmp_path, capsys):
    main(tiny_run("fashion_cnn", fashion_dir, tmp_path / "runs", *TWO_EPOCHS))
    run = tmp_path / "runs" / "version_0"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"Report: {run / 'report.md'}"

    metrics = json.loads((run / "metrics.json").read_text())
    assert {"train", "val", "test", "per_class", "macro_avg", "weighted_avg", "confusion_matrix"} <= metrics.keys()
    for split in ("train", "val", "test"):
        assert metrics[split].keys() == SPLIT_KEYS
        assert 0 <= metrics[split]["accuracy"] <= 1 and metrics[split]["loss"] > 0
    assert list(metrics["per_class"]) == list(CLASS_NAMES)
    assert all(row.keys() == SCORE_KEYS for row in metrics["per_class"].values())
    assert metrics["macro_avg"].keys() == metrics["weighted_avg"].keys() == SCORE_KEYS
    confusion = metrics["confusion_matrix"]
    assert len(confusion) == 10 and all(len(row) == 10 for row in confusion) and sum(map(sum, confusion)) == 32
    correct = sum(confusion[i][i] for i in range(10))
    assert metrics["test"]["accuracy"] == pytest.approx(correct / 32)
    assert [e["epoch"] for e in metrics["history"]] == [1, 2]
    assert metrics["val"]["accuracy"] == metrics["history"][-1]["val_acc"]
    assert metrics["checkpoint"].endswith("epoch=1-step=4.ckpt")  # the last epoch: nothing is monitored
    assert metrics["checkpoint_epoch"] == 2

    report = (run / "report.md").read_text()
    assert "| T-shirt/top |" in report and "| weighted avg |" in report and "| **Ankle boot** |" in report
    for image in ("confusion_matrix.png", "curves.png"):
        assert (run / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    reference = {"lr": 0.001, "eps": 1e-07, "dropout": 0.5, "channels": [32, 64], "dense_size": 64}
    assert {key: config["model"][key] for key in reference} == reference
    assert (
        not config["model"]["batch_norm"]
        and not config["model"]["one_cycle"]
        and not config["data"]["init_args"]["augment"]
    )
    assert config["data"]["init_args"]["batch_size"] == 32

    events = EventAccumulator(str(run)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "train_batch_loss"} <= scalars
    assert "test_confusion_matrix" in events.Tags()["images"]
    assert [len(events.Scalars(tag)) for tag in ("train_loss", "val_acc", "train_batch_loss")] == [2, 2, 1]
    # Keras's layout beside them: train/ and validation/ runs sharing the tags epoch_loss and epoch_accuracy, so
    # TensorBoard overlays the two curves in one chart each; each point at its epoch's last step (2 an epoch).
    for folder, split in (("train", "train"), ("validation", "val")):
        curves = EventAccumulator(str(run / folder)).Reload()
        for tag, name in (("epoch_loss", "loss"), ("epoch_accuracy", "acc")):
            points = curves.Scalars(tag)
            assert [point.step for point in points] == [1, 3]
            expected = [epoch[f"{split}_{name}"] for epoch in metrics["history"]]
            assert [point.value for point in points] == pytest.approx(expected)


def test_test_subcommand_reports_a_checkpoint(fashion_dir, tmp_path, capsys):
    main(tiny_run("fashion_cnn", fashion_dir, tmp_path / "runs"))
    checkpoint = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    main(
        [
            "test",
            "--data.data_dir",
            str(fashion_dir),
            "--trainer.default_root_dir",
            str(tmp_path / "runs"),
            "--ckpt_path",
            str(checkpoint),
        ]
    )
    # Beside the run's own report (fit's), in a folder of the run named after the checkpoint.
    run = tmp_path / "runs" / "version_0"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"Report: {run / 'test-last' / 'report.md'}"
    tested, trained = (json.loads((folder / "metrics.json").read_text()) for folder in (run / "test-last", run))
    # The checkpoint carries the history of the run that saved it.
    assert tested["test"] == trained["test"] and tested["history"] == trained["history"]
    assert tested["train"] == trained["train"] and tested["checkpoint_epoch"] == 1


def test_validate_and_predict_without_ckpt_path_use_the_newest_run_and_say_so(fashion_dir, tmp_path, caplog, capsys):
    root = tmp_path / "runs"
    main(tiny_run("fashion_cnn", fashion_dir, root, *TWO_EPOCHS))
    trained = json.loads((root / "version_0" / "metrics.json").read_text())
    common = ["--data.data_dir", str(fashion_dir), "--trainer.default_root_dir", str(root)]
    with caplog.at_level(logging.INFO):
        main(["validate", *common])
    assert f"validate uses the newest run's {root / 'version_0' / 'checkpoints' / 'last.ckpt'}" in caplog.text
    # Lightning's advertisement, which every Trainer logs (tests/test_pinned.py checks that it does), filtered out.
    assert "litlogger" not in caplog.text
    events = EventAccumulator(str(root / "version_0" / "validate-last")).Reload()
    # The last epoch's weights on the same (test) split: the fit's own figures for that epoch.
    assert events.Scalars("val_acc")[0].value == pytest.approx(trained["history"][-1]["val_acc"])
    assert events.Scalars("val_loss")[0].value == pytest.approx(trained["history"][-1]["val_loss"], rel=1e-5)
    config = (root / "version_0" / "config.yaml").read_text()
    main(["predict", *common])
    # Into the checkpoint's own run, named after the checkpoint; no new run folder, the run's config kept.
    written = root / "version_0" / "predictions-last.csv"
    assert f"Predictions: {written}\n" in capsys.readouterr().out
    rows = written.read_text().splitlines()
    assert len(rows) == 1 + 32 and rows[0].startswith("index,predicted,p_T-shirt/top")
    assert sorted(p.name for p in root.iterdir()) == ["version_0"]
    assert (root / "version_0" / "config.yaml").read_text() == config


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluating_without_any_trained_weights_is_refused(subcommand, fashion_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--data.data_dir", str(fashion_dir), "--trainer.default_root_dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{subcommand} needs trained weights" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_arguments_without_subcommand_mean_fit(fashion_dir, tmp_path):
    main(tiny_run("fashion_cnn", fashion_dir, tmp_path / "runs")[1:])
    assert (tmp_path / "runs" / "version_0" / "metrics.json").is_file()


def test_print_config_shows_the_reference_settings(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["max_epochs"] == 10 and config["data"]["init_args"]["batch_size"] == 32
    assert config["model"]["lr"] == 0.001 and config["seed_everything"] == 42
    callbacks = [c["class_path"].rsplit(".", 1)[1] for c in config["trainer"]["callbacks"]]
    assert callbacks == ["ModelCheckpoint", "LearningRateMonitor", "TQDMProgressBar"]


def test_help_says_what_no_subcommand_means_and_where_the_options_are(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    help_text = capsys.readouterr().out
    top = " ".join(help_text.splitlines()[:12])
    assert "No subcommand means fit" in top and "fashion_cnn.yaml" in top and "--model.*" in top
    # The project's own options come before Lightning's Trainer's.
    options = help_text[help_text.index("options:") :]
    positions = [options.index(option) for option in ("--model.lr", "--data.help", "--trainer.accelerator")]
    assert positions == sorted(positions)
    # One DataModule per source, each source's options behind --data.help.
    assert "FashionMNISTDataModule, ImageFolderDataModule (--data.image_folder)" in " ".join(top.split())
    ckpt_help = " ".join(help_text[help_text.index("--ckpt_path CKPT_PATH") :].split()[:40])
    assert "'last': the newest run's checkpoints/last.ckpt" in ckpt_help and "settings it was started with" in ckpt_help


def test_unknown_config_key_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.learning_rate", "0.1"])
    assert exit_info.value.code != 0
    assert "learning_rate" in capsys.readouterr().err


def test_missing_data_exits_with_the_message_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data.data_dir", str(tmp_path / "empty"), "--data.download", "false"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: Fashion-MNIST not found") and "Traceback" not in err


def test_the_improved_config_runs_on_top_of_the_reference(fashion_dir, tmp_path):
    plus = REPO / "configs" / "fashion_cnn_plus.yaml"
    main(tiny_run("fashion_cnn", fashion_dir, tmp_path, *TWO_EPOCHS, "--data.batch_size", "16", config=plus))
    config = yaml.safe_load((tmp_path / "version_0" / "config.yaml").read_text())
    assert config["model"]["batch_norm"] and config["model"]["one_cycle"] and config["data"]["init_args"]["augment"]
    assert config["model"]["eps"] == 1e-7 and config["seed_everything"] == 42  # the rest from the reference
    metrics = json.loads((tmp_path / "version_0" / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and sum(map(sum, metrics["confusion_matrix"])) == 32
    first, second = (epoch["lr"] for epoch in metrics["history"])
    assert first != second and max(first, second) <= config["model"]["lr"]  # the one-cycle schedule moves


def test_bf16_mixed_precision_trains_and_tests(fashion_dir, tmp_path):
    main([*tiny_run("fashion_cnn", fashion_dir, tmp_path, *TWO_EPOCHS), "--trainer.precision", "bf16-mixed"])
    metrics = json.loads((tmp_path / "version_0" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == 32 and metrics["test"]["loss"] > 0


def test_keras_curves_skip_epochs_without_validation(fashion_dir, tmp_path):
    main(
        tiny_run(
            "fashion_cnn",
            fashion_dir,
            tmp_path / "runs",
            *TWO_EPOCHS,
            "--trainer.max_epochs",
            "3",
            "--trainer.check_val_every_n_epoch",
            "2",
        )
    )
    curves = {
        folder: EventAccumulator(str(tmp_path / "runs" / "version_0" / folder)).Reload()
        for folder in ("train", "validation")
    }
    assert [point.step for point in curves["train"].Scalars("epoch_loss")] == [1, 3, 5]
    assert [point.step for point in curves["validation"].Scalars("epoch_loss")] == [3]  # the one validated epoch
