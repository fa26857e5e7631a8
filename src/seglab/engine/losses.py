"""Loss functions selected by `loss=`: ce, dice, focal and ce_dice.

Dice and focal come from segmentation-models-pytorch; this module adds class-weighted
cross-entropy and a weighted sum of terms. Every loss maps (logits [N, C, H, W], target
[N, H, W]) to a scalar and skips pixels labelled `ignore_index`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def cross_entropy(ignore_index: int = 255,
                  class_weights: Sequence[float] | None = None) -> nn.CrossEntropyLoss:
    """Pixel-wise cross-entropy, optionally weighting each class."""
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(list(class_weights), dtype=torch.float32)
        if weight.ndim != 1 or bool((weight < 0).any()):
            raise ValueError(f"loss.class_weights must be a list of non-negative numbers, "
                             f"got {list(class_weights)}")
    return nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)


class WeightedSum(nn.Module):
    """Sum of named loss terms, each scaled by its weight (e.g. CE + Dice)."""

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float]) -> None:
        super().__init__()
        if set(terms) != set(weights):
            raise ValueError(f"loss terms {sorted(terms)} and loss weights {sorted(weights)} "
                             "must name the same terms")
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())
