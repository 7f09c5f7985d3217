"""Open Images VRD exhaustive-pair classification metrics (the negative-mining protocol).

Every ordered pair of annotated boxes of an image is a candidate; a pair is a positive of
predicate ``p`` when the ground truth relates it with ``p`` and a negative otherwise (pairs
without any relation — "background" — are negatives of every predicate).

* ``AP_p`` — VOC all-point interpolated average precision of predicate ``p``'s scores over all
  candidate pairs of all images (``object_detection.utils.metrics.compute_average_precision``).
* ``mAP`` — mean of ``AP_p`` over the predicates that have at least one positive.
* ``mAP*`` — the same without the ignored predicates (default: ``under``).
* ``mAP_FG`` / ``mAP*_FG`` — the same computed over the positive (annotated) pairs only, i.e.
  how well the predicates are told apart once background pairs are removed.

A GT relation whose pair has no prediction row counts as a missed positive (it is in the
denominator of recall); duplicate prediction rows for one pair are an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.evaluation.vg import _as_arrays, _pred_arrays, paired
from tailgraph.evaluation.vidvrd import voc_ap

__all__ = ["average_precision", "evaluate_oi", "collect_pairs", "ap_metrics"]


def average_precision(
    scores: np.ndarray, labels: np.ndarray, num_positives: int | None = None
) -> float:
    """VOC all-point AP of binary ``labels`` ranked by ``scores`` (stable order on ties).

    Args:
        scores: ``[M]`` scores.
        labels: ``[M]`` bool positives.
        num_positives: positives in total (≥ ``labels.sum()``; positives never scored count as
            missed). Default ``labels.sum()``.
    Returns:
        AP in [0, 1]; NaN when there is no positive.
    """
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum()) if num_positives is None else int(num_positives)
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = labels[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    precision = ctp / np.maximum(ctp + cfp, 1)
    recall = ctp / n_pos
    return voc_ap(recall, precision)


def collect_pairs(
    gts: Sequence[Any], preds: Sequence[Any], num_columns: int, background: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated candidate-pair scores ``[M, R]``, multi-hot labels ``[M, R]`` and, per
    predicate, the GT relations whose pair was never scored."""
    first = 1 if background else 0
    nr = num_columns
    all_scores, all_labels, missed = [], [], np.zeros(nr, dtype=np.int64)
    for gt, pred in paired(gts, preds):
        gid, _, glabels, grels = _as_arrays(gt)
        _, _, _, _, pairs, scores = _pred_arrays(pred)
        n = len(glabels)
        if pairs.shape[0] and (scores.ndim != 2 or scores.shape != (pairs.shape[0], nr)):
            raise DataError(
                f"expected [{pairs.shape[0]}, {nr}] scores, got {list(scores.shape)}",
                sample=gid,
                field="predicate_scores",
            )
        if scores.size and not np.isfinite(scores).all():
            raise DataError(
                "predicate scores contain NaN or inf", sample=gid, field="predicate_scores"
            )
        if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
            raise DataError("pair index out of range", sample=gid, field="pairs")
        if grels.size and (grels[:, 2].min() < first or grels[:, 2].max() >= nr):
            raise DataError(
                f"GT predicate outside {first}..{nr - 1}", sample=gid, field="relations"
            )
        key = pairs[:, 0] * max(n, 1) + pairs[:, 1]
        if np.unique(key).shape[0] != key.shape[0]:
            raise DataError("a pair is scored twice", sample=gid, field="pairs")
        lab = np.zeros((pairs.shape[0], nr), dtype=bool)
        if grels.size:
            gkey = grels[:, 0] * max(n, 1) + grels[:, 1]
            pos = {int(k): i for i, k in enumerate(key)}
            for k, p in zip(gkey.tolist(), grels[:, 2].tolist()):
                row = pos.get(k)
                if row is None:
                    missed[p] += 1
                else:
                    lab[row, p] = True
        all_scores.append(scores.reshape(-1, nr))
        all_labels.append(lab)
    scores = np.concatenate(all_scores) if all_scores else np.zeros((0, nr))
    labels = np.concatenate(all_labels) if all_labels else np.zeros((0, nr), dtype=bool)
    return scores, labels, missed


def ap_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    missed: np.ndarray,
    predicates: Sequence[str],
    ignore: Sequence[str] = ("under",),
    background: bool = True,
) -> dict[str, Any]:
    """Per-predicate AP (all pairs and positive pairs only) and the four means."""
    first = 1 if background else 0
    nr = len(predicates)
    fg_rows = labels[:, first:].any(axis=1)
    out: dict[str, Any] = {"per_predicate_AP": {}, "per_predicate_AP_FG": {}}
    for p in range(first, nr):
        name = predicates[p]
        npos = int(labels[:, p].sum()) + int(missed[p])
        out["per_predicate_AP"][name] = average_precision(scores[:, p], labels[:, p], npos)
        out["per_predicate_AP_FG"][name] = average_precision(
            scores[fg_rows, p], labels[fg_rows, p], npos
        )
    skip = set(ignore)
    for suffix, table in (("", "per_predicate_AP"), ("_FG", "per_predicate_AP_FG")):
        vals = {k: v for k, v in out[table].items() if not np.isnan(v)}
        out[f"mAP{suffix}"] = float(np.mean(list(vals.values()))) if vals else 0.0
        star = [v for k, v in vals.items() if k not in skip]
        out[f"mAP*{suffix}"] = float(np.mean(star)) if star else 0.0
    for table in ("per_predicate_AP", "per_predicate_AP_FG"):  # JSON has no NaN: absent -> None
        out[table] = {k: (None if np.isnan(v) else float(v)) for k, v in out[table].items()}
    out["num_pairs"] = int(scores.shape[0])
    out["num_positive_pairs"] = int(fg_rows.sum())
    return out


def evaluate_oi(
    gts: Sequence[Any],
    preds: Sequence[Any],
    predicates: Sequence[str],
    ignore: Sequence[str] = ("under",),
    background: bool = True,
) -> dict[str, Any]:
    """Per-predicate AP, mAP, mAP*, mAP_FG and mAP*_FG over all candidate pairs.

    Args:
        gts: GT per image (:class:`SceneGraph` or dicts); relations ``(s, o, p)``.
        preds: per image ``pairs`` and ``predicate_scores`` (column 0 = no relation when
            ``background``).
        predicates: predicate names in column order (incl. ``__background__`` when
            ``background``).
        ignore: predicate names left out of the starred means.
    """
    scores, labels, missed = collect_pairs(gts, preds, len(predicates), background)
    return ap_metrics(scores, labels, missed, predicates, ignore, background)
