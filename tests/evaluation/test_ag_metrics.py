"""Action Genome protocol: hand-computed frames and a loop-based re-implementation."""

from functools import reduce

import numpy as np
import pytest

from tailgraph.errors import DataError
from tailgraph.evaluation.ag import evaluate_ag

from .sgb_reference import iou1


def frame(fid="v/1", n_obj=2):
    # person box 0 (class 1), objects 1..n
    boxes = [[0, 0, 50, 100], [40, 40, 80, 80], [60, 0, 99, 30]][: n_obj + 1]
    labels = [1, 5, 7][: n_obj + 1]
    # object 1: looking_at (0), in_front_of (5 -> spatial, reversed), holding (14)
    rels = [[0, 1, 0], [1, 0, 5], [0, 1, 14]]
    if n_obj > 1:
        rels += [
            [0, 2, 1],
            [2, 0, 3],
            [2, 0, 4],
            [0, 2, 17],
        ]  # not_looking, above, beneath, not_contacting
    return {"image_id": fid, "boxes": boxes, "labels": labels, "relations": rels}


def scores_for(gt_hits: bool):
    s = np.zeros((2, 26))
    s[0, 0:3] = [0.7, 0.2, 0.1] if gt_hits else [0.1, 0.2, 0.7]
    s[0, 3:9] = [0.1, 0.1, 0.95, 0.2, 0.1, 0.1]  # in_front_of (5) high
    s[0, 9:26] = 0.05
    s[0, 14] = 0.92  # holding
    s[1, 0:3] = [0.1, 0.8, 0.1]
    s[1, 3:9] = [0.97, 0.3, 0.1, 0.1, 0.1, 0.1]  # above high, beneath .3
    s[1, 9:26] = 0.1
    s[1, 17] = 0.6
    return s


def pred(fid, s):
    return {
        "image_id": fid,
        "boxes": frame()["boxes"],
        "labels": [1, 5, 7],
        "label_scores": [1, 1, 1],
        "pairs": [[0, 1], [0, 2]],
        "predicate_scores": s,
    }


def test_hand_computed_with_semi_no():
    gt = frame()
    m = evaluate_ag([gt], [pred("v/1", scores_for(True))], ks=(1, 3, 6))
    w = m["with"]
    # with: 6 predictions ranked by row max: above .97, in_front .95, holding .92,
    # not_looking .8, looking .7, not_contacting .6 -> all 6 hit except beneath (never predicted)
    assert w["R@1"] == pytest.approx(1 / 7)
    assert w["R@3"] == pytest.approx(3 / 7)
    assert w["R@6"] == pytest.approx(6 / 7)
    # mR@6: every predicate present is hit except beneath -> 6 of 7 present predicates, over 26
    assert w["mR@6"] == pytest.approx(6 / 26, abs=1e-9)
    semi = m["semi"]
    # semi: attention argmax rows (looking .7, not_looking .8) + entries > .9: above .97,
    # in_front .95, holding .92 -> 5 predictions, all hits
    assert semi["R@6"] == pytest.approx(5 / 7)
    no = m["no"]
    # no constraint: 6 rows x 26 = 156 entries, top 100 includes beneath (.3)
    assert no["R@6"] == pytest.approx(6 / 7) and no["R@100" if "R@100" in no else "R@6"] <= 1
    m100 = evaluate_ag([gt], [pred("v/1", scores_for(True))], ks=(100,), constraints=("no",))
    assert m100["no"]["R@100"] == pytest.approx(1.0)


def test_no_constraint_zero_score_quirk():
    # 1 object -> 3 rows x 26 = 78 < 100 entries: zero-score entries are ranked too, and the
    # contacting GT 'holding' is found in the attention row's zero column (same direction).
    gt = {
        "image_id": "f",
        "boxes": [[0, 0, 50, 100], [40, 40, 80, 80]],
        "labels": [1, 5],
        "relations": [[0, 1, 14]],
    }
    s = np.zeros((1, 26))
    s[0, 0] = 1.0  # only attention has mass; contacting scores are all zero
    p = {
        "image_id": "f",
        "boxes": gt["boxes"],
        "labels": [1, 5],
        "label_scores": [1, 1],
        "pairs": [[0, 1]],
        "predicate_scores": s,
    }
    m = evaluate_ag([gt], [p], ks=(100,), constraints=("no", "with"))
    assert m["no"]["R@100"] == 1.0
    # with the constraint the all-zero contacting row predicts its argmax, column 0: a miss
    assert m["with"]["R@100"] == 0.0
    s2 = s.copy()
    s2[0, 14] = 0.5
    p["predicate_scores"] = s2
    assert evaluate_ag([gt], [p], ks=(100,), constraints=("with",))["with"]["R@100"] == 1.0


def test_semi_frame_without_predictions_scores_zero_and_errors():
    gt = frame()
    s = np.zeros((2, 26))
    p = pred("v/1", s)
    m = evaluate_ag([gt], [p], ks=(10,), constraints=("semi",))
    assert m["semi"]["R@10"] == 0.0 and m["semi"]["num_frames"] == 1
    with pytest.raises(DataError, match="no GT relation"):
        evaluate_ag([{**gt, "relations": []}], [p])
    with pytest.raises(DataError, match="26"):
        evaluate_ag([gt], [pred("v/1", np.zeros((2, 20)))])


def reference_frame(gt, pr, constraint, ks, thr=0.9):
    """Loop-based STTran/TEMPURA evaluate_scene_graph + evaluate_recall for one frame."""
    gt_rels = [tuple(r) for r in gt["relations"]]
    boxes, labels, obj = gt["boxes"], gt["labels"], [1.0] * len(gt["labels"])
    rows, rel = [], []
    for (a, b), sc in zip(pr["pairs"], pr["predicate_scores"]):
        z = np.zeros(26)
        r = z.copy()
        r[0:3] = sc[0:3]
        rows.append((a, b))
        rel.append(r)
        r = z.copy()
        r[3:9] = sc[3:9]
        rows.append((b, a))
        rel.append(r)
        r = z.copy()
        r[9:26] = sc[9:26]
        rows.append((a, b))
        rel.append(r)
    preds = []
    if constraint == "with":
        for (a, b), r in zip(rows, rel):
            preds.append((a, b, int(np.argmax(r)), float(np.max(r))))
    elif constraint == "semi":
        for (a, b), r in zip(rows, rel):
            if r[0] + r[1] > 0:
                preds.append((a, b, int(np.argmax(r)), float(np.max(r))))
            elif r[3] + r[4] > 0 or r[9] + r[10] > 0:
                for j in range(26):
                    if r[j] > thr:
                        preds.append((a, b, j, float(r[j])))
    else:
        ent = []
        for i, ((a, b), r) in enumerate(zip(rows, rel)):
            for j in range(26):
                ent.append((obj[a] * obj[b] * r[j], i * 26 + j, (a, b, j, float(r[j]))))
        ent.sort(key=lambda t: (-t[0], t[1]))
        preds = [e[2] for e in ent[:100]]
    order = sorted(range(len(preds)), key=lambda i: (-preds[i][3], i))
    preds = [preds[i] for i in order]
    p2g = []
    for a, b, j, _ in preds:
        m = [
            gi
            for gi, (s, o, p) in enumerate(gt_rels)
            if (labels[s], p, labels[o]) == (labels[a], j, labels[b])
            and iou1(boxes[s], boxes[a]) >= 0.5
            and iou1(boxes[o], boxes[b]) >= 0.5
        ]
        p2g.append(m)
    out = {}
    for k in ks:
        match = reduce(np.union1d, p2g[:k], np.array([]))
        out[k] = (len(match) / len(gt_rels), [gt_rels[int(i)][2] for i in match])
    return out


@pytest.mark.parametrize("constraint", ["with", "semi", "no"])
def test_matches_loop_reference_on_random_frames(constraint):
    rng = np.random.default_rng(3)
    gts, preds = [], []
    for f in range(25):
        n = int(rng.integers(1, 5))
        xy = rng.integers(0, 50, size=(n + 1, 2))
        boxes = np.concatenate([xy, xy + rng.integers(10, 40, size=(n + 1, 2))], 1).tolist()
        labels = [1] + rng.integers(2, 8, n).tolist()
        rels = []
        for i in range(1, n + 1):
            rels.append([0, i, int(rng.integers(0, 3))])
            for p in rng.choice(6, size=int(rng.integers(1, 3)), replace=False):
                rels.append([i, 0, 3 + int(p)])
            for p in rng.choice(17, size=int(rng.integers(1, 3)), replace=False):
                rels.append([0, i, 9 + int(p)])
        s = rng.random((n, 26))
        s[:, 0:3] /= s[:, 0:3].sum(1, keepdims=True)
        s[:, 3:] = np.where(rng.random((n, 23)) < 0.2, 0.9 + 0.1 * rng.random((n, 23)), s[:, 3:])
        gts.append({"image_id": f, "boxes": boxes, "labels": labels, "relations": rels})
        preds.append(
            {
                "image_id": f,
                "boxes": boxes,
                "labels": labels,
                "label_scores": [1.0] * (n + 1),
                "pairs": [[0, i] for i in range(1, n + 1)],
                "predicate_scores": s,
            }
        )
    ks = (10, 20, 50)
    ours = evaluate_ag(gts, preds, ks=ks, constraints=(constraint,))[constraint]
    refs = [reference_frame(g, p, constraint, ks) for g, p in zip(gts, preds)]
    counts = np.zeros(26)
    for g in gts:
        for _, _, p in g["relations"]:
            counts[p] += 1
    for k in ks:
        assert ours[f"R@{k}"] == pytest.approx(np.mean([r[k][0] for r in refs]), abs=1e-12)
        hits = np.zeros(26)
        for r in refs:
            for p in r[k][1]:
                hits[p] += 1
        assert ours[f"mR@{k}"] == pytest.approx(np.mean(hits / (counts + 1e-10)), abs=1e-12)
