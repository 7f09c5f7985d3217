"""VidVRD protocol: viou / AP by hand, and a loop re-implementation of VidVRD-helper's evaluate."""

import numpy as np
import pytest

from tailgraph.errors import DataError
from tailgraph.evaluation.vidvrd import evaluate_vidvrd, viou, voc_ap


def test_viou_hand_computed():
    a = np.array([[0, 0, 9, 9]] * 4, dtype=float)  # frames 0..3, area 100 each
    b = np.array([[5, 0, 14, 9]] * 4, dtype=float)  # frames 2..5
    # overlap on frames 2,3: 50 each -> 100; volumes 400 + 400
    assert viou(a, (0, 4), b, (2, 6)) == pytest.approx(100 / 700)
    assert viou(a, (0, 4), b, (4, 8)) == 0.0


def test_voc_ap_hand_computed():
    # two GT; predictions TP, FP, TP: rec .5,.5,1  prec 1,.5,.667 -> AP = .5*1 + .5*.667
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(
        0.5 + 0.5 * 2 / 3
    )


def rel(t, b, e, box, score=None, obox=None):
    r = {
        "triplet": list(t),
        "duration": [b, e],
        "sub_traj": [box] * (e - b),
        "obj_traj": [obox or box] * (e - b),
    }
    if score is not None:
        r["score"] = score
    return r


def test_detection_tagging_and_mean_recall_by_hand():
    box, far = [0, 0, 9, 9], [50, 50, 59, 59]
    gt = {
        "v1": [rel(("dog", "chase", "cat"), 0, 10, box), rel(("dog", "watch", "cat"), 0, 10, box)],
        "v2": [rel(("man", "ride", "horse"), 0, 5, box)],
        "empty": [],
    }
    pred = {
        "v1": [
            rel(("dog", "chase", "cat"), 0, 10, box, 0.9),
            rel(("dog", "chase", "cat"), 0, 10, box, 0.8),
            rel(("dog", "watch", "cat"), 0, 10, far, 0.7),
        ],
        "v2": [rel(("man", "ride", "horse"), 0, 5, box, 0.5)],
        "other": [rel(("a", "b", "c"), 0, 1, box, 1.0)],
    }
    m = evaluate_vidvrd(gt, pred, det_nreturns=(1, 50, 100), tag_nreturns=(1, 2))
    # v1: TP, FP (GT already detected), FP (far box) -> AP = 0.5 ; v2: AP 1
    assert m["RelDet_mAP"] == pytest.approx(0.75)
    assert m["RelDet_R@50"] == pytest.approx(2 / 3)
    assert m["RelDet_R@1"] == pytest.approx(2 / 3)
    # tagging: v1 unique triplets chase (hit), watch (hit) -> P@1 = 1, P@2 = 1; v2 P@1 = 1
    assert m["RelTag_P@1"] == 1.0 and m["RelTag_P@2"] == 1.0
    # predicates: chase 1/1, watch 0/1, ride 1/1 -> mR = 2/3
    assert m["mR@50"] == pytest.approx(2 / 3)
    assert m["Mean"] == pytest.approx((2 / 3 + 2 / 3 + 2 / 3 + 2 / 3) / 4)
    assert m["num_videos"] == 2
    m2 = evaluate_vidvrd(gt, pred, predicates=["chase", "watch", "ride", "fly"])
    assert m2["mR@50"] == pytest.approx(2 / 4)


def test_bad_trajectories():
    box = [0, 0, 9, 9]
    gt = {"v": [rel(("a", "b", "c"), 0, 3, box)]}
    bad = rel(("a", "b", "c"), 0, 3, box, 0.5)
    bad["sub_traj"] = bad["sub_traj"][:2]
    with pytest.raises(DataError, match="2 boxes for duration"):
        evaluate_vidvrd(gt, {"v": [bad]})
    nan = rel(("a", "b", "c"), 0, 3, box, float("nan"))
    with pytest.raises(DataError, match="NaN"):
        evaluate_vidvrd(gt, {"v": [nan]})


def ref_viou(t1, d1, t2, d2):
    if d1[0] >= d2[1] or d1[1] <= d2[0]:
        return 0.0
    ov = 0.0
    for f in range(max(d1[0], d2[0]), min(d1[1], d2[1])):
        r1, r2 = t1[f - d1[0]], t2[f - d2[0]]
        ov += max(0, min(r1[2], r2[2]) - max(r1[0], r2[0]) + 1) * max(
            0, min(r1[3], r2[3]) - max(r1[1], r2[1]) + 1
        )
    v1 = sum((r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in t1)
    v2 = sum((r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in t2)
    return ov / (v1 + v2 - ov)


def ref_evaluate(gt, pred, ns=(50, 100), tags=(1, 5, 10)):
    eps = np.finfo(np.float32).eps
    aps, tot_gt, tot_tp, pat = [], 0, {n: [] for n in ns}, {n: [] for n in tags}
    for vid, g in gt.items():
        if not g:
            continue
        tot_gt += len(g)
        ps = sorted(pred.get(vid, []), key=lambda x: x["score"], reverse=True)
        det = [False] * len(g)
        hit = []
        for p in ps:
            best, k = -np.inf, -1
            for j, r in enumerate(g):
                if not det[j] and tuple(p["triplet"]) == tuple(r["triplet"]):
                    ov = min(
                        ref_viou(p["sub_traj"], p["duration"], r["sub_traj"], r["duration"]),
                        ref_viou(p["obj_traj"], p["duration"], r["obj_traj"], r["duration"]),
                    )
                    if ov >= 0.5 and ov > best:
                        best, k = ov, j
            if k >= 0:
                det[k] = True
            hit.append(k >= 0)
        tp = np.array(hit, dtype=bool)
        ctp, cfp = np.cumsum(tp).astype(np.float32), np.cumsum(~tp).astype(np.float32)
        aps.append(voc_ap(ctp / np.maximum(len(g), eps), ctp / np.maximum(ctp + cfp, eps)))
        for n in ns:
            tot_tp[n].append(tp[:n])
        gts = {tuple(r["triplet"]) for r in g}
        seen, th = [], []
        for p in ps:
            t = tuple(p["triplet"])
            if t not in seen:
                seen.append(t)
                th.append(t in gts)
        th = np.array(th, dtype=bool)
        c1, c2 = np.cumsum(th).astype(np.float32), np.cumsum(~th).astype(np.float32)
        prec = c1 / np.maximum(c1 + c2, eps)
        for n in tags:
            cut = min(n, prec.size)
            pat[n].append(prec[cut - 1] if cut > 0 else 0.0)
    out = {"RelDet_mAP": np.mean(aps)}
    for n in ns:
        out[f"RelDet_R@{n}"] = float(
            np.cumsum(np.concatenate(tot_tp[n])).astype(np.float32)[-1] / np.maximum(tot_gt, eps)
        )
    for n in tags:
        out[f"RelTag_P@{n}"] = float(np.mean(pat[n]))
    return out


def test_matches_loop_reference_on_random_videos():
    rng = np.random.default_rng(7)
    cats, preds_ = ["a", "b", "c"], ["p", "q", "r", "s"]

    def traj(b, e):
        x, y = rng.integers(0, 50, 2)
        w, h = rng.integers(5, 30, 2)
        drift = rng.integers(-2, 3, 2)
        return [
            [
                float(x + drift[0] * t),
                float(y + drift[1] * t),
                float(x + w + drift[0] * t),
                float(y + h + drift[1] * t),
            ]
            for t in range(e - b)
        ]

    gt, pred = {}, {}
    for v in range(15):
        g = []
        for _ in range(int(rng.integers(0, 5))):
            b = int(rng.integers(0, 20))
            e = b + int(rng.integers(3, 15))
            g.append(
                {
                    "triplet": [
                        str(rng.choice(cats)),
                        str(rng.choice(preds_)),
                        str(rng.choice(cats)),
                    ],
                    "duration": [b, e],
                    "sub_traj": traj(b, e),
                    "obj_traj": traj(b, e),
                }
            )
        gt[v] = g
        ps = []
        for r in g:
            for _ in range(int(rng.integers(0, 3))):  # near-copies of GT
                jit = lambda t: [[c + float(rng.normal(0, 1.5)) for c in box] for box in t]  # noqa: E731
                ps.append(
                    {
                        **r,
                        "sub_traj": jit(r["sub_traj"]),
                        "obj_traj": jit(r["obj_traj"]),
                        "score": float(rng.random()),
                    }
                )
        for _ in range(int(rng.integers(0, 6))):
            b = int(rng.integers(0, 20))
            e = b + int(rng.integers(3, 15))
            ps.append(
                {
                    "triplet": [
                        str(rng.choice(cats)),
                        str(rng.choice(preds_)),
                        str(rng.choice(cats)),
                    ],
                    "duration": [b, e],
                    "sub_traj": traj(b, e),
                    "obj_traj": traj(b, e),
                    "score": float(rng.random()),
                }
            )
        pred[v] = ps
    ours = evaluate_vidvrd(gt, pred)
    ref = ref_evaluate(gt, pred)
    assert ours["RelDet_R@50"] > 0.2  # matching is exercised
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-7), k


def test_evaluate_command_vidvrd(tmp_path):
    import json

    from tailgraph.cli.evaluate import main as evaluate_main

    box = [0, 0, 9, 9]
    gt = {
        "format": "tailgraph-sg/1",
        "protocol": "vidvrd",
        "videos": {"v1": [rel(("dog", "chase", "cat"), 0, 4, box)]},
    }
    pred = {
        "version": "VERSION 1.0",
        "results": {"v1": [rel(("dog", "chase", "cat"), 0, 4, box, 0.9)]},
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    assert (
        evaluate_main(
            [
                "--protocol",
                "vidvrd",
                "--gt",
                str(tmp_path / "gt.json"),
                "--pred",
                str(tmp_path / "pred.json"),
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["RelDet_mAP"] == 1.0 and out["Mean"] == 1.0
    del pred["results"]["v1"][0]["score"]
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    assert (
        evaluate_main(
            [
                "--protocol",
                "vidvrd",
                "--gt",
                str(tmp_path / "gt.json"),
                "--pred",
                str(tmp_path / "pred.json"),
            ]
        )
        == 2
    )


@pytest.mark.parametrize(
    "change,field,text",
    [
        ({"score": "x"}, "score", "not a number"),
        ({"score": None}, "score", "not a number"),
        ({"score": True}, "score", "not a number"),
        ({"duration": [5]}, "duration", "frame integers"),
        ({"duration": [0.5, 3]}, "duration", "frame integers"),
        ({"duration": "ab"}, "duration", "frame integers"),
        ({"duration": [3, 3]}, "duration", "empty or negative"),
        ({"triplet": [1, 2, 3]}, "triplet", "names"),
        ({"triplet": "a b c"}, "triplet", "names"),
        ({"sub_traj": [[9, 9, 0, 0]] * 3}, "sub_traj", "x2 < x1"),
    ],
)
def test_relation_instances_of_the_wrong_type_are_errors(change, field, text):
    box = [0, 0, 9, 9]
    gt = {"v": [rel(("a", "b", "c"), 0, 3, box)]}
    bad = {**rel(("a", "b", "c"), 0, 3, box, 0.5), **change}
    with pytest.raises(DataError, match=text) as err:
        evaluate_vidvrd(gt, {"v": [bad]})
    assert err.value.field == field and err.value.sample == "v relation 0"
    if field != "score":  # the ground truth is held to the same form
        with pytest.raises(DataError, match=text):
            evaluate_vidvrd({"v": [{k: v for k, v in bad.items() if k != "score"}]}, {})
    no_duration = {k: v for k, v in gt["v"][0].items() if k != "duration"}
    with pytest.raises(DataError, match="missing key 'duration'"):
        evaluate_vidvrd({"v": [no_duration]}, {})


def test_segment_predictions_feed_the_metric_through_update(tmp_path):
    """VidVRD-II's segment predictions go through torchmetrics' ``update``: no "compute before
    update" warning, and a ``compute`` after more segments sees them (no stale cached result)."""
    import warnings

    from tailgraph.data.vidvrd import to_groundtruth
    from tailgraph.protocols.vidvrd import VidVRDFrameMetric
    from tailgraph.structures import SegmentPrediction
    from tests.helpers import tiny_vrd_tracklets

    dm = tiny_vrd_tracklets(tmp_path / "vrd", 2, 3, 32)
    dm.prepare_data()
    dm.setup("test")
    videos = dm.eval_graphs("test")
    gt = to_groundtruth(videos)
    metric = VidVRDFrameMetric(dm.vocab, videos, (50, 100), associate=lambda segs: sum(segs, []))
    metric.prime()
    with_relations = [v for v in gt if gt[v]]
    assert len(with_relations) >= 2
    first, rest = with_relations[0], with_relations[1:]
    exact = {v: [{**r, "score": 1.0} for r in gt[v]] for v in with_relations}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.update_segments([SegmentPrediction(first, 0, exact[first])])
        for v in rest:  # the other videos: predicted, but nothing right
            metric.update_segments([SegmentPrediction(v, 0, [])])
        partial = metric.compute()["RelDet_R@50"]
        for v in rest:
            metric.update_segments([SegmentPrediction(v, 8, exact[v])])
        full = metric.compute()["RelDet_R@50"]
    assert partial == pytest.approx(len(gt[first]) / sum(len(gt[v]) for v in with_relations))
    assert full == pytest.approx(1.0)
