"""Action Genome evaluation (STTran / TEMPURA ``BasicSceneGraphEvaluator``), frame level.

Ground truth per frame (tailgraph's AG layout): box 0 is the person (class 1), objects follow;
relations are the reference's triplets: attention and contacting ``(0, i, p)``, spatial
``(i, 0, p)``, with the 26 predicates in the order attention (0–2), spatial (3–8),
contacting (9–25). Predictions per frame: ``pairs`` ``[P, 2]`` = (person, object) and
``predicate_scores`` ``[P, 26]`` = attention distribution, spatial and contacting scores.

Each pair becomes the reference's three rows: attention ``(pair, [att, 0, 0])``, spatial with
the pair reversed ``(obj, person, [0, spa, 0])``, contacting ``(pair, [0, 0, con])``.

* ``with`` constraint: one prediction per row (argmax of the row, score = row max).
* ``semi``: attention rows (detected by ``col0 + col1 > 0``) → argmax; spatial rows
  (``col3 + col4 > 0``) and contacting rows (``col9 + col10 > 0``) → every predicate with score
  strictly above ``semi_threshold`` (0.9). A frame left with no prediction scores recall 0.
* ``no``: ``obj_score[s] · obj_score[o] · score`` for all 26 columns of all rows, top 100.
  Reproduced quirk: when a frame has ≤ 3 objects (26·3P < 100) zero-score entries enter the
  top 100 and can be hits.

Predictions are ranked by ``obj_score[s] · obj_score[o] · predicate_score``; matching as SGB
(labels equal, both IoU ≥ 0.5 with the +1 convention, many-to-many). ``R@K`` = mean over all
frames of |matched GT in top K| / |GT| (STTran). ``mR@K`` (TEMPURA) = mean over the 26
predicates of global hits / (count + 1e-10) — absent predicates count 0. Ties are broken by
input order (stable); the references use numpy's unstable sort. A frame with no GT relation is
an error (the reference asserts). ``attention_softmax=True`` applies STTran's in-evaluator
softmax to the attention columns (TEMPURA gives probabilities and does not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.evaluation.vg import (
    _as_arrays,
    _check_ks,
    _pred_arrays,
    box_iou_plus1,
    paired,
    top_k_stable,
)

__all__ = ["evaluate_ag", "AGEvaluator", "AG_NUM_PREDICATES", "ATTENTION", "SPATIAL", "CONTACTING"]

AG_NUM_PREDICATES = 26
ATTENTION = slice(0, 3)
SPATIAL = slice(3, 9)
CONTACTING = slice(9, 26)
NO_CONSTRAINT_TOP = 100


def _expand_rows(
    pairs: np.ndarray, scores: np.ndarray, attention_softmax: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's 3 rows per (person, object) pair: ``(row_pairs [3P, 2], rel [3P, 26])``."""
    p = pairs.shape[0]
    att = scores[:, ATTENTION].astype(np.float64)
    if attention_softmax:
        e = np.exp(att - att.max(axis=1, keepdims=True))
        att = e / e.sum(axis=1, keepdims=True)
    rel = np.zeros((3 * p, AG_NUM_PREDICATES), dtype=np.float64)
    rel[0::3, ATTENTION] = att
    rel[1::3, SPATIAL] = scores[:, SPATIAL]
    rel[2::3, CONTACTING] = scores[:, CONTACTING]
    rows = np.empty((3 * p, 2), dtype=np.int64)
    rows[0::3] = pairs
    rows[1::3] = pairs[:, ::-1]
    rows[2::3] = pairs
    return rows, rel


def _candidates(
    rows: np.ndarray, rel: np.ndarray, obj_scores: np.ndarray, constraint: str, threshold: float
):
    """(subject, object, predicate, predicate_score, rank_score) of every prediction."""
    if constraint == "with":
        pred = rel.argmax(axis=1)
        score = rel[np.arange(rel.shape[0]), pred]
        s, o = rows[:, 0], rows[:, 1]
    elif constraint == "semi":
        is_att = rel[:, 0] + rel[:, 1] > 0
        is_spa = rel[:, 3] + rel[:, 4] > 0
        is_con = rel[:, 9] + rel[:, 10] > 0
        att_rows = np.flatnonzero(is_att)
        att_pred = rel[att_rows].argmax(axis=1)
        multi = (is_spa | is_con)[:, None] & (rel > threshold)
        multi_rows, multi_pred = np.nonzero(multi)
        idx = np.concatenate([att_rows, multi_rows])
        pred = np.concatenate([att_pred, multi_pred])
        order = np.argsort(idx, kind="stable")  # keep the row order of the reference loop
        idx, pred = idx[order], pred[order]
        score = rel[idx, pred]
        s, o = rows[idx, 0], rows[idx, 1]
    elif constraint == "no":
        overall = (obj_scores[rows[:, 0]] * obj_scores[rows[:, 1]])[:, None] * rel
        top = top_k_stable(overall.ravel(), NO_CONSTRAINT_TOP)
        r, pred = top // AG_NUM_PREDICATES, top % AG_NUM_PREDICATES
        score = rel[r, pred]
        s, o = rows[r, 0], rows[r, 1]
    else:
        raise DataError(
            f"unknown constraint {constraint!r}; expected with, semi or no", field="constraint"
        )
    rank = obj_scores[s] * obj_scores[o] * score
    return s, o, pred, rank


class AGEvaluator:
    """Streaming AG evaluator for one constraint.

    Args:
        constraint: ``with`` | ``semi`` | ``no``.
        mode: ``predcls`` (GT boxes / labels, object scores 1) | ``sgcls`` | ``sgdet``.
        ks: K values (reference: 10, 20, 50, 100).
        semi_threshold: threshold of the ``semi`` constraint.
        iou_thresh: box IoU threshold.
        attention_softmax: STTran's softmax over the attention columns.
    """

    def __init__(
        self,
        constraint: str = "with",
        mode: str = "predcls",
        ks: Sequence[int] = (10, 20, 50),
        semi_threshold: float = 0.9,
        iou_thresh: float = 0.5,
        attention_softmax: bool = False,
    ) -> None:
        if constraint not in ("with", "semi", "no"):
            raise DataError(
                f"unknown constraint {constraint!r}; expected with, semi or no", field="constraint"
            )
        if mode not in ("predcls", "sgcls", "sgdet"):
            raise DataError(f"unknown mode {mode!r}", field="mode")
        self.constraint, self.mode, self.ks = constraint, mode, _check_ks(ks)
        if not (0.0 <= float(semi_threshold) <= 1.0):
            raise DataError(f"must be within [0, 1], got {semi_threshold}", field="semi_threshold")
        self.semi_threshold, self.iou_thresh, self.attention_softmax = (
            semi_threshold,
            iou_thresh,
            attention_softmax,
        )
        self.reset()

    def reset(self) -> None:
        self.recalls: dict[int, list[float]] = {k: [] for k in self.ks}
        self.order: list[int] = []
        self.hits = {k: np.zeros(AG_NUM_PREDICATES) for k in self.ks}
        self.counts = np.zeros(AG_NUM_PREDICATES)

    def update_frame(self, gt: Any, pred: Any, order: int | None = None) -> None:
        """Evaluate one frame; ``order`` (e.g. the GT index) sorts the per-frame recalls
        before they are averaged, so a prediction file in any order gives the same numbers."""
        if order is not None:
            self.order.append(int(order))
        gid, gboxes, glabels, grels = _as_arrays(gt)
        _, boxes, labels, scores, pairs, rel_scores = _pred_arrays(pred)
        if grels.shape[0] == 0:
            raise DataError(
                "frame has no GT relation (the AG evaluator requires at least one)",
                sample=gid,
                field="relations",
            )
        if grels.size and (grels[:, 2].min() < 0 or grels[:, 2].max() >= AG_NUM_PREDICATES):
            raise DataError("GT predicate outside 0..25", sample=gid, field="relations")
        if rel_scores.size and not np.isfinite(rel_scores).all():
            raise DataError(
                "predicate scores contain NaN or inf", sample=gid, field="predicate_scores"
            )
        if pairs.shape[0] and (
            rel_scores.ndim != 2 or rel_scores.shape != (pairs.shape[0], AG_NUM_PREDICATES)
        ):
            raise DataError(
                f"expected [{pairs.shape[0]}, 26] scores, got {list(rel_scores.shape)}",
                sample=gid,
                field="predicate_scores",
            )
        if self.mode == "predcls":
            boxes, labels, scores = gboxes, glabels, np.ones(len(glabels))
        if pairs.size and (pairs.min() < 0 or pairs.max() >= len(labels)):
            raise DataError("pair index out of range", sample=gid, field="pairs")
        scores = np.asarray(scores, dtype=np.float64)
        g = grels.shape[0]
        np.add.at(self.counts, grels[:, 2], 1)
        if pairs.shape[0] == 0:
            for k in self.ks:
                self.recalls[k].append(0.0)
            return
        rows, rel = _expand_rows(pairs, rel_scores, self.attention_softmax)
        s, o, p, rank = _candidates(rows, rel, scores, self.constraint, self.semi_threshold)
        if s.shape[0] == 0:  # reference: [[]] -> recall 0
            for k in self.ks:
                self.recalls[k].append(0.0)
            return
        order = np.lexsort((np.arange(rank.shape[0]), -rank))[: max(self.ks)]  # type: ignore[assignment]
        s, o, p = s[order], o[order], p[order]
        gt_trip = np.stack([glabels[grels[:, 0]], grels[:, 2], glabels[grels[:, 1]]], 1)
        pr_trip = np.stack([labels[s], p, labels[o]], 1)
        match = (gt_trip[:, None, :] == pr_trip[None, :, :]).all(axis=2)
        if match.any():
            match &= box_iou_plus1(gboxes[grels[:, 0]], boxes[s]) >= self.iou_thresh
            match &= box_iou_plus1(gboxes[grels[:, 1]], boxes[o]) >= self.iou_thresh
        for k in self.ks:
            hit = match[:, :k].any(axis=1)
            self.recalls[k].append(float(hit.sum()) / g)
            np.add.at(self.hits[k], grels[hit, 2], 1)

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        for gt, pred in paired(gts, preds):
            self.update_frame(gt, pred)

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        perm = None
        if self.order and len(self.order) == len(self.recalls[self.ks[0]]):
            perm = np.argsort(np.asarray(self.order), kind="stable")
        for k in self.ks:
            rec = self.recalls[k] if perm is None else [self.recalls[k][i] for i in perm]
            out[f"R@{k}"] = float(np.mean(rec)) if rec else 0.0
            per = self.hits[k] / (self.counts + 1e-10)
            out[f"mR@{k}"] = float(per.mean())
            out[f"per_predicate_R@{k}"] = per.tolist()
        out["num_frames"] = len(self.recalls[self.ks[0]])
        return out


def evaluate_ag(
    gts: Sequence[Any],
    preds: Sequence[Any],
    mode: str = "predcls",
    ks: Sequence[int] = (10, 20, 50),
    constraints: Sequence[str] = ("with", "semi", "no"),
    semi_threshold: float = 0.9,
    iou_thresh: float = 0.5,
    attention_softmax: bool = False,
) -> dict[str, dict[str, Any]]:
    """Evaluate frames under each constraint; returns ``{constraint: {R@K, mR@K, ...}}``."""
    out = {}
    for c in constraints:
        ev = AGEvaluator(c, mode, ks, semi_threshold, iou_thresh, attention_softmax)
        ev.update(gts, preds)
        out[c] = ev.compute()
    return out
