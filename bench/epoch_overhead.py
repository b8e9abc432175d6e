"""One training epoch through Lightning's Trainer.fit next to a plain PyTorch loop over the same model class,
DataLoader and optimizer, measured alternately in one process. Prints a table and writes JSON.

    DATA_DIR=../shared/datasets python bench/epoch_overhead.py --workflow fashion_cnn
    DATA_DIR=../shared/datasets python bench/epoch_overhead.py --workflow sst2_bilstm --batches 400

The first ``--warmup`` batches of every epoch are excluded from both timings. The Trainer runs as the reference
config does (TensorBoard logger, per-epoch metrics, the command line's progress bar unless --no-progress-bar),
minus checkpointing and validation (one batch, after the timed ones), which the plain loop does not have.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from common.cli import lighter_progress_bar
from fashion_cnn.data import FashionMNISTDataModule
from fashion_cnn.model import FashionCNN
from sst2_bilstm.data import SST2DataModule
from sst2_bilstm.model import SST2BiLSTM

WORKFLOWS = {"fashion_cnn": (FashionCNN, FashionMNISTDataModule), "sst2_bilstm": (SST2BiLSTM, SST2DataModule)}


def build(workflow: str):
    model_class, datamodule_class = WORKFLOWS[workflow]
    data = datamodule_class()  # the reference settings; data from DATA_DIR
    data.prepare_data()
    data.setup("fit")
    return model_class, data


class EpochTimer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds, self.batches = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds, self.batches = time.perf_counter() - self.start, batch_idx + 1 - self.warmup


def lightning_epoch(model_class, data, batches: int, warmup: int, progress_bar: bool) -> tuple[float, int]:
    timer = EpochTimer(warmup)
    with tempfile.TemporaryDirectory() as logs:
        trainer = L.Trainer(
            # One validation batch, after the timed batches, gives the plateau scheduler its val_loss.
            accelerator="cpu", max_epochs=1, limit_train_batches=batches or 1.0, limit_val_batches=1,
            num_sanity_val_steps=0,
            enable_checkpointing=False, logger=TensorBoardLogger(logs, name=""), callbacks=[timer],
            enable_progress_bar=progress_bar, enable_model_summary=False,
        )  # fmt: skip
        trainer.fit(model_class(), datamodule=data)
    return timer.seconds, timer.batches


def plain_epoch(model_class, data, batches: int, warmup: int) -> tuple[float, int]:
    model = model_class()
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    model.train()
    start, done = 0.0, 0
    for batch_idx, (inputs, target) in enumerate(data.train_dataloader()):
        if batch_idx == warmup:
            start = time.perf_counter()
        if batches and batch_idx == batches:
            break
        loss, _ = model.loss_and_predictions(model(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done = batch_idx + 1
    return time.perf_counter() - start, done - warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", choices=WORKFLOWS, default="fashion_cnn")
    parser.add_argument("--batches", type=int, default=0, help="batches per epoch (0: the whole epoch)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="epochs of each, alternating")
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    torch.manual_seed(0)
    lighter_progress_bar()  # as the command line has it
    model_class, data = build(args.workflow)
    batch_size = data.batch_size
    runs: dict[str, list[float]] = {"plain": [], "lightning": []}
    for _ in range(args.repeats):
        seconds, batches = plain_epoch(model_class, data, args.batches, args.warmup)
        runs["plain"].append(batches * batch_size / seconds)
        seconds, batches = lightning_epoch(model_class, data, args.batches, args.warmup, args.progress_bar)
        runs["lightning"].append(batches * batch_size / seconds)
    median = {name: statistics.median(values) for name, values in runs.items()}
    n_batches = batches + args.warmup
    result = {
        "workflow": args.workflow, "batch_size": batch_size, "batches_per_epoch": n_batches,
        "timed_batches": batches, "torch_threads": torch.get_num_threads(), "samples_per_s": runs,
        "median_samples_per_s": median, "lightning_over_plain": median["lightning"] / median["plain"],
        "epoch_seconds": {name: n_batches * batch_size / value for name, value in median.items()},
    }  # fmt: skip
    print(f"\n{args.workflow}: batch {batch_size}, {n_batches} batches an epoch ({batches} timed), "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")  # fmt: skip
    print("| loop | samples/s | epoch seconds | runs (samples/s) |\n|---|---:|---:|---|")
    for name in runs:
        values = ", ".join(f"{v:,.0f}" for v in runs[name])
        print(f"| {name} | {median[name]:,.0f} | {result['epoch_seconds'][name]:.1f} | {values} |")
    print(f"Lightning / plain: {result['lightning_over_plain']:.3f}")
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"epoch_overhead_{args.workflow}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
