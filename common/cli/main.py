"""The LightningCLI both workflows run: fit / validate / test / predict, and fit ends with test and report."""

import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from common.callbacks.curves import KerasCurves
from common.callbacks.prediction_writer import PredictionWriter
from common.callbacks.report import ReportCallback, chosen_checkpoint
from common.callbacks.unused_run import RemoveUnusedRun
from common.cli.checkpoint import RUN, Plan, settle_checkpoint
from common.cli.parser import ConciseParser, parser_kwargs
from common.cli.sources import Sources
from common.cli.trainer import prepare_trainer
from common.ensemble import load_ensemble
from common.errors import ConfigError, exit_on_reported_error, missing_package, reported_cause
from common.process import prepare_process


class WorkflowCLI(LightningCLI):
    """LightningCLI whose subcommands start from the workflow's reference config. A run lands in
    ``<trainer.default_root_dir>/version_N``; ``fit`` goes on to test the checkpoint it chose and report. The
    subcommand's checkpoint is settled right after parsing (``settle_checkpoint``); later steps read its ``plan``."""

    def __init__(self, *args, links: tuple[tuple, ...] = (), **kwargs) -> None:
        self.links = links
        self.started = time.time()
        try:
            super().__init__(*args, **kwargs)
        except BaseException as error:
            if message := missing_package(error):
                raise ConfigError(message) from None
            if (cause := reported_cause(error)) is not None:
                raise cause from None
            raise

    @property
    def plan(self) -> Plan:
        return Plan.of(self.config)

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The project's own options first, so that --help shows them before the Trainer's ~150 lines.
        parser.add_lightning_class_args(self.model_class, "model")
        parser.add_lightning_class_args(self.datamodule_class, "data", subclass_mode=self.subclass_mode_data)
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{k}": v for k, v in self.trainer_defaults.items() if k != "callbacks"})

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ReportCallback, "report")
        for link in self.links:
            parser.link_arguments(*link)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        if self.config.get("subcommand"):
            self.config = settle_checkpoint(parser, self.config, list(args or [])[1:], self.model_class)

    def _parse_ckpt_path(self) -> None:
        # Lightning's (private, pinned in tests/test_pinned.py), called right after parse_arguments: it reads
        # the checkpoint's hyper-parameters into the config. Not for an ensemble, read after instantiation.
        if not self.plan.ensemble:
            super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        prepare_trainer((self.config[self.subcommand] if self.subcommand else self.config).trainer)

    def after_instantiate_classes(self) -> None:
        if not self.subcommand:
            return
        config, config_init = self.config[self.subcommand], self.config_init[self.subcommand]
        config_init.report.seed = config.seed_everything  # the seed actually used, once LightningCLI set it
        if self.plan.ensemble:
            self.model = load_ensemble(list(self.plan.ensemble), self.model, self.datamodule)
            config_init.ckpt_path = None  # the members are loaded already
            rank_zero_info(f"{self.subcommand}: the ensemble of {len(self.plan.ensemble)} checkpoints.")

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        trainer_config = (self.config_init[self.subcommand] if self.subcommand else self.config_init).trainer
        plan = self.plan
        if plan.predict_run is not None:
            kwargs["logger"] = False  # predict logs nothing, and its CSV goes into the checkpoint's run
        elif trainer_config.get("logger") in (None, True):
            kwargs["logger"] = run_logger(plan.log_folder, Path(trainer_config.default_root_dir or "."))
        trainer = super().instantiate_trainer(**kwargs)
        run = Path(trainer.logger.log_dir) if isinstance(trainer.logger, TensorBoardLogger) else None
        trainer.callbacks.append(RemoveUnusedRun(run, Path(trainer.default_root_dir)))
        if plan.predict_run is not None:  # the run's own config.yaml is kept
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, SaveConfigCallback)]
            writer = next(c for c in trainer.callbacks if isinstance(c, PredictionWriter))
            writer.folder, writer.name = plan.predict_run, f"predictions-{Path(plan.ckpt_path).stem}"
        return trainer

    def after_fit(self) -> None:
        if self.config_init[self.subcommand].report.test_after_fit:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=chosen_checkpoint(self.trainer))
        self.after_test()

    # The paths are said here, after everything Lightning prints (the test's table, a progress bar's last line, a
    # profiler's summary), so that the last line names them.
    def after_predict(self) -> None:
        writer = next(c for c in self.trainer.callbacks if isinstance(c, PredictionWriter))
        if self.trainer.is_global_zero and writer.path is not None:
            print(f"Predictions: {writer.path}{self.plan.predict_note}")

    def after_test(self) -> None:
        if not self.trainer.is_global_zero:
            return
        path = next(c for c in self.trainer.callbacks if isinstance(c, ReportCallback)).report_path
        if path is None:
            # Under ddp_spawn other processes tested and wrote the report: this one's callback never ran. (The
            # logger's folder, not trainer.log_dir: a broadcast that the other processes would not join.)
            logger = self.trainer.logger
            written = Path((logger.log_dir if logger else None) or self.trainer.default_root_dir) / "report.md"
            path = written if written.is_file() and written.stat().st_mtime >= self.started else None
        if path is not None:
            print(f"Report: {path}")


def run_logger(folder: Path | None, root: Path) -> TensorBoardLogger:
    """The default logger, writing ``folder``, else the next ``version_N`` under ``root``: without the Lightning
    default's "lightning_logs" level, and numbered as Lightning numbers a run (the progress bar's ``v_num``)."""
    if folder is None:
        return TensorBoardLogger(root, name="")
    return TensorBoardLogger(
        folder.parent, name="", version=int(m[1]) if (m := RUN.fullmatch(folder.name)) else folder.name
    )


def run_cli(
    model_class: type,
    datamodule_class: type,
    config_name: str | Path,
    args: ArgsType = None,
    run: bool = True,
    command: str | None = None,
    links: tuple[tuple, ...] = (),
    sources: Sources | None = None,
) -> WorkflowCLI:
    """Runs the CLI; without a subcommand it fits, so no arguments at all run the whole reference workflow. With
    ``run=False`` it only builds the config's model, data and Trainer, as benchmarks do. ``config_name`` names a
    file of ``configs/`` or is a workflow's own ``Path``; ``command`` is the workflow's console script; ``links``
    are (source, target[, compute_fn]) options that must agree; ``sources`` maps the option naming each data
    source to its DataModule (sources.py), whose base is ``datamodule_class``."""
    args = list(sys.argv[1:] if args is None else args)
    if run and (not args or args[0] not in (*LightningCLI.subcommands(), "-h", "--help")):
        args = ["fit", *args]
    prepare_process()
    workflow = model_class.__module__.rsplit(".", 1)[0]
    with exit_on_reported_error():
        kwargs = parser_kwargs(workflow, command, config_name, sources, run)
        return WorkflowCLI(
            model_class,
            datamodule_class,
            args=args,
            parser_kwargs=kwargs,
            run=run,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [PredictionWriter(), KerasCurves()]},
            parser_class=ConciseParser,
            links=links,
            subclass_mode_data=sources is not None,  # one DataModule per source: --data CLASS
        )
