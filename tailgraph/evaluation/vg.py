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

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.ops.boxes import box_iou_plus1

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
    "predicate_confusion",
]

NG_TOP = 100


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


INF_RANK = np.iinfo(np.int64).max


@dataclass
class _Selected:
    """One image's ranked predictions that can match a GT relation (see :func:`_select`)."""

    rows: list[np.ndarray]  # per list (graph, pair-accuracy, no-graph): pair rows, best first
    cls: list[np.ndarray]  # predicate column (1-based) per row


FAST_MIN_ENTRIES = 40_000  # below this, every row's maximum is computed (cheap anyway)
SAMPLE_STRIDE = 61
REL_SLACK = 1e-6  # > the relative gap of (m × s) × o and (s × o) × m in float32


class _Workspace:
    """Scratch buffers reused across images (fresh large temporaries cost a page fault per
    4 KiB) and the score sample positions of the last shape seen."""

    def __init__(self) -> None:
        self.mask = np.zeros(0, dtype=bool)
        self.sample_shape: tuple[int, int] | None = None
        self.sample_idx = np.zeros(0, dtype=np.int64)

    def get_mask(self, n: int) -> np.ndarray:
        """A bool buffer of ``n`` (its zeroed tail pads it to whole 8-byte words)."""
        if self.mask.shape[0] < n + 8:
            self.mask = np.zeros(n + 8 + (-n) % 8, dtype=bool)
        self.mask[n:] = False
        return self.mask

    def samples(self, p: int, r: int) -> np.ndarray:
        """Strided positions of foreground scores in a flat ``[p, r]`` score array."""
        if self.sample_shape != (p, r):
            idx = np.arange(1, p * r, SAMPLE_STRIDE)
            self.sample_idx = idx[idx % r != 0]
            self.sample_rows = self.sample_idx // r
            self.sample_shape = (p, r)
        return self.sample_idx


def _true_positions(mask: np.ndarray, n: int) -> np.ndarray:
    """``np.flatnonzero(mask[:n])`` for a mostly-false mask whose tail past ``n`` is false:
    scans 8-byte words first, then only the nonzero words."""
    words = mask.view(np.uint64)
    w = np.flatnonzero(words != 0)
    if w.shape[0] == 0:
        return w
    f = np.flatnonzero(mask.reshape(-1, 8)[w])  # positions inside the nonzero words
    return w[f >> 3] * 8 + (f & 7)


def _select_fast(
    rel_scores: np.ndarray,
    os_: np.ndarray,
    oo: np.ndarray,
    weight: np.ndarray | None,
    kmax: int,
    ngk: int,
    ws: _Workspace,
    wmin: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Graph top-``kmax`` rows and no-graph top-``ngk`` flat entries without a per-row
    maximum over all rows (the costly part of a large image).

    A threshold τ from a strided sample of the weighted scores ``(s × o) × score`` keeps the
    entries ≥ τ (one vectorised comparison). The result is certified, else ``None`` (the
    caller takes the full path):

    * no graph constraint: ≥ ``ngk`` entries pass, so the top ``ngk`` are all among them;
    * graph constraint: the ``kmax``-th best triple of the rows that pass exceeds τ by more
      than the rounding gap between a row's triple and its best weighted entry, which is
      < τ for every other row.

    Returns:
        ``(graph_rows, graph_triples, ng_flat)`` with ``ng_flat`` indices into the
        ``[P, R-1]`` foreground scores, best first (ties by position).
    """
    p, r = rel_scores.shape
    nr = r - 1
    flat = rel_scores.reshape(-1)
    buf = ws.get_mask(p * r)
    mask = buf[: p * r]
    sample_idx = ws.samples(p, r)
    sample = flat[sample_idx]
    if weight is not None:  # the weighted values (s × o) × score, exactly as the full path
        sample = weight[ws.sample_rows] * sample
    total = p * nr
    m = max(2, (8 * ngk * sample.shape[0]) // total)
    for _ in range(3):
        if m >= sample.shape[0]:
            return None
        tau = np.partition(sample, sample.shape[0] - m)[sample.shape[0] - m]
        if not tau > 0:
            return None
        if weight is None:  # predcls: (1 × 1) × x = x
            np.greater_equal(flat, tau, out=mask)
            cand = _true_positions(buf, p * r)
            cand = cand[cand % r != 0]
            vals = raw = flat[cand]
        else:
            # a superset from one comparison per score (score ≥ τ / w, loosened by more than
            # the rounding of the division), then the exact weighted values
            if wmin > 0:
                thr = (np.float32(tau) / weight) * np.float32(1 - REL_SLACK)
            else:
                with np.errstate(divide="ignore"):
                    thr = (np.float32(tau) / weight) * np.float32(1 - REL_SLACK)
            np.greater_equal(rel_scores, thr[:, None], out=mask.reshape(p, r))
            cand = _true_positions(buf, p * r)
            cand = cand[cand % r != 0]
            raw = flat[cand]
            vals = weight[cand // r] * raw
            keep = vals >= tau
            cand, vals, raw = cand[keep], vals[keep], raw[keep]
        rows_of = cand // r  # non-decreasing
        first = np.empty(rows_of.shape[0], dtype=bool)
        if rows_of.shape[0]:
            first[0] = True
            np.not_equal(rows_of[1:], rows_of[:-1], out=first[1:])
        rows = rows_of[first]
        if cand.shape[0] >= ngk and rows.shape[0] >= kmax:
            break
        m *= 4
    else:
        return None
    fg_flat = rows_of * nr + cand % r - 1
    # a row's largest foreground score is among its candidates (it passes whatever passes), so
    # the row maxima are segment maxima of the candidates: the full path's values exactly
    trip = np.maximum.reduceat(raw, np.flatnonzero(first)) * os_[rows] * oo[rows]
    order = np.lexsort((rows, -trip))[:kmax]
    t_c = float(trip[order[-1]])
    if not (t_c >= tau if weight is None else t_c > tau * (1 + REL_SLACK)):
        return None
    sel = top_k_stable(vals, ngk)
    return rows[order], trip[order], fg_flat[sel]


def _select(
    obj_scores: np.ndarray,
    pairs: np.ndarray,
    rel_scores: np.ndarray,
    gt_pairs: np.ndarray,
    kmax: int,
    predcls: bool,
    ws: _Workspace | None = None,
) -> _Selected:
    """The only predictions of one image that any metric looks at, with their ranks.

    * graph constraint: the top ``kmax`` pairs by ``max_fg × s × o`` (ties by pair order);
    * pair accuracy: the first ``kmax`` of those ranked pairs whose ``(s, o)`` is a GT pair;
    * no graph constraint: the top ``max(100, kmax)`` (pair, predicate) entries. A pair can
      hold one only if its best entry ``(s × o) × max_fg`` reaches the ``max(100, kmax)``-th
      largest best entry, so only those pairs' rows are expanded — exact, with ties, because
      rounding is monotone (a pair's best entry is its largest).

    Large images take :func:`_select_fast` (same result, certified) when scores are positive.
    """
    p, r = rel_scores.shape
    nr = r - 1
    fg = rel_scores[:, 1:]
    ps, po = pairs[:, 0], pairs[:, 1]
    so_scores = np.take(obj_scores, pairs)  # one gather for both columns
    os_, oo = so_scores[:, 0], so_scores[:, 1]
    ngk = max(NG_TOP, kmax)
    weight = None if predcls else os_ * oo
    fast = None
    wmin = 1.0 if weight is None or p * nr < FAST_MIN_ENTRIES else float(weight.min())
    if p * nr >= FAST_MIN_ENTRIES and p > 4 * ngk and wmin >= 0:
        fast = _select_fast(rel_scores, os_, oo, weight, kmax, ngk, ws or _Workspace(), wmin)
    if fast is not None:
        top, _, ng_flat = fast
        n_rows, n_cls = ng_flat // nr, ng_flat % nr + 1
    else:
        rel_max = fg.max(axis=1)
        triple = rel_max * os_ * oo
        top = top_k_stable(triple, kmax)
        if weight is not None and (weight < 0).any():  # monotonicity needs s × o >= 0
            cand = np.arange(p)
        else:
            best = triple if weight is None else weight * rel_max
            if p > ngk:
                t = best[top_k_stable(best, ngk)[-1]]
                cand = np.flatnonzero(best >= t)
            else:
                cand = np.arange(p)
        # predcls: s × o = 1 exactly, and 1 × x = x
        vals = (fg[cand] if weight is None else weight[cand][:, None] * fg[cand]).ravel()
        sel = top_k_stable(vals, ngk)
        n_rows, n_cls = cand[sel // nr], sel % nr + 1
    g_cls = fg[top].argmax(axis=1) + 1

    # SGB's pair accuracy compares pair indices as they are (predicted boxes in SGDet with GT
    # boxes): a dense table over the predicted boxes answers "is (s, o) a GT pair" per row
    n = obj_scores.shape[0]
    gs, go = gt_pairs[:, 0], gt_pairs[:, 1]
    ok = (gs < n) & (go < n)
    table = np.zeros((n, n), dtype=bool)
    table[gs[ok], go[ok]] = True
    a_rows = np.flatnonzero(table.reshape(-1)[ps * n + po])
    a_trip = fg[a_rows].max(axis=1) * os_[a_rows] * oo[a_rows]
    a_rows = a_rows[np.lexsort((a_rows, -a_trip))][:kmax]
    a_cls = fg[a_rows].argmax(axis=1) + 1
    return _Selected([top, a_rows, n_rows], [g_cls, a_cls, n_cls])


def _iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``a[i]`` and ``b[i]`` with the same float32 operations as
    :func:`box_iou_plus1` (so the values are identical)."""
    # a predicted box with float32-extreme coordinates overflows its area to inf; its IoU
    # is then NaN, which matches nothing (as it should): no warning for that
    with np.errstate(over="ignore", invalid="ignore"):
        area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
        area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        lt = np.maximum(a[:, :2], b[:, :2])
        rb = np.minimum(a[:, 2:], b[:, 2:])
        wh = np.clip(rb - lt + 1, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        return inter / (area_a + area_b - inter)


def _min_match_rank(
    g_key: np.ndarray,
    g_sbox: np.ndarray,
    g_obox: np.ndarray,
    p_key: np.ndarray,
    p_box: np.ndarray,
    p_sub: np.ndarray,
    p_obj: np.ndarray,
    p_rank: np.ndarray,
    thr: float,
) -> np.ndarray:
    """Per GT entry, the smallest rank of a prediction that matches it (``INF_RANK`` if
    none): equal key (image, subject class, predicate, object class, and whatever else the
    caller encodes), both IoU ≥ thr. GT entry ``i`` has the boxes ``g_sbox[i % G]`` /
    ``g_obox[i % G]`` (``G`` boxes; ``g_key`` may list each relation once per list).
    Prediction boxes are ``p_box[p_sub]`` / ``p_box[p_obj]``, gathered only for the
    label-matched pairs."""
    out = np.full(g_key.shape[0], INF_RANK, dtype=np.int64)
    if g_key.shape[0] == 0 or p_key.shape[0] == 0:
        return out
    order = np.argsort(g_key, kind="stable")
    uk, first, counts = np.unique(g_key[order], return_index=True, return_counts=True)
    at = np.minimum(np.searchsorted(uk, p_key), uk.shape[0] - 1)
    cnt = np.where(uk[at] == p_key, counts[at], 0)
    total = int(cnt.sum())
    if total == 0:
        return out
    pi = np.repeat(np.arange(p_key.shape[0]), cnt)
    lo = first[at]
    starts = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
    gi = order[starts + np.arange(total)]
    gb = gi % g_sbox.shape[0]
    ok = (_iou_pairs(g_sbox[gb], p_box[p_sub[pi]]) >= thr) & (
        _iou_pairs(g_obox[gb], p_box[p_obj[pi]]) >= thr
    )
    np.minimum.at(out, gi[ok], p_rank[pi[ok]])
    return out


_LOCAL = threading.local()
_F32_INF_BITS = np.uint32(0x7F800000)


def _check_finite(rel: np.ndarray, gid: Any) -> None:
    """NaN / inf in the scores are an error. The minimum and maximum propagate NaN and show
    ±inf (run only when the cheaper checks of :func:`_rank_image` did not certify the
    scores)."""
    if rel.size and not (np.isfinite(rel.min()) and np.isfinite(rel.max())):
        raise DataError("predicate scores contain NaN or inf", sample=gid, field="predicate_scores")


def _rank_image(item: tuple, kmax: int, predcls: bool):
    """One image's selected predictions (``None`` when SGB skips it): per list, the pair rows
    concatenated, their predicate, rank, and the list sizes."""
    gboxes, glabels, grels, boxes, labels, oscores, pairs, rel, gid = item
    if grels.shape[0] == 0 or pairs.shape[0] == 0:
        _check_finite(rel, gid)
        return None
    ws = getattr(_LOCAL, "ws", None)
    if ws is None:
        ws = _LOCAL.ws = _Workspace()
    # one integer pass certifies the common case: as unsigned integers, the float32 bit patterns
    # of +0 .. the largest finite value are exactly those below +inf's; anything else (a
    # negative score, -0, inf, NaN) takes the float checks
    if rel.size and not rel.view(np.uint32).max() < _F32_INF_BITS and not np.isfinite(rel.sum()):
        _check_finite(rel, gid)
    return _select(oscores, pairs, rel, grels[:, :2], kmax, predcls, ws)


def _evaluate_chunk(
    items: Sequence[tuple],
    mode: str,
    ks: tuple[int, ...],
    zeroshot_keys: np.ndarray | None,
    iou_thresh: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate validated images at once.

    Args:
        items: ``(gt_boxes, gt_labels, gt_rels, boxes, labels, obj_scores, pairs, rel_scores,
            image_id)`` per image, numpy arrays (``boxes`` / ``labels`` / ``obj_scores``
            already the GT's and ones in ``predcls``).
        zeroshot_keys: sorted int64 keys of the zero-shot triplets (see :func:`_trip_key`).
    Returns:
        ``(kept, image_rows, predicate_rows, predicate_rows_per_image)``: indices of the
        evaluated items (SGB skips images without GT relation or candidate pair), their
        :func:`result_rows` rows (predicate rows grouped by image, in image order) and how many
        predicate rows each kept image has.
    """
    nk = len(ks)
    kmax = max(ks)
    predcls = mode == "predcls"
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in the finite checks
        ranked = [_rank_image(it, kmax, predcls) for it in items]
    kept = [i for i, r in enumerate(ranked) if r is not None]
    m = len(kept)
    if m == 0:
        return (  # type: ignore[return-value]
            np.zeros(0, dtype=np.int64),
            np.zeros((0, 2 + 5 * nk)),
            np.zeros((0, 2 + 2 * nk)),
            np.zeros(0, dtype=np.int64),
        )
    its = [items[i] for i in kept]
    # ground truth of the chunk, concatenated, then gathered once
    gbo = np.cumsum([0] + [it[1].shape[0] for it in its])
    g_lab = np.concatenate([it[1] for it in its]).astype(np.int64, copy=False)
    g_box = np.concatenate([it[0] for it in its]).astype(np.float32, copy=False)
    g_img = np.repeat(np.arange(m), [it[2].shape[0] for it in its])
    grel = np.concatenate([it[2] for it in its])
    gs, go = grel[:, 0] + gbo[g_img], grel[:, 1] + gbo[g_img]
    g_sl, g_p, g_ol = g_lab[gs], grel[:, 2].astype(np.int64, copy=False), g_lab[go]
    g_sb, g_ob = g_box[gs], g_box[go]
    # predictions: subject / object of every selected row (one small gather per image), then
    # labels and boxes gathered once per chunk
    pbo = np.cumsum([0] + [it[4].shape[0] for it in its])
    p_lab = np.concatenate([it[4] for it in its]).astype(np.int64, copy=False)
    p_box = np.concatenate([it[3] for it in its]).astype(np.float32, copy=False)
    # per image one gather of its selected pairs; everything else once per chunk
    so = np.concatenate([np.take(items[i][6], np.concatenate(ranked[i].rows), 0) for i in kept])
    sizes = np.array([[x.shape[0] for x in ranked[i].rows] for i in kept], dtype=np.int64)
    flat_sizes = sizes.reshape(-1)  # (image, list) segments in order
    so += np.repeat(pbo[:-1], sizes.sum(axis=1))[:, None]
    img_all = np.repeat(np.arange(m), sizes.sum(axis=1))
    cls_all = np.concatenate([c for i in kept for c in ranked[i].cls]).astype(np.int64, copy=False)
    # rank of a row in its list: its position within its (image, list) segment
    starts = np.cumsum(flat_sizes) - flat_sizes
    rank_all = np.arange(int(flat_sizes.sum()), dtype=np.int64) - np.repeat(starts, flat_sizes)
    which = np.repeat(np.tile(np.arange(3), m), flat_sizes)
    s_, o_ = so[:, 0], so[:, 1]
    p_sl, p_ol = p_lab[s_], p_lab[o_]
    ncls = 1 + max(int(g_sl.max()), int(g_ol.max()), int(p_sl.max()), int(p_ol.max()))
    npred = 1 + max(int(g_p.max()), int(cls_all.max()))

    def key(img, sl, p, ol):
        return ((img * ncls + sl) * npred + p) * ncls + ol

    # the three lists matched at once: the list is the key's last digit, and every GT relation
    # is looked up once per list
    gk = key(g_img, g_sl, g_p, g_ol)
    g3 = (gk[None, :] * 3 + np.arange(3)[:, None]).reshape(-1)
    ranks = _min_match_rank(
        g3,
        g_sb,
        g_ob,
        key(img_all, p_sl, cls_all, p_ol) * 3 + which,
        p_box,
        s_,
        o_,
        rank_all,
        iou_thresh,
    ).reshape(3, -1)
    gcount = np.bincount(g_img, minlength=m).astype(np.float64)
    img_rows = np.zeros((m, 2 + 5 * nk))
    img_rows[:, 0] = gcount
    hits = {}
    for j, k in enumerate(ks):
        h_g, h_a, h_n = (r < k for r in ranks)
        hits[k] = (h_g, h_n)
        img_rows[:, 1 + j] = np.bincount(g_img, weights=h_g, minlength=m) / gcount
        img_rows[:, 1 + nk + j] = np.bincount(g_img, weights=h_n, minlength=m) / gcount
        img_rows[:, 1 + 2 * nk + j] = np.bincount(g_img, weights=h_a, minlength=m)
    if zeroshot_keys is not None:
        zk = _trip_key(g_sl, g_ol, g_p)
        z = np.isin(zk, zeroshot_keys)
        zc = np.bincount(g_img, weights=z, minlength=m)
        has = zc > 0
        img_rows[:, 1 + 3 * nk] = has
        for j, k in enumerate(ks):
            h_g, h_n = hits[k]
            zg = np.bincount(g_img, weights=h_g & z, minlength=m)
            zn = np.bincount(g_img, weights=h_n & z, minlength=m)
            img_rows[has, 2 + 3 * nk + j] = zg[has] / zc[has]
            img_rows[has, 2 + 4 * nk + j] = zn[has] / zc[has]
    uniq, inv = np.unique(g_img * npred + g_p, return_inverse=True)
    q = uniq.shape[0]
    pred_rows = np.zeros((q, 2 + 2 * nk))
    pred_rows[:, 0] = uniq % npred
    pred_rows[:, 1] = np.bincount(inv, minlength=q)
    for j, k in enumerate(ks):
        h_g, h_n = hits[k]
        pred_rows[:, 2 + j] = np.bincount(inv, weights=h_g, minlength=q)
        pred_rows[:, 2 + nk + j] = np.bincount(inv, weights=h_n, minlength=q)
    per_image = np.bincount(uniq // npred, minlength=m)
    return np.asarray(kept, dtype=np.int64), img_rows, pred_rows, per_image  # type: ignore[return-value]


def _trip_key(sl: np.ndarray, ol: np.ndarray, p: np.ndarray) -> np.ndarray:
    """An int64 key of ``(subject class, object class, predicate)`` (each < 2^21)."""
    return (
        (np.asarray(sl, np.int64) << 42)
        | (np.asarray(ol, np.int64) << 21)
        | np.asarray(p, np.int64)
    )


def _zeroshot_keys(zeroshot: set[tuple[int, int, int]] | None) -> np.ndarray | None:
    if zeroshot is None:
        return None
    if not zeroshot:
        return np.zeros(0, dtype=np.int64)
    z = np.asarray(sorted(zeroshot), dtype=np.int64).reshape(-1, 3)
    return np.unique(_trip_key(z[:, 0], z[:, 1], z[:, 2]))


def _rows_to_result(
    ks: tuple[int, ...], img: np.ndarray, pr: np.ndarray, zs: bool
) -> VGImageResult:
    nk = len(ks)
    has_zs = zs and img[1 + 3 * nk] > 0
    return VGImageResult(
        ks,
        int(img[0]),
        {k: float(img[1 + j]) for j, k in enumerate(ks)},
        {k: float(img[1 + nk + j]) for j, k in enumerate(ks)},
        pr[:, 0].astype(np.int64),
        pr[:, 1].astype(np.int64),
        {k: pr[:, 2 + j] for j, k in enumerate(ks)},
        {k: pr[:, 2 + nk + j] for j, k in enumerate(ks)},
        {k: float(img[2 + 3 * nk + j]) for j, k in enumerate(ks)} if has_zs else None,
        {k: float(img[2 + 4 * nk + j]) for j, k in enumerate(ks)} if has_zs else None,
        {k: int(img[1 + 2 * nk + j]) for j, k in enumerate(ks)},
    )


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
    item = _item(gt_boxes, gt_labels, gt_rels, boxes, labels, obj_scores, pairs, rel_scores, mode)
    kept, img, pr, _ = _evaluate_chunk([item], mode, ks, _zeroshot_keys(zeroshot), iou_thresh)  # type: ignore[misc]
    if kept.shape[0] == 0:
        return None
    return _rows_to_result(ks, img[0], pr, zeroshot is not None)


def _item(
    gt_boxes, gt_labels, gt_rels, boxes, labels, obj_scores, pairs, rel_scores, mode, image_id=None
):
    """Numpy arrays of one image as :func:`_evaluate_chunk` takes them."""
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4)
    gt_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
    gt_rels = np.asarray(gt_rels, dtype=np.int64).reshape(-1, 3)
    if mode == "predcls":
        boxes, labels = gt_boxes, gt_labels
        obj_scores = np.ones(gt_labels.shape[0], dtype=np.float32)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    rel_scores = np.asarray(rel_scores, dtype=np.float32)
    if rel_scores.ndim != 2:
        rel_scores = rel_scores.reshape(pairs.shape[0], -1)
    return (
        gt_boxes,
        gt_labels,
        gt_rels,
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(labels, dtype=np.int64).reshape(-1),
        np.asarray(obj_scores, dtype=np.float32).reshape(-1),
        pairs,
        rel_scores,
        image_id,
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
    img += [r.zs_recall[k] if has_zs else 0.0 for k in ks] + [  # type: ignore[index]
        r.ng_zs_recall[k] if has_zs else 0.0  # type: ignore[index]
        for k in ks
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
    """``(image_id, boxes [N, 4] float32, labels [N] int64, relations [G, 3] int64)``."""
    if isinstance(gt, dict):
        gid, boxes, labels, rels = gt["image_id"], gt["boxes"], gt["labels"], gt["relations"]
    else:
        gid, boxes, labels, rels = (
            gt.image_id,
            gt.boxes.numpy(),
            gt.labels.numpy(),
            gt.relations.numpy(),
        )
    return (
        gid,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64).reshape(-1),
        np.asarray(rels, np.int64).reshape(-1, 3),
    )


def _pred_arrays(p: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(image_id, boxes [N, 4] float32, labels [N] int64, label_scores [N] float32, pairs
    [P, 2] int64, predicate_scores float32)``."""
    if isinstance(p, dict):
        fields = (p["boxes"], p["labels"], p["label_scores"], p["pairs"], p["predicate_scores"])
        pid = p["image_id"]
    else:
        fields = tuple(
            t.numpy() for t in (p.boxes, p.labels, p.label_scores, p.pairs, p.predicate_scores)
        )
        pid = p.image_id
    boxes, labels, scores, pairs, rel = fields
    return (
        pid,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64).reshape(-1),
        np.asarray(scores, np.float32).reshape(-1),
        np.asarray(pairs, np.int64).reshape(-1, 2),
        np.asarray(rel, np.float32),
    )


def predicate_confusion(
    gts: Sequence[Any], preds: Sequence[Any], num_predicates: int
) -> np.ndarray:
    """Top-1 predicate confusion of the GT relations (PredCls / SGCls, where a prediction's
    boxes are the GT boxes, so pair indices name the same objects).

    Returns a ``[C, C]`` count matrix: row = GT predicate, column = the pair's highest-scoring
    foreground predicate; column 0 counts GT relations whose pair the model did not score.
    Row 0 stays 0. Predictions are matched to the GT by ``image_id`` (:func:`paired`).
    """
    c = int(num_predicates)
    conf = np.zeros((c, c), np.int64)
    for gt, pred in paired(gts, preds):
        _, gboxes, _, rels = _as_arrays(gt)
        _, _, _, _, pairs, scores = _pred_arrays(pred)
        if rels.shape[0] == 0:
            continue
        n = max(len(gboxes), int(pairs.max()) + 1 if pairs.size else 0, int(rels[:, :2].max()) + 1)
        top = np.zeros(n * n, np.int64)  # 0: pair not scored
        if pairs.shape[0] and scores.shape[1] > 1:
            top[pairs[:, 0] * n + pairs[:, 1]] = scores[:, 1:].argmax(1) + 1
        got = top[rels[:, 0] * n + rels[:, 1]]
        np.add.at(conf, (rels[:, 2], got), 1)
    return conf


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


def validated_item(gt: Any, pred: Any, mode: str, ncol: int | None) -> tuple[tuple, int | None]:
    """Check one matched (GT, prediction) and return its :func:`_evaluate_chunk` item and the
    number of predicate columns (``ncol`` if it had none)."""
    gid, gboxes, glabels, grels = _as_arrays(gt)
    _, boxes, labels, scores, pairs, rel_scores = _pred_arrays(pred)
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
        if rel_scores.shape[1] < 2:
            raise DataError(
                "need a background and at least one predicate column",
                sample=gid,
                field="predicate_scores",
            )
        ncol = rel_scores.shape[1]
    # the arrays already have their dtypes and shapes (_as_arrays, _pred_arrays)
    if mode == "predcls":
        boxes, labels, scores = gboxes, glabels, np.ones(glabels.shape[0], dtype=np.float32)
    if rel_scores.ndim != 2:
        rel_scores = rel_scores.reshape(pairs.shape[0], -1)
    return (gboxes, glabels, grels, boxes, labels, scores, pairs, rel_scores, gid), ncol


def _validate_and_evaluate(matched, mode, ks, zkeys, iou_thresh):
    """:func:`validated_item` for every ``(gt, pred)``, then :func:`_evaluate_chunk`."""
    items, ncol, first = [], None, None
    for gt, pred in matched:
        item, ncol = validated_item(gt, pred, mode, ncol)
        if first is None:
            first = item[-1]
        items.append(item)
    return _evaluate_chunk(items, mode, ks, zkeys, iou_thresh), ncol, first


def _evaluate_parallel(matched: list, mode, ks, zkeys, iou_thresh, workers: int):
    """:func:`_validate_and_evaluate` over ``workers`` contiguous shares of ``matched``: the
    shares after the first in forked processes (which see the inputs without a copy), the
    first in this one; the per-image rows are joined in order, so the result is the
    single-process one exactly."""
    import multiprocessing as mp
    import pickle

    bounds = np.linspace(0, len(matched), workers + 1).round().astype(int)
    ctx = mp.get_context("fork")
    children = []
    for w in range(1, workers):
        recv, send = ctx.Pipe(duplex=False)

        def work(lo=bounds[w], hi=bounds[w + 1], send=send):
            try:
                out = ("ok", _validate_and_evaluate(matched[lo:hi], mode, ks, zkeys, iou_thresh))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the parent
                out = ("error", exc)
            try:
                send.send_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception as exc:  # noqa: BLE001 - an unpicklable exception
                send.send_bytes(pickle.dumps(("error", RuntimeError(repr(exc)))))
            send.close()

        proc = ctx.Process(target=work, daemon=True)
        proc.start()
        send.close()
        children.append((proc, recv))
    parts = []
    try:
        parts.append(_validate_and_evaluate(matched[: bounds[1]], mode, ks, zkeys, iou_thresh))
        for _proc, recv in children:
            try:
                status, value = pickle.loads(recv.recv_bytes())
            except EOFError:
                raise RuntimeError("an evaluation worker died") from None
            if status == "error":
                raise value
            parts.append(value)
    finally:
        for proc, recv in children:
            recv.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    ncol = None
    for _rows, nc, first in parts:
        if nc is not None and ncol is not None and nc != ncol:
            raise DataError(
                f"{nc} predicate columns, other images have {ncol}",
                sample=first,
                field="predicate_scores",
            )
        ncol = ncol if nc is None else nc
    kept = np.concatenate([p[0][0] + bounds[w] for w, p in enumerate(parts)])
    img = np.concatenate([p[0][1] for p in parts])
    pr = np.concatenate([p[0][2] for p in parts])
    per = np.concatenate([p[0][3] for p in parts])
    return (kept, img, pr, per), ncol


def _evaluate_rows(
    gts: Sequence[Any],
    preds: Sequence[Any],
    mode: str,
    ks: Sequence[int],
    zeroshot: set[tuple[int, int, int]] | None,
    iou_thresh: float,
    workers: int,
) -> tuple[tuple[int, ...], int, tuple, int | None]:
    """Validate and evaluate matched GT / prediction lists into rows.

    Returns:
        ``(ks, number of matched images, (kept, image_rows, predicate_rows, per_image),
        predicate columns seen or None)`` (see :func:`_evaluate_chunk`).
    """
    import multiprocessing as mp

    ks = _check_ks(ks)
    if mode not in ("predcls", "sgcls", "sgdet"):
        raise DataError(f"unknown mode {mode!r}", field="mode")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise DataError(f"workers must be a positive integer, got {workers!r}", field="workers")
    matched = list(paired(gts, preds))
    zkeys = _zeroshot_keys(zeroshot)
    workers = min(int(workers), max(1, len(matched) // 64))  # a worker earns its fork
    if workers > 1 and "fork" in mp.get_all_start_methods():
        rows, ncol = _evaluate_parallel(matched, mode, ks, zkeys, iou_thresh, workers)
    else:
        rows, ncol, _ = _validate_and_evaluate(matched, mode, ks, zkeys, iou_thresh)
    return ks, len(matched), rows, ncol


def evaluate_images_vg(
    gts: Sequence[Any],
    preds: Sequence[Any],
    mode: str = "predcls",
    ks: Sequence[int] = (20, 50, 100),
    zeroshot: set[tuple[int, int, int]] | None = None,
    iou_thresh: float = 0.5,
    workers: int = 1,
) -> tuple[list[VGImageResult | None], int | None]:
    """Validate and evaluate matched GT / prediction lists.

    Args:
        workers: processes sharing the images (``> 1``: forked workers on platforms that
            fork; the numbers are those of one process).

    Returns:
        ``(per-image results, number of predicate columns seen or None)``.
    """
    ks, n, (kept, img, pr, per), ncol = _evaluate_rows(
        gts, preds, mode, ks, zeroshot, iou_thresh, workers
    )
    results: list[VGImageResult | None] = [None] * n
    start = 0
    for j, i in enumerate(kept):
        k = int(per[j])
        results[int(i)] = _rows_to_result(ks, img[j], pr[start : start + k], zeroshot is not None)
        start += k
    return results, ncol


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """K values: positive integers, unique, at least one."""
    try:
        vals = list(ks)
    except TypeError:
        raise DataError(f"K must be a list of integers, got {ks!r}", field="k") from None
    if not vals:
        raise DataError("at least one K is needed", field="k")
    out = []
    for k in vals:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise DataError(f"K must be an integer, got {k!r}", field="k")
        if k <= 0:
            raise DataError(f"K must be positive, got {k}", field="k")
        out.append(int(k))
    if len(set(out)) != len(out):
        raise DataError(f"K values must be unique, got {out}", field="k")
    return tuple(out)


def evaluate_vg(
    gts: Sequence[Any],
    preds: Sequence[Any],
    mode: str = "predcls",
    ks: Sequence[int] = (20, 50, 100),
    zeroshot_triplets: Iterable[Sequence[int]] | None = None,
    iou_thresh: float = 0.5,
    num_predicates: int | None = None,
    workers: int = 1,
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
        workers: processes sharing the images (forked; identical numbers). On 2 cores,
            ``workers=2`` roughly halves the time of a large test set.
    Returns:
        Flat dict of fractions in [0, 1] plus ``per_predicate_*`` lists and ``num_images``.
    """
    zs = (
        None if zeroshot_triplets is None else {tuple(int(v) for v in t) for t in zeroshot_triplets}
    )
    ks, _, (_, img, pr, _), ncol = _evaluate_rows(gts, preds, mode, ks, zs, iou_thresh, workers)  # type: ignore[arg-type]
    ncol = num_predicates or ncol
    if ncol is None:
        ncol = 1 + max(
            (int(_as_arrays(g)[3][:, 2].max()) for g in gts if len(_as_arrays(g)[3])), default=0
        )
    # the chunk rows are what aggregate_vg would rebuild from per-image results
    return aggregate_rows(img, pr, ncol, ks, zeroshot=zs is not None)


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
        if mode not in ("predcls", "sgcls", "sgdet"):
            raise DataError(f"unknown mode {mode!r}", field="mode")
        self.mode, self.ks, self.iou_thresh, self.num_predicates = (
            mode,
            _check_ks(ks),
            iou_thresh,
            num_predicates,
        )
        self.zeroshot = (
            None
            if zeroshot_triplets is None
            else {tuple(int(v) for v in t) for t in zeroshot_triplets}
        )
        self._zkeys = _zeroshot_keys(self.zeroshot)  # type: ignore[arg-type]
        self.reset()

    def reset(self) -> None:
        self._img: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self._order: list[np.ndarray] = []
        self._per: list[np.ndarray] = []
        self._ncol: int | None = self.num_predicates

    def update(self, gts: Sequence[Any], preds: Sequence[Any]) -> None:
        """Evaluate matched GT / prediction lists (any order, matched by ``image_id``)."""
        items, ncol = [], self._ncol
        for gt, pred in paired(gts, preds):
            item, ncol = validated_item(gt, pred, self.mode, ncol)
            items.append(item)
        self._ncol = ncol
        self.update_items(items)

    def update_items(self, items: Sequence[tuple], order: Sequence[int] | None = None) -> None:
        """Evaluate already validated items (:func:`validated_item`).

        Args:
            order: a sort key per item (e.g. the GT index); :meth:`rows` returns rows sorted by
                it, so a prediction file in any order gives the numbers of the GT order.
        """
        kept, img, pr, per = _evaluate_chunk(  # type: ignore[misc]
            items, self.mode, self.ks, self._zkeys, self.iou_thresh
        )
        self._img.append(img)
        self._pred.append(pr)
        self._per.append(per)
        if order is not None:
            key = np.asarray(order, dtype=np.int64)[kept]
            self._order.append(key)

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Stacked per-image and per-(image, predicate) rows collected so far."""
        nk = len(self.ks)
        img = np.concatenate(self._img) if self._img else np.zeros((0, 2 + 5 * nk))
        pr = np.concatenate(self._pred) if self._pred else np.zeros((0, 2 + 2 * nk))
        if self._order and img.shape[0]:
            key = np.concatenate(self._order)
            if key.shape[0] != img.shape[0]:
                raise RuntimeError("update() and update_items(order=None) cannot be mixed")
            counts = np.concatenate(self._per)
            perm = np.argsort(key, kind="stable")
            ends = np.cumsum(counts)
            pieces = [pr[ends[i] - counts[i] : ends[i]] for i in perm]
            img = img[perm]
            pr = np.concatenate(pieces) if pieces else pr
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
