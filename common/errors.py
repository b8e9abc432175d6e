"""Errors whose message says everything: the command lines print it alone, without a traceback."""

import errno
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class DataError(RuntimeError):
    """Input that is missing or malformed: datasets, checkpoints, files to predict."""


class InputTooLarge(DataError):
    """An input over a stated limit (pixels of an image, characters of a text): a server answers 413."""


class ConfigError(ValueError):
    """An option value that cannot work (a batch of 0 samples, a rate outside [0, 1), ...)."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became nan or infinite."""


REPORTED = (DataError, ConfigError, NonFiniteLossError)


def reported() -> tuple[type[Exception], ...]:
    """REPORTED, and Lightning's own refusals of a configuration (``--trainer.max_epochs -3``), which are meant for
    users as they are, where Lightning is loaded: the exported models' commands run without it (and torch)."""
    lightning = sys.modules.get("lightning.fabric.utilities.exceptions")
    return (*REPORTED, lightning.MisconfigurationException) if lightning else REPORTED


@contextmanager
def exit_on_reported_error() -> Iterator[None]:
    """Turns these errors into their message on standard error and exit status 2."""
    try:
        yield
    except reported() as error:
        message = " ".join(str(error).split())  # one line, whatever the message's own layout
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM):  # a data file or folder the user may not read
            print(f"error: permission denied: {error.filename or error}.", file=sys.stderr)
            sys.exit(2)
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A write that no writer of this project made whole (a logger's, Lightning's own): where, at least.
        where = f" writing {error.filename}" if error.filename else ""
        print(f"error: no space left on the device{where}. Free some space and rerun.", file=sys.stderr)
        sys.exit(2)


def require(condition: bool, message: str) -> None:
    """Raises ConfigError(message) unless ``condition`` holds: the check of an ``__init__`` argument."""
    if not condition:
        raise ConfigError(message)


def missing_package(error: BaseException) -> str | None:
    """What to install, where ``error`` (or an error it was raised from) is a missing optional package: a callback
    or logger given on the command line (``RichProgressBar`` without rich, ``WandbLogger`` without wandb) refuses
    to be built, or to start, with a ModuleNotFoundError that jsonargparse wraps in its own errors."""
    causes = _chain(error)
    missing = next((cause for cause in causes if isinstance(cause, ModuleNotFoundError)), None)
    if missing is None:
        return None
    found = re.search(r"class_path '([^']+)'", " ".join(str(cause) for cause in causes))
    needs = f"{found.group(1)} needs" if found else "a callback or logger needs"
    hint = str(missing) if "pip install" in str(missing) else f"{missing}: pip install {missing.name}"
    return f"{needs} a package that is not installed. {hint}"


def reported_cause(error: BaseException) -> BaseException | None:
    """The reported error ``error`` was raised from, where a library wrapped one in its own (jsonargparse wraps
    what a link's function raises: a DataModule reading its classes)."""
    return next((cause for cause in _chain(error)[1:] if isinstance(cause, reported())), None)


def _chain(error: BaseException) -> list[BaseException]:
    causes, chain = [], error
    while chain is not None and chain not in causes:
        causes.append(chain)
        chain = chain.__cause__ or chain.__context__
    return causes
