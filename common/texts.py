"""Labelled texts of one's own: a CSV, TSV or JSON Lines file with a text column and a label column, or a Hugging
Face dataset by name; every row checked, and the classes in a stated order."""

import codecs
import contextlib
import csv
import decimal
import itertools
import json
import os
import re
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from common.errors import DataError, require

SUFFIXES = (".csv", ".tsv", ".jsonl")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
TEXT_COLUMNS = ("sentence", "text")  # looked for in this order when no text column is named
DELIMITERS = ",;\t|"  # a CSV's delimiter is sniffed among these, in its header and first SNIFFED_LINES lines
SNIFFED_LINES = 20
PROGRESS_BYTES = 64 * 2**20  # a file this large is read under a progress bar (on stderr)
PIECE = 2**20  # bytes decoded at a time when checking that a file is UTF-8
# A label pandas reads as a number (surrounding spaces, a sign, digits with or without a point, an exponent).
NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)


def read_texts(
    path: Path,
    text_column: str | None,
    label_column: str,
    delimiter: str | None = None,
    progress: bool = False,
) -> tuple[list[str], list[str]]:
    """The texts and labels of a ``.csv``, ``.tsv`` or ``.jsonl`` file, UTF-8, read as pandas and ``datasets`` read
    it: blank lines skipped, a CSV's delimiter sniffed unless given (``read_rows``), labels as written (a label
    ``1`` and a label ``"1"`` are one) unless all are numbers, which are named as the number (``1``, ``1.0``,
    `` 1`` and ``01`` are one class, "1"). Refused in one line: a folder (a Hugging Face dataset), another
    extension, a file of another format than its extension says, a column named twice, a missing column (the
    file's columns listed), an empty text or label, text that is not UTF-8."""
    if path.is_dir():
        raise DataError(
            f"{path} is a folder: a file of texts is one .csv, .tsv or .jsonl file; a folder of them is a Hugging Face "
            f"dataset: --data.hf_dataset {path}"
        )
    with contextlib.closing(_values(path, False, delimiter, progress)) as rows:
        texts, labels = _columns(path, rows, next(rows), text_column, label_column, delimiter)
    if all(map(NUMBER.fullmatch, distinct := set(labels))):
        names = {label: _number_name(label) for label in distinct}
        labels = [names[label] for label in labels]
    return texts, labels


def _columns(
    path: Path, rows: Iterator, columns: list[str], text_column: str | None, label_column: str, delimiter: str | None
) -> tuple[list[str], list[str]]:
    suffix = path.suffix.lower()
    if suffix == ".tsv" and delimiter is None and len(columns) == 1 and "," in columns[0]:
        raise DataError(f"{path} reads as one column {columns[0][:60]!r}: is it a CSV file under another extension?")
    if suffix == ".csv" and delimiter is None and len(columns) == 1 and set(DELIMITERS) & set(columns[0]):
        raise DataError(f"{path} reads as one column {columns[0][:60]!r}: give its delimiter (--data.delimiter).")
    if twice := sorted({name for name in columns if name and columns.count(name) > 1}):
        raise DataError(f"{path} names the column {twice[0]!r} twice in its header: rename one of them.")
    text_column = text_column or next((c for c in TEXT_COLUMNS if c in columns), TEXT_COLUMNS[0])
    for column in (text_column, label_column):
        if column not in columns:
            shown = ", ".join(map(repr, columns[:10])) or "none"
            raise DataError(f"{path} has no column {column!r}; its columns: {shown}.")
    # dict(zip()) of a header naming a column twice (only an unnamed one passes) keeps its last
    at_text, at_label = (len(columns) - 1 - columns[::-1].index(name) for name in (text_column, label_column))
    texts, labels, names = [], [], {}
    # Only the two columns' values are kept, each label once (a label column repeats a few strings): a large
    # file's rows are never all held as dicts or lists of fields.
    for line, row in rows:
        text, label = _field(row, at_text, text_column), _field(row, at_label, label_column)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}, line {line}: the text is empty; every row needs a text and a label.")
        if label is None or isinstance(label, bool) or str(label).strip() == "" or isinstance(label, list | dict):
            raise DataError(f"{path}, line {line}: no label ({label!r}); every row needs a text and a label.")
        texts.append(text)
        label = str(label).strip()
        labels.append(names.setdefault(label, label))
    if not texts:
        raise DataError(f"{path} holds no rows.")
    return texts, labels


def _number_name(label: str) -> str:
    """A number as pandas would show it as a class, without float's rounding: 1 for 1.0, 01 and 1e0; 0.5."""
    value = decimal.Decimal(label).normalize()
    if abs(value.adjusted()) > 30:  # 1e400: written out, it would be a long name
        return str(value)
    return str(int(value)) if value == value.to_integral_value() else format(value, "f")


def read_rows(
    path: Path, blank_lines: bool = False, delimiter: str | None = None
) -> tuple[list[tuple[str, dict]], list[str]]:
    """The rows of a ``.csv``, ``.tsv`` or ``.jsonl`` file, UTF-8, each as where it stands (``"line 7"``) and its
    values by column, and the columns (a CSV's or TSV's header row). A TSV is split at tabs and quotes nothing; a
    CSV is split at ``delimiter``, else at the one of DELIMITERS that csv.Sniffer finds in its header and first
    lines (a comma where it finds none), and quoted as spreadsheets quote. A row with more fields than the header
    keeps the rest in a list under the key None (as ``csv.DictReader`` does), one with fewer lacks the last
    columns. Blank and whitespace-only lines are skipped, or with ``blank_lines`` kept as rows (for a reader that
    reports them). Refused in one line: another extension, text that is not UTF-8, a malformed CSV, a JSON object
    naming a key twice."""
    with contextlib.closing(_values(path, blank_lines, delimiter)) as rows:
        columns, named = next(rows), []
        for i, row in rows:
            if not isinstance(row, dict):
                values, row = row, dict(zip(columns, row))
                if len(values) > len(columns):
                    row[None] = values[len(columns) :]
            named.append((f"line {i}", row))
    return named, columns


def _values(path: Path, blank_lines: bool, delimiter: str | None, progress: bool = False) -> Iterator:
    """A file's columns, then its rows as (line number, values): a CSV's or TSV's as lists of fields, read as they
    are taken (a large file is never held whole, as text or as rows), a JSON Lines file's as dicts."""
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"{path}: texts are read from {', '.join(SUFFIXES)} files, not {path.suffix or 'no extension'}."
        )
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    _check_utf8(path)
    # utf-8-sig: a byte-order mark is no part of the header. newline="": lines end at \n, \r\n or \r.
    with open(path, encoding="utf-8-sig", newline="") as file:
        if path.suffix.lower() == ".jsonl":
            rows, columns = _jsonl(file, path)
            yield columns
            yield from rows
        else:
            yield from _delimited(file, path, blank_lines, delimiter, progress)


def _check_utf8(path: Path) -> None:
    """Refuses a file that is not UTF-8, naming the file's byte; read a piece at a time."""
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with path.open("rb") as file:
        for piece in [*iter(lambda: file.read(PIECE), b""), b""]:
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(piece, final=not piece)
            except UnicodeDecodeError as error:
                at = offset - pending + error.start
                raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {at}).") from None
            offset += len(piece)


def _delimited(file, path: Path, blank_lines: bool, delimiter: str | None, progress: bool) -> Iterator:
    tsv = path.suffix.lower() == ".tsv"
    if delimiter is not None:
        delimiter = "\t" if delimiter == "\\t" else delimiter  # \t as typed on a command line
        wrong = f"delimiter must be one character, not a quote or a line end: not {delimiter!r}."
        require(len(delimiter) == 1 and delimiter not in '"\r\n', wrong)
    # A TSV quotes nothing (GLUE's do not): a '"' is part of the text. A CSV quotes as spreadsheets write it.
    if tsv:
        reader = csv.reader(file, delimiter=delimiter or "\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(file, delimiter=delimiter or _sniffed(file))
    size = path.stat().st_size
    shown = progress and size >= PROGRESS_BYTES
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"Reading {path.name}", disable=not shown, leave=False)
    try:
        with bar:
            yield next(reader, [])
            for i, values in enumerate(reader, start=2):
                if blank_lines or len(values) > 1 or (values and values[0].strip()):
                    yield i, values
                if shown and i % 65_536 == 0:
                    bar.update(file.buffer.tell() - bar.n)  # the text layer's tell() is off while iterating
    except csv.Error as error:
        raise DataError(f"{path} is not a readable {'TSV' if tsv else 'CSV'} file ({error}).") from None


def _sniffed(file) -> str:
    """The delimiter of a CSV's header and first lines, one of DELIMITERS, as csv.Sniffer finds it; a comma where it
    finds none, or one its header lacks (a header of two columns or more holds it)."""
    sample = "".join(itertools.islice(file, SNIFFED_LINES))
    file.seek(0)
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or no delimiter used alike on every line
        return ","
    return delimiter if delimiter in next(iter(sample.splitlines()), "") else ","


def _jsonl(file, path: Path) -> tuple[list, list[str]]:
    rows, columns = [], {}
    for i, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError:
            raise DataError(f"{path}, line {i} is not JSON: a .jsonl file holds one JSON object a line.") from None
        except KeyError as error:
            raise DataError(f"{path}, line {i} names the key {error.args[0]!r} twice: rename one of them.") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {i} is not a JSON object: a .jsonl file holds one object a line.")
        columns.update(dict.fromkeys(row))
        rows.append((i, row))
    return rows, list(columns)


def _field(row: list | dict, index: int, name: str):
    """A row's value in a column: a JSON object's by name, a CSV's or TSV's by place (None past its last)."""
    if isinstance(row, dict):
        return row.get(name)
    return row[index] if index < len(row) else None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's dict, or a KeyError naming a key it gives twice (json keeps the last; pyarrow, which
    ``datasets`` reads JSON with, refuses it)."""
    row = {}
    for key, value in pairs:
        if key in row:
            raise KeyError(key)
        row[key] = value
    return row


def class_order(labels: list[str]) -> list[str]:
    """The classes of the training labels, in the order the model's outputs take: by value when every label is a
    number, else alphabetically."""
    distinct = set(labels)
    if all(map(NUMBER.fullmatch, distinct)):
        return sorted(distinct, key=lambda label: (decimal.Decimal(label), label))  # "1" and "01" stay two classes
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
