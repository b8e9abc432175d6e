"""``model.cuda_graph``: training steps replayed from one captured CUDA graph. Where there is no CUDA device the
option is refused with its reason; where there is one, the graphed fit trains as the eager one does."""

import json

import lightning as L
import pytest
import torch

from fashion_cnn.train import main as fashion_main
from sst2_bilstm.train import main as sst2_main
from tests.conftest import REPO, write_fashion_mnist, write_sst2

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TINY_SST2 = ["--model.embedding_dim", "16", "--model.hidden_sizes", "[8, 4]", "--model.dense_size", "8",
             "--data.max_length", "12", "--data.batch_size", "16"]  # fmt: skip


def fit(main, data_dir, root, *more, accelerator="cuda"):
    main(["fit", "--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(root),
          "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", "--trainer.accelerator", accelerator,
          "--trainer.log_every_n_steps", "1", *more])  # fmt: skip
    return json.loads((root / "version_0" / "metrics.json").read_text())


def test_a_cuda_graph_on_the_cpu_is_refused_with_its_reason(tmp_path, capsys):
    data_dir = write_fashion_mnist(tmp_path / "data")
    with pytest.raises(SystemExit) as exit_info:
        fit(fashion_main, data_dir, tmp_path / "runs", "--model.cuda_graph", "true", accelerator="cpu")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cuda_graph cannot apply: it needs a CUDA device, and this run trains on cpu." in err
    assert "Traceback" not in err and not (tmp_path / "runs" / "version_0").exists()


def test_packed_sequences_refuse_a_cuda_graph(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fit(sst2_main, write_sst2(tmp_path / "data"), tmp_path / "runs", "--config",
            str(REPO / "configs" / "sst2_bilstm_packed.yaml"), *TINY_SST2, "--model.cuda_graph", "true",
            accelerator="cpu")  # fmt: skip
    err = capsys.readouterr().err
    assert "packed sequences take their lengths on the host" in err
    assert "the training batches change shape from step to step" in err  # the length buckets


class CountedByHand(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        optimizer._on_before_step()
        optimizer._on_after_step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(5, 1), batch_size=1)


def test_lightning_counts_an_optimizer_step_taken_outside_its_wrapper(tmp_path):
    """The graphed step updates the weights inside the graph and tells Lightning through LightningOptimizer's
    private step hooks; the trainer's global step (max_steps, checkpoints, step logs) must count it."""
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", default_root_dir=tmp_path, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(CountedByHand())
    assert trainer.global_step == 10


@CUDA
def test_the_graphed_fit_trains_as_the_eager_one(tmp_path):
    """Without dropout the graph replays the eager computation: the same losses up to the GPU's float
    reassociation. 300 images in batches of 32: the last batch of 12 of each epoch runs eagerly."""
    data_dir = write_fashion_mnist(tmp_path / "data", n_train=300)
    common = ["--data.download", "false", "--model.dropout", "0", "--data.steps_per_execution", "4"]
    eager = fit(fashion_main, data_dir, tmp_path / "eager", *common)
    graphed = fit(fashion_main, data_dir, tmp_path / "graphed", *common, "--model.cuda_graph", "true")
    for one, other in zip(eager["history"], graphed["history"], strict=True):
        assert one["train_loss"] == pytest.approx(other["train_loss"], rel=1e-3)
        assert one["val_loss"] == pytest.approx(other["val_loss"], rel=1e-3)
    checkpoints = sorted(p.name for p in (tmp_path / "graphed" / "version_0" / "checkpoints").iterdir())
    assert any(name.endswith("step=20.ckpt") for name in checkpoints)  # 2 epochs of 10 optimizer steps


@CUDA
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_graphed_sst2_fit_follows_the_plateau_schedule(tmp_path, precision):
    """The learning rate is a device tensor the schedule fills in place: the replayed update reads the new rate."""
    metrics = fit(sst2_main, write_sst2(tmp_path / "data"), tmp_path / "runs", *TINY_SST2, "--model.cuda_graph",
                  "true", "--model.lr", "1e-6", "--model.min_lr", "0", "--model.plateau_patience", "1",
                  "--trainer.max_epochs", "3", "--trainer.precision", precision)  # fmt: skip
    assert len({epoch["lr"] for epoch in metrics["history"]}) > 1
    assert all(torch.isfinite(torch.tensor(epoch["train_loss"])) for epoch in metrics["history"])
