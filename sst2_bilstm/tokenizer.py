"""A word-level tokenizer with the semantics of Keras's ``Tokenizer(num_words, oov_token)``, built with ``tokenizers``.

Keras lower-cases, replaces each character of its filter string by a space, splits on whitespace, and numbers
words by decreasing frequency in the fitted texts (ties in order of first appearance) after the padding id 0 and
the out-of-vocabulary id 1; ids at or above ``num_words`` become the out-of-vocabulary id. Sequences are padded
and truncated at the end (``padding="post"``, ``truncating="post"``).
"""

import re
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
PAD, OOV = "<pad>", "<OOV>"
SEPARATORS = re.compile("[\x1c-\x1f]")  # whitespace to str.split, not to WhitespaceSplit
CHUNK = 10_000  # texts counted or encoded at a time
PROGRESS_TEXTS = 1_000_000  # this many texts are counted and encoded under a progress bar (on stderr)


def _split_words(tokenizer: Tokenizer) -> Tokenizer:
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Lowercase(), normalizers.Replace(Regex(f"[{re.escape(KERAS_FILTERS)}]"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def fit_word_tokenizer(
    texts: Sequence[str], num_words: int = 10_000, max_length: int = 50, progress: bool = False
) -> Tokenizer:
    """A tokenizer of ``num_words`` ids in all (padding and OOV included) fitted on ``texts``; ``progress``: under a
    progress bar on stderr where they are many (``PROGRESS_TEXTS``)."""
    splitter = _split_words(Tokenizer(WordLevel({PAD: 0, OOV: 1}, unk_token=OOV)))
    counts: Counter[str] = Counter()
    # A chunk of texts is normalized and split as one string, joined at a line end (a filtered character, so a
    # space): the normalizer works character by character, so its words are the texts' words in order, with one
    # call a chunk instead of one a text (500,000 texts: 2 s instead of 7-12 s).
    for chunk in _chunks(texts, "Counting words", progress):
        counts.update(_words(splitter, "\n".join(chunk)))
    vocab = {PAD: 0, OOV: 1}
    for word, _ in counts.most_common(num_words - len(vocab)):  # stable sort: ties keep first-seen order, as Keras
        vocab[word] = len(vocab)
    tokenizer = _split_words(Tokenizer(WordLevel(vocab, unk_token=OOV)))
    tokenizer.enable_padding(direction="right", pad_id=0, pad_token=PAD, length=max_length)
    tokenizer.enable_truncation(max_length, direction="right")
    return tokenizer


def _words(splitter: Tokenizer, text: str) -> list[str]:
    """The words of ``text`` as the tokenizer splits them. Python's ``str.split`` splits at the same characters
    as ``WhitespaceSplit`` (tests/test_large_texts.py compares them over all of Unicode) but for four control
    characters, which are part of a word to the tokenizer, and is several times faster than
    ``pre_tokenize_str``, which also works out each word's offsets."""
    normalized = splitter.normalizer.normalize_str(text)
    if SEPARATORS.search(normalized):
        return [word for word, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized)]
    return normalized.split()


def _chunks(texts: Sequence[str], what: str, progress: bool) -> Iterator[Sequence[str]]:
    """``texts`` in slices of ``CHUNK``, under a progress bar where ``progress`` asks and they are many."""
    bar = None
    if progress and len(texts) >= PROGRESS_TEXTS:
        from tqdm import tqdm  # Lightning's; an export's predictor, which encodes a few texts, may lack it

        bar = tqdm(total=len(texts), unit=" texts", desc=what, leave=False)
    for start in range(0, len(texts), CHUNK):
        yield texts[start : start + CHUNK]
        if bar is not None:
            bar.update(min(CHUNK, len(texts) - start))
    if bar is not None:
        bar.close()


def word_count(tokenizer: Tokenizer, text: str) -> int:
    """The words of ``text`` as the tokenizer splits them, before truncation."""
    return len(tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text)))


def encode(tokenizer: Tokenizer, texts: Sequence[str], progress: bool = False) -> np.ndarray:
    """Token ids, int64 of shape (len(texts), max_length). numpy, not torch: an export reads text without torch.
    Encoded ``CHUNK`` texts at a time into the array: the tokenizer's Encodings (their tokens, offsets and masks)
    of all the texts at once would take several times the ids' memory."""
    ids = np.zeros((len(texts), tokenizer.truncation["max_length"]), dtype=np.int64)
    start = 0
    for chunk in _chunks(texts, "Encoding", progress):
        ids[start : start + len(chunk)] = [encoding.ids for encoding in tokenizer.encode_batch(chunk)]
        start += len(chunk)
    return ids


def unreadable(text: str) -> str | None:
    """Why the tokenizer cannot read ``text``, or None: a character UTF-8 cannot encode (a lone surrogate, which
    JSON's escapes and undecodable command-line bytes can make)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"not valid Unicode: a lone surrogate (U+{ord(text[error.start]):04X}) at character {error.start}"
    return None
