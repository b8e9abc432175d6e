import json
import platform
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sst2_bilstm.data import SST2DataModule
from sst2_bilstm.model import SST2BiLSTM, cpu_runs_bf16_lstm
from sst2_bilstm.train import main
from tests.conftest import REPO, STALLED, tiny_run, write_sst2

# Three epochs of short sentences in batches of 16, a figure logged at every step.
SHORT = ["--trainer.max_epochs", "3", "--trainer.log_every_n_steps", "1", "--data.max_length", "12"]
SHORT += ["--data.batch_size", "16"]


@pytest.mark.parametrize("order", ["reference", "reordered"])
def test_fit_tests_the_best_checkpoint_and_writes_the_report(order, tmp_path, capsys, monkeypatch):
    if order == "reordered":  # the reference config with its callbacks reversed: the latest-epoch checkpoint first
        config = yaml.safe_load((REPO / "configs" / "sst2_bilstm.yaml").read_text())
        config["trainer"]["callbacks"].reverse()
        (tmp_path / "reordered.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.setattr("common.cli.parser.config_path", lambda name: tmp_path / "reordered.yaml")
    # The validation part's labels are flipped: validation loss rises from the first epoch on.
    sst2_dir = write_sst2(tmp_path / "data", misleading_validation=True)
    main(tiny_run("sst2_bilstm", sst2_dir, tmp_path / "runs", *SHORT))
    run = tmp_path / "runs" / "version_0"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"Report: {run / 'report.md'}"

    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        assert metrics[split].keys() == {"accuracy", "loss"}
    assert {"precision", "recall", "f1"} <= metrics.keys()
    assert metrics["precision"] == metrics["per_class"]["positive"]["precision"]
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert tn + fp + fn + tp == 20 and tn + fp == 10  # dev.tsv: 10 negative, 10 positive
    assert metrics["test"]["accuracy"] == pytest.approx((tn + tp) / 20)
    # The full history is kept, and the tested checkpoint is the epoch with the lowest validation loss: the
    # first, not the last.
    history = metrics["history"]
    assert [e["epoch"] for e in history] == [1, 2, 3]
    assert metrics["checkpoint_epoch"] == min(history, key=lambda e: e["val_loss"])["epoch"] == 1
    assert metrics["checkpoint"] == "checkpoints/best-epoch=0.ckpt"
    assert metrics["val"]["loss"] == history[-1]["val_loss"]

    for name in ("report.md", "confusion_matrix.png", "curves.png", "tokenizer.json", "config.yaml"):
        assert (run / name).is_file()
    stored = SST2DataModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", weights_only=True).tokenizer
    assert json.loads(stored.to_str()) == json.loads((run / "tokenizer.json").read_text())
    events = EventAccumulator(str(run)).Reload()
    assert {"val_loss", "test_acc", "train_batch_loss", "lr-Adam"} <= set(events.Tags()["scalars"])
    assert "test_confusion_matrix" in events.Tags()["images"]


def test_a_checkpoint_encodes_text_with_its_own_tokenizer(sst2_dir, tmp_path):
    runs = tmp_path / "runs"
    args = tiny_run("sst2_bilstm", sst2_dir, runs, *SHORT, "--trainer.max_epochs", "1")
    main(args)
    test_args = ["test", *args[1:], "--ckpt_path", str(runs / "version_0" / "checkpoints" / "last.ckpt")]
    tested = runs / "version_0" / "test-last"  # the checkpoint's run holds its tests
    main(test_args)
    first = json.loads((tested / "metrics.json").read_text())
    tokenizers = {(folder / "tokenizer.json").read_text() for folder in (runs / "version_0", tested)}
    # Another train.tsv would fit another vocabulary; testing the checkpoint must not use it.
    (sst2_dir / "SST-2" / "train.tsv").write_text("sentence\tlabel\n" + "zzz yyy xxx\t0\n" * 50)
    main(test_args)
    second = json.loads((tested / "metrics.json").read_text())
    assert first["test"] == second["test"] and first["confusion_matrix"] == second["confusion_matrix"]
    tokenizers.add((tested / "tokenizer.json").read_text())
    assert len(tokenizers) == 1 and sorted(p.name for p in runs.iterdir()) == ["version_0"]


def test_lightning_steps_the_plateau_scheduler_on_val_loss(sst2_dir, tmp_path):
    # A learning rate too small to move val_loss by Keras's min_delta: every epoch after the first is a plateau.
    main(tiny_run("sst2_bilstm", sst2_dir, tmp_path, *SHORT, *STALLED))
    history = json.loads((tmp_path / "version_0" / "metrics.json").read_text())["history"]
    assert [e["lr"] for e in history] == [1e-12, 1e-12, 5e-13]  # halved after the first epoch without improvement


def test_the_packed_config_runs_on_top_of_the_reference(sst2_dir, tmp_path):
    main(tiny_run("sst2_bilstm", sst2_dir, tmp_path, *SHORT, config=REPO / "configs" / "sst2_bilstm_packed.yaml"))
    config = (tmp_path / "version_0" / "config.yaml").read_text()
    assert "packed: true" in config and "length_buckets: true" in config and "patience: 5" in config
    metrics = json.loads((tmp_path / "version_0" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == 20


# oneDNN's bf16 kernels for x86-64 need AVX-512's core subsets.
AVX512_CORE = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (/proc/cpuinfo)."""
    if platform.machine() not in ("x86_64", "AMD64") or not Path("/proc/cpuinfo").is_file():
        pytest.skip("reads the flags of an x86-64 CPU from Linux's /proc/cpuinfo")
    line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    return set(line.split(":", 1)[1].split())


def test_bf16_autocast_runs_the_lstms_in_what_this_cpu_supports():
    # oneDNN runs LSTMs in bf16 only with AVX-512; elsewhere they stay in fp32 and the rest of the model in bf16.
    model = SST2BiLSTM(embedding_dim=8, hidden_sizes=(4, 4), dense_size=4)
    dtypes = {}

    def record(name):
        def hook(module, inputs, output):
            dtypes[name] = (output[0] if isinstance(output, tuple) else output).dtype

        return hook

    for name in ("lstm1", "lstm2", "head"):
        getattr(model, name).register_forward_hook(record(name))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randint(0, 100, (2, 6)))
    # Expected from the CPU's own flags, read apart from the model's probe (cpu_runs_bf16_lstm, which asks oneDNN).
    avx512 = cpu_flags() >= AVX512_CORE
    assert cpu_runs_bf16_lstm() == avx512
    lstm_dtype = torch.bfloat16 if avx512 else torch.float32
    assert dtypes == {"lstm1": lstm_dtype, "lstm2": lstm_dtype, "head": torch.bfloat16}
    if not avx512:  # what the model steers around: a bare LSTM under bf16 autocast fails here
        with pytest.raises(RuntimeError), torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 2)(torch.zeros(1, 1, 2))


@pytest.mark.parametrize("config", ["sst2_bilstm.yaml", "sst2_bilstm_packed.yaml"])
def test_bf16_mixed_precision_trains_and_tests(sst2_dir, tmp_path, config):
    main(
        tiny_run(
            "sst2_bilstm",
            sst2_dir,
            tmp_path,
            *SHORT,
            "--trainer.precision",
            "bf16-mixed",
            config=REPO / "configs" / config,
        )
    )
    metrics = json.loads((tmp_path / "version_0" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == 20 and metrics["test"]["loss"] > 0
