import csv
import time

import datasets
import pytest
import torch

from common.errors import DataError
from common.texts import OFFLINE_VARIABLES, PROXY_VARIABLES
from sst2_bilstm.data import SST2DataModule, load_tsv
from tests.conftest import REAL_DATA_DIR, training_batches


def setup_data(data_dir, **kwargs):
    data = SST2DataModule(data_dir=str(data_dir), **kwargs)
    data.setup("fit")
    return data


def test_splits_as_the_reference(sst2_dir):
    data = setup_data(sst2_dir)
    lines = (sst2_dir / "SST-2" / "train.tsv").read_text().splitlines()[1:]
    train_sentences, train_labels = data.texts["train"]
    val_sentences, _ = data.texts["val"]
    # The last 20% of the train file, in file order, without shuffling.
    assert len(train_sentences) == 80 and len(val_sentences) == 20
    assert train_sentences + val_sentences == [line.split("\t")[0] for line in lines]
    assert train_labels.dtype == torch.float32 and train_labels[:4].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert len(data.texts["test"][0]) == 20
    tokens, labels = data.tensors("train")
    assert tokens.shape == (80, 50) and tokens.dtype == torch.int64 and labels.shape == (80,)
    batch_tokens, batch_labels = training_batches(data)[0]
    assert batch_tokens.shape == (32, 50) and batch_labels.dtype == torch.float32


def test_tokenizer_is_fitted_on_the_training_part_only(sst2_dir):
    train = sst2_dir / "SST-2" / "train.tsv"
    train.write_text(train.read_text() + "onlyinvalidation\t1\n" * 25)  # 125 rows: these are the last 20%
    data = setup_data(sst2_dir)
    assert data.texts["val"][0] == ["onlyinvalidation"] * 25
    data.tensors("train")
    assert "onlyinvalidation" not in data.tokenizer.get_vocab()
    assert data.tensors("val")[0][0, 0] == 1  # out of vocabulary


def test_tokenizer_round_trips_through_the_state_dict(sst2_dir):
    data = setup_data(sst2_dir)
    tokens = data.tensors("test")[0]
    restored = SST2DataModule(data_dir=str(sst2_dir))
    restored.load_state_dict(data.state_dict())
    restored.setup("test")
    assert torch.equal(restored.tensors("test")[0], tokens)


@pytest.mark.parametrize(
    "row, expected",
    [
        ("a fine film\t", "line 4: no label"),
        ("a fine film\t2", "line 4: label '2'"),
        ("", "line 4: no label"),
        ("a fine film", "line 4: no label"),
        ("a fine\tfilm\t1", "Expected 2 fields in line 4, saw 3"),
    ],
)
def test_malformed_rows_name_the_file_and_line(sst2_dir, row, expected):
    dev = sst2_dir / "SST-2" / "dev.tsv"
    lines = dev.read_text().splitlines()
    dev.write_text("\n".join([*lines[:3], row, *lines[3:]]) + "\n")
    with pytest.raises(DataError, match=r"dev\.tsv") as error:
        setup_data(sst2_dir)
    assert expected in str(error.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "GLUE's header is sentence<TAB>label"),
        (b"sentence\tscore\nfine\t1\n", "starts with 'sentence\\tscore'"),
        (b"sentence\tlabel\n", "holds no rows after its header"),
        (b"sentence\tlabel\ncaf\xe9\t1\n", "is not UTF-8 text"),
        # Past the first buffer a stream decodes (8 KiB): the byte named is the file's, not the buffer's.
        (
            b"sentence\tlabel\n" + b"fine film\t1\n" * 2000 + b"caf\xe9\t1\n",
            "is not UTF-8 text (invalid continuation byte at byte 24018)",
        ),
    ],
)
def test_bad_files_are_refused(sst2_dir, content, expected):
    (sst2_dir / "SST-2" / "train.tsv").write_bytes(content)
    with pytest.raises(DataError, match=r"train\.tsv") as error:
        setup_data(sst2_dir)
    assert expected in str(error.value)


def test_missing_files_and_no_network_name_the_files(tmp_path, monkeypatch):
    def offline():
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr("sst2_bilstm.data.load_glue_hub", offline)
    monkeypatch.setattr("sst2_bilstm.data.hub_unreachable", lambda: None)  # as where the network reaches the hub
    with pytest.raises(DataError) as error:
        setup_data(tmp_path / "empty")
    message = str(error.value)
    for needle in ("train.tsv", "dev.tsv", "DATA_DIR", "Couldn't reach"):
        assert needle in message


def test_an_unreachable_hub_is_refused_at_once_without_retries(tmp_path, monkeypatch):
    def hub():
        raise AssertionError("datasets would retry for half a minute")

    monkeypatch.setattr("sst2_bilstm.data.load_glue_hub", hub)
    for name in PROXY_VARIABLES + OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(DataError, match=r"missing from .*empty/SST-2, and the Hugging Face hub cannot be reached"):
        setup_data(tmp_path / "empty")
    assert time.monotonic() - started < 3


def test_a_data_dir_one_level_too_deep_names_the_right_one(sst2_dir):
    with pytest.raises(DataError, match=f"names the folder that holds SST-2/: {sst2_dir}"):
        setup_data(sst2_dir / "SST-2")


def test_a_byte_order_mark_is_no_part_of_the_data(sst2_dir, tmp_path):
    plain = setup_data(sst2_dir)
    for name in ("train.tsv", "dev.tsv"):
        path = sst2_dir / "SST-2" / name
        path.write_text(path.read_text(), encoding="utf-8-sig")
    marked = setup_data(sst2_dir)
    assert marked.texts["train"][0] == plain.texts["train"][0] and marked.texts["test"][0] == plain.texts["test"][0]


def test_length_buckets_group_similar_lengths_and_cut_padding(sst2_dir):
    train = sst2_dir / "SST-2" / "train.tsv"
    lines = train.read_text().splitlines()
    words = ["a", "b c", "d e f g", "h i j k l m n o"]
    train.write_text("\n".join(lines + [f"{words[i % 4]}\t{i % 2}" for i in range(100)]) + "\n")
    data = setup_data(sst2_dir, length_buckets=True, batch_size=8, eval_batch_size=8)
    batches = training_batches(data)
    tokens, labels = data.tensors("train")
    assert sum(len(b[1]) for b in batches) == len(labels)  # every training sentence, once
    for batch_tokens, _ in batches:
        lengths = batch_tokens.ne(0).sum(dim=1)
        assert batch_tokens.shape[1] == lengths.max()  # padding cut to the longest sentence
    assert sum(b[0].shape[1] for b in batches) < len(batches) * tokens.shape[1] / 2
    torch.manual_seed(1)
    assert [b[1].tolist() for b in training_batches(data)] != [b[1].tolist() for b in batches]  # reshuffled
    test_lengths = [int(b[0].ne(0).sum(dim=1).max()) for b in data.test_dataloader()]
    assert test_lengths == sorted(test_lengths)  # evaluation: sorted by length


def datasets_csv(path, cache):
    """GLUE's TSV as the project read it through ``datasets``' CSV builder (pandas) before ``load_tsv`` read it
    through common.texts: the reference the one reader is held to."""
    string = datasets.Value("string")
    rows = datasets.load_dataset(
        "csv",
        data_files=str(path),
        split="train",
        features=datasets.Features({"sentence": string, "label": string}),
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
        na_filter=False,
        skip_blank_lines=False,
        cache_dir=str(cache),
    )
    return rows["sentence"], torch.tensor([float(label) for label in rows["label"]])


TRICKY = [
    '"a quoted film"',
    'an "inner" quote',
    '"',
    'a lone " quote',
    "'single quoted'",
    "null",
    "n/a",
    "NaN",
    "None",
    "#not a comment",
    "12345",
    "007",
    "1e5",
    "  spaces before and after  ",
    "café, naïve, 東京, 🎬",
    "a\u2028line separator, a \x0cform feed, a \x85next line",
    "a back\\slash and a \\t",
    "\ufeffa mark inside",
    "",
]


def test_the_one_reader_reads_as_datasets_read_glue_tsv(tmp_path):
    lines = [f"{sentence}\t{i % 2}" for i, sentence in enumerate(TRICKY)]
    path = tmp_path / "dev.tsv"
    path.write_bytes(("\ufeffsentence\tlabel\r\n" + "\r\n".join(lines) + "\r\n").encode())
    sentences, labels = load_tsv(path)
    assert sentences == TRICKY and labels.tolist() == [i % 2 for i in range(len(TRICKY))]
    reference = datasets_csv(path, tmp_path / "cache")
    assert sentences == reference[0] and torch.equal(labels, reference[1])


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["train.tsv", "dev.tsv"])
def test_the_one_reader_reads_glue_sst2_as_datasets_did(name, tmp_path):
    path = REAL_DATA_DIR / "SST-2" / name
    if not path.exists():
        pytest.skip(f"no {path}")
    sentences, labels = load_tsv(path)
    reference = datasets_csv(path, tmp_path / "cache")
    assert sentences == reference[0] and torch.equal(labels, reference[1])
