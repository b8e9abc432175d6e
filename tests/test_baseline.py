"""The classic baseline of every report (common/baseline.py): what it trains on, what it scores, and that a report
carries it, or one line saying why not."""

import json
from pathlib import Path

import numpy as np
import pytest

from common import baseline
from common.baseline import fit_baseline
from common.callbacks.report import baseline_of
from fashion_cnn.train import main
from sst2_bilstm.train import main as sst2_main
from tests.conftest import tiny_run

FIGURES = {"name", "test_acc", "test_macro_f1", "trained_on", "train_size"}


def word_pairs(n: int) -> tuple[list[str], list[int]]:
    """Texts whose words say nothing and whose word order says everything: "red blue" is class 0, "blue red"
    class 1, each with a noise word. Only two-word grams tell the classes apart."""
    rng = np.random.default_rng(1)
    texts = [f"{'red blue' if i % 2 == 0 else 'blue red'} noise{rng.integers(50)}" for i in range(n)]
    return texts, [float(i % 2) for i in range(n)]  # 0/1 floats, as a binary text DataModule gives them


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 16 pixels in [0, 1], each of 3 classes bright in its own quarter."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    pixels = rng.uniform(0, 0.5, (n, 16)).astype(np.float32)
    for label in range(3):
        pixels[labels == label, 4 * label : 4 * label + 4] += 0.5
    return pixels, labels


def test_texts_get_tf_idf_of_word_pairs_and_a_logistic_regression():
    result = fit_baseline(word_pairs(60), word_pairs(20))
    assert result.name.startswith("TF-IDF (words, 1-2 grams)")
    assert result.test_acc == 1.0 and result.test_macro_f1 == 1.0  # words alone would score 0.5
    assert result.trained_on == result.train_size == 60 and result.seconds > 0


def test_texts_train_on_a_seeded_sample_of_at_most_max_texts(monkeypatch):
    """A large file's texts are sampled (a 320,000-text split took 419 s on one core); SST-2's whole split fits."""
    monkeypatch.setattr(baseline, "MAX_TEXTS", 40)
    first, second = fit_baseline(word_pairs(60), word_pairs(20)), fit_baseline(word_pairs(60), word_pairs(20))
    assert (first.trained_on, first.train_size) == (40, 60) and first.test_acc == second.test_acc
    monkeypatch.undo()
    assert baseline.MAX_TEXTS >= 53_879  # SST-2's training texts: the reference's baseline trains on them all


def test_images_train_on_a_seeded_sample_of_at_most_max_images(monkeypatch):
    monkeypatch.setattr(baseline, "MAX_IMAGES", 50)
    train, test = images(90, seed=0), images(30, seed=1)
    first, second = fit_baseline(train, test), fit_baseline(train, test)
    assert first.name.startswith("logistic regression on the pixels")
    assert (first.trained_on, first.train_size) == (50, 90)
    assert first.test_acc == 1.0
    assert first.test_acc == second.test_acc and first.test_macro_f1 == second.test_macro_f1  # the same sample
    monkeypatch.setattr(baseline, "MAX_IMAGES", 1000)
    assert fit_baseline(train, test).trained_on == 90


def test_the_baseline_computes_on_one_thread(monkeypatch):
    # The same figures on any machine, and no threads spinning against a busy CPU.
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info

    threads, fit = [], LogisticRegression.fit

    def recording(self, *args, **kwargs):
        threads.extend(info["num_threads"] for info in threadpool_info())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", recording)
    fit_baseline(images(30, seed=0), images(9, seed=1))
    assert threads and set(threads) == {1}


def test_macro_f1_counts_every_class():
    # Class 2 is never predicted: its F1 of 0 counts in the mean, as in the network's macro average.
    train = (np.array([[0.0], [0.1], [0.9], [1.0]]), np.array([0, 0, 1, 1]))
    test = (np.array([[0.0], [1.0], [0.95]]), np.array([0, 1, 2]))
    result = fit_baseline(train, test)
    assert result.test_acc == pytest.approx(2 / 3) and result.test_macro_f1 == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_a_datamodule_without_splits_for_it_gets_one_line_why():
    class Unreadable:
        def baseline_split(self, name):
            raise OSError(f"{name} is gone")

    assert "object has no baseline_split(name)" in baseline_of(object())["unavailable"]
    assert baseline_of(Unreadable())["unavailable"] == (
        "the training and test splits could not be read for it (OSError: train is gone)."
    )


@pytest.mark.parametrize("workflow", ["fashion_cnn", "sst2_bilstm"])
def test_every_report_gives_the_baseline_beside_the_network(workflow, fashion_dir, sst2_dir, tmp_path):
    data, run_main = (fashion_dir, main) if workflow == "fashion_cnn" else (sst2_dir, sst2_main)
    run_main(tiny_run(workflow, data, tmp_path / "on"))
    run_main(tiny_run(workflow, data, tmp_path / "off", "--report.baseline", "false"))
    on, off = (tmp_path / name / "version_0" for name in ("on", "off"))
    metrics = json.loads((on / "metrics.json").read_text())
    assert metrics["baseline"].keys() == FIGURES and 0 <= metrics["baseline"]["test_acc"] <= 1
    kind = "logistic regression on the pixels" if workflow == "fashion_cnn" else "TF-IDF (words, 1-2 grams)"
    assert metrics["baseline"]["name"].startswith(kind)
    # Trained on the split the network trained on: SST-2's holds out its validation rows (100 - 20).
    assert metrics["baseline"]["train_size"] == (64 if workflow == "fashion_cnn" else 80)
    report = (on / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith(f"| {metrics['baseline']['name']} |"))
    assert row.split(" | ")[1] == f"{metrics['baseline']['test_acc']:.4f}"
    assert f"| this network | {metrics['test']['accuracy']:.4f} |" in report
    # Turned off: neither file mentions it, and the rest is the same run.
    off_metrics = json.loads((off / "metrics.json").read_text())
    assert "baseline" not in off_metrics and "aseline" not in (off / "report.md").read_text()
    assert off_metrics == {key: value for key, value in metrics.items() if key != "baseline"}
    # test of the run's checkpoint alone (which reads no training split of its own) reports the same baseline.
    run_main(tiny_run(workflow, data, tmp_path / "on", "--ckpt_path", str(on / metrics["checkpoint"]), command="test"))
    tested = json.loads((on / f"test-{Path(metrics['checkpoint']).stem}" / "metrics.json").read_text())
    assert tested["baseline"] == metrics["baseline"]
