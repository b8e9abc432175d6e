import torch
from torch import nn

from sst2_bilstm.model import SST2BiLSTM


def test_reference_layer_stack():
    model = SST2BiLSTM()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 3_128_449
    assert model.embedding.weight.shape == (10_000, 256)
    assert (model.lstm1.hidden_size, model.lstm2.hidden_size) == (128, 64)
    assert model.lstm1.bidirectional and model.lstm2.bidirectional
    model.eval()
    assert model(torch.randint(0, 10_000, (3, 50))).shape == (3,)


def test_keras_initialisation():
    model = SST2BiLSTM()
    assert model.embedding.weight.abs().max() <= 0.05
    for lstm in (model.lstm1, model.lstm2):
        h = lstm.hidden_size
        for suffix in ("l0", "l0_reverse"):
            bias = getattr(lstm, f"bias_ih_{suffix}") + getattr(lstm, f"bias_hh_{suffix}")
            assert bias[h : 2 * h].eq(1).all() and bias[:h].eq(0).all() and bias[2 * h :].eq(0).all()
            recurrent = getattr(lstm, f"weight_hh_{suffix}")
            assert torch.allclose(recurrent.T @ recurrent, torch.eye(h), atol=1e-5)
    for layer in (m for m in model.head if isinstance(m, nn.Linear)):
        assert torch.count_nonzero(layer.bias) == 0


def test_spatial_dropout_drops_whole_embedding_channels():
    model = SST2BiLSTM(spatial_dropout=0.5).train()
    embedded = torch.ones(4, 50, 256)
    dropped = model.spatial_dropout(embedded.transpose(1, 2)).transpose(1, 2)
    zero_channels = dropped.eq(0).all(dim=1)  # (N, C): zero over the whole sequence
    assert zero_channels.any() and torch.equal(dropped.eq(0), zero_channels.unsqueeze(1).expand_as(dropped))


def test_optimizer_and_plateau_schedule_follow_keras():
    model = SST2BiLSTM()
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert optimizer.defaults["eps"] == 1e-7 and optimizer.defaults["lr"] == 1e-3
    assert config["lr_scheduler"]["monitor"] == "val_loss" and config["lr_scheduler"]["interval"] == "epoch"
    scheduler.step(1.0)  # best so far
    for _ in range(3):  # three epochs without improvement
        assert optimizer.param_groups[0]["lr"] == 1e-3
        scheduler.step(1.0)
    assert optimizer.param_groups[0]["lr"] == 5e-4  # Keras: on the third epoch without improvement


def test_packed_reads_only_the_real_tokens():
    torch.manual_seed(0)
    small = {"embedding_dim": 16, "hidden_sizes": (8, 4), "dense_size": 8}
    reference, packed = SST2BiLSTM(**small).eval(), SST2BiLSTM(**small, packed=True).eval()
    packed.load_state_dict(reference.state_dict())
    full = torch.randint(2, 10_000, (3, 50))
    assert torch.allclose(packed(full), reference(full), atol=1e-6)  # nothing to skip: the same computation
    short, long = torch.zeros(2, 12, dtype=torch.long), torch.zeros(2, 50, dtype=torch.long)
    short[:, :7] = long[:, :7] = full[:2, :7]
    assert torch.allclose(packed(short), packed(long), atol=1e-6)  # however much padding follows
    assert not torch.allclose(reference(short), reference(long), atol=1e-6)  # the reference reads it
    assert packed(torch.zeros(1, 50, dtype=torch.long)).isfinite().all()  # an empty sentence still works


def test_pooling_reads_every_real_token_and_ignores_padding():
    torch.manual_seed(0)
    small = {"embedding_dim": 16, "hidden_sizes": (8, 4), "dense_size": 8}
    tokens = torch.zeros(2, 50, dtype=torch.long)
    tokens[:, :7] = torch.randint(2, 10_000, (2, 7))
    for pooling in ("max", "mean_max"):
        model = SST2BiLSTM(**small, packed=True, pooling=pooling).eval()
        assert model.head[1].in_features == (16 if pooling == "mean_max" else 8)
        assert torch.allclose(model(tokens), model(tokens[:, :7]), atol=1e-6)  # padding never pooled
        changed = tokens.clone()
        changed[:, 0] = 5  # the first word reaches the pooled features through both directions
        assert not torch.allclose(model(changed), model(tokens))
        assert model(torch.zeros(1, 50, dtype=torch.long)).isfinite().all()


def test_word_dropout_drops_whole_words_in_training_only():
    model = SST2BiLSTM(word_dropout=0.5, spatial_dropout=0.0)
    seen = {}
    model.lstm1.register_forward_hook(lambda module, args, output: seen.update(inputs=args[0]))
    tokens = torch.randint(2, 10_000, (4, 50))
    model.train()(tokens)
    dropped_words = seen["inputs"].eq(0).all(dim=2)  # (N, L): a word's whole vector is zero
    assert 0 < dropped_words.float().mean() < 1 and torch.equal(seen["inputs"].eq(0).any(dim=2), dropped_words)
    model.eval()(tokens)
    assert not seen["inputs"].eq(0).all(dim=2).any()


def test_label_smoothing_moves_training_targets_only():
    model = SST2BiLSTM(label_smoothing=0.2)
    logits, target = torch.tensor([3.0, -3.0]), torch.tensor([1.0, 0.0])
    smoothed = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.9, 0.1]))
    assert torch.allclose(model.train().loss_and_predictions(logits, target)[0], smoothed)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(model.eval().loss_and_predictions(logits, target)[0], plain)
