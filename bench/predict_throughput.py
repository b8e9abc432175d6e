"""Prediction throughput from checkpoints: images and sentences per second for batches of 1,000, through the
same ``load(ckpt).predict(...)`` path as the command lines. Prints a table and writes JSON.

    DATA_DIR=~/datasets python bench/predict_throughput.py \\
        --fashion-ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt \\
        --sst2-ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt

Images are timed from tensors and from PNG files (decoding included); sentences from raw text (tokenization
included). The median of --repeats runs is reported, after one warm-up run.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_io import write_result
from PIL import Image

from common.data import resolve_data_dir
from fashion_cnn import predict as fashion_predict
from fashion_cnn.data import FashionMNISTDataModule


def per_second(fn, count: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return count / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-ckpt", required=True)
    parser.add_argument("--sst2-ckpt", required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    from sst2_bilstm import predict as sst2_predict  # after argparse: --help stays fast

    data = FashionMNISTDataModule()
    data.prepare_data()
    data.setup("test")
    images = data.test_set[0][: args.batch]
    fashion = fashion_predict.load(args.fashion_ckpt)
    fashion.model.to(args.accelerator)
    result = {"batch": args.batch, "accelerator": args.accelerator, "torch_threads": torch.get_num_threads()}
    result["images_per_s_from_tensors"] = per_second(lambda: fashion.predict(images), len(images), args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for i, image in enumerate(images):
            files.append(Path(folder) / f"{i:04d}.png")
            Image.fromarray((image[0] * 255).round().byte().numpy()).save(files[-1])

        def from_png():
            fashion.predict(torch.stack([fashion_predict.read_image(f) for f in files]))

        result["images_per_s_from_png"] = per_second(from_png, len(files), args.repeats)

    lines = (resolve_data_dir(None) / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines[: args.batch]]
    sst2 = sst2_predict.load(args.sst2_ckpt)
    sst2.model.to(args.accelerator)
    result["sentences_per_s"] = per_second(lambda: sst2.predict(sentences), len(sentences), args.repeats)

    print(
        f"\nprediction on {args.accelerator}, batches of {args.batch}, {result['torch_threads']} threads, "
        f"median of {args.repeats}"
    )
    print("| input | per second |\n|---|---:|")
    labels = {
        "images_per_s_from_tensors": "images, from tensors",
        "images_per_s_from_png": "images, from PNG files",
        "sentences_per_s": "sentences, from text",
    }
    for key, label in labels.items():
        print(f"| {label} | {result[key]:,.0f} |")
    write_result(result, args.output, f"predict_throughput_{args.accelerator}")


if __name__ == "__main__":
    main()
