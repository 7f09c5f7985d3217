"""A reference VG evaluator with the computational shape of Scene-Graph-Benchmark's
``sgg_eval.py`` (written here from its description), used as the speed baseline.

Per image, as SGB does: the post-processor sorts every pair by its triple score; the graph-
constrained triplets of all pairs are built and matched to the GT with an ``[G, P]`` label
comparison followed by a per-GT loop over IoUs; the no-graph-constraint scores of every
(pair, predicate) are fully sorted and the top 100 matched the same way; recall, mean recall,
pair accuracy and zero-shot recall are then accumulated with ``reduce(np.union1d, ...)`` over
the per-prediction match lists. Sorts are stable (SGB's are not; ties aside the numbers are the
same) so the metrics equal tailgraph's to the last digit.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

NG_TOP = 100


def _iou(gt_box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with many, +1 pixel convention, float32 (as SGB's ``boxlist_iou``)."""
    gt_box = gt_box.astype(np.float32)
    boxes = boxes.astype(np.float32)
    area_g = (gt_box[2] - gt_box[0] + 1) * (gt_box[3] - gt_box[1] + 1)
    area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    lt = np.maximum(gt_box[None, :2], boxes[:, :2])
    rb = np.minimum(gt_box[None, 2:], boxes[:, 2:])
    wh = np.clip(rb - lt + 1, 0, None)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (area_g + area_b - inter)


def _triplets(rels: np.ndarray, labels: np.ndarray, boxes: np.ndarray):
    s, o, p = rels[:, 0], rels[:, 1], rels[:, 2]
    trip = np.column_stack((labels[s], p, labels[o]))
    tboxes = np.column_stack((boxes[s], boxes[o]))
    return trip, tboxes


def _pred_to_gt(gt_trip, gt_boxes, pr_trip, pr_boxes, thr):
    """SGB's ``_compute_pred_matches``: for each prediction, the list of GT it matches."""
    keeps = (gt_trip[:, None, :] == pr_trip[None, :, :]).all(axis=2)  # intersect_2d
    has = keeps.any(axis=1)
    out: list[list[int]] = [[] for _ in range(pr_trip.shape[0])]
    for gi, gbox, keep in zip(np.flatnonzero(has), gt_boxes[has], keeps[has]):
        idx = np.flatnonzero(keep)
        sub = _iou(gbox[:4], pr_boxes[idx, :4])
        obj = _iou(gbox[4:], pr_boxes[idx, 4:])
        for i in idx[(sub >= thr) & (obj >= thr)]:
            out[int(i)].append(int(gi))
    return out


def evaluate(gts, preds, mode, ks, num_predicates, zeroshot=None, thr=0.5):
    """The flat metric dict (R, ngR, mR, ng-mR, A, zR / ng-zR when ``zeroshot`` is given)."""
    ks = tuple(ks)
    nfg = num_predicates - 1
    rec = {k: [] for k in ks}
    ngrec = {k: [] for k in ks}
    zrec = {k: [] for k in ks}
    ngzrec = {k: [] for k in ks}
    acc_hit = {k: 0.0 for k in ks}
    acc_cnt = {k: 0.0 for k in ks}
    per = {k: [[] for _ in range(num_predicates)] for k in ks}
    ngper = {k: [[] for _ in range(num_predicates)] for k in ks}
    zs = None if zeroshot is None else {tuple(int(v) for v in t) for t in zeroshot}
    for gt, pr in zip(gts, preds):
        gt_rels = np.asarray(gt["relations"], dtype=np.int64).reshape(-1, 3)
        if gt_rels.shape[0] == 0:
            continue
        gt_boxes = np.asarray(gt["boxes"], np.float32)
        gt_labels = np.asarray(gt["labels"], np.int64)
        if mode == "predcls":
            boxes, labels = gt_boxes, gt_labels
            obj_scores = np.ones(len(gt_labels), np.float32)
        else:
            boxes = np.asarray(pr["boxes"], np.float32)
            labels = np.asarray(pr["labels"], np.int64)
            obj_scores = np.asarray(pr["label_scores"], np.float32)
        pairs = np.asarray(pr["pairs"], np.int64).reshape(-1, 2)
        if pairs.shape[0] == 0:
            continue
        scores = np.asarray(pr["predicate_scores"], np.float32)
        # post-processor: sort pairs by triple score
        fg_max = scores[:, 1:].max(1)
        fg_cls = scores[:, 1:].argmax(1) + 1
        triple = fg_max * obj_scores[pairs[:, 0]] * obj_scores[pairs[:, 1]]
        order = np.argsort(-triple, kind="stable")
        pairs_s, scores_s, cls_s = pairs[order], scores[order], fg_cls[order]
        gt_trip, gt_tboxes = _triplets(gt_rels, gt_labels, gt_boxes)
        pr_rels = np.column_stack((pairs_s, cls_s))
        pr_trip, pr_tboxes = _triplets(pr_rels, labels, boxes)
        p2g = _pred_to_gt(gt_trip, gt_tboxes, pr_trip, pr_tboxes, thr)
        # no graph constraint: full argsort of every (pair, predicate)
        ng = (obj_scores[pairs_s[:, 0]] * obj_scores[pairs_s[:, 1]])[:, None] * scores_s[:, 1:]
        # stable on the original pair order (tailgraph's tie policy): undo the pair sort
        ng_orig = np.empty_like(ng)
        ng_orig[order] = ng
        flat = np.argsort(-ng_orig.ravel(), kind="stable")[: max(NG_TOP, max(ks))]
        rows, cols = np.unravel_index(flat, ng_orig.shape)
        ng_rels = np.column_stack((pairs[rows], cols + 1))
        ng_trip, ng_tboxes = _triplets(ng_rels, labels, boxes)
        ng_p2g = _pred_to_gt(gt_trip, gt_tboxes, ng_trip, ng_tboxes, thr)
        # pair accuracy: predictions whose pair is a GT pair
        pr_key = pairs_s[:, 0] * 1024 + pairs_s[:, 1]
        gt_key = gt_rels[:, 0] * 1024 + gt_rels[:, 1]
        in_gt = (pr_key[:, None] == gt_key[None, :]).sum(-1) > 0
        pair_p2g = [p2g[i] for i in np.flatnonzero(in_gt)]
        g = gt_rels.shape[0]
        z_idx = (
            None
            if zs is None
            else [i for i, (s, o, p) in enumerate(gt_rels) if (gt_labels[s], gt_labels[o], p) in zs]
        )
        for k in ks:
            match = reduce(np.union1d, p2g[:k], np.array([], dtype=np.int64))
            ng_match = reduce(np.union1d, ng_p2g[:k], np.array([], dtype=np.int64))
            rec[k].append(float(len(match)) / g)
            ngrec[k].append(float(len(ng_match)) / g)
            pm = reduce(np.union1d, pair_p2g[:k], np.array([], dtype=np.int64))
            acc_hit[k] += float(len(pm))
            acc_cnt[k] += float(g)
            for p in np.unique(gt_rels[:, 2]):
                idx = np.flatnonzero(gt_rels[:, 2] == p)
                per[k][p].append(float(np.isin(idx, match).sum()) / len(idx))
                ngper[k][p].append(float(np.isin(idx, ng_match).sum()) / len(idx))
            if z_idx:
                zrec[k].append(float(np.isin(z_idx, match).sum()) / len(z_idx))
                ngzrec[k].append(float(np.isin(z_idx, ng_match).sum()) / len(z_idx))
    out = {}
    for k in ks:
        out[f"R@{k}"] = float(np.mean(rec[k])) if rec[k] else 0.0
        out[f"ngR@{k}"] = float(np.mean(ngrec[k])) if ngrec[k] else 0.0
        out[f"mR@{k}"] = float(sum(np.mean(c) if c else 0.0 for c in per[k][1:]) / nfg)
        out[f"ng-mR@{k}"] = float(sum(np.mean(c) if c else 0.0 for c in ngper[k][1:]) / nfg)
        out[f"A@{k}"] = acc_hit[k] / acc_cnt[k] if acc_cnt[k] else 0.0
        if zs is not None:
            out[f"zR@{k}"] = float(np.mean(zrec[k])) if zrec[k] else 0.0
            out[f"ng-zR@{k}"] = float(np.mean(ngzrec[k])) if ngzrec[k] else 0.0
    return out
