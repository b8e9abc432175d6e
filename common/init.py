"""Keras's default initialisation, which the reference figures depend on (SPEC section 3)."""

from torch import nn


def keras_init_(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases for dense and convolution layers, as Keras initialises them."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
