"""An exported model read with onnxruntime and numpy alone: where torch is not installed, it gives the class
probabilities the checkpoint gave. ``DIR/model.onnx`` maps inputs to probabilities, one column per class; its
metadata names the workflow and the classes."""

import json
from pathlib import Path

import numpy as np

from common.errors import DataError

MODEL_FILE = "model.onnx"


class ExportedModel:
    """``probabilities(inputs)``: the exported network on a numpy batch of any size, ``batch_size`` at a time."""

    def __init__(self, folder: str | Path, workflow: str, batch_size: int = 1000) -> None:
        import onnxruntime  # an optional dependency: pip install .[serve]

        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            raise DataError(f"{path} does not exist: --model names a folder written by the export command.")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own error types are not public
            raise DataError(f"{path} is not a readable ONNX model ({str(error).splitlines()[0][:200]}).") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if metadata.get("workflow") != workflow:
            raise DataError(f"{path} was exported from {metadata.get('workflow') or 'another model'}, not {workflow}.")
        self.folder = Path(folder)
        self.metadata = metadata
        self.class_names: list[str] = json.loads(metadata["class_names"])
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = batch_size

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        chunks = [inputs[i : i + self.batch_size] for i in range(0, len(inputs), self.batch_size)]
        outputs = [self.session.run(None, {self.input_name: chunk})[0] for chunk in chunks]
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.class_names)), np.float32)
