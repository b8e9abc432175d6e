"""The same configs on two CPU processes (DDP and ddp_spawn, gloo) and on two machines (torchrun): metrics reduced
across processes, one report."""

import json
import os
import socket
import subprocess
import sys

import pytest

from sst2_bilstm.train import main as sst2_main
from tests.conftest import REPO, tiny_run, write_fashion_mnist, write_sst2

DISTRIBUTED = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK", "MASTER_ADDR"}
DISTRIBUTED |= {"MASTER_PORT"}
ON_CPU = ["--trainer.accelerator", "cpu"]
# SST-2 under ddp in its packed config, whose length buckets draw from Lightning's distributed sampler (the
# reference config's plain batches add nothing that this case and the torchrun test below do not cover, for 17 s
# of the suite's time); Fashion-MNIST under ddp_spawn and torchrun in the test below.
CASES = {"sst2_bilstm_packed": REPO / "configs" / "sst2_bilstm_packed.yaml"}


@pytest.mark.parametrize("case", CASES)
def test_ddp_on_two_cpu_processes(case, tmp_path):
    # Validation labels flipped: val_loss rises from the first epoch, so fit tests the first epoch, not the last.
    data_dir = write_sst2(tmp_path / "data", misleading_validation=True)
    config, root, n_test = CASES[case], tmp_path / "ddp", 20
    ddp = ["--trainer.max_epochs", "2", "--trainer.strategy", "ddp", "--trainer.devices", "2"]
    fit = tiny_run("sst2_bilstm", data_dir, root, *ON_CPU, *ddp, config=config)
    command = [sys.executable, "-m", "sst2_bilstm.train", *fit]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Report: ") == 1 and [p.name for p in root.iterdir()] == ["version_0"]
    assert result.stdout.strip().splitlines()[-1] == f"Report: {root / 'version_0' / 'report.md'}"
    ddp = json.loads((root / "version_0" / "metrics.json").read_text())
    confusion = ddp["confusion_matrix"]
    assert sum(map(sum, confusion)) == n_test  # both processes' halves of the test set
    assert ddp["test"]["accuracy"] == pytest.approx(sum(row[i] for i, row in enumerate(confusion)) / n_test)

    # One process testing the checkpoint the two tested (the best epoch's, not last.ckpt) on the same kind of device
    # finds the same figures.
    assert ddp["checkpoint"] == "checkpoints/best-epoch=0.ckpt" and len(ddp["history"]) == 2
    checkpoint = str(root / "version_0" / ddp["checkpoint"])
    sst2_main(
        tiny_run("sst2_bilstm", data_dir, root, *ON_CPU, "--ckpt_path", checkpoint, command="test", config=config)
    )
    single = json.loads((root / "version_0" / "test-best-epoch=0" / "metrics.json").read_text())  # into the run
    assert single["confusion_matrix"] == confusion
    assert single["test"]["accuracy"] == pytest.approx(ddp["test"]["accuracy"])
    assert single["test"]["loss"] == pytest.approx(ddp["test"]["loss"], rel=1e-5)
    print(f"{case}: DDP test accuracy {ddp['test']['accuracy']:.4f}, loss {ddp['test']['loss']:.4f}")


def test_two_machines_with_torchrun_train_as_two_processes_do(tmp_path):
    """docs/cli.md's torchrun command for several machines, run as 2 nodes x 1 process on this one (c10d
    rendezvous on 127.0.0.1): the same test figures as the 2-process run (ddp_spawn) of the same seed."""
    data_dir = write_fashion_mnist(tmp_path / "data")

    def fit(root, *extra):
        return ["-m", "fashion_cnn.train", *tiny_run("fashion_cnn", data_dir, root, *ON_CPU, *extra)]

    # The 2-process run under ddp_spawn: the same run as ddp's, which the two machines run.
    two_processes = [
        sys.executable,
        *fit(tmp_path / "one", "--trainer.devices", "2", "--trainer.strategy", "ddp_spawn"),
    ]
    done = subprocess.run(two_processes, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == f"Report: {tmp_path / 'one' / 'version_0' / 'report.md'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
    torchrun += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test"]
    distributed = ["--trainer.strategy", "ddp", "--trainer.num_nodes", "2", "--trainer.devices", "1"]
    node = [*torchrun, *fit(tmp_path / "two", *distributed)]
    # Files, not pipes: a node blocked on a full pipe while the other is being read would stall both.
    logs = [(tmp_path / f"node{i}.out").open("w+") for i in range(2)]
    # Nothing of a launcher's environment that an earlier test in this process may have left (RANK, MASTER_PORT...).
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED and not k.startswith("TORCHELASTIC")}
    nodes = [subprocess.Popen(node, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env) for log in logs]
    try:
        codes = [process.wait(timeout=300) for process in nodes]
    finally:
        for process in nodes:
            process.kill()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    assert codes == [0, 0], "\n".join(output[-2000:] for output in outputs)
    assert sum(output.count("Report: ") for output in outputs) == 1
    one, two = (json.loads((tmp_path / name / "version_0" / "metrics.json").read_text()) for name in ("one", "two"))
    assert sum(map(sum, one["confusion_matrix"])) == 32  # both processes' halves of the test set
    assert two["test"] == one["test"] and two["confusion_matrix"] == one["confusion_matrix"]
