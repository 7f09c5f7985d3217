"""The image protocols: Visual Genome–style scene graphs (``vg``) and Open Images VRD's
exhaustive pair classification (``oi``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tailgraph.protocols.base import EvalOptions, LossGroup, Protocol, matched_chunks
from tailgraph.structures import Task
from tailgraph.vocab import Vocabulary

__all__ = ["VGProtocol", "OIProtocol"]


class VGProtocol(Protocol):
    """Visual Genome–style images (VG150, RS-VG, synth-vg)."""

    name = "vg"
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

    @classmethod
    def evaluate_predictions(cls, graphs, vocab, preds, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.vg import evaluate_vg

        return evaluate_vg(
            graphs,
            preds,
            mode=options.mode,
            ks=options.ks,
            zeroshot_triplets=options.zeroshot,
            num_predicates=vocab.num_predicates,
        )

    @classmethod
    def evaluate_binary(cls, graphs, vocab, pred, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.vg import VGEvaluator, validated_item

        ev = VGEvaluator(
            options.mode, options.ks, options.zeroshot, num_predicates=vocab.num_predicates
        )
        ncol = vocab.num_predicates
        # the evaluator checks NaN / inf itself, in the same pass as its ranking
        for idx, gts, chunk in matched_chunks(pred, graphs, vocab, check_scores=False):
            items = []
            for g, q in zip(gts, chunk):
                item, ncol = validated_item(g, q, options.mode, ncol)
                items.append(item)
            ev.update_items(items, order=idx)
        return ev.compute()

    @classmethod
    def summary(cls, result: dict[str, Any], options: EvalOptions) -> str:
        return _vg_summary(result, options.ks, options.mode)


class OIProtocol(VGProtocol):
    """Open Images VRD exhaustive pair classification: softmax over {no relation} ∪ predicates,
    every ordered pair of annotated boxes a candidate, AP metrics."""

    name = "oi"
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

    @classmethod
    def evaluate_predictions(cls, graphs, vocab, preds, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.openimages import evaluate_oi

        return evaluate_oi(
            graphs,
            preds,
            vocab.predicates,
            ignore=options.ignore,
            background=vocab.predicate_background,
        )

    @classmethod
    def evaluate_binary(cls, graphs, vocab, pred, options: EvalOptions) -> dict[str, Any]:
        import numpy as np

        from tailgraph.evaluation.openimages import ap_metrics, collect_pairs

        nr = vocab.num_predicates
        blocks = []
        missed = np.zeros(nr, dtype=np.int64)
        for idx, gts, chunk in matched_chunks(pred, graphs, vocab, check_scores=True):
            for gi, g, q in zip(idx, gts, chunk):
                sc, lab, mi = collect_pairs([g], [q], nr, vocab.predicate_background)
                blocks.append((gi, sc, lab))
                missed += mi
        blocks.sort(key=lambda b: b[0])  # the ground truth's order, as the JSON path
        scores = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros((0, nr))
        labels = np.concatenate([b[2] for b in blocks]) if blocks else np.zeros((0, nr), dtype=bool)
        return ap_metrics(
            scores, labels, missed, vocab.predicates, options.ignore, vocab.predicate_background
        )

    @classmethod
    def summary(cls, result: dict[str, Any], options: EvalOptions) -> str:
        return _oi_summary(result)


def _vg_summary(metrics: dict, ks: Sequence[int], mode: str) -> str:
    keys = [k for k in ("R", "mR", "ngR", "ng-mR", "zR", "ng-zR", "A") if f"{k}@{ks[0]}" in metrics]
    lines = [f"vg {mode}: {metrics['num_images']} images evaluated (percent)"]
    lines.append(f"{'metric':<8}" + "".join(f"{'@' + str(k):>9}" for k in ks))
    for key in keys:
        lines.append(f"{key:<8}" + "".join(f"{100 * metrics[f'{key}@{k}']:>9.2f}" for k in ks))
    return "\n".join(lines)


def _oi_summary(result: dict) -> str:
    lines = [
        f"oi: {result['num_pairs']} candidate pairs, {result['num_positive_pairs']} "
        "positive (percent)"
    ]
    for key in ("mAP", "mAP*", "mAP_FG", "mAP*_FG"):
        lines.append(f"{key:<10}{100 * result[key]:>9.2f}")
    return "\n".join(lines)
