import io
import warnings

import pytest
import torch
from matplotlib.figure import Figure

from common.callbacks.report import confusion_matrix_figure, markdown, summarize
from common.fonts import font_family_for
from common.module import ClassifierModule


def scores_of(confusion):
    """The per-class scores the module computes (its torchmetrics collection) for predictions that make
    ``confusion`` (rows: true class): the report's real inputs, not figures derived by the test itself."""
    module = ClassifierModule(len(confusion))
    target = torch.tensor([t for t, row in enumerate(confusion) for p, n in enumerate(row) for _ in range(n)])
    predicted = torch.tensor([p for t, row in enumerate(confusion) for p, n in enumerate(row) for _ in range(n)])
    module.test_scores.update(predicted, target)
    return module.test_scores.compute()


HISTORY = [
    {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.4, "val_acc": 0.85},
    {"epoch": 2, "train_loss": 0.3, "train_acc": 0.9, "val_loss": 0.45, "val_acc": 0.84},
]


def test_binary_summary_matches_the_reference_figures():
    # The reference's SST-2 confusion matrix: precision 0.81, recall 0.86, F1 0.84 for the positive class.
    summary = summarize(
        HISTORY, {"test_loss": 0.436, "test_acc": 0.8291}, scores_of([[340, 88], [61, 383]]), ["negative", "positive"]
    )
    assert summary["train"] == {"accuracy": 0.9, "loss": 0.3} and summary["val"] == {"accuracy": 0.84, "loss": 0.45}
    assert summary["test"] == {"accuracy": 0.8291, "loss": 0.436}
    # By hand: precision 383 / (383 + 88), recall 383 / (383 + 61), F1 2 * 383 / (2 * 383 + 88 + 61).
    assert summary["precision"] == pytest.approx(383 / 471) and summary["recall"] == pytest.approx(383 / 444)
    assert summary["f1"] == pytest.approx(766 / 915)
    assert summary["per_class"]["negative"]["precision"] == pytest.approx(340 / 401)
    assert summary["per_class"]["negative"]["support"] == 428 and summary["macro_avg"]["support"] == 872
    assert summary["confusion_matrix"] == [[340, 88], [61, 383]]


def test_macro_and_weighted_averages():
    confusion = [[8, 2, 0], [1, 3, 0], [0, 0, 6]]  # supports 10, 4, 6
    summary = summarize([], {"test_loss": 1.0, "test_acc": 0.85}, scores_of(confusion), ["a", "b", "c"])
    # By hand: recalls 8/10, 3/4, 6/6 and precisions 8/9, 3/5, 6/6.
    assert summary["macro_avg"]["recall"] == pytest.approx((0.8 + 0.75 + 1.0) / 3)
    assert summary["weighted_avg"]["recall"] == pytest.approx((0.8 * 10 + 0.75 * 4 + 6) / 20)
    assert summary["macro_avg"]["precision"] == pytest.approx((8 / 9 + 3 / 5 + 1) / 3)
    assert "train" not in summary and "precision" not in summary  # no history; not a binary task
    table = markdown(summary, ["a", "b", "c"], "Title", HISTORY)
    assert "| test | 0.8500 | 1.0000 |" in table and "| **b** | 1 | 3 | 0 |" in table
    assert "| 2 | 0.9000 | 0.3000 | 0.8400 | 0.4500 |" in table


def test_the_report_and_curves_read_what_any_lightningmodule_logs(tmp_path):
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from common.callbacks.curves import KerasCurves
    from common.callbacks.report import ReportCallback

    class Plain(BoringModel):  # no ClassifierModule: figures logged the usual way, per epoch
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log("train_loss", out["loss"], on_step=False, on_epoch=True)
            self.log("train_acc", 0.5, on_step=False, on_epoch=True)
            return out

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", 1.0 + self.current_epoch, on_epoch=True)

    report, curves = ReportCallback(), KerasCurves()
    logger = TensorBoardLogger(tmp_path, name="", version=0)
    trainer = L.Trainer(
        max_epochs=4,
        limit_train_batches=2,
        limit_val_batches=1,
        check_val_every_n_epoch=2,
        logger=logger,
        callbacks=[report, curves],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Plain())
    assert [sorted(k for k in e if k in ("train_loss", "train_acc", "val_loss")) for e in report.history] == [
        ["train_acc", "train_loss"],
        ["train_acc", "train_loss", "val_loss"],
    ] * 2
    assert [e.get("val_loss") for e in report.history] == [None, 2.0, None, 4.0]  # not the stale epoch-2 figure
    validation = EventAccumulator(str(tmp_path / "version_0" / "validation")).Reload()
    assert [e.value for e in validation.Scalars("epoch_loss")] == [2.0, 4.0]


def test_the_baseline_stands_beside_the_test_figures_and_the_epochs_table_stays_last():
    summary = summarize(HISTORY, {"test_loss": 1.0, "test_acc": 0.85}, scores_of([[8, 2], [1, 9]]), ["a", "b"])
    baseline = {
        "name": "a classic model",
        "test_acc": 0.9,
        "test_macro_f1": 0.875,
        "trained_on": 1000,
        "train_size": 60000,
        "seconds": 2.5,
    }
    table = markdown(summary, ["a", "b"], "Title", [{**e, "seconds": 3.0} for e in HISTORY], baseline)
    assert "| this network | 0.8500 | 0.8496 | 60,000 | 6.0 |" in table
    assert "| a classic model | 0.9000 | 0.8750 | 1,000 of 60,000 | 2.5 |" in table
    assert table.index("## Baseline") < table.index("## Classification report")
    assert table.split("## ")[-1].startswith("Per epoch")  # scripts/results.py reads the epochs' seconds there
    unavailable = markdown(summary, ["a", "b"], "Title", HISTORY, {"unavailable": "no splits."})
    assert "\nNo baseline: no splits.\n" in unavailable and "## Baseline" not in unavailable


def missing_glyphs(figure: Figure) -> list[str]:
    """matplotlib's warnings of characters drawn as empty boxes, while ``figure`` is drawn."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(io.BytesIO(), format="png")
    return [str(warning.message) for warning in caught if "missing from font" in str(warning.message)]


NAMES = ["猫", "犬", "кот", "Katze"]
CONFUSION = [[2, 0, 0, 0], [0, 1, 1, 0], [0, 0, 3, 0], [1, 0, 0, 2]]


def test_class_names_of_any_script_are_drawn_as_text_not_boxes():
    plain = Figure()
    plain.text(0.5, 0.5, "猫")
    assert missing_glyphs(plain)  # matplotlib's default font has no 猫, and the check sees it
    figure = confusion_matrix_figure(CONFUSION, NAMES)
    assert missing_glyphs(figure) == []
    # With a font that has them (Debian: fonts-noto-cjk), the names; without one, their numbers. matplotlib's
    # Last Resort font, a box for every character, is not such a font.
    family = font_family_for(NAMES)
    assert family is None or not any(name.startswith("Last Resort") for name in family)
    drawn = NAMES if family else ["0", "1", "2", "3"]
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == drawn


def test_without_a_font_for_them_the_classes_are_numbered_and_the_report_names_the_numbers(monkeypatch):
    monkeypatch.setattr("common.callbacks.report.font_family_for", lambda texts: None)
    figure = confusion_matrix_figure(CONFUSION, NAMES)
    assert missing_glyphs(figure) == []
    assert [label.get_text() for label in figure.axes[0].get_yticklabels()] == ["0", "1", "2", "3"]
    summary = summarize([], {"test_loss": 1.0, "test_acc": 0.8}, scores_of(CONFUSION), NAMES)
    expected = (
        "confusion_matrix.png numbers the classes (no installed font draws their names): 0 猫, 1 犬, 2 кот, 3 Katze."
    )
    assert expected in markdown(summary, NAMES, "Title", [])
