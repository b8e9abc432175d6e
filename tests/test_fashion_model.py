import torch
from torch import nn

from fashion_cnn.model import FashionCNN


def test_reference_layer_stack():
    model = FashionCNN()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 121_930
    assert [type(m) for m in model.net] == [
        nn.Conv2d,
        nn.MaxPool2d,
        nn.ReLU,
        nn.Conv2d,
        nn.MaxPool2d,
        nn.ReLU,
        nn.Flatten,
        nn.Linear,
        nn.ReLU,
        nn.Dropout,
        nn.Linear,
    ]
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


def test_speed_settings_compute_what_the_reference_order_and_layout_compute():
    # ReLU after pooling, channels-last and fused Adam against the reference's order, NCHW and the default Adam.
    torch.manual_seed(0)
    fast = FashionCNN()
    plain = FashionCNN(channels_last=False, fused=False)
    plain.load_state_dict(fast.state_dict())
    layers = list(plain.net)
    layers[1], layers[2], layers[4], layers[5] = layers[2], layers[1], layers[5], layers[4]
    plain.net = nn.Sequential(*layers)  # conv - relu - pool, as the reference has it
    fast_optimizer, plain_optimizer = fast.configure_optimizers(), plain.configure_optimizers()
    assert fast_optimizer.defaults["fused"] and not plain_optimizer.defaults["fused"]
    images, labels = torch.rand(16, 1, 28, 28) - 0.3, torch.randint(0, 10, (16,))
    for model, optimizer in ((fast, fast_optimizer), (plain, plain_optimizer)):
        model.eval()  # no dropout: the two must agree to rounding
        for _ in range(3):
            loss, _ = model.loss_and_predictions(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_label_smoothing_applies_to_the_training_loss_only():
    model = FashionCNN(label_smoothing=0.2)
    logits, target = torch.tensor([[4.0, 0.0, *[0.0] * 8]]), torch.tensor([0])
    plain = torch.nn.functional.cross_entropy(logits, target)
    smoothed = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.2)
    model.train()
    assert torch.isclose(model.loss_and_predictions(logits, target)[0], smoothed)
    model.eval()
    assert torch.isclose(model.loss_and_predictions(logits, target)[0], plain) and smoothed > plain
