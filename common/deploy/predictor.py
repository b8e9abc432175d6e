"""What the server and the predict commands ask of a trained classifier, whichever the workflow and whichever the
backend (a checkpoint read with torch, an export read with onnxruntime): declared here, as LitServe declares what it
asks of a model's API in ``LitAPI``. Torch-free, so that a server of an export needs no torch."""

from abc import ABC, abstractmethod

import numpy as np


class Predictor(ABC):
    """A trained classifier, ready to predict.

    ``class_names``: the classes, in the order of the probabilities' columns. ``input_shape``: the shape of one
    input as ``class_probabilities`` takes it, ``None`` for an axis of any length: Fashion's images are
    (channels, size, size), SST-2's token rows (None,).
    """

    class_names: list[str]
    input_shape: tuple[int | None, ...]

    @abstractmethod
    def class_probabilities(self, inputs) -> np.ndarray:
        """(N, classes) float32 class probabilities, one column per class (a binary classifier's too: two), for N
        inputs of ``input_shape`` (a numpy array or a torch tensor)."""

    @abstractmethod
    def predict(self, inputs) -> list[dict]:
        """One row per input, in order, with its ``label`` among ``class_names``."""
