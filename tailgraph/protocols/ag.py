"""The Action Genome protocol (``ag``): person → object pairs, per-type targets, the three
constraints of the AG evaluator; and AG's FREQ baseline, which counts the protocol's targets
over the training frames."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tailgraph.evaluation.metric import AGMetric
from tailgraph.protocols.base import Protocol
from tailgraph.protocols.files import AGFiles
from tailgraph.structures import GraphBatch, Predictions, SceneGraph, Task
from tailgraph.vocab import Vocabulary

__all__ = ["AGProtocol", "ag_frequency_predictions"]


class AGProtocol(Protocol):
    """Action Genome frames: person → object pairs, per-type targets from the vocabulary.

    Every AG relation joins the frame's person and one object; the reference stores spatial
    relations as (object, person) and the others as (person, object). A candidate pair
    (person, object) therefore takes the relations between the two in either direction.

    Args:
        subject_class: the class whose boxes are the subjects of every relation.
        semi_threshold: threshold of the semi constraint.
    """

    name = "ag"
    files = AGFiles
    folder_input = "videos"
    default_ks = (10, 20, 50, 100)

    def __init__(
        self,
        vocab: Vocabulary,
        task: Task | str = Task.PREDCLS,
        ks: Sequence[int] | None = None,
        subject_class: str = "person",
        semi_threshold: float = 0.9,
    ) -> None:
        super().__init__(vocab, task, ks)
        self.subject_label = vocab.class_index(subject_class)
        self.semi_threshold = semi_threshold
        self.monitor = f"with/mR@{20 if 20 in self.ks else self.ks[0]}"

    unordered = True  # (person, object) and (object, person) are the same candidate

    def subject_index(self, g: SceneGraph) -> int | None:
        """The frame's person box: the most confident box of the subject class (box 0 of an
        annotated AG frame), or ``None`` when the frame has none."""
        rows = (g.labels == self.subject_label).nonzero().flatten()
        if rows.numel() == 0:
            return None
        if "label_scores" in g.extras:
            return int(rows[g.extras["label_scores"][rows].argmax()])
        return int(rows[0])

    def candidate_pairs(self, graphs: Sequence[SceneGraph]) -> list[torch.Tensor]:
        out = []
        for g in graphs:
            p = self.subject_index(g)
            device = g.boxes.device
            if p is None:
                out.append(torch.zeros((0, 2), dtype=torch.int64, device=device))
                continue
            objs = torch.tensor(
                [i for i in range(g.num_boxes) if i != p], dtype=torch.int64, device=device
            )
            out.append(torch.stack([torch.full_like(objs, p), objs], 1))
        return out

    def training_pairs(
        self, batch: GraphBatch, background_per_image: int | None, generator=None
    ) -> GraphBatch:
        return (
            batch
            if batch.pairs is not None
            else batch.with_pairs(self.candidate_pairs(batch.graphs))
        )

    def make_metric(self, train_triplets=None, eval_graphs=None, model=None):
        return AGMetric(self.task.value, self.ks, self.semi_threshold)

    def flat(self, metrics: dict[str, Any]) -> dict[str, float]:
        out = {}
        for c in AGMetric.constraints:
            for k, v in (metrics.get(c) or {}).items():
                if isinstance(v, (int, float)):
                    out[f"{c}/{k}"] = float(v)
        return out


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
