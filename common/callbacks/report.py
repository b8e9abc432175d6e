"""The report of a run: metrics.json, report.md, confusion_matrix.png and curves.png in the run folder."""

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchmetrics.utilities.plot import plot_confusion_matrix

from common.baseline import fit_baseline
from common.callbacks.figures import EpochFigures
from common.files import save_figure, write_text
from common.fonts import font_family_for

SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))


def summarize(
    history: list[dict[str, float]],
    test: dict[str, float] | None,
    scores: dict[str, torch.Tensor] | None,
    class_names: list[str],
) -> dict:
    """The content of metrics.json.

    ``history`` holds one entry per epoch (``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``); as in Keras,
    the train and validation figures are those of the last epoch. ``test`` holds ``test_loss`` and ``test_acc``;
    ``scores`` the per-class ``precision``, ``recall``, ``f1`` and the ``confusion_matrix`` (rows: true class).
    Both None: a fit that was not tested, whose summary holds its training and validation figures only.
    """
    summary: dict = {}
    last = history[-1] if history else {}
    for split, _ in SPLITS:
        source = (test or {}) if split == "test" else last
        if f"{split}_acc" in source:
            summary[split] = {"accuracy": source[f"{split}_acc"], "loss": source[f"{split}_loss"]}
    if scores is not None:
        summary |= class_scores(scores, class_names)
    # Wall times differ from run to run; they go to report.md, so that one seed always gives one metrics.json.
    summary["history"] = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]
    return summary


def class_scores(scores: dict[str, torch.Tensor], class_names: list[str]) -> dict:
    summary: dict = {}
    confusion = scores["confusion_matrix"].long()
    support = confusion.sum(dim=1).double()
    per_class = torch.stack([scores["precision"], scores["recall"], scores["f1"]]).double()
    summary["per_class"] = {
        name: {**_scores(per_class[:, i]), "support": int(support[i])} for i, name in enumerate(class_names)
    }
    summary["macro_avg"] = {**_scores(per_class.mean(dim=1)), "support": int(support.sum())}
    summary["weighted_avg"] = {**_scores(per_class @ support / support.sum()), "support": int(support.sum())}
    if len(class_names) == 2:  # binary task: the figures the reference quotes are those of the positive class
        summary.update(_scores(per_class[:, 1]))
    summary["confusion_matrix"] = confusion.tolist()
    return summary


def _scores(values: torch.Tensor) -> dict[str, float]:
    return dict(zip(("precision", "recall", "f1"), values.tolist()))


def markdown(
    summary: dict, class_names: list[str], title: str, history: list[dict[str, float]], baseline: dict | None = None
) -> str:
    """report.md. ``baseline``: the yardstick's figures with its wall time, or ``{"unavailable": why}``."""
    lines = [f"# {title}", "", "## Metrics", "", "| split | accuracy | loss |", "|---|---:|---:|"]
    for split, label in SPLITS:
        if split in summary:
            lines.append(f"| {label} | {summary[split]['accuracy']:.4f} | {summary[split]['loss']:.4f} |")
    if baseline:
        lines += ["", *baseline_lines(summary, baseline, history)]
    if summary.get("checkpoint"):
        tested = "Tested" if "test" in summary else "Chosen (not tested: `--report.test_after_fit false`)"
        lines += ["", f"{tested} checkpoint: `{summary['checkpoint']}` (epoch {summary['checkpoint_epoch']})."]
    for name, entry in summary.get("tuned", {}).items():
        lines += [
            "",
            f"Trained with {name} {entry['used']:g}, found by a tuner callback; config.yaml asks {entry['requested']:g}.",
        ]
    if "per_class" in summary:
        lines += test_lines(summary, class_names)
    if history:
        lines += [
            "",
            "## Per epoch",
            "",
            "| epoch | train acc | train loss | val acc | val loss | learning rate | seconds |",
        ]
        lines.append("|---:|---:|---:|---:|---:|---:|---:|")
        for e in history:
            cells = [f"{e[k]:.4f}" if k in e else "" for k in ("train_acc", "train_loss", "val_acc", "val_loss")]
            lines.append(
                f"| {e['epoch']} | " + " | ".join(cells) + f" | {e.get('lr', '')} | {e.get('seconds', 0):.1f} |"
            )
    return "\n".join(lines) + "\n"


def test_lines(summary: dict, class_names: list[str]) -> list[str]:
    lines = ["", "## Classification report (test)", ""]
    lines += ["| class | precision | recall | f1-score | support |", "|---|---:|---:|---:|---:|"]
    rows = [
        *summary["per_class"].items(),
        ("macro avg", summary["macro_avg"]),
        ("weighted avg", summary["weighted_avg"]),
    ]
    for name, row in rows:
        lines.append(f"| {name} | {row['precision']:.2f} | {row['recall']:.2f} | {row['f1']:.2f} | {row['support']} |")
    lines += ["", "## Confusion matrix (test; rows: true class, columns: predicted class)", ""]
    lines += ["| | " + " | ".join(class_names) + " |", "|---|" + "---:|" * len(class_names)]
    for name, row in zip(class_names, summary["confusion_matrix"]):
        lines.append(f"| **{name}** | " + " | ".join(str(n) for n in row) + " |")
    if font_family_for(class_names) is None:
        numbered = ", ".join(f"{i} {name}" for i, name in enumerate(class_names))
        lines += ["", f"confusion_matrix.png numbers the classes (no installed font draws their names): {numbered}."]
    return lines


def baseline_lines(summary: dict, baseline: dict, history: list[dict[str, float]]) -> list[str]:
    """The network's test figures beside the baseline's, or one line saying why there is no baseline."""
    if "unavailable" in baseline:
        return [f"No baseline: {baseline['unavailable']}"]
    fit_seconds = f"{sum(e.get('seconds', 0) for e in history):.1f}" if history else ""
    sample = "" if baseline["trained_on"] == baseline["train_size"] else f" of {baseline['train_size']:,}"
    return [
        "## Baseline (test)",
        "",
        "A classic model trained on the same training split and scored on the same test split, as a yardstick "
        "(`--report.baseline false` leaves it out); seconds: the network's epochs, the baseline's training and "
        "scoring.",
        "",
        "| model | accuracy | macro F1 | training rows | seconds |",
        "|---|---:|---:|---:|---:|",
        f"| this network | {summary['test']['accuracy']:.4f} | {summary['macro_avg']['f1']:.4f} | "
        f"{baseline['train_size']:,} | {fit_seconds} |",
        f"| {baseline['name']} | {baseline['test_acc']:.4f} | {baseline['test_macro_f1']:.4f} | "
        f"{baseline['trained_on']:,}{sample} | {baseline['seconds']:.1f} |",
    ]


def confusion_matrix_figure(confusion: list[list[int]], class_names: list[str]) -> Figure:
    size = 3 + 0.6 * len(class_names)
    figure = Figure(figsize=(size, size), layout="constrained")
    axes = figure.subplots()
    family = font_family_for(class_names)  # None: no font has their characters, and numbers stand for them
    labels = class_names if family else [str(i) for i in range(len(class_names))]
    plot_confusion_matrix(torch.tensor(confusion), ax=axes, labels=labels)
    if family:
        axes.tick_params(labelfontfamily=family)
    axes.set_title("Confusion matrix (test)")
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.tick_params(axis="x", labelrotation=45)
    return figure


def curves_figure(history: list[dict[str, float]]) -> Figure:
    figure = Figure(figsize=(11, 4), layout="constrained")
    for axes, (metric, label) in zip(figure.subplots(1, 2), (("acc", "accuracy"), ("loss", "loss"))):
        for split in ("train", "val"):
            points = [(e["epoch"], e[f"{split}_{metric}"]) for e in history if f"{split}_{metric}" in e]
            if points:
                axes.plot(*zip(*points), marker="o", label=split)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(label)
        axes.set_title(f"{label} per epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def write_report(
    run_dir: Path,
    summary: dict,
    class_names: list[str],
    title: str,
    history: list[dict],
    confusion: Figure | None,
    baseline: dict | None = None,
) -> Path:
    """Writes the report files into ``run_dir`` (``confusion``: the confusion-matrix figure, None for a fit that
    was not tested; ``baseline`` as markdown takes it) and returns the path of report.md."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    if confusion is not None:
        save_figure(confusion, run_dir / "confusion_matrix.png", dpi=120)
    if summary["history"]:
        save_figure(curves_figure(summary["history"]), run_dir / "curves.png", dpi=120)
    report = run_dir / "report.md"
    write_text(report, markdown(summary, class_names, title, history, baseline))
    return report


def chosen_epoch(metrics: dict) -> dict:
    """The figures, in a run's metrics.json, of the epoch whose weights fit kept (``checkpoint_epoch``; the last
    epoch where it names none); {} for a run without epochs."""
    history = metrics.get("history") or [{}]
    return next((e for e in history if e.get("epoch") == metrics.get("checkpoint_epoch")), history[-1])


def chosen_checkpoint(trainer: L.Trainer) -> str | None:
    """The checkpoint fit's test takes: the monitored checkpoint's best, as the reference's early stopping
    restores it; where nothing is monitored, a ModelCheckpoint's "best" is the latest epoch it saved."""
    checkpoints = trainer.checkpoint_callbacks
    chosen = next((c for c in checkpoints if c.monitor), checkpoints[0] if checkpoints else None)
    return chosen.best_model_path if isinstance(chosen, ModelCheckpoint) and chosen.best_model_path else None


def _tunable(trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
    """The settings that Lightning's tuner callbacks change: the DataModule's batch size, the model's rate."""
    values = {"batch_size": getattr(trainer.datamodule, "batch_size", None), "lr": pl_module.hparams.get("lr")}
    return {key: value for key, value in values.items() if value is not None}


def baseline_of(datamodule: L.LightningDataModule) -> dict:
    """The baseline's figures and wall time on the DataModule's splits, or ``{"unavailable": why}``: a report is
    written whatever becomes of its yardstick."""
    if not callable(getattr(datamodule, "baseline_split", None)):
        why = f"{type(datamodule).__name__} has no baseline_split(name) to give the splits to a classic model."
    else:
        try:
            splits = datamodule.baseline_split("train"), datamodule.baseline_split("test")
        except Exception as error:  # the yardstick must not cost the run its report
            why = f"the training and test splits could not be read for it ({type(error).__name__}: {error})."
        else:
            try:
                return asdict(fit_baseline(*splits))
            except Exception as error:
                why = f"it could not be trained ({type(error).__name__}: {error})."
    rank_zero_info(f"No baseline in the report: {why}")
    return {"unavailable": why}


class ReportCallback(EpochFigures):
    """Records the per-epoch history during fit and writes the report after each test.

    The history is part of the callback's state, so it is saved in checkpoints and a resumed run reports all of
    its epochs. Each entry also holds the epoch's wall time (training and validation) and the learning rate.
    Class names come from the datamodule's ``class_names``; ``seed``, which the command line sets, is recorded
    in metrics.json.

    Args:
        title: the heading of report.md.
        baseline: whether the report gives a classic baseline (common/baseline.py) beside the network's test
            figures, trained on the DataModule's ``baseline_split("train")`` and scored on its ``"test"``.
        test_after_fit: whether the command line's ``fit`` goes on to test the chosen checkpoint. False: fit's
            report holds the training and validation figures only, and names the checkpoint a test would take
            (a search's trials, which may not compute test figures: only the best trial is tested).
    """

    def __init__(self, title: str = "Results", baseline: bool = True, test_after_fit: bool = True) -> None:
        super().__init__()
        self.title = title
        self.baseline = baseline
        self.test_after_fit = test_after_fit
        self.seed: int | None = None
        self.history: list[dict[str, float]] = []
        self.report_path: Path | None = None
        self.checkpoint_epoch: int | None = None
        self.tuned: dict[str, dict] = {}  # settings a tuner callback changed: {"batch_size": {"requested", "used"}}
        self._requested: dict = {}
        self._tested: str | None = None
        self._trainer: L.Trainer | None = None
        self._epoch_start = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer, self._tested = trainer, None
        if stage == "fit":  # before BatchSizeFinder and LearningRateFinder act, on fit start
            self._requested = _tunable(trainer, pl_module)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        used = _tunable(trainer, pl_module)
        tuned = {
            k: {"requested": self._requested[k], "used": v} for k, v in used.items() if v != self._requested.get(k)
        }
        if tuned:  # config.yaml keeps what was asked; hparams.yaml, metrics.json and the report say what was used
            self.tuned |= tuned
            holders = {"batch_size": trainer.datamodule, "lr": pl_module}  # re-logged with each test
            for key, entry in tuned.items():
                if key in getattr(holders[key], "hparams", {}):
                    holders[key].hparams[key] = entry["used"]
            for logger in trainer.loggers:
                logger.log_hyperparams({k: entry["used"] for k, entry in tuned.items()})
                if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:  # it writes hparams.yaml once
                    save_hparams_to_yaml(Path(logger.log_dir) / logger.NAME_HPARAMS_FILE, logger.hparams)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        entry = {"epoch": trainer.current_epoch + 1, "seconds": time.perf_counter() - self._epoch_start}
        entry |= self.epoch_figures(trainer, pl_module)
        if trainer.optimizers:
            entry["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.history = [e for e in self.history if e["epoch"] < entry["epoch"]] + [entry]

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.test_after_fit or trainer.fast_dev_run:
            return
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every process must ask
        if not trainer.is_global_zero:
            return
        class_names = list(trainer.datamodule.class_names)
        chosen = chosen_checkpoint(trainer)
        # The chosen checkpoint's epoch as a test of it would report it: the last of the history it saved.
        saved = torch.load(chosen, map_location="cpu", weights_only=False, mmap=True)["callbacks"] if chosen else {}
        epochs = saved.get(self.state_key, {}).get("history", [])
        summary = self.summary(trainer, run_dir, None, class_names, chosen, epochs[-1]["epoch"] if epochs else None)
        self.report_path = write_report(run_dir, summary, class_names, self.title, self.history, None)
        if "val_acc" in (kept := chosen_epoch(summary)):  # TensorBoard's hparams: no test figure, the validation's
            for logger in trainer.loggers:
                logger.log_metrics({"hp_metric": kept["val_acc"]}, step=trainer.global_step)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run:  # a trial of the code, which by Lightning's definition writes no logs or files
            return
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every process must ask
        if not trainer.is_global_zero:
            return
        class_names = list(trainer.datamodule.class_names)
        test = {key: float(trainer.callback_metrics[key]) for key in ("test_loss", "test_acc")}
        summary = self.summary(
            trainer,
            run_dir,
            (test, pl_module.test_results),
            class_names,
            self._tested or trainer.ckpt_path,
            self.checkpoint_epoch,
        )
        baseline = baseline_of(trainer.datamodule) if self.baseline else None
        if baseline:  # without its wall time, as the history (one seed, one metrics.json)
            summary["baseline"] = {key: value for key, value in baseline.items() if key != "seconds"}
        confusion = confusion_matrix_figure(summary["confusion_matrix"], class_names)  # for the file and TensorBoard
        self.report_path = write_report(run_dir, summary, class_names, self.title, self.history, confusion, baseline)
        for logger in trainer.loggers:
            logger.log_metrics({"hp_metric": test["test_acc"]}, step=trainer.global_step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("test_confusion_matrix", confusion, trainer.global_step, close=False)

    def summary(
        self,
        trainer: L.Trainer,
        run_dir: Path,
        tested: tuple[dict, dict] | None,
        class_names: list[str],
        ckpt_path: str | None,
        checkpoint_epoch: int | None,
    ) -> dict:
        """metrics.json, less the baseline: ``tested`` the test figures and per-class scores, or None."""
        summary = summarize(self.history, *(tested or (None, None)), class_names)
        if isinstance(self.seed, int) and not isinstance(self.seed, bool):  # False: no seed was set
            summary["seed"] = self.seed
        if ckpt_path:
            summary["checkpoint"] = os.path.relpath(ckpt_path, run_dir)
            summary["checkpoint_epoch"] = checkpoint_epoch
        if self.tuned:
            summary["tuned"] = self.tuned
        return summary

    def state_dict(self) -> dict:
        return {"history": self.history, "tuned": self.tuned}

    def load_state_dict(self, state_dict: dict) -> None:
        # The checkpoint a test was asked for is the first one restored: BatchSizeFinder restores one of its own
        # as the test starts, which trainer.ckpt_path then names.
        if self._trainer is not None and self._trainer.testing and self._tested is None:
            self._tested = self._trainer.ckpt_path
        self.tuned = state_dict.get("tuned", {}) | self.tuned
        saved = state_dict["history"]
        self.checkpoint_epoch = saved[-1]["epoch"] if saved else None
        # A checkpoint fills in the epochs this process has not seen (resuming, testing a saved model); testing
        # the best checkpoint right after fit must not cut the run's history short.
        by_epoch = {e["epoch"]: e for e in saved} | {e["epoch"]: e for e in self.history}
        self.history = [by_epoch[epoch] for epoch in sorted(by_epoch)]
