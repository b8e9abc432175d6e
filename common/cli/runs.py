"""Run folders: ``<trainer.default_root_dir>/version_N``, holding a run's checkpoints, config and report."""

import os
from pathlib import Path

from common.errors import ConfigError
from common.files import nearest_existing


def require_writable(folder: Path) -> None:
    """Refuses a run folder that cannot be created or written, before anything is written anywhere."""
    existing, _ = nearest_existing(folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "is a file" if not existing.is_dir() else "is not writable"
        raise ConfigError(f"cannot write runs under {folder} (trainer.default_root_dir): {existing} {why}.")


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
