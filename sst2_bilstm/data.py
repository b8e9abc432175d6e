"""The text workflow's data sources, one DataModule each: GLUE SST-2 (local GLUE files when present, read as
common/texts.py reads a TSV, else the hub through Hugging Face ``datasets``); one's own labelled texts from a CSV,
TSV or JSON Lines file; or a Hugging Face dataset by name."""

from collections.abc import Iterator
from pathlib import Path

import datasets
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from tokenizers import Tokenizer
from torch.utils.data import BatchSampler, RandomSampler

from common.data import TensorDataModule, check_splits, hold_out_end, resolve_data_dir
from common.errors import DataError, require
from common.files import write_text
from common.texts import (
    class_order,
    hub_unreachable,
    label_ids,
    read_hub,
    read_rows,
    read_texts,
)
from sst2_bilstm.tokenizer import encode, fit_word_tokenizer

CLASS_NAMES = ("negative", "positive")
FILES = {"train": "train.tsv", "test": "dev.tsv"}  # GLUE's validation split is the reference's test set
COLUMNS = ["sentence", "label"]  # GLUE's header, exactly


def load_glue_files(folder: Path) -> dict[str, tuple[list[str], torch.Tensor]]:
    """Sentences and float32 labels of the GLUE distribution's ``train.tsv`` and ``dev.tsv``, every row checked."""
    return {split: load_tsv(folder / name) for split, name in FILES.items()}


def load_tsv(path: Path) -> tuple[list[str], torch.Tensor]:
    """A GLUE TSV file, read as one's own TSV texts are (nothing quoted, every sentence as written), with GLUE's
    checks on top: the header exactly sentence<TAB>label, then rows of a sentence, a tab and 0 or 1."""
    rows, columns = read_rows(path, blank_lines=True)  # a blank line is a malformed row to report, not to skip
    if not columns and not rows:
        raise DataError(f"{path} is empty (GLUE's header is sentence<TAB>label, then one row per line).")
    if columns != COLUMNS:
        header = "\t".join(columns).strip()[:80]
        raise DataError(f"{path} starts with {header!r}; GLUE's header is sentence<TAB>label.")
    if not rows:
        raise DataError(f"{path} holds no rows after its header.")
    return _checked(rows, path)


def _checked(rows: list[tuple[str, dict]], path: Path) -> tuple[list[str], torch.Tensor]:
    for line, row in rows:
        if None in row:  # a tab within the sentence
            fields = len(COLUMNS) + len(row[None])
            raise DataError(f"{path} could not be read as GLUE's TSV: Expected 2 fields in {line}, saw {fields}.")
        if (label := row.get("label")) not in ("0", "1"):
            found = f"label {label!r}" if label else "no label"
            raise DataError(f"{path}, {line}: {found}; every row needs a sentence, a tab and 0 or 1.")
    return [row["sentence"] for _, row in rows], torch.tensor([float(row["label"]) for _, row in rows])


def load_glue_hub() -> dict[str, tuple[list[str], torch.Tensor]]:
    glue = datasets.load_dataset("nyu-mll/glue", "sst2")
    return {
        split: (glue[name]["sentence"], torch.tensor(glue[name]["label"], dtype=torch.float32))
        for split, name in (("train", "train"), ("test", "validation"))
    }


def load_sst2(data_dir: Path) -> dict[str, tuple[list[str], torch.Tensor]]:
    folder = data_dir / "SST-2"
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if not missing:
        return load_glue_files(folder)
    if all((data_dir / name).is_file() for name in FILES.values()):
        raise DataError(
            f"{data_dir} holds GLUE's SST-2 files itself; DATA_DIR (or --data.data_dir) names the folder that holds "
            f"SST-2/: {data_dir.parent}."
        )
    not_found = f"SST-2 not found: {', '.join(missing)} missing from {folder}"
    advice = (
        "Provide GLUE's SST-2/train.tsv and SST-2/dev.tsv (header sentence<TAB>label) in that folder, point "
        "DATA_DIR (or --data.data_dir) at a folder holding SST-2/, run where the network reaches the hub, or set "
        "HF_HUB_OFFLINE=1 to use a copy the Hugging Face cache holds."
    )
    if (unreachable := hub_unreachable()) is not None:
        raise DataError(f"{not_found}, and the Hugging Face hub cannot be reached ({unreachable}). {advice}")
    rank_zero_info(f"SST-2 files not found in {folder}: trying the Hugging Face hub (nyu-mll/glue, sst2).")
    try:
        return load_glue_hub()
    except Exception as error:  # the hub's failures come in many types; all end here
        raise DataError(f"{not_found}, and the Hugging Face hub failed ({error}). {advice}") from None


class LengthBuckets(BatchSampler):
    """Batches of sentences of similar length, from the indices ``sampler`` yields (a random order in training,
    one process's share under DDP, where Lightning swaps in its distributed sampler). Where the sampler shuffles:
    cut into pools of ``pool`` batches, sorted by length within each pool, batched, and the batches shuffled;
    otherwise (evaluation, ``overfit_batches``, where Lightning swaps in a sequential sampler): sorted by length."""

    def __init__(self, sampler, batch_size: int, drop_last: bool = False, *, lengths: torch.Tensor, pool: int = 50):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.pool = lengths, pool
        self.shuffle = isinstance(sampler, RandomSampler) or getattr(sampler, "shuffle", False)  # DistributedSampler

    def __iter__(self) -> Iterator[list[int]]:
        indices = torch.tensor(list(self.sampler), dtype=torch.long)
        if not self.shuffle:
            yield from (b.tolist() for b in indices[self.lengths[indices].argsort(stable=True)].split(self.batch_size))
            return
        batches = []
        for pool in indices.split(self.batch_size * self.pool):
            batches += pool[self.lengths[pool].argsort(stable=True)].split(self.batch_size)
        yield from (batches[i].tolist() for i in torch.randperm(len(batches)))


def _trimmed(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    tokens, labels = batch
    longest = max(int(tokens.ne(0).sum(dim=1).max()), 1)  # padding only ever follows the words
    return tokens[:, :longest], labels


class TextDataModule(TensorDataModule):
    """What the text sources share: labelled sentences as token-id tensors, encoded by a Keras-style word tokenizer
    fitted on the training part only, saved as ``tokenizer.json`` in the run folder and stored in checkpoints, so
    a checkpoint always encodes text as its model was trained. A subclass reads its source (``read``).

    Args:
        batch_size: samples per training batch (optimizer step).
        num_words: vocabulary size, padding and out-of-vocabulary ids included.
        max_length: tokens per sequence; shorter ones are padded, longer ones truncated, both at the end.
        val_fraction: the share of the training split, taken from its end (as Keras's ``validation_split`` cuts
            it, without shuffling), held out for validation.
        length_buckets: batch sentences of similar length together and cut each batch's padding to its longest
            sentence (training batches still come in random order); the reference pads everything to
            ``max_length``.
        eval_batch_size: samples per batch for validation, test and predict.
    """

    # Class names under which checkpoints written before the sources were split keep this DataModule's state.
    formerly: tuple[str, ...] = ()

    def __init__(
        self,
        batch_size: int = 32,
        num_words: int = 10_000,
        max_length: int = 50,
        val_fraction: float = 0.2,
        length_buckets: bool = False,
        eval_batch_size: int = 1000,
    ) -> None:
        super().__init__(batch_size, eval_batch_size)
        require(num_words >= 3, f"num_words must be at least 3 (padding, unknown, one word), not {num_words}.")
        require(max_length >= 1, f"max_length must be at least 1, not {max_length}.")
        require(0 < val_fraction < 1, f"val_fraction must be between 0 and 1, not {val_fraction}.")
        self.num_words = num_words
        self.max_length = max_length
        self.val_fraction = val_fraction
        self.length_buckets = length_buckets
        self.texts: dict[str, tuple[list[str], torch.Tensor]] = {}
        self.tokenizer: Tokenizer | None = None
        self._encoded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def read(self) -> dict[str, tuple[list[str], torch.Tensor]]:
        """The source's "train" split (validation is cut from its end) and "test" split: sentences and labels."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if not self.texts:
            splits = self.read()
            train, val = hold_out_end(splits["train"], self.val_fraction)
            self.texts = {"train": train, "val": val, "test": splits["test"]}

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and labels of a split, encoded once. The tokenizer is fitted here, on first use, rather than
        in setup: Lightning restores a checkpoint's tokenizer after setup and before asking for data."""
        if self.tokenizer is None:
            train = self.texts["train"][0]
            self.tokenizer = fit_word_tokenizer(train, self.num_words, self.max_length, self.shows_progress())
            self._save_tokenizer()
        if split not in self._encoded:
            sentences, labels = self.texts[split]
            ids = encode(self.tokenizer, sentences, self.shows_progress())
            self._encoded[split] = (torch.from_numpy(ids), labels)
        return self._encoded[split]

    def shows_progress(self) -> bool:
        """Whether a large file's reading and tokenizing show progress bars: on rank zero, where the Trainer (if
        any yet) has a progress bar."""
        return rank_zero_only.rank == 0 and (self.trainer is None or self.trainer.progress_bar_callback is not None)

    def _save_tokenizer(self) -> None:
        # fast_dev_run writes no files; predict reads a run's tokenizer, never makes a run of its own
        if self.trainer is None or self.trainer.fast_dev_run or self.trainer.predicting:
            return
        log_dir = self.trainer.log_dir  # a broadcast: every process must ask
        if self.trainer.is_global_zero and log_dir:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            write_text(Path(log_dir) / "tokenizer.json", self.tokenizer.to_str(pretty=True))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensors(name)

    def input_names(self) -> list[str]:
        return list(self.texts["test"][0])

    def baseline_split(self, name: str) -> tuple[list[str], list]:
        sentences, labels = self.texts[name]
        return sentences, labels.tolist()

    def batches(self, name: str, sampler, batch_size: int):
        if not self.length_buckets:
            return super().batches(name, sampler, batch_size)
        lengths = self.tensors(name)[0].ne(0).sum(dim=1)
        return LengthBuckets(sampler, batch_size, lengths=lengths)

    def collate(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return _trimmed(batch) if self.length_buckets else batch

    def state_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.to_str()} if self.tokenizer is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if "tokenizer" in state_dict:
            self.tokenizer = Tokenizer.from_str(state_dict["tokenizer"])
            self._encoded.clear()
            self.forget_resident()
            self._save_tokenizer()


def stored_tokenizer(checkpoint: dict) -> str | None:
    """The tokenizer a checkpoint stores (as Lightning stores a DataModule's state: under its class's name), of
    whichever text DataModule trained it."""
    classes, names = [TextDataModule], set()
    while classes:
        cls = classes.pop()
        names.add(cls.__qualname__)
        classes += cls.__subclasses__()
    return next((checkpoint[name]["tokenizer"] for name in names if "tokenizer" in checkpoint.get(name, {})), None)


class SST2DataModule(TextDataModule):
    """GLUE SST-2, split as the reference: training uses the first 80% of GLUE's train split and validation its
    last 20%; the test set is GLUE's validation split.

    Args:
        data_dir: folder holding ``SST-2/train.tsv`` and ``SST-2/dev.tsv``; defaults to ``$DATA_DIR``, else
            ``./data``. Without those files the data comes from the Hugging Face hub.
        batch_size, num_words, max_length, val_fraction, length_buckets, eval_batch_size: as TextDataModule's.
    """

    class_names = CLASS_NAMES

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 32,
        num_words: int = 10_000,
        max_length: int = 50,
        val_fraction: float = 0.2,
        length_buckets: bool = False,
        eval_batch_size: int = 1000,
    ) -> None:
        super().__init__(batch_size, num_words, max_length, val_fraction, length_buckets, eval_batch_size)
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)

    def read(self) -> dict[str, tuple[list[str], torch.Tensor]]:
        return load_sst2(self.data_dir)


class OwnTextsDataModule(TextDataModule):
    """One's own labelled texts (a subclass reads them: ``read_own``). The classes are the training labels,
    numbers in their order, else alphabetical; two keep the reference's single sigmoid output, more get a softmax
    output. Without a test split of their own, the last ``test_fraction`` of the training rows test (cut as
    ``val_fraction``'s are, after it).

    Args:
        text_column: the column of the texts; by default ``sentence``, else ``text``.
        label_column: the column of the labels (numbers or names).
        test_fraction: the share of the training rows that tests when the source has no test split.
        batch_size, num_words, max_length, val_fraction, length_buckets, eval_batch_size: as TextDataModule's.
    """

    formerly = ("SST2DataModule",)

    def __init__(
        self,
        text_column: str | None = None,
        label_column: str = "label",
        test_fraction: float = 0.2,
        batch_size: int = 32,
        num_words: int = 10_000,
        max_length: int = 50,
        val_fraction: float = 0.2,
        length_buckets: bool = False,
        eval_batch_size: int = 1000,
    ) -> None:
        super().__init__(batch_size, num_words, max_length, val_fraction, length_buckets, eval_batch_size)
        require(0 < test_fraction < 1, f"test_fraction must be between 0 and 1, not {test_fraction}.")
        self.text_column, self.label_column, self.test_fraction = text_column, label_column, test_fraction
        self._own: tuple | None = None

    def read_own(self) -> tuple[tuple[list, list], tuple[list, list] | None, list[str] | None, str]:
        """The training texts and labels, the test ones (None: cut from training), the class names where the
        source names them (else None), and how to name the test source in messages."""
        raise NotImplementedError

    def _read(self) -> tuple:
        if self._own is None:
            train, test, names, source = self.read_own()
            names = names or class_order(train[1])
            if len(names) < 2:
                raise DataError(f"the training labels hold one class ({names[0]!r}); a classifier needs at least two.")
            if test is not None:
                label_ids(test[1], names, source)  # refused before training, not after
            self._own = train, test, tuple(names)
        return self._own

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes, read with the texts when first asked for (the model's output follows them)."""
        return self._read()[2]

    def _as_tensor(self, labels: list[str]) -> torch.Tensor:
        ids = label_ids(labels, list(self.class_names), "the texts")
        # Two classes: one sigmoid output and binary cross-entropy, as the reference (float targets); more: classes.
        return torch.tensor(ids, dtype=torch.float32 if len(self.class_names) == 2 else torch.long)

    def read(self) -> dict[str, tuple[list[str], torch.Tensor]]:
        own_train, own_test, _ = self._read()
        train = (own_train[0], self._as_tensor(own_train[1]))
        if own_test is None:
            train, test = hold_out_end(train, self.test_fraction)
        else:
            test = (own_test[0], self._as_tensor(own_test[1]))
        return {"train": train, "test": test}

    def setup(self, stage: str) -> None:
        if self.texts:
            return
        super().setup(stage)
        how = (
            "the validation rows (and without a test split of their own the test rows) are the training rows' "
            "last, so a file sorted by label leaves classes out: shuffle its rows, or give more."
        )
        check_splits(self.texts, self.class_names, how)


class TextFilesDataModule(OwnTextsDataModule):
    """Labelled texts from files: a ``.csv``, ``.tsv`` or ``.jsonl`` file (UTF-8, a header row for CSV and TSV; a
    TSV quotes nothing), read by common/texts.py.

    Args:
        train_file: the training texts and labels.
        test_file: the test texts, in ``train_file``'s format; without it, the test rows are cut from
            ``train_file``'s (``test_fraction``).
        delimiter: a CSV's field separator; by default sniffed among ``,`` ``;`` tab ``|`` (a TSV's is a tab).
        text_column, label_column, test_fraction, batch_size, num_words, max_length, val_fraction,
        length_buckets, eval_batch_size: as OwnTextsDataModule's.
    """

    def __init__(
        self,
        train_file: str,
        test_file: str | None = None,
        delimiter: str | None = None,
        text_column: str | None = None,
        label_column: str = "label",
        test_fraction: float = 0.2,
        batch_size: int = 32,
        num_words: int = 10_000,
        max_length: int = 50,
        val_fraction: float = 0.2,
        length_buckets: bool = False,
        eval_batch_size: int = 1000,
    ) -> None:
        super().__init__(
            text_column, label_column, test_fraction, batch_size, num_words, max_length, val_fraction,
            length_buckets, eval_batch_size,
        )  # fmt: skip
        self.save_hyperparameters()
        self.train_file, self.test_file, self.delimiter = train_file, test_file, delimiter

    def read_own(self) -> tuple:
        columns, progress = (self.text_column, self.label_column), self.shows_progress()
        train = read_texts(Path(self.train_file), *columns, self.delimiter, progress)
        test = read_texts(Path(self.test_file), *columns, self.delimiter, progress) if self.test_file else None
        return train, test, None, self.test_file


class HubTextsDataModule(OwnTextsDataModule):
    """Labelled texts of a Hugging Face dataset by name (offline: the local cache); a label feature with names
    (``ClassLabel``) gives the classes in its order.

    Args:
        hf_dataset: the dataset's name on the hub.
        hf_config: its configuration, where it has several.
        hf_train_split: the split that trains (and validates: ``val_fraction``).
        hf_test_split: the split that tests.
        text_column, label_column, batch_size, num_words, max_length, val_fraction, length_buckets,
        eval_batch_size: as OwnTextsDataModule's.
    """

    def __init__(
        self,
        hf_dataset: str,
        hf_config: str | None = None,
        hf_train_split: str = "train",
        hf_test_split: str = "test",
        text_column: str | None = None,
        label_column: str = "label",
        batch_size: int = 32,
        num_words: int = 10_000,
        max_length: int = 50,
        val_fraction: float = 0.2,
        length_buckets: bool = False,
        eval_batch_size: int = 1000,
    ) -> None:
        super().__init__(
            text_column, label_column, 0.2, batch_size, num_words, max_length, val_fraction, length_buckets,
            eval_batch_size,
        )  # fmt: skip
        self.save_hyperparameters()
        self.hf_dataset, self.hf_config = hf_dataset, hf_config
        self.hf_train_split, self.hf_test_split = hf_train_split, hf_test_split

    def read_own(self) -> tuple:
        columns = self.text_column, self.label_column
        *train, names = read_hub(self.hf_dataset, self.hf_config, self.hf_train_split, *columns)
        *test, _ = read_hub(self.hf_dataset, self.hf_config, self.hf_test_split, *columns)
        return tuple(train), tuple(test), names, f"{self.hf_dataset} ({self.hf_test_split})"
