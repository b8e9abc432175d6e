"""One's own files read as the tools people come from read them (issue 37): an image folder's (file, class) pairs as
torchvision's ImageFolder lists them, in every format it or Keras reads, at any depth, links followed without
looping; Keras's layout; text files as pandas and ``datasets`` read them, or one line saying why not; the image
cache bounded; Lightning's LeafSpec deprecation line not shown."""

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas
import pytest
from PIL import Image

from common import cache, decoding
from common.errors import ConfigError, DataError
from common.images import IMAGE_SUFFIXES, class_folders, image_files, image_splits, images_under, read_images
from common.texts import class_order, read_rows, read_texts
from fashion_cnn.predict import named_files

# Keras 3's image_dataset_from_directory reads these (keras/src/utils/image_dataset_utils.py, ALLOWLIST_FORMATS);
# Keras is not a dependency of this project.
KERAS_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# A file of each format, by extension as written (cases mixed) and the Pillow format to save it in.
FORMATS = {
    "a.png": "PNG",
    "b.jpg": "JPEG",
    "c.JPEG": "JPEG",
    "d.bmp": "BMP",
    "e.gif": "GIF",
    "f.webp": "WEBP",
    "g.tif": "TIFF",
    "h.TIFF": "TIFF",
    "i.ppm": "PPM",
    "j.pgm": "PPM",
}


def save(path: Path, seed: int, kind: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    (image.convert("L") if path.suffix.lower() == ".pgm" else image).save(path, format=kind)


@pytest.fixture
def tree(tmp_path):
    """train/<class>/ of every format, in sub-folders, with a folder linked in from outside, a linked file, hidden
    files and folders (a Mac's, a notebook's) and notes; test/ beside it. The root is real (tmp_path may be a link)."""
    root = tmp_path.resolve() / "animals"
    for c, name in enumerate(("cat", "dog", "owl")):
        for i, (file, kind) in enumerate(FORMATS.items()):
            save(root / "train" / name / (("batch_a/" if i % 3 else "") + f"{c}{file}"), 10 * c + i, kind)
        save(root / "test" / name / "t.png", 100 + c)
    outside = tmp_path / "elsewhere"
    save(outside / "x.png", 200)
    save(outside / "deeper" / "y.jpg", 201, "JPEG")
    (root / "train" / "dog" / "linked").symlink_to(outside, target_is_directory=True)
    (root / "train" / "owl" / "alias.png").symlink_to(root / "train" / "owl" / "2a.png")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    save(root / "train" / "cat" / "._0a.png", 300)  # a Mac's resource fork, named like an image
    save(root / "train" / "dog" / ".ipynb_checkpoints" / "n.png", 301)
    save(root / "train" / ".ipynb_checkpoints" / "stray" / "n.png", 302)  # not a class
    (root / "train" / "owl" / "batch_a" / "notes.txt").write_text("seen at dusk")
    return root


def torchvision_pairs(root: Path) -> set[tuple[str, str]]:
    """ImageFolder's (file, class name) pairs, hidden files and folders aside, with Keras's GIF added to its
    extensions."""
    from torchvision.datasets import DatasetFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader

    folder = DatasetFolder(str(root), default_loader, extensions=(*IMG_EXTENSIONS, ".gif"))
    pairs = {(path, folder.classes[label]) for path, label in folder.samples}
    return {
        (path, name) for path, name in pairs if not any(p.startswith(".") for p in Path(path).relative_to(root).parts)
    }


def test_the_suffixes_are_every_format_torchvision_or_keras_reads_and_pillow_opens():
    from torchvision.datasets.folder import IMG_EXTENSIONS

    assert set(IMAGE_SUFFIXES) == set(IMG_EXTENSIONS) | set(KERAS_FORMATS)
    pillow = Image.registered_extensions()
    assert {pillow[suffix] for suffix in IMAGE_SUFFIXES} == set(decoding.IMAGE_FORMATS)


def test_an_image_folder_is_read_as_torchvision_reads_it(tree, capsys):
    train = tree / "train"
    classes = class_folders(train)
    files, labels = image_files(train, classes)
    ours = {(str(path), classes[label]) for path, label in zip(files, labels)}
    assert classes == ["cat", "dog", "owl"] and len(files) == 3 * 10 + 2 + 1
    assert ours == torchvision_pairs(train)
    assert {path.suffix for path in files} >= {".JPEG", ".TIFF", ".gif", ".webp", ".pgm"}
    err = capsys.readouterr().err
    assert err == f"{train}: skipped 2 hidden files, 2 hidden folders, 1 .txt file.\n"
    assert (files, labels) == image_files(train, classes)  # the same order each time


def test_every_format_decodes_to_the_pixels_torchvision_loads(tree):
    from torchvision.datasets.folder import default_loader

    files, _ = image_files(tree / "train", ["cat", "dog", "owl"])
    for path in files:
        ours = decoding.load_image(path, size=6, channels=3)
        theirs = np.asarray(default_loader(str(path)), dtype=np.float32).transpose(2, 0, 1) / 255
        assert ours[1] == "" and np.array_equal(ours[0], theirs), path


def test_a_link_to_a_folder_above_is_not_followed_round(tree, capsys):
    cat = tree / "train" / "cat"
    (cat / "batch_a" / "up").symlink_to(cat, target_is_directory=True)  # torchvision lists it 40 levels deep
    (cat / "top").symlink_to(tree / "train", target_is_directory=True)
    files, _ = image_files(tree / "train", ["cat", "dog", "owl"])
    assert len(files) == len(set(files)) == 33
    assert "2 links to a folder above them" in capsys.readouterr().err


def test_a_flat_folder_keeps_its_order_and_so_its_cache(tmp_path):
    """Before sub-folders counted, a class folder's files were sorted by (file name, class) across the classes."""
    root = tmp_path.resolve()
    for c, name in enumerate(("b", "a")):
        for i in (3, 1, 20, 2):
            save(root / name / f"{i}.png", c + i)
    listed = sorted((entry.name, label) for label, name in enumerate(["a", "b"]) for entry in os.scandir(root / name))
    files, labels = image_files(root, ["a", "b"])
    assert files == [root / ["a", "b"][label] / name for name, label in listed] and labels == [
        label for _, label in listed
    ]


def test_the_layouts_torchvision_and_keras_take(tmp_path):
    root = tmp_path / "data"
    save(root / "train" / "a" / "1.png", 0)
    assert image_splits(root) == (root / "train", None)
    save(root / "test" / "a" / "1.png", 1)
    assert image_splits(root) == (root / "train", root / "test")
    keras = tmp_path / "keras"  # image_dataset_from_directory's: the class folders themselves
    for name in ("roses", "tulips"):
        save(keras / name / "1.png", 2)
    (keras / ".ipynb_checkpoints").mkdir()
    assert image_splits(keras) == (keras, None) and class_folders(keras) == ["roses", "tulips"]
    (root / "train").rename(root / "training")
    refusals = {
        root: "holds no train/ folder beside its test/",
        tmp_path / "empty": "holds no train/ folder and no class folders",
        tmp_path / "missing": "is not a folder",
    }
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    for folder, message in refusals.items():
        with pytest.raises(DataError, match=message):
            image_splits(folder)


def test_predict_lists_a_folder_as_training_lists_a_class(tree, capsys):
    dog = tree / "train" / "dog"
    assert named_files([str(dog)]) == [dog / name for name in images_under(dog, Counter())]
    assert len(named_files([str(dog)])) == 12 and "skipped 1 hidden folder" in capsys.readouterr().err


def test_the_python_api_names_its_own_argument(tmp_path):
    save(tmp_path / "big.png", 0)
    with pytest.raises(DataError, match="is 6x6, not 28x28; pass resize=True to scale it"):
        decoding.load_image(tmp_path / "big.png")
    save(tmp_path / "one.bmp", 0, "BMP")
    assert decoding.load_image(tmp_path / "one.bmp", size=6)[0].shape == (1, 6, 6)
    with pytest.raises(DataError, match=r"one\.bmp is not a PNG or JPEG image"):  # the server's formats
        decoding.open_image(tmp_path / "one.bmp")


# Text files: each case as pandas (and datasets, where it reads the file) reads it, or one line.


def named(value) -> str:
    """A label pandas or datasets read, as this project names it: 1.0 is "1"."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def datasets_table(path: Path, **options) -> dict[str, list]:
    import datasets

    kind = "json" if path.suffix == ".jsonl" else "csv"
    return datasets.load_dataset(kind, data_files=str(path), split="train", **options).to_dict()


def test_numeric_labels_are_numbers_as_pandas_reads_them(tmp_path):
    path = tmp_path / "texts.csv"
    path.write_text("text,label\na,1\nb,1.0\nc, 1\nd,01\ne,10\nf,2\ng,+2e0\nh,0.50\n")
    texts, labels = read_texts(path, None, "label")
    table = pandas.read_csv(path)
    assert texts == list(table["text"]) and labels == list(map(named, table["label"])) == ["1"] * 4 + [
        "10",
        "2",
        "2",
        "0.5",
    ]
    assert labels == list(map(named, datasets_table(path)["label"]))
    assert class_order(labels) == list(map(named, sorted(table["label"].unique()))) == ["0.5", "1", "2", "10"]
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 1.0}\n{"text": "c", "label": 2}\n')
    assert read_texts(jsonl, None, "label")[1] == list(map(named, datasets_table(jsonl)["label"])) == ["1", "1", "2"]
    words = tmp_path / "words.csv"  # not all numbers: as written, alphabetical
    words.write_text("text,label\na,10\nb,9\nc,x\n")
    assert (
        class_order(read_texts(words, None, "label")[1]) == ["10", "9", "x"] == sorted(pandas.read_csv(words)["label"])
    )


def test_blank_and_whitespace_lines_are_skipped_as_pandas_skips_them(tmp_path):
    path = tmp_path / "texts.csv"
    path.write_text("text,label\n\na,x\n   \n\t\nb,y\n \n")
    table = pandas.read_csv(path)
    assert read_texts(path, None, "label") == (list(table["text"]), list(table["label"])) == (["a", "b"], ["x", "y"])
    assert datasets_table(path) == {"text": ["a", "b"], "label": ["x", "y"]}
    glue = tmp_path / "glue.tsv"  # GLUE's reading keeps them, to report them
    glue.write_text("sentence\tlabel\na\t1\n  \n\n")
    assert [row for _, row in read_rows(glue, blank_lines=True)[0]] == [
        {"sentence": "a", "label": "1"},
        {"sentence": "  "},
        {},
    ]


@pytest.mark.parametrize("delimiter", [";", "|", "\t", ","])
def test_the_delimiter_is_sniffed_or_given(delimiter, tmp_path):
    path = tmp_path / "texts.csv"
    path.write_text(f'text{delimiter}label\n"a; b, c|d"{delimiter}x\nplain{delimiter}y\n"e, f"{delimiter}x\n')
    expected = (["a; b, c|d", "plain", "e, f"], ["x", "y", "x"])
    assert read_texts(path, None, "label") == read_texts(path, None, "label", delimiter=delimiter) == expected
    given = pandas.read_csv(path, sep=delimiter)
    assert (
        (list(given["text"]), list(given["label"])) == expected == tuple(datasets_table(path, sep=delimiter).values())
    )
    if delimiter != "|":  # pandas' own sniffing (sep=None) reads the header alone, and takes 't' from 'text|label'
        table = pandas.read_csv(path, sep=None, engine="python")
        assert (list(table["text"]), list(table["label"])) == expected


def test_what_pandas_would_read_otherwise_is_refused_in_one_line(tmp_path):
    twice = tmp_path / "twice.csv"
    twice.write_text("text,label,label\na,x,y\nb,y,x\n")
    assert list(pandas.read_csv(twice).columns) == ["text", "label", "label.1"]  # pandas renames the second
    with pytest.raises(DataError, match="names the column 'label' twice in its header: rename one of them"):
        read_texts(twice, None, "label")
    keys = tmp_path / "keys.jsonl"
    keys.write_text('{"text": "a", "label": "x", "label": "y"}\n')
    with pytest.raises(DataError, match="line 1 names the key 'label' twice"):
        read_texts(keys, None, "label")
    folder = tmp_path / "reviews"
    folder.mkdir()
    with pytest.raises(DataError, match=f"{folder} is a folder: .* --data.hf_dataset {folder}$"):
        read_texts(folder, None, "label")
    one = tmp_path / "one.csv"
    one.write_text("text:label\na:x\n")
    with pytest.raises(DataError, match="has no column 'text'; its columns: 'text:label'"):
        read_texts(one, "text", "label")
    with pytest.raises(ConfigError, match="delimiter must be one character, not a quote or a line end: not ';;'"):
        read_texts(twice, None, "label", delimiter=";;")
    tabs = tmp_path / "tabs.csv"
    tabs.write_text("text\tlabel\na, b\tx\n")
    assert read_texts(tabs, None, "label", delimiter="\\t") == (["a, b"], ["x"])  # \t as a shell passes it


# The image cache, bounded.


def test_the_image_cache_keeps_the_most_recently_used_arrays(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    files = []
    for i in range(4):
        save(tmp_path / f"{i}.png", i)
        files.append(tmp_path / f"{i}.png")

    def decode(path):
        return decoding.load_image(path, size=6, channels=3)[0]

    arrays = tmp_path / "cache" / "lightning-keras-classics" / "images"
    read_images(files[:1], decode, "first")
    size = next(arrays.iterdir()).stat().st_size  # one image's array: each of these is as large
    read_images(files[1:2], decode, "second")
    past = 1_000_000_000
    for i, path in enumerate(sorted(arrays.iterdir(), key=lambda p: p.stat().st_mtime_ns)):
        os.utime(path, ns=(past + i, past + i))  # first, then second, long ago
    read_images(files[:1], decode, "first")  # used again: now the most recent
    read_images(files[2:3], decode, "third", limit=2 * size)
    kept = sorted(arrays.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert len(kept) == 2 and np.array_equal(np.load(kept[0]), read_images(files[:1], decode, "first"))
    read_images(files[3:], decode, "fourth", limit=0)  # the newest stays, whatever the limit
    assert len(list(arrays.iterdir())) == 1
    cache.main(["clear"])
    assert not list(arrays.iterdir()) and "removed 1 decoded folder" in capsys.readouterr().out


# Lightning's deprecation line.


def test_the_leafspec_deprecation_is_not_shown_while_lightning_emits_it(monkeypatch):
    from lightning.pytorch.utilities import CombinedLoader

    from common.process import NVML_CHECK, prepare_process

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CombinedLoader([[1, 2]])  # what the fit loop builds
    if not any("LeafSpec" in str(w.message) for w in caught):
        pytest.fail("Lightning no longer builds torch's deprecated LeafSpec: prepare_process's filter can go.")
    monkeypatch.setenv(NVML_CHECK, os.environ.get(NVML_CHECK, "0"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_process()
        CombinedLoader([[1, 2]])
    assert not [str(w.message) for w in caught if "LeafSpec" in str(w.message)]
