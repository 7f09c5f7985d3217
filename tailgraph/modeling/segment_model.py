"""The VidVRD-II pipeline as one segment-level relation model (methods.md §3, end).

Training reads :class:`tailgraph.data.tracklets.SegmentBatch` es (segments of 30 frames,
stride 15; tracklet features = mean per-frame RoI features; ≤ 64 candidate pairs, positives
vIoU ≥ 0.9, negatives < 0.5). The network is
:class:`tailgraph.modeling.context.vidvrd_ii.TrackletPairModel`; the losses are focal
(γ = 2): softmax over ``O + 1`` classes for the tracklets, binary over the predicates for the
pairs. Inference runs the iterative preference refinement, scores every triplet ``s·p·o``,
keeps the top 100 per segment, associates them greedily across the segments of a video
(:func:`greedy_association`) and keeps the top 200 per video; the VidVRD protocol evaluates
them (RelDet / RelTag / mR).

The predicate classifier on the pair feature ``f_v`` is a component (``head``): a linear layer
by default, DLL's pattern-decoupled head (:class:`tailgraph.methods.dll.DecoupledHead`) for
DLL. Predicate columns are the vocabulary's foreground predicates: column ``j`` is predicate
``j + 1`` (index 0 is the background slot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.components import build_component
from tailgraph.losses import focal_loss
from tailgraph.modeling.context.vidvrd_ii import TrackletPairModel
from tailgraph.modeling.types import SegmentRelationModel
from tailgraph.structures import Segment, SegmentBatch, SegmentPrediction

__all__ = [
    "VidVRD2Model",
    "SegmentLinearHead",
    "binary_focal_loss",
    "greedy_association",
    "overlap_viou",
]


def binary_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0
) -> torch.Tensor:
    """Binary focal loss ``−[y (1−p)^γ log p + (1−y) p^γ log(1−p)]``, ``p = σ(logits)``, summed
    over the classes and averaged over the rows (0 for no rows)."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = targets * p + (1 - targets) * (1 - p)
    return ((1 - p_t) ** gamma * ce).sum(1).mean()


class SegmentLinearHead(nn.Module):
    """VidVRD-II's predicate classifier: ``Linear(in_dim, P, bias=False)`` on ``f_v``."""

    def __init__(self, in_dim: int, num_predicates: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, num_predicates, bias=False)

    def forward(self, f_v: torch.Tensor) -> torch.Tensor:
        return self.fc(f_v)


def overlap_viou(t1: np.ndarray, d1: Sequence[int], t2: np.ndarray, d2: Sequence[int]) -> float:
    """Volume IoU of two trajectories over their common frames only (0 when disjoint), +1
    pixel convention."""
    lo, hi = max(d1[0], d2[0]), min(d1[1], d2[1])
    if lo >= hi:
        return 0.0
    a = np.asarray(t1, dtype=np.float64)[lo - d1[0] : hi - d1[0]]
    b = np.asarray(t2, dtype=np.float64)[lo - d2[0] : hi - d2[0]]
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1, 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1, 0, None)
    inter = float((iw * ih).sum())
    va = float(((a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)).sum())
    vb = float(((b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)).sum())
    return inter / (va + vb - inter)


def _merge(r: dict, s: dict, score: str) -> dict:
    """Join instance ``s`` into the video-level instance ``r`` (overlapping in time, either may
    start first): common frames average the two boxes, the others keep the one there is."""
    b = min(r["duration"][0], s["duration"][0])
    e = max(r["duration"][1], s["duration"][1])
    out = {"triplet": r["triplet"], "duration": [b, e], "_n": r.get("_n", 1) + 1}
    for key in ("sub_traj", "obj_traj"):
        rows: list[list[float] | None] = [None] * (e - b)
        for inst in (r, s):
            for k, box in enumerate(inst[key]):
                f = inst["duration"][0] + k - b
                prev = rows[f]
                rows[f] = list(box) if prev is None else [(u + v) / 2 for u, v in zip(prev, box)]
        for f in range(e - b):  # a frame between two instances that only touch: hold the box
            if rows[f] is None:
                rows[f] = list(rows[f - 1])  # type: ignore[arg-type]
        out[key] = rows
    total = r["score"] + s["score"]
    out["score"] = (
        total if score == "sum" else (r["score"] * r.get("_n", 1) + s["score"]) / out["_n"]
    )
    return out


def greedy_association(
    segments: Sequence[Sequence[dict]],
    viou_threshold: float = 0.5,
    per_video: int = 200,
    score: str = "sum",
) -> list[dict]:
    """Greedy relational association of one video's segment-level relation instances.

    Segments are taken in time order; within a segment, instances in descending score. An
    instance joins the earlier video-level instance with the same triplet, overlapping in time,
    whose subject and object trajectories both have vIoU > ``viou_threshold`` with its own over
    the common frames (the largest ``min`` of the two; each video-level instance takes at most
    one instance per segment). Joined trajectories average the boxes of common frames; the
    score is the sum of the joined scores (``score="mean"``: their mean). The ``per_video`` best
    instances are returned (VidVRD's results format).
    """
    if score not in ("sum", "mean"):
        raise ValueError(f"score must be 'sum' or 'mean', got {score!r}")
    video: list[dict] = []
    by_triplet: dict[tuple, list[int]] = {}
    for seg in segments:
        taken: set[int] = set()
        for s in sorted(seg, key=lambda r: -r["score"]):
            key = tuple(s["triplet"])
            best, k = -1.0, -1
            for j in by_triplet.get(key, ()):
                if j in taken:
                    continue
                r = video[j]
                if r["duration"][1] <= s["duration"][0] or s["duration"][1] <= r["duration"][0]:
                    continue
                ov = min(
                    overlap_viou(r["sub_traj"], r["duration"], s["sub_traj"], s["duration"]),
                    overlap_viou(r["obj_traj"], r["duration"], s["obj_traj"], s["duration"]),
                )
                if ov > viou_threshold and ov > best:
                    best, k = ov, j
            if k >= 0:
                video[k] = _merge(video[k], s, score)
                taken.add(k)
            else:
                video.append({**s, "_n": 1})
                by_triplet.setdefault(key, []).append(len(video) - 1)
                taken.add(len(video) - 1)
    video.sort(key=lambda r: -r["score"])
    return [{k: v for k, v in r.items() if k != "_n"} for r in video[:per_video]]


class VidVRD2Model(SegmentRelationModel):
    """VidVRD-II: tracklet-pair network, focal losses, segment inference and association.

    Args:
        feat_dim: tracklet feature size (the data module's extractor's ``out_dim``).
        num_classes: object classes ``O + 1`` (injected).
        num_predicates: predicates including the background slot (injected); the network
            scores the ``num_predicates − 1`` foreground ones.
        hidden_dim, dropout, steps: :class:`TrackletPairModel` (768, 0.2, 3).
        head: predicate-classifier spec on ``f_v`` (default :class:`SegmentLinearHead`); it
            receives ``in_dim``, ``num_predicates`` (foreground), ``predicate_action`` /
            ``predicate_spatial`` (pattern names per column) and ``predicate_counts``.
        gamma: focal γ of both losses (2).
        per_segment: triplets kept per segment (100).
        per_video: relation instances kept per video after association (200).
        association_viou: vIoU a joined instance must exceed (0.5).
        association_score: ``sum`` | ``mean`` of the joined scores.
        class_names, predicate_names, predicate_counts, action_pattern, spatial_pattern:
            injected from the vocabulary.
    """

    def __init__(
        self,
        feat_dim: int,
        num_classes: int,
        num_predicates: int,
        hidden_dim: int = 768,
        dropout: float = 0.2,
        steps: int = 3,
        head: Mapping[str, Any] | None = None,
        gamma: float = 2.0,
        per_segment: int = 100,
        per_video: int = 200,
        association_viou: float = 0.5,
        association_score: str = "sum",
        class_names: Sequence[str] = (),
        predicate_names: Sequence[str] = (),
        predicate_counts: Sequence[int] = (),
        action_pattern: Sequence[str | None] = (),
        spatial_pattern: Sequence[str | None] = (),
    ) -> None:
        super().__init__()
        p = num_predicates - 1
        if p < 1:
            raise ValueError("VidVRD2Model needs at least one foreground predicate")
        inj = {
            "in_dim": hidden_dim,
            "num_predicates": p,
            "predicate_action": list(action_pattern)[1:] if len(action_pattern) else [None] * p,
            "predicate_spatial": list(spatial_pattern)[1:] if len(spatial_pattern) else [None] * p,
            "predicate_counts": list(predicate_counts)[1:] if len(predicate_counts) else [0] * p,
        }
        head_module = build_component(
            head or {"class_path": "tailgraph.modeling.segment_model.SegmentLinearHead"}, inj
        )
        self.net = TrackletPairModel(
            feat_dim, num_classes, p, hidden_dim, dropout, steps, head=head_module
        )
        self.feat_dim, self.gamma = feat_dim, gamma
        self.per_segment, self.per_video = per_segment, per_video
        self.association_viou, self.association_score = association_viou, association_score
        self.class_names, self.predicate_names = list(class_names), list(predicate_names)

    @property
    def head(self) -> nn.Module:
        return self.net.head

    def forward(self, batch: SegmentBatch) -> dict:
        if batch.feats.shape[1] != self.feat_dim:
            raise ValueError(
                f"tracklet features have {batch.feats.shape[1]} values, the model expects "
                f"feat_dim={self.feat_dim}"
            )
        return self.net(batch.feats, batch.pairs, batch.position)

    def losses(self, batch: SegmentBatch, out: dict) -> dict[str, torch.Tensor]:
        """``loss_obj`` (softmax focal on the tracklets) and ``loss_predicate`` (binary focal on
        the refined predicate logits)."""
        return {
            "loss_obj": focal_loss(out["object_logits"], batch.labels, self.gamma),
            "loss_predicate": binary_focal_loss(out["refined_logits"], batch.targets, self.gamma),
        }

    @torch.no_grad()
    def segment_predictions(self, batch: SegmentBatch, out: dict) -> list[SegmentPrediction]:
        """One :class:`SegmentPrediction` per segment of the batch: each segment's top
        ``per_segment`` triplets by ``s·p·o`` (background classes excluded)."""
        from types import SimpleNamespace

        vocab = SimpleNamespace(object_classes=self.class_names, predicates=self.predicate_names)
        sp, op, pp = out["sub_probs"][:, 1:], out["obj_probs"][:, 1:], out["pred_probs"]
        res = []
        for k, seg in enumerate(batch.segments):
            rows = (batch.pair_segment == k).nonzero().flatten()
            if rows.numel() == 0:
                res.append(SegmentPrediction(seg.video_id, seg.begin, []))
                continue
            joint = (
                sp[rows][:, :, None, None] * pp[rows][:, None, :, None] * op[rows][:, None, None, :]
            )
            n_s, n_p, n_o = joint.shape[1:]
            flat = joint.reshape(-1)
            top = flat.topk(min(self.per_segment, flat.numel()))
            idx = top.indices
            q = idx // (n_s * n_p * n_o)
            rem = idx % (n_s * n_p * n_o)
            trip = torch.stack([rem // (n_p * n_o) + 1, (rem // n_o) % n_p + 1, rem % n_o + 1], 1)
            res.append(
                SegmentPrediction(
                    seg.video_id,
                    seg.begin,
                    segment_instances(seg, trip.cpu(), top.values.cpu(), q.cpu(), vocab),
                )
            )
        return res

    def associate(self, segments: Sequence[Sequence[dict]]) -> list[dict]:
        """:func:`greedy_association` with this model's settings."""
        return greedy_association(
            segments, self.association_viou, self.per_video, self.association_score
        )


def segment_instances(
    segment: Segment,
    out_triplets: torch.Tensor,
    scores: torch.Tensor,
    pair_index: torch.Tensor,
    vocab: Any,
) -> list[dict]:
    """Relation instances of one segment from its scored triplets (``out_triplets [K, 3]``
    (subject class, predicate index, object class), ``scores [K]``, ``pair_index [K]`` local
    pair rows): the pair's common frames are the duration, the tracklets' boxes there the
    trajectories."""
    res = []
    for (sc, p, oc), score, q in zip(out_triplets.tolist(), scores.tolist(), pair_index.tolist()):
        a, b = (int(x) for x in segment.pairs[q])
        ta, tb = segment.tracklets[a], segment.tracklets[b]
        lo, hi = max(ta.begin, tb.begin), min(ta.end, tb.end)
        if hi <= lo:
            continue
        res.append(
            {
                "triplet": [
                    vocab.object_classes[sc],
                    vocab.predicates[p],
                    vocab.object_classes[oc],
                ],
                "score": float(score),
                "duration": [lo, hi],
                "sub_traj": ta.boxes[lo - ta.begin : hi - ta.begin].tolist(),
                "obj_traj": tb.boxes[lo - tb.begin : hi - tb.begin].tolist(),
            }
        )
    return res
