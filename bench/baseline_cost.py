"""What the report's baseline (common/baseline.py) costs beside a reference run, which it must keep under a tenth
of: the command line's own fit of the reference config for one epoch on the genuine data, whose report.md gives
the epoch's wall time (training and validation) and the baseline's (training and scoring, in the same process
right after the test, as every user's run pays it). The reference run is the config's epochs (10 for
Fashion-MNIST, 5 for SST-2) at that epoch's time, start-up and test left out, so the ratio printed is, if
anything, too high. ``--batches N`` times N training batches of the epoch and one validation batch (which
the configs that monitor val_loss need) instead, and scales them to the epoch's batches: for a busy machine,
where a whole epoch takes long. ``--run`` reads the epochs of a finished run's report.md instead of fitting one.

    DATA_DIR=~/datasets python bench/baseline_cost.py
    DATA_DIR=~/datasets python bench/baseline_cost.py --batches 200
    DATA_DIR=~/datasets python bench/baseline_cost.py --workflows sst2_bilstm --run runs/sst2_bilstm/version_0
"""

import argparse
import importlib
import math
import os
import tempfile
from pathlib import Path

import yaml
from bench_io import write_result

REPO = Path(__file__).resolve().parents[1]


def table_rows(report: str, section: str) -> list[list[str]]:
    """The cells of each data row of the table under ``## section`` of report.md."""
    text = report.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # the header row left out


def costs(report: str) -> tuple[list[float], int, dict]:
    """The per-epoch seconds of a report.md, the network's training rows, and its baseline row (name, accuracy,
    rows, seconds)."""
    epochs = [float(row[-1]) for row in table_rows(report, "Per epoch")]
    network, (name, accuracy, _, rows, seconds) = table_rows(report, "Baseline (test)")
    baseline = {"name": name, "test_acc": float(accuracy), "trained_on": rows, "seconds": float(seconds)}
    return epochs, int(network[3].replace(",", "")), baseline


def one_epoch(workflow: str, root: Path, batches: int | None) -> str:
    """report.md of the reference config's fit, for one epoch (``batches`` of it, one batch validating), into
    ``root``."""
    train = importlib.import_module(f"{workflow}.train")
    limits = ["--trainer.limit_train_batches", str(batches), "--trainer.limit_val_batches", "1"] if batches else []
    train.main(["fit", "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(root), *limits])
    return (root / "version_0" / "report.md").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", nargs="+", default=["fashion_cnn", "sst2_bilstm"])
    parser.add_argument("--batches", type=int, help="time this many training batches and scale to the epoch")
    parser.add_argument("--run", type=Path, help="a finished run of the (one) workflow: its report.md's epochs")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    result = {"cpu_cores": os.cpu_count()}
    for workflow in args.workflows:
        config = yaml.safe_load((REPO / "configs" / f"{workflow}.yaml").read_text())
        if args.run:
            epochs, _, baseline = costs((args.run / "report.md").read_text())
            reference_epochs = len(epochs)
        else:
            with tempfile.TemporaryDirectory() as scratch:
                epochs, rows, baseline = costs(one_epoch(workflow, Path(scratch), args.batches))
            if args.batches:
                data = config["data"].get("init_args", config["data"])
                epochs = [epochs[0] * math.ceil(rows / data["batch_size"]) / args.batches]
            reference_epochs = config["trainer"]["max_epochs"]
        epoch = sum(epochs) / len(epochs)
        reference = reference_epochs * epoch
        ratio = baseline["seconds"] / reference
        result[workflow] = {
            "baseline": baseline,
            "epoch_seconds": epochs,
            "reference_epochs": reference_epochs,
            "reference_run_seconds": reference,
            "ratio": ratio,
        }
        print(
            f"{workflow}: baseline {baseline['seconds']:.1f} s ({baseline['name']}, {baseline['trained_on']} rows, "
            f"test accuracy {baseline['test_acc']:.4f}); reference run {reference:.1f} s ({reference_epochs} "
            f"epochs of {epoch:.1f} s); ratio {ratio:.2%} (at most 10%)"
        )
    write_result(result, args.output, "baseline_cost")


if __name__ == "__main__":
    main()
