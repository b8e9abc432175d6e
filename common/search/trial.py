"""The trial's side of a search: a callback that reports each epoch's validation figure to the trial's study and
stops the trial where the study's pruner says so, on every process of a DDP run at once."""

import os

import lightning as L
import optuna

# Set by the search for each trial's process (and inherited by the processes Lightning's DDP starts).
STORAGE, STUDY, TRIAL_ID = "SEARCH_STORAGE", "SEARCH_STUDY", "SEARCH_TRIAL_ID"


def open_storage(url: str, **heartbeat) -> optuna.storages.RDBStorage:
    """The study's database; SQLite waits up to a minute for a lock instead of failing at once, since several
    processes (searches and their trials) write one file."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    return optuna.storages.RDBStorage(url, engine_kwargs=engine, **heartbeat)


def make_pruner(name: str, startup_trials: int) -> optuna.pruners.BasePruner:
    if name == "median":  # a trial behind the median of the earlier trials at the same epoch stops
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials)
    if name == "halving":  # successive halving: only the best share of the trials goes on at each rung
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


class ReportToStudy(L.Callback):
    """Each validation's figure (the study's objective) goes to the trial as the epoch's intermediate value; rank
    zero asks the pruner and broadcasts its answer, so that all processes stop together (Optuna's own Lightning
    callback decides on each process apart, which DDP cannot follow). Outside a search (a trial's config.yaml
    rerun, best.yaml) it does nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.trial: optuna.trial.Trial | None = None
        self.objective = ""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or TRIAL_ID not in os.environ:
            return
        run = trainer.log_dir  # a broadcast: every process asks
        if not trainer.is_global_zero:
            return
        storage = open_storage(os.environ[STORAGE])
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(os.environ[STUDY]))
        pruner = make_pruner(attrs["pruner"], attrs["startup_trials"])
        study = optuna.load_study(study_name=os.environ[STUDY], storage=storage, pruner=pruner)
        self.trial, self.objective = optuna.trial.Trial(study, int(os.environ[TRIAL_ID])), attrs["objective"]
        self.trial.set_user_attr("run", os.path.abspath(run) if run else None)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or TRIAL_ID not in os.environ:
            return
        prune = False
        value = trainer.callback_metrics.get(self.objective)
        if self.trial is not None and value is not None:
            epoch = trainer.current_epoch + 1  # as the report counts epochs
            self.trial.report(float(value), epoch)
            prune = self.trial.should_prune()
            if prune:
                self.trial.set_user_attr("pruned_at_epoch", epoch)
        if trainer.strategy.broadcast(prune, src=0):
            trainer.should_stop = True


CLASS_PATH = f"{ReportToStudy.__module__}.{ReportToStudy.__qualname__}"  # as the trials' --trainer.callbacks+= names it
