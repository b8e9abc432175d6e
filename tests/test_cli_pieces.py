"""The command line's pieces, each alone: what a subcommand's checkpoint implies (Plan), the removal of a run that
never stepped (RemoveUnusedRun), a checkpoint that does not load, and data sources named the old way."""

from pathlib import Path

import lightning as L
import pytest
import yaml
from jsonargparse import Namespace

from common.callbacks.unused_run import RemoveUnusedRun
from common.cli.checkpoint import Plan, checkpoint_to_use
from common.cli.sources import run_data, with_data_class
from common.errors import ConfigError, DataError
from common.module import rename_data_state
from fashion_cnn.train import SOURCES as IMAGE_SOURCES
from sst2_bilstm.data import SST2DataModule, TextFilesDataModule, stored_tokenizer


def config(subcommand, ckpt_path):
    return Namespace(subcommand=subcommand, **{subcommand: Namespace(ckpt_path=ckpt_path)})


def test_a_plan_reads_what_the_settled_checkpoint_implies(tmp_path):
    in_run = str(tmp_path / "version_3" / "checkpoints" / "last.ckpt")
    assert Plan.of(config("fit", in_run)).log_folder == tmp_path / "version_3"  # fit goes on in the run
    assert Plan.of(config("fit", str(tmp_path / "loose.ckpt"))).log_folder is None
    assert Plan.of(config("test", in_run)).log_folder == tmp_path / "version_3" / "test-last"
    assert Plan.of(config("validate", in_run)).log_folder == tmp_path / "version_3" / "validate-last"
    predict = Plan.of(config("predict", in_run))
    assert predict.predict_run == tmp_path / "version_3" and predict.predict_note == "" and predict.log_folder is None
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
    assert checkpoint_to_use("test", None, tmp_path) == (newest, True)
    assert checkpoint_to_use("fit", "last", tmp_path) == (newest, True)
    assert checkpoint_to_use("fit", None, tmp_path) == (None, False)
    with pytest.raises(ConfigError, match="best"):
        checkpoint_to_use("test", "best", tmp_path)
    with pytest.raises(DataError, match="Train first"):
        checkpoint_to_use("test", None, tmp_path / "empty")


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


def test_a_run_logger_numbers_a_resumed_run_as_lightning_does(tmp_path):
    """A resumed run logs as version N (the progress bar's v_num=N); validate and test write a folder of the run."""
    from common.cli.main import run_logger

    resumed = run_logger(tmp_path / "version_12", tmp_path / "elsewhere")
    assert resumed.version == 12 and resumed.log_dir == str(tmp_path / "version_12")
    tested = run_logger(tmp_path / "version_12" / "test-last", tmp_path)
    assert tested.log_dir == str(tmp_path / "version_12" / "test-last")
    (tmp_path / "version_0").mkdir()
    assert run_logger(None, tmp_path).log_dir == str(tmp_path / "version_1")


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


FOLDER = "fashion_cnn.data.ImageFolderDataModule"
# A run's config.yaml as runs wrote it before the sources had DataModules of their own: one flat data section.
OLD_DATA = {"data_dir": None, "batch_size": 8, "download": True, "dataset": "FashionMNIST", "image_size": 20}


def test_an_option_naming_a_source_names_its_datamodule():
    assert with_data_class(["fit", "--data.image_folder", "x"], IMAGE_SOURCES) == [
        "fit", "--data", FOLDER, "--data.image_folder", "x"
    ]  # fmt: skip
    assert with_data_class(["fit", "--data.batch_size=8", "--data.image_folder=x"], IMAGE_SOURCES)[2:4] == [
        "--data", FOLDER
    ]  # fmt: skip
    given = ["fit", "--data", "ImageFolderDataModule", "--data.image_folder", "x"]
    assert with_data_class(given, IMAGE_SOURCES) == given  # a class given is the user's choice
    with pytest.raises(ConfigError, match=r"give one data source: --data\.data_dir or --data\.image_folder"):
        with_data_class(["fit", "--data.data_dir", "d", "--data.image_folder", "x"], IMAGE_SOURCES)


@pytest.mark.parametrize(
    ("data", "chosen", "kept"),
    [
        ({**OLD_DATA, "image_folder": None}, "fashion_cnn.data.FashionMNISTDataModule", {"data_dir", "download"}),
        ({**OLD_DATA, "image_folder": "photos"}, FOLDER, {"image_folder", "image_size"}),
    ],
)
def test_an_older_runs_config_names_the_datamodule_of_its_source(data, chosen, kept, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"seed_everything": 1, "data": data}))
    for given in (["--config", str(path)], [f"--config={path}"]):
        translated = with_data_class(["fit", *given], IMAGE_SOURCES)[-1].removeprefix("--config=")
        section = yaml.safe_load(translated)["data"]
        assert yaml.safe_load(translated)["seed_everything"] == 1 and section["class_path"] == chosen
        assert kept <= set(section["init_args"]) <= set(data) and section["init_args"]["batch_size"] == 8
    assert yaml.safe_load(run_data(path, IMAGE_SOURCES)) == {"data": section}
    current = {"data": {"class_path": FOLDER, "init_args": {"image_folder": "x"}}}
    path.write_text(yaml.safe_dump(current))
    assert with_data_class(["fit", "--config", str(path)], IMAGE_SOURCES)[-1] == str(path)  # read as it is
    assert yaml.safe_load(run_data(path, IMAGE_SOURCES)) == current


def test_an_older_checkpoints_tokenizer_is_found_under_its_former_name():
    """Own texts' checkpoints written before the split keep their tokenizer under SST2DataModule."""
    old = {"SST2DataModule": {"tokenizer": "T"}, "state_dict": {}}
    assert stored_tokenizer(old) == "T"
    rename_data_state(old, SST2DataModule)  # the reference's own name: nothing to rename
    assert "SST2DataModule" in old
    rename_data_state(old, TextFilesDataModule)
    assert old == {"TextFilesDataModule": {"tokenizer": "T"}, "state_dict": {}} and stored_tokenizer(old) == "T"


def test_the_cli_sets_no_field_of_its_own_after_init():
    """WorkflowCLI keeps no state between its hooks: outside __init__ it assigns only LightningCLI's own fields."""
    import ast
    import inspect

    from common.cli.main import WorkflowCLI

    tree = ast.parse(inspect.getsource(WorkflowCLI))
    assigned = {
        (method.name, target.attr)
        for method in tree.body[0].body
        if isinstance(method, ast.FunctionDef) and method.name != "__init__"
        for node in ast.walk(method)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        for target in ast.walk(target)
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"
    }
    assert assigned and {field for _, field in assigned} <= {"config", "model", "datamodule", "trainer"}, assigned
