"""The search space: a YAML file of fit options, in their own dotted names, and the values each may take.

model.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a float range (log scale)
model.dense_size: {low: 64, high: 512, step: 64}    # an int range: low, high and step all integers
data.batch_size: [32, 64, 128]                      # choices
model.channels: [[32, 64], [16, 64]]                # choices that are lists
"""

import json
from pathlib import Path

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from common.errors import ConfigError, DataError
from common.packaged import config_path

SCALARS = (type(None), bool, int, float, str)


def space_file(name: str) -> Path:
    """The space's file: a path, or the name of a space shipped in configs/search/."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if len(path.parts) == 1:
        try:
            return config_path(f"search/{path.name}")
        except DataError:
            pass
    raise DataError(f"the search space {name} does not exist (neither a file nor a space of configs/search/).")


def read_space(path: Path) -> dict[str, BaseDistribution]:
    """Each option's distribution. A choice that is no scalar (a list) is kept as its JSON text, the form in which
    Optuna stores choices and the command line takes it."""
    try:
        entries = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise DataError(f"the search space {path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(entries, dict) or not entries:
        raise DataError(f"the search space {path} must map option names to ranges or choices.")
    return {str(name): _distribution(str(name), value) for name, value in entries.items()}


def _distribution(name: str, value) -> BaseDistribution:
    if isinstance(value, list) and value:
        return CategoricalDistribution([v if isinstance(v, SCALARS) else json.dumps(v) for v in value])
    if not isinstance(value, dict) or not {"low", "high"} <= set(value) or set(value) - {"low", "high", "log", "step"}:
        raise ConfigError(
            f"the search space's {name} must be a list of choices or {{low, high[, log][, step]}}, not {value!r}."
        )
    low, high, step = (_number(name, value.get(key)) for key in ("low", "high", "step"))
    log = bool(value.get("log", False))
    if low > high:
        raise ConfigError(f"the search space's {name} has low {low} above high {high}.")
    try:
        if all(isinstance(v, int) for v in (low, high, step if step is not None else 1)):
            return IntDistribution(low, high, log=log, step=step or 1)
        return FloatDistribution(float(low), float(high), log=log, step=step)
    except ValueError as error:  # Optuna's own checks: log with step, log of a value <= 0
        raise ConfigError(f"the search space's {name}: {error}") from None


def _number(name: str, value):
    # YAML 1.1 reads 1e-4 (no dot) as a string.
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"the search space's {name} has {value!r} where a number belongs.") from None


def command_line(params: dict) -> list[str]:
    """A trial's values as fit's command-line options (a choice kept as JSON text is already in that form)."""
    args = []
    for name, value in params.items():
        text = json.dumps(value) if value is None or isinstance(value, bool) else str(value)
        args += [f"--{name}", text]
    return args


MISSING = object()


def value_at(config: dict, name: str, default=None):
    """An option's value in a config as fit prints it, where a class chosen by class_path (the DataModule) keeps
    its options under init_args."""
    node = config
    for part in name.split("."):
        if isinstance(node, dict) and part not in node and isinstance(node.get("init_args"), dict):
            node = node["init_args"]
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def check_names(space: dict[str, BaseDistribution], config: dict, how: str) -> None:
    """Refuses an option that fit does not take (``config``: fit's whole config, every option in it)."""
    for name in space:
        if value_at(config, name, MISSING) is MISSING:
            raise ConfigError(f"the search space's {name} is no option of fit; {how}")
