"""The torchmetrics wrapper: same numbers as the plain evaluator, also across 2 gloo processes."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tailgraph.evaluation.ag import evaluate_ag
from tailgraph.evaluation.metric import AGRecallMetric, OIMetric, VGRecallMetric, VidVRDMetric
from tailgraph.evaluation.openimages import evaluate_oi
from tailgraph.evaluation.vg import evaluate_vg, predicate_confusion
from tailgraph.evaluation.vidvrd import evaluate_vidvrd

from .test_vg_metrics import random_case

ZS = [[1, 2, 3], [2, 1, 1], [3, 3, 2]]


def ag_case():
    from .test_ag_metrics import frame, pred, scores_for

    gts, preds = [], []
    for i in range(6):
        gts.append({**frame(), "image_id": i})
        preds.append({**pred(i, scores_for(i % 2 == 0)), "image_id": i})
    return gts, preds


def vidvrd_case():
    rng = np.random.default_rng(2)
    preds = ["p", "q", "r"]
    gt, pred = {}, {}
    for v in range(6):
        g = []
        for _ in range(3):
            b = int(rng.integers(0, 5))
            box = [float(x) for x in rng.integers(0, 40, 2)] + [0.0, 0.0]
            box[2], box[3] = box[0] + 10, box[1] + 10
            g.append(
                {
                    "triplet": ["a", str(rng.choice(preds)), "b"],
                    "duration": [b, b + 4],
                    "sub_traj": [box] * 4,
                    "obj_traj": [box] * 4,
                }
            )
        gt[v] = g
        pred[v] = [{**r, "score": float(rng.random())} for r in g if rng.random() < 0.7]
    return gt, pred, preds


def oi_case():
    rng = np.random.default_rng(4)
    gts, preds = [], []
    for i in range(8):
        gts.append(
            {
                "image_id": i,
                "boxes": np.zeros((3, 4)),
                "labels": [1, 2, 3],
                "relations": [[0, 1, int(rng.integers(1, 4))], [2, 0, 3]],
            }
        )
        pairs = [[a, b] for a in range(3) for b in range(3) if a != b]
        preds.append(
            {
                "image_id": i,
                "boxes": np.zeros((3, 4)),
                "labels": [1, 2, 3],
                "label_scores": [1, 1, 1],
                "pairs": pairs,
                "predicate_scores": rng.random((6, 4)),
            }
        )
    return gts, preds, ["__background__", "on", "under", "holds"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    gts, preds = random_case(np.random.default_rng(5), 30, "sgdet")
    metric = VGRecallMetric("sgdet", (5, 20), num_predicates=6, zeroshot_triplets=ZS)
    # each rank evaluates its own shard, in two updates
    mine = list(range(rank, 30, world))
    metric.update([gts[i] for i in mine[:5]], [preds[i] for i in mine[:5]])
    metric.update([gts[i] for i in mine[5:]], [preds[i] for i in mine[5:]])
    result = metric.compute()
    ag_gts, ag_preds = ag_case()
    ag = AGRecallMetric("semi", ks=(10, 20))
    mine = list(range(rank, len(ag_gts), world))
    ag.update([ag_gts[i] for i in mine], [ag_preds[i] for i in mine])
    result["ag"] = ag.compute()
    gt_v, pred_v, preds_v = vidvrd_case()
    vm = VidVRDMetric(preds_v)
    keys = sorted(gt_v)[rank::world]
    vm.update({k: gt_v[k] for k in keys}, pred_v)
    result["vidvrd"] = vm.compute()
    oi_g, oi_p, names = oi_case()
    om = OIMetric(names)
    om.update(oi_g[rank::world], oi_p[rank::world])
    result["oi"] = om.compute()
    pc_g, pc_p = random_case(np.random.default_rng(6), 30, "predcls")
    pc = VGRecallMetric("predcls", (5, 20), num_predicates=6)
    pc.update(pc_g[rank::world], pc_p[rank::world])
    result["predcls_confusion"] = pc.compute()["predicate_confusion"]
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def test_metric_equals_evaluator_single_process():
    gts, preds = random_case(np.random.default_rng(5), 30, "sgdet")
    metric = VGRecallMetric("sgdet", (5, 20), num_predicates=6, zeroshot_triplets=ZS)
    metric.update(gts[:10], preds[:10])
    metric.update(gts[10:], preds[10:])
    assert metric.compute() == evaluate_vg(gts, preds, "sgdet", (5, 20), ZS, num_predicates=6)


def test_predicate_confusion_by_hand():
    gt = {
        "image_id": 1,
        "boxes": np.zeros((3, 4)),
        "labels": [1, 1, 2],
        "relations": [[0, 1, 2], [1, 2, 3], [2, 0, 2], [0, 1, 4]],
    }
    scores = np.array(
        [
            [0.9, 0.0, 0.05, 0.05, 0.0],  # pair (0,1): bg highest, fg top-1 = 2
            [0.1, 0.1, 0.2, 0.3, 0.3],  # pair (1,2): tie 3 / 4 -> first, 3
            [0.1, 0.6, 0.1, 0.1, 0.1],
        ]
    )  # pair (1,0): not a GT pair
    pred = {
        "image_id": 1,
        "boxes": np.zeros((3, 4)),
        "labels": [1, 1, 2],
        "label_scores": [1, 1, 1],
        "pairs": [[0, 1], [1, 2], [1, 0]],
        "predicate_scores": scores,
    }
    conf = predicate_confusion([gt], [pred], 5)
    expected = np.zeros((5, 5), int)
    expected[2, 2] += 1  # (0,1) GT 2 -> 2
    expected[4, 2] += 1  # (0,1) GT 4 -> 2
    expected[3, 3] += 1  # (1,2) GT 3 -> 3
    expected[2, 0] += 1  # (2,0) not scored
    assert (conf == expected).all()
    metric = VGRecallMetric("predcls", (5,), num_predicates=5)
    metric.update([gt], [pred])
    assert metric.compute()["predicate_confusion"] == expected.tolist()
    assert not VGRecallMetric("sgdet", (5,), num_predicates=5).with_confusion


def test_two_process_gloo_equals_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    gts, preds = random_case(np.random.default_rng(5), 30, "sgdet")
    expected = evaluate_vg(gts, preds, "sgdet", (5, 20), ZS, num_predicates=6)
    ag_gts, ag_preds = ag_case()
    expected_ag = evaluate_ag(ag_gts, ag_preds, ks=(10, 20), constraints=("semi",))["semi"]
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        got_ag = got.pop("ag")
        gt_v, pred_v, preds_v = vidvrd_case()
        exp_v = evaluate_vidvrd(gt_v, pred_v, predicates=preds_v)
        got_v = got.pop("vidvrd")
        for k, v in exp_v.items():
            assert got_v[k] == pytest.approx(v, abs=1e-9), k
        oi_g, oi_p, names = oi_case()
        exp_o = evaluate_oi(oi_g, oi_p, names)
        got_o = got.pop("oi")
        pc_g, pc_p = random_case(np.random.default_rng(6), 30, "predcls")
        assert got.pop("predcls_confusion") == predicate_confusion(pc_g, pc_p, 6).tolist()
        for k in ("mAP", "mAP*", "mAP_FG", "mAP*_FG"):
            assert got_o[k] == pytest.approx(exp_o[k], abs=1e-12), k
        for k, v in expected_ag.items():
            assert np.allclose(got_ag[k], v, atol=1e-12), k
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert np.allclose(got[k], v, atol=1e-12), k
