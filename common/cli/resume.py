"""Resuming a run: ``fit --ckpt_path version_N/checkpoints/last.ckpt`` continues that run with the settings it
was started with, read from its config.yaml."""

from pathlib import Path

from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch.utilities import rank_zero_info

from common.errors import ConfigError

# What a resumed run may change of the settings it was started with: when to stop, how it looks, where the same
# data lives. Anything else would make one run out of two different computations.
RESUME_OVERRIDES = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.enable_progress_bar",
    "data.data_dir",
)


def _option(key: str) -> str:
    """A config key as its option is typed: ``data.init_args.batch_size`` is ``--data.batch_size``."""
    return key.replace(".init_args.", ".")


def resumed_config(parser: ArgumentParser, run: Path, args: list[str], ckpt_path: str) -> Namespace:
    """The config ``run`` was started with, with this command's options (``args``, after ``fit``) on top: only
    those in RESUME_OVERRIDES may differ from it, and each change is said."""
    saved = ["fit", "--config", str(run / "config.yaml")]
    started = parser.parse_args([*saved, "--ckpt_path", ckpt_path])
    resumed = parser.parse_args([*saved, *args, "--ckpt_path", ckpt_path])
    before = {_option(key): value for key, value in started.fit.items()}
    after = {_option(key): value for key, value in resumed.fit.items()}
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and k != "config")
    refused = [key for key in changed if key not in RESUME_OVERRIDES]
    if refused:
        listed = "; ".join(
            f"{key}: {_short(before.get(key))} in the run, {_short(after.get(key))} given" for key in refused
        )
        raise ConfigError(
            f"fit --ckpt_path resumes {run} with the settings it was started with (its config.yaml), and this "
            f"command changes them ({listed}). Drop those options to resume; only {', '.join(RESUME_OVERRIDES)} "
            "may change."
        )
    for key in changed:
        rank_zero_info(f"Resuming {run}: {key} {before.get(key)!r} -> {after.get(key)!r}.")
    return resumed


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
