"""The linear predicate head."""

from __future__ import annotations

import torch
from torch import nn

from tailgraph.modeling.types import HeadOutput, PredicateHead

__all__ = ["LinearHead"]


class LinearHead(PredicateHead):
    """A linear classifier over predicates (background included when the vocabulary has one).

    Args:
        in_dim: pair feature size.
        num_predicates: number of outputs ``R``.
        multilabel: rank with sigmoid instead of softmax (AG spatial / contacting).

    Shapes:
        ``forward(x [P, in_dim]) -> HeadOutput(logits [P, R], probs [P, R])``.
    """

    def __init__(self, in_dim: int, num_predicates: int, multilabel: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, num_predicates)
        self.multilabel = multilabel
        self.act = "sigmoid" if multilabel else "softmax"

    def forward(self, x: torch.Tensor) -> HeadOutput:
        logits = self.fc(x)
        probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)
        return HeadOutput(logits=logits, probs=probs)
