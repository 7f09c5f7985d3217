"""Training statistics computed from samples: per-predicate, per-class and per-(subject class,
object class, predicate) counts of a training split, which methods and models are built from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from tailgraph.structures import SceneGraph
from tailgraph.vocab import Vocabulary

__all__ = ["TrainStats", "pair_predicate_counts"]


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


@dataclass
class TrainStats:
    """Statistics of the training split that methods and models are built from.

    Attributes:
        predicate_counts: ``[R]`` relation count per predicate (background 0).
        object_counts: ``[C]`` box count per class.
        pair_counts: ``[C, C, R]`` (subject class, object class, predicate) counts, or ``None``.
        triplets: the set of ``(subject class, object class, predicate)`` seen in training.
        num_samples: training images / frames.
    """

    predicate_counts: list[int]
    object_counts: list[int] = field(default_factory=list)
    pair_counts: torch.Tensor | None = None
    triplets: set[tuple[int, int, int]] = field(default_factory=set)
    num_samples: int = 0

    @classmethod
    def from_graphs(cls, graphs: Any, vocab: Vocabulary) -> TrainStats:
        """Count ``graphs`` (scene graphs or frames) over ``vocab``."""
        graphs = list(graphs)
        pc = torch.zeros(vocab.num_predicates, dtype=torch.int64)
        oc = torch.zeros(vocab.num_classes, dtype=torch.int64)
        triplets: set[tuple[int, int, int]] = set()
        for g in graphs:
            oc += torch.bincount(g.labels, minlength=vocab.num_classes)[: vocab.num_classes]
            if g.num_relations:
                pc += torch.bincount(g.relations[:, 2], minlength=vocab.num_predicates)[
                    : vocab.num_predicates
                ]
                lab = g.labels
                for s, o, p in g.relations.tolist():
                    triplets.add((int(lab[s]), int(lab[o]), int(p)))
        if vocab.predicate_background:
            pc[0] = 0
        return cls(
            pc.tolist(),
            oc.tolist(),
            pair_predicate_counts(graphs, vocab.num_classes, vocab.num_predicates),
            triplets,
            len(graphs),
        )

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint stores (the pair counts are rebuilt from the data when needed)."""
        return {
            "predicate_counts": list(self.predicate_counts),
            "object_counts": list(self.object_counts),
            "triplets": sorted(list(t) for t in self.triplets),
            "num_samples": self.num_samples,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainStats:
        """The inverse of :meth:`to_dict` (``pair_counts`` is ``None``)."""
        return cls(
            list(d["predicate_counts"]),
            list(d["object_counts"]),
            None,
            {tuple(t) for t in d["triplets"]},
            int(d["num_samples"]),
        )
