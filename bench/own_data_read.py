"""How long one's own data takes to read (docs/own_data.md): Fashion-MNIST's 70,000 images written out as PNG files
in class folders, read by the DataModule the first time (decoding every file) and again (from the cache); and
SST-2's training set written as a CSV with named labels, read as one's own texts, against the GLUE TSV path, the
two taking turns.

    DATA_DIR=~/datasets python bench/own_data_read.py
    DATA_DIR=~/datasets python bench/own_data_read.py --images 10000 --repeats 3
"""

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_io import write_result
from PIL import Image

from common.data import resolve_data_dir
from common.texts import read_texts
from fashion_cnn.data import ImageFolderDataModule, load_split, locate
from sst2_bilstm.data import CLASS_NAMES, load_tsv


def write_pngs(folder: Path, limit: int) -> int:
    """The genuine Fashion-MNIST images as PNG files, train/<label>/ and test/<label>/; how many."""
    root, count = locate(resolve_data_dir(None), download=False), 0
    for split in ("train", "test"):
        images, labels = load_split(root, train=split == "train")
        pixels = images[:limit, 0].mul(255).round().byte().numpy()
        for i, (image, label) in enumerate(zip(pixels, labels[:limit].tolist())):
            target = folder / split / str(label)
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{i:05d}.png")
            count += 1
    return count


def timed(read) -> float:
    start = time.perf_counter()
    read()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60_000, help="training images written (the test's up to 10,000)")
    parser.add_argument("--repeats", type=int, default=5, help="reads of each text path, taking turns")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    result = {"cpu_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")  # an empty cache: the first read decodes
        count = write_pngs(scratch / "images", args.images)

        def read_folder() -> None:
            ImageFolderDataModule(image_folder=str(scratch / "images")).setup("fit")

        first, cached = timed(read_folder), timed(read_folder)
        result["images"] = {"files": count, "first_read_s": round(first, 2), "cached_read_s": round(cached, 2)}
        print(f"{count:,} PNG files: first read {first:.1f} s, from the cache {cached:.2f} s")

        glue = resolve_data_dir(None) / "SST-2" / "train.tsv"
        sentences, labels = load_tsv(glue)
        named = scratch / "train.csv"
        with named.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["sentence", "label"])
            writer.writerows((s, CLASS_NAMES[int(label)]) for s, label in zip(sentences, labels.tolist()))
        tsv_times, csv_times = [], []
        for _ in range(args.repeats):
            tsv_times.append(timed(lambda: load_tsv(glue)))
            csv_times.append(timed(lambda: read_texts(named, None, "label")))
        tsv, csv_ = statistics.median(tsv_times), statistics.median(csv_times)
        result["texts"] = {
            "rows": len(sentences),
            "tsv_s": round(tsv, 3),
            "csv_s": round(csv_, 3),
            "ratio": round(csv_ / tsv, 2),
        }
        print(f"SST-2 train, {len(sentences):,} rows: GLUE TSV {tsv:.3f} s, CSV {csv_:.3f} s ({csv_ / tsv:.2f}x)")
    write_result(result, args.output, "own_data_read")


if __name__ == "__main__":
    main()
