"""Protocols: what differs between data kinds, as data.

A protocol is chosen by name by the data module (``datamodule.protocol``: ``vg``, ``ag``,
``oi`` or ``vidvrd``) and built from the data set's :class:`Vocabulary`. It answers three
questions and nothing else:

* **targets** — what each candidate pair should predict (:meth:`Protocol.targets`, the one
  target builder of that data kind), laid out per relation type (:class:`LossGroup`);
* **candidate pairs** — which (subject, object) pairs a model scores
  (:meth:`Protocol.candidate_pairs`) and which of them train (:meth:`Protocol.training_pairs`);
* **metric** — which evaluator scores the predictions (:meth:`Protocol.make_metric`), with
  the keys ``tailgraph evaluate --json`` writes for that protocol.

The four protocols:

========  ===========================================  =======================================
name      targets                                      pairs / metric
========  ===========================================  =======================================
``vg``    one softmax over predicates, column 0 =      all ordered pairs; R / mR / ngR / zR / A
          background; a pair may carry several         (:class:`VGRecallMetric`)
          predicates (``multi_hot``), ``labels`` keeps
          one (the last annotated)
``ag``    per relation type from the vocabulary:       person → object; with / semi / no
          single-label types (attention; index 0 is a  constraint (:class:`AGRecallMetric`),
          real class, -100 = none) and multi-label     nested under ``with`` / ``semi`` / ``no``
          types (spatial, contacting)
``oi``    softmax over {no relation} ∪ predicates      all ordered pairs of annotated boxes;
                                                       mAP / mAP* / mAP_FG (:class:`OIMetric`)
``vidvrd`` multi-label (sigmoid) over the predicates   all ordered track pairs; RelDet / RelTag
          (background column unused)                   (:class:`VidVRDMetric`)
========  ===========================================  =======================================

SGDet training (detected boxes) goes through :func:`assign_detections`, which moves the ground
truth's relations onto the detections that overlap their boxes, so the same target builder
serves every task.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tailgraph.structures import GraphBatch, SceneGraph, Task
from tailgraph.vocab import Vocabulary

__all__ = [
    "LossGroup",
    "Targets",
    "Protocol",
    "VGProtocol",
    "AGProtocol",
    "OIProtocol",
    "VidVRDProtocol",
    "PROTOCOLS",
    "build_protocol",
    "assign_detections",
    "sample_background_pairs",
    "pair_relation_targets",
    "frames_to_relation_instances",
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
    ) -> Any:
        """The metric object (``update(gts, preds)`` / ``compute()`` / ``reset()``) of an
        evaluation; ``train_triplets`` and ``eval_graphs`` serve zero-shot recall and
        video-level ground truth."""

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

    def make_metric(self, train_triplets=None, eval_graphs=None):
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

    def make_metric(self, train_triplets=None, eval_graphs=None):
        from tailgraph.evaluation.metric import OIMetric

        return OIMetric(
            self.vocab.predicates, ignore=self.ignore, background=self.vocab.predicate_background
        )


class _AGMetrics:
    """The three AG constraints as one metric object (``update`` / ``compute`` / ``reset``),
    results nested under ``with`` / ``semi`` / ``no`` as ``tailgraph evaluate`` writes them."""

    constraints = ("with", "semi", "no")

    def __init__(self, mode: str, ks: Sequence[int], semi_threshold: float = 0.9) -> None:
        from tailgraph.evaluation.metric import AGRecallMetric

        self.metrics = {
            c: AGRecallMetric(c, mode, ks, semi_threshold=semi_threshold) for c in self.constraints
        }

    def to(self, device: Any) -> _AGMetrics:
        for m in self.metrics.values():
            m.to(device)
        return self

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        for m in self.metrics.values():
            m.update(gts, preds)

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {c: m.compute() for c, m in self.metrics.items()}
        out["num_frames"] = out["with"]["num_frames"]
        return out

    def reset(self) -> None:
        for m in self.metrics.values():
            m.reset()


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

    def make_metric(self, train_triplets=None, eval_graphs=None):
        return _AGMetrics(self.task.value, self.ks, self.semi_threshold)

    def flat(self, metrics: dict[str, Any]) -> dict[str, float]:
        out = {}
        for c in _AGMetrics.constraints:
            for k, v in (metrics.get(c) or {}).items():
                if isinstance(v, (int, float)):
                    out[f"{c}/{k}"] = float(v)
        return out


def frames_to_relation_instances(
    frames: Sequence[SceneGraph],
    preds: Sequence[Any],
    vocab: Vocabulary,
    per_pair: int = 5,
    per_video: int = 200,
) -> list[dict[str, Any]]:
    """Video-level relation instances from per-frame pair scores (VidVRD's results format).

    The frames of one video, in order, carry track ids; each frame's prediction scores its
    ordered pairs. For each (subject track, object track) the frames in which the pair was
    scored are split into runs of consecutive frames; a run's predicate scores are the mean of
    its frames' scores, and its ``per_pair`` best predicates become instances spanning the run
    (score = that mean), with the two tracks' boxes as trajectories. The ``per_video`` best
    instances are kept (VidVRD-II keeps 200).

    Returns:
        ``[{"triplet": [subject class, predicate, object class], "score", "duration": [b, e),
        "sub_traj", "obj_traj"}]`` with predicate and class names from ``vocab``.
    """
    tracks: dict[tuple[int, int], dict[int, tuple[Any, Any, Any, int, int]]] = {}
    for g, p in zip(frames, preds):
        if g.track_ids is None:
            raise ValueError(f"frame {g.image_id!r} has no track ids (VidVRD frames carry them)")
        fid = int(str(g.image_id).rsplit("/", 1)[1])
        tids = g.track_ids.tolist()
        for (a, b), sc in zip(p.pairs.tolist(), p.predicate_scores):
            tracks.setdefault((tids[a], tids[b]), {})[fid] = (
                p.boxes[a],
                p.boxes[b],
                sc,
                int(p.labels[a]),
                int(p.labels[b]),
            )
    fg = torch.tensor(vocab.foreground_predicates)
    out = []
    for by_frame in tracks.values():
        fids = sorted(by_frame)
        runs, start = [], 0
        for k in range(1, len(fids) + 1):
            if k == len(fids) or fids[k] != fids[k - 1] + 1:
                runs.append(fids[start:k])
                start = k
        for run in runs:
            rows = [by_frame[f] for f in run]
            mean = torch.stack([r[2] for r in rows]).float().mean(0)[fg]
            top = torch.topk(mean, min(per_pair, mean.numel()))
            s_cls, o_cls = vocab.object_classes[rows[0][3]], vocab.object_classes[rows[0][4]]
            sub = [r[0].tolist() for r in rows]
            obj = [r[1].tolist() for r in rows]
            for score, j in zip(top.values.tolist(), top.indices.tolist()):
                out.append(
                    {
                        "triplet": [s_cls, vocab.predicates[int(fg[j])], o_cls],
                        "score": float(score),
                        "duration": [run[0], run[-1] + 1],
                        "sub_traj": sub,
                        "obj_traj": obj,
                    }
                )
    out.sort(key=lambda r: -r["score"])
    return out[:per_video]


class _VidVRDFrameMetric:
    """The VidVRD metric fed frame by frame (predictions gathered per video and turned into
    relation instances by :func:`frames_to_relation_instances` at ``compute``) or segment by
    segment (:meth:`update_segments`, associated per video at ``compute``); the ground truth
    is the videos' annotated relation instances."""

    def __init__(self, vocab: Vocabulary, videos: Sequence[Any] | None, ks: Sequence[int]) -> None:
        from tailgraph.evaluation.metric import VidVRDMetric

        self.vocab = vocab
        self.metric = VidVRDMetric(
            [vocab.predicates[i] for i in vocab.foreground_predicates], det_nreturns=ks
        )
        self.gt: dict[Any, list] = {}
        if videos:
            from tailgraph.data.vidvrd import to_groundtruth

            self.gt = to_groundtruth(videos)
        self.frames: dict[Any, list] = {}
        self.segments: dict[Any, list] = {}
        self.associate: Any = None

    def to(self, device: Any) -> _VidVRDFrameMetric:
        return self

    def reset(self) -> None:
        self.frames = {}
        self.segments = {}
        self.metric.reset()

    def update_segments(self, segments: Sequence[tuple[Any, int, list]], associate: Any) -> None:
        """Segment-level predictions ``[(video id, segment begin, instances)]`` (VidVRD-II);
        ``associate(list of per-segment instance lists) -> video instances`` joins them at
        :meth:`compute`."""
        self.associate = associate
        for vid, begin, instances in segments:
            self.segments.setdefault(vid, []).append((begin, instances))

    def update(self, gts: Sequence[SceneGraph], preds: Sequence[Any]) -> None:
        for g, p in zip(gts, preds):
            vid = str(g.image_id).rsplit("/", 1)[0]
            self.frames.setdefault(vid, []).append((g, p))

    def compute(self) -> dict[str, Any]:
        if not self.gt:
            raise ValueError(
                "the vidvrd metric needs the evaluated videos' relation instances (the data "
                "module's eval_graphs)"
            )
        prediction = {}
        for vid, segs in self.segments.items():
            segs.sort(key=lambda bi: bi[0])
            prediction[vid] = self.associate([inst for _, inst in segs])
        for vid, items in self.frames.items():
            items.sort(key=lambda gp: int(str(gp[0].image_id).rsplit("/", 1)[1]))
            prediction[vid] = frames_to_relation_instances(
                [g for g, _ in items], [p for _, p in items], self.vocab
            )
        self.metric.reset()
        self.metric.update({v: r for v, r in self.gt.items() if v in prediction}, prediction)
        return self.metric.compute()


class VidVRDProtocol(Protocol):
    """ImageNet-VidVRD: multi-label (sigmoid) targets over the predicates of each track pair of
    each frame; RelDet / RelTag metrics over video-level relation instances assembled from the
    frames' pair scores (:func:`frames_to_relation_instances`)."""

    name = "vidvrd"
    default_ks = (50, 100)
    monitor = "RelDet_mAP"

    def loss_groups(self) -> list[LossGroup]:
        fg = tuple(self.vocab.foreground_predicates)
        return [LossGroup("predicate", fg, False)]

    def make_metric(self, train_triplets=None, eval_graphs=None):
        return _VidVRDFrameMetric(self.vocab, eval_graphs, self.ks)


PROTOCOLS: dict[str, type[Protocol]] = {
    "vg": VGProtocol,
    "ag": AGProtocol,
    "oi": OIProtocol,
    "vidvrd": VidVRDProtocol,
}


def build_protocol(
    name: str,
    vocab: Vocabulary,
    task: Task | str = Task.PREDCLS,
    ks: Sequence[int] | None = None,
    **options: Any,
) -> Protocol:
    """The protocol ``name`` (``vg`` | ``ag`` | ``oi`` | ``vidvrd``) for ``vocab``."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; expected one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name](vocab, task, ks, **options)
