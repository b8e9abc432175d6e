"""The LightningCLI both workflows run: fit / validate / test / predict, and fit ends with test and report."""

import importlib.util
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from common.callbacks.curves import KerasCurves
from common.callbacks.prediction_writer import PredictionWriter
from common.callbacks.report import ReportCallback
from common.checkpoints import read_checkpoint
from common.cli.environment import prepare_process
from common.cli.packaged import config_path
from common.cli.parser import USAGE, ConciseParser, description, hints, leave_out_idle_callbacks
from common.cli.resume import resumed_config
from common.cli.runs import (
    chosen_checkpoint,
    discard_unused_run,
    place_logger,
    require_writable,
    run_of,
    with_logger_folder,
)
from common.deploy.console import program
from common.ensemble import load_ensemble
from common.errors import ConfigError, exit_on_reported_error, missing_package
from common.module import ClassifierModule, data_differences


def _same_data(ckpt_path: str, trained: ClassifierModule, model: ClassifierModule) -> None:
    """Refuses data that would give the checkpoint's model other classes or inputs than it was trained with."""
    if differ := data_differences([trained, model]):
        said = "; ".join(
            f"{name} {was} in the checkpoint, {now} from these data" for name, (was, now) in differ.items()
        )
        raise ConfigError(f"{ckpt_path} was trained on other data: {said}. Give the data options it was trained with.")


class WorkflowCLI(LightningCLI):
    """LightningCLI whose subcommands start from the workflow's reference config.

    A run lands in ``<trainer.default_root_dir>/version_N``: TensorBoard events, checkpoints, the resolved config
    and the report. ``fit`` goes on to test the best checkpoint (the last epoch's where nothing is monitored) and
    write the report; ``test`` writes the report too. ``predict`` writes its CSV into the run of the checkpoint
    it used. A new run that fails before its first optimizer step is removed.
    """

    def __init__(self, *args, links: tuple[tuple, ...] = (), **kwargs) -> None:
        self.links = links
        self.started = time.time()
        self.resumed_run: Path | None = None
        self.ensemble: list[str] = []
        self.predict_note = ""  # why predict writes into a new run folder
        self.created: Path | None = None  # the outermost folder this run creates
        self.new_run = False  # whether the logger's run folder is this run's own
        self.members: tuple = ()  # an ensemble's model and DataModule state
        self.trained: tuple[str, ClassifierModule] | None = None  # the checkpoint evaluated or resumed, its model
        try:
            super().__init__(*args, **kwargs)
        except BaseException as error:
            self._discard_unused_run()
            if message := missing_package(error):
                raise ConfigError(message) from None
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
        args = with_logger_folder(list(args or []))
        super().parse_arguments(parser, args)
        # Settled here: right after parsing, Lightning reads the checkpoint's hyper-parameters into the config.
        if self.config.get("subcommand"):
            self._settle_checkpoint(parser, list(args or [])[1:])

    def _settle_checkpoint(self, parser: LightningArgumentParser, args: list[str]) -> None:
        subcommand = self.config.subcommand
        section = self.config[subcommand]
        paths = section.ckpt_path if isinstance(section.ckpt_path, list) else [section.ckpt_path]
        if len(paths) > 1:
            if subcommand == "fit":
                raise ConfigError(
                    "fit takes one --ckpt_path, the run to resume; a list is an ensemble, for validate, test and predict."
                )
            self.ensemble, section.ckpt_path = paths, None  # no single model's hyper-parameters to read
            self.members = load_ensemble(paths, self.model_class, self.datamodule_class)
            return
        root = Path(section.trainer.default_root_dir or ".")
        ckpt_path, chosen = chosen_checkpoint(subcommand, paths[0] if paths else None, root)
        if chosen:
            rank_zero_info(f"No --ckpt_path given: {subcommand} uses the newest run's {ckpt_path}.")
        section.ckpt_path = ckpt_path
        if not ckpt_path:
            return
        # Lightning would fail with a parser error on another model's hyper-parameters: say what is wrong instead.
        self.trained = ckpt_path, read_checkpoint(ckpt_path, self.model_class)[0]
        run = run_of(Path(ckpt_path))
        if subcommand == "fit" and run is not None:
            self.resumed_run = run
            if (run / "config.yaml").is_file():
                self.config = resumed_config(parser, run, args, ckpt_path)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        self.created = require_writable(Path(config.trainer.default_root_dir or "."))
        leave_out_idle_callbacks(config.trainer)
        place_logger(config.trainer)
        if self.ensemble:
            config.ckpt_path = self.ensemble  # what the saved config.yaml records

    def after_instantiate_classes(self) -> None:
        if not self.subcommand:
            return
        config, config_init = self.config[self.subcommand], self.config_init[self.subcommand]
        config_init.report.seed = config.seed_everything  # the seed actually used, once LightningCLI set it
        if self.ensemble:
            self.trained = self.ensemble[0], self.members[0].members[0]
        if self.trained is not None:
            _same_data(*self.trained, self.model)
        if self.ensemble:
            self.model, state = self.members
            self.datamodule.load_state_dict(state)
            config_init.ckpt_path = None  # the members are loaded already
            rank_zero_info(f"{self.subcommand}: the ensemble of {len(self.ensemble)} checkpoints.")

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        default_logger = config.trainer.get("logger") in (None, True)
        predict_run = self._predict_run()
        if predict_run is not None:
            # Predictions go beside the checkpoint's own run, whatever the logger (predict logs nothing): no new
            # run folder, and the run's config.yaml is kept.
            kwargs["logger"], self.save_config_callback = False, None
        elif default_logger:
            # The Trainer's own default logger would add a "lightning_logs" level between the root and version_N.
            run = self.resumed_run
            root = run.parent if run else Path(config.trainer.default_root_dir or ".")
            version = int(run.name.removeprefix("version_")) if run else None
            kwargs["logger"] = TensorBoardLogger(root, name="", version=version)
        trainer = super().instantiate_trainer(**kwargs)
        if isinstance(trainer.logger, TensorBoardLogger):
            self.new_run = not Path(trainer.logger.log_dir).exists()  # only a folder this run makes is removed
        if predict_run is not None:
            writer = next(c for c in trainer.callbacks if isinstance(c, PredictionWriter))
            writer.folder, writer.name = predict_run, f"predictions-{Path(config.ckpt_path).stem}"
        elif self.subcommand == "predict":
            self.predict_note = " (an ensemble has no run of its own)" if self.ensemble else " (a checkpoint in no run)"
        return trainer

    def _predict_run(self) -> Path | None:
        if self.subcommand != "predict" or self.ensemble:
            return None
        ckpt_path = self.config_init.predict.ckpt_path
        return run_of(Path(ckpt_path)) if ckpt_path else None

    def _discard_unused_run(self) -> None:
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.resumed_run is not None or trainer.global_step > 0 or not trainer.is_global_zero:
            return
        root = Path(trainer.default_root_dir)
        if isinstance(trainer.logger, TensorBoardLogger) and self.new_run:
            discard_unused_run(Path(trainer.logger.log_dir), root, self.started, self.created)
        elif trainer.logger is None and self.save_config_callback is not None:
            discard_unused_run(None, root, self.started, self.created)

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
        if self.trainer.is_global_zero and writer.path is not None:
            print(f"Predictions: {writer.path}{self.predict_note}")

    def after_test(self) -> None:
        if not self.trainer.is_global_zero:
            return
        report = next(c for c in self.trainer.callbacks if isinstance(c, ReportCallback))
        path = report.report_path
        if path is None:
            # Under ddp_spawn other processes tested and wrote the report: this one's callback never ran. (The
            # logger's folder, not trainer.log_dir: a broadcast that the other processes would not join.)
            logger = self.trainer.logger
            written = Path((logger.log_dir if logger else None) or self.trainer.default_root_dir) / "report.md"
            path = written if written.is_file() and written.stat().st_mtime >= self.started else None
        if path is not None:
            print(f"Report: {path}")


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
    prepare_process()
    workflow = model_class.__module__.rsplit(".", 1)[0]
    prog = program(command, f"{workflow}.train")
    with exit_on_reported_error():
        shown = getattr(config_name, "name", f"{config_name} (the repository's configs/; shipped in the package)")
        about = description(workflow, shown)
        defaults = {"default_config_files": [str(config_path(config_name))], "description": about}
        parser_kwargs = {"prog": prog, "description": about}
        if run:
            has_predict = importlib.util.find_spec(f"{workflow}.predict") is not None
            predict_prog = f"{command}-predict" if command and prog == command else f"python -m {workflow}.predict"
            predict_prog = predict_prog if has_predict else None
            for subcommand, hint in hints(predict_prog).items():
                parser_kwargs[subcommand] = {"hint": hint}
            for subcommand in LightningCLI.subcommands():
                usage = USAGE.format(prog, subcommand)
                parser_kwargs[subcommand] = defaults | parser_kwargs.get(subcommand, {}) | {"usage": usage}
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
