"""The protocol interface and what every data kind shares: targets laid out per relation
type, candidate and training pairs, SGDet's assignment of ground-truth relations to
detections."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tailgraph.protocols.files import (
    EvalOptions,
    FileEvaluation,
    load_ground_truth,
    matched_chunks,
)
from tailgraph.structures import GraphBatch, SceneGraph, Task
from tailgraph.vocab import Vocabulary

__all__ = [
    "EvalOptions",
    "load_ground_truth",
    "matched_chunks",
    "LossGroup",
    "Targets",
    "Protocol",
    "assign_detections",
    "sample_background_pairs",
    "pair_relation_targets",
]


@dataclass(frozen=True)
class LossGroup:
    """Predicate columns trained together.

    Attributes:
        name: relation type (``attention`` …) or ``"predicate"`` for a vocabulary without types.
        columns: predicate indices of the group, in vocabulary order.
        single_label: one softmax over the group (target = an index into ``columns``, -100 =
            none) instead of one sigmoid per column.
    """

    name: str
    columns: tuple[int, ...]
    single_label: bool


@dataclass
class Targets:
    """Targets of ``P`` candidate pairs.

    Attributes:
        multi_hot: ``[P, R]`` every annotated predicate of each pair (vocabulary columns).
        labels: ``{group name: [P] int64}`` for single-label groups: the index *within the
            group's columns*, ``-100`` where the pair has none of the group's predicates (for a
            group that includes a background column, unannotated pairs get that column).
        related: ``[P]`` bool, the pair carries at least one foreground predicate.
    """

    multi_hot: torch.Tensor
    labels: dict[str, torch.Tensor]
    related: torch.Tensor


def _global_relations(
    graphs: Sequence[SceneGraph], device: torch.device
) -> tuple[torch.Tensor, int]:
    """All relations of a batch with subject / object as global object rows."""
    rels, offset = [], 0
    for g in graphs:
        if g.num_relations:
            r = g.relations.to(device).clone()
            r[:, :2] += offset
            rels.append(r)
        offset += g.num_boxes
    rel = torch.cat(rels) if rels else torch.zeros((0, 3), dtype=torch.int64, device=device)
    return rel, offset


def pair_relation_targets(
    graphs: Sequence[SceneGraph], pairs: torch.Tensor, num_predicates: int, unordered: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which annotated predicates each candidate pair carries.

    Args:
        graphs: the batch's ground-truth graphs (objects concatenated in order).
        pairs: ``[P, 2]`` global object rows.
        num_predicates: ``R``.
        unordered: a relation ``(s, o, p)`` labels the candidate ``(o, s)`` as well.
    Returns:
        ``(multi_hot [P, R] float, last [P] int64)``: every annotated predicate of each pair, and
        the predicate of the pair's last relation row (``-1`` for unannotated pairs).
    """
    device = pairs.device
    rel, n = _global_relations(graphs, device)
    if rel.numel() and (int(rel[:, 2].min()) < 0 or int(rel[:, 2].max()) >= num_predicates):
        raise ValueError(f"relation predicate outside 0..{num_predicates - 1}")
    n = max(n, 1)
    if unordered:
        key = torch.minimum(pairs[:, 0], pairs[:, 1]) * n + torch.maximum(pairs[:, 0], pairs[:, 1])
        rkey = torch.minimum(rel[:, 0], rel[:, 1]) * n + torch.maximum(rel[:, 0], rel[:, 1])
    else:
        key, rkey = pairs[:, 0] * n + pairs[:, 1], rel[:, 0] * n + rel[:, 1]
    multi = torch.zeros((pairs.shape[0], num_predicates), device=device)
    last = torch.full((pairs.shape[0],), -1, dtype=torch.int64, device=device)
    if key.numel() == 0 or rkey.numel() == 0:
        return multi, last
    # sort the pair keys once; each relation finds its pair by binary search
    order = torch.argsort(key)
    skey = key[order]
    pos = torch.searchsorted(skey, rkey).clamp_max(skey.numel() - 1)
    found = skey[pos] == rkey
    rows = order[pos[found]]
    preds = rel[found, 2]
    multi[rows, preds] = 1.0
    # last relation row per pair: write in row order so later rows overwrite earlier ones
    idx = torch.arange(rows.numel(), device=device)
    latest = torch.full((pairs.shape[0],), -1, dtype=torch.int64, device=device).scatter_reduce(
        0, rows, idx, "amax"
    )
    hit = latest >= 0
    last[hit] = preds[latest[hit]]
    return multi, last


def sample_background_pairs(
    graphs: Sequence[SceneGraph], per_image: int, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Every annotated pair of each image plus at most ``per_image`` random unannotated ones.

    Returns:
        Local ``[P_i, 2]`` pairs per image (foreground first).
    """
    chosen = []
    for g in graphs:
        n = g.num_boxes
        related = torch.zeros((n, n), dtype=torch.bool)
        if g.num_relations:
            rel = g.relations.cpu()
            related[rel[:, 0], rel[:, 1]] = True
        fg = related.nonzero()
        free = ~related
        free.fill_diagonal_(False)
        bg = free.nonzero()
        if bg.shape[0] > per_image:
            bg = bg[torch.randperm(bg.shape[0], generator=generator)[:per_image]]
        chosen.append(torch.cat([fg, bg]).to(g.boxes.device))
    return chosen


def assign_detections(gt: SceneGraph, det: SceneGraph, iou_threshold: float = 0.5) -> SceneGraph:
    """``det`` with the ground truth's relations moved onto its boxes (SGDet training).

    Each detection takes the GT box it overlaps most, when that IoU is ≥ ``iou_threshold``
    (Scene-Graph-Benchmark's proposal matching); a GT relation ``(s, o, p)`` becomes
    ``(d_s, o_d, p)`` for every detection ``d_s`` matched to ``s`` and ``d_o`` matched to ``o``
    (``d_s ≠ d_o``). Duplicate rows are kept once. ``extras["matched_labels"]`` holds each
    detection's matched GT label (0 = background: no GT box at that IoU), the target of an
    object classifier that re-classifies detections (TEMPURA's SGDet).
    """
    from torchvision.ops import box_iou

    matched = torch.zeros(det.num_boxes, dtype=torch.int64)
    if det.num_boxes and gt.num_boxes:
        iou = box_iou(det.boxes.float().cpu(), gt.boxes.float().cpu())  # [D, G]
        best, match = iou.max(dim=1)
        match = torch.where(best >= iou_threshold, match, torch.full_like(match, -1))
        matched = torch.where(match >= 0, gt.labels.cpu()[match.clamp_min(0)], matched)
    if det.num_boxes == 0 or gt.num_boxes == 0 or gt.num_relations == 0:
        rel = torch.zeros((0, 3), dtype=torch.int64)
    else:
        rows = []
        for s, o, p in gt.relations.cpu().tolist():
            ds = (match == s).nonzero().flatten().tolist()
            do = (match == o).nonzero().flatten().tolist()
            rows += [(a, b, p) for a in ds for b in do if a != b]
        rel = torch.tensor(sorted(set(rows)), dtype=torch.int64).reshape(-1, 3)
    return SceneGraph(
        det.image_id,
        det.width,
        det.height,
        det.boxes,
        det.labels,
        rel,
        image_path=det.image_path,
        track_ids=det.track_ids,
        extras={**det.extras, "matched_labels": matched},
    )


class Protocol(abc.ABC):
    """Targets, candidate pairs and metric of one data kind (see the module docstring).

    Args:
        vocab: the data set's vocabulary.
        task: PredCls / SGCls / SGDet.
        ks: K values of the metric (``None`` = the protocol's default).
    """

    name = ""
    default_ks: tuple[int, ...] = (20, 50, 100)
    monitor = ""  # flat metric key a plateau scheduler follows
    # what `tailgraph predict --input FOLDER` reads for this kind: "images" (a folder of
    # images), "videos" (a folder of frame folders) or None (not from folders)
    folder_input: str | None = "images"

    def __init__(
        self, vocab: Vocabulary, task: Task | str = Task.PREDCLS, ks: Sequence[int] | None = None
    ) -> None:
        self.vocab = vocab
        self.task = Task.parse(task)
        self.ks = tuple(int(k) for k in (ks or self.default_ks))
        if not self.ks or any(k <= 0 for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"metric K values must be positive and distinct, got {list(self.ks)}")
        self.groups = self.loss_groups()

    # ------------------------------------------------------------------ targets
    def loss_groups(self) -> list[LossGroup]:
        """The predicate columns trained together (from the vocabulary's relation types)."""
        singles = set(self.vocab.single_label_types)
        return [
            LossGroup(str(t) if t is not None else "predicate", tuple(cols), t in singles)
            for t, cols in self.vocab.relation_groups()
        ]

    unordered = False  # a relation (s, o, p) also labels the candidate (o, s)

    def targets(self, graphs: Sequence[SceneGraph], pairs: torch.Tensor) -> Targets:
        """Targets of ``pairs`` (``[P, 2]`` global object rows of the batch ``graphs``)."""
        nr = self.vocab.num_predicates
        multi, last = pair_relation_targets(graphs, pairs, nr, unordered=self.unordered)
        bg = self.vocab.predicate_background
        related = (multi[:, 1:] if bg else multi).sum(1) > 0
        labels: dict[str, torch.Tensor] = {}
        for group in self.groups:
            if not group.single_label:
                continue
            cols = torch.tensor(group.columns, device=pairs.device)
            local = torch.full((nr,), -100, dtype=torch.int64, device=pairs.device)
            local[cols] = torch.arange(len(group.columns), device=pairs.device)
            # one predicate per pair: its last annotated row when that is in the group, else
            # the group's first annotated column
            lab = torch.where(last >= 0, local[last.clamp_min(0)], torch.full_like(last, -100))
            in_group = multi.index_select(1, cols) > 0
            fallback = torch.where(
                in_group.any(1), in_group.int().argmax(1), torch.full_like(last, -100)
            )
            lab = torch.where(lab >= 0, lab, fallback)
            if bg and 0 in group.columns:
                lab = torch.where(lab < 0, torch.full_like(lab, group.columns.index(0)), lab)
            labels[group.name] = lab
        if bg:
            multi[:, 0] = (~related).float()
        return Targets(multi_hot=multi, labels=labels, related=related)

    # ------------------------------------------------------------------ pairs
    def candidate_pairs(self, graphs: Sequence[SceneGraph]) -> list[torch.Tensor] | None:
        """Local ``[P_i, 2]`` pairs to score per image, or ``None`` = all ordered pairs."""
        return None

    def training_pairs(
        self,
        batch: GraphBatch,
        background_per_image: int | None,
        generator: torch.Generator | None = None,
    ) -> GraphBatch:
        """The pairs that train: the batch's own pairs when the data chose them (balanced
        negative-mining batches reach the loss unchanged); else every annotated pair plus at
        most ``background_per_image`` unannotated candidates (all when ``None``)."""
        if batch.pairs is not None or background_per_image is None:
            return batch
        return batch.with_pairs(
            sample_background_pairs(batch.graphs, background_per_image, generator)
        )

    # ------------------------------------------------------------------ metric
    @abc.abstractmethod
    def make_metric(
        self,
        train_triplets: set[tuple[int, int, int]] | None = None,
        eval_graphs: Sequence[SceneGraph] | None = None,
        model: Any = None,
    ) -> Any:
        """The metric (an :class:`tailgraph.evaluation.metric.EvalMetric`) of an evaluation;
        ``train_triplets`` and ``eval_graphs`` serve zero-shot recall and video-level ground
        truth, ``model`` what a kind's assembly of predictions needs from the model (VidVRD-II's
        association)."""

    # ------------------------------------------------------------------ the engine's batches
    def train_batch(
        self,
        model: Any,
        batch: Any,
        background_per_image: int | None,
        generator: torch.Generator | None = None,
    ) -> Any:
        """The batch a method trains on: SGDet detections carrying the ground truth's relations
        (:func:`assign_detections`), with the protocol's :meth:`training_pairs`. A batch that
        carries its own pairs (segments, mined negatives) passes unchanged."""
        if model.task is Task.SGDET:
            det = model.detect(batch)
            graphs = [assign_detections(g, d) for g, d in zip(batch.graphs, det.graphs)]
            batch = GraphBatch(graphs, det.images, det.scales)
        return self.training_pairs(batch, background_per_image, generator)

    def eval_batch(self, model: Any, batch: Any) -> Any:
        """The batch a model is evaluated on: its detections (SGDet) with the protocol's
        candidate pairs; a batch that carries its own pairs passes unchanged."""
        b = model.detect(batch)
        if b is batch and batch.pairs is not None:
            return b
        pairs = self.candidate_pairs(b.graphs)
        return b if pairs is None else b.with_pairs(pairs)

    def update_metric(self, metric: Any, batch: Any, preds: list) -> None:
        """Feed one batch's predictions (and its ground truth) to ``metric``."""
        metric.update([g.to("cpu") for g in batch.graphs], preds)

    def collate_predictions(self, model: Any, preds: list) -> Any:
        """All predictions of a run as one prediction file holds them (default: the list of
        per-image :class:`Predictions`)."""
        return preds

    def finalize(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Derived metrics added after ``compute`` (default: none)."""
        return metrics

    def flat(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Scalar metrics for the logger (nested protocols joined with ``/``)."""
        return {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }

    # ------------------------------------------------------------------ files
    # evaluation from files (``tailgraph evaluate``) lives in :mod:`tailgraph.protocols.files`,
    # which imports no torch; a protocol names its own
    files: type[FileEvaluation] = FileEvaluation
