"""Several trained classifiers of one kind used as one: the mean of their class probabilities; and the model of
one checkpoint or more, as the predictors and the export load it."""

from pathlib import Path

import torch
from torch import nn

from common.checkpoints import read_checkpoint
from common.errors import ConfigError, DataError
from common.module import ClassifierModule, data_differences, refuse_other_data, rename_data_state


class EnsembleClassifier(ClassifierModule):
    """The members' mean class probabilities, behind the same steps, metrics and report as a single model.

    ``forward`` returns what the members' ``loss_and_predictions`` and ``probabilities`` take: logits whose
    probabilities are the mean (the logit of the mean probability for one sigmoid output, the log of the mean
    distribution for a softmax), so the loss is the cross-entropy of the averaged prediction. Built from trained
    members, for validate, test and predict; it is not trained.
    """

    def __init__(self, members: list[ClassifierModule]) -> None:
        kinds = {type(member) for member in members}
        if len(kinds) != 1:
            raise ValueError(f"an ensemble's members are of one kind, not {', '.join(k.__name__ for k in kinds)}.")
        if differ := data_differences(members):
            values = "; ".join(f"{name}: {', '.join(map(str, said))}" for name, said in differ.items())
            raise ValueError(
                f"the checkpoints of an ensemble must be trained on the same classes and inputs; these differ in {values}."
            )
        super().__init__(members[0].num_classes)
        self.members = nn.ModuleList(members)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        mean = torch.stack([m.probabilities(m(inputs)).float() for m in self.members]).mean(dim=0)
        if mean.dim() == 1:  # the probability of the positive class
            return torch.logit(mean, eps=1e-7)
        return mean.clamp_min(1e-12).log()

    def loss_and_predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.members[0].loss_and_predictions(logits, target)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return self.members[0].probabilities(logits)

    def data_hparams(self) -> dict:
        return self.members[0].data_hparams()  # the members' alike

    def export_metadata(self) -> dict[str, str]:
        """What all members say alike."""
        said = [member.export_metadata() for member in self.members]
        return {key: value for key, value in said[0].items() if all(s.get(key) == value for s in said)}

    def configure_optimizers(self):
        raise TypeError("an ensemble of trained models is evaluated, not trained.")


def load_models(paths: list[str | Path], model_class: type) -> tuple[ClassifierModule, list[dict]]:
    """The model of one checkpoint, or the ensemble of several (the mean of their class probabilities), in eval
    mode on the CPU, and the checkpoints, each file read once."""
    read = [read_checkpoint(path, model_class) for path in paths]
    models, checkpoints = [model for model, _ in read], [checkpoint for _, checkpoint in read]
    try:
        return (models[0] if len(models) == 1 else EnsembleClassifier(models)).eval(), checkpoints
    except ValueError as error:  # members of other classes or inputs
        raise DataError(str(error)) from None


def load_ensemble(paths: list[str], model: ClassifierModule, datamodule) -> EnsembleClassifier:
    """The ensemble of the checkpoints at ``paths``, in place of ``model``, which the data built: the members must
    have been trained on data that gives its classes and input, and ``datamodule`` is given the DataModule state
    they share, to read its data as they did (SST-2's tokenizer), so all must read it alike."""
    read = [read_checkpoint(path, type(model)) for path in paths]
    members = [member for member, _ in read]
    # The states as saved (Lightning keeps a DataModule's under its class name), not by rebuilding each member's
    # DataModule, which would read its training data again.
    datamodule_class = type(datamodule)
    for _, checkpoint in read:
        rename_data_state(checkpoint, datamodule_class)
    states = [checkpoint.get(datamodule_class.__qualname__, {}) for _, checkpoint in read]
    if any(state != states[0] for state in states):
        raise ConfigError(
            "the checkpoints of an ensemble must read their data alike, and these were trained with different "
            f"{datamodule_class.__name__} states (an SST-2 vocabulary of other data or num_words)."
        )
    try:
        ensemble = EnsembleClassifier(members)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    refuse_other_data(paths[0], members[0].hparams, model)
    datamodule.load_state_dict(states[0])
    return ensemble
