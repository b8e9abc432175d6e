"""Reading checkpoints, checked, and predicting with their models: what both workflows' predict and export
commands, the CLI, the ensembles and the benchmarks share."""

import inspect
import pickle
import zipfile
from pathlib import Path

import torch

from common.errors import DataError


def read_checkpoint(path: str | Path, model_class: type) -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint of ``model_class``, on the CPU, and the checkpoint itself, read once; or a
    DataError saying why not: missing, unreadable, not Lightning's, or saved by another model.

    Read with ``weights_only=True``: tensors and plain containers only, no arbitrary objects unpickled. The model is
    built as Lightning's ``load_from_checkpoint`` builds it (from the saved hyper-parameters, then the weights), from
    the dict read here instead of reading the file again.
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
    saved = checkpoint.get(model_class.CHECKPOINT_HYPER_PARAMS_KEY) or {}
    taken = {name: value for name, value in saved.items() if name in inspect.signature(model_class).parameters}
    try:
        model = built(model_class, taken, checkpoint)
    except (TypeError, ValueError, KeyError, RuntimeError) as error:  # unknown arguments, other weights
        if len(taken) * 2 < len(saved):  # most of its settings mean nothing here
            raise DataError(
                f"{path} was not saved by a {model_class.__name__}: is it a checkpoint of the other workflow?"
            ) from None
        reason = str(error).strip().splitlines()[0][:200]
        raise DataError(
            f"{path} is a {model_class.__name__} checkpoint that this version cannot load ({reason}): was it "
            "saved by an older version of the project?"
        ) from None
    return model, checkpoint


def built(model_class: type, arguments: dict, checkpoint: dict) -> torch.nn.Module:
    """``model_class(**arguments)`` (a checkpoint's hyper-parameters that its constructor takes, as Lightning
    passes them; our modules take no ``**kwargs``) with the checkpoint's weights loaded, strictly."""
    # Building draws the initial weights, which the checkpoint's replace: the caller's random generator untouched,
    # as ClassifierModule.load_from_checkpoint leaves it.
    with torch.random.fork_rng(devices=[]):
        model = model_class(**arguments)
    model.on_load_checkpoint(checkpoint)  # Lightning's hook, as load_from_checkpoint calls it
    model.load_state_dict(checkpoint["state_dict"])
    return model


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
