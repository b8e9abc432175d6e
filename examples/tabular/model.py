"""Dense - ReLU - dropout - dense, trained with Adam: Keras's

Sequential([Dense(hidden_size, activation="relu"), Dropout(dropout), Dense(num_classes, activation="softmax")])
model.compile(optimizer=Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""

import torch
import torch.nn.functional as F
from torch import nn

from common.init import keras_init_
from common.module import ClassifierModule


class TableMLP(ClassifierModule):
    """Args: num_features (columns before the label), num_classes (linked to the data's class names),
    hidden_size, dropout, lr (Adam's; epsilon 1e-7, as Keras)."""

    def __init__(
        self, num_features: int = 4, num_classes: int = 2, hidden_size: int = 16, dropout: float = 0.2, lr: float = 1e-3
    ) -> None:
        super().__init__(num_classes)
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_size, num_classes)
        )
        self.net.apply(keras_init_)  # Glorot-uniform kernels, zero biases

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)  # logits: the softmax is in the loss

    def loss_and_predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.cross_entropy(logits, target), logits.argmax(dim=1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, eps=1e-7)
