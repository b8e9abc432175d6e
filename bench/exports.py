"""What the export benchmarks share: the models named on their command line (a checkpoint, or the checkpoints of an
ensemble), their exports, and each workflow's test inputs and class probabilities.

A model is ``[NAME=]CKPT[,CKPT...]``: a run's checkpoint (or a run folder, for the checkpoint its fit tested, as
metrics.json names it), or several joined by commas for their ensemble. NAME labels its rows (default: the run
folder's parent, as in runs/<config>/version_N).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DataError
from fashion_cnn import export as fashion_export
from fashion_cnn import predict as fashion_predict
from fashion_cnn.model import FashionCNN
from sst2_bilstm import export as sst2_export
from sst2_bilstm import predict as sst2_predict
from sst2_bilstm.model import SST2BiLSTM

WORKFLOWS = {
    "fashion_cnn": (FashionCNN, fashion_export, fashion_predict),
    "sst2_bilstm": (SST2BiLSTM, sst2_export, sst2_predict),
}


@dataclass
class Model:
    name: str
    workflow: str
    checkpoints: list[str]

    def predictor(self, export: Path | None = None):
        """The checkpoints' predictor (torch), or with ``export`` the export's (onnxruntime)."""
        load = WORKFLOWS[self.workflow][2].load
        return load(export) if export else load(*self.checkpoints)

    def export(self, folder: Path) -> Path:
        """The model exported by its workflow's export command into ``folder/<name>``."""
        output = folder / self.name
        WORKFLOWS[self.workflow][1].main(
            [arg for c in self.checkpoints for arg in ("--ckpt", c)] + ["--output", str(output)]
        )
        return output


def model(spec: str) -> Model:
    name, _, paths = spec.rpartition("=")
    checkpoints = [_checkpoint(Path(path)) for path in paths.split(",")]
    run = Path(checkpoints[0]).resolve().parent.parent  # runs/<config>/version_N/checkpoints/x.ckpt
    workflows = {_workflow(path) for path in checkpoints}
    if len(workflows) > 1:
        raise SystemExit(f"{spec}: the checkpoints of one model come from one workflow.")
    return Model(name or run.parent.name, workflows.pop(), checkpoints)


def _checkpoint(path: Path) -> str:
    if path.is_dir():
        return str(path / json.loads((path / "metrics.json").read_text())["checkpoint"])  # relative to the run
    return str(path)


def _workflow(path: str) -> str:
    from common.checkpoints import read_checkpoint

    for workflow, (model_class, *_) in WORKFLOWS.items():
        try:
            read_checkpoint(path, model_class)
            return workflow
        except DataError:
            continue
    raise SystemExit(f"{path} is a checkpoint of neither workflow.")


def test_inputs(workflow: str) -> list:
    """The whole test split: Fashion-MNIST's 10,000 images (arrays), or SST-2's 872 sentences (raw text)."""
    if workflow == "fashion_cnn":
        from fashion_cnn.data import FashionMNISTDataModule

        data = FashionMNISTDataModule()
        data.prepare_data()
        data.setup("test")
        return list(data.test_set[0].numpy())
    from sst2_bilstm.data import SST2DataModule

    data = SST2DataModule()
    data.setup("test")
    return list(data.texts["test"][0])


def class_probabilities(predictor, workflow: str, inputs: list) -> np.ndarray:
    """(N, classes) for the inputs; sentences read by the predictor's own tokenizer."""
    if workflow == "fashion_cnn":
        return predictor.class_probabilities(np.stack(inputs))
    return predictor.class_probabilities(predictor.encoded(inputs)[0])
