"""The image protocols: Visual Genome–style scene graphs (``vg``) and Open Images VRD's
exhaustive pair classification (``oi``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tailgraph.protocols.base import LossGroup, Protocol
from tailgraph.protocols.files import OIFiles, VGFiles
from tailgraph.structures import Task
from tailgraph.vocab import Vocabulary

__all__ = ["VGProtocol", "OIProtocol"]


class VGProtocol(Protocol):
    """Visual Genome–style images (VG150, RS-VG, synth-vg)."""

    name = "vg"
    files = VGFiles
    monitor = "mR@50"

    def __init__(
        self, vocab: Vocabulary, task: Task | str = Task.PREDCLS, ks: Sequence[int] | None = None
    ) -> None:
        if not vocab.predicate_background:
            raise ValueError("the vg protocol needs a vocabulary whose predicate 0 is background")
        super().__init__(vocab, task, ks)
        self.monitor = f"mR@{self.ks[len(self.ks) // 2]}"

    def loss_groups(self) -> list[LossGroup]:
        return [LossGroup("predicate", tuple(range(self.vocab.num_predicates)), True)]

    def finalize(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Adds ``Mean@K`` = (R@K + mR@K) / 2 of this task (HML's Mean@K averages it over the
        three tasks: :func:`tailgraph.evaluation.vg.mean_at_k`)."""
        for k in self.ks:
            if f"R@{k}" in metrics and f"mR@{k}" in metrics:
                metrics[f"Mean@{k}"] = (metrics[f"R@{k}"] + metrics[f"mR@{k}"]) / 2
        return metrics

    def make_metric(self, train_triplets=None, eval_graphs=None, model=None):
        from tailgraph.evaluation.metric import VGRecallMetric

        zs = None
        if train_triplets is not None and eval_graphs is not None:
            seen = set(train_triplets)
            test = {
                (int(g.labels[s]), int(g.labels[o]), int(p))
                for g in eval_graphs
                for s, o, p in g.relations.tolist()
            }
            zs = sorted(list(t) for t in test - seen) or None
        return VGRecallMetric(
            self.task.value, self.ks, num_predicates=self.vocab.num_predicates, zeroshot_triplets=zs
        )


class OIProtocol(VGProtocol):
    """Open Images VRD exhaustive pair classification: softmax over {no relation} ∪ predicates,
    every ordered pair of annotated boxes a candidate, AP metrics."""

    name = "oi"
    files = OIFiles
    monitor = "mAP"

    def __init__(
        self,
        vocab: Vocabulary,
        task: Task | str = Task.PREDCLS,
        ks: Sequence[int] | None = None,
        ignore: Sequence[str] = ("under",),
    ) -> None:
        super().__init__(vocab, task, ks)
        self.monitor = "mAP"
        self.ignore = tuple(ignore)

    def make_metric(self, train_triplets=None, eval_graphs=None, model=None):
        from tailgraph.evaluation.metric import OIMetric

        return OIMetric(
            self.vocab.predicates, ignore=self.ignore, background=self.vocab.predicate_background
        )
