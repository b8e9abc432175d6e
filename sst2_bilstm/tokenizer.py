"""A word-level tokenizer with the semantics of Keras's ``Tokenizer(num_words, oov_token)``, built with ``tokenizers``.

Keras lower-cases, replaces each character of its filter string by a space, splits on whitespace, and numbers
words by decreasing frequency in the fitted texts (ties in order of first appearance) after the padding id 0 and
the out-of-vocabulary id 1; ids at or above ``num_words`` become the out-of-vocabulary id. Sequences are padded
and truncated at the end (``padding="post"``, ``truncating="post"``).
"""

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
PAD, OOV = "<pad>", "<OOV>"


def _split_words(tokenizer: Tokenizer) -> Tokenizer:
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Lowercase(), normalizers.Replace(Regex(f"[{re.escape(KERAS_FILTERS)}]"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def fit_word_tokenizer(texts: Iterable[str], num_words: int = 10_000, max_length: int = 50) -> Tokenizer:
    """A tokenizer of ``num_words`` ids in all (padding and OOV included) fitted on ``texts``."""
    splitter = _split_words(Tokenizer(WordLevel({PAD: 0, OOV: 1}, unk_token=OOV)))
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(
            word for word, _ in splitter.pre_tokenizer.pre_tokenize_str(splitter.normalizer.normalize_str(text))
        )
    vocab = {PAD: 0, OOV: 1}
    for word, _ in counts.most_common(num_words - len(vocab)):  # stable sort: ties keep first-seen order, as Keras
        vocab[word] = len(vocab)
    tokenizer = _split_words(Tokenizer(WordLevel(vocab, unk_token=OOV)))
    tokenizer.enable_padding(direction="right", pad_id=0, pad_token=PAD, length=max_length)
    tokenizer.enable_truncation(max_length, direction="right")
    return tokenizer


def word_count(tokenizer: Tokenizer, text: str) -> int:
    """The words of ``text`` as the tokenizer splits them, before truncation."""
    return len(tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text)))


def encode(tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """Token ids, int64 of shape (len(texts), max_length). numpy, not torch: an export reads text without torch."""
    ids = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
    return np.array(ids, dtype=np.int64).reshape(len(texts), tokenizer.truncation["max_length"])


def unreadable(text: str) -> str | None:
    """Why the tokenizer cannot read ``text``, or None: a character UTF-8 cannot encode (a lone surrogate, which
    JSON's escapes and undecodable command-line bytes can make)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"not valid Unicode: a lone surrogate (U+{ord(text[error.start]):04X}) at character {error.start}"
    return None
