"""The large-image path of the VG evaluator (threshold, then sort only the candidates) gives
exactly the numbers of the full path and of the straightforward reference, ties included."""

import numpy as np
import pytest

from tailgraph.evaluation import vg
from tailgraph.evaluation.vg import evaluate_vg

from .sgb_reference import evaluate as reference_evaluate

NP = 11


def big_case(rng, n_img, mode, quantize=None, bg_high=False, zero_weights=False, nb=60):
    gts, preds = [], []
    for i in range(n_img):
        xy = rng.integers(0, 300, size=(nb, 2))
        boxes = np.concatenate([xy, xy + rng.integers(10, 120, size=(nb, 2))], 1).astype(np.float32)
        labels = rng.integers(1, 6, size=nb)
        ng = 12
        gt_idx = rng.choice(nb, ng, replace=False)
        gt_boxes = boxes[gt_idx] + (
            rng.normal(0, 2, (ng, 4)).astype(np.float32) if mode == "sgdet" else 0
        )
        gt_boxes = np.concatenate(
            [
                np.minimum(gt_boxes[:, :2], gt_boxes[:, 2:]),
                np.maximum(gt_boxes[:, :2], gt_boxes[:, 2:]),
            ],
            1,
        )
        nrel = 8
        s = rng.integers(0, ng, nrel)
        o = (s + rng.integers(1, ng, nrel)) % ng
        rels = np.stack([s, o, rng.integers(1, NP, nrel)], 1)
        ii, jj = np.meshgrid(np.arange(nb), np.arange(nb), indexing="ij")
        pairs = np.stack([ii.ravel(), jj.ravel()], 1)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        sc = rng.random((pairs.shape[0], NP)).astype(np.float32)
        if quantize:
            sc = np.round(sc * quantize) / quantize  # many exact ties
        if bg_high:
            sc[:, 0] = 5.0
        a, b = gt_idx[rels[:, 0]], gt_idx[rels[:, 1]]
        rows = a * (nb - 1) + np.where(b < a, b, b - 1)
        sc[rows[:5], rels[:5, 2]] += 3
        if mode == "predcls":
            gt_boxes, g_labels = boxes, labels
            rels = np.stack([gt_idx[rels[:, 0]], gt_idx[rels[:, 1]], rels[:, 2]], 1)
        else:
            g_labels = labels[gt_idx]
        ls = rng.random(nb).astype(np.float32)
        if zero_weights:
            ls[: nb // 3] = 0
        gts.append(
            {
                "image_id": i,
                "boxes": gt_boxes.astype(np.float32),
                "labels": g_labels,
                "relations": rels,
            }
        )
        preds.append(
            {
                "image_id": i,
                "boxes": boxes,
                "labels": labels,
                "label_scores": ls,
                "pairs": pairs,
                "predicate_scores": sc.astype(np.float32),
            }
        )
    return gts, preds


@pytest.mark.parametrize("mode", ["predcls", "sgdet"])
@pytest.mark.parametrize("variant", ["plain", "ties", "background", "zero_weights"])
def test_fast_path_equals_full_path(monkeypatch, mode, variant):
    rng = np.random.default_rng(hash((mode, variant)) % 2**32)
    kw = {
        "ties": {"quantize": 20},
        "background": {"bg_high": True},
        "zero_weights": {"zero_weights": True},
    }.get(variant, {})
    gts, preds = big_case(rng, 6, mode, **kw)
    monkeypatch.setattr(vg, "FAST_MIN_ENTRIES", 0)  # these images are smaller than the default
    calls = []
    real = vg._select_fast

    def spy(*a):
        out = real(*a)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(vg, "_select_fast", spy)
    ks = (1, 20, 50, 100, 150)
    zs = [[1, 2, 3], [2, 2, 1], [3, 1, 4]]
    fast = evaluate_vg(gts, preds, mode=mode, ks=ks, zeroshot_triplets=zs, num_predicates=NP)
    assert any(calls), "the large-image path was never certified"
    monkeypatch.setattr(vg, "FAST_MIN_ENTRIES", 10**12)
    full = evaluate_vg(gts, preds, mode=mode, ks=ks, zeroshot_triplets=zs, num_predicates=NP)
    assert fast == full


def test_fast_path_equals_reference(monkeypatch):
    monkeypatch.setattr(vg, "FAST_MIN_ENTRIES", 0)
    rng = np.random.default_rng(5)
    gts, preds = big_case(rng, 3, "sgdet", nb=45)
    ours = evaluate_vg(gts, preds, mode="sgdet", ks=(20, 50, 100), num_predicates=NP)
    ref = reference_evaluate(gts, preds, "sgdet", (20, 50, 100), NP)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_negative_object_scores_take_the_full_path(monkeypatch):
    rng = np.random.default_rng(2)
    gts, preds = big_case(rng, 2, "sgdet")
    preds[0]["label_scores"][:5] = -0.5
    out = evaluate_vg(gts, preds, mode="sgdet", num_predicates=NP)
    monkeypatch.setattr(vg, "FAST_MIN_ENTRIES", 10**12)
    assert out == evaluate_vg(gts, preds, mode="sgdet", num_predicates=NP)


def test_true_positions_matches_flatnonzero():
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 9, 1000, 4099):
        ws = vg._Workspace()
        buf = ws.get_mask(n)
        buf[:n] = rng.random(n) < 0.01
        assert np.array_equal(vg._true_positions(buf, n), np.flatnonzero(buf[:n]))


@pytest.mark.parametrize("mode", ["predcls", "sgdet"])
def test_one_non_finite_score_anywhere_is_an_error_and_negative_scores_are_evaluated(
    monkeypatch, mode
):
    """The finiteness check's integer pass certifies only finite, non-negative scores; one NaN,
    +inf or -inf anywhere is still an error naming the image, and negative or -0 scores take the
    float checks and are evaluated like any other (equal to the reference)."""
    from tailgraph.errors import DataError

    monkeypatch.setattr(vg, "FAST_MIN_ENTRIES", 0)
    gts, preds = big_case(np.random.default_rng(5), 3, mode)
    for value in (np.nan, np.inf, -np.inf, -np.nan):
        for where in ((0, 0), (1234, 7), (-1, -1)):
            bad = [dict(p) for p in preds]
            sc = bad[1]["predicate_scores"].copy()
            sc[where] = value
            bad[1]["predicate_scores"] = sc
            with pytest.raises(DataError, match="NaN or inf") as err:
                evaluate_vg(gts, bad, mode, (20, 50, 100), num_predicates=NP)
            assert "1" in str(err.value)
    shifted = [dict(p) for p in preds]
    for p in shifted:
        sc = p["predicate_scores"].copy()
        sc[::7, 3] = -0.0
        sc[::11, 5] = -0.25
        p["predicate_scores"] = sc
    ours = evaluate_vg(gts, shifted, mode, (20, 50, 100), num_predicates=NP)
    ref = reference_evaluate(gts, shifted, mode, (20, 50, 100), num_predicates=NP)
    for k in (20, 50, 100):
        assert ours[f"R@{k}"] == pytest.approx(ref[f"R@{k}"], abs=1e-12)
        assert ours[f"mR@{k}"] == pytest.approx(ref[f"mR@{k}"], abs=1e-12)
