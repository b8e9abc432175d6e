"""One's own texts (docs/own_data.md): CSV, TSV and JSON Lines files, or a Hugging Face dataset by name, train,
test, predict, export and serve with their own classes; two classes keep the sigmoid output, more get a softmax;
bad files refused in one line."""

import csv
import json

import datasets
import numpy as np
import pytest
import torch

from common.errors import DataError
from common.texts import read_texts
from sst2_bilstm import predict as sst2_predict
from sst2_bilstm.data import HubTextsDataModule, TextFilesDataModule
from sst2_bilstm.export import main as export_main
from sst2_bilstm.model import SST2BiLSTM
from sst2_bilstm.train import main
from tests.conftest import check_test_with_no_data_options, copied_run, tiny_run
from tests.test_serve import Server

WORDS = {"sports": ["goal", "match", "team"], "tech": ["chip", "code", "server"], "weather": ["rain", "sun", "wind"]}


def rows(n: int, labels=tuple(WORDS)) -> list[dict]:
    """Texts whose words give their class away, the classes in turn."""
    return [
        {"text": f"the {WORDS[labels[i % len(labels)]][i % 3]} news {i % 5}", "label": labels[i % len(labels)]}
        for i in range(n)
    ]


def write(path, table: list[dict], columns=("text", "label")):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in table))
    else:
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, columns, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows({c: row[c] for c in columns} for row in table)
    return path


def test_own_files_skip_blank_lines_where_glue_files_report_them(tmp_path):
    """The reader GLUE's files share: one's own files skip a blank line (GLUE's reading asks to keep them), a TSV
    keeps its quotes, a CSV takes its own off, and a byte-order mark and CRLF line ends are no part of the data."""
    tsv, csv_file = tmp_path / "texts.tsv", tmp_path / "texts.csv"
    tsv.write_bytes('\ufefftext\tlabel\r\n"quoted" film\t1\r\n\r\nplain \t0\r\n\n'.encode())
    csv_file.write_bytes('\ufefftext,label\r\n"a, b",x\r\n\r\nc,y\r\n'.encode())
    assert read_texts(tsv, None, "label") == (['"quoted" film', "plain "], ["1", "0"])
    assert read_texts(csv_file, None, "label") == (["a, b", "c"], ["x", "y"])
    far = tmp_path / "far.jsonl"
    far.write_bytes(b'{"text": "fine", "label": 1}\n' * 1000 + b'{"text": "caf\xe9", "label": 1}\n')
    with pytest.raises(DataError, match="invalid continuation byte at byte 29013"):  # the file's byte
        read_texts(far, None, "label")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """Three classes, named by strings: a CSV to train, JSON Lines to test; fit, export."""
    root = tmp_path_factory.mktemp("own-texts")
    train, test = write(root / "train.csv", rows(90)), write(root / "test.jsonl", rows(15))
    options = ["--data.train_file", str(train), "--data.test_file", str(test), "--data.batch_size", "8"]
    main(tiny_run("sst2_bilstm", root / "unused", root / "runs", *options, "--trainer.max_epochs", "2"))
    run = root / "runs" / "version_0"
    export_main(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--output", str(root / "export")])
    return run, root / "export"


def test_three_classes_train_and_test_with_a_softmax_output(text_run):
    run, _ = text_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["per_class"]) == ["sports", "tech", "weather"]  # alphabetical: names, not numbers
    assert sum(map(sum, metrics["confusion_matrix"])) == 15
    model = SST2BiLSTM.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert model.head[-1].out_features == 3 and model.hparams.class_names == ["sports", "tech", "weather"]
    probabilities = model.probabilities(model.eval()(torch.randint(2, 20, (4, 10))))
    assert probabilities.shape == (4, 3) and torch.allclose(probabilities.sum(dim=1), torch.ones(4))


def test_predict_export_and_serve_name_the_texts_classes(text_run):
    run, exported = text_run
    sentences = ["the rain news 1", "the chip news 2", ""]
    train = run.parent.parent / "train.csv"
    train.rename(train.with_suffix(".away"))  # a checkpoint predicts without the texts it was trained on
    try:
        checkpoint, export = sst2_predict.load(run / "checkpoints" / "last.ckpt"), sst2_predict.load(exported)
    finally:
        train.with_suffix(".away").rename(train)
    assert checkpoint.class_names == export.class_names == ["sports", "tech", "weather"]
    by_ckpt, by_export = checkpoint.predict(sentences), export.predict(sentences)
    assert [set(row) for row in by_ckpt] == [{"sentence", "label", "probability", "note"}] * 3
    assert [r["label"] for r in by_ckpt] == [r["label"] for r in by_export] and by_ckpt[2]["note"] == "empty"
    tokens = checkpoint.encoded(sentences)[0]
    assert np.abs(checkpoint.class_probabilities(tokens) - export.class_probabilities(tokens)).max() <= 1e-5

    server = Server("sst2_bilstm", "--model", str(exported))
    try:
        status, reply = server.predict({"inputs": sentences[:1]})
        assert status == 200 and list(reply["predictions"][0]["probabilities"]) == ["sports", "tech", "weather"]
    finally:
        server.stop()


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl"])
def test_integer_labels_in_tsv_and_jsonl_keep_two_classes_binary(suffix, tmp_path):
    table = [{"sentence": row["text"], "label": int(row["label"] == "tech")} for row in rows(40, ("sports", "tech"))]
    train = write(tmp_path / f"train{suffix}", table, ("sentence", "label"))
    data = TextFilesDataModule(train_file=str(train), test_fraction=0.25, val_fraction=0.2)
    data.setup("fit")
    assert data.class_names == ("0", "1")
    assert [len(data.split(name)[1]) for name in ("train", "val", "test")] == [24, 6, 10]  # 40: 30 + 10; 30: 24 + 6
    assert data.split("train")[1].dtype == torch.float32  # one sigmoid output, as the reference
    assert SST2BiLSTM(class_names=data.class_names).head[-1].out_features == 1


def test_a_hugging_face_dataset_by_name_reads_its_label_names(tmp_path, monkeypatch):
    """Offline, from the local cache: here a dataset saved by ``datasets`` and loaded by the same call."""
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["no", "yes"])})
    table = [{"text": r["text"], "label": int(r["label"] == "tech")} for r in rows(30, ("sports", "tech"))]
    built = datasets.DatasetDict(
        {split: datasets.Dataset.from_list(table, features=features) for split in ("train", "test")}
    )
    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return built[split]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr("common.texts.hub_unreachable", lambda: None)  # as where the network reaches the hub
    data = HubTextsDataModule(hf_dataset="someone/reviews", hf_config="small", hf_test_split="test")
    data.setup("fit")
    assert data.class_names == ("no", "yes") and calls == [
        ("someone/reviews", "small", "train"),
        ("someone/reviews", "small", "test"),
    ]
    assert len(data.split("test")[1]) == 30


def bad_cases():
    good = rows(30)
    return {
        "missing column": (
            lambda p: write(p / "train.csv", good, ("text",)),
            "has no column 'label'; its columns: 'text'",
        ),
        "empty text": (
            lambda p: write(p / "train.csv", [*good, {"text": " ", "label": "tech"}]),
            "line 32: the text is empty",
        ),
        "one class": (lambda p: write(p / "train.csv", rows(30, ("tech",))), "hold one class ('tech')"),
        "unseen test label": (
            lambda p: (
                write(p / "train.csv", good),
                write(p / "test.csv", [{"text": "the vote", "label": "politics"}]),
            )[0],
            "labels the training data has not: 'politics'",
        ),
        "not UTF-8": (
            lambda p: (p / "train.csv").write_bytes(b"text,label\n\xff\xfe caf\xe9,tech\n") and p / "train.csv",
            "is not UTF-8 text",
        ),
        "CSV named .jsonl": (
            lambda p: (p / "train.jsonl").write_text("text,label\nthe goal,sports\n") and p / "train.jsonl",
            "line 1 is not JSON",
        ),
        "CSV named .tsv": (
            lambda p: write(p / "train.csv", good).rename(p / "train.tsv"),
            "is it a CSV file under another extension?",
        ),
        "unknown extension": (lambda p: write(p / "train.csv", good).rename(p / "train.txt"), "not .txt"),
        "rows sorted by label": (
            lambda p: write(p / "train.csv", sorted(good, key=lambda row: row["label"])),
            "the training split has no weather",
        ),
    }


@pytest.mark.parametrize("case", bad_cases())
def test_bad_texts_are_refused_in_one_line_and_leave_nothing(case, tmp_path, capsys):
    make, message = bad_cases()[case]
    train = make(tmp_path)
    extra = ["--data.test_file", str(tmp_path / "test.csv")] if (tmp_path / "test.csv").exists() else []
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_run("sst2_bilstm", tmp_path / "none", tmp_path / "runs", "--data.train_file", str(train), *extra))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err, err[-1500:]
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_is_refused_with_data_of_other_classes_or_vocabulary(text_run, sst2_dir, tmp_path, capsys):
    run, _ = text_run
    ckpt = str(run / "checkpoints" / "last.ckpt")
    train = str(run.parent.parent / "train.csv")
    cases = {  # GLUE's two classes; the same texts with another vocabulary size
        "classes": (["--data.data_dir", str(sst2_dir)], "class_names ['sports', 'tech', 'weather'] in the checkpoint"),
        "vocabulary": (["--data.train_file", train, "--data.num_words", "50"], "vocab_size 10000 in the checkpoint"),
    }
    for case, (data, message) in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            main(tiny_run("sst2_bilstm", sst2_dir, tmp_path / "runs", *data, "--ckpt_path", ckpt, command="test"))
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and "Traceback" not in err, case
        assert not (tmp_path / "runs").exists()


def test_a_hugging_face_dataset_from_a_local_folder_trains(tmp_path):
    """``load_dataset`` given a folder of train.csv and test.csv, as it reads a dataset without the network."""
    folder = tmp_path / "reviews"
    folder.mkdir()
    write(folder / "train.csv", rows(60))
    write(folder / "test.csv", rows(12))
    main(tiny_run("sst2_bilstm", tmp_path / "none", tmp_path / "runs", "--data.hf_dataset", str(folder)))
    metrics = json.loads((tmp_path / "runs" / "version_0" / "metrics.json").read_text())
    assert (
        list(metrics["per_class"]) == ["sports", "tech", "weather"] and sum(map(sum, metrics["confusion_matrix"])) == 12
    )


def test_a_hugging_face_dataset_without_the_hub_is_refused_at_once(monkeypatch):
    from common.errors import DataError
    from common.texts import OFFLINE_VARIABLES, PROXY_VARIABLES

    for name in PROXY_VARIABLES + OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(DataError, match="someone/reviews cannot be fetched: the hub cannot be reached"):
        HubTextsDataModule(hf_dataset="someone/reviews").setup("fit")


def test_a_hugging_face_split_without_labels_is_refused(monkeypatch):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["no", "yes"])})
    held_back = datasets.Dataset.from_list([{"text": "a fine day", "label": -1}], features=features)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, split=None: held_back)
    monkeypatch.setattr("common.texts.hub_unreachable", lambda: None)
    from common.errors import DataError

    with pytest.raises(DataError, match="row 0: no label \\(-1\\); a split held back"):
        HubTextsDataModule(hf_dataset="glue", hf_config="sst2").setup("fit")


def test_a_runs_checkpoint_is_tested_on_its_own_data_with_no_data_options(text_run, tmp_path, capsys):
    trained_run, _ = text_run
    check_test_with_no_data_options(main, trained_run, tmp_path, capsys)


def test_predictions_name_their_sentences(text_run, tmp_path):
    trained_run, _ = text_run
    run = copied_run(trained_run, tmp_path)
    main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--trainer.enable_progress_bar", "false"])
    with (run / "predictions-last.csv").open() as file:
        rows = list(csv.DictReader(file))
    test_file = trained_run.parent.parent / "test.jsonl"
    written = [json.loads(line)["text"] for line in test_file.read_text().splitlines()]
    assert [row["input"] for row in rows] == written and list(rows[0])[:3] == ["index", "input", "predicted"]
