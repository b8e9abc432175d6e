"""The reference CNN (docs/reference.md, section 1): two conv/pool blocks, a 64-unit dense layer, 10 classes;
121,930 parameters.
Its options (batch norm, widths, a one-cycle schedule) build the improved configs' variants of it; its input and
output follow the data (a folder's image size, channels and classes)."""

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import require
from common.init import keras_init_
from common.module import ClassifierModule
from fashion_cnn.data import CLASS_NAMES


class FashionCNN(ClassifierModule):
    """Conv 3x3x32 - pool - conv 3x3x64 - pool - dense 64 - dropout - dense 10, trained with Adam.

    Args:
        lr: Adam's learning rate; with ``one_cycle``, the peak of the schedule.
        eps: Adam's epsilon; Keras's default 1e-7 where PyTorch's is 1e-8.
        dropout: dropout rate before the output layer.
        channels_last: keep the convolutions' weights and inputs channels-last (NHWC), which oneDNN's CPU kernels
            for convolution and pooling run faster than NCHW; the same computation, equal up to float rounding
            (the sums run in another order).
        fused: use Adam's fused kernel (one pass over all parameters); the same update.
        channels: output channels of the two convolutions.
        dense_size: units of the hidden dense layer.
        batch_norm: batch normalisation after each pooling and the hidden dense layer (not in the reference).
        one_cycle: a one-cycle learning-rate schedule over the whole fit, stepped every batch (not in the
            reference, which keeps the rate constant). Its length is fixed when training starts: a run resumed
            with a larger ``max_epochs`` is refused.
        weight_decay: decoupled weight decay (AdamW's), 0 in the reference.
        label_smoothing: in training, the target puts ``1 - label_smoothing`` on the true class and spreads the
            rest over all ten, so confident logits stop being pushed further; validation and test losses are the
            plain cross-entropy.
        class_names: the classes, one output each; set from the data (``data.class_names``), and kept in the
            checkpoint for prediction.
        in_channels: the images' channels (1: grayscale, 3: RGB); set from ``data.image_channels``.
        image_size: the images' height and width; set from ``data.image_size``.
    """

    DATA_HPARAMS = ("class_names", "in_channels", "image_size")

    def __init__(
        self,
        lr: float = 1e-3,
        eps: float = 1e-7,
        dropout: float = 0.5,
        channels_last: bool = True,
        fused: bool = True,
        channels: tuple[int, int] = (32, 64),
        dense_size: int = 64,
        batch_norm: bool = False,
        one_cycle: bool = False,
        weight_decay: float = 0.0,
        label_smoothing: float = 0.0,
        class_names: tuple[str, ...] = CLASS_NAMES,
        in_channels: int = 1,
        image_size: int = 28,
    ) -> None:
        super().__init__(len(class_names))
        class_names = list(class_names)  # recorded as a plain list in hparams.yaml, not a Python tuple
        self.save_hyperparameters()
        first, second = channels
        require(min(first, second, dense_size) >= 1, "channels and dense_size must be at least 1.")
        require(0 <= dropout < 1, f"dropout must be in [0, 1), not {dropout}.")
        require(lr > 0, f"lr must be positive, not {lr}.")
        require(0 <= label_smoothing < 1, f"label_smoothing must be in [0, 1), not {label_smoothing}.")
        require(len(class_names) >= 2, f"a classifier needs at least two classes, not {len(class_names)}.")
        side = ((image_size - 2) // 2 - 2) // 2  # after two valid 3x3 convolutions, each followed by a 2x2 pool
        require(side >= 1, f"image_size must be at least 10, not {image_size}.")

        def norm(layer: type[nn.Module], width: int) -> list[nn.Module]:
            return [layer(width)] if batch_norm else []

        # Each ReLU comes after its pooling, where the reference has it before: the two commute (both are
        # monotone), so values and gradients are the same, with the ReLU on a quarter of the elements. Batch
        # norm, where asked for, also comes after the pooling, for the same saving.
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, first, kernel_size=3, bias=not batch_norm),
            nn.MaxPool2d(2),
            *norm(nn.BatchNorm2d, first),
            nn.ReLU(),
            nn.Conv2d(first, second, kernel_size=3, bias=not batch_norm),
            nn.MaxPool2d(2),
            *norm(nn.BatchNorm2d, second),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(second * side * side, dense_size, bias=not batch_norm),
            *norm(nn.BatchNorm1d, dense_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense_size, len(class_names)),
        )
        self.net.apply(keras_init_)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, classes) for images of shape (N, in_channels, image_size, image_size) with pixels in
        [0, 1]."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def loss_and_predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        smoothing = self.hparams.label_smoothing if self.training else 0.0
        return F.cross_entropy(logits, target, label_smoothing=smoothing), logits.argmax(dim=1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def export_metadata(self) -> dict[str, str]:
        # What a reader needs to turn an image file into the model's input.
        input_shape = {"channels": str(self.hparams.in_channels), "image_size": str(self.hparams.image_size)}
        return super().export_metadata() | input_shape

    def configure_optimizers(self):
        hparams = self.hparams
        optimizer_class = torch.optim.AdamW if hparams.weight_decay else torch.optim.Adam
        optimizer = optimizer_class(
            self.parameters(), lr=hparams.lr, eps=hparams.eps, weight_decay=hparams.weight_decay, fused=hparams.fused
        )
        return self.one_cycle(optimizer) if hparams.one_cycle else optimizer
