"""The command line's pieces, each alone: what a subcommand's checkpoint implies (Plan), the removal of a run that
never stepped (RemoveUnusedRun), and a checkpoint that does not load."""

from pathlib import Path

import lightning as L
import pytest
from jsonargparse import Namespace

from common.callbacks.unused_run import RemoveUnusedRun
from common.cli.checkpoint import Plan, chosen_checkpoint
from common.errors import ConfigError, DataError


def config(subcommand, ckpt_path):
    return Namespace(subcommand=subcommand, **{subcommand: Namespace(ckpt_path=ckpt_path)})


def test_a_plan_reads_what_the_settled_checkpoint_implies(tmp_path):
    in_run = str(tmp_path / "version_3" / "checkpoints" / "last.ckpt")
    assert Plan.of(config("fit", in_run)).resumed_run == tmp_path / "version_3"
    assert Plan.of(config("fit", str(tmp_path / "loose.ckpt"))).resumed_run is None
    predict = Plan.of(config("predict", in_run))
    assert predict.predict_run == tmp_path / "version_3" and predict.predict_note == ""
    assert Plan.of(config("predict", str(tmp_path / "loose.ckpt"))).predict_note == " (a checkpoint in no run)"
    ensemble = Plan.of(config("test", ["a.ckpt", "b.ckpt"]))
    assert ensemble.ensemble == ("a.ckpt", "b.ckpt") and ensemble.ckpt_path is None
    assert Plan.of(config("predict", ["a.ckpt", "b.ckpt"])).predict_note == " (an ensemble has no run of its own)"
    assert Plan.of(Namespace()) == Plan()


def test_last_is_the_newest_run_and_best_is_refused(tmp_path):
    for n in (2, 10, 9):
        (tmp_path / f"version_{n}" / "checkpoints").mkdir(parents=True)
        (tmp_path / f"version_{n}" / "checkpoints" / "last.ckpt").touch()
    newest = str(tmp_path / "version_10" / "checkpoints" / "last.ckpt")
    assert chosen_checkpoint("test", None, tmp_path) == (newest, True)
    assert chosen_checkpoint("fit", "last", tmp_path) == (newest, True)
    assert chosen_checkpoint("fit", None, tmp_path) == (None, False)
    with pytest.raises(ConfigError, match="best"):
        chosen_checkpoint("test", "best", tmp_path)
    with pytest.raises(DataError, match="Train first"):
        chosen_checkpoint("test", None, tmp_path / "empty")


class Fails(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("failed")


@pytest.mark.parametrize(("at_step", "removed"), [(0, True), (1, False)])
def test_a_new_run_that_fails_before_its_first_step_is_removed(at_step, removed, tmp_path):
    from lightning.pytorch.demos.boring_classes import BoringModel
    from lightning.pytorch.loggers import TensorBoardLogger

    root = tmp_path / "made" / "runs"
    logger = TensorBoardLogger(root, name="", version=None)
    trainer = L.Trainer(
        logger=logger, max_steps=3, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
    )
    trainer.callbacks += [Fails(at_step), RemoveUnusedRun(Path(logger.log_dir), root)]
    with pytest.raises(RuntimeError, match="failed"):
        trainer.fit(BoringModel())
    assert (tmp_path / "made").exists() is not removed  # the folders made for the run go with it


def test_an_existing_run_folder_is_kept(tmp_path):
    run = tmp_path / "version_0"
    run.mkdir()
    assert RemoveUnusedRun(run, tmp_path).run is None and RemoveUnusedRun(run, tmp_path).created is None


def test_a_checkpoint_of_the_same_model_that_does_not_load_is_not_called_the_other_workflows(tmp_path):
    import torch

    from common.checkpoints import read_checkpoint
    from fashion_cnn.model import FashionCNN

    model = FashionCNN(channels=(4, 8), dense_size=8)
    state = dict(model.state_dict())
    state["net.0.weight"] = torch.zeros(5, 1, 3, 3)  # weights of another shape, as an older version might save
    path = tmp_path / "older.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": dict(model.hparams)}, path)
    with pytest.raises(DataError, match="older version") as refused:
        read_checkpoint(path, FashionCNN)
    assert "other workflow" not in str(refused.value)
