"""Deterministic evaluation inputs at the scales of real test sets (shared by the evaluation
benchmarks).

* ``sgdet``: 80 predicted boxes, all 6,320 ordered pairs × 51 predicate scores, ~10 GT boxes
  and ~6 GT relations per image;
* ``predcls``: 20 GT boxes, all 380 ordered pairs × 51 scores, ~6 GT relations.

Scores are softmax-like rows where the GT predicate of a GT pair is boosted for most relations
(a model that is often right), so the metrics are far from 0 and from 1.
"""

from __future__ import annotations

import numpy as np

NUM_PREDICATES = 51
NUM_CLASSES = 151


def make_image(rng: np.random.Generator, image_id: int, mode: str) -> tuple[dict, dict]:
    """One (GT, prediction) pair of dicts of numpy arrays."""
    nb = 80 if mode == "sgdet" else 20
    ng_box = int(rng.integers(8, 13)) if mode == "sgdet" else nb
    xy = rng.uniform(0, 500, size=(nb, 2))
    wh = rng.uniform(20, 200, size=(nb, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    labels = rng.integers(1, NUM_CLASSES, size=nb)
    gt_idx = rng.choice(nb, size=ng_box, replace=False)
    if mode == "sgdet":
        gt_boxes = boxes[gt_idx] + rng.normal(0, 3, size=(ng_box, 4)).astype(np.float32)
        gt_boxes = np.concatenate(
            [
                np.minimum(gt_boxes[:, :2], gt_boxes[:, 2:]),
                np.maximum(gt_boxes[:, :2], gt_boxes[:, 2:]),
            ],
            1,
        ).astype(np.float32)
    else:
        gt_idx = np.arange(nb)
        gt_boxes = boxes
    gt_labels = labels[gt_idx]
    nrel = int(rng.integers(4, 9))
    s = rng.integers(0, ng_box, nrel)
    o = (s + rng.integers(1, ng_box, nrel)) % ng_box
    gt_rels = np.stack([s, o, rng.integers(1, NUM_PREDICATES, nrel)], 1)
    ii, jj = np.meshgrid(np.arange(nb), np.arange(nb), indexing="ij")
    pairs = np.stack([ii.ravel(), jj.ravel()], 1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    scores = rng.random((pairs.shape[0], NUM_PREDICATES), dtype=np.float32)
    a, b = gt_idx[gt_rels[:, 0]], gt_idx[gt_rels[:, 1]]
    rows = a * (nb - 1) + np.where(b < a, b, b - 1)
    boost = rng.random(nrel) < 0.7
    scores[rows[boost], gt_rels[boost, 2]] += rng.uniform(5, 40, size=int(boost.sum())).astype(
        np.float32
    )
    scores /= scores.sum(1, keepdims=True)
    gt = {
        "image_id": image_id,
        "width": 700,
        "height": 700,
        "boxes": gt_boxes,
        "labels": gt_labels,
        "relations": gt_rels,
    }
    pred = {
        "image_id": image_id,
        "boxes": boxes,
        "labels": labels,
        "label_scores": rng.random(nb, dtype=np.float32)
        if mode == "sgdet"
        else np.ones(nb, np.float32),
        "pairs": pairs,
        "predicate_scores": scores,
    }
    return gt, pred


def make_case(n_images: int, mode: str, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n_images):
        g, p = make_image(rng, i, mode)
        gts.append(g)
        preds.append(p)
    return gts, preds
