"""Classify the sentiment of sentences with a trained SST-2 checkpoint, or with its ONNX export (without torch).

    sst2-bilstm-predict --ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt "a gorgeous film" "dull"
    sst2-bilstm-predict --ckpt ... --file sentences.txt --output predictions.json
    cat sentences.txt | sst2-bilstm-predict --ckpt ...
    sst2-bilstm-predict --ckpt run1.ckpt --ckpt run2.ckpt --ckpt run3.ckpt "a gorgeous film"  # an ensemble
    sst2-bilstm-predict --model exported/ "a gorgeous film"   # an export of sst2-bilstm-export: no torch

(``python -m sst2_bilstm.predict`` is the same command without installing.)

Sentences are encoded by the tokenizer stored in the checkpoint (or, for checkpoints without one, the run
folder's tokenizer.json; for an export, the tokenizer.json beside it), so prediction always reads text as
training did. Empty sentences, sentences with no word of the vocabulary and sentences longer than the model reads
(its first max_length words) are predicted too, and flagged in the ``note`` column. Several checkpoints (of one
vocabulary, e.g. one config trained with several seeds) predict as one: the mean of their probabilities.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from common.deploy.console import program, write_rows
from common.deploy.exported import ExportedModel
from common.deploy.predictor import Predictor
from common.errors import DataError, exit_on_reported_error
from sst2_bilstm.tokenizer import encode, unreadable, word_count

TOKENIZER_FILE = "tokenizer.json"


class SentimentPredictor(Predictor):
    """A trained model's probabilities with its tokenizer; ``predict`` takes a list of sentences.
    ``class_probabilities`` maps token ids (int64, N x max_length: ``encoded``'s rows) to (N, classes): a
    checkpoint's network, or an export's. SST-2's classes are negative and positive; a model of one's own texts has
    its own."""

    input_shape = (None,)  # a row of token ids, of any length

    def __init__(self, class_probabilities, tokenizer: Tokenizer, class_names: list[str]) -> None:
        self._class_probabilities = class_probabilities
        self.tokenizer = tokenizer
        self.class_names = list(class_names)
        # Two classes: the probability of the second (SST-2's positive), as the model's one sigmoid output gives it.
        self.score = f"probability_{self.class_names[1]}" if len(self.class_names) == 2 else "probability"
        self.columns = ["sentence", "label", self.score, "note"]

    def class_probabilities(self, tokens) -> np.ndarray:
        """(N, classes) class probabilities for rows of token ids (numpy, or a torch tensor)."""
        if type(tokens).__module__.startswith("torch"):
            tokens = tokens.cpu().numpy()
        return self._class_probabilities(np.asarray(tokens, dtype=np.int64))

    def predict(self, sentences: list[str]) -> list[dict]:
        """One dict per sentence: ``label``, the probability (``probability_positive`` for SST-2, that of the
        second class for two, of the label for more), and a ``note`` that flags empty sentences, sentences
        without a known word, and sentences longer than the model reads."""
        if isinstance(sentences, str):
            raise TypeError("predict takes a list of sentences; wrap a single one: predict([sentence]).")
        if not sentences:
            return []
        tokens, notes = self.encoded(sentences)
        rows = []
        for sentence, note, p in zip(sentences, notes, self.class_probabilities(tokens).tolist()):
            label = max(range(len(p)), key=p.__getitem__)  # ties: the first class, as p > 0.5 gave negative
            score = p[1] if len(p) == 2 else p[label]
            rows.append({"sentence": sentence, "label": self.class_names[label], self.score: score, "note": note})
        return rows

    def encoded(self, sentences: list[str]) -> tuple[np.ndarray, list[str]]:
        """The sentences' token ids and their notes; a DataError for text the tokenizer cannot read."""
        for i, sentence in enumerate(sentences):
            if problem := unreadable(sentence):
                raise DataError(f"sentence {i + 1} is {problem}, from bytes that are not UTF-8?")
        tokens = encode(self.tokenizer, sentences)
        return tokens, [self.note(sentence, ids) for sentence, ids in zip(sentences, tokens)]

    def note(self, sentence: str, ids: np.ndarray) -> str:
        if not sentence.strip():
            return "empty"
        notes = ["no known word"] if (ids <= 1).all() else []
        if (words := word_count(self.tokenizer, sentence)) > len(ids):
            notes.append(f"read the first {len(ids)} of {words} words")
        return "; ".join(notes)


def load(*paths: str | Path, batch_size: int = 1000, shared_cores: bool = False) -> SentimentPredictor:
    """The predictor of an SST-2 checkpoint, of several as one ensemble (they must share their tokenizer), or of
    a folder written by the export (onnxruntime, no torch; ``shared_cores`` as ExportedModel's)."""
    if not paths:
        raise TypeError("load takes one checkpoint path or more, or one export folder.")
    if any(Path(path).is_dir() for path in paths):
        if len(paths) > 1:
            raise DataError("an export is one model: give one --model folder, or several checkpoints.")
        return load_export(paths[0], batch_size, shared_cores)
    import torch

    from common.checkpoints import batched_probabilities, per_class
    from common.ensemble import load_models
    from sst2_bilstm.model import SST2BiLSTM

    model, checkpoints = load_models(paths, SST2BiLSTM)  # first: it refuses a checkpoint of the other workflow
    tokenizer = shared_tokenizer(paths, checkpoints)

    def probabilities(tokens: np.ndarray) -> np.ndarray:
        return per_class(batched_probabilities(model, torch.from_numpy(tokens), batch_size)).float().numpy()

    return SentimentPredictor(probabilities, tokenizer, model.data_hparams()["class_names"])


def load_export(folder: str | Path, batch_size: int = 1000, shared_cores: bool = False) -> SentimentPredictor:
    exported = ExportedModel(folder, "sst2_bilstm", batch_size, shared_cores)
    path = Path(folder) / TOKENIZER_FILE
    if not path.is_file():
        raise DataError(f"{path} does not exist: an SST-2 export is model.onnx and the tokenizer.json beside it.")

    probabilities = exported.probabilities

    if exported.metadata.get("reads_padding") == "false":
        probabilities = _padding_cut(probabilities, batch_size)
    return SentimentPredictor(probabilities, Tokenizer.from_file(str(path)), exported.class_names)


def _padding_cut(probabilities, batch_size: int):
    """``probabilities`` of a model that reads no padding, given batches of sentences of like lengths with the
    padding after the longest one cut: the same figures, without computing steps whose results are thrown away
    (onnxruntime's LSTM computes every step, ``sequence_lens`` or not). Batches of 64 sentences: SST-2's 872 dev
    sentences ran at 1,950/s in one batch, 3,230/s in batches of 256, 3,790/s of 64, 3,740/s of 32."""
    size = min(batch_size, 64)

    def cut(tokens: np.ndarray) -> np.ndarray:
        lengths = (tokens != 0).sum(axis=1)  # the padding id, which only ever follows the words
        order = np.argsort(lengths, kind="stable")
        result = None
        for start in range(0, len(tokens), size):
            rows = order[start : start + size]
            batch = probabilities(tokens[rows, : max(1, int(lengths[rows].max()))])
            result = np.empty((len(tokens), *batch.shape[1:]), np.float32) if result is None else result
            result[rows] = batch
        return result if result is not None else probabilities(tokens)

    return cut


def shared_tokenizer(ckpt_paths: list[str | Path], checkpoints: list[dict]) -> Tokenizer:
    """The tokenizer the checkpoints (read from ``ckpt_paths``) were trained with, which the members of an ensemble
    must share."""
    tokenizers = [saved_tokenizer(path, checkpoint) for path, checkpoint in zip(ckpt_paths, checkpoints)]
    if any(tokenizer.to_str() != tokenizers[0].to_str() for tokenizer in tokenizers):
        raise DataError(
            "the checkpoints of an ensemble must share their vocabulary, and these were trained with "
            "different tokenizers (other data or num_words)."
        )
    return tokenizers[0]


def saved_tokenizer(ckpt_path: str | Path, checkpoint: dict) -> Tokenizer:
    """The tokenizer a checkpoint (read from ``ckpt_path``) was trained with: stored in it, else its run folder's
    tokenizer.json."""
    from sst2_bilstm.data import stored_tokenizer

    # Read from the DataModule's state in the checkpoint, not by rebuilding the DataModule, which would read the
    # training texts again (one's own file, which prediction must not need).
    saved = stored_tokenizer(checkpoint)
    if saved is not None:
        return Tokenizer.from_str(saved)
    beside = Path(ckpt_path).resolve().parent.parent / TOKENIZER_FILE  # run folder: version_N/checkpoints/x.ckpt
    if not beside.is_file():
        raise DataError(f"{ckpt_path} holds no tokenizer and there is no {beside}: the text cannot be encoded.")
    return Tokenizer.from_file(str(beside))


def read_sentences(options: argparse.Namespace) -> list[str]:
    if options.sentences:
        return options.sentences
    try:
        # utf-8-sig: a byte-order mark (Notepad writes one) is no part of the first sentence.
        text = Path(options.file).read_text(encoding="utf-8-sig") if options.file else sys.stdin.read()
    except FileNotFoundError:
        raise DataError(f"{options.file} does not exist.") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{options.file or 'standard input'} is not UTF-8 text ({error}).") from None
    return text.removeprefix("\ufeff").splitlines()


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=program("sst2-bilstm-predict", "sst2_bilstm.predict"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument(
        "--ckpt",
        action="append",
        help="a checkpoint of sst2-bilstm (python -m sst2_bilstm.train); repeated, an ensemble",
    )
    weights.add_argument("--model", help="a folder written by sst2-bilstm-export (needs onnxruntime, not torch)")
    parser.add_argument("sentences", nargs="*", help="sentences to classify (else --file, else standard input)")
    parser.add_argument("--file", help="a text file, one sentence per line")
    parser.add_argument("--output", type=Path, help="write CSV or JSON (by extension) instead of a table")
    options = parser.parse_args(args)
    if options.sentences and options.file:
        parser.error("give sentences or --file, not both")
    with exit_on_reported_error():
        predictor = load(*(options.ckpt or [options.model]))
        write_rows(predictor.predict(read_sentences(options)), options.output, predictor.columns)


if __name__ == "__main__":
    main()
