"""The reference CNN (SPEC section 1): two conv/pool blocks, a 64-unit dense layer, 10 classes; 121,930 parameters."""

import torch
import torch.nn.functional as F
from torch import nn

from common.init import keras_init_
from common.module import ClassifierModule

NUM_CLASSES = 10


class FashionCNN(ClassifierModule):
    """Conv 3x3x32 - pool - conv 3x3x64 - pool - dense 64 - dropout - dense 10, trained with Adam.

    Args:
        lr: Adam's learning rate.
        eps: Adam's epsilon; Keras's default 1e-7 where PyTorch's is 1e-8.
        dropout: dropout rate before the output layer.
    """

    def __init__(self, lr: float = 1e-3, eps: float = 1e-7, dropout: float = 0.5) -> None:
        super().__init__(NUM_CLASSES)
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 5 * 5, 64),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(64, NUM_CLASSES),
        )
        self.net.apply(keras_init_)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, 10) for images of shape (N, 1, 28, 28) with pixels in [0, 1]."""
        return self.net(images)

    def loss_and_predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.cross_entropy(logits, target), logits.argmax(dim=1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, eps=self.hparams.eps)
