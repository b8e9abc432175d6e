"""Several checkpoints evaluated and used as one: the mean of their class probabilities, in the command line's
validate / test / predict and in the prediction APIs."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from common.ensemble import EnsembleClassifier
from fashion_cnn.model import FashionCNN
from sst2_bilstm import export as sst2_export
from sst2_bilstm import predict as sst2_predict
from sst2_bilstm.data import SST2DataModule
from sst2_bilstm.train import main as sst2_train
from tests.conftest import tiny_run, write_sst2
from tests.test_serve import Server

TWO_EPOCHS = ["--trainer.max_epochs", "2"]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Three seeds of one tiny config (one vocabulary), and a fourth run with another vocabulary size."""
    root = tmp_path_factory.mktemp("ensemble")
    data_dir = write_sst2(root / "data")
    for seed in (1, 2, 3):
        sst2_train(tiny_run("sst2_bilstm", data_dir, root / "runs", *TWO_EPOCHS, "--seed_everything", str(seed)))
    sst2_train(tiny_run("sst2_bilstm", data_dir, root / "other", *TWO_EPOCHS, "--data.num_words", "5"))
    checkpoints = [str(root / "runs" / f"version_{i}" / "checkpoints" / "last.ckpt") for i in range(3)]
    return data_dir, root, checkpoints, str(root / "other" / "version_0" / "checkpoints" / "last.ckpt")


def test_an_ensemble_averages_its_members_probabilities():
    torch.manual_seed(0)
    members = [FashionCNN().eval() for _ in range(3)]
    images = torch.rand(5, 1, 28, 28)
    ensemble = EnsembleClassifier(members).eval()
    mean = torch.stack([m.probabilities(m(images)) for m in members]).mean(dim=0)
    assert torch.allclose(ensemble.probabilities(ensemble(images)), mean, atol=1e-6)
    target = torch.tensor([0, 1, 2, 3, 4])
    loss, predictions = ensemble.loss_and_predictions(ensemble(images), target)
    assert torch.allclose(loss, torch.nn.functional.nll_loss(mean.log(), target), atol=1e-6)
    assert torch.equal(predictions, mean.argmax(dim=1))


def test_the_test_subcommand_scores_the_ensemble(three_runs, caplog):
    data_dir, root, checkpoints, _ = three_runs
    with caplog.at_level(logging.INFO):
        sst2_train(
            tiny_run("sst2_bilstm", data_dir, root / "runs", f"--ckpt_path=[{', '.join(checkpoints)}]", command="test")
        )
    assert "test: the ensemble of 3 checkpoints" in caplog.text
    metrics = json.loads(sorted((root / "runs").glob("version_*/metrics.json"))[-1].read_text())
    # The same figure by hand: each member's probabilities on the test split, averaged.
    data = SST2DataModule.load_from_checkpoint(checkpoints[0], data_dir=str(data_dir))
    data.setup("test")
    tokens, labels = data.tensors("test")
    mean = torch.from_numpy(
        np.mean([sst2_predict.load(c).class_probabilities(tokens)[:, 1] for c in checkpoints], axis=0)
    )
    assert metrics["test"]["accuracy"] == pytest.approx(((mean > 0.5).float() == labels).float().mean().item())
    bce = torch.nn.functional.binary_cross_entropy(mean.clamp(1e-7, 1 - 1e-7), labels)
    assert metrics["test"]["loss"] == pytest.approx(bce.item(), rel=1e-4)


def test_the_predict_subcommand_writes_an_ensembles_predictions_into_a_new_run(three_runs, tmp_path, capsys):
    data_dir, _, checkpoints, _ = three_runs
    sst2_train(
        tiny_run("sst2_bilstm", data_dir, tmp_path, f"--ckpt_path=[{', '.join(checkpoints)}]", command="predict")
    )
    written = tmp_path / "version_0" / "predictions.csv"
    assert f"Predictions: {written} (an ensemble has no run of its own)" in capsys.readouterr().out
    assert len(written.read_text().splitlines()) == 1 + 20


def test_predict_takes_several_checkpoints(three_runs, capsys):
    _, _, checkpoints, _ = three_runs
    sentences = ["good the film is", "bad the film is", "zzzz"]
    singles = [sst2_predict.load(c).predict(sentences) for c in checkpoints]
    args = [arg for c in checkpoints for arg in ("--ckpt", c)]
    output = Path(checkpoints[0]).parent / "ensemble.json"
    sst2_predict.main([*args, *sentences, "--output", str(output)])
    rows = json.loads(output.read_text())
    for i, row in enumerate(rows):
        mean = sum(single[i]["probability_positive"] for single in singles) / 3
        assert row["probability_positive"] == pytest.approx(mean, abs=1e-6)


def test_an_ensemble_exports_as_one_model_of_the_mean_and_serves(three_runs, tmp_path, capsys):
    _, _, checkpoints, other = three_runs
    folder = tmp_path / "export"
    sst2_export.main([arg for c in checkpoints for arg in ("--ckpt", c)] + ["--output", str(folder)])
    sentences = ["good the film is , really", "bad the film is", "zzzz", "fine " * 60]
    ensemble, exported = sst2_predict.load(*checkpoints), sst2_predict.load(folder)
    tokens = ensemble.encoded(sentences)[0]
    assert np.abs(exported.class_probabilities(tokens) - ensemble.class_probabilities(tokens)).max() < 1e-5
    assert exported.tokenizer.to_str() == ensemble.tokenizer.to_str()
    server = Server("sst2_bilstm", "--model", str(folder))
    try:
        status, reply = server.predict({"inputs": sentences[:1]})
        assert status == 200 and reply["predictions"][0]["probabilities"]["positive"] == pytest.approx(
            float(exported.class_probabilities(tokens[:1])[0, 1]), abs=1e-6
        )
        assert server.stop() == 0
    finally:
        server.kill()
    # Members of other vocabularies: refused in one line before anything is written.
    with pytest.raises(SystemExit) as exit_info:
        sst2_export.main(["--ckpt", checkpoints[0], "--ckpt", other, "--output", str(tmp_path / "mixed")])
    assert exit_info.value.code == 2 and "differ in vocab_size: 10000, 5." in capsys.readouterr().err
    assert not (tmp_path / "mixed").exists()


def test_an_ensemble_of_other_vocabularies_or_in_fit_is_refused(three_runs, capsys):
    data_dir, root, checkpoints, other = three_runs
    common = tiny_run("sst2_bilstm", data_dir, root / "runs", command=None)
    # The other form of a list: --ckpt_path+ once per member.
    for command, expected in (("test", "trained with different"), ("fit", "fit takes one --ckpt_path")):
        with pytest.raises(SystemExit) as exit_info:
            sst2_train([command, *common, "--ckpt_path+", checkpoints[0], "--ckpt_path+", other])
        assert exit_info.value.code == 2 and expected in capsys.readouterr().err
    # Members listed after one option, as argparse's nargs would take them, are not a list: the error says how.
    with pytest.raises(SystemExit) as exit_info:
        sst2_train(["test", *common, "--ckpt_path", checkpoints[0], checkpoints[1]])
    assert exit_info.value.code == 2 and "ensemble) are one list: --ckpt_path '[A, B]'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        sst2_predict.main(["--ckpt", checkpoints[0], "--ckpt", other, "fine"])
    assert exit_info.value.code == 2 and "differ in vocab_size: 10000, 5." in capsys.readouterr().err
