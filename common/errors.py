"""Errors whose message says everything: the command lines print it alone, without a traceback."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class DataError(RuntimeError):
    """Input that is missing or malformed: datasets, checkpoints, files to predict."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became nan or infinite."""


@contextmanager
def exit_on_reported_error() -> Iterator[None]:
    """Turns these errors into their message on standard error and exit status 2."""
    try:
        yield
    except (DataError, NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
