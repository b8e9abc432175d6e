"""The training, validation and test steps both workflows share."""

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from common.cuda_graph import CapturedStep, make_capturable
from common.errors import ConfigError, NonFiniteLossError

STAGES = ("train", "val", "test")


class ClassifierModule(L.LightningModule):
    """Steps, metrics and logging of a classifier; a subclass builds the network and the optimizer.

    The subclass's ``forward`` returns logits and its ``loss_and_predictions`` turns them into a loss and class
    indices. Metrics are torchmetrics objects updated every batch and computed once per epoch, so no batch waits
    on a host synchronisation, and they reduce correctly across processes. Logged per epoch: ``train_loss``,
    ``train_acc``, ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc``; per optimizer step (every
    ``trainer.log_every_n_steps``): ``train_batch_loss``.

    Training takes its optimizer steps itself (Lightning's manual optimization): a training batch may be a list
    of batches, an execution of ``steps_per_execution`` steps (``common.data.TensorDataModule``), each stepped
    in turn with its schedulers, exactly as one batch per Lightning step would be. The trainer's global step
    counts optimizer steps, so ``max_steps``, checkpoint names and step logs keep their meaning.

    With ``cuda_graph`` (one CUDA device), each optimizer step of full-size batches is a replay of one CUDA graph
    (``common.cuda_graph``): forward, loss, backward and the optimizer's update; the metrics are updated from its
    outputs outside the graph. Dropout masks then come from the graph's own draws of the CUDA generator: the same
    distribution as eager steps, not the same numbers. Graphed steps call no backward or optimizer-step hooks
    (``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``), and ``.grad`` is the graph's.
    """

    plateau_monitor = "val_loss"  # what a ReduceLROnPlateau schedule watches

    def __init__(self, num_classes: int, cuda_graph: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cuda_graph = cuda_graph
        self._captured: CapturedStep | None = None
        self.epoch_metrics = nn.ModuleDict()
        for stage in STAGES:
            # Keras's reported loss is the mean over samples, hence the batch-size weights; "disable" and
            # validate_args=False skip value checks that would synchronise with the device every batch.
            self.epoch_metrics[f"{stage}_loss"] = MeanMetric(nan_strategy="disable")
            self.epoch_metrics[f"{stage}_acc"] = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_scores = MetricCollection(
            {
                "precision": MulticlassPrecision(num_classes, average=None),
                "recall": MulticlassRecall(num_classes, average=None),
                "f1": MulticlassF1Score(num_classes, average=None),
                "confusion_matrix": MulticlassConfusionMatrix(num_classes),
            }
        )
        self.test_results: dict[str, torch.Tensor] = {}
        # The first step whose training loss was not finite, kept on the device (-1: none yet).
        self.register_buffer("first_nonfinite_step", torch.tensor(-1), persistent=False)
        self.automatic_optimization = False

    def loss_and_predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, target = batch
        loss, predictions = self.loss_and_predictions(self(inputs), target)
        self._update_metrics(stage, loss, predictions, target)
        return loss, predictions

    def _update_metrics(self, stage: str, loss: torch.Tensor, predictions: torch.Tensor, target: torch.Tensor) -> None:
        target = target.long()
        self.epoch_metrics[f"{stage}_loss"].update(loss.detach(), len(target))
        self.epoch_metrics[f"{stage}_acc"].update(predictions, target)

    def _log_epoch_metrics(self, stage: str) -> None:
        # One self.log per metric and epoch, not per step: each self.log call costs Lightning about 0.3 ms of
        # bookkeeping, which is a large share of a small model's step on a CPU.
        names = (f"{stage}_loss", f"{stage}_acc")
        values = {name: self.epoch_metrics[name].compute() for name in names}
        self.log_dict(values, on_step=False, on_epoch=True, prog_bar=True)
        for name in names:
            self.epoch_metrics[name].reset()

    def training_step(self, batch, batch_idx: int) -> None:
        optimizer = self.optimizers()
        per_step = [config.scheduler for config in self.trainer.lr_scheduler_configs if config.interval == "step"]
        first, every, max_steps = self.first_nonfinite_step, self.trainer.log_every_n_steps, self.trainer.max_steps
        for inputs, target in batch if isinstance(batch, list) else [batch]:
            if 0 <= max_steps <= self.global_step:  # an execution may hold more steps than are left
                break
            step = self.global_step
            if self._captured is not None:
                loss, predictions = self._captured(inputs, target)
                self._update_metrics("train", loss, predictions, target)
                # The update ran inside the graph, not through Lightning's optimizer wrapper: count it as the
                # wrapper would (a private hook of LightningOptimizer; tests/test_cuda_graph.py pins it).
                optimizer._on_before_step()
                optimizer._on_after_step()
            else:
                loss, _ = self._step((inputs, target), "train")
                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                optimizer.step()
            for scheduler in per_step:
                scheduler.step()
            first.masked_fill_(~loss.detach().isfinite() & (first < 0), step)
            if every and (step + 1) % every == 0:
                self._stop_if_not_finite()
                for logger in self.loggers:  # at the optimizer step's own index, however many an execution holds
                    logger.log_metrics({"train_batch_loss": float(loss.detach())}, step=step)
        if batch_idx + 1 == self.trainer.num_training_batches:
            self._stop_if_not_finite()
            # Logged with the epoch's last batch rather than in on_train_epoch_end, which Lightning calls after
            # the callbacks' own: so checkpoints, early stopping and the report all see this epoch's figures.
            self._log_epoch_metrics("train")

    def on_train_start(self) -> None:
        if self.cuda_graph:
            self._refuse_graph_where_it_cannot_apply()
            optimizer = self.optimizers().optimizer
            make_capturable(optimizer)
            self._captured = CapturedStep(self._graphed_step(optimizer), self.trainer.datamodule.batch_size)

    def _graphed_step(self, optimizer: torch.optim.Optimizer):
        def step(inputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            optimizer.zero_grad(set_to_none=True)
            loss, predictions = self.loss_and_predictions(self(inputs), target)
            loss.backward()
            optimizer.step()
            return loss.detach(), predictions

        return step

    def graph_refusal(self) -> str | None:
        """Why this model's training step cannot be one CUDA graph (None: it can). A subclass whose step
        depends on the data in ways a graph cannot replay says so here."""
        return None

    def _refuse_graph_where_it_cannot_apply(self) -> None:
        trainer = self.trainer
        reasons = [self.graph_refusal()]
        if self.device.type != "cuda":
            reasons.append(f"it needs a CUDA device, and this run trains on {self.device.type}")
        if trainer.world_size > 1:
            reasons.append(f"it runs on one device, and this run has {trainer.world_size} processes")
        if trainer.precision in ("16-mixed", "16"):
            reasons.append("16-mixed scales the loss and skips steps outside the graph; use bf16-mixed or 32-true")
        if len(trainer.optimizers) != 1:
            reasons.append("it captures one optimizer's step")
        for config in trainer.lr_scheduler_configs:
            if getattr(config.scheduler, "cycle_momentum", False):
                reasons.append(f"{type(config.scheduler).__name__} cycles Adam's momentum, which a replay cannot "
                               "follow")  # fmt: skip
        if not hasattr(trainer.datamodule, "batch_size"):
            reasons.append("it needs a DataModule with a batch_size")
        elif not getattr(trainer.datamodule, "static_shapes", True):
            reasons.append("the training batches change shape from step to step")
        reasons = [reason for reason in reasons if reason]
        if reasons:
            raise ConfigError(f"cuda_graph cannot apply: {'; '.join(reasons)}. Run without --model.cuda_graph.")

    def on_train_end(self) -> None:
        self._captured = None  # the graph holds its own memory pool

    def on_train_epoch_end(self) -> None:
        # Lightning steps no scheduler under manual optimization: the epoch-interval ones step here, after the
        # report has read this epoch's rate and before the checkpoints (monitoring callbacks) save their state.
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != "epoch":
                continue
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if self.plateau_monitor in self.trainer.callback_metrics:
                    config.scheduler.step(self.trainer.callback_metrics[self.plateau_monitor])
            else:
                config.scheduler.step()

    def optimizer_steps(self) -> int | float:
        """Optimizer steps the whole fit takes, for schedules over the fit: Lightning's estimate counts Lightning
        batches, which with ``steps_per_execution`` hold several steps each."""
        estimate = self.trainer.estimated_stepping_batches  # also sets up the train loader
        sampler = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        steps = getattr(sampler, "steps", 1)
        if steps == 1:
            return estimate
        executions = self.trainer.num_training_batches
        per_epoch = sampler.batches_per_epoch if executions == len(sampler) else executions * steps
        epochs = self.trainer.max_epochs
        total = per_epoch * epochs if epochs is not None and epochs >= 0 else float("inf")
        return min(total, self.trainer.max_steps) if self.trainer.max_steps >= 0 else total

    def _stop_if_not_finite(self) -> None:
        # Read only on logging steps and at the end of each epoch: checking every step would make every step
        # wait for the device.
        step = int(self.first_nonfinite_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"the training loss became nan or infinite at step {step} (epoch {self.current_epoch + 1}); "
                "training stopped. Lower the learning rate or check the data; the checkpoints of the epochs "
                "before are kept."
            )

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        _, predictions = self._step(batch, "test")
        self.test_scores.update(predictions, batch[1].long())

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.probabilities(self(inputs))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # A resumed run must draw the same shuffles and dropout masks as an uninterrupted one: the CPU generator
        # shuffles, and draws dropout masks on the CPU; on a GPU, the GPU's generators draw them.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_initialized():
            checkpoint["cuda_rng_states"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        cuda_states = checkpoint.get("cuda_rng_states")
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")
        # Per-class scores and the confusion matrix are not scalars, so they are kept for the report instead of
        # being logged; compute() reduces them across processes.
        self.test_results = {name: value.cpu() for name, value in self.test_scores.compute().items()}
        self.test_scores.reset()
