"""Labelled texts of one's own: a CSV, TSV or JSON Lines file with a text column and a label column, or a Hugging
Face dataset by name; every row checked, and the classes in a stated order."""

import csv
import io
import json
import os
import socket
import urllib.parse
from pathlib import Path

from common.errors import DataError

SUFFIXES = (".csv", ".tsv", ".jsonl")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
TEXT_COLUMNS = ("sentence", "text")  # looked for in this order when no text column is named


def read_texts(path: Path, text_column: str | None, label_column: str) -> tuple[list[str], list[str]]:
    """The texts and labels (as written: a label ``1`` and a label ``"1"`` are one) of a ``.csv``, ``.tsv`` or
    ``.jsonl`` file, UTF-8. Refused in one line: another extension, a file of another format than its extension
    says, a missing column (the file's columns listed), an empty text or label, text that is not UTF-8."""
    rows, columns = read_rows(path)
    suffix = path.suffix.lower()
    if suffix != ".jsonl" and len(columns) == 1 and ("\t" if suffix == ".csv" else ",") in columns[0]:
        other = "a TSV" if suffix == ".csv" else "a CSV"
        raise DataError(f"{path} reads as one column {columns[0][:60]!r}: is it {other} file under another extension?")
    text_column = text_column or next((c for c in TEXT_COLUMNS if c in columns), TEXT_COLUMNS[0])
    for column in (text_column, label_column):
        if column not in columns:
            shown = ", ".join(map(repr, columns[:10])) or "none"
            raise DataError(f"{path} has no column {column!r}; its columns: {shown}.")
    texts, labels = [], []
    for line, row in rows:
        text, label = row.get(text_column), row.get(label_column)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}, {line}: the text is empty; every row needs a text and a label.")
        if label is None or isinstance(label, bool) or str(label).strip() == "" or isinstance(label, list | dict):
            raise DataError(f"{path}, {line}: no label ({label!r}); every row needs a text and a label.")
        texts.append(text)
        labels.append(str(label).strip())
    if not texts:
        raise DataError(f"{path} holds no rows.")
    return texts, labels


def read_rows(path: Path, blank_lines: bool = False) -> tuple[list[tuple[str, dict]], list[str]]:
    """The rows of a ``.csv``, ``.tsv`` or ``.jsonl`` file, UTF-8, each as where it stands (``"line 7"``) and its
    values by column, and the columns (a CSV's or TSV's header row). A TSV quotes nothing; a row with more fields
    than the header keeps the rest in a list under the key None (as ``csv.DictReader`` does), one with fewer lacks
    the last columns. Blank lines are skipped, or with ``blank_lines`` kept as rows without values (for a reader
    that reports them). Refused in one line: another extension, text that is not UTF-8, a malformed CSV."""
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"{path}: texts are read from {', '.join(SUFFIXES)} files, not {path.suffix or 'no extension'}."
        )
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    try:
        # Decoded whole, so an error's byte is the file's (a stream's is within its buffer); a byte-order mark is
        # no part of the header.
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    file = io.StringIO(text, newline="")  # lines end at \n, \r\n or \r, as a file opened with newline="" does
    if path.suffix.lower() == ".jsonl":
        return _jsonl(file, path)
    return _delimited(file, path, blank_lines)


def _delimited(file, path: Path, blank_lines: bool) -> tuple[list, list[str]]:
    tsv = path.suffix.lower() == ".tsv"
    # A TSV quotes nothing (GLUE's do not): a '"' is part of the text. A CSV quotes as spreadsheets write it.
    reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(file)
    rows = []
    try:
        columns = next(reader, [])
        for i, values in enumerate(reader, start=2):
            if values or blank_lines:
                row = dict(zip(columns, values))
                if len(values) > len(columns):
                    row[None] = values[len(columns) :]
                rows.append((f"line {i}", row))
    except csv.Error as error:
        raise DataError(f"{path} is not a readable {'TSV' if tsv else 'CSV'} file ({error}).") from None
    return rows, columns


def _jsonl(file, path: Path) -> tuple[list, list[str]]:
    rows, columns = [], {}
    for i, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}, line {i} is not JSON: a .jsonl file holds one JSON object a line.") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {i} is not a JSON object: a .jsonl file holds one object a line.")
        columns.update(dict.fromkeys(row))
        rows.append((f"line {i}", row))
    return rows, list(columns)


def class_order(labels: list[str]) -> list[str]:
    """The classes of the training labels, in the order the model's outputs take: numbers by value when every
    label is an integer, else alphabetically."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=lambda label: (int(label), label))  # "1" and "01" stay two classes
    except ValueError:
        return sorted(distinct)


def label_ids(labels: list[str], class_names: list[str], source: str) -> list[int]:
    """Each label's class index; a label training never saw is refused."""
    index = {name: i for i, name in enumerate(class_names)}
    if unseen := sorted(set(labels) - set(index)):
        shown = ", ".join(map(repr, unseen[:5])) + (", ..." if len(unseen) > 5 else "")
        raise DataError(f"{source} has labels the training data has not: {shown} (classes: {', '.join(class_names)}).")
    return [index[label] for label in labels]


def read_hub(name: str, config: str | None, split: str, text_column: str | None, label_column: str):
    """A Hugging Face dataset's split by name (offline: the local cache), as texts, labels (as strings) and the
    label feature's class names where it has them (a ``ClassLabel``), else None."""
    import datasets

    if not Path(name).exists() and (unreachable := hub_unreachable()) is not None:
        raise DataError(
            f"the Hugging Face dataset {name} cannot be fetched: the hub cannot be reached ({unreachable}). Run where "
            "it can, or set HF_DATASETS_OFFLINE=1 to read a copy the Hugging Face cache holds."
        )
    try:
        rows = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # the hub's and datasets' failures come in many types
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise DataError(
            f"the Hugging Face dataset {name} ({config or 'default'}, {split}) could not be read: {first}"
        ) from None
    columns = list(rows.column_names)
    text_column = text_column or next((c for c in TEXT_COLUMNS if c in columns), TEXT_COLUMNS[0])
    for column in (text_column, label_column):
        if column not in columns:
            raise DataError(f"{name} ({split}) has no column {column!r}; its columns: {', '.join(columns)}.")
    feature = rows.features[label_column]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    values = rows[label_column]
    for i, label in enumerate(values):
        if label is None or (names and not 0 <= label < len(names)):  # -1: a split whose labels are held back
            raise DataError(
                f"{name} ({split}), row {i}: no label ({label!r}); a split held back for a leaderboard has none: give "
                "--data.hf_test_split a labelled one (validation?)."
            )
    labels = [names[label] if names else str(label) for label in values]
    texts = rows[text_column]
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{name} ({split}), row {i}: the text is empty.")
    return texts, labels, names


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub's host cannot be reached, or None. Asked once, before ``datasets`` would retry for half a
    minute on a machine without network. Behind a proxy, or in the hub's offline mode (its cache), there is
    nothing to ask: ``datasets`` is left to answer."""
    offline = any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)
    if offline or any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{url.hostname}:{port}: {error.strerror or error}"
    return None
