"""SGCls object classifier on RoI features (for context models that do not classify objects)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ObjectClassifier"]


class ObjectClassifier(nn.Module):
    """MLP from visual RoI features to object-class logits (background included).

    Used by :class:`tailgraph.modeling.relation_model.RelationModel` in SGCls when the context
    model has no object decoder of its own (the pairwise MLP); in PredCls it is not called.

    Args:
        in_dim: RoI feature size.
        num_classes: ``C`` including background.
        hidden_dim: hidden width (0 = a single linear layer).

    Shapes:
        ``forward(obj_feats [N, in_dim]) -> logits [N, C]``.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 256) -> None:
        super().__init__()
        if hidden_dim:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden_dim),
                nn.ReLU(inplace=True),
                nn.Linear(hidden_dim, num_classes),
            )
        else:
            self.net = nn.Linear(in_dim, num_classes)

    def forward(self, obj_feats: torch.Tensor) -> torch.Tensor:
        return self.net(obj_feats)
