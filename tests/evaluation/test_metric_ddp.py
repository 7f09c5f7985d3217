"""The torchmetrics wrapper: same numbers as the plain evaluator, also across 2 gloo processes."""

import json
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tailgraph.evaluation.ag import evaluate_ag
from tailgraph.evaluation.metric import AGRecallMetric, VGRecallMetric
from tailgraph.evaluation.vg import evaluate_vg

from .test_vg_metrics import random_case

ZS = [[1, 2, 3], [2, 1, 1], [3, 3, 2]]


def ag_case():
    from .test_ag_metrics import frame, pred, scores_for

    gts, preds = [], []
    for i in range(6):
        gts.append({**frame(), "image_id": i})
        preds.append({**pred(i, scores_for(i % 2 == 0)), "image_id": i})
    return gts, preds


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
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def test_metric_equals_evaluator_single_process():
    gts, preds = random_case(np.random.default_rng(5), 30, "sgdet")
    metric = VGRecallMetric("sgdet", (5, 20), num_predicates=6, zeroshot_triplets=ZS)
    metric.update(gts[:10], preds[:10])
    metric.update(gts[10:], preds[10:])
    assert metric.compute() == evaluate_vg(gts, preds, "sgdet", (5, 20), ZS, num_predicates=6)


def test_two_process_gloo_equals_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    gts, preds = random_case(np.random.default_rng(5), 30, "sgdet")
    expected = evaluate_vg(gts, preds, "sgdet", (5, 20), ZS, num_predicates=6)
    ag_gts, ag_preds = ag_case()
    expected_ag = evaluate_ag(ag_gts, ag_preds, ks=(10, 20), constraints=("semi",))["semi"]
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        got_ag = got.pop("ag")
        for k, v in expected_ag.items():
            assert np.allclose(got_ag[k], v, atol=1e-12), k
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert np.allclose(got[k], v, atol=1e-12), k
