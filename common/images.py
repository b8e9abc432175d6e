"""A folder of images in torchvision's ``ImageFolder`` layout (one sub-folder per class, named after it, its images
at any depth) or Keras's, listed as those read it, then read once into arrays and cached, so that the next run with
the same files and settings decodes nothing; the cache keeps the most recently used arrays up to a size
(``python -m common.cache clear`` empties it)."""

import contextlib
import hashlib
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from common.errors import DataError

# Every format torchvision's ImageFolder or Keras's image_dataset_from_directory reads, by extension (any case);
# common/decoding.py's IMAGE_FORMATS are the Pillow formats they open as. A GIF gives its first frame.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGES = f"images ({' '.join(IMAGE_SUFFIXES)})"
# A progress bar from this many images on: fewer decode in a moment.
PROGRESS_FROM = 2000
# Several decoding processes from this many bytes of files on (16 camera photos, 70,000 small PNGs are 25 MB):
# below, their start (0.2 to 0.5 s each on 2 busy cores) costs about what they save.
PROCESSES_FROM = 64 * 1024**2
# The cached arrays kept, most recently used first, up to this many bytes (the newest is always kept).
CACHE_LIMIT = 4 * 1024**3


def image_splits(folder: Path) -> tuple[Path, Path | None]:
    """The folders of ``folder``'s training and test images: ``train/`` and ``test/`` (None without one), as
    torchvision's ImageFolder is used; else, as Keras's image_dataset_from_directory takes a folder, ``folder``
    itself holding the class folders, and no test folder (the test images are then cut from the training ones)."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder.")
    train, test = folder / "train", folder / "test"
    if train.is_dir():
        return train, test if test.is_dir() else None
    classes = [entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")]
    if not classes or test.is_dir():  # a test/ beside class folders is a train/ renamed, not a class
        raise DataError(
            f"{folder} holds no train/ folder{' beside its test/' if classes else ' and no class folders'}: "
            "--data.image_folder names a folder of train/<class>/ (and optionally test/<class>/), or a folder of "
            "<class>/ folders as Keras's image_dataset_from_directory reads."
        )
    return folder, None


def class_folders(folder: Path) -> list[str]:
    """The classes: the names of ``folder``'s sub-folders, sorted (as ``ImageFolder`` orders them), hidden ones
    (``.ipynb_checkpoints``) aside."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder.")
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if len(names) < 2:
        found = f"only {names[0]}/" if names else "none"
        raise DataError(f"{folder} needs a sub-folder per class, at least two; it has {found}.")
    return names


def image_files(folder: Path, class_names: list[str], every_class: bool = True) -> tuple[list[Path], list[int]]:
    """The image files of each class folder of ``folder``, at any depth (``images_under``), and their class
    indices, ordered by path within the class folder across the classes (a flat folder: by file name). What was
    skipped is said in one line; a class folder without images is refused, and so is a folder of a class not in
    ``class_names`` (a test folder's class that training never saw). ``every_class``: each class has its folder (a
    training folder). The paths are absolute, so that they key the cache wherever the run starts."""
    folder = folder.resolve()
    skipped = Counter()
    present = set()
    for entry in os.scandir(folder):
        if entry.is_dir() and not entry.name.startswith("."):
            present.add(entry.name)
        else:  # a hidden folder, or a file beside the class folders
            skipped[_kind(entry)] += 1
    if unknown := sorted(present - set(class_names)):
        raise DataError(f"{folder} has classes the training images have not: {', '.join(unknown)}.")
    if every_class and (missing := [name for name in class_names if name not in present]):
        raise DataError(f"{folder} has no folder for the classes {', '.join(missing)}.")
    files = []
    for label, name in enumerate(class_names):
        if name not in present:
            continue
        images = images_under(folder / name, skipped, frozenset({os.path.realpath(folder)}))
        if not images:
            raise DataError(f"{folder / name} holds no {IMAGES}: remove the folder or add its images.")
        files += [(image, label) for image in images]
    say_skipped(folder, skipped)
    if not files:
        raise DataError(f"{folder} holds no class folder with images: add them, or remove {folder.name}/.")
    files.sort()  # by path, then class: a flat folder's order (and so its cache key) as before sub-folders counted
    return [folder / class_names[label] / name for name, label in files], [label for _, label in files]


def images_under(folder: Path, skipped: Counter, above: frozenset[str] = frozenset()) -> list[str]:
    """The image files in ``folder`` and its sub-folders, as '/'-joined paths relative to it, sorted; what is not
    one is counted into ``skipped`` by kind. Links to folders are followed, as torchvision's ``os.walk(...,
    followlinks=True)`` follows them, but not into a folder that is their own ancestor (``above``: the real paths
    of the folders above ``folder``), where the walk would never end. Hidden files and folders are skipped."""
    found = []
    above = above | {os.path.realpath(folder)}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                skipped[_kind(entry)] += 1
            elif entry.is_dir():
                if os.path.realpath(entry.path) in above:
                    skipped["links to a folder above them"] += 1
                else:
                    found += [f"{entry.name}/{name}" for name in images_under(Path(entry.path), skipped, above)]
            elif entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                found.append(entry.name)
            else:
                skipped[_kind(entry)] += 1
    return sorted(found)


def _kind(entry: os.DirEntry) -> str:
    """What a skipped entry is, in the plural: "hidden files", ".txt files", "broken links", ..."""
    if entry.name.startswith("."):
        return "hidden folders" if entry.is_dir() else "hidden files"
    if not entry.is_file():
        return "broken links" if entry.is_symlink() else "special files"
    suffix = Path(entry.name).suffix.lower()
    return f"{suffix} files" if suffix else "files without extension"


def say_skipped(folder: Path, skipped: Counter) -> None:
    """One line on standard error: what ``images_under`` skipped, by kind, the most frequent first."""
    if skipped:
        kinds = sorted(skipped.items(), key=lambda item: (-item[1], item[0]))
        said = ", ".join(f"{n} {kind if n > 1 else _singular(kind)}" for kind, n in kinds)
        print(f"{folder}: skipped {said}.", file=sys.stderr)


def _singular(kind: str) -> str:
    return kind.replace("files", "file").replace("folders", "folder").replace("links", "link").replace("them", "it")


def read_images(
    files: list[Path],
    decode: Callable[[Path], np.ndarray],
    settings: str,
    limit: int | None = CACHE_LIMIT,
    in_use: set[Path] | None = None,
) -> np.ndarray:
    """The images ``decode`` makes of ``files`` (uint8 arrays, or float arrays in [0, 1]), as one uint8 array: from
    the cache when the same files (by path, size and time) were read with the same ``settings`` before, else decoded
    (``decode_all``) and cached, the cache then pruned to ``limit`` bytes (``prune_cache``; None: unbounded). A
    cached array is memory-mapped, copied on write: the pages are the file's until a caller changes them.
    ``in_use``: the arrays of the caller's other folders, which pruning keeps (a DataModule reads its train and test
    folders in prepare_data, then again in setup: a cache smaller than both must not drop one for the other); this
    array's file is added to it."""
    # Here, not at the top: the rest of this module (IMAGE_SUFFIXES, for the torch-free predictor) needs no torch.
    from common.files import written_whole

    in_use = set() if in_use is None else in_use
    key = hashlib.sha1(settings.encode())
    size = 0
    for path in map(str, files):  # absolute (image_files): resolving 70,000 paths would cost seconds
        stat = os.stat(path)  # a file copied over another with its time kept changes its inode and ctime
        key.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}\0{stat.st_ctime_ns}\n".encode())
        size += stat.st_size
    cached = image_cache() / f"{key.hexdigest()}.npy"
    if cached.is_file():
        try:
            images = np.load(cached, mmap_mode="c")
        except (OSError, ValueError):
            pass  # a damaged cache file: read the images again
        else:
            with contextlib.suppress(OSError):  # a read-only cache is read all the same
                os.utime(cached)  # its time says when it was last used: prune_cache removes the oldest first
            in_use.add(cached)
            return images
    images = decode_all(files, decode, processes(size))
    cached.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(cached, "wb", size=images.nbytes) as file:
        np.save(file, images)  # straight into the file: no second copy of the images in memory
    in_use.add(cached)
    if limit is not None:
        prune_cache(limit, keep=in_use)
    return images


def processes(size: int) -> int:
    """How many processes decode files of ``size`` bytes in all: one for a small folder (starting others would
    cost more than they save), else one per core this process may use."""
    return 1 if size < PROCESSES_FROM else len(os.sched_getaffinity(0))


def decode_all(files: list[Path], decode: Callable[[Path], np.ndarray], workers: int = 1) -> np.ndarray:
    """``decode`` of every file, as one uint8 array, in this process or in ``workers`` others (``decode`` then a
    function of a module, or a ``functools.partial`` of one: it goes to them pickled)."""
    if workers == 1:
        return _gathered(files, map(decode, _progress(files)))
    from tqdm import tqdm  # Lightning's progress bars use it

    images, done = None, 0
    with tqdm(total=len(files), desc=_reading(files), unit=" images", file=sys.stderr) as progress:
        for block in _decoded_by(workers, decode, files):
            if images is None:
                images = np.empty((len(files), *block.shape[1:]), np.uint8)
            images[done : done + len(block)] = block
            done += len(block)
            progress.update(len(block))
    return images


def _decoded_by(workers: int, decode: Callable[[Path], np.ndarray], files: list[Path]) -> Iterator[np.ndarray]:
    """The decoded files, in order, in blocks of consecutive ones, from ``workers`` fresh Python processes
    (``serve_decoding``), each given a chunk of files as it finishes the last. Fresh ones, not multiprocessing's: a
    fork of a process whose torch threads hold a lock can hang on it, and its spawn and fork server import the main
    module again in every process (the CLI's torch and Lightning: 5 to 14 s a pool on 2 busy cores)."""
    chunk = max(1, min(256, len(files) // (workers * 16)))  # small enough to share the end out, large to cost little
    chunks, results = queue.SimpleQueue(), queue.SimpleQueue()
    for start in range(0, len(files), chunk):
        chunks.put((start, [str(path) for path in files[start : start + chunk]]))
    command = [sys.executable, "-c", "from common.images import serve_decoding; serve_decoding()"]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}  # this process's modules, wherever it started
    pipes = subprocess.PIPE
    processes = [
        subprocess.Popen(command, stdin=pipes, stdout=pipes, env=env) for _ in range(min(workers, chunks.qsize()))
    ]

    def feed(process: subprocess.Popen) -> None:
        try:
            while True:
                try:
                    start, paths = chunks.get_nowait()
                except queue.Empty:
                    return
                pickle.dump((decode, paths), process.stdin)
                process.stdin.flush()
                results.put((start, pickle.load(process.stdout)))
        except (OSError, EOFError, pickle.UnpicklingError):  # the process died (killed, out of memory)
            results.put((None, RuntimeError(f"a decoding process ended (exit status {process.wait()}).")))

    for process in processes:
        threading.Thread(target=feed, args=(process,), daemon=True).start()
    try:
        done, waiting = 0, {}
        while done < len(files):
            start, decoded = results.get()
            if isinstance(decoded, BaseException):
                raise decoded
            waiting[start] = decoded
            while done in waiting:
                block = waiting.pop(done)
                done += len(block)
                yield block
    finally:
        for process in processes:
            process.kill()  # done, or an error: nothing to wait for
            process.wait()


def serve_decoding() -> None:
    """A decoding process (``_decoded_by``): reads pickled (decode, paths) from standard input until it closes and
    writes back their images as one uint8 array, or the exception one of them raised (a DataError's one line)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the reading process's to act on
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a print while decoding must not go into the answers
    while True:
        try:
            decode, paths = pickle.load(requests)
        except EOFError:
            return
        try:
            answer = np.stack([_bytes(decode(Path(path))) for path in paths])  # one array pickles fast
        except Exception as error:  # the reading process raises it
            answer = error
        try:
            answer = pickle.dumps(answer)
        except Exception:  # an exception that does not pickle: its name and message
            answer = pickle.dumps(RuntimeError(f"{type(answer).__name__}: {answer}"))
        answers.write(answer)
        answers.flush()


def _bytes(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.dtype == np.uint8 else np.rint(pixels * 255).astype(np.uint8)


def _gathered(files: list[Path], decoded) -> np.ndarray:
    """The decoded images, one per file, written into one array as they come (no list of them beside it)."""
    images = None
    for i, pixels in enumerate(decoded):
        if images is None:
            images = np.empty((len(files), *pixels.shape), np.uint8)
        images[i] = _bytes(pixels)
    return images


def image_cache() -> Path:
    """The folder of the cached arrays."""
    from common.data import cache_dir

    return cache_dir() / "images"


def cached_arrays() -> list[tuple[Path, os.stat_result]]:
    """The cache's arrays and their stats, the most recently used first."""
    found = []
    for path in image_cache().glob("*.npy"):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another run's pruning
            found.append((path, path.stat()))
    return sorted(found, key=lambda item: -item[1].st_mtime_ns)


def prune_cache(limit_bytes: int, keep: set[Path] | frozenset = frozenset()) -> int:
    """Removes the least recently used arrays of the cache past ``limit_bytes`` in all (the newest stays, whatever
    its size, and those in ``keep``: they are in use); the bytes removed."""
    kept = removed = 0
    for i, (path, stat) in enumerate(cached_arrays()):
        kept += stat.st_size
        if i and kept > limit_bytes and path not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += stat.st_size
    return removed


def _progress(files: list[Path]):
    """``files`` through a progress bar that shows images per second and the time left, for a folder of many; as
    they are otherwise."""
    if len(files) < PROGRESS_FROM:
        return files
    from tqdm import tqdm  # Lightning's progress bars use it

    return tqdm(files, desc=_reading(files), unit=" images", file=sys.stderr)


def _reading(files: list[Path]) -> str:
    return f"reading {files[0].parent.parent}"
