"""Image SGG evaluation with the VG150 protocol, numerically as Scene-Graph-Benchmark (SGB).

Pure numpy; one cheap pass per image, no Python loop over pairs or triplets.

Metrics (K any positive integers, default 20, 50, 100):

* ``R@K`` — graph constraint: one predicate per pair (argmax over foreground columns), pairs
  ranked by SGB's triple score ``max_fg_prob × subject_score × object_score``; recall of an
  image = |GT rels matched by the top K| / |GT rels|; the mean over images.
* ``ngR@K`` — no graph constraint: every (pair, predicate) scored
  ``subject_score × object_score × prob`` and the top ``max(100, K)`` kept.
* ``mR@K`` / ``ng-mR@K`` — SGB's mean recall: per predicate, the mean over the images that
  contain it of that image's per-predicate recall; then the mean over ALL foreground
  predicates, those absent from the test set counting 0 (reproduced SGB quirk).
* ``zR@K`` / ``ng-zR@K`` — recall of GT triplets (subject class, object class, predicate) in a
  given zero-shot set, averaged over the images that have at least one (computed only when a
  zero-shot set is given).
* ``A@K`` — SGB's pair accuracy: predictions whose (subject, object) is a GT pair, first K of
  that filtered list, Σ hits / Σ GT over images.
* ``per_predicate_R@K`` / ``per_predicate_ng-R@K`` — the per-predicate vectors behind mR
  (index i = predicate i+1).

Matching (SGB ``_compute_pred_matches``): a prediction matches a GT relation when subject
class, object class and predicate are equal and both boxes have IoU ≥ 0.5 with the +1 pixel
convention (``area = (x2-x1+1)(y2-y1+1)``), computed in float32 as SGB's ``boxlist_iou``.
Matching is many-to-many: duplicated GT triplets are each counted.

Reproduced quirks: images with no GT relation are skipped (they contribute to no metric);
images with no candidate pair are skipped too, not counted as recall 0; mR divides by the
number of foreground predicates. Tie policy (documented difference): SGB orders ties by
``torch.sort`` / numpy's unstable quicksort; tailgraph breaks ties by input order (stable),
so on tie-free inputs the numbers are identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tailgraph.errors import DataError

__all__ = [
    "evaluate_vg",
    "mean_at_k",
    "paired",
    "evaluate_image_vg",
    "evaluate_images_vg",
    "aggregate_vg",
    "aggregate_rows",
    "result_rows",
    "VGImageResult",
    "VGEvaluator",
    "box_iou_plus1",
    "top_k_stable",
]

NG_TOP = 100


def box_iou_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[len(a), len(b)]`` IoU with the +1 pixel convention, float32 (as SGB)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt + 1, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def top_k_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of a 1-d array, descending, ties by index.

    Uses a threshold from a strided subsample (cheap) and sorts only the candidates above it;
    falls back to ``argpartition`` when too few pass. Exact either way.
    """
    n = scores.shape[0]
    if k >= n:
        return np.lexsort((np.arange(n), -scores))
    cand = None
    if n > 20 * k:
        stride = max(1, n // (8 * k))
        sub = scores[::stride]
        m = max(1, k // stride)
        if m < sub.shape[0]:
            t = np.partition(sub, sub.shape[0] - m)[sub.shape[0] - m]
            c = np.flatnonzero(scores >= t)
            if c.shape[0] >= k:
                cand = c
    if cand is None:
        part = np.argpartition(-scores, k - 1)[:k]
        t = scores[part].min()
        cand = np.flatnonzero(scores >= t)
    order = np.lexsort((cand, -scores[cand]))
    return cand[order[:k]]


@dataclass
class VGImageResult:
    """Per-image sufficient statistics (what the DDP metric gathers)."""

    ks: tuple[int, ...]
    gt_count: int
    recall: dict[int, float]
    ng_recall: dict[int, float]
    # per predicate present in the image: predicate id -> (hits per K), count
    pred_ids: np.ndarray
    pred_counts: np.ndarray
    pred_hits: dict[int, np.ndarray]
    ng_pred_hits: dict[int, np.ndarray]
    zs_recall: dict[int, float] | None = None
    ng_zs_recall: dict[int, float] | None = None
    pair_hits: dict[int, int] = field(default_factory=dict)


def _matches(
    gt_trip: np.ndarray, gt_boxes: np.ndarray, pr_trip: np.ndarray, pr_boxes: np.ndarray, thr: float
) -> np.ndarray:
    """``[G, M]`` bool: prediction m matches GT g (labels equal, both IoUs ≥ thr)."""
    if pr_trip.shape[0] == 0:
        return np.zeros((gt_trip.shape[0], 0), dtype=bool)
    label_eq = (gt_trip[:, None, :] == pr_trip[None, :, :]).all(axis=2)
    if not label_eq.any():
        return label_eq
    sub_iou = box_iou_plus1(gt_boxes[:, :4], pr_boxes[:, :4])
    obj_iou = box_iou_plus1(gt_boxes[:, 4:], pr_boxes[:, 4:])
    return label_eq & (sub_iou >= thr) & (obj_iou >= thr)


def evaluate_image_vg(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_rels: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    obj_scores: np.ndarray,
    pairs: np.ndarray,
    rel_scores: np.ndarray,
    *,
    mode: str = "predcls",
    ks: Sequence[int] = (20, 50, 100),
    zeroshot: set[tuple[int, int, int]] | None = None,
    iou_thresh: float = 0.5,
) -> VGImageResult | None:
    """Evaluate one image. Returns ``None`` when SGB skips it (no GT rels / no pairs).

    Args:
        gt_boxes ``[Ng, 4]``, gt_labels ``[Ng]``, gt_rels ``[G, 3]`` (s, o, predicate ≥ 1).
        boxes ``[N, 4]``, labels ``[N]``, obj_scores ``[N]``: predicted objects (ignored and
            replaced by the GT in ``predcls``; scores replaced by 1).
        pairs ``[P, 2]``, rel_scores ``[P, R]`` (column 0 = background).
    """
    ks = tuple(int(k) for k in ks)
    gt_rels = np.asarray(gt_rels, dtype=np.int64).reshape(-1, 3)
    if gt_rels.shape[0] == 0:
        return None
    if mode == "predcls":
        boxes, labels = gt_boxes, gt_labels
        obj_scores = np.ones(len(gt_labels), dtype=np.float32)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0:
        return None
    boxes = np.asarray(boxes, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    obj_scores = np.asarray(obj_scores, dtype=np.float32)
    rel_scores = np.asarray(rel_scores, dtype=np.float32)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32)
    gt_labels = np.asarray(gt_labels, dtype=np.int64)
    kmax = max(ks)
    G = gt_rels.shape[0]
    gs, go, gp = gt_rels[:, 0], gt_rels[:, 1], gt_rels[:, 2]
    gt_trip = np.stack([gt_labels[gs], gp, gt_labels[go]], axis=1)
    gt_b = np.concatenate([gt_boxes[gs], gt_boxes[go]], axis=1)

    # --- graph constraint: SGB PostProcessor ranking (triple score, descending)
    fg = rel_scores[:, 1:]
    cls = fg.argmax(axis=1)
    rel_max = fg[np.arange(fg.shape[0]), cls]
    ps, po = pairs[:, 0], pairs[:, 1]
    triple = rel_max * obj_scores[ps] * obj_scores[po]
    order = np.lexsort((np.arange(triple.shape[0]), -triple))
    # rows needed: top kmax overall, plus the top kmax of predictions on GT pairs (A@K)
    gt_pair_keys = np.unique(gs * (1 << 20) + go)
    in_gt_pair = np.isin(ps[order] * (1 << 20) + po[order], gt_pair_keys)
    pair_rows = np.flatnonzero(in_gt_pair)[:kmax]
    need = np.union1d(np.arange(min(kmax, order.shape[0])), pair_rows)
    sel = order[need]
    pr_trip = np.stack([labels[ps[sel]], cls[sel] + 1, labels[po[sel]]], axis=1)
    pr_b = np.concatenate([boxes[ps[sel]], boxes[po[sel]]], axis=1)
    m_all = _matches(gt_trip, gt_b, pr_trip, pr_b, iou_thresh)  # [G, len(need)]
    pos_in_need = {int(r): i for i, r in enumerate(need)}

    recall, hit_k = {}, {}
    top_cols = np.array([pos_in_need[r] for r in range(min(kmax, order.shape[0]))], dtype=np.int64)
    for k in ks:
        h = m_all[:, top_cols[:k]].any(axis=1) if top_cols.size else np.zeros(G, dtype=bool)
        hit_k[k] = h
        recall[k] = float(h.sum()) / G
    pair_hits = {}
    pcols = np.array([pos_in_need[int(r)] for r in pair_rows], dtype=np.int64)
    for k in ks:
        pair_hits[k] = int(m_all[:, pcols[:k]].any(axis=1).sum()) if pcols.size else 0

    # --- no graph constraint: top max(100, K) over all (pair, fg predicate)
    ng_scores = (obj_scores[ps] * obj_scores[po])[:, None] * fg
    flat = ng_scores.ravel()
    top = top_k_stable(flat, max(NG_TOP, kmax))
    nr = fg.shape[1]
    tp, tc = top // nr, top % nr
    ng_trip = np.stack([labels[ps[tp]], tc + 1, labels[po[tp]]], axis=1)
    ng_b = np.concatenate([boxes[ps[tp]], boxes[po[tp]]], axis=1)
    m_ng = _matches(gt_trip, gt_b, ng_trip, ng_b, iou_thresh)
    ng_recall, ng_hit_k = {}, {}
    for k in ks:
        h = m_ng[:, :k].any(axis=1)
        ng_hit_k[k] = h
        ng_recall[k] = float(h.sum()) / G

    pred_ids, inverse = np.unique(gp, return_inverse=True)
    counts = np.bincount(inverse, minlength=pred_ids.shape[0])
    pred_hits = {k: np.bincount(inverse, weights=hit_k[k], minlength=pred_ids.shape[0]) for k in ks}
    ng_pred_hits = {
        k: np.bincount(inverse, weights=ng_hit_k[k], minlength=pred_ids.shape[0]) for k in ks
    }

    zs = ng_zs = None
    if zeroshot is not None:
        keys = [(int(a), int(b), int(c)) for a, b, c in zip(gt_labels[gs], gt_labels[go], gp)]
        zmask = np.array([key in zeroshot for key in keys], dtype=bool)
        if zmask.any():
            zs = {k: float(hit_k[k][zmask].sum()) / float(zmask.sum()) for k in ks}
            ng_zs = {k: float(ng_hit_k[k][zmask].sum()) / float(zmask.sum()) for k in ks}
    return VGImageResult(
        ks, G, recall, ng_recall, pred_ids, counts, pred_hits, ng_pred_hits, zs, ng_zs, pair_hits
    )


def result_rows(r: VGImageResult) -> tuple[np.ndarray, np.ndarray]:
    """Flatten one image's result into fixed-width float64 rows (what DDP gathers).

    Returns:
        ``(image_row [2 + 5K], predicate_rows [Q, 2 + 2K])``: the image row holds
        ``gt_count, R@k…, ngR@k…, pair_hits@k…, has_zeroshot, zR@k…, ng-zR@k…``; each
        predicate row ``predicate, count, hits@k…, ng_hits@k…`` for a predicate of the image.
    """
    ks = r.ks
    has_zs = r.zs_recall is not None
    img = [float(r.gt_count)]
    img += (
        [r.recall[k] for k in ks]
        + [r.ng_recall[k] for k in ks]
        + [float(r.pair_hits[k]) for k in ks]
    )
    img += [1.0 if has_zs else 0.0]
    img += [r.zs_recall[k] if has_zs else 0.0 for k in ks] + [
        r.ng_zs_recall[k] if has_zs else 0.0 for k in ks
    ]
    pred = np.column_stack(
        [r.pred_ids, r.pred_counts] + [r.pred_hits[k] for k in ks] + [r.ng_pred_hits[k] for k in ks]
    )
    return np.asarray(img, dtype=np.float64), pred.astype(np.float64)


def aggregate_rows(
    image_rows: np.ndarray,
    predicate_rows: np.ndarray,
    num_predicates: int,
    ks: Sequence[int] = (20, 50, 100),
    zeroshot: bool = False,
) -> dict[str, Any]:
    """The flat metric dict from stacked :func:`result_rows` (see the module docstring).

    Args:
        image_rows: ``[M, 2 + 5K]`` one row per evaluated image.
        predicate_rows: ``[Q, 2 + 2K]`` one row per (image, predicate present in it).
        num_predicates: predicate columns incl. background (mR divides by ``num_predicates - 1``).
        zeroshot: report ``zR@K`` / ``ng-zR@K`` (0 when no image has a zero-shot GT).
    """
    ks = tuple(int(k) for k in ks)
    nk = len(ks)
    img = np.asarray(image_rows, dtype=np.float64).reshape(-1, 2 + 5 * nk)
    pr = np.asarray(predicate_rows, dtype=np.float64).reshape(-1, 2 + 2 * nk)
    m = img.shape[0]
    nfg = num_predicates - 1
    if pr.shape[0] and pr[:, 0].max() >= num_predicates:
        raise DataError(
            f"GT predicate {int(pr[:, 0].max())} >= num_predicates {num_predicates}",
            field="relations",
        )
    pid = pr[:, 0].astype(np.int64)
    nimg = np.bincount(pid, minlength=num_predicates)
    has_zs = img[:, 1 + 3 * nk] > 0
    total_gt = img[:, 0].sum()
    out: dict[str, Any] = {}
    for j, k in enumerate(ks):
        out[f"R@{k}"] = float(img[:, 1 + j].mean()) if m else 0.0
        out[f"ngR@{k}"] = float(img[:, 1 + nk + j].mean()) if m else 0.0
        for prefix, col in (("", 2 + j), ("ng-", 2 + nk + j)):
            per_image = pr[:, col] / np.maximum(pr[:, 1], 1)
            sums = np.bincount(pid, weights=per_image, minlength=num_predicates)
            per_pred = np.where(nimg > 0, sums / np.maximum(nimg, 1), 0.0)[1:]
            out[f"{prefix}mR@{k}"] = float(per_pred.sum() / nfg) if nfg > 0 else 0.0
            out[f"per_predicate_{prefix}R@{k}"] = per_pred.tolist()
        if zeroshot:
            out[f"zR@{k}"] = float(img[has_zs, 2 + 3 * nk + j].mean()) if has_zs.any() else 0.0
            out[f"ng-zR@{k}"] = float(img[has_zs, 2 + 4 * nk + j].mean()) if has_zs.any() else 0.0
        out[f"A@{k}"] = float(img[:, 1 + 2 * nk + j].sum() / total_gt) if total_gt else 0.0
    out["num_images"] = int(m)
    return out


def aggregate_vg(
    results: Iterable[VGImageResult | None],
    num_predicates: int,
    ks: Sequence[int] = (20, 50, 100),
    zeroshot: bool = False,
) -> dict[str, Any]:
    """Combine per-image results (``None`` = skipped image) into the flat metric dict."""
    ks = tuple(int(k) for k in ks)
    rows = [result_rows(r) for r in results if r is not None]
    img = np.stack([a for a, _ in rows]) if rows else np.zeros((0, 2 + 5 * len(ks)))
    pr = np.concatenate([b for _, b in rows]) if rows else np.zeros((0, 2 + 2 * len(ks)))
    return aggregate_rows(img, pr, num_predicates, ks, zeroshot)


def _as_arrays(gt: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(gt, dict):
        return (
            gt["image_id"],
            np.asarray(gt["boxes"], np.float32).reshape(-1, 4),
            np.asarray(gt["labels"], np.int64),
            np.asarray(gt["relations"], np.int64).reshape(-1, 3),
        )
    return gt.image_id, gt.boxes.numpy(), gt.labels.numpy(), gt.relations.numpy()


def _pred_arrays(p: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(p, dict):
        return (
            p["image_id"],
            np.asarray(p["boxes"], np.float32).reshape(-1, 4),
            np.asarray(p["labels"], np.int64),
            np.asarray(p["label_scores"], np.float32),
            np.asarray(p["pairs"], np.int64).reshape(-1, 2),
            np.asarray(p["predicate_scores"], np.float32),
        )
    return (
        p.image_id,
        p.boxes.numpy(),
        p.labels.numpy(),
        p.label_scores.numpy(),
        p.pairs.numpy(),
        p.predicate_scores.numpy(),
    )


def paired(gts: Sequence[Any], preds: Sequence[Any]) -> Iterable[tuple[Any, Any]]:
    """Yield ``(gt, prediction)`` matched by ``image_id``.

    Raises :class:`DataError` for a duplicated prediction, a GT image without prediction, and
    (after the last GT) predictions for images that are not in the ground truth.
    """
    by_id: dict[Any, Any] = {}
    for q in preds:
        qid = q["image_id"] if isinstance(q, dict) else q.image_id
        if qid in by_id:
            raise DataError("duplicate prediction", sample=qid, field="image_id")
        by_id[qid] = q
    for gt in gts:
        gid = gt["image_id"] if isinstance(gt, dict) else gt.image_id
        if gid not in by_id:
            raise DataError(
                "no prediction for this ground-truth image", sample=gid, field="image_id"
            )
        yield gt, by_id.pop(gid)
    if by_id:
        raise DataError(
            f"{len(by_id)} prediction(s) for images not in the ground truth, e.g. "
            f"{next(iter(by_id))!r}",
            field="image_id",
        )


def evaluate_images_vg(
    gts: Sequence[Any],
    preds: Sequence[Any],
    mode: str = "predcls",
    ks: Sequence[int] = (20, 50, 100),
    zeroshot: set[tuple[int, int, int]] | None = None,
    iou_thresh: float = 0.5,
) -> tuple[list[VGImageResult | None], int | None]:
    """Validate and evaluate matched GT / prediction lists image by image.

    Returns:
        ``(per-image results, number of predicate columns seen or None)``.
    """
    if mode not in ("predcls", "sgcls", "sgdet"):
        raise DataError(f"unknown mode {mode!r}", field="mode")
    results: list[VGImageResult | None] = []
    ncol = None
    for gt, pred in paired(gts, preds):
        gid, gboxes, glabels, grels = _as_arrays(gt)
        _, boxes, labels, scores, pairs, rel_scores = _pred_arrays(pred)
        if rel_scores.size and not np.isfinite(rel_scores).all():
            raise DataError(
                "predicate scores contain NaN or inf", sample=gid, field="predicate_scores"
            )
        if pairs.size and (
            pairs.min() < 0 or pairs.max() >= (len(glabels) if mode == "predcls" else len(labels))
        ):
            raise DataError("pair index out of range", sample=gid, field="pairs")
        if pairs.shape[0] and (rel_scores.ndim != 2 or rel_scores.shape[0] != pairs.shape[0]):
            raise DataError(
                f"expected one score row per pair ({pairs.shape[0]}), got shape "
                f"{list(rel_scores.shape)}",
                sample=gid,
                field="predicate_scores",
            )
        if rel_scores.ndim == 2 and rel_scores.shape[0]:
            if ncol is not None and rel_scores.shape[1] != ncol:
                raise DataError(
                    f"{rel_scores.shape[1]} predicate columns, other images have {ncol}",
                    sample=gid,
                    field="predicate_scores",
                )
            ncol = rel_scores.shape[1]
        results.append(
            evaluate_image_vg(
                gboxes,
                glabels,
                grels,
                boxes,
                labels,
                scores,
                pairs,
                rel_scores,
                mode=mode,
                ks=ks,
                zeroshot=zeroshot,
                iou_thresh=iou_thresh,
            )
        )
    return results, ncol


def evaluate_vg(
    gts: Sequence[Any],
    preds: Sequence[Any],
    mode: str = "predcls",
    ks: Sequence[int] = (20, 50, 100),
    zeroshot_triplets: Iterable[Sequence[int]] | None = None,
    iou_thresh: float = 0.5,
    num_predicates: int | None = None,
) -> dict[str, Any]:
    """Evaluate a test set (see the module docstring for every metric).

    Args:
        gts: ground truth per image: :class:`SceneGraph` or dicts with ``image_id``, ``boxes``,
            ``labels``, ``relations``.
        preds: predictions per image (:class:`Predictions` or dicts), matched to ``gts`` by
            ``image_id`` (any order; every GT image needs one prediction).
        mode: ``predcls`` | ``sgcls`` | ``sgdet``.
        ks: the K values.
        zeroshot_triplets: ``(subject_class, object_class, predicate)`` rows.
        num_predicates: predicate columns incl. background (default: from the scores).
    Returns:
        Flat dict of fractions in [0, 1] plus ``per_predicate_*`` lists and ``num_images``.
    """
    zs = (
        None if zeroshot_triplets is None else {tuple(int(v) for v in t) for t in zeroshot_triplets}
    )
    results, ncol = evaluate_images_vg(gts, preds, mode, ks, zs, iou_thresh)
    ncol = num_predicates or ncol
    if ncol is None:
        ncol = 1 + max(
            (int(_as_arrays(g)[3][:, 2].max()) for g in gts if len(_as_arrays(g)[3])), default=0
        )
    return aggregate_vg(results, ncol, ks, zeroshot=zs is not None)


class VGEvaluator:
    """Streaming evaluator: ``reset()``, ``update(gts, preds)``, ``compute()``.

    Each ``update`` evaluates its images at once and keeps only per-image statistics, so
    memory is bounded by one chunk of predictions however many images are evaluated.

    Args:
        mode, ks, zeroshot_triplets, iou_thresh, num_predicates: as :func:`evaluate_vg`.
    """

    def __init__(
        self,
        mode: str = "predcls",
        ks: Sequence[int] = (20, 50, 100),
        zeroshot_triplets=None,
        iou_thresh: float = 0.5,
        num_predicates: int | None = None,
    ) -> None:
        self.mode, self.ks, self.iou_thresh, self.num_predicates = (
            mode,
            tuple(int(k) for k in ks),
            iou_thresh,
            num_predicates,
        )
        self.zeroshot = (
            None
            if zeroshot_triplets is None
            else {tuple(int(v) for v in t) for t in zeroshot_triplets}
        )
        self.reset()

    def reset(self) -> None:
        self._img: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self._ncol: int | None = self.num_predicates

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        results, ncol = evaluate_images_vg(
            gts, preds, self.mode, self.ks, self.zeroshot, self.iou_thresh
        )
        self._ncol = self._ncol or ncol
        for r in results:
            if r is not None:
                a, b = result_rows(r)
                self._img.append(a)
                self._pred.append(b)

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Stacked per-image and per-(image, predicate) rows collected so far."""
        nk = len(self.ks)
        img = np.stack(self._img) if self._img else np.zeros((0, 2 + 5 * nk))
        pr = np.concatenate(self._pred) if self._pred else np.zeros((0, 2 + 2 * nk))
        return img, pr

    def compute(self) -> dict[str, Any]:
        img, pr = self.rows()
        ncol = self._ncol or (int(pr[:, 0].max()) + 1 if pr.shape[0] else 1)
        return aggregate_rows(img, pr, ncol, self.ks, zeroshot=self.zeroshot is not None)


def mean_at_k(
    results_by_task: dict[str, dict[str, Any]], ks: Sequence[int] = (20, 50, 100)
) -> dict[str, float]:
    """HML's Mean@K (Table 1b): the average of R@K and mR@K over the tasks given.

    Args:
        results_by_task: e.g. ``{"predcls": {...}, "sgcls": {...}, "sgdet": {...}}`` as returned
            by :func:`evaluate_vg` for each task.
    Returns:
        ``{"Mean@K": ...}`` for every K.
    """
    if not results_by_task:
        raise DataError("no task results given", field="results_by_task")
    out = {}
    for k in ks:
        vals = []
        for task, m in results_by_task.items():
            if f"R@{k}" not in m or f"mR@{k}" not in m:
                raise DataError(f"results of {task!r} lack R@{k} / mR@{k}", field=task)
            vals += [m[f"R@{k}"], m[f"mR@{k}"]]
        out[f"Mean@{k}"] = float(np.mean(vals))
    return out
