"""The checkpoint a subcommand uses, and what it implies: settled once, right after parsing, into the config itself
(``ckpt_path``), from which ``Plan`` reads everything the later steps need."""

import re
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch.utilities import rank_zero_info

from common.checkpoints import read_checkpoint
from common.cli.resume import resumed_config
from common.cli.sources import run_data
from common.ensemble import load_ensemble
from common.errors import ConfigError, DataError
from common.module import ClassifierModule, refuse_other_data


def newest_checkpoint(root: Path) -> Path | None:
    """``version_N/checkpoints/last.ckpt`` of the highest N under ``root`` (folders not named so are ignored)."""
    versions = {}
    for path in root.glob("version_*/checkpoints/last.ckpt"):
        if match := re.fullmatch(r"version_(\d+)", path.parts[-3]):
            versions[int(match[1])] = path
    return versions[max(versions)] if versions else None


def run_of(checkpoint: Path) -> Path | None:
    """The run folder ``version_N`` of a checkpoint saved in its ``checkpoints/``, else None."""
    run = checkpoint.parent.parent
    if checkpoint.parent.name == "checkpoints" and re.fullmatch(r"version_\d+", run.name):
        return run
    return None


def chosen_checkpoint(subcommand: str, ckpt_path: str | None, root: Path) -> tuple[str | None, bool]:
    """The checkpoint a subcommand uses: ``ckpt_path`` as given, with "last" (and, for validate, test and
    predict, no path at all) meaning the newest run's ``last.ckpt`` under ``root``. The second value says whether
    the path was chosen for the user ("last" or none), who is then told which."""
    if ckpt_path == "best":
        raise ConfigError(
            "--ckpt_path best names the best checkpoint of a fit in the same process; give the file instead, "
            "e.g. runs/sst2_bilstm/version_0/checkpoints/best-epoch=1.ckpt."
        )
    if ckpt_path != "last" and (ckpt_path is not None or subcommand == "fit"):
        return ckpt_path, False
    newest = newest_checkpoint(root)
    if newest is None:
        need = "nothing to resume" if subcommand == "fit" else f"{subcommand} needs trained weights"
        raise DataError(
            f"{need}: there is no version_*/checkpoints/last.ckpt under {root} (trainer.default_root_dir). "
            "Train first (fit), or pass --ckpt_path PATH."
        )
    return str(newest), True


def settle_checkpoint(parser: ArgumentParser, config: Namespace, args: list[str], model_class: type) -> Namespace:
    """``config`` with its subcommand's ``ckpt_path`` settled: "last", or nothing for validate, test and predict,
    becomes the newest run's ``last.ckpt`` (and says so); a list is an ensemble, which fit refuses; and fit from a
    checkpoint of a run takes that run's config.yaml, with this command's options (``args``, after the
    subcommand) on top, as validate, test and predict take its data options. A checkpoint of another model than ``model_class`` is refused in one line, before a
    parser would fail on its hyper-parameters."""
    subcommand = config.subcommand
    section = config[subcommand]
    if isinstance(section.ckpt_path, list) and len(section.ckpt_path) > 1:
        if subcommand == "fit":
            raise ConfigError(
                "fit takes one --ckpt_path, the run to resume; a list is an ensemble, for validate, test and predict."
            )
        return config
    given = section.ckpt_path[0] if isinstance(section.ckpt_path, list) else section.ckpt_path
    root = Path(section.trainer.default_root_dir or ".")
    section.ckpt_path, chosen = chosen_checkpoint(subcommand, given, root)
    if chosen:
        said = "--ckpt_path last" if given == "last" else "No --ckpt_path given"
        rank_zero_info(f"{said}: {subcommand} uses the newest run's {section.ckpt_path}.")
    if section.ckpt_path:
        read_checkpoint(section.ckpt_path, model_class)
    run = run_of(Path(section.ckpt_path)) if section.ckpt_path else None
    if run is None or not (run / "config.yaml").is_file():
        return config
    if subcommand == "fit":
        return resumed_config(parser, run, args, section.ckpt_path)
    # The run's data options first, this command's on top: its checkpoint reads the data it was trained on.
    saved = run_data(run / "config.yaml", getattr(parser, "data_sources", None))
    return parser.parse_args([subcommand, "--config", saved, *args, "--ckpt_path", section.ckpt_path])


@dataclass(frozen=True)
class Plan:
    """What a parsed command's checkpoint implies, read from its settled config."""

    subcommand: str | None = None
    ckpt_path: str | None = None  # the one checkpoint used
    ensemble: tuple[str, ...] = ()  # or the several, evaluated as one model
    run: Path | None = None  # the checkpoint's run: fit goes on in it, the others write into it

    @classmethod
    def of(cls, config: Namespace) -> "Plan":
        subcommand = config.get("subcommand")
        if not subcommand:
            return cls()
        ckpt_path = config[subcommand].get("ckpt_path")
        if isinstance(ckpt_path, list):
            return cls(subcommand, ensemble=tuple(ckpt_path))
        return cls(subcommand, ckpt_path, run=run_of(Path(ckpt_path)) if ckpt_path else None)

    @property
    def resumed_run(self) -> Path | None:
        """fit: the run that goes on, in its own folder."""
        return self.run if self.subcommand == "fit" else None

    @property
    def predict_run(self) -> Path | None:
        """predict: the run whose folder receives the predictions."""
        return self.run if self.subcommand == "predict" else None

    @property
    def evaluation_folder(self) -> Path | None:
        """validate and test of a run's checkpoint: the folder in that run where they log and report, one per
        checkpoint, so that the run's own report (fit's) stays as it is."""
        if self.subcommand not in ("validate", "test") or self.run is None:
            return None
        return self.run / f"{self.subcommand}-{Path(self.ckpt_path).stem}"

    @property
    def predict_note(self) -> str:
        """Why predict writes into a new run folder, if it does."""
        if self.subcommand != "predict" or self.predict_run is not None:
            return ""
        return " (an ensemble has no run of its own)" if self.ensemble else " (a checkpoint in no run)"


def ensemble_for(paths: tuple[str, ...], model: ClassifierModule, datamodule) -> ClassifierModule:
    """The ensemble of the checkpoints at ``paths``, in place of ``model``, which the data built: the members must
    have been trained on data that gives its classes and input, and ``datamodule`` reads its data as they did."""
    ensemble, state = load_ensemble(list(paths), type(model), type(datamodule))
    refuse_other_data(paths[0], ensemble.members[0].hparams, model)
    datamodule.load_state_dict(state)
    return ensemble
