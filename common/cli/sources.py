"""Which DataModule a command means. Each data source has its own DataModule, chosen as LightningCLI chooses a
class (``--data ImageFolderDataModule``, or ``class_path`` in a config); and, as before the sources were split,
by the option that names the source (``--data.image_folder photos``), on the command line or in a config file
(a run's config.yaml written before the split among them)."""

import inspect
from pathlib import Path

import yaml

from common.errors import ConfigError

# Sources: the option naming each source -> its DataModule; the key None names the reference's. An old config
# naming several (a folder and data_dir) was read from the first set in this order.
Sources = dict[str | None, type]


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def with_data_class(args: list[str], sources: Sources) -> list[str]:
    """``args`` with ``--data CLASS`` put before the first option that names a source, unless a class is given,
    and each config file whose ``data`` names its source the old way replaced by the same config naming the class
    (as YAML text, which ``--config`` takes as well as a path)."""
    if any(arg == "--data" or arg.startswith("--data=") for arg in args):
        return args
    named = [(i, option) for i, arg in enumerate(args) if (option := _source_option(arg, sources))]
    if len({sources[option] for _, option in named}) > 1:
        raise ConfigError(f"give one data source: {' or '.join(f'--data.{o}' for _, o in named)}, not both.")
    result = list(args)
    for i, arg in reversed(list(enumerate(args))):
        path = arg.removeprefix("--config=") if arg.startswith("--config=") else None
        if path is None and i > 0 and args[i - 1] == "--config":
            path = arg
        if path is not None and (text := _translated(Path(path), sources)) is not None:
            result[i] = f"--config={text}" if arg.startswith("--config=") else text
    if named:
        first, option = named[0]
        result[first:first] = ["--data", class_path(sources[option])]
    return result


def _source_option(arg: str, sources: Sources) -> str | None:
    option = arg.removeprefix("--data.").split("=", 1)[0] if arg.startswith("--data.") else None
    return option if option in sources else None


def _translated(path: Path, sources: Sources) -> str | None:
    """The config file at ``path`` as YAML text naming its data class, where its ``data`` names a source the old
    way (a source option, set or null, and no ``class_path``); None where it needs nothing."""
    config = _loaded(path)
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict) or "class_path" in data or not any(option in data for option in sources):
        return None
    return yaml.safe_dump({**config, "data": _with_class(data, sources)})


def run_data(path: Path, sources: Sources | None) -> str:
    """The data options of a run's config.yaml at ``path``, as YAML text ``--config`` takes (naming the data's
    class where the run named its source the old way): what validate, test and predict of the run's checkpoint
    read its data with."""
    data = (_loaded(path) or {}).get("data") or {}
    if sources and isinstance(data, dict) and "class_path" not in data:
        data = _with_class(data, sources)
    return yaml.safe_dump({"data": data})


def _with_class(data: dict, sources: Sources) -> dict:
    chosen = next((sources[option] for option in sources if option and data.get(option)), sources[None])
    taken = inspect.signature(chosen.__init__).parameters
    return {"class_path": class_path(chosen), "init_args": {key: v for key, v in data.items() if key in taken}}


def _loaded(path: Path) -> dict | None:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # not a readable file here: the parser reads it (a YAML string) or says what is wrong
    return config if isinstance(config, dict) else None
