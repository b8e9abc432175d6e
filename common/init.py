"""Keras's default initialisation, which the reference figures depend on (docs/reference.md, section 3)."""

from torch import nn


def keras_init_(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases for dense and convolution layers, as Keras initialises them."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def keras_lstm_init_(lstm: nn.LSTM) -> None:
    """Keras's LSTM defaults: Glorot-uniform input kernels, orthogonal recurrent kernels, zero biases with the
    forget gate's at 1. PyTorch keeps two bias vectors per gate; their sum is what Keras's single bias is."""
    hidden = lstm.hidden_size
    for name, parameter in lstm.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(parameter)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(parameter)
        else:
            nn.init.zeros_(parameter)
            if name.startswith("bias_ih"):
                parameter.data[hidden : 2 * hidden] = 1.0  # gates are ordered input, forget, cell, output
