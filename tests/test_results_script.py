import importlib.util
import json
import os
import subprocess
import sys

import torch

from tests.conftest import REPO


def test_results_script_reruns_seeds_and_writes_the_table(fashion_dir, tmp_path):
    docs = tmp_path / "docs"
    script = [
        sys.executable,
        str(REPO / "scripts" / "results.py"),
        "--configs",
        "fashion_cnn",
        "fashion_cnn_fast",
        "--seeds",
        "1",
        "2",
        "--runs",
        str(tmp_path / "runs"),
        "--docs",
        str(docs),
    ]
    tiny = ["--data.data_dir", str(fashion_dir), "--data.download", "false", "--trainer.max_epochs", "1"]
    done = subprocess.run([*script, "--", *tiny], check=True, capture_output=True, cwd=REPO, text=True)
    # Seed by seed, the configs in turn: compared configs meet the same drift of the machine's speed.
    order = [line.split(": ")[0].strip() for line in done.stdout.splitlines() if line.startswith("  ")]
    assert order == ["fashion_cnn seed 1", "fashion_cnn_fast seed 1", "fashion_cnn seed 2", "fashion_cnn_fast seed 2"]
    # The ensemble of the reference's two seeds, from the runs already there.
    ensemble = [*script[:4], "--reuse", "--ensemble", *script[5:], "--", *tiny]
    subprocess.run(ensemble, check=True, capture_output=True, cwd=REPO)
    results = json.loads((docs / "results.json").read_text())
    seeds = results["fashion_cnn"]["seeds"]
    assert [seed["seed"] for seed in seeds] == [1, 2]
    for seed in seeds:
        run = next((tmp_path / "runs" / "fashion_cnn" / f"seed_{seed['seed']}").glob("version_*"))
        metrics = json.loads((run / "metrics.json").read_text())
        assert seed["test_acc"] == metrics["test"]["accuracy"] and metrics["seed"] == seed["seed"]
        assert len(seed["epoch_seconds"]) == 1 and seed["wall_seconds"] > 0 and seed["peak_rss_mib"] > 100
        # The device the runs used: accelerator auto picks a GPU where there is one.
        expected = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
        assert seed["device"] == expected
    accuracies = [100 * seed["test_acc"] for seed in seeds]
    row = next(line for line in (docs / "results.md").read_text().splitlines() if "fashion_cnn.yaml" in line)
    assert f"{sum(accuracies) / 2:.2f} ±" in row and "90.64%" in row  # mean, and the published figure beside it
    assert (docs / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Time to accuracy: the speed run's mean wall time over the reference's, both measured in this run.
    fast, reference = ([s["wall_seconds"] for s in results[c]["seeds"]] for c in ("fashion_cnn_fast", "fashion_cnn"))
    speed = next(
        line
        for line in (docs / "results.md").read_text().splitlines()
        if line.startswith("| `configs/fashion_cnn_fast.yaml` | ") and line.count("|") == 6
    )
    assert f"| {sum(fast) / sum(reference):.2f}x |" in speed
    # The two seeds' tested checkpoints tested together, beside one alone.
    together = results["fashion_cnn"]["ensemble"]
    assert together["members"] == 2 and together["ensemble"]["wall_seconds"] > 0
    # One checkpoint alone reports into its own run, in test-<checkpoint>/.
    tested = json.loads(
        next((tmp_path / "runs" / "fashion_cnn").glob("seed_1/version_*/test-*/metrics.json")).read_text()
    )
    assert together["single"]["test_acc"] == tested["test"]["accuracy"] == seeds[0]["test_acc"]
    assert f"| {100 * together['ensemble']['test_acc']:.2f}% |" in (docs / "results.md").read_text()

    # --reuse rebuilds the table from the runs, keeping the recorded wall times, without training again.
    (docs / "results.md").unlink()
    subprocess.run([*script, "--reuse"], check=True, capture_output=True, cwd=REPO)
    assert json.loads((docs / "results.json").read_text()) == results
    assert "fashion_cnn.yaml" in (docs / "results.md").read_text()


def test_the_speed_ratio_needs_both_configs_measured_in_one_run():
    spec = importlib.util.spec_from_file_location("results_script", REPO / "scripts" / "results.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def seeds(wall: float, measured: str | None) -> dict:
        return {"seeds": [{"test_acc": 0.91, "wall_seconds": wall, "measured": measured} for _ in range(2)]}

    def ratio(results: dict) -> str:
        row = next(line for line in script.speed_table(results).splitlines() if "fashion_cnn_fast.yaml" in line)
        return row.split(" | ")[3]

    assert ratio({"fashion_cnn": seeds(100, "A"), "fashion_cnn_fast": seeds(20, "A")}) == "0.20x"
    assert ratio({"fashion_cnn": seeds(100, "A"), "fashion_cnn_fast": seeds(20, "B")}) == "-"  # another run
    assert ratio({"fashion_cnn": seeds(100, None), "fashion_cnn_fast": seeds(20, None)}) == "-"  # before stamps
    assert ratio({"fashion_cnn_fast": seeds(20, "A")}) == "-"  # no reference measured at all
