"""Every shipped config of configs/ through every path, on tiny data: fit, validate and test from its checkpoint,
the CLI's predict, the predict command, the export (compared with the checkpoint) and the export's server. A
config added to configs/ joins the matrix; its workflow is the one its file name starts with.

One tiny run and one export per config, shared by that config's tests (``xdist_group`` keeps them on one worker):
the shipped config with tiny data, one epoch of a few batches, and for SST-2 tiny layers."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fashion_cnn.export
import fashion_cnn.predict
import fashion_cnn.train
import sst2_bilstm.export
import sst2_bilstm.predict
import sst2_bilstm.train
from tests.conftest import REPO, tiny_run, write_fashion_mnist, write_sst2
from tests.test_serve import Server

CONFIGS = sorted(path.name for path in (REPO / "configs").glob("*.yaml"))
WORKFLOWS = {
    "fashion_cnn": (fashion_cnn.train, fashion_cnn.predict, fashion_cnn.export),
    "sst2_bilstm": (sst2_bilstm.train, sst2_bilstm.predict, sst2_bilstm.export),
}
SENTENCES = ["good the film is , really", "bad", "zzzz unknown words", "", "the " * 60 + "great"]


def workflow_of(config: str) -> str:
    workflows = [name for name in WORKFLOWS if config.startswith(name)]
    assert workflows, f"configs/{config} starts with no workflow's name: {', '.join(WORKFLOWS)}"
    return workflows[0]


class Run:
    """One config's tiny run: its options (the config and the tiny data), its folder and its checkpoint."""

    def __init__(self, config: str, root: Path) -> None:
        self.config, self.root, self.workflow = config, root, workflow_of(config)
        self.train, self.predict, self.export = WORKFLOWS[self.workflow]
        if self.workflow == "fashion_cnn":
            data, batch_size, self.inputs = write_fashion_mnist(root / "data"), "16", self._images()
        else:
            data, batch_size, self.inputs = write_sst2(root / "data"), "8", SENTENCES
        extra = ["--data.batch_size", batch_size, "--trainer.enable_model_summary", "false"]
        self.options = tiny_run(
            self.workflow, data, root / "runs", *extra, command=None, config=REPO / "configs" / config
        )
        self.folder = root / "runs" / "version_0"

    def _images(self) -> list[str]:
        rng = np.random.default_rng(0)
        paths = []
        for i in range(3):
            path = self.root / f"image{i}.png"
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(path)
            paths.append(str(path))
        return paths

    @property
    def checkpoint(self) -> str:
        return str(self.folder / json.loads((self.folder / "metrics.json").read_text())["checkpoint"])

    def probabilities(self, predictor) -> np.ndarray:
        if self.workflow == "fashion_cnn":
            images = np.stack([fashion_cnn.predict.load_image(Path(p))[0] for p in self.inputs])
            return predictor.class_probabilities(images)
        return predictor.class_probabilities(predictor.encoded(self.inputs)[0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The tiny run of each config, made when one of its tests first asks."""
    made = {}

    def run(config: str) -> Run:
        if config not in made:
            made[config] = Run(config, tmp_path_factory.mktemp(config.removesuffix(".yaml")))
            made[config].train.main(["fit", *made[config].options])
        return made[config]

    return run


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory) -> dict:
    made = {}

    def export(config: str) -> Path:
        if config not in made:
            run = runs(config)
            made[config] = run.root / "export"
            run.export.main(["--ckpt", run.checkpoint, "--output", str(made[config])])
        return made[config]

    return export


matrix = pytest.mark.parametrize("config", [pytest.param(c, marks=pytest.mark.xdist_group(c)) for c in CONFIGS])


@matrix
def test_fit_writes_a_run_with_a_checkpoint_and_a_report(config, runs):
    run = runs(config)
    metrics = json.loads((run.folder / "metrics.json").read_text())
    assert Path(run.checkpoint).is_file() and (run.folder / "report.md").is_file()
    assert len(metrics["history"]) == 1 and 0 <= metrics["test"]["accuracy"] <= 1


@matrix
def test_validate_and_test_from_the_checkpoint(config, runs):
    run = runs(config)
    run.train.main(["validate", *run.options, "--ckpt_path", run.checkpoint])
    run.train.main(["test", *run.options, "--ckpt_path", run.checkpoint])
    # Into the checkpoint's run, beside fit's report, in a folder named after the checkpoint.
    tested_in = run.folder / f"test-{Path(run.checkpoint).stem}"
    tested, fitted = (json.loads((folder / "metrics.json").read_text()) for folder in (tested_in, run.folder))
    assert (tested_in / tested["checkpoint"]).resolve() == Path(run.checkpoint).resolve()
    assert (run.folder / f"validate-{Path(run.checkpoint).stem}").is_dir()
    assert tested["test"] == pytest.approx(fitted["test"], abs=1e-6)  # the test split scores as fit's test did


@matrix
def test_the_cli_predict_writes_a_row_per_test_input(config, runs):
    run = runs(config)
    run.train.main(["predict", *run.options, "--ckpt_path", run.checkpoint])
    with (run.folder / f"predictions-{Path(run.checkpoint).stem}.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == (32 if run.workflow == "fashion_cnn" else 20)


@matrix
def test_the_predict_command_reads_a_users_inputs(config, runs, tmp_path):
    run = runs(config)
    output = tmp_path / "predictions.json"
    run.predict.main(["--ckpt", run.checkpoint, *run.inputs, "--output", str(output)])
    assert len(json.loads(output.read_text())) == len(run.inputs)


@matrix
def test_the_export_predicts_what_the_checkpoint_does(config, runs, exports):
    run, folder = runs(config), exports(config)
    expected = run.probabilities(run.predict.load(run.checkpoint))
    assert np.abs(run.probabilities(run.predict.load(folder)) - expected).max() < 1e-5


@matrix
def test_the_exports_server_answers(config, runs, exports):
    run, folder = runs(config), exports(config)
    server = Server(run.workflow, "--model", str(folder))
    try:
        if run.workflow == "fashion_cnn":
            inputs = [np.asarray(Image.open(run.inputs[0]), np.float32) / 255]
            expected = run.predict.load(folder).class_probabilities(inputs[0])[0]
            inputs = [inputs[0].tolist()]
        else:
            inputs = run.inputs[:1]
            predictor = run.predict.load(folder)
            expected = predictor.class_probabilities(predictor.encoded(inputs)[0])[0]
        status, reply = server.predict({"inputs": inputs})
        assert status == 200, reply
        answered = reply["predictions"][0]["probabilities"]
        assert np.abs([answered[name] for name in run.predict.load(folder).class_names] - expected).max() < 1e-6
        assert server.stop() == 0
    finally:
        server.kill()
