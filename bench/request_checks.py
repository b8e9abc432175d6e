"""What the server's checks cost a good request: its body validated by the request model (types, shapes, limits,
with a message for each refusal) against pydantic's type check alone (the model the server had before), and an
image decoded after its header checks against a plain Pillow decode. Microseconds per request, one input each,
median of ``--repeat`` rounds, the two ways alternating.

    python bench/request_checks.py
"""

import argparse
import base64
import io
import json
import statistics
import timeit
from pathlib import Path

import numpy as np
from bench_io import write_result
from PIL import Image
from pydantic import BaseModel

from common.decoding import load_image
from fashion_cnn.serve import ImageRequest
from sst2_bilstm.serve import SentenceRequest


class TypesOnly(BaseModel):
    """The request model before the checks: pydantic's types alone."""

    inputs: str | list[str | list[list[float]]]
    resize: bool = False
    invert: bool = False


def plain_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.float32).reshape(1, 28, 28) / 255


def microseconds(call, repeat: int, number: int) -> list[float]:
    return [1e6 * t / number for t in timeit.repeat(call, repeat=repeat, number=number)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(buffer, "PNG")
    png = buffer.getvalue()
    bodies = {
        "a base64 PNG": (ImageRequest, json.loads(json.dumps({"inputs": [base64.b64encode(png).decode()]}))),
        "a 28 x 28 array": (ImageRequest, {"inputs": [rng.random((28, 28)).tolist()]}),
        "a sentence": (SentenceRequest, {"inputs": ["a gorgeous, witty and moving film"]}),
    }
    comparisons = {
        f"request model, {name}": (
            lambda m=model, b=body: m.model_validate(b),
            lambda b=body: TypesOnly.model_validate(b),
        )
        for name, (model, body) in bodies.items()
    }
    comparisons["decoding a 28 x 28 PNG"] = (lambda: load_image(io.BytesIO(png)), lambda: plain_decode(png))
    results = {}
    print("| what | checked, µs | unchecked, µs | cost of the checks, µs |")
    print("|---|---:|---:|---:|")
    for name, (checked, unchecked) in comparisons.items():
        times: dict[str, list[float]] = {"checked": [], "unchecked": []}
        for _ in range(args.repeat):  # alternating rounds, so that both see the machine's same drift
            times["checked"] += microseconds(checked, 1, args.number)
            times["unchecked"] += microseconds(unchecked, 1, args.number)
        a, b = statistics.median(times["checked"]), statistics.median(times["unchecked"])
        results[name] = {"checked_us": a, "unchecked_us": b}
        print(f"| {name} | {a:.1f} | {b:.1f} | {a - b:+.1f} |")
    write_result(results, args.output, "request_checks")


if __name__ == "__main__":
    main()
