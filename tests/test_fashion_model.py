import lightning as L
import torch
from torch import nn

from fashion_cnn.data import FashionMNISTDataModule
from fashion_cnn.model import FashionCNN


def test_reference_layer_stack():
    model = FashionCNN()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 121_930
    assert [type(m) for m in model.net] == [
        nn.Conv2d, nn.MaxPool2d, nn.ReLU, nn.Conv2d, nn.MaxPool2d, nn.ReLU,
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


def test_resuming_an_nchw_checkpoint_channels_last_trains_as_nchw_does(fashion_dir, tmp_path):
    # Checkpoints from before channels-last was the default hold NCHW Adam moments; the fused kernel must not pair
    # them with channels-last weights element by element in memory order.
    data = FashionMNISTDataModule(data_dir=str(fashion_dir), download=False, batch_size=16)

    def fit(model, epochs, ckpt_path=None):
        trainer = L.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        return trainer

    torch.manual_seed(0)
    fit(FashionCNN(channels_last=False), 1).save_checkpoint(tmp_path / "nchw.ckpt")
    models = FashionCNN(channels_last=False), FashionCNN()
    trainers = [fit(model, 2, tmp_path / "nchw.ckpt") for model in models]
    for parameter, state in trainers[1].optimizers[0].state.items():
        assert state["exp_avg"].stride() == state["exp_avg_sq"].stride() == parameter.stride()
    # Rounding leaves ~1e-5 between the two layouts after these steps; mispaired moments leave ~5e-3.
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4, msg=name)
