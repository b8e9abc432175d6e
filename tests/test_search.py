"""The search command (common/search/, docs/search.md) on the tests' tiny data: each trial a fit run of its own
process, the study in SQLite (PostgreSQL where a server can be started)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from common.search.run import counted
from tests.conftest import REPO, TINY_SST2, write_fashion_mnist, write_sst2

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
FASHION_SPACE = {"model.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "model.dropout": [0.3, 0.5]}


def search_args(tmp_path: Path, space: dict, trials: int, *extra: str, data: Path | None = None) -> list[str]:
    """A Fashion-MNIST search of ``trials`` one-epoch trials on 100 tiny images, its study in tmp_path/runs."""
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    data = data or write_fashion_mnist(tmp_path / "data", n_train=100, n_test=20)
    return [
        *("--space", str(tmp_path / "space.yaml"), "--trials", str(trials), "--objective", "val_loss"),
        *(
            "--data.data_dir",
            str(data),
            "--data.download",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path / "runs"),
        ),
        *("--trainer.max_epochs", "1", *FAST, *extra),
    ]


def study_of(tmp_path: Path, name: str = "search") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / name / 'study.db'}")


def new_study(tmp_path: Path, *enqueued: dict) -> None:
    """The study created before the search, with trials queued to run first (a search loads it)."""
    (tmp_path / "runs" / "search").mkdir(parents=True)
    study = optuna.create_study(
        study_name="search", storage=f"sqlite:///{tmp_path / 'runs' / 'search' / 'study.db'}", direction="minimize"
    )
    for params in enqueued:
        study.enqueue_trial(params)


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "fashion_cnn.tune", *args]


def test_six_trials_one_failing_and_best_yaml_reruns_the_best_trial(tmp_path, capsys):
    from fashion_cnn.train import main as fit
    from fashion_cnn.tune import main as tune

    # A dropout of 1.5 passes the parser and fails when the model is built: that trial fails, the search goes on.
    new_study(tmp_path, {"model.lr": 0.01, "model.dropout": 1.5})
    tune(search_args(tmp_path, {**FASHION_SPACE, "model.dropout": [0.3, 0.5, 1.5]}, 6))
    out = capsys.readouterr().out
    trials = study_of(tmp_path).trials
    assert len(trials) == 6 and all(counted(t) for t in trials)
    assert trials[0].state == TrialState.FAIL and "dropout must be in [0, 1), not 1.5" in trials[0].user_attrs["reason"]
    assert "trials hold out --data.val_fraction 0.1" in out  # the reference config validates on the test split
    folder = tmp_path / "runs" / "search"
    study_md = (folder / "study.md").read_text()
    assert all(f"| {t.number} | {t.state.name.lower()} |" in study_md for t in trials)
    assert "dropout must be in [0, 1)" in study_md and "Test accuracy of the best trial" in out
    assert "the report's classic baseline, logistic regression" in out
    assert (folder / "history.png").stat().st_size and (folder / "importances.png").stat().st_size

    # Only the best trial is tested, once, at the end, its checkpoint as fit's test would take it.
    best = study_of(tmp_path).best_trial
    runs = [Path(t.user_attrs["run"]) for t in trials if t.state == TrialState.COMPLETE]
    assert not any("test" in json.loads((run / "metrics.json").read_text()) for run in runs)
    assert [run for run in runs if list(run.glob("test-*"))] == [Path(best.user_attrs["run"])]
    trial_metrics = json.loads((Path(best.user_attrs["run"]) / "metrics.json").read_text())
    tested = Path(best.user_attrs["run"]) / f"test-{Path(trial_metrics['checkpoint']).stem}" / "metrics.json"
    assert f"Test accuracy of the best trial: {json.loads(tested.read_text())['test']['accuracy']:.4f}" in out
    assert json.loads(tested.read_text())["checkpoint_epoch"] == trial_metrics["checkpoint_epoch"] == 1
    assert "not tested: `--report.test_after_fit false`" in (runs[0] / "report.md").read_text()
    assert not (runs[0] / "confusion_matrix.png").exists() and (runs[0] / "curves.png").exists()
    # TensorBoard's hparams view of the trials: their validation figure, not a test one (none computed).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs[0])).Reload()
    assert "test_acc" not in events.Tags()["scalars"]
    assert events.Scalars("hp_metric")[-1].value == pytest.approx(
        json.loads((runs[0] / "metrics.json").read_text())["history"][-1]["val_acc"]
    )
    assert trial_metrics["history"][-1]["val_loss"] == best.value
    fit(["fit", "--config", str(folder / "best.yaml")])
    rerun = json.loads((folder / "best" / "version_0" / "metrics.json").read_text())
    assert rerun["history"] == trial_metrics["history"] and rerun["seed"] == trial_metrics["seed"]
    assert rerun["test"] == json.loads(tested.read_text())["test"]  # fit --config best.yaml tests, as fit does


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_sigkill_mid_trial_then_two_processes_of_the_same_command_end_with_six_trials(tmp_path):
    # A heartbeat of 3 s (a dead search's trial is failed 6 s after its last beat): 1 s failed live trials on a
    # busy 2-core CI machine, where a search can wait seconds for SQLite's lock.
    # The second trial waits after its first step (trial 0 goes on): the search is killed mid-trial, for sure.
    paused = tmp_path / "paused"
    pause = ["--trainer.callbacks+=tests.callbacks.PauseAtStep", "--trainer.callbacks.step", "1"]
    pause += ["--trainer.callbacks.marker", str(paused), "--trainer.callbacks.skip_runs", "1"]
    args = search_args(tmp_path, FASHION_SPACE, 6, "--heartbeat", "3", "--pruner", "none", *pause)
    new_study(tmp_path)
    killed = subprocess.Popen(command(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(paused.exists)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done, first = study_of(tmp_path).trials
    assert done.state == TrialState.COMPLETE and first.state == TrialState.RUNNING  # until found stale

    # The same command again, twice at once: they share the study, six trials in all, none run twice.
    both = [subprocess.Popen(command(args), stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300)[0] for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    trials = study_of(tmp_path).trials
    finished = [t for t in trials if counted(t)]
    assert len(finished) == 6 and all(t.state == TrialState.COMPLETE for t in finished)
    stale = trials[1]
    assert stale.state == TrialState.FAIL and "reason" not in stale.user_attrs
    retried = [t for t in finished if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 1]
    assert len(retried) == 1 and retried[0].params == stale.params
    started = [line.split(":")[0] for output in outputs for line in output.splitlines() if line.endswith("epochs)")]
    assert len(started) == len(set(started)) == 5  # trial 0 finished before the kill; no trial ran twice
    assert len({t.user_attrs["run"] for t in finished}) == 6
    assert not (Path(stale.user_attrs["run"]) / "report.md").exists()  # the killed search's trial died with it


def test_a_trial_another_search_failed_as_stale_is_said_in_one_line_and_the_search_goes_on(tmp_path, capsys):
    from common.search.run import Search, parse

    args = search_args(tmp_path, FASHION_SPACE, 2)
    options, fit_args = parse("fashion_cnn", args, "tune")
    folder = tmp_path / "runs" / "search"
    folder.mkdir(parents=True)
    search = Search("fashion_cnn", options, fit_args, folder, fork=True)
    trial = search.study.ask(search.space)
    log = folder / "trial_0.log"
    log.write_text("")
    # What another search does to a trial whose heartbeat it finds stale, while this one still waits for it.
    optuna.load_study(study_name="search", storage=search.url).tell(trial.number, state=TrialState.FAIL)
    search.finish(trial, trial._trial_id, 0, log)
    assert "trial 0: failed by another search, which found its heartbeat late" in capsys.readouterr().out
    assert study_of(tmp_path).trials[0].state == TrialState.FAIL


def test_a_best_trial_run_on_another_machine_is_named_not_tested_here(tmp_path, capsys):
    from common.search import answer
    from common.search.run import Search, parse

    options, fit_args = parse("fashion_cnn", search_args(tmp_path, FASHION_SPACE, 1), "tune")
    folder = tmp_path / "runs" / "search"
    folder.mkdir(parents=True)
    search = Search("fashion_cnn", options, fit_args, folder, fork=True)
    # A trial another machine ran (a shared study): its run folder is on that machine's disk.
    trial = optuna.trial.create_trial(
        params={"model.lr": 0.01},
        distributions={"model.lr": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)},
        value=0.5,
        user_attrs={"run": "/elsewhere/runs/search/trial_0/version_0"},
    )
    search.study.add_trial(trial)
    best = search.study.best_trial
    assert answer.write(search.study, folder, "fashion_cnn", best, search.test_best(best))
    out = capsys.readouterr().out
    assert "It ran on another machine, whose search writes its best.yaml." in out
    assert "not tested here: its run /elsewhere/runs/search/trial_0/version_0 is on another machine" in out
    assert not (folder / "best.yaml").exists() and "| 0 | complete |" in (folder / "study.md").read_text()


def test_pruning_stops_a_hopeless_trial_early_on_every_ddp_process(tmp_path, capsys):
    from fashion_cnn.tune import main as tune

    # A trial that learns, then one whose rate moves nothing: behind it at its first epoch. Each trial runs on two
    # DDP processes, which must stop together (else the run would hang, or go on).
    new_study(tmp_path, {"model.lr": 0.01}, {"model.lr": 1e-12})
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    tune(
        search_args(
            tmp_path,
            {"model.lr": [0.01, 1e-12]},
            2,
            *("--trainer.max_epochs", "2", "--startup_trials", "1", *ddp),
            data=write_fashion_mnist(tmp_path / "data", n_train=100, n_test=21),  # odd: DDP's sampler repeats one
        )
    )
    trials = study_of(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert [t.user_attrs["epochs"] for t in trials] == [2, 1]
    assert "trial 1: pruned after epoch 1" in capsys.readouterr().out
    assert "MEMBER: 2/2" in (tmp_path / "runs" / "search" / "trial_1.log").read_text()
    # The best trial is tested on one device (DDP's sampler would repeat test samples): all 21, once each.
    tested = next(Path(trials[0].user_attrs["run"]).glob("test-*/metrics.json"))
    assert json.loads(tested.read_text())["macro_avg"]["support"] == 21


@pytest.mark.parametrize(
    ("space", "said"),
    [
        (
            {"model.lr": [0.01], "model.learning_rate": [0.1]},
            "the search space's model.learning_rate is no option of fit",
        ),
        ({"model.image_size": [28]}, 'Linked "model.image_size" must be given via "data"'),  # follows the data
        ({"data.batch_size": [32, "many"]}, "are refused by fit"),
        ({"model.lr": {"low": 0.1}}, "must be a list of choices or {low, high"),
    ],
)
def test_a_space_fit_cannot_take_is_refused_in_one_line_before_any_trial(tmp_path, capsys, space, said):
    from fashion_cnn.tune import main as tune

    with pytest.raises(SystemExit) as stop:
        tune(search_args(tmp_path, space, 6))
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.startswith("error:") and said in err and "\n" not in err
    assert not (tmp_path / "runs" / "search").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own (trust authentication, 127.0.0.1, a free port), run as the postgres user
    where this is root (the server refuses root), stopped after the test."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server here (initdb and pg_ctl, Debian's postgresql package)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if not runuser or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root, which PostgreSQL refuses, and no postgres user to run it as")
        as_user = [runuser, "-u", "postgres", "--"]
    # Outside pytest's temporary folders, which only their owner may enter.
    folder = Path(tempfile.mkdtemp(prefix="search-postgres-"))
    if as_user:
        shutil.chown(folder, "postgres")
    cluster, port = folder / "cluster", free_port()
    made = subprocess.run([*as_user, initdb, "-A", "trust", "-U", "postgres", "-D", str(cluster)], capture_output=True)
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    start = [*as_user, pg_ctl, "-D", str(cluster), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    started = not made.returncode and subprocess.run(start, capture_output=True).returncode == 0
    if not started:
        said = made.stderr.decode() if made.returncode else (folder / "log").read_text(errors="replace")
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server could be started here: {' '.join(said.split())[-300:]}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, pg_ctl, "-D", str(cluster), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_study_in_postgresql_runs_its_trials_there(tmp_path, postgres, capsys):
    from sst2_bilstm.tune import main as tune

    data = write_sst2(tmp_path / "data")
    (tmp_path / "space.yaml").write_text("model.lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    args = ["--space", str(tmp_path / "space.yaml"), "--trials", "2", "--storage", postgres, "--study", "shared"]
    args += ["--data.data_dir", str(data), "--trainer.default_root_dir", str(tmp_path / "runs"), *TINY_SST2]
    tune([*args, "--trainer.max_epochs", "1", *FAST])
    trials = optuna.load_study(study_name="shared", storage=postgres).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert (tmp_path / "runs" / "shared" / "best.yaml").is_file() and not (
        tmp_path / "runs" / "shared" / "study.db"
    ).exists()


def test_the_shipped_spaces_name_options_fit_takes():
    from common.search.run import check_space
    from common.search.space import read_space, space_file

    for workflow in ("fashion_cnn", "sst2_bilstm"):
        path = space_file(f"{workflow}.yaml")
        assert path == REPO / "configs" / "search" / f"{workflow}.yaml"
        check_space(workflow, [], read_space(path))
