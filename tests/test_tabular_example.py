"""The worked example of docs/from_keras.md: a workflow of one's own (examples/tabular/: data.py, model.py,
train.py, tabular.yaml) gets fit / test / predict, checkpoints, the report and the curves from common/."""

import csv
import json

import pytest
import torch

from examples.tabular.train import main

CLASSES = ["setosa", "versicolor", "virginica"]


def write_table(path, n, generator):
    """Three well-separated clouds of points in 4 dimensions, one per class, rows in random order."""
    labels = torch.randint(0, 3, (n,), generator=generator)
    features = torch.randn(n, 4, generator=generator) * 0.5 + labels.unsqueeze(1) * 2.0
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["a", "b", "c", "d", "class"])
        writer.writerows([*(f"{x:.4f}" for x in row), int(label)] for row, label in zip(features.tolist(), labels))
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root, generator = tmp_path_factory.mktemp("tabular"), torch.Generator().manual_seed(0)
    return root, write_table(root / "train.csv", 300, generator), write_table(root / "test.csv", 60, generator)


def test_a_workflow_of_ones_own_trains_tests_and_reports(tables, capsys):
    root, train, test = tables
    data = ["--data.train_path", str(train), "--data.test_path", str(test)]
    main([*data, "--trainer.default_root_dir", str(root / "runs"), "--trainer.enable_progress_bar", "false"])
    run = root / "runs" / "version_0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["history"]) == 30 and metrics["test"]["accuracy"] >= 0.95
    assert list(metrics["per_class"]) == CLASSES
    assert (run / "report.md").is_file() and (run / "train").is_dir() and (run / "validation").is_dir()

    # No --ckpt_path: the newest run's last.ckpt.
    main(["predict", *data, "--trainer.default_root_dir", str(root / "runs"), "--trainer.enable_progress_bar", "false"])
    rows = list(csv.DictReader((run / "predictions-last.csv").open()))
    assert len(rows) == 60 and {row["predicted"] for row in rows} <= set(CLASSES)


def test_the_output_size_follows_the_class_names(tables, capsys):
    _, train, _test = tables
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data.train_path", str(train), "--model.num_classes", "5"])
    assert exit_info.value.code == 2 and 'must be given via "data.class_names"' in capsys.readouterr().err
