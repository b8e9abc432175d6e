"""Prediction throughput of checkpoints (torch) and their ONNX exports (onnxruntime), side by side: inputs per
second in one batch of --batch inputs, and one input per call, through the same ``load(...).predict(...)`` path as
the command lines. Prints a table and writes JSON.

    DATA_DIR=~/datasets python bench/predict_throughput.py runs/sst2_bilstm/version_0 runs/sst2_bilstm_packed/version_0

Models as in bench/exports.py (a run folder or checkpoint; several joined by commas, an ensemble). Images are timed
from arrays (decoding excluded); sentences from raw text (tokenization included), the first of the test split.
Every model and runtime is timed in each repeat, in turn, so that all share the machine's drift; each figure is
the median of --repeats, after one warm-up. The last table compares each export with the first export of its
workflow, on the same inputs in the same repeats.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_io import write_result
from exports import model, test_inputs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(calls: dict, repeats: int) -> dict:
    """Seconds of each call (the median of ``repeats``), the calls taking turns in each repeat."""
    for fn in calls.values():
        fn()
    times = {key: [] for key in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            times[key].append(timed(fn))
    return {key: statistics.median(seconds) for key, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="[NAME=]CKPT_OR_RUN[,CKPT_OR_RUN...]")
    parser.add_argument("--batch", type=int, default=1000, help="inputs predicted in one call")
    parser.add_argument("--singles", type=int, default=200, help="inputs predicted one call each")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    models = [model(spec) for spec in args.models]  # read after parsing: a usage error comes first
    inputs = {}
    for spec in models:
        if spec.workflow not in inputs:
            data = test_inputs(spec.workflow)[: args.batch]
            inputs[spec.workflow] = np.stack(data) if spec.workflow == "fashion_cnn" else data
    calls = {"batched": {}, "one a call": {}}
    counts = {}
    with tempfile.TemporaryDirectory() as folder:
        for spec in models:
            data = inputs[spec.workflow]
            few = [data[i : i + 1] for i in range(min(args.singles, len(data)))]
            counts[spec.name] = {"batched": len(data), "one a call": len(few)}
            exported = spec.export(Path(folder))
            for runtime, predictor in (("torch", spec.predictor()), ("onnxruntime", spec.predictor(exported))):
                calls["batched"][spec.name, runtime] = lambda p=predictor, d=data: p.predict(d)
                calls["one a call"][spec.name, runtime] = lambda p=predictor, f=few: [p.predict(one) for one in f]
        seconds = {kind: side_by_side(kind_calls, args.repeats) for kind, kind_calls in calls.items()}
    rows = {}
    for spec in models:
        for kind, timing in seconds.items():
            rows[f"{spec.name}, {kind}"] = {
                runtime: counts[spec.name][kind] / timing[spec.name, runtime] for runtime in ("torch", "onnxruntime")
            } | {"workflow": spec.workflow, "model": spec.name, "kind": kind}
    threads = torch.get_num_threads()
    print(f"\nprediction on the CPU, {threads} torch threads, median of {args.repeats}, inputs per second")
    print("| model, inputs | torch | onnxruntime | onnxruntime / torch |\n|---|---:|---:|---:|")
    for label, row in rows.items():
        ratio = row["onnxruntime"] / row["torch"]
        print(f"| {label} | {row['torch']:,.0f} | {row['onnxruntime']:,.0f} | {ratio:.2f}x |")
    print("\n| export, inputs | onnxruntime | / the first export of its workflow |\n|---|---:|---:|")
    for label, row in rows.items():
        first = next(r for r in rows.values() if r["workflow"] == row["workflow"] and r["kind"] == row["kind"])
        print(
            f"| {label} | {row['onnxruntime']:,.0f} | {row['onnxruntime'] / first['onnxruntime']:.2f}x ({first['model']}) |"
        )
    write_result(
        {"batch": args.batch, "singles": args.singles, "torch_threads": threads, "rows": rows},
        args.output,
        "predict_throughput",
    )


if __name__ == "__main__":
    main()
