"""The cache of decoded image folders (common/images.py): where it is and how large, or emptied.

python -m common.cache          # its folder, its arrays and their size
python -m common.cache clear    # remove them all; the next run of each folder decodes it again
"""

import argparse

from common.images import cached_arrays, image_cache


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.cache", description=__doc__.splitlines()[0])
    what = "show: its folder and size (the default); clear: remove every array"
    parser.add_argument("action", nargs="?", choices=["show", "clear"], default="show", help=what)
    action = parser.parse_args(args).action
    arrays = cached_arrays()
    size = sum(stat.st_size for _, stat in arrays)
    if action == "clear":
        for path, _ in arrays:
            path.unlink(missing_ok=True)
    held = f"{len(arrays)} decoded folder{'' if len(arrays) == 1 else 's'} ({size / 1e6:,.1f} MB)"
    print(f"removed {held} from {image_cache()}." if action == "clear" else f"{image_cache()} holds {held}.")


if __name__ == "__main__":
    main()
