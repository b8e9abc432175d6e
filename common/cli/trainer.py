"""The Trainer section of a parsed config, made ready to write the project's run layout before the Trainer is built:
``<trainer.default_root_dir>/version_N``, holding a run's checkpoints, config and report."""

import importlib
import inspect
import os
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_info

from common.errors import ConfigError
from common.files import nearest_existing

# What a logger given on the command line without its save folder gets, until the run's root is known.
RUN_ROOT = "<trainer.default_root_dir>"


def with_logger_folder(args: list[str]) -> list[str]:
    """``args``, and where they name a logger class that needs a save folder (``--trainer.logger CSVLogger``) but
    give it none, RUN_ROOT as that folder (settled by ``prepare_trainer``)."""
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
    module, _, name = given.rpartition(".")
    try:
        save_dir = inspect.signature(getattr(importlib.import_module(module), name)).parameters["save_dir"]
    except (ImportError, AttributeError, KeyError, ValueError, TypeError):
        return args  # true, false, a list, no such class: the parser says what is wrong with it
    return [*args, "--trainer.logger.save_dir", RUN_ROOT] if save_dir.default is inspect.Parameter.empty else args


def prepare_trainer(trainer: Namespace) -> None:
    """Refuses a run root that cannot be created or written, before anything is written anywhere; leaves out the
    callbacks the flags give nothing to do; and puts a logger of the config where the default one writes."""
    root = Path(trainer.default_root_dir or ".")
    existing, _ = nearest_existing(root)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "is a file" if not existing.is_dir() else "is not writable"
        raise ConfigError(f"cannot write runs under {root} (trainer.default_root_dir): {existing} {why}.")
    leave_out_idle_callbacks(trainer)
    logger = trainer.get("logger")
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    if init_args is not None:  # into the run's root where it got no folder, without Lightning's file loggers' level
        if init_args.get("save_dir") == RUN_ROOT:
            init_args.save_dir = str(trainer.default_root_dir or ".")
        if init_args.get("name") == "lightning_logs":
            init_args.name = ""


def leave_out_idle_callbacks(trainer: Namespace) -> None:
    """Leaves out the config's callbacks that the Trainer's flags give nothing to do, as those flags ask, and says
    so. Lightning would refuse them instead (a ModelCheckpoint without checkpointing, a LearningRateMonitor
    without logger, a progress bar without one), or, under fast_dev_run, still save a last.ckpt."""
    fast = "fast_dev_run" if trainer.fast_dev_run else None
    idle = {
        "ModelCheckpoint": "enable_checkpointing false" if trainer.enable_checkpointing is False else fast,
        "LearningRateMonitor": "logger false" if trainer.logger is False else fast,
        "TQDMProgressBar": "enable_progress_bar false" if trainer.enable_progress_bar is False else None,
    }
    if not trainer.callbacks:
        return
    kept = []
    for callback in trainer.callbacks if isinstance(trainer.callbacks, list) else [trainer.callbacks]:
        name = str(callback.get("class_path", "")).rsplit(".", 1)[-1] if isinstance(callback, Namespace) else ""
        if idle.get(name):
            rank_zero_info(f"{idle[name]}: the config's {name} is left out.")
        else:
            kept.append(callback)
    trainer.callbacks = kept
