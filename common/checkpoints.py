"""Reading checkpoints, checked, and predicting with their models: what both workflows' predict and export
commands, the CLI's ensembles and the benchmarks share."""

import pickle
import zipfile
from pathlib import Path

import torch

from common.errors import DataError


def read_checkpoint(path: str | Path, model_class: type) -> tuple[dict, torch.nn.Module]:
    """A checkpoint of ``model_class`` and its model (Lightning's ``load_from_checkpoint``: built from the saved
    hyper-parameters, weights loaded, on the CPU), or a DataError saying why not: missing, unreadable, not
    Lightning's, or saved by another model.

    Read with ``weights_only=True``: tensors and plain containers only, no arbitrary objects unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:200]
        raise DataError(f"{path} is not a readable PyTorch Lightning checkpoint ({reason}).") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DataError(f"{path} is not a PyTorch Lightning checkpoint (it holds no state_dict).")
    try:
        model = model_class.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except (TypeError, ValueError, KeyError, RuntimeError):  # unknown arguments, another class, other weights
        raise DataError(
            f"{path} was not saved by a {model_class.__name__}: is it a checkpoint of the other workflow?"
        ) from None
    return checkpoint, model


def load_checkpoint(path: str | Path, model_class: type) -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint, in eval mode on the CPU, and the checkpoint itself."""
    checkpoint, model = read_checkpoint(path, model_class)
    return model.eval(), checkpoint


def load_models(paths: list[str | Path], model_class: type) -> torch.nn.Module:
    """The model of one checkpoint, or the ensemble of several (the mean of their class probabilities), in eval
    mode on the CPU."""
    from common.ensemble import EnsembleClassifier

    models = [load_checkpoint(path, model_class)[0] for path in paths]
    try:
        return models[0] if len(models) == 1 else EnsembleClassifier(models).eval()
    except ValueError as error:  # members of other classes or inputs
        raise DataError(str(error)) from None


@torch.inference_mode()
def batched_probabilities(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's class probabilities for ``inputs``, ``batch_size`` at a time on the model's device, without
    autograd; returned on the CPU."""
    device = next(model.parameters()).device
    return torch.cat([model.probabilities(model(chunk.to(device))).cpu() for chunk in inputs.split(batch_size)])


def per_class(probabilities: torch.Tensor) -> torch.Tensor:
    """A column per class: one sigmoid output, the probability of the second (positive) class, becomes two."""
    if probabilities.dim() == 1:
        return torch.stack([1 - probabilities, probabilities], dim=1)
    return probabilities
