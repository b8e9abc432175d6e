import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.decoding import MAX_PIXELS, load_image
from fashion_cnn import predict as fashion_predict
from fashion_cnn.data import CLASS_NAMES, FashionMNISTDataModule
from fashion_cnn.train import main as fashion_train
from sst2_bilstm import predict as sst2_predict
from sst2_bilstm.data import SST2DataModule
from sst2_bilstm.train import main as sst2_train
from tests.conftest import REPO
from tests.test_serve import broken_png


# Copies of the session's tiny runs: these tests write predictions and checkpoints into a run.
@pytest.fixture(scope="module")
def fashion_run(tiny_fashion, tmp_path_factory):
    data_dir, checkpoint = tiny_fashion
    run = shutil.copytree(checkpoint.parents[1], tmp_path_factory.mktemp("fashion") / "runs" / "version_0")
    return data_dir, run


@pytest.fixture(scope="module")
def sst2_run(tiny_sst2, tmp_path_factory):
    data_dir, checkpoint = tiny_sst2
    run = shutil.copytree(checkpoint.parents[1], tmp_path_factory.mktemp("sst2") / "runs" / "version_0")
    return data_dir, run


def run_main(main, args, capsys):
    """(exit status, stdout, stderr) of a command line."""
    try:
        main(args)
        status = 0
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


def export_test_images(data_dir, folder, count=10):
    data = FashionMNISTDataModule(data_dir=str(data_dir), download=False)
    data.setup("test")
    folder.mkdir()
    images, _labels = data.test_set
    for i in range(count):
        Image.fromarray((images[i, 0] * 255).round().byte().numpy()).save(folder / f"{i:02d}.png")
    return images[:count]


def test_fashion_command_line_and_api_agree(fashion_run, tmp_path, capsys):
    data_dir, run = fashion_run
    images = export_test_images(data_dir, tmp_path / "png")
    ckpt = str(run / "checkpoints" / "last.ckpt")
    status, out, _ = run_main(fashion_predict.main, ["--ckpt", ckpt, str(tmp_path / "png")], capsys)
    assert status == 0 and out.splitlines()[0].split() == ["file", "label", "probability", "top3", "note"]
    assert len(out.splitlines()) == 2 + 10

    expected = fashion_predict.load(ckpt).predict(images)  # the same pixels, never written to PNG
    for suffix in ("csv", "json"):
        output = tmp_path / f"predictions.{suffix}"
        assert (
            run_main(fashion_predict.main, ["--ckpt", ckpt, str(tmp_path / "png"), "--output", str(output)], capsys)[0]
            == 0
        )
        rows = json.loads(output.read_text()) if suffix == "json" else list(csv.DictReader(output.open()))
        assert [row["label"] for row in rows] == [p["label"] for p in expected]
        assert [float(row["probability"]) for row in rows] == pytest.approx(
            [p["probability"] for p in expected], abs=1e-4
        )
        assert all(row["label"] in CLASS_NAMES for row in rows)
    top3 = expected[0]["top3"]
    assert len(top3) == 3 and top3[0][0] == expected[0]["label"] and top3[0][1] >= top3[1][1] >= top3[2][1]


def test_fashion_refusals(fashion_run, tmp_path, capsys):
    _data_dir, run = fashion_run
    ckpt = str(run / "checkpoints" / "last.ckpt")
    Image.new("L", (32, 30)).save(tmp_path / "big.png")
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(broken_png())
    (tmp_path / "empty").mkdir()
    cases = [
        (
            ["--ckpt", ckpt, str(tmp_path / "broken.png")],
            "broken.png is not a readable PNG, JPEG, BMP, GIF, WebP, TIFF or PPM/PGM image",
        ),
        (["--ckpt", ckpt, str(tmp_path / "big.png")], "big.png is 32x30, not 28x28; pass --resize"),
        (
            ["--ckpt", ckpt, str(tmp_path / "notes.png")],
            "notes.png is not a PNG, JPEG, BMP, GIF, WebP, TIFF or PPM/PGM image",
        ),
        (["--ckpt", ckpt, str(tmp_path / "missing.png")], "missing.png does not exist"),
        (["--ckpt", ckpt, str(tmp_path / "empty")], "holds no images (.png .jpg"),
        (["--ckpt", str(tmp_path / "none.ckpt"), str(tmp_path / "big.png")], "none.ckpt does not exist"),
    ]
    for args, message in cases:
        status, _, err = run_main(fashion_predict.main, args, capsys)
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    status, out, _ = run_main(fashion_predict.main, ["--ckpt", ckpt, "--resize", str(tmp_path / "big.png")], capsys)
    assert status == 0 and "big.png" in out and out.rstrip().endswith("resized from 32x30")


def test_every_format_training_reads_is_read_and_a_folder_says_what_it_skipped(fashion_run, tmp_path, capsys):
    ckpt = str(fashion_run[1] / "checkpoints" / "last.ckpt")
    folder = tmp_path / "mixed"
    (folder / "more").mkdir(parents=True)
    images = {"a.png": "PNG", "b.jpg": "JPEG", "c.webp": "WEBP", "d.bmp": "BMP", "more/e.gif": "GIF"}
    for name, kind in images.items():
        Image.new("L", (28, 28), 90).save(folder / name, format=kind)
    (folder / "notes.txt").write_text("not an image")
    output = tmp_path / "predictions.json"
    status, _, err = run_main(fashion_predict.main, ["--ckpt", ckpt, str(folder), "--output", str(output)], capsys)
    assert status == 0 and [row["file"] for row in json.loads(output.read_text())] == [
        str(folder / name) for name in images
    ]
    assert f"{folder}: skipped 1 .txt file." in err
    for name in ("c.webp", "d.bmp", "more/e.gif"):  # disguised as a PNG: the content decides
        disguised = shutil.copy(folder / name, tmp_path / f"{Path(name).name}.png")
        status, out, _ = run_main(fashion_predict.main, ["--ckpt", ckpt, str(disguised)], capsys)
        assert status == 0 and f"{Path(name).name}.png" in out


def png_header_only(path, width: int, height: int, bit_depth: int = 8):
    """A black grayscale PNG of width x height pixels, all its rows compressed: a decompression bomb."""
    from tests.test_serve import png_bytes

    path.write_bytes(png_bytes(width, height, bit_depth))
    return path


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(fashion_run, tmp_path, capsys):
    ckpt = str(fashion_run[1] / "checkpoints" / "last.ckpt")
    for width, height in ((20_000, 20_000), (13_000, 13_000), (MAX_PIXELS // 1000 + 1, 1000)):
        path = png_header_only(tmp_path / f"{width}.png", width, height)
        status, _, err = run_main(fashion_predict.main, ["--ckpt", ckpt, "--resize", str(path)], capsys)
        assert status == 2 and f"over {MAX_PIXELS:,} pixels" in err and len(err.splitlines()) == 1
    # Decoding 13,000 x 13,000 would take 169 MB; the refusal reads only the header.
    path = png_header_only(tmp_path / "bomb.png", 13_000, 13_000)
    # The peak resident memory of a new process (VmHWM: ru_maxrss would carry over the test process's own).
    probe = f"""
import re
from pathlib import Path
from common.decoding import InputTooLarge, load_image
def peak(): return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())[1]) / 1024
before = peak()
try:
    load_image({str(path)!r}, resize=True)
except InputTooLarge:
    print(peak() - before)
"""
    grown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert float(grown.stdout) < 50, grown.stdout + grown.stderr


def test_image_modes_are_converted_not_clipped(tmp_path):
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (28, 28), dtype=np.uint16)
    Image.fromarray(levels.astype(np.uint8)).save(tmp_path / "8bit.png")
    Image.fromarray(levels * 257).save(tmp_path / "16bit.png")  # the same picture, 65,536 levels
    assert Image.open(tmp_path / "16bit.png").mode.startswith("I")
    assert torch.equal(
        fashion_predict.read_image(tmp_path / "16bit.png"), fashion_predict.read_image(tmp_path / "8bit.png")
    )
    Image.fromarray(rng.integers(300, 65_000, (28, 28), dtype=np.uint16)).save(tmp_path / "mid.png")
    mid = fashion_predict.read_image(tmp_path / "mid.png")
    assert mid.min() >= 300 / 65535 - 1e-6 and mid.max() <= 65_000 / 65535 + 1e-6  # Pillow's 8 bits clipped most to 1
    # A cut-out garment: gray where opaque, white and transparent around it. The background is the background.
    cutout = np.zeros((28, 28, 4), np.uint8)
    cutout[..., :3], cutout[8:20, 8:20] = 255, (128, 128, 128, 255)
    Image.fromarray(cutout, "RGBA").save(tmp_path / "cutout.png")
    pixels = fashion_predict.read_image(tmp_path / "cutout.png")[0]
    assert pixels[0, 0] == 0 and pixels[10, 10] == pytest.approx(128 / 255)
    inverted = fashion_predict.read_image(tmp_path / "cutout.png", invert=True)[0]
    assert inverted[0, 0] == 0 and inverted[10, 10] == pytest.approx(1 - 128 / 255)
    upright = Image.new("L", (30, 40))
    exif = upright.getexif()
    exif[0x0112] = 6  # a camera held on its side: viewers turn the picture a quarter
    upright.save(tmp_path / "turned.jpg", exif=exif)
    assert load_image(tmp_path / "turned.jpg", resize=True)[1] == "resized from 40x30"
    Image.new("CMYK", (28, 28), (0, 0, 0, 255)).save(tmp_path / "cmyk.jpg")  # print workflows' JPEGs
    assert fashion_predict.read_image(tmp_path / "cmyk.jpg").max() < 0.05


def test_the_python_api_refuses_what_the_model_never_saw(fashion_run):
    predictor = fashion_predict.load(fashion_run[1] / "checkpoints" / "last.ckpt")
    cases = {
        "one 56x56 image": (torch.rand(1, 1, 56, 56), "not 1 x 1 x 56 x 56"),
        "one RGB image": (torch.rand(1, 3, 28, 28), "not 1 x 3 x 28 x 28"),
        "RGB without a batch": (torch.rand(3, 28, 28), "not 3 x 28 x 28"),
        "uint8 pixels": ((torch.rand(2, 1, 28, 28) * 255).byte(), "not torch.uint8 (uint8: divide by 255)"),
        "pixels in 0..255": (torch.rand(2, 1, 28, 28) * 255, "pixels must be in [0, 1]"),
    }
    for images, message in cases.values():
        with pytest.raises(ValueError, match=re.escape(message)):
            predictor.predict(images)
    one = torch.rand(28, 28)
    assert predictor.predict(one) == predictor.predict(one.view(1, 1, 28, 28))  # one image without a batch
    assert len(predictor.predict(torch.rand(5, 1, 28, 28))) == 5


def test_invert_turns_dark_on_light_into_light_on_dark(tmp_path):
    Image.new("L", (28, 28), color=255).save(tmp_path / "white.png")
    assert fashion_predict.read_image(tmp_path / "white.png").min() == 1.0
    assert fashion_predict.read_image(tmp_path / "white.png", invert=True).max() == 0.0


def test_checkpoints_of_the_other_model_or_corrupt_are_refused(fashion_run, sst2_run, tmp_path, capsys):
    fashion_ckpt = str(fashion_run[1] / "checkpoints" / "last.ckpt")
    sst2_ckpt = str(sst2_run[1] / "checkpoints" / "last.ckpt")
    (tmp_path / "corrupt.ckpt").write_bytes(b"\x00garbage" * 100)
    (tmp_path / "x.png").write_bytes(b"")
    status, _, err = run_main(fashion_predict.main, ["--ckpt", sst2_ckpt, str(tmp_path / "x.png")], capsys)
    assert status == 2 and "was not saved by a FashionCNN" in err and "other workflow" in err
    status, _, err = run_main(sst2_predict.main, ["--ckpt", fashion_ckpt, "fine"], capsys)
    assert status == 2 and "was not saved by a SST2BiLSTM" in err
    status, _, err = run_main(sst2_predict.main, ["--ckpt", str(tmp_path / "corrupt.ckpt"), "fine"], capsys)
    assert status == 2 and "is not a readable PyTorch Lightning checkpoint" in err and "Traceback" not in err


def test_sst2_sentences_from_arguments_file_and_stdin(sst2_run, tmp_path, capsys, monkeypatch):
    _, run = sst2_run
    ckpt = str(run / "checkpoints" / "last.ckpt")
    sentences = ["good the film is , really", "", "zzzz qqqq", "bad the film is"]
    expected = sst2_predict.load(ckpt).predict(sentences)
    assert [row["note"] for row in expected] == ["", "empty", "no known word", ""]
    assert all(row["label"] in ("negative", "positive") and 0 <= row["probability_positive"] <= 1 for row in expected)

    (tmp_path / "sentences.txt").write_text("\n".join(sentences) + "\n")
    output = tmp_path / "out.json"
    assert (
        run_main(
            sst2_predict.main,
            ["--ckpt", ckpt, "--file", str(tmp_path / "sentences.txt"), "--output", str(output)],
            capsys,
        )[0]
        == 0
    )
    assert json.loads(output.read_text()) == expected
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(sentences)))
    output = tmp_path / "out.csv"
    assert run_main(sst2_predict.main, ["--ckpt", ckpt, "--output", str(output)], capsys)[0] == 0
    assert [row["label"] for row in csv.DictReader(output.open())] == [row["label"] for row in expected]
    status, out, _ = run_main(sst2_predict.main, ["--ckpt", ckpt, *sentences[:1]], capsys)
    assert status == 0 and expected[0]["label"] in out.splitlines()[2]


def test_sst2_text_that_is_not_unicode_is_refused_in_one_line(sst2_run, capsys):
    ckpt = str(sst2_run[1] / "checkpoints" / "last.ckpt")
    # What Python makes of command-line bytes that are not UTF-8: a lone surrogate the tokenizer cannot read.
    status, _, err = run_main(sst2_predict.main, ["--ckpt", ckpt, "fine", "great \udcff film"], capsys)
    assert status == 2 and "sentence 2 is not valid Unicode: a lone surrogate (U+DCFF) at character 6" in err
    assert len(err.strip().splitlines()) == 1


def test_sst2_empty_input_is_an_empty_result(sst2_run, tmp_path, capsys, monkeypatch):
    ckpt = str(sst2_run[1] / "checkpoints" / "last.ckpt")
    (tmp_path / "empty.txt").write_text("")
    status, out, err = run_main(sst2_predict.main, ["--ckpt", ckpt, "--file", str(tmp_path / "empty.txt")], capsys)
    assert status == 0 and out == "" and "nothing to predict" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    output = tmp_path / "none.json"
    status, _, err = run_main(sst2_predict.main, ["--ckpt", ckpt, "--output", str(output)], capsys)
    assert status == 0 and json.loads(output.read_text()) == [] and "0 predictions written" in err
    with pytest.raises(TypeError, match="a list of sentences"):
        sst2_predict.load(ckpt).predict("one sentence, not a list")


def test_sst2_tokenizer_from_the_run_folder_when_the_checkpoint_has_none(sst2_run, tmp_path):
    _, run = sst2_run
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    del checkpoint[SST2DataModule.__qualname__]  # where Lightning keeps a DataModule's state
    stripped = run / "checkpoints" / "no-tokenizer.ckpt"
    torch.save(checkpoint, stripped)
    sentences = ["good the film", "bad the film"]
    assert sst2_predict.load(stripped).predict(sentences) == sst2_predict.load(
        run / "checkpoints" / "last.ckpt"
    ).predict(sentences)
    elsewhere = tmp_path / "a" / "b.ckpt"
    elsewhere.parent.mkdir()
    torch.save(checkpoint, elsewhere)
    with pytest.raises(Exception, match="holds no tokenizer"):
        sst2_predict.load(elsewhere)


def test_a_predictor_reads_each_checkpoint_once_and_leaves_the_random_generator_alone(
    fashion_run, sst2_run, tmp_path, monkeypatch
):
    fashion, sst2 = (run / "checkpoints" / "last.ckpt" for run in (fashion_run[1], sst2_run[1]))
    second = shutil.copy(sst2, tmp_path / "second.ckpt")  # an ensemble of two files
    original, read = torch.load, []

    def counting(path, *args, **kwargs):
        read.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    for predict, paths in ((fashion_predict, [fashion]), (sst2_predict, [sst2]), (sst2_predict, [sst2, second])):
        read.clear()
        state = torch.get_rng_state()
        predictor = predict.load(*paths)
        assert sorted(read) == sorted(map(str, paths)), f"{predict.__name__} read {read}"
        assert torch.equal(torch.get_rng_state(), state)  # building the network drew from a generator of its own
        assert predictor.class_probabilities(np.zeros((1, *(d or 5 for d in predictor.input_shape)))).shape[0] == 1


def test_predict_subcommand_writes_into_the_checkpoints_run_or_says_why_not(fashion_run, tmp_path, capsys):
    data_dir, run = fashion_run
    outside = tmp_path / "elsewhere.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", outside)
    args = ["--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(tmp_path / "runs")]
    for ckpt, extra in (
        (run / "checkpoints" / "last.ckpt", []),
        (outside, []),
        (run / "checkpoints" / "last.ckpt", ["--trainer.logger", "false"]),
    ):
        fashion_train(["predict", *args, "--ckpt_path", str(ckpt), "--trainer.enable_progress_bar", "false", *extra])
    new_run = tmp_path / "runs" / "version_0"
    assert capsys.readouterr().out.strip().splitlines()[-3:] == [
        f"Predictions: {run / 'predictions-last.csv'}",
        f"Predictions: {new_run / 'predictions.csv'} (a checkpoint in no run)",
        f"Predictions: {run / 'predictions-last.csv'}",  # whatever the logger: predict logs nothing
    ]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["version_0"]  # the first made none
    for path in (run / "predictions-last.csv", new_run / "predictions.csv"):
        rows = list(csv.DictReader(path.open()))
        assert [int(r["index"]) for r in rows] == list(range(32)) and all(r["predicted"] in CLASS_NAMES for r in rows)
        assert sum(float(rows[0][f"p_{name}"]) for name in CLASS_NAMES) == pytest.approx(1, abs=1e-4)


def test_sst2_predict_subcommand_writes_both_class_probabilities(sst2_run, tmp_path):
    data_dir, run = sst2_run
    # On the CPU, as the Python API it is compared with (a GPU's LSTM kernels round differently).
    sst2_train(
        [
            "predict",
            "--data.data_dir",
            str(data_dir),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--ckpt_path",
            str(run / "checkpoints" / "last.ckpt"),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.accelerator",
            "cpu",
        ]
    )
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing beside the checkpoint's run
    rows = list(csv.DictReader((run / "predictions-last.csv").open()))
    assert len(rows) == 20 and list(rows[0]) == ["index", "input", "predicted", "p_negative", "p_positive"]
    for row in rows:
        p_negative, p_positive = float(row["p_negative"]), float(row["p_positive"])
        assert p_negative + p_positive == pytest.approx(1, abs=1e-5)
        assert row["predicted"] == ("positive" if p_positive > p_negative else "negative")
    # The same probabilities as the Python API gives for the same sentences.
    sentences = [line.split("\t")[0] for line in (data_dir / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    assert [row["input"] for row in rows] == sentences  # each row names its sentence
    api = sst2_predict.load(run / "checkpoints" / "last.ckpt").predict(sentences)
    assert [float(r["p_positive"]) for r in rows] == pytest.approx([p["probability_positive"] for p in api], abs=1e-5)


def test_sst2_a_byte_order_mark_is_no_part_of_the_first_sentence(sst2_run, tmp_path, capsys, monkeypatch):
    ckpt = str(sst2_run[1] / "checkpoints" / "last.ckpt")
    sentences = ["good the film is", "bad the film is"]
    expected = sst2_predict.load(ckpt).predict(sentences)
    # As Notepad saves UTF-8: the mark glued to the first word would make it unknown.
    (tmp_path / "bom.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8-sig")
    output = tmp_path / "bom.json"
    args = ["--ckpt", ckpt, "--file", str(tmp_path / "bom.txt"), "--output", str(output)]
    assert run_main(sst2_predict.main, args, capsys)[0] == 0
    assert json.loads(output.read_text()) == expected
    monkeypatch.setattr("sys.stdin", io.StringIO("\ufeff" + "\n".join(sentences)))
    assert run_main(sst2_predict.main, ["--ckpt", ckpt, "--output", str(output)], capsys)[0] == 0
    assert json.loads(output.read_text()) == expected


def test_sst2_a_sentence_longer_than_the_model_reads_is_noted_and_the_table_stays_narrow(sst2_run, tmp_path, capsys):
    ckpt = str(sst2_run[1] / "checkpoints" / "last.ckpt")
    long = " ".join(["good the film is"] * 5000)  # 20,000 words
    rows = sst2_predict.load(ckpt).predict([long, "good the film is"])
    assert [row["note"] for row in rows] == ["read the first 50 of 20000 words", ""]
    status, out, _ = run_main(sst2_predict.main, ["--ckpt", ckpt, long, "good the film is"], capsys)
    assert status == 0 and "read the first 50 of 20000 words" in out
    assert max(len(line) for line in out.splitlines()) < 150
    output = tmp_path / "long.csv"
    assert run_main(sst2_predict.main, ["--ckpt", ckpt, long, "--output", str(output)], capsys)[0] == 0
    assert next(csv.DictReader(output.open()))["sentence"] == long  # files keep the whole input


@pytest.mark.parametrize(
    "module, command", [(fashion_predict, "fashion-cnn-predict"), (sst2_predict, "sst2-bilstm-predict")]
)
def test_predict_usage_names_the_command_the_user_typed(module, command, capsys, monkeypatch):
    workflow = module.__name__.rsplit(".", 1)[0]
    for argv0, shown in ((f"/venv/bin/{command}", command), ("predict.py", f"python -m {workflow}.predict")):
        monkeypatch.setattr("sys.argv", [argv0])
        status, out, _ = run_main(module.main, ["--help"], capsys)
        assert status == 0 and out.startswith(f"usage: {shown} ")


def test_the_train_commands_predict_points_at_the_file_predictor(fashion_run, capsys, monkeypatch):
    data_dir, run = fashion_run
    args = ["predict", "--data.data_dir", str(data_dir), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]
    for argv0, predictor in (
        ("pytest", "python -m fashion_cnn.predict"),
        ("/venv/bin/fashion-cnn", "fashion-cnn-predict"),
    ):
        monkeypatch.setattr("sys.argv", [argv0])
        status, _, err = run_main(fashion_train, [*args, "shirt.png"], capsys)
        assert status == 2 and "unrecognized arguments: shirt.png" in err
        assert f"to classify files or sentences, run {predictor} --ckpt CKPT INPUT" in err
    # An unknown option is only that.
    status, _, err = run_main(fashion_train, [*args, "--model.learnin_rate", "0.1"], capsys)
    assert status == 2 and "learnin_rate" in err and "classify files" not in err
