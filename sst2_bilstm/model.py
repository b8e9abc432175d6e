"""The reference stacked BiLSTM (docs/reference.md, section 2): 3,128,449 parameters in PyTorch (Keras counts
3,126,913)."""

import contextlib
import functools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from common.errors import require
from common.init import keras_init_, keras_lstm_init_
from common.module import ClassifierModule
from sst2_bilstm.data import CLASS_NAMES


@functools.cache
def cpu_runs_bf16_lstm() -> bool:
    """Whether this CPU runs an LSTM under bf16 autocast. oneDNN's bf16 LSTM needs AVX-512; on other x86-64 CPUs
    it refuses ("could not create a primitive descriptor"). Asked of the machine itself, with a one-step LSTM."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            nn.LSTM(1, 1)(torch.zeros(1, 1, 1))
        return True
    except RuntimeError:
        return False


def lstm_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Where bf16 autocast is on for a CPU that cannot run LSTMs in bf16, a context that runs them in fp32 (the
    rest of the model stays in bf16); elsewhere, nothing changes."""
    bf16 = (
        device.type == "cpu" and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )
    if bf16 and not cpu_runs_bf16_lstm():
        return torch.autocast("cpu", enabled=False)
    return contextlib.nullcontext()


@torch.library.custom_op("sst2_bilstm::packed_bidirectional", mutates_args=())
def packed_bidirectional(
    inputs: torch.Tensor, lengths: torch.Tensor, weights: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-layer bidirectional LSTM (batch first, ``weights`` in ``nn.LSTM``'s order) over the packed sequences of
    ``inputs`` (N, L, C) cut at ``lengths``: its outputs (N, L, 2H), zero past each length, and its last states
    (2, N, H). One operator for torch.export, which cannot trace packed sequences; the export writes it as ONNX's
    LSTM with its ``sequence_lens`` (sst2_bilstm.export)."""
    lstm = nn.LSTM(inputs.shape[2], weights[1].shape[1], batch_first=True, bidirectional=True, device="meta")
    named = dict(zip((name for name, _ in lstm.named_parameters()), weights))
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, (last_states, _) = torch.func.functional_call(lstm, named, (packed,))
    return pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])[0], last_states


@packed_bidirectional.register_fake
def _(inputs: torch.Tensor, lengths: torch.Tensor, weights: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = weights[1].shape[1]
    return inputs.new_empty(*inputs.shape[:2], 2 * hidden), inputs.new_empty(2, inputs.shape[0], hidden)


class SST2BiLSTM(ClassifierModule):
    """Embedding - SpatialDropout1D - BiLSTM (sequences) - dropout - BiLSTM (last state) - dropout - dense ReLU -
    dropout - one logit, trained with Adam and binary cross-entropy, the learning rate halved on plateaus.

    Args:
        vocab_size: embedding rows; the tokenizer's ``num_words``.
        embedding_dim: embedding width.
        hidden_sizes: units per direction of the first and second bidirectional LSTM.
        dense_size: units of the dense layer before the output.
        spatial_dropout: rate of whole embedding channels dropped for the whole sequence.
        lstm_dropout: dropout rate after each LSTM.
        dense_dropout: dropout rate after the dense layer.
        lr: Adam's learning rate.
        eps: Adam's epsilon; Keras's default 1e-7 where PyTorch's is 1e-8.
        plateau_factor: factor applied to the learning rate when ``val_loss`` stops improving.
        plateau_patience: epochs without improvement before the learning rate drops, counted as Keras does
            (Keras drops on the ``patience``-th such epoch, PyTorch one epoch later, so PyTorch gets one less).
        min_lr: floor of the learning rate.
        packed: read only each sentence's real tokens (packed sequences), so the second LSTM's last states are
            those at the sentence's true end; the reference reads the padding too.
        pooling: what the head reads of the second LSTM: ``last``, its last states (the reference); ``max``, the
            maximum over the sentence's real tokens of its outputs; ``mean_max``, their mean and maximum side by
            side. Pooling reads every word's state instead of asking the last one to remember the sentence.
        word_dropout: rate of whole words (their embedding vectors) dropped in training, beside the channels that
            ``spatial_dropout`` drops.
        label_smoothing: the targets become ``label_smoothing / 2`` and ``1 - label_smoothing / 2`` instead of
            0 and 1, so confident logits stop being pushed further.
        one_cycle: a one-cycle learning-rate schedule over the whole fit, peaking at ``lr``, stepped every batch,
            instead of the plateau schedule (not in the reference). A run resumed with a larger ``max_epochs`` is
            refused: the schedule's length is fixed when training starts.
        fused: use Adam's fused kernel: the same update in one pass over the parameters, much faster on a CPU
            for this model's 3.1M parameters (docs/speed.md). False gives PyTorch's default (a multi-tensor loop).
        class_names: the classes; set from the data (``data.class_names``) and kept in the checkpoint. Two (the
            reference's negative and positive) give one sigmoid output and binary cross-entropy; more give an
            output per class, a softmax and cross-entropy, the rest of the network unchanged.
    """

    DATA_HPARAMS = ("class_names", "vocab_size")

    def __init__(
        self,
        vocab_size: int = 10_000,
        embedding_dim: int = 256,
        hidden_sizes: tuple[int, int] = (128, 64),
        dense_size: int = 64,
        spatial_dropout: float = 0.2,
        lstm_dropout: float = 0.3,
        dense_dropout: float = 0.5,
        lr: float = 1e-3,
        eps: float = 1e-7,
        plateau_factor: float = 0.5,
        plateau_patience: int = 3,
        min_lr: float = 1e-7,
        packed: bool = False,
        pooling: Literal["last", "max", "mean_max"] = "last",
        word_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        one_cycle: bool = False,
        fused: bool = True,
        class_names: tuple[str, ...] = CLASS_NAMES,
    ) -> None:
        require(len(class_names) >= 2, f"a classifier needs at least two classes, not {len(class_names)}.")
        super().__init__(len(class_names))
        class_names = list(class_names)  # recorded as a plain list in hparams.yaml, not a Python tuple
        self.save_hyperparameters()
        outputs = 1 if len(class_names) == 2 else len(class_names)
        first, second = hidden_sizes
        require(vocab_size >= 3, f"vocab_size must be at least 3 (padding, unknown, one word), not {vocab_size}.")
        require(min(embedding_dim, first, second, dense_size) >= 1, "layer sizes must be at least 1.")
        for name, rate in (
            ("spatial_dropout", spatial_dropout),
            ("lstm_dropout", lstm_dropout),
            ("dense_dropout", dense_dropout),
            ("word_dropout", word_dropout),
        ):
            require(0 <= rate < 1, f"{name} must be in [0, 1), not {rate}.")
        require(lr > 0, f"lr must be positive, not {lr}.")
        require(0 <= label_smoothing < 1, f"label_smoothing must be in [0, 1), not {label_smoothing}.")
        require(0 < plateau_factor < 1, f"plateau_factor must be in (0, 1), not {plateau_factor}.")
        require(plateau_patience >= 1, f"plateau_patience must be at least 1, not {plateau_patience}.")
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.spatial_dropout = nn.Dropout1d(spatial_dropout)
        self.lstm1 = nn.LSTM(embedding_dim, first, batch_first=True, bidirectional=True)
        self.lstm2 = nn.LSTM(2 * first, second, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(
            nn.Dropout(lstm_dropout),
            nn.Linear((4 if pooling == "mean_max" else 2) * second, dense_size),
            nn.ReLU(),
            nn.Dropout(dense_dropout),
            nn.Linear(dense_size, outputs),
        )
        self.lstm_dropout = nn.Dropout(lstm_dropout)
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        keras_lstm_init_(self.lstm1)
        keras_lstm_init_(self.lstm2)
        self.head.apply(keras_init_)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """One logit per sequence, shape (N,), for token ids of shape (N, L); with more than two classes, one per
        class, (N, classes). Unless ``packed``, padding is read like any token, as in the reference, which has no
        mask."""
        embedded = self.embedding(tokens)
        # Dropout1d drops channels of (N, C, L): whole embedding dimensions for the whole sequence.
        embedded = self.spatial_dropout(embedded.transpose(1, 2)).transpose(1, 2)
        if self.hparams.word_dropout and self.training:
            kept = F.dropout(embedded.new_ones((*embedded.shape[:2], 1)), self.hparams.word_dropout)
            embedded = embedded * kept
        lengths = None
        if self.hparams.packed or self.hparams.pooling != "last":  # the reference reads every position
            # Padding (id 0) only ever follows the words; an empty sentence still counts one step.
            lengths = tokens.ne(0).sum(dim=1).clamp(min=1)
        with lstm_precision(tokens.device):
            outputs, last_hidden = self._second_lstm(embedded, lengths)
        if self.hparams.pooling == "last":
            # (directions, N, H): the forward pass ends at the last (real) step, the backward at the first.
            return self._logits(torch.cat([last_hidden[0], last_hidden[1]], dim=1))
        real = torch.arange(tokens.shape[1], device=tokens.device) < lengths.unsqueeze(1)  # (N, L)
        features = [outputs.masked_fill(~real.unsqueeze(2), float("-inf")).amax(dim=1)]
        if self.hparams.pooling == "mean_max":
            mean = (outputs * real.unsqueeze(2)).sum(dim=1) / lengths.unsqueeze(1)
            features.insert(0, mean.to(features[0].dtype))
        return self._logits(torch.cat(features, dim=1))

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.head(features)
        return logits.squeeze(1) if self.num_classes == 2 else logits

    def _second_lstm(
        self, embedded: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The second LSTM's outputs (N, L, 2H; None where only its last states are read) and last states."""
        if torch.compiler.is_exporting():
            # torch.export cannot trace packed sequences, and its nn.LSTM fixes the length to the example's: one
            # operator per bidirectional LSTM, which the export writes as ONNX's LSTM. The reference reads all.
            if not self.hparams.packed:
                lengths = torch.full_like(embedded[:, 0, 0], embedded.shape[1], dtype=torch.long)
            sequence, _ = packed_bidirectional(embedded, lengths, list(self.lstm1.parameters()))
            return packed_bidirectional(self.lstm_dropout(sequence), lengths, list(self.lstm2.parameters()))
        if not self.hparams.packed:
            sequence, _ = self.lstm1(embedded)
            outputs, (last_hidden, _) = self.lstm2(self.lstm_dropout(sequence))
            return outputs, last_hidden
        # pack_padded_sequence takes its lengths on the host.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        sequence, _ = self.lstm1(packed)
        outputs, (last_hidden, _) = self.lstm2(sequence._replace(data=self.lstm_dropout(sequence.data)))
        if self.hparams.pooling == "last":
            return None, last_hidden
        return pad_packed_sequence(outputs, batch_first=True, total_length=embedded.shape[1])[0], last_hidden

    def loss_and_predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.num_classes > 2:
            smoothing = self.hparams.label_smoothing if self.training else 0.0
            return F.cross_entropy(logits, target, label_smoothing=smoothing), logits.argmax(dim=1)
        smoothed = target.float()
        if self.hparams.label_smoothing and self.training:
            smoothed = smoothed * (1 - self.hparams.label_smoothing) + self.hparams.label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, smoothed), (logits > 0).long()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.num_classes == 2 else logits.softmax(dim=1)

    def export_metadata(self) -> dict[str, str]:
        # A packed model reads no padding, so a reader may cut the padding after the longest sentence of a batch.
        return super().export_metadata() | {"reads_padding": str(not self.hparams.packed).lower()}

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, eps=self.hparams.eps, fused=self.hparams.fused
        )
        if self.hparams.one_cycle:
            return self.one_cycle(optimizer)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=self.hparams.plateau_factor,
            patience=self.hparams.plateau_patience - 1,
            threshold=1e-4,  # Keras's min_delta: an absolute improvement
            threshold_mode="abs",
            min_lr=self.hparams.min_lr,
            eps=0.0,  # Keras applies any reduction; PyTorch by default ignores those under 1e-8
        )
        # Stepped on val_loss at the end of each epoch that validates: Lightning's documentation asks a schedule
        # that watches a validation figure for a frequency that is a multiple of check_val_every_n_epoch (None:
        # validation by steps, seen at every epoch's end). Not strict: where nothing validates (limit_val_batches
        # 0), Lightning says once that it has nothing to watch, and training goes on.
        try:
            every = self.trainer.check_val_every_n_epoch or 1
        except RuntimeError:  # not attached to a Trainer
            every = 1
        schedule = {
            "scheduler": scheduler,
            "interval": "epoch",
            "frequency": every,
            "monitor": "val_loss",
            "strict": False,
        }
        return {"optimizer": optimizer, "lr_scheduler": schedule}
