"""The search command: Optuna asks, an ordinary ``fit`` run of the workflow answers, one child process a trial
(common/search/process.py), so that the search lives on whatever a trial does (a crash, out of memory, SIGKILL).

The search beats the trial's heartbeat while it waits for it, so that a search killed at any moment leaves a
trial that the next search fails and retries (Optuna's heartbeat and RetryHeartbeatStaleTrialCallback); the trial
reports its epochs itself (common/search/trial.py).
"""

import argparse
import contextlib
import fcntl
import importlib
import io
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from common.callbacks.report import chosen_epoch
from common.errors import ConfigError, exit_on_reported_error
from common.search import answer
from common.search.process import TrialProcess, one_process, start_fork_server
from common.search.space import check_names, command_line, read_space, space_file, value_at
from common.search.trial import CLASS_PATH, STORAGE, STUDY, TRIAL_ID, make_pruner, open_storage

DIRECTIONS = {"val_acc": "maximize", "val_loss": "minimize"}


def parse(workflow: str, args: list[str], prog: str) -> tuple[argparse.Namespace, list[str]]:
    """The search's own options, and the others: fit's, which fit's parser checks."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            f"Searches fit options of {workflow} for the best validation figure, with Optuna; any other option is "
            f"fit's (python -m {workflow}.train fit --help) and holds for every trial. docs/search.md."
        ),
    )
    add = parser.add_argument
    own = [
        add(
            "--space",
            default=f"{workflow}.yaml",
            help="YAML of options and their ranges or choices; a file, or "
            "the name of a space in configs/search/ (default: %(default)s)",
        ),
        add(
            "--trials",
            type=int,
            required=True,
            help="trials in all: completed, pruned and failed, over every run of this command on the study",
        ),
        add("--timeout", type=float, help="seconds after which this process starts no new trial"),
        add(
            "--storage",
            help="Optuna's database URL (default: SQLite, study.db in the study's folder); "
            "postgresql+psycopg://user@host/db to share a study between machines",
        ),
        add(
            "--study",
            default="search",
            help="the study's name and its folder under trainer.default_root_dir (default: %(default)s)",
        ),
        add("--objective", choices=sorted(DIRECTIONS), default="val_acc"),
        add("--pruner", choices=["median", "halving", "none"], default="median"),
        add("--startup_trials", type=int, default=5, help="trials before the median pruner prunes"),
        add(
            "--heartbeat",
            type=int,
            default=30,
            help="seconds between a running trial's heartbeats; one silent "
            "for twice as long belongs to a search that died, and is failed and retried",
        ),
        add("--retries", type=int, default=3, help="times a trial whose search died is retried"),
    ]
    names = {name for action in own for name in action.option_strings}
    words, fit_args = [], []
    remaining = iter(args[1:] if args[:1] == ["fit"] else args)
    for word in remaining:
        name = word.split("=", 1)[0]
        if name in ("-h", "--help"):
            words.append(word)
        elif name in names:
            words.append(word)
            value = None if "=" in word else next(remaining, None)  # --trials 6, or --trials=6
            if value is not None:
                words.append(value)
        else:
            fit_args.append(word)
    options = parser.parse_args(words)
    if options.trials < 1 or options.heartbeat < 1:
        raise ConfigError("--trials and --heartbeat must be at least 1.")
    return options, fit_args


def fit_config(workflow: str, fit_args: list[str]) -> dict:
    """fit's whole config for these options, as ``fit --print_config`` prints it; where fit's parser refuses
    them, a ConfigError with the parser's own line."""
    out, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errors), contextlib.suppress(SystemExit):
        importlib.import_module(f"{workflow}.train").main(["fit", *fit_args, "--print_config"])
    said = [line.removeprefix("error:").strip() for line in errors.getvalue().splitlines() if line.startswith("error:")]
    config = None if said else yaml.safe_load(out.getvalue())
    if not isinstance(config, dict):
        raise ConfigError(" ".join(said) or f"fit refused the options {' '.join(fit_args)}.")
    return config


def check_space(workflow: str, fit_args: list[str], space: dict) -> None:
    """Every name of the space, and every end of every range and every choice, goes through fit's parser before
    any trial runs."""
    how = f"see python -m {workflow}.train fit --help."
    samples = max(2, *(len(getattr(d, "choices", ())) for d in space.values()))
    for i in range(samples):
        params = {}
        for name, d in space.items():
            params[name] = d.choices[i % len(d.choices)] if hasattr(d, "choices") else (d.low, d.high)[i % 2]
        try:
            config = fit_config(workflow, [*fit_args, *command_line(params)])
        except ConfigError as error:
            unknown = [name for name in space if f"--{name} " in f"{error} "]
            if "unrecognized arguments" in str(error) and unknown:
                raise ConfigError(f"the search space's {unknown[0]} is no option of fit; {how}") from None
            raise ConfigError(f"the search space's values {params} are refused by fit: {error}") from None
        check_names(space, config, how)


def quiet_optuna() -> None:
    """Optuna's notes on what it calls experimental (heartbeats, plots), and its warning that heartbeats are meant
    for Study.optimize: this search beats them itself, while it waits for each trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna\.")  # its plots' notes on legends


def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """Trials that count towards --trials: finished ones, failed ones included where the trial itself failed. A
    trial failed because its search died (no reason recorded) is retried instead."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "reason" in trial.user_attrs
    )


def failure(returncode: int, log: Path) -> str:
    """A failed trial's reason in one line: its ``error:`` line, else the last line it wrote; and the signal that
    killed it, if one did."""
    said = [line.strip() for line in log.read_text(errors="replace").replace("\r", "\n").splitlines() if line.strip()]
    last = ([line for line in said if line.startswith("error:")] or said or [""])[-1]
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}" + (f"; its last line: {last}" if last else "")
    return last or f"exit status {returncode}"


class Search:
    def __init__(
        self, workflow: str, options: argparse.Namespace, fit_args: list[str], folder: Path, fork: bool
    ) -> None:
        self.workflow, self.options, self.fit_args, self.folder, self.fork = workflow, options, fit_args, folder, fork
        self.space = read_space(space_file(options.space))
        self.url = options.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=options.retries)
        beat = options.heartbeat
        self.storage = open_storage(
            self.url, heartbeat_interval=beat, grace_period=2 * beat, heartbeat_stale_trial_callback=retry
        )
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=options.study,
            direction=DIRECTIONS[options.objective],
            pruner=make_pruner(options.pruner, options.startup_trials),
            load_if_exists=True,
        )
        attrs = self.study.user_attrs
        for key, value in (("workflow", workflow), ("objective", options.objective)):
            if attrs.get(key, value) != value:
                raise ConfigError(
                    f"the study {options.study} has {key} {attrs[key]}, not {value}: name another --study."
                )
            self.study.set_user_attr(key, value)
        self.study.set_user_attr("pruner", options.pruner)
        self.study.set_user_attr("startup_trials", options.startup_trials)

    def run(self) -> None:
        started, n = time.monotonic(), self.options.trials
        while True:
            optuna.storages.fail_stale_trials(self.study)  # trials of searches that died: failed, and retried
            trials = self.study.get_trials(deepcopy=False)
            done = sum(counted(t) for t in trials)
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if done >= n or (self.options.timeout and time.monotonic() - started > self.options.timeout):
                return
            if done + len(running) >= n:  # the last trials run elsewhere: wait until they finish or die
                time.sleep(self.options.heartbeat)
                continue
            trial = self.study.ask(self.space)
            if self.surplus(trial.number, n):
                trial.set_user_attr("surplus", True)  # another process asked at the same moment: not run, not counted
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            self.run_trial(trial)

    def test_best(self, best: optuna.trial.FrozenTrial) -> Path | str:
        """Tests the best trial's chosen checkpoint (as fit would have), once, whichever search gets here first:
        the test's metrics.json, or why there is none."""
        run = Path(best.user_attrs["run"])
        if not (run / "metrics.json").is_file():  # a study shared between machines: the search there tests it
            return f"its run {run} is on another machine, whose search tests it"
        checkpoint = json.loads((run / "metrics.json").read_text()).get("checkpoint")
        if checkpoint is None:
            return "its run saved no checkpoint (--trainer.enable_checkpointing false)"
        checkpoint = run / checkpoint
        tested = run / f"test-{checkpoint.stem}" / "metrics.json"
        log, returncode = self.folder / f"test_{best.number}.log", None
        # A lock the system drops with its holder, killed or not: two searches ending at once test once.
        with (run / "test.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not tested.is_file():
                print(f"Testing the best trial, {best.number}: {checkpoint}", flush=True)
                args = ["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(checkpoint)]
                # On one device, whatever the trial trained on: Lightning's advice for exact test figures, since
                # DDP's DistributedSampler repeats samples to even out the processes' batches.
                args += ["--trainer.devices", "1", "--trainer.num_nodes", "1", "--trainer.strategy", "auto"]
                process = TrialProcess(self.workflow, args, dict(os.environ), log, fork=True)
                while (returncode := process.wait(self.options.heartbeat)) is None:
                    pass
        if tested.is_file():
            return tested
        if returncode is None or not log.is_file():  # tested by another search, which said why it failed
            return "its test failed"
        return f"its test failed: {failure(returncode, log)} (all of it in {log})"

    def surplus(self, number: int, n: int) -> bool:
        claimed = sorted(
            t.number for t in self.study.get_trials(deepcopy=False) if counted(t) or t.state == TrialState.RUNNING
        )
        return number not in claimed[:n]

    def run_trial(self, trial: optuna.trial.Trial) -> None:
        params, number = trial.params, trial.number
        study_id = self.storage.get_study_id_from_name(self.options.study)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        options = command_line(params)
        # A folder of its own: Lightning's next version_N is the next free one when the logger first writes, which
        # two trials starting together, or one after a trial killed before writing, would both take.
        args = ["fit", *self.fit_args, *options, "--trainer.default_root_dir", str(self.folder / f"trial_{number}")]
        # No trial computes a test figure (the search may not select on one): only the best trial is tested.
        args += [f"--trainer.callbacks+={CLASS_PATH}", "--report.test_after_fit", "false"]
        env = os.environ | {STORAGE: self.url, STUDY: self.options.study, TRIAL_ID: str(trial_id)}
        log = self.folder / f"trial_{number}.log"
        print(f"trial {number}: {' '.join(options)}", flush=True)
        process = TrialProcess(self.workflow, args, env, log, self.fork)
        returncode = None
        while returncode is None:  # the trial's heartbeat, beaten while this search waits for it
            self.storage.record_heartbeat(trial_id)
            returncode = process.wait(self.options.heartbeat)
        self.finish(trial, trial_id, returncode, log)

    def finish(self, trial: optuna.trial.Trial, trial_id: int, returncode: int, log: Path) -> None:
        try:
            self.record(trial, trial_id, returncode, log)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another search found this trial's heartbeat late (a machine too busy, a database locked for longer
            # than twice --heartbeat), failed it and runs it again itself: this search's figures for it are lost.
            print(f"trial {trial.number}: failed by another search, which found its heartbeat late and retries it")

    def record(self, trial: optuna.trial.Trial, trial_id: int, returncode: int, log: Path) -> None:
        attrs = self.storage.get_trial(trial_id).user_attrs
        objective, value, history = self.options.objective, None, []
        report = Path(attrs.get("run") or "-") / "metrics.json"  # no run folder: --trainer.logger false
        if returncode == 0 and report.is_file():
            metrics = json.loads(report.read_text())
            history = metrics["history"]
            value = chosen_epoch(metrics).get(objective)  # of the epoch whose weights fit kept
        trial.set_user_attr("epochs", len(history))
        if returncode != 0 or value is None:
            reason = failure(returncode, log) if returncode else f"no {objective} in the run's metrics.json"
            trial.set_user_attr("reason", reason)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            print(f"trial {trial.number}: failed: {reason}", flush=True)
        elif "pruned_at_epoch" in attrs:
            self.study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            print(f"trial {trial.number}: pruned after epoch {attrs['pruned_at_epoch']}", flush=True)
        else:
            self.study.tell(trial, value, skip_if_finished=True)
            print(f"trial {trial.number}: {objective} {value:.4f} ({len(history)} epochs)", flush=True)


def main(workflow: str, args: list[str] | None, command: str, held_out: dict[str, float] | None = None) -> None:
    """The tune command of ``workflow``. ``held_out``: options that give the search a validation split of its own
    where the config has none (their value there false or 0), since the objective may never be a test figure."""
    prog = command if Path(sys.argv[0]).name == command else f"python -m {workflow}.tune"
    quiet_optuna()
    with exit_on_reported_error():
        options, fit_args = parse(workflow, list(sys.argv[1:] if args is None else args), prog)
        start_fork_server(workflow)
        config = fit_config(workflow, fit_args)
        for name, value in (held_out or {}).items():
            if not value_at(config, name):
                fit_args += [f"--{name}", str(value)]
                print(
                    f"Validation: the config validates on the test split, which a search may not select on; the "
                    f"trials hold out --{name} {value} of the training data instead."
                )
        check_space(workflow, fit_args, read_space(space_file(options.space)))
        root = Path(value_at(config, "trainer.default_root_dir") or ".")
        folder = root / options.study
        folder.mkdir(parents=True, exist_ok=True)
        search = Search(workflow, options, fit_args, folder, one_process(config["trainer"]))
        search.run()
        complete = [t for t in search.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        best = search.study.best_trial if complete else None  # read once: a search still running may better it
        if not answer.write(search.study, folder, workflow, best, search.test_best(best) if best else None):
            sys.exit(1)
