"""Time of one training step (forward, backward, Adam) of the Fashion-MNIST CNN at several widths, on random
images, the variants taking turns so that they meet the same drift of the machine's speed. What chose the speed
run's first convolution (configs/fashion_cnn_fast.yaml): on a CPU, a first convolution of one input channel and
its pooling cost far more than their multiply-adds say.

    python bench/cnn_step_time.py                                   # the widths of docs/results.md
    python bench/cnn_step_time.py --channels 32,64 16,64 --batch-size 256 --bf16
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_io import write_result

from fashion_cnn.model import FashionCNN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", nargs="+", default=["32,64", "24,48", "16,64", "16,32"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also each width under bf16 autocast")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    torch.manual_seed(0)
    images, labels = torch.rand(args.batch_size, 1, 28, 28), torch.randint(0, 10, (args.batch_size,))
    variants = {}
    for widths in args.channels:
        for bf16 in (False, True) if args.bf16 else (False,):
            model = FashionCNN(channels=tuple(map(int, widths.split(","))), batch_norm=True, dense_size=128)
            variants[f"[{widths}]{' bf16' if bf16 else ''}"] = (
                model,
                torch.optim.Adam(model.parameters(), fused=True),
                bf16,
            )

    def step(model, optimizer, bf16) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, variant in variants.items():
            for _ in range(3):  # warm-up: oneDNN picks and caches its kernels
                step(*variant)
            start = time.perf_counter()
            for _ in range(args.steps):
                step(*variant)
            times[name].append((time.perf_counter() - start) / args.steps)
    steps_per_epoch = -(-60_000 // args.batch_size)
    print(f"batch {args.batch_size}, {torch.get_num_threads()} threads; median of {args.rounds} rounds")
    print(f"{'channels':<16}{'ms / step':>10}{'s / epoch':>11}")
    result = {"batch_size": args.batch_size, "threads": torch.get_num_threads(), "ms_per_step": {}}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        result["ms_per_step"][name] = round(1000 * median, 2)
        print(f"{name:<16}{1000 * median:>10.1f}{steps_per_epoch * median:>11.1f}")
    write_result(result, args.output, "cnn_step_time")


if __name__ == "__main__":
    main()
