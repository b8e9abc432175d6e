"""Training throughput of the project's real ``Trainer.fit`` on a reference config next to a plain eager PyTorch
loop over the same model and batches, alternating in one process. Prints a table and writes JSON.

    DATA_DIR=~/datasets python bench/train_throughput.py --workflow fashion_cnn
    DATA_DIR=~/datasets python bench/train_throughput.py --workflow sst2_bilstm --batches 300
    DATA_DIR=~/datasets python bench/train_throughput.py --workflow fashion_cnn --precision 32-true bf16-mixed
    DATA_DIR=~/datasets python bench/train_throughput.py --workflow fashion_cnn --accelerator cuda
    DATA_DIR=~/datasets python bench/train_throughput.py --workflow fashion_cnn --compile  # torch.compile(model)

The fit is the command line's: the workflow's YAML (callbacks, logger, checkpoints, report) with one epoch of
``--batches`` batches and one validation batch. On a GPU, ``limit`` is the same training steps with the data on
the device and each step replayed from one CUDA graph: what the hardware can do at this batch size. The plain
loop is the straightforward port the project is measured against: the same layers with PyTorch's defaults (NCHW,
Adam's multi-tensor step; the CNN's ReLUs after its pooling, as the project has them, which only makes this baseline faster), the same DataLoader, no Lightning
settings in its way. ``plain_tuned`` is that loop with the project's model settings, so the gap between it and the
fit is Lightning's own per-step cost. The fit runs on one device. The first ``--warmup`` batches of every epoch
are excluded from all timings.
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from bench_io import write_result

from common.cli.main import run_cli
from common.process import NVML_CHECK, skip_missing_nvml_probe
from fashion_cnn import train as fashion_train
from fashion_cnn.data import ImageDataModule
from fashion_cnn.model import FashionCNN
from sst2_bilstm import train as sst2_train
from sst2_bilstm.data import TextDataModule
from sst2_bilstm.model import SST2BiLSTM

# model class, its command line (the DataModules of its data sources), reference config, the plain port's settings
# of the model's speed options
WORKFLOWS = {
    "fashion_cnn": (FashionCNN, fashion_train, "fashion_cnn.yaml", {"channels_last": False, "fused": False}),
    "sst2_bilstm": (SST2BiLSTM, sst2_train, "sst2_bilstm.yaml", {"fused": False}),
}
BASES = {"fashion_cnn": ImageDataModule, "sst2_bilstm": TextDataModule}  # each workflow's DataModules' base


class EpochTimer(L.Callback):
    """Times the optimizer steps after the first ``warmup`` of an epoch."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds, self.batches, self.first_step = warmup, 0.0, 0.0, 0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step is None and trainer.global_step >= self.warmup:
            _synchronize(pl_module.device)
            self.start, self.first_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 == trainer.num_training_batches:
            _synchronize(pl_module.device)
            self.seconds, self.batches = time.perf_counter() - self.start, trainer.global_step - self.first_step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lightning_epoch(
    workflow: str, args: argparse.Namespace, precision: str, compiled: bool = False
) -> tuple[float, int]:
    model_class, train, config, _ = WORKFLOWS[workflow]
    timer = EpochTimer(args.warmup)
    with tempfile.TemporaryDirectory() as root:
        cli = run_cli(
            model_class,
            BASES[workflow],
            config,
            run=False,
            sources=train.SOURCES,
            args=[
                f"--trainer.default_root_dir={root}",
                "--trainer.max_epochs=1",
                "--trainer.devices=1",
                f"--trainer.accelerator={args.accelerator}",
                f"--trainer.precision={precision}",
                "--trainer.num_sanity_val_steps=0",
                f"--trainer.enable_progress_bar={args.progress_bar}",
                "--trainer.enable_model_summary=false",
            ],
        )
        # Set here rather than parsed: the parser reads "1" as the float 1.0, which means all batches.
        cli.trainer.limit_train_batches, cli.trainer.limit_val_batches = args.batches or 1.0, 1
        cli.trainer.callbacks.append(timer)
        # torch.compile as Lightning's docs show it: the LightningModule compiled, given to fit.
        model = torch.compile(cli.model) if compiled else cli.model
        cli.trainer.fit(model, datamodule=cli.datamodule)
    return timer.seconds, timer.batches


def plain_epoch(
    workflow: str, data: L.LightningDataModule, args: argparse.Namespace, precision: str, tuned: bool
) -> tuple[float, int]:
    model_class, _, _, plain_settings = WORKFLOWS[workflow]
    device = torch.device(args.accelerator)
    model = model_class(**({} if tuned else plain_settings)).to(device)
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16-mixed" else None
    model.train()
    # The port runs as in a process that never imported Lightning; the tuned loop as the project's fit does.
    saved = os.environ.get(NVML_CHECK) if tuned else os.environ.pop(NVML_CHECK, None)
    start, done = 0.0, 0
    try:
        for batch_idx, (inputs, target) in enumerate(data.train_dataloader()):
            if batch_idx == args.warmup:
                _synchronize(device)
                start = time.perf_counter()
            if args.batches and batch_idx == args.batches:
                break
            inputs, target = inputs.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with autocast or contextlib.nullcontext():
                loss, _ = model.loss_and_predictions(model(inputs), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done = batch_idx + 1
        _synchronize(device)
    finally:
        if saved is not None:
            os.environ[NVML_CHECK] = saved
    return time.perf_counter() - start, done - args.warmup


def graph_epoch(
    workflow: str, data: L.LightningDataModule, args: argparse.Namespace, precision: str
) -> tuple[float, int]:
    """The limit on a GPU: the training split on the device once, a random permutation per epoch, each step's batch
    gathered on the device by index, and the whole step (forward, backward, Adam's step) captured once in a CUDA
    graph and replayed per batch after the batch's indices are copied into the captured index tensor. Full
    batches only: the epoch's last, partial one has another shape."""
    model_class = WORKFLOWS[workflow][0]
    device = torch.device("cuda")
    model = model_class().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=model.hparams.lr, eps=model.hparams.eps, capturable=True)
    inputs, target = (tensor.to(device) for tensor in data.split("train"))
    index = torch.zeros(data.batch_size, dtype=torch.long, device=device)
    bf16 = precision == "bf16-mixed"  # autocast's cache would keep tensors alive across replays: off, as graphs need

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            loss, _ = model.loss_and_predictions(model(inputs[index]), target[index])
        loss.backward()
        optimizer.step()

    side = torch.cuda.Stream()  # warm-up on a side stream, as torch.cuda.graph's documentation does
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    steps = len(inputs) // data.batch_size
    if args.batches:
        steps = min(steps, args.batches)
    order = torch.randperm(len(inputs), device=device)
    for i in range(min(args.warmup, steps)):
        index.copy_(order[i * data.batch_size : (i + 1) * data.batch_size])
        graph.replay()
    _synchronize(device)
    start = time.perf_counter()
    for i in range(args.warmup, steps):
        index.copy_(order[i * data.batch_size : (i + 1) * data.batch_size])
        graph.replay()
    _synchronize(device)
    return time.perf_counter() - start, steps - args.warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", choices=WORKFLOWS, default="fashion_cnn")
    parser.add_argument("--batches", type=int, default=0, help="batches per epoch (0: the whole epoch)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="epochs of each, alternating")
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["32-true"],
        choices=("32-true", "bf16-mixed"),
        help="one or both, measured alternately in the same run",
    )
    parser.add_argument("--compile", action="store_true", help="also the fit of torch.compile(model), alternating")
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if args.batches and args.batches <= args.warmup:
        parser.error(f"--batches {args.batches} leaves nothing to time after --warmup {args.warmup}")

    torch.manual_seed(0)
    data = WORKFLOWS[args.workflow][1].SOURCES[None]()  # the reference's DataModule and settings; DATA_DIR's data
    data.prepare_data()
    data.setup("fit")
    skip_missing_nvml_probe()  # as the command line does, for the tuned loop and the fit
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for precision in args.precision:
            suffix = "" if precision == "32-true" else f" {precision}"
            for name, tuned in (("plain", False), ("plain_tuned", True)):
                seconds, batches = plain_epoch(args.workflow, data, args, precision, tuned)
                runs.setdefault(name + suffix, []).append(batches * data.batch_size / seconds)
            if args.accelerator == "cuda":
                seconds, batches = graph_epoch(args.workflow, data, args, precision)
                runs.setdefault("limit" + suffix, []).append(batches * data.batch_size / seconds)
            seconds, batches = lightning_epoch(args.workflow, args, precision)
            runs.setdefault("lightning" + suffix, []).append(batches * data.batch_size / seconds)
            if args.compile:  # its first --warmup batches, compilation included, are not timed
                seconds, batches = lightning_epoch(args.workflow, args, precision, compiled=True)
                runs.setdefault("lightning_compiled" + suffix, []).append(batches * data.batch_size / seconds)
    median = {name: statistics.median(values) for name, values in runs.items()}
    baseline = "plain" if "plain" in median else f"plain {args.precision[0]}"
    # The ratio of each repeat's two loops, measured a few seconds apart, then their median: steadier than a ratio
    # of medians on a machine whose speed drifts over minutes.
    # The fit against the port, the tuned loop and, on a GPU, the limit.
    references = [baseline.replace("plain", other) for other in ("plain", "plain_tuned", "limit", "lightning")]
    ratios = {
        f"{name} / {reference}": statistics.median(fit / plain for fit, plain in zip(values, runs[reference]))
        for name, values in runs.items()
        if name.startswith("lightning")
        for reference in references
        if reference in runs and reference != name
    }
    result = {
        "workflow": args.workflow,
        "accelerator": args.accelerator,
        "precision": args.precision,
        "device": torch.cuda.get_device_name() if args.accelerator == "cuda" else f"{os.cpu_count()} CPU cores",
        "batch_size": data.batch_size,
        "timed_batches": batches,
        "torch_threads": torch.get_num_threads(),
        "samples_per_s": runs,
        "median_samples_per_s": median,
        "baseline": baseline,
        "fit_ratios": ratios,
    }
    print(
        f"\n{args.workflow} on {result['device']}: batch {data.batch_size}, {batches} batches timed after "
        f"{args.warmup}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print("| loop | samples/s | runs (samples/s) |\n|---|---:|---|")
    for name in runs:
        print(f"| {name} | {median[name]:,.0f} | {', '.join(f'{v:,.0f}' for v in runs[name])} |")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x (median of the repeats' ratios)")
    name = f"train_throughput_{args.workflow}_{'_'.join(args.precision)}_{args.accelerator}"
    write_result(result, args.output, name)


if __name__ == "__main__":
    main()
