"""Frequency statistics and the FREQ baseline (Neural Motifs' "predicate prior given classes")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from tailgraph.modeling.types import ContextOutput, RelationInputs
from tailgraph.structures import Predictions, SceneGraph

__all__ = ["pair_predicate_counts", "FrequencyBaseline", "ag_frequency_predictions"]


def pair_predicate_counts(
    graphs: Iterable[SceneGraph],
    num_classes: int,
    num_predicates: int,
    include_background: bool = True,
) -> torch.Tensor:
    """Count predicates per (subject class, object class).

    Args:
        graphs: training scene graphs (predicate 0 = background / no relation).
        num_classes: number of object classes ``C`` (incl. background).
        num_predicates: number of predicates ``R`` (incl. background).
        include_background: also count, in column 0, every ordered pair of distinct boxes of an
            image that has no annotated relation (as Neural Motifs' ``bg_matrix``).
    Returns:
        ``[C, C, R]`` int64 counts.
    """
    counts = torch.zeros(num_classes * num_classes * num_predicates, dtype=torch.int64)
    for g in graphs:
        labels = g.labels
        rel = g.relations
        if rel.numel():
            key = (labels[rel[:, 0]] * num_classes + labels[rel[:, 1]]) * num_predicates + rel[:, 2]
            counts += torch.bincount(key, minlength=counts.numel())
        if include_background and g.num_boxes > 1:
            n = g.num_boxes
            related = torch.zeros(n, n, dtype=torch.bool)
            if rel.numel():
                related[rel[:, 0], rel[:, 1]] = True
            related.fill_diagonal_(True)
            s, o = (~related).nonzero(as_tuple=True)
            key = (labels[s] * num_classes + labels[o]) * num_predicates
            counts += torch.bincount(key, minlength=counts.numel())
    return counts.view(num_classes, num_classes, num_predicates)


class FrequencyBaseline(nn.Module):
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


def ag_frequency_predictions(
    train: Sequence[Any], test: Sequence[Any], vocab: Any
) -> list[Predictions]:
    """Action Genome's FREQ baseline on person → object pairs: per object class, the training
    distribution of each single-label relation type (softmax group) and the frequency of each
    multi-label predicate, Laplace-smoothed.

    Args:
        train, test: :class:`VideoSceneGraph` lists.
        vocab: the AG vocabulary (relation types and single-label types).
    Returns:
        One :class:`Predictions` per test frame, scores in vocabulary columns.
    """
    from tailgraph.protocols import AGProtocol

    protocol = AGProtocol(vocab)
    c, r = vocab.num_classes, vocab.num_predicates
    sums = torch.ones((c, r))
    seen = torch.full((c,), 2.0)
    single_sums = {
        g.name: torch.ones((c, len(g.columns))) for g in protocol.groups if g.single_label
    }
    for v in train:
        for f in v.frames:
            pairs = protocol.candidate_pairs([f])[0]
            if pairs.shape[0] == 0:
                continue
            t = protocol.targets([f], pairs)
            cls = f.labels[pairs[:, 1]]
            sums.index_add_(0, cls, t.multi_hot)
            seen.index_add_(0, cls, torch.ones(len(cls)))
            for name, acc in single_sums.items():
                y = t.labels[name]
                ok = y >= 0
                acc.index_put_((cls[ok], y[ok]), torch.ones(int(ok.sum())), accumulate=True)
    table = sums / seen[:, None]
    for g in protocol.groups:
        if g.single_label:
            acc = single_sums[g.name]
            table[:, list(g.columns)] = acc / acc.sum(1, keepdim=True)
    preds = []
    for v in test:
        for f in v.frames:
            pairs = protocol.candidate_pairs([f])[0]
            scores = table[f.labels[pairs[:, 1]]]
            preds.append(
                Predictions(f.image_id, f.boxes, f.labels, torch.ones(f.num_boxes), pairs, scores)
            )
    return preds
