"""A folder of camera photos read for a small model (issue 38, docs/own_data.md): writes camera-sized JPEGs (and a
few PNG and WebP photos) into a scratch folder and prints, side by side, images per second and the peak resident
memory of the project's first read (the whole ``fit --trainer.fast_dev_run true`` process, image_size 64,
image_channels 3, an empty cache), of its second (from the cache), and of the plain single-process PIL loop (open,
convert, resize) over the same files; then the largest and the mean difference the reduced-size JPEG decode makes
to the pixels, and the memory of 100,000 64x64x3 images held as bytes and as float32.

    python bench/camera_photos.py                                  # 400 JPEGs of 4000x3000, 2 PNG, 2 WebP
    python bench/camera_photos.py --photos 100 --width 2000 --height 1500

The photos are sklearn's two sample photos (china.jpg, flower.jpg), cropped, scaled up to the camera's size and
given a sensor's grain; 16 distinct ones, the rest copies of them (a decoder caches nothing between files). Peak
memory is the largest process's (ru_maxrss of the children), not the sum of a process and its decoding workers.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_io import write_result
from PIL import Image
from sklearn.datasets import load_sample_images

from common.decoding import load_image

SIZE = 64
DISTINCT = 16
# The plain way: one process, each file opened, converted and resized.
PLAIN = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file())
images = [np.asarray(Image.open(f).convert("RGB").resize(({size}, {size}), Image.Resampling.LANCZOS)) for f in files]
print(len(images), "images")
"""
# Runs a command and prints its wall time and its processes' peak resident memory, alone in this process, so that
# one measurement's peak is not another's.
MEASURED = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, code)
"""


def photo(source: np.ndarray, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A crop of ``source`` at ``width`` x ``height``, with a sensor's grain."""
    h, w = source.shape[:2]
    top, left = rng.integers(0, h // 5), rng.integers(0, w // 5)
    crop = Image.fromarray(source[top : top + h * 4 // 5, left : left + w * 4 // 5])
    pixels = np.asarray(crop.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.normal(0, 6, (height, width, 1)).astype(np.int16)  # luminance noise, as a phone's sensor gives
    return Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8))


def write_photos(folder: Path, count: int, others: int, width: int, height: int) -> list[Path]:
    """``count`` JPEGs and ``others`` PNG and WebP photos in two class folders; the distinct JPEGs."""
    rng = np.random.default_rng(0)
    sources = load_sample_images().images
    distinct = []
    for i in range(count + others):
        target = folder / "train" / ("china" if i % 2 == 0 else "flower")
        target.mkdir(parents=True, exist_ok=True)
        if i >= count:
            suffix = ".png" if (i - count) % 2 == 0 else ".webp"
            photo(sources[i % 2], width, height, rng).save(target / f"{i:04d}{suffix}")
        elif i < DISTINCT:
            distinct.append(target / f"{i:04d}.jpg")
            photo(sources[i % 2], width, height, rng).save(distinct[-1], quality=92)
        else:
            shutil.copyfile(distinct[i % DISTINCT], target / f"{i:04d}.jpg")
    return distinct


def measured(command: list[str], env: dict) -> tuple[float, int]:
    """``command``'s wall time in seconds and its processes' peak resident bytes."""
    out = subprocess.run([sys.executable, "-c", MEASURED, *command], env=env, capture_output=True, text=True)
    seconds, peak, code = out.stdout.split()
    if code != "0":
        sys.exit(f"{' '.join(command)} failed ({code}): {out.stderr.strip()[-2000:]}")
    return float(seconds), int(peak)


def differences(files: list[Path]) -> tuple[float, float]:
    """The largest and the mean difference, in levels of 255, between the files' pixels decoded reduced and
    decoded whole."""
    found = []
    for file in files:
        reduced = load_image(file, True, size=SIZE, channels=3)[0]
        found.append(np.abs(reduced - load_image(file, True, size=SIZE, channels=3, reduced=False)[0]) * 255)
    return round(float(max(d.max() for d in found)), 1), round(float(np.mean([d.mean() for d in found])), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400, help="JPEG photos written")
    parser.add_argument("--others", type=int, default=4, help="PNG and WebP photos written beside them, half each")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    result = {"cores": cores, "photos": args.photos, "others": args.others, "size": f"{args.width}x{args.height}"}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        distinct = write_photos(scratch / "photos", args.photos, args.others, args.width, args.height)
        files = args.photos + args.others
        env = os.environ | {"XDG_CACHE_HOME": str(scratch / "cache")}  # an empty cache: the first read decodes
        fit = [sys.executable, "-m", "fashion_cnn.train", "fit", "--data.image_folder", str(scratch / "photos")]
        fit += ["--data.image_size", str(SIZE), "--data.image_channels", "3", "--trainer.fast_dev_run", "true"]
        fit += ["--trainer.default_root_dir", str(scratch / "runs"), "--trainer.enable_progress_bar", "false"]
        plain = [sys.executable, "-c", PLAIN.format(size=SIZE), str(scratch / "photos")]
        rows = {}
        for name, command in (("plain PIL loop", plain), ("project, first read", fit), ("project, cached", fit)):
            seconds, peak = measured(command, env)
            rows[name] = {
                "seconds": round(seconds, 1),
                "images_per_s": round(files / seconds, 1),
                "peak_mb": peak // 2**20,
            }
        print(
            f"{files} photos ({args.photos} JPEG, {args.others} PNG/WebP) of {args.width}x{args.height}, {cores} cores:"
        )
        for name, row in rows.items():
            ratio = rows["plain PIL loop"]["seconds"] / row["seconds"]
            print(
                f"  {name:20} {row['seconds']:7.1f} s  {row['images_per_s']:6.1f} images/s  ({ratio:4.1f}x the plain "
                f"loop)  peak {row['peak_mb']:,} MB"
            )
        result["reads"] = rows
        genuine = [Path(name) for name in load_sample_images().filenames]  # two real 640x427 photos
        ours, theirs = differences(distinct), differences(genuine)
        result["reduced_decode_difference"] = {"photos": ours, "sklearn_sample_photos": theirs}
        print(
            f"reduced-size JPEG decode against the full one, at {SIZE}x{SIZE}, in levels of 255: largest {ours[0]}, "
            f"mean {ours[1]} on these photos; largest {theirs[0]}, mean {theirs[1]} on sklearn's two genuine ones"
        )
    held = 100_000 * SIZE * SIZE * 3
    result["held_100k_gb"] = {"uint8": round(held / 1e9, 2), "float32": round(4 * held / 1e9, 2)}
    print(f"100,000 images of {SIZE}x{SIZE}x3 held: {held / 1e9:.2f} GB as bytes, {4 * held / 1e9:.2f} GB as float32")
    write_result(result, args.output, "camera_photos")


if __name__ == "__main__":
    main()
