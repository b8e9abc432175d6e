"""The checkpoint a subcommand uses and what it implies, settled once right after parsing into the config's
``ckpt_path``, from which ``Plan`` reads what the later steps need."""

import re
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch.utilities import rank_zero_info

from common.checkpoints import read_checkpoint
from common.cli.sources import run_data
from common.errors import ConfigError, DataError

RUN = re.compile(r"version_(\d+)")
# What a resumed run may change of the settings it was started with: when to stop, how it looks, where the same
# data lives. Anything else would make one run out of two different computations.
RESUMABLE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.enable_progress_bar",
    "data.data_dir",
)


def run_of(checkpoint: Path) -> Path | None:
    """The run folder ``version_N`` of a checkpoint saved in its ``checkpoints/``, else None."""
    run = checkpoint.parent.parent
    return run if checkpoint.parent.name == "checkpoints" and RUN.fullmatch(run.name) else None


def checkpoint_to_use(subcommand: str, ckpt_path: str | None, root: Path) -> tuple[str | None, bool]:
    """``ckpt_path`` as given, with "last" (and, for validate, test and predict, none) meaning the newest run's
    ``last.ckpt`` under ``root``; and whether it was chosen so, which the user is then told."""
    if ckpt_path == "best":
        raise ConfigError(
            "--ckpt_path best names the best checkpoint of a fit in the same process; give the file instead, "
            "e.g. runs/sst2_bilstm/version_0/checkpoints/best-epoch=1.ckpt."
        )
    if ckpt_path != "last" and (ckpt_path is not None or subcommand == "fit"):
        return ckpt_path, False
    runs = {
        int(m[1]): path for path in root.glob("version_*/checkpoints/last.ckpt") if (m := RUN.fullmatch(path.parts[-3]))
    }
    if not runs:
        need = "nothing to resume" if subcommand == "fit" else f"{subcommand} needs trained weights"
        raise DataError(
            f"{need}: there is no version_*/checkpoints/last.ckpt under {root} (trainer.default_root_dir). "
            "Train first (fit), or pass --ckpt_path PATH."
        )
    return str(runs[max(runs)]), True


def settle_checkpoint(parser: ArgumentParser, config: Namespace, args: list[str], model_class: type) -> Namespace:
    """``config`` with its subcommand's ``ckpt_path`` settled (``checkpoint_to_use``); a list is an ensemble, which
    fit refuses, and a checkpoint of another model is refused in one line. A checkpoint of a run brings that run's
    config.yaml, with this command's options (``args``, after the subcommand) on top: fit resumes with its settings,
    validate, test and predict read its data options."""
    subcommand, section = config.subcommand, config[config.subcommand]
    given = section.ckpt_path
    if isinstance(given, list) and len(given) > 1:
        if subcommand == "fit":
            raise ConfigError(
                "fit takes one --ckpt_path, the run to resume; a list is an ensemble, for validate, test and predict."
            )
        return config
    given = given[0] if isinstance(given, list) else given
    section.ckpt_path, chosen = checkpoint_to_use(subcommand, given, Path(section.trainer.default_root_dir or "."))
    if chosen:
        said = "--ckpt_path last" if given == "last" else "No --ckpt_path given"
        rank_zero_info(f"{said}: {subcommand} uses the newest run's {section.ckpt_path}.")
    if section.ckpt_path:
        read_checkpoint(section.ckpt_path, model_class)
    run = run_of(Path(section.ckpt_path)) if section.ckpt_path else None
    if run is None or not (run / "config.yaml").is_file():
        return config
    if subcommand == "fit":
        return resumed(parser, run, args, section.ckpt_path)
    saved = run_data(run / "config.yaml", getattr(parser, "data_sources", None))
    return parser.parse_args([subcommand, "--config", saved, *args, "--ckpt_path", section.ckpt_path])


def resumed(parser: ArgumentParser, run: Path, args: list[str], ckpt_path: str) -> Namespace:
    """The config ``run`` was started with, with this command's options on top: only RESUMABLE may differ
    from it, and each change is said."""
    saved = ["fit", "--config", str(run / "config.yaml")]
    started, config = (parser.parse_args([*saved, *extra, "--ckpt_path", ckpt_path]) for extra in ([], args))
    # Keys as their options are typed: data.init_args.batch_size is --data.batch_size.
    before, after = ({key.replace(".init_args.", "."): v for key, v in c.fit.items()} for c in (started, config))
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and k != "config")
    if refused := [key for key in changed if key not in RESUMABLE]:
        listed = "; ".join(f"{k}: {_short(before.get(k))} in the run, {_short(after.get(k))} given" for k in refused)
        raise ConfigError(
            f"fit --ckpt_path resumes {run} with the settings it was started with (its config.yaml), and this "
            f"command changes them ({listed}). Drop those options to resume; only "
            f"{', '.join(RESUMABLE)} may change."
        )
    for key in changed:
        rank_zero_info(f"Resuming {run}: {key} {before.get(key)!r} -> {after.get(key)!r}.")
    return config


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(frozen=True)
class Plan:
    """What a parsed command's checkpoint implies, read from its settled config: the one checkpoint used, or the
    several of an ensemble; the folder the logger writes instead of a new version_N (fit goes on in the checkpoint's
    run; validate and test write a folder in it, one per checkpoint, so that fit's report stays); the run that
    receives predict's CSV, and why predict writes into a new run folder where it does."""

    ckpt_path: str | None = None
    ensemble: tuple[str, ...] = ()
    log_folder: Path | None = None
    predict_run: Path | None = None
    predict_note: str = ""

    @classmethod
    def of(cls, config: Namespace) -> "Plan":
        subcommand = config.get("subcommand")
        ckpt_path = config[subcommand].get("ckpt_path") if subcommand else None
        if isinstance(ckpt_path, list):
            note = " (an ensemble has no run of its own)" if subcommand == "predict" else ""
            return cls(ensemble=tuple(ckpt_path), predict_note=note)
        run = run_of(Path(ckpt_path)) if ckpt_path else None
        if subcommand == "predict":
            return cls(ckpt_path, predict_run=run, predict_note="" if run else " (a checkpoint in no run)")
        folder = run if subcommand == "fit" or run is None else run / f"{subcommand}-{Path(ckpt_path).stem}"
        return cls(ckpt_path, log_folder=folder)
