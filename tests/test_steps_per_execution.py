"""Several optimizer steps per Lightning batch (``data.steps_per_execution``) compute what one step per batch
computes: the same seed gives the same metrics.json, schedules included."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_cnn.train import main as fashion_main
from sst2_bilstm.train import main as sst2_main
from tests.conftest import REPO, write_fashion_mnist, write_sst2

TINY_SST2 = ["--model.embedding_dim", "16", "--model.hidden_sizes", "[8, 4]", "--model.dense_size", "8",
             "--data.max_length", "12", "--data.batch_size", "16"]  # fmt: skip
CASES = {  # workflow's main, data writer, extra arguments
    # 300 images in batches of 32: 10 steps an epoch, the last of 12 images; K = 8 gives executions of 8 and 2.
    "fashion_cnn": (fashion_main, lambda d: write_fashion_mnist(d, n_train=300), ["--data.download", "false"]),
    # Batch norm and a one-cycle rate stepped every step (augmentation draws its randomness per execution, so
    # it stays off here: with it runs are equal in distribution, not bit for bit).
    "fashion_cnn_plus": (fashion_main, lambda d: write_fashion_mnist(d, n_train=300), [
        "--config", str(REPO / "configs" / "fashion_cnn_plus.yaml"), "--data.download", "false",
        "--data.augment", "false", "--data.batch_size", "32"]),
    # A learning rate too small to improve val_loss: the plateau schedule halves it along the way.
    "sst2_bilstm": (sst2_main, write_sst2, [*TINY_SST2, "--model.lr", "1e-6", "--model.min_lr", "0",
                                            "--model.plateau_patience", "1"]),
    "sst2_bilstm_packed": (sst2_main, write_sst2, ["--config", str(REPO / "configs" / "sst2_bilstm_packed.yaml"),
                                                   *TINY_SST2]),
}  # fmt: skip


def fit(main, data_dir, root, steps, extra, *more):
    main(["fit", *extra, "--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(root),
          "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
          "--trainer.log_every_n_steps", "1", "--data.steps_per_execution", str(steps), *more])  # fmt: skip
    return json.loads((root / "version_0" / "metrics.json").read_text())


@pytest.mark.parametrize("case", CASES)
def test_eight_steps_per_execution_give_the_metrics_of_one(case, tmp_path):
    main, write_data, extra = CASES[case]
    data_dir = write_data(tmp_path / "data")
    one, eight = (fit(main, data_dir, tmp_path / f"k{steps}", steps, extra) for steps in (1, 8))
    assert one == eight
    if case == "sst2_bilstm":
        assert len({epoch["lr"] for epoch in one["history"]}) > 1  # the plateau schedule acted
    if case == "fashion_cnn_plus":
        assert len({epoch["lr"] for epoch in one["history"]}) == 3  # the one-cycle schedule moved every epoch
    # Step logs at every optimizer step, at its own index.
    steps = [[e.step for e in EventAccumulator(str(tmp_path / f"k{k}" / "version_0")).Reload().Scalars(
        "train_batch_loss")] for k in (1, 8)]  # fmt: skip
    assert steps[0] == steps[1] == list(range(len(steps[0]))) and len(steps[0]) >= 3 * 5


def test_max_steps_stops_inside_an_execution(tmp_path):
    data_dir = write_fashion_mnist(tmp_path / "data", n_train=300)
    fit(fashion_main, data_dir, tmp_path, 4, ["--data.download", "false"], "--trainer.max_steps", "6")
    checkpoints = sorted(p.name for p in (tmp_path / "version_0" / "checkpoints").iterdir())
    assert checkpoints == ["epoch=0-step=6.ckpt", "last.ckpt"]  # 6 steps of the first epoch's 10, not 8
