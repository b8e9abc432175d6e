"""The search's answer, in the study's folder: best.yaml (the best trial's config, to rerun), study.md (every
trial) and Optuna's optimization history and parameter importances as PNGs."""

import json
import os
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from common.files import save_figure, write_text
from common.search.trial import CLASS_PATH


def write(
    study: optuna.Study,
    folder: Path,
    workflow: str,
    best: optuna.trial.FrozenTrial | None,
    tested: Path | str | None,
) -> bool:
    """Writes the answer and says whether a trial completed (``best``, None if none did). ``tested``: the
    metrics.json of the best trial's test, or why there is none."""
    objective = study.user_attrs["objective"]
    trials = [t for t in study.get_trials(deepcopy=False) if "surplus" not in t.user_attrs]
    summary = ["No trial completed: the reasons are in the table."]
    if best is not None:
        run = Path(best.user_attrs["run"])
        summary = [f"Best: trial {best.number}, {objective} {best.value:.4f}, run {run}."]
        if (run / "config.yaml").is_file():
            best_yaml = write_best(run, folder, best, objective, workflow)
            summary.append(f"Rerun it: python -m {workflow}.train fit --config {best_yaml}")
        else:
            summary.append("It ran on another machine, whose search writes its best.yaml.")
        summary.append(test_figure(tested))
    lines = [f"# Study {study.study_name}", "", *summary, "", *table(trials, objective, folder), *plots(study, folder)]
    write_text(folder / "study.md", "\n".join(lines) + "\n")
    print("\n".join(summary))
    print(f"Study: {folder / 'study.md'}")
    return best is not None


def write_best(run: Path, folder: Path, best: optuna.trial.FrozenTrial, objective: str, workflow: str) -> Path:
    """The trial's own config.yaml (the seed, its options, the data's), without the search's callback and into a
    folder of its own, so that ``fit --config best.yaml`` reruns the trial."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    trainer = config["trainer"]
    trainer["callbacks"] = [c for c in trainer.get("callbacks") or [] if c.get("class_path") != CLASS_PATH]
    trainer["default_root_dir"] = str(folder / "best")
    config.setdefault("report", {})["test_after_fit"] = True  # a fit of its own tests, as any fit does
    header = (
        f"# The best trial ({best.number}, {objective} {best.value:.4f}) of the study {folder.name}: its run's "
        f"config.yaml, rerun by\n#   python -m {workflow}.train fit --config {folder / 'best.yaml'}\n"
    )
    path = folder / "best.yaml"
    write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return path


def test_figure(tested: Path | str) -> str:
    """The best trial's test figures, beside the report's classic baseline where it has one: the one test of the
    search (its trials' fits test nothing). Or why it was not tested."""
    if isinstance(tested, str):
        return f"The best trial was not tested here: {tested}."
    metrics = json.loads(tested.read_text())
    line = f"Test accuracy of the best trial: {metrics['test']['accuracy']:.4f} ({tested.parent / 'report.md'})"
    baseline = metrics.get("baseline")
    if isinstance(baseline, dict) and "test_acc" in baseline:
        line += f"; the report's classic baseline, {baseline['name']}: {baseline['test_acc']:.4f}"
    return line + "."


def table(trials: list[optuna.trial.FrozenTrial], objective: str, folder: Path) -> list[str]:
    names = sorted({name for t in trials for name in t.params})
    lines = [f"| trial | state | {objective} | epochs | seconds | " + " | ".join(names) + " | run | reason |"]
    lines.append("|---:|---|---:|---:|---:|" + "---|" * len(names) + "---|---|")
    for t in trials:
        value = f"{t.value:.4f}" if t.value is not None else ""
        seconds = f"{t.duration.total_seconds():.1f}" if t.duration else ""
        reason = t.user_attrs.get("reason") or (
            "its search stopped (no heartbeat); retried" if t.state == TrialState.FAIL else ""
        )
        cells = [str(t.number), t.state.name.lower(), value, str(t.user_attrs.get("epochs", "")), seconds]
        cells += [str(t.params.get(name, "")) for name in names]
        run = t.user_attrs.get("run")
        cells += [os.path.relpath(run, folder) if run else "", reason.replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def plots(study: optuna.Study, folder: Path) -> list[str]:
    """Optuna's optimization history and parameter importances, where the study has what each needs."""
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as plot

    lines = []
    for name, draw in (("history", plot.plot_optimization_history), ("importances", plot.plot_param_importances)):
        try:
            axes = draw(study)
        except (ValueError, RuntimeError) as error:  # importances need two completed trials that differ
            lines.append(f"No {name} plot: {' '.join(str(error).split())}")
            continue
        figure = axes.get_figure()
        save_figure(figure, folder / f"{name}.png", dpi=100, bbox_inches="tight")
        pyplot.close(figure)
        lines.append(f"![{name}]({name}.png)")
    return lines
