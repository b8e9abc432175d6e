"""What the console commands share, without torch: the name the user typed, and rows written as a table, CSV or
JSON."""

import csv
import json
import sys
from pathlib import Path

from common.errors import DataError


def program(command: str | None, module: str) -> str:
    """The name the user typed: the console command where it was run, else ``python -m module``."""
    return command if command and Path(sys.argv[0]).name == command else f"python -m {module}"


# The table's widest cell: a long input is shown by its start and end; CSV and JSON keep it whole.
CELL_WIDTH = 60


def write_rows(rows: list[dict], output: Path | None, columns: list[str]) -> None:
    """Rows as an aligned table on standard output, or to ``output`` as CSV or JSON (chosen by its extension)."""
    if output is None:
        if not rows:
            print("no input: nothing to predict", file=sys.stderr)
            return
        cells = [[_shortened(_cell(row[c])) for c in columns] for row in rows]
        widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
        for line in (columns, ["-" * w for w in widths], *cells):
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".json":
        output.write_text(json.dumps(rows, indent=2) + "\n")
    elif output.suffix == ".csv":
        with output.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({c: _cell(row[c]) for c in columns} for row in rows)
    else:
        raise DataError(f"--output {output}: the extension must be .csv or .json.")
    print(f"{len(rows)} predictions written to {output}", file=sys.stderr)


def _shortened(text: str) -> str:
    text = " ".join(text.split())  # a cell is one line
    if len(text) <= CELL_WIDTH:
        return text
    half = (CELL_WIDTH - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return " ".join(f"{name}:{p:.3f}" for name, p in value)
    return str(value)
