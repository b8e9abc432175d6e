"""Every Trainer flag and callback means here what Lightning's documentation says, on both workflows, from the
command line and from Python (``lightning.Trainer`` with the project's LightningModule and DataModule)."""

import json
import math

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, StochasticWeightAveraging
from lightning.pytorch.callbacks.weight_averaging import EMAWeightAveraging
from lightning.pytorch.tuner import Tuner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_cnn.data import FashionMNISTDataModule
from fashion_cnn.model import FashionCNN
from fashion_cnn.train import main as fashion_main
from sst2_bilstm.data import SST2DataModule
from sst2_bilstm.model import SST2BiLSTM
from sst2_bilstm.train import main as sst2_main
from tests.conftest import STALLED, tiny_run, write_fashion_mnist, write_sst2

WORKFLOWS = ("fashion_cnn", "sst2_bilstm")
# 64 training images or 80 training sentences, in batches of 8: 8 and 10 batches an epoch.
BATCHES = {"fashion_cnn": 8, "sst2_bilstm": 10}


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"fashion_cnn": write_fashion_mnist(root / "fashion"), "sst2_bilstm": write_sst2(root / "sst2")}


def build(workflow, data_dir, **model_options):
    """A tiny model and its DataModule, as a Python user builds them."""
    if workflow == "fashion_cnn":
        model = FashionCNN(channels=(4, 8), dense_size=8, **model_options)
        return model, FashionMNISTDataModule(str(data_dir), batch_size=8, download=False)
    model = SST2BiLSTM(vocab_size=50, embedding_dim=8, hidden_sizes=(4, 4), dense_size=4, **model_options)
    return model, SST2DataModule(str(data_dir), batch_size=8, num_words=50, max_length=12)


def trainer(tmp_path, **flags):
    settings = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
    }
    return L.Trainer(**settings | flags)


def cli(workflow, data_dir, root, *extra):
    """A command-line fit of a tiny model; returns the run folder."""
    main = fashion_main if workflow == "fashion_cnn" else sst2_main
    # Narrower than tiny_run's: this file trains many times.
    narrow = {
        "fashion_cnn": ["--model.channels", "[4, 8]", "--model.dense_size", "8"],
        "sst2_bilstm": ["--model.hidden_sizes", "[4, 4]", "--data.num_words", "50", "--data.max_length", "12"],
    }[workflow]
    main(tiny_run(workflow, data_dir, root, "--data.batch_size", "8", "--trainer.accelerator", "cpu", *narrow, *extra))
    return root / "version_0"


def metrics(run):
    return json.loads((run / "metrics.json").read_text())


def callback(class_path, **init_args):
    return f"--trainer.callbacks+={json.dumps({'class_path': class_path, 'init_args': init_args})}"


@pytest.mark.parametrize("workflow", WORKFLOWS)
@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping(workflow, algorithm, data_dirs, tmp_path):
    # From Python, by norm or by value; the same from the command line, where the recorder is a callback too.
    recorded = tmp_path / "gradients.json"
    model, data = build(workflow, data_dirs[workflow])
    from tests.callbacks import GradientRecorder

    trainer(
        tmp_path, gradient_clip_val=1e-3, gradient_clip_algorithm=algorithm, callbacks=[GradientRecorder(str(recorded))]
    ).fit(model, data)
    python = json.loads(recorded.read_text())
    cli(
        workflow,
        data_dirs[workflow],
        tmp_path / "runs",
        "--trainer.gradient_clip_val",
        "0.001",
        "--trainer.gradient_clip_algorithm",
        algorithm,
        callback("tests.callbacks.GradientRecorder", path=str(tmp_path / "cli.json")),
    )
    command_line = json.loads((tmp_path / "cli.json").read_text())
    for gradients in (python, command_line):
        assert len(gradients["norms"]) == BATCHES[workflow]
        measured = gradients["norms"] if algorithm == "norm" else gradients["largest"]
        assert max(measured) <= 1e-3 * (1 + 1e-4)
    # Unclipped, the same gradients are far larger: the bound above is the clipping's doing.
    model, data = build(workflow, data_dirs[workflow])
    trainer(tmp_path, callbacks=[GradientRecorder(str(recorded))]).fit(model, data)
    assert min(json.loads(recorded.read_text())["largest"]) > 1e-2


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_accumulate_grad_batches_steps_once_per_n_batches(workflow, data_dirs, tmp_path):
    model, data = build(workflow, data_dirs[workflow])
    fit = trainer(tmp_path, accumulate_grad_batches=2, max_epochs=2)
    fit.fit(model, data)
    assert fit.global_step == 2 * BATCHES[workflow] // 2
    run = cli(workflow, data_dirs[workflow], tmp_path / "runs", "--trainer.accumulate_grad_batches", "2")
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == BATCHES[workflow] // 2


@pytest.mark.parametrize("workflow", WORKFLOWS)
@pytest.mark.parametrize("fast_dev_run", [True, 3])
def test_fast_dev_run(workflow, fast_dev_run, data_dirs, tmp_path, capsys):
    model, data = build(workflow, data_dirs[workflow])
    fit = trainer(tmp_path, fast_dev_run=fast_dev_run, max_epochs=5)
    fit.fit(model, data)
    assert fit.global_step == int(fast_dev_run) and fit.current_epoch == 1
    assert not list(tmp_path.iterdir())  # no tokenizer.json, no checkpoint, no log
    # The command line runs fit and test for that many batches and, as fast_dev_run means, writes nothing.
    root = tmp_path / "runs"
    cli(workflow, data_dirs[workflow], root, "--trainer.fast_dev_run", str(fast_dev_run).lower())
    assert not root.exists() or not any(path.is_file() for path in root.rglob("*"))
    assert "Report:" not in capsys.readouterr().out


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_limit_train_batches_counts_optimizer_steps_and_val_check_interval_works(workflow, data_dirs, tmp_path):
    model, data = build(workflow, data_dirs[workflow])
    fit = trainer(tmp_path, limit_train_batches=3, max_epochs=2)
    fit.fit(model, data)
    assert fit.global_step == 6
    run = cli(
        workflow,
        data_dirs[workflow],
        tmp_path / "runs",
        "--trainer.limit_train_batches",
        "4",
        "--trainer.val_check_interval",
        "0.5",
        "--trainer.log_every_n_steps",
        "1",
    )
    events = EventAccumulator(str(run)).Reload()
    assert [e.step for e in events.Scalars("train_batch_loss")] == [0, 1, 2, 3]
    # Validation twice in the epoch of 4 batches: after the second and the fourth.
    assert [e.step for e in events.Scalars("val_loss")] == [1, 3]


def test_check_val_every_n_epoch_leaves_the_other_epochs_without_validation(data_dirs, tmp_path):
    # A rate too small to move val_loss: a plateau schedule acting on a stale val_loss would halve it at epoch 3.
    run = cli(
        "sst2_bilstm",
        data_dirs["sst2_bilstm"],
        tmp_path / "runs",
        "--trainer.check_val_every_n_epoch",
        "2",
        "--trainer.max_epochs",
        "4",
        *STALLED,
    )
    history = metrics(run)["history"]
    assert [("val_loss" in e, "train_loss" in e) for e in history] == [(False, True), (True, True)] * 2
    assert [e["lr"] for e in history] == [1e-12] * 4
    report = (run / "report.md").read_text()
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in report.splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    }
    # train acc, train loss, val acc, val loss: epochs 1 and 3 have no validation figures
    assert [bool(rows[epoch][2]) for epoch in "1234"] == [False, True, False, True]
    curves = EventAccumulator(str(run / "validation")).Reload()
    assert len(curves.Scalars("epoch_loss")) == 2


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_early_stopping_acts_only_on_validated_epochs(workflow, data_dirs, tmp_path):
    # Nothing improves by 1.0: with patience 1 the second validation stops the run, at the end of epoch 4. Acting
    # on the stale figures of epoch 3 would stop it there.
    model, data = build(workflow, data_dirs[workflow])
    stop = EarlyStopping("val_loss", patience=1, min_delta=1.0)
    fit = trainer(tmp_path, check_val_every_n_epoch=2, max_epochs=8, callbacks=[stop])
    fit.fit(model, data)
    assert fit.current_epoch == 4 and stop.stopped_epoch == 3


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_no_validation_at_all_trains_and_says_so_once(workflow, data_dirs, tmp_path, recwarn):
    run = cli(
        workflow,
        data_dirs[workflow],
        tmp_path / "runs",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.max_epochs",
        "2",
    )
    summary = metrics(run)
    assert [e["epoch"] for e in summary["history"]] == [1, 2] and "val" not in summary and "test" in summary
    assert (run / "checkpoints" / "last.ckpt").exists()
    if workflow == "sst2_bilstm":  # early stopping and the plateau schedule watch val_loss
        said = [
            str(w.message)
            for w in recwarn
            if "`val_loss` which is not available" in str(w.message)
            or "val_loss which is not available" in str(w.message)
        ]
        assert len(said) == 2, said


@pytest.mark.parametrize("workflow", WORKFLOWS)
@pytest.mark.parametrize("flag", [("--trainer.max_steps", "3"), ("--trainer.max_time", "00:00:00:01")])
def test_a_run_stopped_mid_epoch_records_that_epochs_training_figures(workflow, flag, data_dirs, tmp_path):
    slow = callback("tests.callbacks.SlowSteps", seconds=0.4)  # max_time stops the first epoch after ~3 steps
    run = cli(workflow, data_dirs[workflow], tmp_path / "runs", *flag, "--trainer.max_epochs", "3", slow)
    summary = metrics(run)
    assert len(summary["history"]) == 1 and {"train_loss", "train_acc"} <= summary["history"][0].keys()
    assert summary["train"]["loss"] == summary["history"][0]["train_loss"]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_checkpoints_every_n_train_steps(workflow, data_dirs, tmp_path):
    model, data = build(workflow, data_dirs[workflow])
    every = ModelCheckpoint(tmp_path / "python", every_n_train_steps=3, save_top_k=-1, filename="{step}")
    trainer(tmp_path, enable_checkpointing=True, callbacks=[every]).fit(model, data)
    steps = list(range(3, BATCHES[workflow] + 1, 3))
    assert sorted(p.name for p in (tmp_path / "python").iterdir()) == [f"step={s}.ckpt" for s in steps]
    cli(
        workflow,
        data_dirs[workflow],
        tmp_path / "runs",
        callback(
            "lightning.pytorch.callbacks.ModelCheckpoint",
            dirpath=str(tmp_path / "cli"),
            every_n_train_steps=3,
            save_top_k=-1,
            filename="{step}",
        ),
    )
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == [f"step={s}.ckpt" for s in steps]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_weight_averaging_updates_per_optimizer_step_and_swa_per_epoch(workflow, data_dirs, tmp_path):
    """Checked through what a user sees: the weights the model ends with, against averages computed here from the
    weights recorded after each optimizer step (EMA) or as each epoch starts (SWA)."""
    model, data = build(workflow, data_dirs[workflow])
    ema, steps = EMAWeightAveraging(decay=0.5), WeightRecorder()
    fit = trainer(tmp_path, accumulate_grad_batches=2, max_epochs=2, callbacks=[ema, steps])
    fit.fit(model, data)
    assert fit.global_step == BATCHES[workflow] == len(steps.after_step)  # one update per optimizer step
    expected = steps.after_step[0]
    for weights in steps.after_step[1:]:
        expected = [0.5 * average + 0.5 * new for average, new in zip(expected, weights, strict=True)]
    for final, average in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(final, average, atol=1e-6)
    # Stochastic weight averaging averages once per epoch from swa_epoch_start, with its own rate schedule (it
    # replaces the SST-2 plateau schedule), and leaves the model with the averaged weights.
    model, data = build(workflow, data_dirs[workflow])
    swa, epochs = StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=1), WeightRecorder()
    trainer(tmp_path, max_epochs=3, callbacks=[swa, epochs]).fit(model, data)
    # Lightning's SWA ends with the mean of the weights as epochs 0, 1 and 2 start: its copy of the model made at
    # setup counts as the first (n_averaged 3), although averaging starts at swa_epoch_start.
    averaged = [epochs.at_epoch_start[0], epochs.at_epoch_start[1], epochs.at_epoch_start[2]]
    for final, *taken in zip(model.parameters(), *averaged, strict=True):
        assert torch.allclose(final, torch.stack(taken).mean(dim=0), atol=1e-6)


class WeightRecorder(L.Callback):
    """Copies of the model's parameters after each optimizer step and as each epoch starts."""

    def __init__(self) -> None:
        self.after_step, self.at_epoch_start, self._step = [], {}, 0

    @staticmethod
    def _copy(pl_module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in pl_module.parameters()]

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.at_epoch_start[trainer.current_epoch] = self._copy(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self._step:
            self._step = trainer.global_step
            self.after_step.append(self._copy(pl_module))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_the_learning_rate_finder_suggests_where_the_loss_falls_steepest(workflow, data_dirs, tmp_path):
    """The finder reads the loss our training_step returns at the rate it sets. Here that loss is a known curve of
    the rate (the module's own loss times 0, plus 1 below 0.05 and 0 from there): a cliff, which the finder's
    smoothed loss falls down steepest at the first rate past it, and which it suggests (the cliff lies past the
    first ten rates, which the suggestion skips by default)."""
    model, data = build(workflow, data_dirs[workflow])
    own_loss = model.loss_and_predictions

    def cliff(logits, target):
        loss, predictions = own_loss(logits, target)
        if model.training:
            rate = model.trainer.optimizers[0].param_groups[0]["lr"]
            loss = loss * 0 + (1.0 if rate < 0.05 else 0.0)
        return loss, predictions

    model.loss_and_predictions = cliff
    finder = Tuner(trainer(tmp_path, max_epochs=3)).lr_find(
        model, datamodule=data, min_lr=1e-5, max_lr=1, num_training=20, early_stop_threshold=None
    )
    rates = finder.results["lr"]
    assert len(rates) == 20
    first_past = min(rate for rate in rates if rate >= 0.05)
    assert finder.suggestion() == first_past
    assert model.hparams.lr == first_past  # the module's rate becomes the suggestion (update_attr)


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_without_logger_or_with_a_csv_logger_the_run_reports(workflow, data_dirs, tmp_path):
    root = tmp_path / "none"
    cli(workflow, data_dirs[workflow], root, "--trainer.logger", "false")
    assert "test" in metrics(root) and (root / "report.md").is_file() and (root / "checkpoints").is_dir()
    # Another logger writes the project's layout, <default_root_dir>/version_N, with or without a save folder.
    csv, logger = tmp_path / "csv", ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger"]
    cli(workflow, data_dirs[workflow], csv, *logger)
    cli(workflow, data_dirs[workflow], csv, *logger, "--trainer.logger.save_dir", str(csv))
    for run in (csv / "version_0", csv / "version_1"):
        assert "test" in metrics(run) and "train_loss" in (run / "metrics.csv").read_text()
        assert (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in csv.iterdir()) == ["version_0", "version_1"]
    # test finds the newest run's checkpoint as it does for the default logger.
    main, data = (fashion_main, []) if workflow == "fashion_cnn" else (sst2_main, ["--data.num_words", "50"])
    main(["test", "--data.data_dir", str(data_dirs[workflow]), *data, "--trainer.default_root_dir", str(csv), *logger])
    assert metrics(csv / "version_2")["checkpoint"] == "../version_1/checkpoints/last.ckpt"


def test_a_run_without_logger_that_fails_before_its_first_step_leaves_nothing(data_dirs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(
            "sst2_bilstm",
            data_dirs["sst2_bilstm"],
            tmp_path / "runs",
            "--trainer.logger",
            "false",
            callback("tests.callbacks.RefuseAtStart"),
        )
    assert exit_info.value.code == 2 and "refused at the start of training" in capsys.readouterr().err
    assert not any(path.is_file() for path in (tmp_path / "runs").rglob("*"))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_without_checkpointing_the_run_tests_its_last_weights(workflow, data_dirs, tmp_path, caplog):
    run = cli(workflow, data_dirs[workflow], tmp_path / "runs", "--trainer.enable_checkpointing", "false")
    assert not (run / "checkpoints").exists() and "checkpoint" not in metrics(run) and "test" in metrics(run)
    assert "enable_checkpointing false: the config's ModelCheckpoint is left out." in caplog.text


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_an_unwritable_output_folder_is_refused_before_anything_is_written(workflow, data_dirs, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        cli(workflow, data_dirs[workflow], blocker / "runs")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot write runs under {blocker / 'runs'}" in err and blocker.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_every_scalar_sits_at_its_optimizer_step(workflow, data_dirs, tmp_path):
    run = cli(
        workflow,
        data_dirs[workflow],
        tmp_path / "runs",
        "--trainer.max_epochs",
        "2",
        "--trainer.log_every_n_steps",
        "2",
    )
    per_epoch = BATCHES[workflow]
    last_steps = [per_epoch - 1, 2 * per_epoch - 1]  # the index of each epoch's last optimizer step
    events = EventAccumulator(str(run)).Reload()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert steps["train_batch_loss"] == list(range(1, 2 * per_epoch, 2))
    for tag in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert steps[tag] == last_steps, tag
    assert steps["lr-Adam"] == [0, per_epoch]  # logged as each epoch starts
    assert max(max(s) for s in steps.values()) <= 2 * per_epoch
    for folder in ("train", "validation"):
        assert [e.step for e in EventAccumulator(str(run / folder)).Reload().Scalars("epoch_loss")] == last_steps


class BatchRecorder(L.Callback):
    """The inputs of every training and validation batch, per epoch."""

    def __init__(self) -> None:
        self.train, self.val = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train.setdefault(trainer.current_epoch, []).append(batch[0].clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.val.setdefault(trainer.current_epoch, []).append(batch[0].clone())


@pytest.mark.parametrize("workflow,buckets", [("fashion_cnn", False), ("sst2_bilstm", False), ("sst2_bilstm", True)])
def test_overfit_batches_trains_on_the_same_batches_every_epoch(workflow, buckets, data_dirs, tmp_path):
    """Lightning turns the training loader's shuffling off (its sampler), and validates on as many batches."""
    model, data = build(workflow, data_dirs[workflow])
    data.length_buckets, data.eval_batch_size = buckets, 8  # 3 or 4 validation batches
    recorder = BatchRecorder()
    flags = {"max_epochs": 3, "overfit_batches": 2, "num_sanity_val_steps": 0, "callbacks": [recorder]}
    with pytest.warns(UserWarning, match="We are turning off the train dataloader shuffling"):
        trainer(tmp_path, **flags).fit(model, datamodule=data)
    first, *others = recorder.train.values()
    assert len(recorder.train) == 3 and len(first) == 2
    assert all(all(torch.equal(a, b) for a, b in zip(first, other, strict=True)) for other in others)
    assert all(len(batches) == 2 for batches in recorder.val.values())
    # Without the flag, the batches differ from one epoch to the next.
    model, data = build(workflow, data_dirs[workflow])
    data.length_buckets = buckets
    recorder = BatchRecorder()
    trainer(tmp_path, max_epochs=2, limit_train_batches=2, callbacks=[recorder]).fit(model, datamodule=data)
    assert not all(torch.equal(a, b) for a, b in zip(recorder.train[0], recorder.train[1]))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_a_callback_or_logger_without_its_package_is_refused_in_one_line(
    workflow, data_dirs, tmp_path, capsys, monkeypatch
):
    # As on a machine without rich, wandb or psutil (Lightning's own flags for them; this one may have them).
    monkeypatch.setattr("lightning.pytorch.callbacks.progress.rich_progress._RICH_AVAILABLE", False)
    monkeypatch.setattr("lightning.pytorch.loggers.wandb._WANDB_AVAILABLE", False)
    monkeypatch.setattr("lightning.pytorch.callbacks.device_stats_monitor._PSUTIL_AVAILABLE", False)
    cases = {  # the progress bar is the config's: Lightning takes one
        ("--trainer.callbacks=lightning.pytorch.callbacks.RichProgressBar",): (
            "lightning.pytorch.callbacks.RichProgressBar needs a package that is not installed. `RichProgressBar` "
            "requires `rich` >= 10.2.2. Install it by running `pip install -U rich`."
        ),
        ("--trainer.logger", "lightning.pytorch.loggers.WandbLogger"): (
            "lightning.pytorch.loggers.WandbLogger needs a package that is not installed."
        ),
        ("--trainer.callbacks+=lightning.pytorch.callbacks.DeviceStatsMonitor",): (
            "a callback or logger needs a package that is not installed. `DeviceStatsMonitor` cannot log CPU stats "
            "as `psutil` is not installed."
        ),
    }
    for option, message in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            cli(workflow, data_dirs[workflow], tmp_path / "runs", *option)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.strip().splitlines()[-1].startswith(f"error: {message}"), err[-500:]
        assert "pip install" in err and "Traceback" not in err
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing written


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_a_batch_size_or_rate_found_by_a_tuner_is_the_one_the_run_records(workflow, data_dirs, tmp_path):
    """config.yaml keeps what was asked (rerunning it tunes again); hparams.yaml, metrics.json and the report say
    what trained, and the tested checkpoint is the run's own, not the tuner's temporary one."""
    tuners = ["--trainer.callbacks+=lightning.pytorch.callbacks.BatchSizeFinder", "--trainer.callbacks.max_trials=2"]
    tuners += ["--trainer.callbacks+=lightning.pytorch.callbacks.LearningRateFinder"]
    tuners += ["--trainer.callbacks.num_training_steps=20", "--trainer.callbacks.early_stop_threshold=null"]
    tuners += ["--trainer.callbacks.min_lr=0.5", "--trainer.callbacks.max_lr=1"]
    run = cli(workflow, data_dirs[workflow], tmp_path / "runs", *tuners)
    tuned = metrics(run)["tuned"]
    assert tuned["batch_size"] == {"requested": 8, "used": 4}  # batch sizes 2, then 4
    assert tuned["lr"]["requested"] == 1e-3 and tuned["lr"]["used"] >= 0.5  # the finder's range starts at min_lr
    config, hparams = (yaml.safe_load((run / name).read_text()) for name in ("config.yaml", "hparams.yaml"))
    assert config["data"]["init_args"]["batch_size"] == 8 and config["model"]["lr"] == 1e-3
    assert hparams["batch_size"] == 4 and hparams["lr"] == tuned["lr"]["used"]
    assert (run / metrics(run)["checkpoint"]).is_file()
    report = (run / "report.md").read_text()
    assert "Trained with batch_size 4, found by a tuner callback; config.yaml asks 8." in report


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_a_compiled_module_fits_validates_tests_and_predicts(workflow, data_dirs, tmp_path):
    """torch.compile(model) given to the Trainer, as Lightning's docs show it. Dynamo traces with the "eager"
    backend here, which skips inductor's code generation (minutes on a CPU) and keeps what failed: the tracing."""
    torch._dynamo.reset()
    model, data = build(workflow, data_dirs[workflow])
    compiled = torch.compile(model, backend="eager")
    run = trainer(tmp_path, limit_train_batches=2, limit_val_batches=1)
    run.fit(compiled, datamodule=data)
    assert math.isfinite(run.validate(compiled, datamodule=data)[0]["val_loss"])
    assert 0 <= run.test(compiled, datamodule=data)[0]["test_acc"] <= 1
    assert model.test_results["confusion_matrix"].sum() == (32 if workflow == "fashion_cnn" else 20)
    predictions = torch.cat(run.predict(compiled, datamodule=data))
    assert len(predictions) == (32 if workflow == "fashion_cnn" else 20) and torch.isfinite(predictions).all()


class PlateauOf(FashionCNN):
    """FashionCNN with a plateau schedule of the given ``interval`` and ``frequency``, its steps counted."""

    def __init__(self, interval: str, frequency: int, **options) -> None:
        super().__init__(**options)
        self.interval, self.frequency, self.steps = interval, frequency, []

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
        original = schedule.step
        schedule.step = lambda value: (self.steps.append((self.current_epoch, self.global_step)), original(value))[1]
        config = {"scheduler": schedule, "interval": self.interval, "frequency": self.frequency}
        return {"optimizer": optimizer, "lr_scheduler": config | {"monitor": "train_loss_step"}}

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_loss_step", loss)  # a figure there is at every step, for a schedule that steps by steps
        return loss


@pytest.mark.parametrize(("interval", "frequency"), [("epoch", 2), ("step", 3)])
def test_a_plateau_schedule_steps_at_its_own_interval_and_frequency(interval, frequency, data_dirs, tmp_path):
    model = PlateauOf(interval, frequency, channels=(4, 8), dense_size=8)
    data = FashionMNISTDataModule(str(data_dirs["fashion_cnn"]), batch_size=8, download=False)
    trainer(tmp_path, max_epochs=4, limit_val_batches=0).fit(model, data)
    if interval == "epoch":  # at the end of epochs 2 and 4, once each
        assert [epoch for epoch, _ in model.steps] == [1, 3]
    else:  # every third batch of each epoch, as Lightning counts them (8 an epoch: the 3rd and 6th)
        assert [step for _, step in model.steps] == [s for s in range(1, 33) if (s - 1) % 8 + 1 in (3, 6)]


def test_the_last_line_printed_names_the_report_after_a_profilers_summary(data_dirs, tmp_path):
    """docs/cli.md: the last line a run prints names its report, after all that Lightning prints on either stream
    (here a profiler's summary and the progress bar; unbuffered, so that the two streams keep their order)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    root = tmp_path / "runs"
    extra = ["--trainer.profiler", "simple", "--trainer.enable_progress_bar", "true"]
    command = [
        sys.executable,
        "-m",
        "fashion_cnn.train",
        *tiny_run("fashion_cnn", data_dirs["fashion_cnn"], root, *extra),
    ]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "FIT Profiler Report" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == f"Report: {root / 'version_0' / 'report.md'}"
