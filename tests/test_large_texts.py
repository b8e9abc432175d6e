"""Large text files in bounded memory (issue 38, item 3): a file is read a row at a time and its words counted and
its texts encoded a chunk at a time, with the same texts, vocabulary and token ids as the whole-file ways they
replace (here with chunks made small), and progress bars past a size."""

import csv
import random
from collections import Counter

import numpy as np
import pytest
from tokenizers import pre_tokenizers

from common import texts as texts_module
from common.errors import DataError
from common.texts import read_rows, read_texts
from sst2_bilstm import tokenizer as tokenizer_module
from sst2_bilstm.tokenizer import OOV, PAD, encode, fit_word_tokenizer

WORDS = ["Film", "film", "GREAT", "great,", "dull.", "it's", "Ωmega", "ΟΔΟΣ", "café", "a\x1cb", "x\u00a0y", "tab\tz"]


def sentences(n: int, seed: int = 0) -> list[str]:
    generator = random.Random(seed)
    return [" ".join(generator.choices(WORDS, k=generator.randint(1, 9))) for _ in range(n)]


def whole_file_vocab(texts: list[str], num_words: int) -> dict[str, int]:
    """The vocabulary as fit_word_tokenizer built it before chunks: each text normalized and split on its own."""
    splitter = tokenizer_module._split_words(fit_word_tokenizer([]))
    counts = Counter()
    for text in texts:
        counts.update(w for w, _ in splitter.pre_tokenizer.pre_tokenize_str(splitter.normalizer.normalize_str(text)))
    vocab = {PAD: 0, OOV: 1}
    for word, _ in counts.most_common(num_words - 2):
        vocab[word] = len(vocab)
    return vocab


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(tokenizer_module, "CHUNK", 7)


def test_words_counted_in_chunks_give_the_whole_file_vocabulary(small_chunks):
    texts = sentences(100)
    tokenizer = fit_word_tokenizer(texts, num_words=9, max_length=5)
    assert tokenizer.get_vocab() == whole_file_vocab(texts, 9)  # ids too: ties in the order first seen
    assert "a\x1cb" in tokenizer.get_vocab()  # a separator to str.split, a word's character to the tokenizer


def test_str_split_splits_where_the_tokenizer_splits_but_at_four_control_characters():
    """_words relies on it: Python's whitespace is WhitespaceSplit's, plus U+001C to U+001F."""
    splitter = pre_tokenizers.WhitespaceSplit()
    differ = [
        i
        for i in range(0x110000)
        if not 0xD800 <= i <= 0xDFFF and chr(i).isspace() != (len(splitter.pre_tokenize_str(f"a{chr(i)}b")) == 2)
    ]
    assert differ == [0x1C, 0x1D, 0x1E, 0x1F]


def test_texts_encoded_in_chunks_give_the_whole_batch_ids(small_chunks, monkeypatch):
    texts = sentences(53)
    tokenizer = fit_word_tokenizer(texts, num_words=6, max_length=4)
    whole = np.array([encoding.ids for encoding in tokenizer.encode_batch(texts)], dtype=np.int64)
    batches = []
    encode_batch = tokenizer.encode_batch
    monkeypatch.setattr(tokenizer, "encode_batch", lambda chunk: batches.append(len(chunk)) or encode_batch(chunk))
    ids = encode(tokenizer, texts)
    assert ids.dtype == np.int64 and np.array_equal(ids, whole)
    assert batches == [7] * 7 + [4]  # never all the texts' Encodings at once
    assert encode(tokenizer, []).shape == (0, 4)


def test_a_file_read_a_row_at_a_time_gives_the_rows_it_gave_whole(tmp_path):
    path = tmp_path / "texts.csv"
    path.write_bytes(
        '\ufefftext,label,extra\r\n"a, ""quoted""\r\nline",1\r\nplain,2,x,y\r\n\r\nonly text\rlast,1\n'.encode()
    )
    assert read_rows(path) == (
        [
            ("line 2", {"text": 'a, "quoted"\r\nline', "label": "1"}),
            ("line 3", {"text": "plain", "label": "2", "extra": "x", None: ["y"]}),  # records, as before
            ("line 5", {"text": "only text"}),
            ("line 6", {"text": "last", "label": "1"}),
        ],
        ["text", "label", "extra"],
    )
    with pytest.raises(DataError, match=r"texts.csv, line 5: no label \(None\)"):
        read_texts(path, None, "label")
    path.write_text("text,label\n" + "".join(f"t{i},{('neg', 'pos')[i % 2]}\n" for i in range(10)))
    texts, labels = read_texts(path, None, "label")
    assert texts == [f"t{i}" for i in range(10)] and labels == ["neg", "pos"] * 5
    assert labels[0] is labels[2]  # each label held once, not once a row


@pytest.mark.parametrize(
    "data",
    [
        b"text,label\n" + "é,1\n".encode() * 5 + b"\xc3(,1\n",  # an invalid continuation byte
        b"text,label\n" + "€,1\n".encode() * 3 + b"\xe2\x82",  # cut off at the end
        b"text,label\n\xff,1\n",  # an invalid start byte
    ],
)
def test_not_utf8_names_the_files_byte_when_read_a_piece_at_a_time(tmp_path, monkeypatch, data):
    monkeypatch.setattr(texts_module, "PIECE", 5)  # pieces that cut characters
    path = tmp_path / "texts.csv"
    path.write_bytes(data)
    with pytest.raises(UnicodeDecodeError) as whole:
        data.decode("utf-8")
    with pytest.raises(DataError, match=f"{whole.value.reason} at byte {whole.value.start}\\)"):
        read_texts(path, None, "label")


def test_large_files_are_read_and_tokenized_under_progress_bars(tmp_path, monkeypatch, capfd, small_chunks):
    path = tmp_path / "texts.csv"
    with path.open("w", newline="") as file:
        csv.writer(file).writerows([("text", "label"), *((text, i % 2) for i, text in enumerate(sentences(200)))])
    texts, _ = read_texts(path, None, "label", progress=True)
    encode(fit_word_tokenizer(texts, progress=True), texts, progress=True)
    assert capfd.readouterr().err == ""  # small: no bars
    monkeypatch.setattr(texts_module, "PROGRESS_BYTES", 100)
    monkeypatch.setattr(tokenizer_module, "PROGRESS_TEXTS", 100)
    texts, _ = read_texts(path, None, "label", progress=True)
    encode(fit_word_tokenizer(texts, progress=True), texts, progress=True)
    shown = capfd.readouterr()
    assert all(what in shown.err for what in ("Reading texts.csv", "Counting words", "Encoding")), shown.err
    assert shown.out == ""
    read_texts(path, None, "label")
    encode(fit_word_tokenizer(texts), texts)
    assert capfd.readouterr().err == ""  # not asked for: none
