"""Reruns the configs over three seeds and writes the results table: docs/results.md, docs/results.json and
docs/curves.png. Each run is the command line's own ``fit`` (train, test, report) in a process of its own, whose
wall time and peak memory (RSS) are recorded. Seed by seed, each config in turn, so that configs compared side by
side meet the same drift of the machine's speed; the time-to-accuracy table gives a config's wall time as a ratio
to its workflow's reference config only when both were measured in the same run of this script.

    DATA_DIR=../shared/datasets python scripts/results.py                    # every config, seeds 42 1 2
    DATA_DIR=../shared/datasets python scripts/results.py --configs fashion_cnn fashion_cnn_fast   # a speed run
    DATA_DIR=../shared/datasets python scripts/results.py --configs fashion_cnn_plus --seeds 42
    python scripts/results.py --reuse                                        # tables from the runs already there
    python scripts/results.py --configs fashion_cnn --seeds 1 -- --trainer.max_epochs 1   # extra CLI arguments
    python scripts/results.py --configs sst2_bilstm_plus --ensemble --reuse   # + the ensemble of the seeds

Runs land in runs/results/<config>/seed_<seed>/version_N/ with their log beside; --reuse takes the newest run of
each config and seed when it finished (its wall time and memory from docs/results.json) instead of training again.
With --ensemble, the checkpoints the seeds tested are also tested together (the command line's ``test`` with
a list of checkpoints as ``--ckpt_path``, the mean of their probabilities), beside one of them alone, both timed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

ROOT = Path(__file__).resolve().parents[1]
# config -> (package, title, the reference's published test accuracy (%) and loss). Each package's reference
# config has the package's name.
CONFIGS = {
    "fashion_cnn": ("fashion_cnn", "Fashion-MNIST CNN, reference", (90.64, 0.2654)),
    "fashion_cnn_plus": ("fashion_cnn", "Fashion-MNIST CNN, improved", None),
    "fashion_cnn_fast": ("fashion_cnn", "Fashion-MNIST CNN, speed run", None),
    "sst2_bilstm": ("sst2_bilstm", "SST-2 BiLSTM, reference", (82.91, 0.436)),
    "sst2_bilstm_packed": ("sst2_bilstm", "SST-2 BiLSTM, packed", None),
    "sst2_bilstm_plus": ("sst2_bilstm", "SST-2 BiLSTM, improved", None),
    "sst2_bilstm_fast": ("sst2_bilstm", "SST-2 BiLSTM, speed run", None),
}


def train(config: str, seed: int, root: Path, extra: list[str]) -> dict:
    """One fit of the config through the command line; its wall time (start-up and test included) and peak RSS."""
    return run(config, ["fit", "--seed_everything", str(seed)], root, extra)


def run(config: str, arguments: list[str], root: Path, extra: list[str]) -> dict:
    """A command line of the config's workflow, in a process of its own: its wall time and peak RSS."""
    command = [
        sys.executable,
        "-m",
        f"{CONFIGS[config][0]}.train",
        arguments[0],
        "--config",
        f"configs/{config}.yaml",
        *arguments[1:],
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        *extra,
    ]
    print("python", " ".join(command[1:]), flush=True)
    root.mkdir(parents=True, exist_ok=True)
    log = root / "log.txt"
    start = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage, unlike RUSAGE_CHILDREN
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed; its output is in {log}:\n{log.read_text()[-2000:]}")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
    return {"wall_seconds": round(seconds, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024), "device": device}


def newest_metrics(root: Path) -> Path | None:
    runs = sorted(root.glob("version_*/metrics.json"), key=lambda path: int(path.parent.name.split("_")[1]))
    return runs[-1] if runs else None


def epoch_seconds(report: Path) -> list[float]:
    """The per-epoch wall times of report.md's last table (metrics.json leaves times out, to stay repeatable)."""
    table = report.read_text().split("## Per epoch")[-1]
    return [float(line.split("|")[-2]) for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]


def ensemble(config: str, runs: list[Path], root: Path, extra: list[str]) -> dict:
    """The test of the checkpoints that the runs tested, as one ensemble, beside the first of them alone."""
    checkpoints = []
    for metrics in runs:
        tested = json.loads(metrics.read_text())["checkpoint"]  # relative to its run folder
        checkpoints.append(str((metrics.parent / tested).resolve()))
    figures = {}
    for name, paths in (("ensemble", checkpoints), ("single", checkpoints[:1])):
        listed = [arg for path in paths for arg in ("--ckpt_path+", path)]  # a list of one or several
        timing = run(config, ["test", *listed], root / name, extra)
        # One checkpoint of a run reports into that run (test-<checkpoint>/); an ensemble into a run of its own.
        one = Path(paths[0]).parents[1] / f"test-{Path(paths[0]).stem}" / "metrics.json"
        tested = json.loads((one if len(paths) == 1 else newest_metrics(root / name)).read_text())["test"]
        figures[name] = {"test_acc": tested["accuracy"], "test_loss": tested["loss"], **timing}
    return {"members": len(checkpoints), **figures}


def ensemble_table(results: dict) -> str:
    rows = [
        "| ensemble | members | test accuracy | test loss | members' mean accuracy | test wall time | one member's |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for config, entry in results.items():
        if "ensemble" not in entry:
            continue
        together, single = entry["ensemble"]["ensemble"], entry["ensemble"]["single"]
        members = statistics.mean(100 * seed["test_acc"] for seed in entry["seeds"])
        rows.append(
            f"| `configs/{config}.yaml`, its seeds' checkpoints | {entry['ensemble']['members']} "
            f"| {100 * together['test_acc']:.2f}% | {together['test_loss']:.4f} | {members:.2f}% "
            f"| {together['wall_seconds']:.0f} s | {single['wall_seconds']:.0f} s |"
        )
    if len(rows) == 2:
        return ""
    about = "Ensembles (`--ensemble`: the command line's `test` of the seeds' tested checkpoints together; wall time"
    return f"\n\n{about} of the whole command, start-up included):\n\n" + "\n".join(rows)


def speed_table(results: dict) -> str:
    """Time to accuracy: each config's whole-command wall time beside its workflow's reference config's, as a
    ratio only where both were measured in the same run of this script (the machine's speed drifts)."""
    rows = [
        "| config | test accuracy, mean ± sd | fit + test wall time, mean ± sd | vs the reference config "
        "| at least the reference's published accuracy |",
        "|---|---:|---:|---:|---|",
    ]
    for config, entry in results.items():
        walls = [seed.get("wall_seconds") for seed in entry["seeds"]]
        if not all(walls):
            continue
        package = CONFIGS[config][0]
        accuracy, wall = summary([100 * seed["test_acc"] for seed in entry["seeds"]]), summary(walls)
        reference = results.get(package, {}).get("seeds", [])
        same_run = {seed.get("measured") for seed in entry["seeds"] + reference}
        ratio = "-"
        if config != package and reference and len(same_run) == 1 and None not in same_run:
            ratio = f"{wall[0] / statistics.mean(seed['wall_seconds'] for seed in reference):.2f}x"
        published = CONFIGS[package][2][0]
        rows.append(
            f"| `configs/{config}.yaml` | {accuracy[0]:.2f} ± {accuracy[1]:.2f}% | {wall[0]:.1f} ± {wall[1]:.1f} s "
            f"| {'1 (itself)' if config == package else ratio} "
            f"| {'yes' if accuracy[0] >= published else 'no'} ({published:.2f}%) |"
        )
    about = (
        "Time to accuracy (the whole `fit` command, start-up, training, test and report, in its own process; the "
        "ratio is the config's mean wall time over its workflow's reference config's, both from the same run of "
        "the script, seeds interleaved; `-` where they were measured in different runs):"
    )
    return f"\n\n{about}\n\n" + "\n".join(rows)


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(results: dict) -> str:
    rows = [
        "| config | test accuracy, mean ± sd | test loss, mean ± sd | per seed (accuracy) | epoch wall time (median) "
        "| fit + test wall time (median) | peak RSS | reference's published figures |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for config, entry in results.items():
        seeds = entry["seeds"]
        accuracy = summary([100 * seed["test_acc"] for seed in seeds])
        loss = summary([seed["test_loss"] for seed in seeds])
        epochs = statistics.median(second for seed in seeds for second in seed["epoch_seconds"])
        walls = [seed["wall_seconds"] for seed in seeds if seed.get("wall_seconds")]
        rss = [seed["peak_rss_mib"] for seed in seeds if seed.get("peak_rss_mib")]
        published = CONFIGS[config][2]
        per_seed = ", ".join(f"{100 * s['test_acc']:.2f}" for s in seeds)
        rows.append(
            f"| `configs/{config}.yaml` | {accuracy[0]:.2f} ± {accuracy[1]:.2f}% | {loss[0]:.4f} ± {loss[1]:.4f} "
            f"| {per_seed} (seeds {', '.join(str(s['seed']) for s in seeds)}) "
            f"| {epochs:.1f} s | {f'{statistics.median(walls):.0f} s' if walls else '-'} "
            f"| {f'{max(rss):,} MiB' if rss else '-'} "
            f"| {f'{published[0]:.2f}%, {published[1]}' if published else '(none: not in the reference)'} |"
        )
    devices = sorted({seed.get("device", "?") for entry in results.values() for seed in entry["seeds"]})
    return (
        f"Measured on {', '.join(devices)} by `python scripts/results.py`.\n\n"
        + "\n".join(rows)
        + speed_table(results)
        + ensemble_table(results)
    )


def plot_curves(results: dict, path: Path) -> None:
    """Validation accuracy and loss per epoch, mean over seeds: a row of two plots per workflow."""
    packages = list(dict.fromkeys(CONFIGS[config][0] for config in results))
    figure, axes = plt.subplots(len(packages), 2, figsize=(11, 3.6 * len(packages)), squeeze=False)
    for config, entry in results.items():
        row = axes[packages.index(CONFIGS[config][0])]
        for axis, key in zip(row, ("val_acc", "val_loss")):
            curves = [[epoch[key] for epoch in seed["history"] if key in epoch] for seed in entry["seeds"]]
            if not all(curves):
                continue  # a config that does not validate (a speed run) has no curve
            length = min(map(len, curves))
            mean = [statistics.mean(curve[i] for curve in curves) for i in range(length)]
            axis.plot(range(1, length + 1), mean, marker="o", label=CONFIGS[config][1])
    for package, row in zip(packages, axes):
        for axis, title in zip(row, ("validation accuracy", "validation loss")):
            axis.set_title(f"{package}: {title} per epoch (mean over seeds)")
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
        row[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_markdown(block: str, path: Path) -> None:
    """The table goes between its two markers in ``path``, the rest of the page left as written."""
    start, end = "<!-- results table: written by scripts/results.py -->", "<!-- end of results table -->"
    block = f"{start}\n{block}\n{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = f"# Results over seeds\n\n{block}\n\n![validation curves](curves.png)\n"
    path.write_text(text)


def write_docs(results: dict, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot_curves(results, docs / "curves.png")
    block = table(results)
    write_markdown(block, docs / "results.md")
    print(f"\n{block}\n\nwritten {docs / 'results.md'}, {docs / 'results.json'}, {docs / 'curves.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "results")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="where results.md/.json and curves.png go")
    parser.add_argument("--reuse", action="store_true", help="read finished runs instead of training again")
    parser.add_argument("--ensemble", action="store_true", help="also test each config's seeds as one ensemble")
    parser.add_argument("extra", nargs="*", help="after --: arguments added to every run's command line")
    args = parser.parse_args()
    docs, args.runs = args.docs.resolve(), args.runs.resolve()  # the runs' processes start in the repository

    previous = json.loads((docs / "results.json").read_text()) if (docs / "results.json").exists() else {}
    results = {config: entry for config, entry in previous.items() if config in CONFIGS}
    measured = time.strftime("%Y-%m-%d %H:%M:%S")  # which run of this script measured a wall time
    collected = {config: [] for config in args.configs}
    # Seed by seed, each config in turn: configs compared side by side meet the same drift of the machine's speed.
    for seed in args.seeds:
        for config in args.configs:
            root = args.runs / config / f"seed_{seed}"
            old = next((s for s in previous.get(config, {}).get("seeds", []) if s["seed"] == seed), {})
            timing = {key: old.get(key) for key in ("wall_seconds", "peak_rss_mib", "device", "measured")}
            if not (args.reuse and newest_metrics(root)):
                timing = train(config, seed, root, args.extra) | {"measured": measured}
            path = newest_metrics(root)
            metrics = json.loads(path.read_text())
            collected[config].append(
                {
                    "seed": seed,
                    "test_acc": metrics["test"]["accuracy"],
                    "test_loss": metrics["test"]["loss"],
                    "epoch_seconds": epoch_seconds(path.parent / "report.md"),
                    "history": [
                        {key: epoch[key] for key in ("epoch", "val_acc", "val_loss") if key in epoch}
                        for epoch in metrics["history"]
                    ],
                    **timing,
                }
            )
            print(f"  {config} seed {seed}: test accuracy {100 * metrics['test']['accuracy']:.2f}%", flush=True)
            kept = previous.get(config, {}) if args.reuse else {}  # an ensemble of the same runs
            results[config] = {"seeds": collected[config]} | (
                {"ensemble": kept["ensemble"]} if "ensemble" in kept else {}
            )
            docs.mkdir(parents=True, exist_ok=True)  # kept as it goes, so that an interrupted rerun loses no timing
            (docs / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for config in args.configs:
        if args.ensemble and len(args.seeds) > 1:
            tested = [newest_metrics(args.runs / config / f"seed_{seed}") for seed in args.seeds]
            results[config]["ensemble"] = ensemble(config, tested, args.runs / config / "ensemble", args.extra)
            (docs / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_docs({config: results[config] for config in CONFIGS if config in results}, docs)


if __name__ == "__main__":
    main()
