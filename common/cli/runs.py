"""Run folders: ``<trainer.default_root_dir>/version_N``, holding a run's checkpoints, config and report."""

import os
import re
import shutil
from pathlib import Path

from common.errors import ConfigError, DataError


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
    the path was chosen for the user, who is then told so."""
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
    return str(newest), ckpt_path is None


def require_writable(folder: Path) -> Path | None:
    """Refuses a run folder that cannot be created or written, before anything is written anywhere. Returns the
    outermost folder that a run would create, None where ``folder`` exists."""
    existing, missing = folder.absolute(), None
    while not existing.exists():
        existing, missing = existing.parent, existing
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "is a file" if not existing.is_dir() else "is not writable"
        raise ConfigError(f"cannot write runs under {folder} (trainer.default_root_dir): {existing} {why}.")
    return missing


def discard_unused_run(run: Path | None, root: Path, since: float, created: Path | None = None) -> None:
    """Removes what a new run that failed before its first optimizer step wrote: its folder ``run`` (nothing in
    it but the config and an empty event file, unless it saved a checkpoint), or, without a logger, the files it
    wrote into ``root`` itself after ``since`` (a ``time.time()``); then the folders from ``root`` up to
    ``created`` that this left empty."""
    if run is not None:
        if run.is_dir() and not (run / "checkpoints").exists():
            shutil.rmtree(run)
    else:
        for name in ("config.yaml", "tokenizer.json"):
            written = root / name
            if written.is_file() and written.stat().st_mtime >= since:
                written.unlink()
    if created is None:
        return
    folder = root.absolute()
    while folder.is_relative_to(created) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


# What a logger given on the command line without its save folder gets, until the run's root is known.
RUN_ROOT = "<trainer.default_root_dir>"


def with_logger_folder(args: list[str]) -> list[str]:
    """``args``, and where they name a logger class that needs a save folder (``--trainer.logger CSVLogger``) but
    give it none, the run's root as that folder (RUN_ROOT, settled by ``place_logger``)."""
    given = None
    for i, arg in enumerate(args):
        if arg == "--trainer.logger" and i + 1 < len(args):
            given = args[i + 1]
        elif arg.startswith("--trainer.logger="):
            given = arg.split("=", 1)[1]
    if given is None or any(
        a.startswith(("--trainer.logger.save_dir", "--trainer.logger.init_args.save_dir")) for a in args
    ):
        return args
    if _required_parameters(given) & {"save_dir"}:
        return [*args, "--trainer.logger.save_dir", RUN_ROOT]
    return args


def _required_parameters(class_path: str) -> set[str]:
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    if not module or not name.isidentifier():
        return set()  # true, false, a list: not one class
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return set()  # the parser says what is wrong with it
    parameters = inspect.signature(cls).parameters.values()
    return {p.name for p in parameters if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD}


def place_logger(trainer) -> None:
    """A logger of the config (``trainer``, the parsed Trainer section) that writes a run folder writes the project's
    layout, ``<default_root_dir>/version_N``, as the default logger does: into the run's root where it was given no
    save folder, and without Lightning's ``lightning_logs`` level where it was given no name."""
    logger = trainer.get("logger")
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    if init_args is None:
        return
    if init_args.get("save_dir") == RUN_ROOT:
        init_args.save_dir = str(trainer.default_root_dir or ".")
    if init_args.get("name") == "lightning_logs":  # Lightning's default name for its file loggers
        init_args.name = ""
