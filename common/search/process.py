"""A trial's process. Where the trial runs in one process, it is forked from a server that imported the workflow
once (a fresh Python spends seconds importing torch and Lightning); where it runs on several (DDP), it is the
workflow's own command, ``python -m <workflow>.train fit ...``, which Lightning's launcher starts the other
processes from. Either way it dies with the search that waits for it, so that a killed search leaves no trial
running on, and its output goes to the trial's log."""

import contextlib
import ctypes
import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

# What a fit imports on its first run, beside what its module imports (its report's figures, TensorBoard, the
# classic baseline): imported once by the fork server.
FIRST_RUN_IMPORTS = ["optuna", "sklearn.linear_model", "sklearn.metrics", "matplotlib.backends.backend_agg"]
FIRST_RUN_IMPORTS += ["torch.utils.tensorboard"]


def one_process(trainer: dict) -> bool:
    """Whether a fit with these Trainer options runs in one process: one device (a CPU's 'auto' is one) on one
    machine."""
    import torch

    devices, accelerator = str(trainer.get("devices", "auto")), str(trainer.get("accelerator", "auto"))
    one_device = devices == "1" or (devices == "auto" and (accelerator == "cpu" or torch.cuda.device_count() <= 1))
    return str(trainer.get("num_nodes", 1)) == "1" and one_device


def start_fork_server(workflow: str) -> None:
    """Starts the fork server now, so that it imports the workflow while the search reads its options: every
    search forks from it at least once (the best trial's test), one-process trials each time."""
    processes = multiprocessing.get_context("forkserver")
    processes.set_forkserver_preload([f"{workflow}.train", *FIRST_RUN_IMPORTS])
    multiprocessing.forkserver.ensure_running()


class TrialProcess:
    def __init__(self, workflow: str, args: list[str], env: dict, log: Path, fork: bool) -> None:
        """``args``: the workflow's command line, its subcommand first (``fit`` for a trial, ``test`` for the
        best trial at the end)."""
        self.search_end: Connection | None = None
        if fork:
            start_fork_server(workflow)
            processes = multiprocessing.get_context("forkserver")
            trial_end, self.search_end = processes.Pipe(duplex=False)
            self.process = processes.Process(
                target=run_workflow, args=(workflow, args, env, os.getcwd(), str(log), trial_end)
            )
            self.process.start()
            trial_end.close()
        else:
            with log.open("w") as output:
                command = [sys.executable, "-m", f"{workflow}.train", *args]
                linux = sys.platform == "linux"
                self.process = subprocess.Popen(
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=die_with_parent if linux else None,
                )

    def wait(self, seconds: float) -> int | None:
        """The process's exit status once it ended, within ``seconds``; None while it runs."""
        if isinstance(self.process, subprocess.Popen):
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.process.wait(seconds)
            return None
        self.process.join(seconds)
        if self.process.exitcode is not None and self.search_end is not None:
            self.search_end.close()
        return self.process.exitcode


def die_with_parent() -> None:
    # Linux's PR_SET_PDEATHSIG, in the child before it runs the command: SIGKILL when the search ends.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def run_workflow(workflow: str, args: list[str], env: dict, cwd: str, log: str, search: Connection) -> None:
    """The forked trial: the workflow's command line with the trial's options, in the search's environment and
    folder."""
    threading.Thread(target=die_with, args=(search,), daemon=True).start()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(output, 1)
    os.dup2(output, 2)
    importlib.import_module(f"{workflow}.train").main(args)


def die_with(search: Connection) -> None:
    """Ends the forked trial when the search ends, whatever ends it: the search holds the pipe's other end. (The
    fork server's child cannot use PR_SET_PDEATHSIG: its parent is the server, which outlives a killed search for
    as long as a child of its own lives.)"""
    with contextlib.suppress(EOFError, OSError):
        search.recv()
    os.kill(os.getpid(), signal.SIGKILL)
