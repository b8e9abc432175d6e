"""Prediction throughput, a checkpoint (torch) against its ONNX export (onnxruntime), side by side: inputs per
second in batches of --batch, and one input per call, through the same ``load(...).predict(...)`` path as the
command lines. Prints a table and writes JSON.

    DATA_DIR=~/datasets python bench/predict_throughput.py \\
        --fashion-ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt \\
        --sst2-ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt

Images are timed from arrays (decoding excluded); sentences from raw text (tokenization included). Each figure
is the median of --repeats runs after one warm-up run; torch and onnxruntime alternate within each repeat.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_io import write_result

from common.data import resolve_data_dir
from fashion_cnn import export as fashion_export
from fashion_cnn import predict as fashion_predict
from fashion_cnn.data import FashionMNISTDataModule


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(calls: dict, count: int, repeats: int) -> dict[str, float]:
    """Inputs per second of each call, ``count`` inputs a call, the calls alternating in each repeat."""
    for fn in calls.values():
        fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(timed(fn))
    return {name: count / statistics.median(seconds) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-ckpt", required=True)
    parser.add_argument("--sst2-ckpt", required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=200, help="inputs predicted one call each")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    from sst2_bilstm import export as sst2_export  # after argparse: --help stays fast
    from sst2_bilstm import predict as sst2_predict

    data = FashionMNISTDataModule()
    data.prepare_data()
    data.setup("test")
    images = data.test_set[0][: args.batch].numpy()
    lines = (resolve_data_dir(None) / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines[: args.batch]]
    result = {"batch": args.batch, "singles": args.singles, "torch_threads": torch.get_num_threads(), "rows": {}}
    with tempfile.TemporaryDirectory() as folder:
        fashion_export.main(["--ckpt", args.fashion_ckpt, "--output", f"{folder}/fashion"])
        sst2_export.main(["--ckpt", args.sst2_ckpt, "--output", f"{folder}/sst2"])
        fashion = {
            "torch": fashion_predict.load(args.fashion_ckpt),
            "onnxruntime": fashion_predict.load(f"{folder}/fashion"),
        }
        sst2 = {"torch": sst2_predict.load(args.sst2_ckpt), "onnxruntime": sst2_predict.load(f"{folder}/sst2")}
        few_images, few_sentences = images[: args.singles], sentences[: args.singles]
        rows = {
            "images, batched": side_by_side(
                {k: lambda p=p: p.predict(images) for k, p in fashion.items()}, len(images), args.repeats
            ),
            "images, one a call": side_by_side(
                {k: lambda p=p: [p.predict(image[None]) for image in few_images] for k, p in fashion.items()},
                len(few_images),
                args.repeats,
            ),
            "sentences, batched": side_by_side(
                {k: lambda p=p: p.predict(sentences) for k, p in sst2.items()}, len(sentences), args.repeats
            ),
            "sentences, one a call": side_by_side(
                {k: lambda p=p: [p.predict([s]) for s in few_sentences] for k, p in sst2.items()},
                len(few_sentences),
                args.repeats,
            ),
        }
    result["rows"] = rows
    print(
        f"\nprediction on the CPU, {result['torch_threads']} torch threads, median of {args.repeats}, inputs per second"
    )
    print("| input | torch | onnxruntime | onnxruntime / torch |\n|---|---:|---:|---:|")
    for label, figures in rows.items():
        ratio = figures["onnxruntime"] / figures["torch"]
        print(f"| {label} | {figures['torch']:,.0f} | {figures['onnxruntime']:,.0f} | {ratio:.2f}x |")
    write_result(result, args.output, "predict_throughput")


if __name__ == "__main__":
    main()
