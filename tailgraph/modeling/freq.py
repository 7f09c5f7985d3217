"""Frequency statistics and the FREQ baseline (Neural Motifs' "predicate prior given classes")."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from tailgraph.modeling.types import ContextModel, ContextOutput, RelationInputs
from tailgraph.stats import pair_predicate_counts
from tailgraph.structures import SceneGraph

__all__ = ["pair_predicate_counts", "FrequencyBaseline"]


class FrequencyBaseline(ContextModel):
    """FREQ: the predicate distribution given subject and object class, from training counts.

    It has no trainable parameters; it plays the role of a context model whose
    ``freq_logits`` are the log of the smoothed empirical distribution (pairs never seen fall
    back to the global predicate distribution). Use it in :class:`RelationModel` with
    ``head=None``.

    Args:
        num_classes: ``C``.
        num_predicates: ``R`` (column 0 = background).
        pair_counts: optional ``[C, C, R]`` training counts (see :func:`pair_predicate_counts`;
            injected by :func:`tailgraph.modeling.builder.build_model`); set later with
            :meth:`fit` otherwise.
        smoothing: pseudo-count added to each cell.

    Shapes:
        ``forward(inp) -> ContextOutput(pair_feats [P, 0], freq_logits [P, R])``.
    """

    log_probs: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        num_predicates: int,
        pair_counts: torch.Tensor | None = None,
        smoothing: float = 1e-3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_predicates = num_predicates
        self.smoothing = smoothing
        self.register_buffer(
            "log_probs",
            torch.full(
                (num_classes, num_classes, num_predicates),
                -float(torch.log(torch.tensor(float(num_predicates)))),
            ),
        )
        if pair_counts is not None:
            self.set_counts(torch.as_tensor(pair_counts))

    def set_counts(self, counts: torch.Tensor) -> None:
        counts = counts.to(torch.float64)
        total = counts.sum(dim=(0, 1))
        prior = (total + self.smoothing) / (total + self.smoothing).sum()
        cell = counts.sum(dim=2, keepdim=True)
        # Smoothed with the global prior so unseen class pairs get the marginal distribution.
        probs = (counts + self.smoothing * prior * self.num_predicates) / (
            cell + self.smoothing * self.num_predicates
        )
        self.log_probs.copy_(torch.log(probs).to(self.log_probs.dtype))

    def fit(self, graphs: Iterable[SceneGraph]) -> FrequencyBaseline:
        self.set_counts(pair_predicate_counts(graphs, self.num_classes, self.num_predicates))
        return self

    def forward(self, inp: RelationInputs) -> ContextOutput:
        if inp.labels is None:
            raise ValueError("FrequencyBaseline needs object labels")
        s = inp.labels[inp.pairs[:, 0]]
        o = inp.labels[inp.pairs[:, 1]]
        logits = self.log_probs[s, o]
        return ContextOutput(pair_feats=logits.new_zeros((logits.shape[0], 0)), freq_logits=logits)
