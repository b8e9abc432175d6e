"""The command line's parser: LightningCLI's, with short errors, help in the project's order, checkpoints as one
path or a list of them (an ensemble), data sources named by their option, and loggers given their run folder."""

import importlib.util
import re
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from common.cli.sources import Sources, with_data_class
from common.cli.trainer import with_logger_folder
from common.deploy.console import program
from common.packaged import config_path

CKPT_PATH_HELP = (
    "Weights to start from. 'last': the newest run's checkpoints/last.ckpt under trainer.default_root_dir; fit "
    "then resumes that run in its own folder with the settings it was started with. A file in some "
    "version_N/checkpoints/ resumes that run the same way. validate, test and predict without it use 'last' and "
    "say so; given a list ('[A, B, C]', or --ckpt_path+ A --ckpt_path+ B), they evaluate the ensemble of those "
    "checkpoints: the mean of their probabilities."
)
USAGE = "{} {} [--config FILE] [--model.* ...] [--data.* ...] [--trainer.* ...] [--ckpt_path PATH]"


class ConciseParser(LightningArgumentParser):
    """A parser whose errors are the error, a pointer to --help and, for a mistake users make often, a ``hint``;
    without the usage of every Trainer option (some 40 lines) that argparse prints before them."""

    def __init__(self, *args, hint: str = "", data_sources: Sources | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hint, self.data_sources = hint, data_sources

    def parse_args(self, args=None, *rest, **kwargs):
        # Every parse, a resumed run's config.yaml included, reads a data source named the old way.
        if args is not None:
            args = with_logger_folder(list(args))
            args = args if self.data_sources is None else with_data_class(args, self.data_sources)
        return super().parse_args(args, *rest, **kwargs)

    def print_usage(self, file=None) -> None:
        pass

    def error(self, message: str, ex: Exception | None = None):
        parser = getattr(ex, "subcommand_parser", None) or self
        message = _class_problem(message)
        words = message.removeprefix("unrecognized arguments:").split() if "unrecognized" in message else []
        if getattr(parser, "hint", "") and words and not words[0].startswith("-"):
            message = f"{message}. {parser.hint}"  # a value where an option should be, not an unknown option
        super().error(message, ex)

    def add_method_arguments(self, theclass, themethod, *args, skip=None, **kwargs) -> list[str]:
        # Lightning's ckpt_path is one path with its in-process meanings; the project's is one path or several,
        # and gives "last" its own meaning.
        added = super().add_method_arguments(theclass, themethod, *args, skip={*(skip or ()), "ckpt_path"}, **kwargs)
        self.add_argument("--ckpt_path", type=str | list[str] | None, default=None, help=CKPT_PATH_HELP)
        return [*added, "ckpt_path"]


def _class_problem(message: str) -> str:
    """jsonargparse's error for a class option (``--data``, one class per source) lists every type the option
    could take; the problem is the one with the class given, said in a line."""
    key = re.match(r'Parser key "([^"]+)":\s*Does not validate against any of the Union subtypes', message)
    problem = re.search(r"Problem with given class_path '([^']+)':\n((?:[ ]{6,}.*(?:\n|$))+)", message)
    if not (key and problem):
        return message
    reason = " ".join(problem.group(2).split())
    inner = re.match(r'Parser key "([^"]+)":\s*(.*)', reason)
    name, reason = (f"{key.group(1)}.{inner.group(1)}", inner.group(2)) if inner else (key.group(1), reason)
    chosen = problem.group(1).rsplit(".", 1)[-1]
    return f'Parser key "{name}" ({chosen}): {reason}; --{key.group(1)}.help {chosen} lists its options'


def parser_kwargs(
    workflow: str, command: str | None, config_name: str | Path, sources: Sources | None, run: bool
) -> dict:
    """LightningCLI's ``parser_kwargs`` for a workflow whose console script is ``command``: the parsers start from
    its config ``config_name`` (packaged.py), and each subcommand's gets its usage line and the hint that its
    "unrecognized arguments" error adds."""
    prog = program(command, f"{workflow}.train")
    shown = getattr(config_name, "name", f"{config_name} (the repository's configs/; shipped in the package)")
    data = ""
    if sources:
        listed = ", ".join(cls.__name__ + (f" (--data.{option})" if option else "") for option, cls in sources.items())
        data = f" The data sources, one DataModule each: {listed}; --data.help CLASS lists one's options."
    about = (
        f"The {workflow} workflow. No subcommand means fit: no arguments at all train, test and report the "
        f"reference config, {shown}. Options: --model.* (the network and its optimizer) and --data.* (the "
        "dataset and its batches) come first, then Lightning's --trainer.* and --report.* (the report's title); "
        f"--config FILE applies a YAML file on top of the reference.{data}"
    )
    defaults = {"default_config_files": [str(config_path(config_name))], "description": about}
    kwargs = {"prog": prog, "description": about, "data_sources": sources}
    if not run:
        return kwargs | defaults
    ensemble = "Several checkpoints (an ensemble) are one list: --ckpt_path '[A, B]'."
    files = "The CLI's predict classifies the test split of the data; "
    if importlib.util.find_spec(f"{workflow}.predict") is not None:
        predict = f"{command}-predict" if command and prog == command else f"python -m {workflow}.predict"
        files += f"to classify files or sentences, run {predict} --ckpt CKPT INPUT ..."
    hints = {"validate": ensemble, "test": ensemble, "predict": f"{files} {ensemble}".strip()}
    for subcommand in LightningCLI.subcommands():
        usage = USAGE.format(prog, subcommand)
        kwargs[subcommand] = defaults | {"usage": usage, "hint": hints.get(subcommand, "")}
    return kwargs
