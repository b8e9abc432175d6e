import torch
from torch import nn

from fashion_cnn.model import FashionCNN


def test_reference_layer_stack():
    model = FashionCNN()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 121_930
    assert [type(m) for m in model.net] == [
        nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d,
        nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear,
    ]  # fmt: skip
    assert model.net[9].p == 0.5
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_keras_initialisation_and_adam_epsilon():
    model = FashionCNN()
    for layer in (model.net[0], model.net[3], model.net[7], model.net[10]):
        assert torch.count_nonzero(layer.bias) == 0
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        limit = (6 / (fan_in + fan_out)) ** 0.5  # Glorot-uniform bound
        assert layer.weight.abs().max() <= limit and layer.weight.abs().max() > 0.9 * limit
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["eps"] == 1e-7
    assert optimizer.defaults["betas"] == (0.9, 0.999)
