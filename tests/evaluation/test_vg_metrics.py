import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailgraph.errors import DataError
from tailgraph.evaluation.vg import box_iou_plus1, evaluate_vg, top_k_stable
from tailgraph.structures import Predictions, SceneGraph

from .sgb_reference import evaluate as reference_evaluate


def gt_graph():
    # 3 objects, 3 relations: (0,1,on=1) (1,2,has=2) (0,2,on=1)
    return SceneGraph(
        "img",
        100,
        100,
        [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 90, 90]],
        [1, 2, 3],
        [[0, 1, 1], [1, 2, 2], [0, 2, 1]],
    )


def pred_for(g, table, label_scores=None, labels=None, boxes=None):
    """table: {(s, o): scores over 4 predicate columns (0 = bg)}."""
    pairs = list(table)
    return Predictions(
        g.image_id,
        boxes if boxes is not None else g.boxes,
        labels if labels is not None else g.labels,
        label_scores if label_scores is not None else [1.0] * g.num_boxes,
        pairs,
        [table[p] for p in pairs],
    )


def test_iou_plus_one_convention():
    a = np.array([[0, 0, 9, 9]], dtype=np.float32)
    b = np.array([[5, 0, 14, 9]], dtype=np.float32)
    # areas 100 each, intersection 5*10 = 50 -> 50/150
    assert box_iou_plus1(a, b)[0, 0] == pytest.approx(1 / 3)


def test_hand_computed_recall_mean_recall_and_pair_accuracy():
    g = gt_graph()
    table = {
        (0, 1): [0.1, 0.8, 0.1, 0.0],  # on, correct, score .8
        (1, 2): [0.2, 0.7, 0.1, 0.0],  # predicts on, GT has -> miss
        (0, 2): [0.5, 0.45, 0.05, 0.0],  # on, correct, score .45
        (2, 0): [0.0, 0.0, 0.0, 0.9],  # wrong pair, top score .9
    }
    m = evaluate_vg([g], [pred_for(g, table)], ks=(1, 2, 3, 4), num_predicates=4)
    # ranking by max fg prob: (2,0) .9, (0,1) .8, (1,2) .7, (0,2) .45
    assert m["R@1"] == 0.0
    assert m["R@2"] == pytest.approx(1 / 3)
    assert m["R@3"] == pytest.approx(1 / 3)
    assert m["R@4"] == pytest.approx(2 / 3)
    # per predicate @4: on = 2/2, has = 0/1, predicate 3 absent -> 0; mR = (1 + 0 + 0)/3
    assert m["per_predicate_R@4"] == [1.0, 0.0, 0.0]
    assert m["mR@4"] == pytest.approx(1 / 3)
    # pair accuracy: predictions on GT pairs in order (0,1),(1,2),(0,2): @1 1 hit, @3 2 hits of 3
    assert m["A@1"] == pytest.approx(1 / 3) and m["A@3"] == pytest.approx(2 / 3)
    # no graph constraint: has on (1,2) has score .1 -> ranked after many; top 4 of 12 entries:
    # (2,0,3).9, (0,1,on).8, (1,2,on).7, (0,2,on).45 -> same 2 hits at K=4
    assert m["ngR@4"] == pytest.approx(2 / 3)
    # ranks 5 and 6 are the tie (0,1,has) .1 and (1,2,has) .1, ordered by input position
    m6 = evaluate_vg([g], [pred_for(g, table)], ks=(5, 6), num_predicates=4)
    assert m6["ngR@5"] == pytest.approx(2 / 3) and m6["ngR@6"] == pytest.approx(1.0)
    assert m6["ngR@6"] >= m6["R@6"]


def test_multiple_predicates_per_pair_and_duplicates():
    g = SceneGraph(
        "d", 50, 50, [[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1], [[0, 1, 1], [0, 1, 2], [0, 1, 1]]
    )
    p = pred_for(g, {(0, 1): [0.0, 0.6, 0.4], (1, 0): [1.0, 0.0, 0.0]})
    m = evaluate_vg([g], [p], ks=(1, 100), num_predicates=3)
    # graph constraint: one predicate per pair -> 'on' matches both duplicated 'on' GT rows
    assert m["R@1"] == pytest.approx(2 / 3)
    assert m["ngR@100"] == pytest.approx(1.0)


def test_sgdet_iou_threshold_and_scores():
    g = gt_graph()
    boxes = [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 90, 90], [0, 0, 4, 4]]
    pred = Predictions(
        "img",
        boxes,
        [1, 2, 3, 1],
        [0.9, 0.9, 0.9, 0.99],
        [[3, 1], [0, 1]],
        [[0.0, 0.95, 0.05, 0.0], [0.0, 0.9, 0.1, 0.0]],
    )
    m = evaluate_vg([g], [pred], mode="sgdet", ks=(1, 2), num_predicates=4)
    # box 3 has IoU 25/121 < .5 with GT box 0: the top prediction misses; second hits
    assert m["R@1"] == 0.0 and m["R@2"] == pytest.approx(1 / 3)


def test_images_without_gt_or_pairs_are_skipped_as_sgb():
    g = gt_graph()
    empty = SceneGraph("e", 10, 10, [[0, 0, 5, 5]], [1], [])
    nopairs = SceneGraph("n", 10, 10, [[0, 0, 5, 5], [1, 1, 4, 4]], [1, 2], [[0, 1, 1]])
    preds = [
        pred_for(g, {(0, 1): [0, 1, 0, 0]}),
        Predictions("e", [[0, 0, 5, 5]], [1], [1.0], [], np.zeros((0, 4))),
        Predictions("n", nopairs.boxes, nopairs.labels, [1, 1], [], np.zeros((0, 4))),
    ]
    m = evaluate_vg([g, empty, nopairs], preds, ks=(50,), num_predicates=4)
    assert m["num_images"] == 1 and m["R@50"] == pytest.approx(1 / 3)


def test_zero_shot_recall():
    g = gt_graph()
    # (0, 2) predicts 'has' (GT: on). A pair whose scores are all background still gets its
    # best foreground predicate (SGB never predicts background), so that is not used here.
    p = pred_for(g, {(0, 1): [0, 1, 0, 0], (1, 2): [0, 0, 1, 0], (0, 2): [0, 0, 1, 0]})
    # zero-shot set contains (class 2, class 3, has) and (1, 3, on): first hit, second missed
    m = evaluate_vg([g], [p], ks=(50,), zeroshot_triplets=[[2, 3, 2], [1, 3, 1]], num_predicates=4)
    assert m["zR@50"] == pytest.approx(0.5)
    assert "zR@50" not in evaluate_vg([g], [p], ks=(50,), num_predicates=4)


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            lambda p: Predictions(
                "other", p.boxes, p.labels, p.label_scores, p.pairs, p.predicate_scores
            ),
            "no prediction",
        ),
        (
            lambda p: {
                **p.__dict__,
                "predicate_scores": np.full((1, 4), np.nan),
                "pairs": np.array([[0, 1]]),
            },
            "NaN",
        ),
        (
            lambda p: {
                **p.__dict__,
                "pairs": np.array([[0, 7]]),
                "predicate_scores": np.ones((1, 4)),
            },
            "out of range",
        ),
    ],
)
def test_bad_input_errors(bad, match):
    g = gt_graph()
    p = pred_for(g, {(0, 1): [0, 1, 0, 0]})
    with pytest.raises(DataError, match=match):
        evaluate_vg([g], [bad(p)], num_predicates=4)


def test_top_k_stable_matches_full_sort():
    rng = np.random.default_rng(0)
    x = rng.random(316_000).astype(np.float32)
    x[::7] = 0.5  # many ties
    for k in (1, 100, 5000):
        ref = np.lexsort((np.arange(x.size), -x))[:k]
        assert np.array_equal(top_k_stable(x, k), ref)


def random_case(rng, n_img, mode, n_pred=6, n_cls=5):
    gts, preds = [], []
    for i in range(n_img):
        n = int(rng.integers(2, 7))
        xy = rng.integers(0, 60, size=(n, 2))
        wh = rng.integers(5, 40, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        labels = rng.integers(1, n_cls, size=n)
        nrel = int(rng.integers(0, 5))
        rels = np.stack(
            [rng.integers(0, n, nrel), rng.integers(0, n, nrel), rng.integers(1, n_pred, nrel)], 1
        )
        rels = rels[rels[:, 0] != rels[:, 1]] if nrel else np.zeros((0, 3), int)
        gts.append({"image_id": i, "boxes": boxes, "labels": labels, "relations": rels})
        pb = boxes + rng.normal(0, 2, boxes.shape).astype(np.float32) if mode == "sgdet" else boxes
        pb = np.concatenate([np.minimum(pb[:, :2], pb[:, 2:]), np.maximum(pb[:, :2], pb[:, 2:])], 1)
        pl = np.where(rng.random(n) < 0.8, labels, rng.integers(1, n_cls, n))
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        pairs = np.stack([ii.ravel(), jj.ravel()], 1)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        sc = rng.random((len(pairs), n_pred)).astype(np.float32)
        sc /= sc.sum(1, keepdims=True)
        preds.append(
            {
                "image_id": i,
                "boxes": pb,
                "labels": pl,
                "label_scores": rng.random(n).astype(np.float32),
                "pairs": pairs,
                "predicate_scores": sc,
            }
        )
    return gts, preds


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
def test_matches_reference_implementation_on_random_inputs(mode):
    rng = np.random.default_rng(1)
    gts, preds = random_case(rng, 40, mode)
    zs = {(1, 2, 3), (2, 1, 1), (3, 3, 2), (4, 1, 5)}
    ks = (1, 5, 20, 50)
    ours = evaluate_vg(gts, preds, mode=mode, ks=ks, zeroshot_triplets=list(zs), num_predicates=6)
    ref = reference_evaluate(gts, preds, mode, ks, 6, zeroshot=zs)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_properties_monotone_in_k_ng_above_gc_perfect_is_one(seed):
    rng = np.random.default_rng(seed)
    gts, preds = random_case(rng, 5, "predcls")
    m = evaluate_vg(gts, preds, ks=(1, 5, 20, 25, 100), num_predicates=6)
    if m["num_images"] == 0:
        return
    assert m["R@1"] <= m["R@5"] <= m["R@20"] <= m["R@100"]
    assert m["mR@1"] <= m["mR@5"] <= m["mR@20"] <= m["mR@100"]
    assert m["ngR@1"] <= m["ngR@5"] <= m["ngR@20"] <= m["ngR@100"]
    # Without the graph constraint a pair's best predicate can only be outranked by the other
    # predicates of pairs ranked above it, so with R-1 = 5 foreground predicates
    # ngR@(5K) >= R@K (ngR@K >= R@K itself is typical but not guaranteed).
    for k, k5 in ((1, 5), (5, 25), (20, 100)):
        assert m[f"ngR@{k5}"] >= m[f"R@{k}"] - 1e-12
    # perfect prediction: each GT pair scores its GT predicate highest
    perfect = []
    for g, p in zip(gts, preds):
        sc = np.full_like(p["predicate_scores"], 0.01)
        sc[:, 0] = 0.5
        for s, o, r in g["relations"]:
            row = np.flatnonzero((p["pairs"][:, 0] == s) & (p["pairs"][:, 1] == o))
            sc[row, r] = 1.0
        perfect.append({**p, "predicate_scores": sc})
    mp = evaluate_vg(gts, perfect, ks=(100,), num_predicates=6)
    # with multi-predicate pairs graph-constrained recall may be < 1; ng recall is exactly 1
    assert mp["ngR@100"] == pytest.approx(1.0)


def test_mean_at_k_hml_table_1b():
    from tailgraph.evaluation.vg import mean_at_k

    res = {
        "predcls": {"R@50": 0.6, "mR@50": 0.2},
        "sgcls": {"R@50": 0.4, "mR@50": 0.1},
        "sgdet": {"R@50": 0.3, "mR@50": 0.0},
    }
    assert mean_at_k(res, ks=(50,)) == {"Mean@50": pytest.approx(1.6 / 6)}
    with pytest.raises(DataError, match="lack R@20"):
        mean_at_k(res, ks=(20,))


@pytest.mark.parametrize("mode", ["predcls", "sgdet"])
def test_forked_workers_give_the_numbers_of_one_process(mode):
    gts, preds = random_case(np.random.default_rng(11), 200, mode)
    zs = [(1, 2, 3), (2, 1, 1)]
    one = evaluate_vg(gts, preds, mode, (5, 20), zs, num_predicates=6)
    two = evaluate_vg(gts, preds[::-1], mode, (5, 20), zs, num_predicates=6, workers=2)
    assert one == two
    # a bad image in the forked share is the error of one process, one line
    bad = [dict(p) for p in preds]
    bad[150]["predicate_scores"] = np.full_like(bad[150]["predicate_scores"], np.nan)
    with pytest.raises(DataError) as one_err:
        evaluate_vg(gts, bad, mode, (5, 20), num_predicates=6)
    with pytest.raises(DataError) as two_err:
        evaluate_vg(gts, bad, mode, (5, 20), num_predicates=6, workers=2)
    assert str(two_err.value) == str(one_err.value) and "\n" not in str(two_err.value)
    with pytest.raises(DataError, match="workers"):
        evaluate_vg(gts, preds, mode, (5,), workers=0)
