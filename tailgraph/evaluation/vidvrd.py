"""ImageNet-VidVRD evaluation (VidVRD-helper ``evaluation/visual_relation_detection.py``).

Inputs per video: lists of relation instances ``{"triplet": [subject, predicate, object],
"duration": [begin, end), "sub_traj": [[x1, y1, x2, y2] per frame], "obj_traj": [...]}``
(predictions also carry ``"score"``); boxes are inclusive pixel coordinates.

* ``viou`` — volume IoU of two trajectories: 0 when the durations are disjoint; otherwise the
  summed per-frame intersections (+1 convention) over the overlap, divided by the summed box
  areas of both trajectories over their *whole* durations minus that overlap.
* Relation detection, per video: predictions sorted by score (stable, descending); each takes
  the not-yet-detected GT with the same triplet and the largest ``min(viou_sub, viou_obj)``
  if that is ≥ 0.5 (first GT on ties). ``RelDet_mAP`` = mean over videos of the VOC all-point
  AP; ``RelDet_R@N`` = Σ TPs among each video's first N predictions / Σ GT (float32 as the
  reference).
* Relation tagging: unique predicted triplets in score order; ``RelTag_P@N`` = precision at
  ``min(N, #unique)`` (videos with fewer unique triplets are not penalised; 0 without
  predictions), averaged over GT videos.
* ``mR@N`` (not in VidVRD-helper; used by DLL): per predicate, hits of its GT relations among
  each video's first N predictions / its GT count, both summed over videos, averaged over the
  predicates present in the GT (or over ``predicates`` when given, absent ones counting 0).
  ``Mean`` = average of mR@50, mR@100, R@50, R@100 (DLL Table 1).

Videos with no GT relation are skipped; predictions for videos not in the GT are ignored; GT
videos without predictions count with an empty list — all as the reference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.ops.tracks import viou

__all__ = [
    "viou",
    "voc_ap",
    "evaluate_vidvrd",
    "video_stats",
    "aggregate_video_stats",
    "VideoStats",
    "read_vidvrd_results",
    "check_relation_instances",
]

EPS32 = np.finfo(np.float32).eps


def _traj(rel: Mapping[str, Any], key: str, vid: Any, i: int) -> np.ndarray:
    try:
        t = np.asarray(rel[key], dtype=np.float64).reshape(-1, 4)
    except KeyError:
        raise DataError(f"missing key '{key}'", sample=f"{vid} relation {i}", field=key) from None
    except (ValueError, TypeError):
        raise DataError(
            "trajectory is not a list of [x1, y1, x2, y2] boxes",
            sample=f"{vid} relation {i}",
            field=key,
        ) from None
    b, e = rel["duration"]
    if t.shape[0] != e - b:
        raise DataError(
            f"{t.shape[0]} boxes for duration [{b}, {e})", sample=f"{vid} relation {i}", field=key
        )
    if not np.isfinite(t).all():
        raise DataError("non-finite box values", sample=f"{vid} relation {i}", field=key)
    return t


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC all-point interpolated AP (``use_07_metric=False``)."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _volume(t: np.ndarray) -> float:
    return float(((t[:, 2] - t[:, 0] + 1) * (t[:, 3] - t[:, 1] + 1)).sum())


def _overlap(t1: np.ndarray, b1: int, e1: int, t2: np.ndarray, b2: int, e2: int) -> float:
    """Summed per-frame intersection (+1 convention) over the common frames."""
    lo, hi = max(b1, b2), min(e1, e2)
    if lo >= hi:
        return 0.0
    r1 = t1[lo - b1 : hi - b1]
    r2 = t2[lo - b2 : hi - b2]
    iw = np.minimum(r1[:, 2], r2[:, 2]) - np.maximum(r1[:, 0], r2[:, 0]) + 1
    ih = np.minimum(r1[:, 3], r2[:, 3]) - np.maximum(r1[:, 1], r2[:, 1]) + 1
    return float((np.maximum(iw, 0) * np.maximum(ih, 0)).sum())


def _flat_trajectories(rels: list, idx: np.ndarray, vid: Any):
    """Concatenated subject / object boxes of ``rels[idx]``, their frame offsets, durations
    and volumes (validated as :func:`_traj`)."""
    subs, objs, begins, ends = [], [], [], []
    for i in idx.tolist():
        r = rels[i]
        subs.append(_traj(r, "sub_traj", vid, i))
        objs.append(_traj(r, "obj_traj", vid, i))
        begins.append(int(r["duration"][0]))
        ends.append(int(r["duration"][1]))
    lengths = np.asarray([t.shape[0] for t in subs], dtype=np.int64)
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    sub = np.concatenate(subs) if subs else np.zeros((0, 4))
    obj = np.concatenate(objs) if objs else np.zeros((0, 4))

    def volumes(t: np.ndarray) -> np.ndarray:
        area = (t[:, 2] - t[:, 0] + 1) * (t[:, 3] - t[:, 1] + 1)
        out = np.zeros(lengths.shape[0])
        nz = lengths > 0
        if nz.any():
            out[nz] = np.add.reduceat(area, off[:-1][nz])
        return out

    return sub, obj, off, np.asarray(begins), np.asarray(ends), volumes(sub), volumes(obj)


def _pair_overlaps(pt, gt_, pi, gj):
    """Summed per-frame intersections (+1 convention) of trajectory pairs ``(pi[k], gj[k])``,
    all pairs at once: the common frames of every pair are laid out in one flat index."""
    p_box, p_off, p_b, p_e = pt
    g_box, g_off, g_b, g_e = gt_
    lo = np.maximum(p_b[pi], g_b[gj])
    hi = np.minimum(p_e[pi], g_e[gj])
    n = np.maximum(hi - lo, 0)
    total = int(n.sum())
    out = np.zeros(pi.shape[0])
    if total == 0:
        return out
    pair = np.repeat(np.arange(pi.shape[0]), n)
    step = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
    t = np.repeat(lo, n) + step
    a = p_box[p_off[pi][pair] + t - p_b[pi][pair]]
    b = g_box[g_off[gj][pair] + t - g_b[gj][pair]]
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    nz = n > 0
    out[nz] = np.add.reduceat(inter, (np.cumsum(n) - n)[nz])
    return out


def _detect(
    gt: list, preds: list, vid: Any, thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of one video. Returns (tp per sorted prediction, gt index or -1, sorted
    scores).

    The vIoU of every label-matched (prediction, GT) pair is computed at once (vectorised
    over pairs and frames); the greedy assignment, which depends on what is already
    detected, then walks the predictions in score order over that small table.
    """
    scores = np.array([float(p["score"]) for p in preds], dtype=np.float64)
    if not np.isfinite(scores).all():
        raise DataError("prediction score is NaN or inf", sample=vid, field="score")
    order = np.argsort(-scores, kind="stable")
    n, g = len(preds), len(gt)
    trip_id: dict[tuple, int] = {}
    g_tid = np.asarray([trip_id.setdefault(tuple(r["triplet"]), len(trip_id)) for r in gt])
    p_tid = np.asarray([trip_id.get(tuple(p["triplet"]), -1) for p in preds], dtype=np.int64)
    tp = np.zeros(n, dtype=bool)
    which = np.full(n, -1)
    matched = np.flatnonzero(p_tid >= 0)
    if g == 0 or matched.shape[0] == 0:
        return tp, which, scores[order]
    # every (prediction, GT) pair with equal triplets
    by_t = np.argsort(g_tid, kind="stable")
    starts = np.searchsorted(g_tid[by_t], p_tid[matched], "left")
    counts = np.searchsorted(g_tid[by_t], p_tid[matched], "right") - starts
    pi_local = np.repeat(np.arange(matched.shape[0]), counts)
    gj = by_t[
        np.repeat(starts, counts)
        + np.arange(int(counts.sum()))
        - np.repeat(np.cumsum(counts) - counts, counts)
    ]
    gs, go, goff, gb, ge, gvs, gvo = _flat_trajectories(gt, np.arange(g), vid)
    ps, po, poff, pb, pe, pvs, pvo = _flat_trajectories(preds, matched, vid)
    os_ = _pair_overlaps((ps, poff, pb, pe), (gs, goff, gb, ge), pi_local, gj)
    oo = _pair_overlaps((po, poff, pb, pe), (go, goff, gb, ge), pi_local, gj)
    ov = np.minimum(os_ / (pvs[pi_local] + gvs[gj] - os_), oo / (pvo[pi_local] + gvo[gj] - oo))
    table = np.full((n, g), -np.inf)
    table[matched[pi_local], gj] = ov
    detected = np.zeros(g, dtype=bool)
    can = (table >= thr).any(axis=1)
    for rank, i in enumerate(order.tolist()):
        if not can[i]:  # type: ignore[index]
            continue
        row = np.where(detected, -np.inf, table[i])
        k = int(np.argmax(row))  # first GT on equal overlaps
        if row[k] >= thr:
            detected[k] = True
            tp[rank] = True
            which[rank] = k
    return tp, which, scores[order]


def _tagging_precision(gt: list, preds: list) -> np.ndarray:
    scores = np.array([float(p["score"]) for p in preds], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    gt_trip = {tuple(r["triplet"]) for r in gt}
    seen, hits = set(), []
    for i in order:
        t = tuple(preds[i]["triplet"])
        if t not in seen:
            seen.add(t)
            hits.append(t in gt_trip)
    tp = np.asarray(hits, dtype=bool)
    cum_tp = np.cumsum(tp).astype(np.float32)
    cum_fp = np.cumsum(~tp).astype(np.float32)
    return cum_tp / np.maximum(cum_tp + cum_fp, EPS32)


@dataclass
class VideoStats:
    """Per-video sufficient statistics of the VidVRD protocol (what DDP gathers)."""

    ap: float
    gt_count: int
    tp_at: dict[int, int]
    tag_precision_at: dict[int, float]
    predicate_hits_at: dict[int, dict[Any, int]]
    predicate_counts: dict[Any, int]


def _integral(v: Any) -> bool:
    return (
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and float(v) == int(v)
    )


def check_relation_instances(rels: Any, vid: Any, scored: bool) -> None:
    """Every relation instance of a video, validated once: a 3-string ``triplet``, a
    ``duration`` of two integers ``0 <= begin < end``, ``end - begin`` ordered boxes per
    trajectory, and (predictions) a finite number ``score``."""
    if not isinstance(rels, (list, tuple)):
        raise DataError("expected a list of relation instances", sample=vid, field="results")
    for i, r in enumerate(rels):
        where = f"{vid} relation {i}"
        if not isinstance(r, Mapping):
            raise DataError("relation instance is not an object", sample=where)
        keys = ("triplet", "duration", "sub_traj", "obj_traj") + (("score",) if scored else ())
        for key in keys:
            if key not in r:
                raise DataError(f"missing key '{key}'", sample=where, field=key)
        t = r["triplet"]
        if not (
            isinstance(t, (list, tuple))
            and len(t) == 3
            and all(isinstance(x, str) and x for x in t)
        ):
            raise DataError(
                f"expected [subject, predicate, object] names, got {t!r}"[:200],
                sample=where,
                field="triplet",
            )
        d = r["duration"]
        if not (isinstance(d, (list, tuple)) and len(d) == 2 and all(_integral(x) for x in d)):
            raise DataError(
                f"expected [begin, end) frame integers, got {d!r}"[:200],
                sample=where,
                field="duration",
            )
        if not 0 <= int(d[0]) < int(d[1]):
            raise DataError(
                f"duration [{d[0]}, {d[1]}) is empty or negative", sample=where, field="duration"
            )
        if scored:
            sc = r["score"]
            if isinstance(sc, bool) or not isinstance(sc, (int, float, np.integer, np.floating)):
                raise DataError(f"score {sc!r} is not a number"[:200], sample=where, field="score")
        for key in ("sub_traj", "obj_traj"):
            box = _traj(r, key, vid, i)
            if (box[:, 2] < box[:, 0]).any() or (box[:, 3] < box[:, 1]).any():
                raise DataError("a box with x2 < x1 or y2 < y1", sample=where, field=key)


def video_stats(
    gt: list,
    preds: list,
    vid: Any = None,
    viou_threshold: float = 0.5,
    det_nreturns: Sequence[int] = (50, 100),
    tag_nreturns: Sequence[int] = (1, 5, 10),
) -> VideoStats:
    """Evaluate one video with at least one GT relation."""
    check_relation_instances(gt, vid, scored=False)
    check_relation_instances(preds, vid, scored=True)
    counts: dict[Any, int] = defaultdict(int)
    for r in gt:
        counts[r["triplet"][1]] += 1
    tp, which, _ = _detect(gt, list(preds), vid, viou_threshold)
    cum_tp = np.cumsum(tp).astype(np.float32)
    cum_fp = np.cumsum(~tp).astype(np.float32)
    rec = cum_tp / np.maximum(len(gt), EPS32)
    prec = cum_tp / np.maximum(cum_tp + cum_fp, EPS32)
    hits: dict[int, dict[Any, int]] = {}
    for n in det_nreturns:
        h: dict[Any, int] = defaultdict(int)
        for j in which[:n][tp[:n]]:
            h[gt[int(j)]["triplet"][1]] += 1
        hits[n] = dict(h)
    tag_prec = _tagging_precision(gt, list(preds))
    tag = {
        n: (float(tag_prec[min(n, tag_prec.size) - 1]) if tag_prec.size else 0.0)
        for n in tag_nreturns
    }
    return VideoStats(
        voc_ap(rec, prec),
        len(gt),
        {n: int(tp[:n].sum()) for n in det_nreturns},
        tag,
        hits,
        dict(counts),
    )


def aggregate_video_stats(
    stats: Sequence[VideoStats],
    det_nreturns: Sequence[int] = (50, 100),
    tag_nreturns: Sequence[int] = (1, 5, 10),
    predicates: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The metric dict from per-video statistics (see the module docstring)."""
    tot_gt = sum(v.gt_count for v in stats)
    counts: dict[Any, int] = defaultdict(int)
    for v in stats:
        for p, c in v.predicate_counts.items():
            counts[p] += c
    out: dict[str, Any] = {"RelDet_mAP": float(np.mean([v.ap for v in stats])) if stats else 0.0}
    vocab = list(predicates) if predicates is not None else sorted(counts, key=str)
    for n in det_nreturns:
        out[f"RelDet_R@{n}"] = float(
            np.float32(sum(v.tp_at[n] for v in stats)) / np.maximum(np.float32(tot_gt), EPS32)
        )
    for n in tag_nreturns:
        out[f"RelTag_P@{n}"] = (
            float(np.mean([v.tag_precision_at[n] for v in stats])) if stats else 0.0
        )
    for n in det_nreturns:
        hits: dict[Any, int] = defaultdict(int)
        for v in stats:
            for p, h in v.predicate_hits_at[n].items():
                hits[p] += h
        per = {p: (hits[p] / counts[p] if counts.get(p) else 0.0) for p in vocab}
        out[f"mR@{n}"] = float(np.mean(list(per.values()))) if per else 0.0
        out[f"per_predicate_R@{n}"] = {str(k): v for k, v in per.items()}
    if 50 in det_nreturns and 100 in det_nreturns:
        out["Mean"] = (out["mR@50"] + out["mR@100"] + out["RelDet_R@50"] + out["RelDet_R@100"]) / 4
    out["num_videos"] = len(stats)
    return out


def evaluate_vidvrd(
    groundtruth: Mapping[Any, list],
    prediction: Mapping[Any, list],
    viou_threshold: float = 0.5,
    det_nreturns: Sequence[int] = (50, 100),
    tag_nreturns: Sequence[int] = (1, 5, 10),
    predicates: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Evaluate relation detection and tagging (see the module docstring).

    Args:
        groundtruth: video id → GT relation instances.
        prediction: video id → predicted relation instances (with ``score``).
        predicates: the predicate vocabulary for mR (default: predicates present in the GT).
    Returns:
        ``RelDet_mAP``, ``RelDet_R@N``, ``RelTag_P@N``, ``mR@N``, ``Mean`` (when N covers 50 and
        100), ``per_predicate_R@N`` (dict predicate → recall) and ``num_videos``.
    """
    stats = [
        video_stats(gt, prediction.get(vid, []), vid, viou_threshold, det_nreturns, tag_nreturns)
        for vid, gt in groundtruth.items()
        if gt
    ]
    return aggregate_video_stats(stats, det_nreturns, tag_nreturns, predicates)


def read_vidvrd_results(path: str) -> dict[Any, list]:
    """Read official VidVRD results JSON (``{"results": {video: [...]}}``) with validation."""
    from tailgraph.io.interchange import read_json

    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise DataError(
            "expected an object with 'results' (video id -> relation instances)",
            file=path,
            field="results",
        )
    for vid, rels in doc["results"].items():
        if not isinstance(rels, list):
            raise DataError(
                "expected a list of relation instances", file=path, sample=vid, field="results"
            )
        for i, r in enumerate(rels):
            for key in ("triplet", "score", "duration", "sub_traj", "obj_traj"):
                if key not in r:
                    raise DataError(
                        f"missing key '{key}'", file=path, sample=f"{vid} relation {i}", field=key
                    )
    return doc["results"]
