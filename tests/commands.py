"""Checks the commands the docs show: each is parsed by the project's real parser (LightningCLI's for the training
commands, argparse's for the others) and stopped right after, before it reads data or trains.

``python -m tests.commands`` reads a JSON list of argument lists on standard input and prints, as JSON, an
(exit status, what it wrote) pair for each: 0 when the parser took it. Run in a process of its own: it imports
every command's module and patches the parsers."""

import argparse
import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI


class Parsed(Exception):
    """Raised as soon as a command's arguments are parsed: nothing of the command runs after that."""


def stop_after(parse):
    def parse_then_stop(self, *args, **kwargs):
        parse(self, *args, **kwargs)
        raise Parsed

    return parse_then_stop


def check(argv: list[str], scripts: dict[str, str]) -> tuple[int, str]:
    """(0, "") when ``argv`` (a command without its interpreter: ``-m MODULE ...``, ``SCRIPT.py ...`` or a console
    script's name, and the arguments) parses; else the exit status and what the command wrote."""
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            if argv[0] == "-m":
                sys.argv = argv[1:]
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
            elif argv[0].endswith(".py"):
                sys.argv = argv
                sys.path.insert(0, str(Path(argv[0]).parent))  # as Python does for a script
                runpy.run_path(argv[0], run_name="__main__")
            else:
                module, function = scripts[argv[0]].split(":")
                sys.argv = argv
                getattr(__import__(module, fromlist=[function]), function)()
    except Parsed:
        return 0, ""
    except SystemExit as exit_info:  # --help, --print_config: 0 after printing; a refusal: 2
        code = exit_info.code if isinstance(exit_info.code, int) else 1
        return code, output.getvalue()[-2000:]
    return 1, "the command ran to its end without parsing its arguments: " + output.getvalue()[-2000:]


if __name__ == "__main__":
    LightningCLI.parse_arguments = stop_after(LightningCLI.parse_arguments)
    argparse.ArgumentParser.parse_args = stop_after(argparse.ArgumentParser.parse_args)
    scripts = json.loads(sys.argv[1])
    commands = json.load(sys.stdin)
    print(json.dumps([check(argv, scripts) for argv in commands]))
