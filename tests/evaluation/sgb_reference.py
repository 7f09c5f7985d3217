"""A straightforward per-image, per-triplet implementation of SGB's VG evaluation, written
from the protocol description (loops, lists, union1d) to check the vectorised one."""

from functools import reduce

import numpy as np


def iou1(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = ix * iy
    aa = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    bb = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (aa + bb - inter)


def pred_to_gt(gt_rels, gt_boxes, gt_labels, pred_list, boxes, labels):
    """pred_list: list of (s, o, predicate). Returns list of lists of matched GT indices."""
    out = []
    for s, o, p in pred_list:
        m = []
        for gi, (gs, go, gp) in enumerate(gt_rels):
            if (labels[s], p, labels[o]) != (gt_labels[gs], gp, gt_labels[go]):
                continue
            if iou1(gt_boxes[gs], boxes[s]) >= 0.5 and iou1(gt_boxes[go], boxes[o]) >= 0.5:
                m.append(gi)
        out.append(m)
    return out


def evaluate(gts, preds, mode, ks, num_predicates, zeroshot=None):
    res = {f"R@{k}": [] for k in ks}
    res.update({f"ngR@{k}": [] for k in ks})
    res.update({f"zR@{k}": [] for k in ks})
    collect = {k: [[] for _ in range(num_predicates)] for k in ks}
    ng_collect = {k: [[] for _ in range(num_predicates)] for k in ks}
    acc_hit = {k: [] for k in ks}
    acc_cnt = {k: [] for k in ks}
    for gt, pr in zip(gts, preds):
        gt_rels = [tuple(r) for r in gt["relations"]]
        if not gt_rels:
            continue
        gt_boxes, gt_labels = gt["boxes"], gt["labels"]
        if mode == "predcls":
            boxes, labels, scores = gt_boxes, gt_labels, [1.0] * len(gt_labels)
        else:
            boxes, labels, scores = pr["boxes"], pr["labels"], pr["label_scores"]
        pairs = pr["pairs"]
        if len(pairs) == 0:
            continue
        rel = pr["predicate_scores"]
        items = []
        for i, (s, o) in enumerate(pairs):
            fg = list(rel[i][1:])
            c = int(np.argmax(fg))
            items.append((fg[c] * scores[s] * scores[o], i, (s, o, c + 1)))
        items.sort(key=lambda t: (-t[0], t[1]))
        plist = [t[2] for t in items]
        p2g = pred_to_gt(gt_rels, gt_boxes, gt_labels, plist, boxes, labels)
        ng = []
        for i, (s, o) in enumerate(pairs):
            for c in range(1, len(rel[i])):
                ng.append(
                    (scores[s] * scores[o] * rel[i][c], i * (len(rel[i]) - 1) + c - 1, (s, o, c))
                )
        ng.sort(key=lambda t: (-t[0], t[1]))
        ng_list = [t[2] for t in ng[: max(100, max(ks))]]
        ng_p2g = pred_to_gt(gt_rels, gt_boxes, gt_labels, ng_list, boxes, labels)
        gt_pairs = {(s, o) for s, o, _ in gt_rels}
        in_pair = [p2g[i] for i, t in enumerate(plist) if (t[0], t[1]) in gt_pairs]
        for k in ks:
            match = reduce(np.union1d, p2g[:k], np.array([]))
            res[f"R@{k}"].append(len(match) / len(gt_rels))
            ngm = reduce(np.union1d, ng_p2g[:k], np.array([]))
            res[f"ngR@{k}"].append(len(ngm) / len(gt_rels))
            am = reduce(np.union1d, in_pair[:k], np.array([]))
            acc_hit[k].append(float(len(am)))
            acc_cnt[k].append(float(len(gt_rels)))
            for p in set(r[2] for r in gt_rels):
                idx = [i for i, r in enumerate(gt_rels) if r[2] == p]
                collect[k][p].append(sum(1 for i in idx if i in match) / len(idx))
                ng_collect[k][p].append(sum(1 for i in idx if i in ngm) / len(idx))
            if zeroshot is not None:
                zidx = [
                    i
                    for i, (s, o, p) in enumerate(gt_rels)
                    if (gt_labels[s], gt_labels[o], p) in zeroshot
                ]
                if zidx:
                    res[f"zR@{k}"].append(sum(1 for i in zidx if i in match) / len(zidx))
    out = {}
    for k in ks:
        out[f"R@{k}"] = float(np.mean(res[f"R@{k}"]))
        out[f"ngR@{k}"] = float(np.mean(res[f"ngR@{k}"]))
        out[f"mR@{k}"] = sum(np.mean(c) if c else 0.0 for c in collect[k][1:]) / (
            num_predicates - 1
        )
        out[f"ng-mR@{k}"] = sum(np.mean(c) if c else 0.0 for c in ng_collect[k][1:]) / (
            num_predicates - 1
        )
        out[f"A@{k}"] = float(np.mean(acc_hit[k]) / np.mean(acc_cnt[k]))
        if zeroshot is not None:
            out[f"zR@{k}"] = float(np.mean(res[f"zR@{k}"])) if res[f"zR@{k}"] else 0.0
    return out
