"""Peak memory and time of a large text file (docs/own_data.md, issue 38): writes CSVs of a few words a row from a
vocabulary of 20,000 (Zipf-distributed, as words are) with a label of four classes, then runs, each in a process
of its own, the project's ``fit --trainer.fast_dev_run true`` on each file, and ``pandas.read_csv`` with the
tokenizer alone (fit_word_tokenizer and encode) on the same file; the peak is the process's resident set, as the
kernel counts it (wait4's ru_maxrss). The bound issue 38 sets: the smallest file's fit plus the larger one's token
ids (int64) plus 300 MB.

    python bench/large_texts.py                               # 4,000 and 500,000 rows
    python bench/large_texts.py --rows 4000 500000 5000000
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_io import write_result

REPO = Path(__file__).resolve().parents[1]
MAX_LENGTH = 50  # the fit's default max_length: the token ids are rows x 50 int64
TOKENIZER_ALONE = """
import sys
import pandas
from sst2_bilstm.tokenizer import encode, fit_word_tokenizer
frame = pandas.read_csv(sys.argv[1])
texts = frame["text"].tolist()
encode(fit_word_tokenizer(texts), texts)
"""


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` rows of 3-11 words and a label of four classes, written 100,000 at a time."""
    generator = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = list(
        dict.fromkeys("".join(generator.choice(letters, generator.integers(3, 9))) for _ in range(20_000))
    )
    frequency = 1 / np.arange(1, len(vocabulary) + 1)
    frequency /= frequency.sum()
    labels = ["mixed", "negative", "neutral", "positive"]
    with path.open("w", encoding="utf-8") as file:
        file.write("text,label\n")
        for start in range(0, rows, 100_000):
            lengths = generator.integers(3, 12, min(100_000, rows - start))
            words = iter(generator.choice(len(vocabulary), lengths.sum(), p=frequency).tolist())
            classes = generator.integers(0, len(labels), len(lengths)).tolist()
            file.write(
                "".join(
                    " ".join(vocabulary[next(words)] for _ in range(n)) + f",{labels[c]}\n"
                    for n, c in zip(lengths.tolist(), classes)
                )
            )


def measured(command: list[str], log: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MB of ``command``, run from the repository; its output goes to ``log``."""
    start = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}); its output: {log}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[4_000, 500_000], help="rows of each CSV, smallest first"
    )
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    result = {"cpu_cores": len(os.sched_getaffinity(0)), "files": []}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for rows in sorted(args.rows):
            path = scratch / f"texts-{rows}.csv"
            write_csv(path, rows)
            fit = [sys.executable, "-m", "sst2_bilstm.train", "fit", "--data.train_file", str(path)]
            fit_s, fit_mb = measured([*fit, "--trainer.fast_dev_run", "true"], scratch / f"fit-{rows}.log")
            alone_s, alone_mb = measured([sys.executable, "-c", TOKENIZER_ALONE, str(path)], scratch / "alone.log")
            figures = {
                "rows": rows,
                "file_mb": round(path.stat().st_size / 1e6, 1),
                "token_ids_mb": round(rows * MAX_LENGTH * 8 / 1e6, 1),
                "fit_s": round(fit_s, 1),
                "fit_peak_mb": round(fit_mb),
                "pandas_tokenizer_s": round(alone_s, 1),
                "pandas_tokenizer_peak_mb": round(alone_mb),
            }
            result["files"].append(figures)
            path.unlink()
            print(
                f"{rows:>10,} rows, {figures['file_mb']:>6} MB: fit --trainer.fast_dev_run true {fit_s:6.1f} s, "
                f"peak {fit_mb:6.0f} MB | pandas.read_csv + tokenizer {alone_s:6.1f} s, peak {alone_mb:6.0f} MB",
                flush=True,
            )
    smallest = result["files"][0]
    for figures in result["files"][1:]:
        bound = smallest["fit_peak_mb"] + figures["token_ids_mb"] + 300
        figures["bound_mb"] = round(bound)
        within = "within" if figures["fit_peak_mb"] <= bound else "OVER"
        print(
            f"{figures['rows']:,} rows: peak {figures['fit_peak_mb']} MB, {within} the bound {bound:.0f} MB "
            f"({smallest['rows']:,} rows' {smallest['fit_peak_mb']} + {figures['token_ids_mb']} of token ids + 300)"
        )
    write_result(result, args.output, "large_texts")


if __name__ == "__main__":
    main()
