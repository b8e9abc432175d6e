"""The figures of an epoch that ends, as the callbacks that record them (report, curves) read them."""

import lightning as L

FIGURES = ("train_loss", "train_acc", "val_loss", "val_acc")


class EpochFigures(L.Callback):
    """A callback that reads the ending epoch's ``train_loss``, ``train_acc``, ``val_loss`` and ``val_acc`` as any
    LightningModule logs them (``self.log``, per epoch), the validation figures only for an epoch that validated:
    Lightning keeps the last validation's through epochs that do not validate (``check_val_every_n_epoch``,
    ``limit_val_batches 0``), and they count only for the epoch that computed them, as in Keras's history.

    A module that logs its own training figures at its epoch end, after the callbacks' (ClassifierModule: sums
    kept on the device, logged once an epoch), says so with an ``epoch_figures()`` method of its own."""

    def __init__(self) -> None:
        self.validated_epoch: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_epoch = trainer.current_epoch

    def epoch_figures(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Every process must ask, the first time in an epoch (a module's own figures are reduced across them)."""
        metrics = trainer.callback_metrics
        if callable(own := getattr(pl_module, "epoch_figures", None)):
            figures = own()
        else:
            figures = {key: float(metrics[key]) for key in FIGURES[:2] if key in metrics}
        if self.validated_epoch == trainer.current_epoch:
            figures |= {key: float(metrics[key]) for key in FIGURES[2:] if key in metrics}
        return figures
