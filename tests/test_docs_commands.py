"""Every command a fenced ``bash`` block of README.md or docs/*.md shows is one the project takes: parsed by the
real parser of the command it names (tests/commands.py), or, for make, a target of the Makefile. A command of a
program the test does not know fails it, so that a new kind of command gets checked too."""

import json
import re
import shlex
import subprocess
import sys

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PYTHONS = {"python", "python3", ".venv/bin/python"}
# Programs of others that the docs show beside the project's own: nothing of theirs to check here.
OTHERS = {"tensorboard", "curl", "export"}
# Placeholders a page asks the reader to replace, as files the parser reads.
PLACEHOLDER_FILES = {"my_experiment.yaml": "trainer:\n  max_epochs: 1\n"}


def shown_commands() -> list[tuple[str, list[str]]]:
    """(page, words) of each command in the pages' bash blocks: continuation lines joined, comments dropped."""
    commands = []
    for page in PAGES:
        for block in re.findall(r"^```bash\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before the command
                    words.pop(0)
                if words:
                    commands.append((page.name, words))
    return commands


def to_check(words: list[str]) -> list[str] | None:
    """The argument list tests/commands.py parses for a shown command, or None for another program's."""
    if words[0] == "srun":
        words = words[1:]
    if words[0] == "torchrun":  # its own options, then the module it launches
        words = ["python", *words[words.index("-m") :]]
    if words[0] in PYTHONS:
        return words[1:]
    return None if words[0] in OTHERS else words


def test_every_command_in_the_docs_is_one_the_project_takes(tmp_path):
    pyproject, makefile = (REPO / "pyproject.toml").read_text(), (REPO / "Makefile").read_text()
    scripts_table = pyproject.split("[project.scripts]")[1].split("\n[")[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([\w.]+:\w+)"', scripts_table, re.M))
    markers = re.findall(r'^\s+"(\w+): ', pyproject.split("markers = [")[1].split("]")[0], re.M)
    checked, problems = [], []
    for page, words in shown_commands():
        argv = to_check(words)
        if argv is None:
            continue
        shown = f"{page}: {shlex.join(words)}"
        if argv[0] == "make":
            if not all(re.search(rf"^{re.escape(target)}:", makefile, re.M) for target in argv[1:]):
                problems.append(f"{shown}: no such target in the Makefile")
        elif argv[:2] == ["-m", "pytest"]:
            if "-m" in argv[2:] and not any(marker in argv[argv.index("-m", 2) + 1] for marker in markers):
                problems.append(f"{shown}: no such marker")
        elif argv[0] == "-m" or argv[0].endswith(".py") or argv[0] in scripts:
            if argv not in (seen for _, seen in checked):  # a command shown on several pages is parsed once
                checked.append((shown, argv))
        else:
            problems.append(f"{shown}: a program this test does not know")
    # The relative paths the pages use (configs/, scripts/, bench/) from the repository, placeholders beside them.
    for name in ("configs", "scripts", "bench"):
        (tmp_path / name).symlink_to(REPO / name)
    for name, text in PLACEHOLDER_FILES.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "tests.commands", json.dumps(scripts)],
        input=json.dumps([argv for _, argv in checked]),
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    problems += [f"{shown}: exit {code}: {said}" for (shown, _), (code, said) in zip(checked, outcomes) if code]
    assert len(checked) >= 40 and not problems, "\n".join(problems)
