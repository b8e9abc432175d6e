"""The LightningCLI both workflows run: fit / validate / test / predict, and fit ends with test and report."""

import ctypes
import importlib.resources
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from common.curves import KerasCurves
from common.ensemble import EnsembleClassifier
from common.errors import ConfigError, DataError, exit_on_reported_error
from common.predict import PredictionWriter, read_checkpoint
from common.report import ReportCallback

# The top-level configs/ folder, shipped inside the package under this name (pyproject's package-dir).
CONFIG_PACKAGE = "common.configs"
SOURCE_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # a checkout run without installing
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
# What a resumed run may change of the settings it was started with: when to stop, how it looks, where the same
# data lives. Anything else would make one run out of two different computations.
RESUME_OVERRIDES = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.enable_progress_bar",
    "data.data_dir",
)


def config_path(name: str | Path) -> Path:
    """The file of a config in ``configs/``: the installed package's copy, or a checkout's own folder. A ``Path``
    (a workflow of one's own, its config beside its code) is taken as it is."""
    if isinstance(name, Path):
        if not name.is_file():
            raise DataError(f"the config {name} does not exist.")
        return name
    try:
        path = Path(str(importlib.resources.files(CONFIG_PACKAGE) / name))
    except ModuleNotFoundError:  # run from a checkout that was never installed
        path = SOURCE_CONFIG_DIR / name
    if not path.is_file():
        raise DataError(
            f"the config {name} is missing ({path} does not exist): the installation is incomplete; reinstall "
            "the package (pip install .) or run from a checkout of the repository."
        )
    return path


def newest_checkpoint(root: Path) -> Path | None:
    """``version_N/checkpoints/last.ckpt`` of the highest N under ``root`` (folders not named so are ignored)."""
    versions = {
        int(m[1]): p
        for p in root.glob("version_*/checkpoints/last.ckpt")
        if (m := re.fullmatch(r"version_(\d+)", p.parts[-3]))
    }
    return versions[max(versions)] if versions else None


def run_of(checkpoint: Path) -> Path | None:
    """The run folder ``version_N`` of a checkpoint saved in its ``checkpoints/``, else None."""
    run = checkpoint.parent.parent
    if checkpoint.parent.name == "checkpoints" and re.fullmatch(r"version_\d+", run.name):
        return run
    return None


def split_ensemble(args: list[str]) -> tuple[list[str], list[str]]:
    """``--ckpt_path A B C`` (or ``--ckpt_path A --ckpt_path B ...``): the arguments with ``--ckpt_path A`` only,
    and all the paths ``[A, B, C]`` (``[]`` without the option). The command lines take no positional arguments:
    the words after a path are the other members of an ensemble."""
    kept, paths, i = [], [], 0
    while i < len(args):
        name, equals, value = args[i].partition("=")
        if name != "--ckpt_path" or (not equals and i + 1 == len(args)):
            kept.append(args[i])
            i += 1
            continue
        first, i = (value, i + 1) if equals else (args[i + 1], i + 2)
        words = [first]
        while i < len(args) and not args[i].startswith("-"):
            words.append(args[i])
            i += 1
        if not paths:
            kept += ["--ckpt_path", first]
        paths += words
    return kept, paths


def require_writable(folder: Path) -> None:
    """Refuses a run folder that cannot be created or written, before anything is written anywhere."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "is a file" if not existing.is_dir() else "is not writable"
        raise ConfigError(f"cannot write runs under {folder} (trainer.default_root_dir): {existing} {why}.")


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def lighter_progress_bar() -> None:
    """Lightning redraws its progress bar after every batch by default, which costs a small model ~8% of its
    training time on a CPU; every 25th batch still looks live. An exported TQDM_MINITERS takes precedence."""
    os.environ.setdefault("TQDM_MINITERS", "25")


def skip_missing_nvml_probe() -> None:
    """Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that asking whether CUDA is available does
    not initialise it), and torch asks at every ``Optimizer.step``. Where NVIDIA's driver is missing, as on a CPU
    machine with torch's default CUDA build, each ask then searches the disk for ``libnvidia-ml.so.1`` in vain before
    falling back to the CUDA runtime's cached answer: ~10% of the CNN's step. Without that library the fallback is
    the answer anyway, so the search is turned off; with it, nothing changes."""
    if os.environ.get(NVML_CHECK) == "1":
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            os.environ[NVML_CHECK] = "0"


CKPT_PATH_HELP = (
    "Weights to start from. 'last': the newest run's checkpoints/last.ckpt under trainer.default_root_dir; fit "
    "then resumes that run in its own folder with the settings it was started with. A file in some "
    "version_N/checkpoints/ resumes that run the same way. validate, test and predict without it use 'last' and "
    "say so."
)


class ConciseParser(LightningArgumentParser):
    """A parser whose errors are the error and a pointer to --help, without the usage of every Trainer option
    (some 40 lines) that argparse prints before them; --help itself is unchanged."""

    def print_usage(self, file=None) -> None:
        pass

    def add_method_arguments(self, *args, **kwargs) -> list[str]:
        added = super().add_method_arguments(*args, **kwargs)
        # Lightning's help for ckpt_path describes its in-process meanings; the project gives "last" its own.
        for action in self._actions:
            if action.dest == "ckpt_path":
                action.help = CKPT_PATH_HELP
        return added


class WorkflowCLI(LightningCLI):
    """LightningCLI whose subcommands start from the workflow's reference config.

    Everything of a run lands in ``<trainer.default_root_dir>/version_N``: TensorBoard events, checkpoints, the
    resolved config and the report. ``fit`` goes on to test the best checkpoint (the last epoch's where nothing is
    monitored) and write the report; ``test`` writes the report too, and ``predict`` writes predictions.csv.
    A run that fails before its first optimizer step leaves no folder behind.
    """

    def __init__(self, *args, links: tuple[tuple, ...] = (), **kwargs) -> None:
        self.links = links
        self.started = time.time()
        self.resumed_run: Path | None = None
        self.ensemble: list[str] = []
        self.members: list[L.LightningModule] = []
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            self._discard_unused_run()
            raise

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The project's own options first, so that --help shows them before the Trainer's ~150 lines.
        parser.add_lightning_class_args(self.model_class, "model")
        parser.add_lightning_class_args(self.datamodule_class, "data")
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{k}": v for k, v in self.trainer_defaults.items() if k != "callbacks"})

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ReportCallback, "report")
        for link in self.links:
            parser.link_arguments(*link)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        if isinstance(args, list):
            args, paths = split_ensemble(args)
            self.ensemble = paths if len(paths) > 1 else []
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        if self.ensemble:
            if subcommand == "fit":
                raise ConfigError(
                    "fit takes one --ckpt_path, the run to resume; several are an ensemble, for "
                    "validate, test and predict."
                )
            # Read once, here, before the seed is set: loading a checkpoint restores the RNG state it saved.
            self.members = [read_checkpoint(path, self.model_class)[1] for path in self.ensemble]
            return
        section = self.config[subcommand]
        ckpt_path = section.get("ckpt_path")
        if ckpt_path == "best":
            raise ConfigError(
                "--ckpt_path best names the best checkpoint of a fit in the same process; give the file instead, "
                "e.g. runs/sst2_bilstm/version_0/checkpoints/best-epoch=1.ckpt."
            )
        if ckpt_path == "last" or (ckpt_path is None and subcommand != "fit"):
            root = Path(section.trainer.default_root_dir or ".")
            newest = newest_checkpoint(root)
            if newest is None:
                need = "nothing to resume" if subcommand == "fit" else f"{subcommand} needs trained weights"
                raise DataError(
                    f"{need}: there is no version_*/checkpoints/last.ckpt under {root} (trainer.default_root_dir). "
                    "Train first (fit), or pass --ckpt_path PATH."
                )
            if ckpt_path is None:
                rank_zero_info(f"No --ckpt_path given: {subcommand} uses the newest run's {newest}.")
            ckpt_path = section.ckpt_path = str(newest)
        if not ckpt_path:
            return
        # Lightning would read a checkpoint's hyper-parameters into this model's config next, and fail with a
        # parser error if they are another model's: say plainly what is wrong instead.
        read_checkpoint(ckpt_path, self.model_class)
        if subcommand == "fit":
            self.resumed_run = run_of(Path(ckpt_path))
            if self.resumed_run is not None and (self.resumed_run / "config.yaml").is_file():
                self.config = self._resumed_config(parser, list(args), ckpt_path)

    def _resumed_config(self, parser: LightningArgumentParser, args: list[str], ckpt_path: str) -> Namespace:
        """The config a run was started with, read from its config.yaml, with this command's options on top:
        only those in RESUME_OVERRIDES may differ from it."""
        saved = ["fit", "--config", str(self.resumed_run / "config.yaml")]
        started = parser.parse_args([*saved, "--ckpt_path", ckpt_path])
        resumed = parser.parse_args([*saved, *args[1:]])
        resumed.fit.ckpt_path = ckpt_path
        before, after = dict(started.fit.items()), dict(resumed.fit.items())
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and k != "config")
        refused = [key for key in changed if key not in RESUME_OVERRIDES]
        if refused:
            listed = "; ".join(
                f"{key}: {_short(before.get(key))} in the run, {_short(after.get(key))} given" for key in refused
            )
            raise ConfigError(
                f"fit --ckpt_path resumes {self.resumed_run} with the settings it was started with (its "
                f"config.yaml), and this command changes them ({listed}). Drop those options to resume; only "
                f"{', '.join(RESUME_OVERRIDES)} may change."
            )
        for key in changed:
            rank_zero_info(f"Resuming {self.resumed_run}: {key} {before.get(key)!r} -> {after.get(key)!r}.")
        return resumed

    def before_instantiate_classes(self) -> None:
        if not self.subcommand:
            return
        config = self.config[self.subcommand]
        require_writable(Path(config.trainer.default_root_dir or "."))
        # The configs' callbacks that these flags leave nothing to do are left out, as the flags ask; Lightning
        # would refuse them instead (a ModelCheckpoint without checkpointing, a LearningRateMonitor without logger),
        # or, under fast_dev_run, still save a last.ckpt.
        trainer = config.trainer
        fast = "fast_dev_run" if trainer.fast_dev_run else None
        unusable = {
            "ModelCheckpoint": "enable_checkpointing false" if trainer.enable_checkpointing is False else fast,
            "LearningRateMonitor": "logger false" if trainer.logger is False else fast,
        }
        kept = []
        for callback in trainer.callbacks or []:
            name = str(callback.get("class_path", "")).rsplit(".", 1)[-1] if isinstance(callback, Namespace) else ""
            if unusable.get(name):
                rank_zero_info(f"{unusable[name]}: the config's {name} is left out.")
            else:
                kept.append(callback)
        if trainer.callbacks:
            trainer.callbacks = kept

    def after_instantiate_classes(self) -> None:
        if self.ensemble:
            self._use_ensemble()
        if self.subcommand:
            config, config_init = self.config[self.subcommand], self.config_init[self.subcommand]
            config_init.report.seed = config.seed_everything  # the seed actually used, once LightningCLI set it

    def _use_ensemble(self) -> None:
        """The subcommand evaluates the mean of the checkpoints' probabilities, with the data encoded as they
        were trained (the DataModule's state, SST-2's tokenizer, which all must share)."""
        states = [
            self.datamodule_class.load_from_checkpoint(path, map_location="cpu", weights_only=True).state_dict()
            for path in self.ensemble
        ]
        if any(state != states[0] for state in states):
            raise ConfigError(
                "the checkpoints of an ensemble must read their data alike, and these were trained with different "
                f"{self.datamodule_class.__name__} states (an SST-2 vocabulary of other data or num_words)."
            )
        self.datamodule.load_state_dict(states[0])
        self.model = EnsembleClassifier(self.members)
        self.config_init[self.subcommand]["ckpt_path"] = None  # the members are loaded already
        listed = ", ".join(self.ensemble)
        rank_zero_info(f"{self.subcommand}: the ensemble of {len(self.members)} checkpoints ({listed}).")

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        config = self.config_init[self.subcommand].trainer if self.subcommand else self.config_init.trainer
        if config.get("logger") in (None, True):
            # The Trainer's own default logger would add a "lightning_logs" level between the root and version_N.
            if self.resumed_run is not None:
                root, version = self.resumed_run.parent, int(self.resumed_run.name.removeprefix("version_"))
            else:
                root, version = Path(config["default_root_dir"] or "."), None
            kwargs["logger"] = TensorBoardLogger(root, name="", version=version)
        return super().instantiate_trainer(**kwargs)

    def _discard_unused_run(self) -> None:
        """Removes the folder of a new run that failed before its first optimizer step and saved no checkpoint:
        it holds nothing but the config and an empty event file."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.resumed_run is not None or trainer.global_step > 0 or not trainer.is_global_zero:
            return
        if isinstance(trainer.logger, TensorBoardLogger):
            run = Path(trainer.logger.log_dir)  # rank zero's own: no broadcast on the way out of a failure
            if run.is_dir() and not (run / "checkpoints").exists():
                shutil.rmtree(run)
        elif trainer.logger is None:  # logger false: the run's files are in default_root_dir itself
            root = Path(trainer.default_root_dir)
            for name in ("config.yaml", "tokenizer.json"):
                written = root / name
                if written.is_file() and written.stat().st_mtime >= self.started:
                    written.unlink()

    def after_fit(self) -> None:
        # The monitored checkpoint's best, as the reference's early stopping restores it; where nothing is
        # monitored, a ModelCheckpoint's "best" is the latest epoch it saved.
        checkpoints = self.trainer.checkpoint_callbacks
        chosen = next((c for c in checkpoints if c.monitor), checkpoints[0] if checkpoints else None)
        ckpt_path = chosen.best_model_path if isinstance(chosen, ModelCheckpoint) and chosen.best_model_path else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)
        self.after_test()

    def after_predict(self) -> None:
        writer = next(c for c in self.trainer.callbacks if isinstance(c, PredictionWriter))
        if self.trainer.is_global_zero:
            print(f"Predictions: {writer.path}")

    def after_test(self) -> None:
        report = next(c for c in self.trainer.callbacks if isinstance(c, ReportCallback))
        if self.trainer.is_global_zero and report.report_path is not None:
            print(f"Report: {report.report_path}")


def description(workflow: str, config_name: str | Path) -> str:
    where = "" if isinstance(config_name, Path) else " (the repository's configs/; shipped in the package)"
    return (
        f"The {workflow} workflow. No subcommand means fit: no arguments at all train, test and report the "
        f"reference config, {getattr(config_name, 'name', config_name)}{where}. Options: "
        "--model.* (the network and its optimizer) and --data.* (the dataset and its batches) come first, "
        "--report.* next, then Lightning's --trainer.*; --config FILE applies a YAML file on top of the reference."
    )


def run_cli(
    model_class: type,
    datamodule_class: type,
    config_name: str | Path,
    args: ArgsType = None,
    run: bool = True,
    command: str | None = None,
    links: tuple[tuple, ...] = (),
) -> WorkflowCLI:
    """Runs the CLI. Without a subcommand it fits: no arguments at all run the whole reference workflow. With
    ``run=False`` it only builds the model, data and Trainer of the config (no subcommand then), as benchmarks do.
    ``config_name`` names a file of ``configs/``, or is the ``Path`` of a workflow's own. ``command`` is the
    workflow's console script; ``links`` are (source, target[, compute_fn]) options that must agree: the target
    takes the source's value (or ``compute_fn`` of it) and is no option of its own."""
    args = list(sys.argv[1:] if args is None else args)
    if run and (not args or args[0] not in (*LightningCLI.subcommands(), "-h", "--help")):
        args = ["fit", *args]
    lighter_progress_bar()
    skip_missing_nvml_probe()
    # The datasets are tensors in memory: worker processes would only add start-up time.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # The arguments are passed on explicitly (with "fit" added where needed), which is what this warns about.
    warnings.filterwarnings("ignore", ".*LightningCLI's args parameter is intended.*")
    workflow = model_class.__module__.rsplit(".", 1)[0]
    prog = command if command and Path(sys.argv[0]).name == command else f"python -m {workflow}.train"
    with exit_on_reported_error():
        about = description(workflow, config_name)
        defaults = {"default_config_files": [str(config_path(config_name))], "description": about}
        parser_kwargs = {"prog": prog, "description": about}
        if run:
            # argparse's own usage line lists all ~170 options before the description: name the groups instead.
            usage = "{} {} [--config FILE] [--model.* ...] [--data.* ...] [--trainer.* ...] [--ckpt_path PATH]"
            for subcommand in LightningCLI.subcommands():
                parser_kwargs[subcommand] = defaults | {"usage": usage.format(prog, subcommand)}
        else:
            parser_kwargs |= defaults
        return WorkflowCLI(
            model_class,
            datamodule_class,
            args=args,
            parser_kwargs=parser_kwargs,
            run=run,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [PredictionWriter(), KerasCurves()]},
            parser_class=ConciseParser,
            links=links,
        )
