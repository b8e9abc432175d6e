"""How closely ONNX exports agree with their checkpoints, on the whole test split of each workflow's dataset: the
largest absolute difference of a class probability, and the share of inputs whose predicted class is the same.

    DATA_DIR=~/datasets python bench/export_agreement.py runs/fashion_cnn/version_0 runs/sst2_bilstm_packed/version_0 \\
        plus_ensemble=runs/sst2_bilstm_plus/version_0,runs/sst2_bilstm_plus/version_1,runs/sst2_bilstm_plus/version_2

Each model (bench/exports.py: a run folder or checkpoint, or several joined by commas for their ensemble) is
exported by its workflow's export command into a temporary folder; then the checkpoints (torch) and the export
(onnxruntime) are read with the predictors' ``load``. Prints a table, and writes JSON. The targets: a difference
of at most 1e-4, and at least 99.95% of the classes the same.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_io import write_result
from exports import class_probabilities, model, test_inputs

MAX_DIFFERENCE, MIN_SAME_CLASS = 1e-4, 0.9995


def agreement(torch_p: np.ndarray, onnx_p: np.ndarray) -> dict:
    return {
        "samples": len(torch_p),
        "max_abs_difference": float(np.abs(torch_p - onnx_p).max()),
        "same_class": float((torch_p.argmax(axis=1) == onnx_p.argmax(axis=1)).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="[NAME=]CKPT_OR_RUN[,CKPT_OR_RUN...]")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    models = [model(spec) for spec in args.models]  # read after parsing: a usage error comes first
    result, inputs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for spec in models:
            if spec.workflow not in inputs:
                inputs[spec.workflow] = test_inputs(spec.workflow)
            data = inputs[spec.workflow]
            exported = spec.export(Path(folder))
            torch_p = class_probabilities(spec.predictor(), spec.workflow, data)
            onnx_p = class_probabilities(spec.predictor(exported), spec.workflow, data)
            members = len(spec.checkpoints)
            result[spec.name] = agreement(torch_p, onnx_p) | {"workflow": spec.workflow, "members": members}
    print("\n| model | test inputs | largest difference of a probability | same predicted class | within the targets |")
    print("|---|---:|---:|---:|---|")
    for name, figures in result.items():
        within = figures["max_abs_difference"] <= MAX_DIFFERENCE and figures["same_class"] >= MIN_SAME_CLASS
        label = name + (f" ({figures['members']} checkpoints)" if figures["members"] > 1 else "")
        print(
            f"| {label} | {figures['samples']:,} | {figures['max_abs_difference']:.2e} | "
            f"{100 * figures['same_class']:.2f}% | {'yes' if within else 'NO'} |"
        )
    write_result(result, args.output, "export_agreement")


if __name__ == "__main__":
    main()
