"""Two small public tasks written as one's own data, for docs/own_data.md's comparison of the reference config,
the improved one and the report's baseline on data other than the reference's; both work offline.

- ``digits/``: scikit-learn's bundled handwritten digits (1,797 grayscale 8x8 images, 10 classes) as PNG files,
  ``train/<digit>/`` and ``test/<digit>/``, a fifth of each class testing (a stratified split, seed 0).
- ``fortunes/``: the fortune cookies of Debian's ``fortunes`` package (``apt-get install fortunes``) in six of
  its categories, each cookie a text labelled with its category, as ``train.csv`` and ``test.csv`` (a fifth of
  each category testing, seed 0), the rows shuffled, since validation takes the training file's last rows.

    python bench/public_tasks.py --output tasks/
"""

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

FORTUNES = Path("/usr/share/games/fortunes")
CATEGORIES = ("computers", "food", "law", "literature", "politics", "science")


def write_digits(folder: Path) -> None:
    digits = load_digits()
    pixels = (digits.images * 255 / 16).round().astype(np.uint8)  # values 0-16 scaled to bytes
    splits = train_test_split(pixels, digits.target, test_size=0.2, stratify=digits.target, random_state=0)
    for split, images, labels in (("train", splits[0], splits[2]), ("test", splits[1], splits[3])):
        for i, (image, label) in enumerate(zip(images, labels)):
            target = folder / split / str(label)
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{i:04d}.png")


def cookies(category: str) -> list[str]:
    """A category's cookies, each on one line (a cookie's lines joined by spaces)."""
    text = (FORTUNES / category).read_text(encoding="utf-8", errors="replace")
    return [" ".join(cookie.split()) for cookie in text.split("\n%\n") if cookie.strip()]


def write_fortunes(folder: Path) -> None:
    if not FORTUNES.is_dir():
        raise SystemExit(f"{FORTUNES} not found: apt-get install fortunes")
    texts, labels = zip(*[(text, category) for category in CATEGORIES for text in cookies(category)])
    splits = train_test_split(texts, labels, test_size=0.2, stratify=labels, random_state=0)  # shuffled too
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", zip(splits[0], splits[2])), ("test", zip(splits[1], splits[3]))):
        with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["text", "label"])
            writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("tasks"))
    args = parser.parse_args()
    write_digits(args.output / "digits")
    write_fortunes(args.output / "fortunes")
    print(f"written {args.output / 'digits'} and {args.output / 'fortunes'}")


if __name__ == "__main__":
    main()
