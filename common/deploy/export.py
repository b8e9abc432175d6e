"""A checkpoint to an ONNX model of its class probabilities, with a dynamic batch axis: the network and the last
activation (softmax, or the sigmoid's two columns), so that the exported model needs nothing of torch to read."""

import argparse
import contextlib
import io
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import onnxscript.optimizer
import torch
from torch import nn

from common.checkpoints import per_class
from common.deploy.console import program
from common.deploy.exported import MODEL_FILE
from common.ensemble import load_models
from common.errors import DataError, exit_on_reported_error


class Probabilities(nn.Module):
    """A classifier's probabilities, one column per class."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return per_class(self.model.probabilities(self.model(inputs)))


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    folder: Path,
    metadata: dict[str, str],
    sequence: bool = False,
    translations: dict | None = None,
) -> Path:
    """Writes ``folder/model.onnx`` from ``model`` (in eval mode, on the CPU) traced on ``example``, any batch size
    allowed (and, with ``sequence``, any length of the second axis); ``metadata`` is stored in the model.
    ``translations`` maps the model's own torch operators to the onnxscript functions that write them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODEL_FILE
    network = Probabilities(model.eval().cpu()).eval()
    dims = {0: torch.export.Dim("batch", min=1)} | ({1: torch.export.Dim("length", min=2)} if sequence else {})
    # torch's exporter built on torch.export: the TorchScript one (dynamo=False) traced these models wrongly.
    program = torch.onnx.export(
        network,
        (example,),
        dynamo=True,
        input_names=["inputs"],
        output_names=["probabilities"],
        dynamic_shapes={"inputs": dims},
        custom_translation_table=translations,
        verbose=False,
    )
    # Computations on the weights alone (such as a reordering of gates) done once here, not at every call: the
    # optimizer's default folds only tensors of up to 8,192 values.
    largest = max(parameter.numel() for parameter in network.parameters())
    onnxscript.optimizer.optimize(program.model, input_size_limit=largest, output_size_limit=largest)
    proto = program.model_proto
    for key, value in (metadata | model.export_metadata()).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def export_command(
    args: list[str] | None,
    *,
    workflow: str,
    model_class: type,
    example: torch.Tensor | Callable[[nn.Module], torch.Tensor],
    metadata: dict[str, str],
    sequence: bool = False,
    beside=None,
    translations: dict | None = None,
) -> None:
    """The export command of a workflow: ``--ckpt CKPT --output DIR`` writes ``DIR/model.onnx``, and ``--ckpt``
    repeated one model of the checkpoints' ensemble; ``beside(ckpts, checkpoints, folder)`` writes what else the
    export needs (SST-2's tokenizer) from the checkpoints' paths and the dicts already read from them. ``example`` is an input to trace the model on, or makes one of the model."""
    command = workflow.replace("_", "-")
    parser = argparse.ArgumentParser(
        prog=program(f"{command}-export", f"{workflow}.export"),
        description=f"Export a {workflow} checkpoint, or the ensemble of several, to DIR/model.onnx (class "
        f"probabilities, any batch size), for {command}-predict --model DIR and {command}-serve --model DIR, which "
        "then need onnxruntime, not torch.",
    )
    parser.add_argument(
        "--ckpt",
        required=True,
        action="append",
        help=f"a checkpoint of {command} (python -m {workflow}.train); repeated, an ensemble: one model that averages "
        "the members' class probabilities",
    )
    parser.add_argument("--output", required=True, type=Path, help="the folder to write model.onnx into")
    parser.add_argument("--force", action="store_true", help="write into a folder that holds other files")
    options = parser.parse_args(args)
    with exit_on_reported_error():
        model, checkpoints = load_models(options.ckpt, model_class)
        with staged(options.output, options.force) as staging:
            if beside is not None:  # first: it may refuse the checkpoints (an ensemble's differing tokenizers)
                beside(options.ckpt, checkpoints, staging)
            # The exporter's progress lines and its warnings about torch's own internals are not the user's concern.
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced_on = example(model) if callable(example) else example
                export_onnx(model, traced_on, staging, metadata, sequence, translations)
        print(f"Exported: {options.output / MODEL_FILE}")


@contextlib.contextmanager
def staged(output: Path, force: bool) -> Iterator[Path]:
    """A new hidden folder inside ``output`` to write the export into; its files are moved into ``output`` once all
    are written. Refused before anything is written: ``output`` a file, a folder of other files (unless ``force``), a
    place that cannot be written. Whatever happens, nothing is left but a whole export: not the staging folder,
    nor the folders made for ``output``."""
    if output.exists() and not output.is_dir():
        raise DataError(f"--output {output} is a file; give a folder.")
    if output.is_dir() and any(output.iterdir()) and not (output / MODEL_FILE).is_file() and not force:
        raise DataError(
            f"--output {output} holds other files and no export: give a new or empty folder, or add --force to "
            "write model.onnx among them."
        )
    made = [folder for folder in (output, *output.parents) if not folder.exists()]
    try:
        output.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=output))
    except OSError as error:
        _remove_empty(made)
        raise DataError(f"--output {output} cannot be written ({error.strerror or error}).") from None
    try:
        yield staging
        for file in staging.iterdir():
            file.replace(output / file.name)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(made)
        if isinstance(error, OSError):  # a full disk, a folder removed underneath
            raise DataError(f"--output {output}: writing the export failed ({error.strerror or error}).") from None
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # the deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()
