"""An exported model read with onnxruntime and numpy alone: where torch is not installed, it gives the class
probabilities the checkpoint gave. ``DIR/model.onnx`` maps inputs to probabilities, one column per class; its
metadata names the workflow and the classes."""

import json
from pathlib import Path

import numpy as np

from common.errors import DataError

MODEL_FILE = "model.onnx"


class ExportedModel:
    """``probabilities(inputs)``: the exported network on a numpy batch of any size, ``batch_size`` at a time.
    ``shared_cores``: the process shares its cores with busy others (a server), and waits without spinning."""

    def __init__(self, folder: str | Path, workflow: str, batch_size: int = 1000, shared_cores: bool = False) -> None:
        import onnxruntime  # an optional dependency: pip install .[serve]

        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            raise DataError(f"{path} does not exist: --model names a folder written by the export command.")
        try:
            options = onnxruntime.SessionOptions()
            if shared_cores:
                # Alone on a machine, onnxruntime's threads spin while they wait for work, which is fastest; beside
                # busy processes (a server's HTTP process) that steals their cores: asleep while they wait.
                # (bench/serve_load.py: SST-2's export went from 0.64x to 0.80x of the no-op server; one thread
                # instead of one a core gave 0.76x.)
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
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
