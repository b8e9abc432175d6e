"""The LightningCLI both workflows run: fit / validate / test / predict, and fit ends with test and report."""

import ctypes
import os
import re
import sys
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from common.errors import DataError, exit_on_reported_error
from common.predict import PredictionWriter, read_checkpoint
from common.report import ReportCallback

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


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


class ConciseParser(LightningArgumentParser):
    """A parser whose errors are the error and a pointer to --help, without the usage of every Trainer option
    (some 40 lines) that argparse prints before them; --help itself is unchanged."""

    def print_usage(self, file=None) -> None:
        pass


class WorkflowCLI(LightningCLI):
    """LightningCLI whose subcommands start from the workflow's reference config.

    Everything of a run lands in ``<trainer.default_root_dir>/version_N``: TensorBoard events, checkpoints, the
    resolved config and the report. ``fit`` goes on to test the best checkpoint (the last epoch's where nothing is
    monitored) and write the report; ``test`` writes the report too, and ``predict`` writes predictions.csv.
    """

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        # Lightning would read a checkpoint's hyper-parameters into this model's config next, and fail with a
        # parser error if they are another model's: say plainly what is wrong instead.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("last", "best"):
            read_checkpoint(ckpt_path, self.model_class)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ReportCallback, "report")

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        config = self._get(self.config_init, "trainer")
        if config.get("logger") in (None, True):
            # The Trainer's own default logger would add a "lightning_logs" level between the root and version_N.
            root, version = self._run_folder(Path(config["default_root_dir"] or "."))
            kwargs["logger"] = TensorBoardLogger(root, name="", version=version)
        return super().instantiate_trainer(**kwargs)

    def _run_folder(self, root: Path) -> tuple[Path, int | None]:
        """Where the run's files go: a new version under ``root``, except that ``fit --ckpt_path`` with a
        checkpoint of ``<dir>/version_N/checkpoints/`` (or ``last``: the newest run's ``last.ckpt`` under
        ``root``) continues that run in its own folder."""
        if self.subcommand != "fit" or not self.config_init["fit"].get("ckpt_path"):
            return root, None
        ckpt_path = self.config_init["fit"]["ckpt_path"]
        if ckpt_path == "last":
            versions = {int(m[1]): p for p in root.glob("version_*/checkpoints/last.ckpt")
                        if (m := re.fullmatch(r"version_(\d+)", p.parts[-3]))}  # fmt: skip
            if not versions:
                raise DataError(f"--ckpt_path last: there is no version_*/checkpoints/last.ckpt under {root} to resume.")
            ckpt_path = self.config_init["fit"]["ckpt_path"] = str(versions[max(versions)])
        checkpoint = Path(ckpt_path)
        run = checkpoint.parent.parent
        match = re.fullmatch(r"version_(\d+)", run.name)
        if checkpoint.parent.name == "checkpoints" and match:
            return run.parent, int(match.group(1))
        return root, None  # a checkpoint from elsewhere starts a new run from its weights

    def after_fit(self) -> None:
        checkpoint = self.trainer.checkpoint_callback  # the config's first ModelCheckpoint: the monitored one
        ckpt_path = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)
        self.after_test()

    def after_predict(self) -> None:
        writer = next(c for c in self.trainer.callbacks if isinstance(c, PredictionWriter))
        if self.trainer.is_global_zero:
            print(f"Predictions: {writer.path}")

    def after_test(self) -> None:
        report = self._get(self.config_init, "report")
        if self.trainer.is_global_zero and report.report_path is not None:
            print(f"Report: {report.report_path}")


def run_cli(
    model_class: type, datamodule_class: type, config_name: str, args: ArgsType = None, run: bool = True
) -> WorkflowCLI:
    """Runs the CLI. Without a subcommand it fits: no arguments at all run the whole reference workflow. With
    ``run=False`` it only builds the model, data and Trainer of the config (no subcommand then), as benchmarks do."""
    args = list(sys.argv[1:] if args is None else args)
    if run and (not args or args[0] not in (*LightningCLI.subcommands(), "-h", "--help")):
        args = ["fit", *args]
    defaults = {"default_config_files": [str(CONFIG_DIR / config_name)]}
    lighter_progress_bar()
    skip_missing_nvml_probe()
    # The datasets are tensors in memory: worker processes would only add start-up time.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # The arguments are passed on explicitly (with "fit" added where needed), which is what this warns about.
    warnings.filterwarnings("ignore", ".*LightningCLI's args parameter is intended.*")
    with exit_on_reported_error():
        return WorkflowCLI(
            model_class,
            datamodule_class,
            args=args,
            parser_kwargs={
                "prog": f"python -m {model_class.__module__.rsplit('.', 1)[0]}.train",  # not "train.py"
                **({subcommand: defaults for subcommand in LightningCLI.subcommands()} if run else defaults),
            },
            run=run,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [PredictionWriter()]},
            parser_class=ConciseParser,
        )
