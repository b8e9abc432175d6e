"""The configs in ``configs/``, found where they are: inside the installed package, or in a checkout."""

import importlib.resources
from pathlib import Path

from common.errors import DataError

# The top-level configs/ folder, shipped inside the package under this name (pyproject's package-dir).
CONFIG_PACKAGE = "common.configs"
SOURCE_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # a checkout run without installing


def config_path(name: str | Path) -> Path:
    """The file of a config in ``configs/``: the installed package's copy, or a checkout's own folder. A ``Path``
    (a workflow of one's own, its config beside its code) is taken as it is."""
    if isinstance(name, Path):
        if not name.is_file():
            raise DataError(f"the config {name} does not exist.")
        return name
    try:
        path = Path(str(importlib.resources.files(CONFIG_PACKAGE) / name))
    except ModuleNotFoundError:  # run from a checkout that was never installed
        path = SOURCE_CONFIG_DIR / name
    if not path.is_file():
        raise DataError(
            f"the config {name} is missing ({path} does not exist): the installation is incomplete; reinstall "
            "the package (pip install .) or run from a checkout of the repository."
        )
    return path
