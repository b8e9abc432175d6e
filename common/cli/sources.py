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


def with_data_class(args: list[str], sources: Sources) -> list[str]:
    """``args`` with ``--data CLASS`` put before the first option that names a source, unless a class is given,
    and each config (``--config``, a file or YAML text) whose ``data`` names its source the old way replaced by
    YAML text naming the class."""
    if any(arg == "--data" or arg.startswith("--data=") for arg in args):
        return args
    named = [(i, o) for i, a in enumerate(args) if a.startswith("--data.") and (o := a[7:].split("=")[0]) in sources]
    if len({sources[option] for _, option in named}) > 1:
        raise ConfigError(f"give one data source: {' or '.join(f'--data.{o}' for _, o in named)}, not both.")
    result = list(args)
    for i, arg in enumerate(args):
        inline = arg.startswith("--config=")
        if (inline or (i > 0 and args[i - 1] == "--config")) and (
            text := _translated(arg.removeprefix("--config="), sources)
        ):
            result[i] = f"--config={text}" if inline else text
    if named:
        first, option = named[0]
        result[first:first] = ["--data", _class_path(sources[option])]
    return result


def run_data(path: Path, sources: Sources | None) -> str:
    """The data options of a run's config.yaml at ``path``, as YAML text naming their class: what validate, test
    and predict of the run's checkpoint read their data with, whatever the command adds."""
    data = yaml.safe_dump({"data": read_config(str(path)).get("data") or {}})
    return (_translated(data, sources) if sources else None) or data


def _translated(config: str, sources: Sources) -> str | None:
    """The config (a file or YAML text) as YAML text naming its data class, where its ``data`` names a source the
    old way (a source option, set or null, and no ``class_path``); None where it needs nothing."""
    loaded = read_config(config)
    data = loaded.get("data")
    if not isinstance(data, dict) or "class_path" in data or not any(option in data for option in sources):
        return None
    chosen = next((sources[option] for option in sources if option and data.get(option)), sources[None])
    taken = inspect.signature(chosen.__init__).parameters
    init_args = {key: value for key, value in data.items() if key in taken}
    return yaml.safe_dump({**loaded, "data": {"class_path": _class_path(chosen), "init_args": init_args}})


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def read_config(config: str) -> dict:
    """A config as ``--config`` takes it, a file's path or YAML text; {} where it is neither (the parser says why)."""
    try:
        text = Path(config).read_text(encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError):
        text = config
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
