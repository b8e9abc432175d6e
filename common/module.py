"""The training, validation and test steps both workflows share."""

import json

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from common.errors import ConfigError, NonFiniteLossError

EVAL_STAGES = ("val", "test")


def data_differences(models: list["ClassifierModule"]) -> dict[str, list]:
    """Each of the models' ``DATA_HPARAMS`` whose values differ between them, with the values in order."""
    said = [model.data_hparams() for model in models]
    return {name: [s[name] for s in said] for name in said[0] if any(s[name] != said[0][name] for s in said)}


def refuse_other_data(source: str, saved: dict, model: "ClassifierModule") -> None:
    """Refuses a checkpoint (``source``, its hyper-parameters ``saved``) trained on data that gave other classes or
    inputs than the data that built ``model``."""
    now = model.data_hparams()
    differ = {
        name: (saved[name], now[name]) for name in now if name in saved and _plain(saved[name]) != _plain(now[name])
    }
    if differ:
        said = "; ".join(
            f"{name} {was} in the checkpoint, {given} from these data" for name, (was, given) in differ.items()
        )
        raise ConfigError(f"{source} was trained on other data: {said}. Give the data options it was trained with.")


def rename_data_state(checkpoint: dict, datamodule_class: type) -> None:
    """Files a checkpoint's DataModule state under the name Lightning restores it from (its class's name) where
    an older checkpoint filed it under a name the class had before (the DataModule's ``formerly``). Lightning
    restores the module before the DataModule, so this runs in time."""
    name = datamodule_class.__qualname__
    for former in getattr(datamodule_class, "formerly", ()):
        if name not in checkpoint and former in checkpoint:
            checkpoint[name] = checkpoint.pop(former)


def _stepped_here(config) -> bool:
    """Whether a schedule of ``trainer.lr_scheduler_configs`` is one ClassifierModule steps itself."""
    return config.reduce_on_plateau and config.interval == "epoch"


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


class ClassifierModule(L.LightningModule):
    """Steps, metrics and logging of a classifier; a subclass builds the network and the optimizer.

    The subclass's ``forward`` returns logits and its ``loss_and_predictions`` turns them into a loss and class
    indices. Training is Lightning's automatic optimization: ``training_step`` returns the loss, and every Trainer
    flag (clipping, accumulation, limits, ``max_steps``, ...) and callback means what Lightning's documentation says.

    Logged: ``train_batch_loss`` at each optimizer step (every ``trainer.log_every_n_steps``); per epoch
    ``train_loss`` and ``train_acc`` (over the batches the epoch trained on, however it ended), ``val_loss``,
    ``val_acc``, ``test_loss``, ``test_acc``. Losses are means over samples, as Keras reports them.

    Schedules are stepped as Lightning documents them (``interval``, ``frequency``, ``monitor``, ``strict``), by
    Lightning, but for one moment: a ``ReduceLROnPlateau`` with ``interval: epoch`` is stepped here, at the end of
    the epoch as Lightning would, and before the epoch's checkpoints save it. Lightning steps it after them, and
    does not step it again when a run resumes from such a checkpoint, so the resumed run would miss that step.
    """

    # The hyper-parameters that the data sets (linked) and that fix the weights' shapes (the classes, the input):
    # a checkpoint is evaluated, resumed or joined in an ensemble only with data that gives the same.
    DATA_HPARAMS: tuple[str, ...] = ()

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.eval_metrics = nn.ModuleDict()
        for stage in EVAL_STAGES:
            # validate_args=False skips value checks that would synchronise with the device every batch.
            self.eval_metrics[f"{stage}_loss"] = MeanMetric(nan_strategy="disable")
            self.eval_metrics[f"{stage}_acc"] = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
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
        # The training epoch's sums of losses (weighted by batch size) and of correct predictions, and its sample
        # count, made on the training device as each epoch starts.
        self.train_sums = torch.zeros(3, dtype=torch.float64)
        self._train_figures: dict[str, float] | None = None
        self._last_logged_step = -1
        self.batch_loss: torch.Tensor | None = None

    def setup(self, stage: str) -> None:
        # Each process its own metric states. Under ddp_spawn on a CPU the module reaches the processes in memory
        # they share, and Lightning unshares its parameters and buffers only: the processes would add into one
        # confusion matrix, which compute() then sums across them again.
        for metric in self.modules():
            if isinstance(metric, Metric):
                metric.reset()

    def loss_and_predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def data_hparams(self) -> dict:
        """The values of ``DATA_HPARAMS``."""
        return {name: self.hparams.get(name) for name in self.DATA_HPARAMS}

    def export_metadata(self) -> dict[str, str]:
        """What a reader of the model's ONNX export should know (stored in its metadata): its classes, and what a
        subclass adds."""
        names = self.hparams.get("class_names")
        return {"class_names": json.dumps(list(names))} if names is not None else {}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, target = batch
        loss, predictions = self.loss_and_predictions(self(inputs), target)
        # The epoch's figures are sums kept on the device, a few in-place additions per step: a self.log call per
        # step and figure costs Lightning more bookkeeping than a small model's step can hide (docs/speed.md).
        self.batch_loss = loss.detach()
        self.train_sums[0].add_(self.batch_loss, alpha=len(target))
        self.train_sums[1].add_(predictions.eq(target).sum())
        self.train_sums[2].add_(len(target))
        first = self.first_nonfinite_step
        first.masked_fill_(~self.batch_loss.isfinite() & (first < 0), self.global_step)
        return loss

    def on_train_epoch_start(self) -> None:
        dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        self.train_sums = torch.zeros(3, dtype=dtype, device=self.device)
        self._train_figures = None

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # At the index of the optimizer step just taken, on the steps Lightning would log (every log_every_n_steps):
        # written to the loggers directly rather than through self.log, for the cost above. Reading the loss
        # waits for the device, so it is read only then.
        step, every = self.global_step - 1, self.trainer.log_every_n_steps
        if step >= 0 and step != self._last_logged_step and every and (step + 1) % every == 0:
            self._last_logged_step = step
            self._stop_if_not_finite()
            for logger in self.loggers:
                logger.log_metrics({"train_batch_loss": float(self.batch_loss)}, step=step)

    def train_figures(self) -> dict[str, float]:
        """The epoch's ``train_loss`` and ``train_acc`` so far, over all processes (empty before the first step).
        Every process must ask, the first time in an epoch."""
        if self._train_figures is None:
            loss_sum, correct, count = self.trainer.strategy.reduce(self.train_sums, reduce_op="sum").tolist()
            self._train_figures = {"train_loss": loss_sum / count, "train_acc": correct / count} if count else {}
        return dict(self._train_figures)

    def epoch_figures(self) -> dict[str, float]:
        """The ending epoch's training figures, for the callbacks (report, curves) whose epoch end Lightning calls
        before this module's, where they are logged (common/callbacks/figures.py)."""
        return self.train_figures()

    def on_train_epoch_end(self) -> None:
        self._stop_if_not_finite()
        # Logged here, where Lightning's monitoring callbacks (checkpoints, early stopping) read them next.
        self.log_dict(self.train_figures(), on_step=False, on_epoch=True, prog_bar=True)
        for config in self.trainer.lr_scheduler_configs:
            if not _stepped_here(config) or (self.current_epoch + 1) % config.frequency:
                continue
            value = self.trainer.callback_metrics.get(config.monitor)
            if value is not None:
                config.scheduler.step(value)
            elif config.strict:  # Lightning's own refusal, which it would give at this point
                available = ", ".join(self.trainer.callback_metrics) or "none"
                raise ConfigError(
                    f"the plateau schedule watches {config.monitor}, which this run does not log (logged: "
                    f"{available}); name a logged metric, or set strict: false to skip such epochs."
                )

    def one_cycle(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer with a one-cycle schedule over the whole fit, peaking at its learning rate, stepped after
        every optimizer step: the configuration ``configure_optimizers`` returns. OneCycleLR's defaults hold: a
        warm-up over the first 30% of the steps, a cosine decay after, and Adam's beta1 cycled between 0.95 and
        0.85 against the rate."""
        steps = self.trainer.estimated_stepping_batches  # optimizer steps of the whole fit
        peak = optimizer.param_groups[0]["lr"]
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        # A one-cycle schedule's length is fixed when training starts; a resumed run restores it, and stepping
        # past its end would fail deep in the scheduler.
        for config in self.trainer.lr_scheduler_configs:
            schedule = config.scheduler
            if (
                isinstance(schedule, torch.optim.lr_scheduler.OneCycleLR)
                and schedule.total_steps < self.trainer.estimated_stepping_batches
            ):
                raise ConfigError(
                    f"this run's one-cycle schedule was fixed at {schedule.total_steps} steps when it started; "
                    f"it cannot be resumed for {self.trainer.estimated_stepping_batches}: keep its max_epochs."
                )

    def lr_scheduler_step(self, scheduler, metric) -> None:
        # Lightning calls this after the epoch's checkpoints, for every schedule; an epoch plateau's step was
        # taken before them (on_train_epoch_end).
        config = next(c for c in self.trainer.lr_scheduler_configs if c.scheduler is scheduler)
        if _stepped_here(config):
            return
        super().lr_scheduler_step(scheduler, metric)

    def _stop_if_not_finite(self) -> None:
        step = int(self.first_nonfinite_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"the training loss became nan or infinite at step {step} (epoch {self.current_epoch + 1}); "
                "training stopped. Lower the learning rate or check the data; the checkpoints of the epochs "
                "before are kept."
            )

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        inputs, target = batch
        loss, predictions = self.loss_and_predictions(self(inputs), target)
        target = target.long()
        self.eval_metrics[f"{stage}_loss"].update(loss.detach(), len(target))
        self.eval_metrics[f"{stage}_acc"].update(predictions, target)
        return predictions

    def _log_eval_metrics(self, stage: str) -> None:
        names = (f"{stage}_loss", f"{stage}_acc")
        values = {name: self.eval_metrics[name].compute() for name in names}
        self.log_dict(values, on_step=False, on_epoch=True, prog_bar=True)
        for name in names:
            self.eval_metrics[name].reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        predictions = self._eval_step(batch, "test")
        self._update_test_scores(predictions, batch[1].long())

    # Left out of torch.compile: where the module is compiled as Lightning's docs show (trainer.test(
    # torch.compile(model))), Lightning compiles test_step too, and dynamo cannot trace the confusion matrix.
    @torch.compiler.disable
    def _update_test_scores(self, predictions: torch.Tensor, target: torch.Tensor) -> None:
        self.test_scores.update(predictions, target)

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")
        # Per-class scores and the confusion matrix are not scalars, so they are kept for the report instead of
        # being logged; compute() reduces them across processes.
        self.test_results = {name: value.cpu() for name, value in self.test_scores.compute().items()}
        self.test_scores.reset()

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.probabilities(self(inputs))

    @classmethod
    def load_from_checkpoint(cls, *args, **kwargs):
        """Lightning's, drawing nothing from the caller's random generator: building the network draws its initial
        weights, which the checkpoint's then replace."""
        with torch.random.fork_rng(devices=[]):
            return super().load_from_checkpoint(*args, **kwargs)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # A resumed run must draw the same shuffles and dropout masks as an uninterrupted one: the CPU generator
        # shuffles, and draws dropout masks on the CPU; on a GPU, the GPU's generators draw them.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_initialized():
            checkpoint["cuda_rng_states"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer: load_from_checkpoint, built from the checkpoint itself
            trainer = None
        if trainer is not None:
            # The data built this module (its classes and input): a checkpoint of other data would not fit it.
            refuse_other_data(trainer.ckpt_path or "the checkpoint", checkpoint.get("hyper_parameters") or {}, self)
            rename_data_state(checkpoint, type(trainer.datamodule))
        # Only a Trainer resuming a fit takes the saved random state: load_from_checkpoint (the predictors, the
        # export, the server) and validate / test / predict leave the caller's own alone.
        resuming = trainer is not None and trainer.state.fn == TrainerFn.FITTING
        if not resuming:
            return
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        cuda_states = checkpoint.get("cuda_rng_states")
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
