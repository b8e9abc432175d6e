"""The command line's parser: LightningCLI's, with short errors, help in the project's order, and checkpoints as
one path or a list of them (an ensemble)."""

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser
from lightning.pytorch.utilities import rank_zero_info

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

    def __init__(self, *args, hint: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hint = hint

    def print_usage(self, file=None) -> None:
        pass

    def error(self, message: str, ex: Exception | None = None):
        parser = getattr(ex, "subcommand_parser", None) or self
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


def description(workflow: str, config_name: str) -> str:
    return (
        f"The {workflow} workflow. No subcommand means fit: no arguments at all train, test and report the "
        f"reference config, {config_name}. Options: --model.* (the network and its optimizer) and --data.* (the "
        "dataset and its batches) come first, then Lightning's --trainer.* and --report.* (the report's title); "
        "--config FILE applies a YAML file on top of the reference."
    )


def hints(predict_prog: str | None) -> dict[str, str]:
    """What each subcommand's parser adds to an "unrecognized arguments" error; ``predict_prog`` is the command
    that predicts files, if the workflow has one."""
    ensemble = "Several checkpoints (an ensemble) are one list: --ckpt_path '[A, B]'."
    files = "The CLI's predict classifies the test split of the data; "
    files += f"to classify files or sentences, run {predict_prog} --ckpt CKPT INPUT ..." if predict_prog else ""
    return {"validate": ensemble, "test": ensemble, "predict": f"{files} {ensemble}".strip()}


def leave_out_idle_callbacks(trainer: Namespace) -> None:
    """Leaves out the config's callbacks that the Trainer's flags give nothing to do, as those flags ask, and says
    so. Lightning would refuse them instead (a ModelCheckpoint without checkpointing, a LearningRateMonitor
    without logger, a progress bar without one), or, under fast_dev_run, still save a last.ckpt."""
    fast = "fast_dev_run" if trainer.fast_dev_run else None
    idle = {
        "ModelCheckpoint": "enable_checkpointing false" if trainer.enable_checkpointing is False else fast,
        "LearningRateMonitor": "logger false" if trainer.logger is False else fast,
        "TQDMProgressBar": "enable_progress_bar false" if trainer.enable_progress_bar is False else None,
    }
    kept = []
    given = trainer.callbacks if isinstance(trainer.callbacks, list) else [trainer.callbacks]  # one, without a list
    for callback in given if trainer.callbacks else []:
        name = str(callback.get("class_path", "")).rsplit(".", 1)[-1] if isinstance(callback, Namespace) else ""
        if idle.get(name):
            rank_zero_info(f"{idle[name]}: the config's {name} is left out.")
        else:
            kept.append(callback)
    if trainer.callbacks:
        trainer.callbacks = kept
