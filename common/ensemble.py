"""Several trained classifiers of one kind used as one: the mean of their class probabilities."""

import torch
from torch import nn

from common.module import ClassifierModule


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

    def configure_optimizers(self):
        raise TypeError("an ensemble of trained models is evaluated, not trained.")
