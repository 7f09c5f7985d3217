"""Multi-process training and evaluation through Lightning DDP (gloo, CPU): the samplers' shards
(padded to equal length for training, disjoint and complete for evaluation), and `fit` + `test`
in two processes, whose metrics equal a single process's on the same checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from tailgraph.data.samplers import AspectBinBatchSampler, ShardSampler, VideoSampler

ROOT = Path(__file__).resolve().parents[2]


def _flat(x):
    return [i for b in x for i in (b if isinstance(b, list) else [b])]


@pytest.mark.parametrize("n,world", [(7, 2), (10, 3), (2, 2), (0, 2)])
def test_shards_are_padded_for_training_and_disjoint_complete_for_evaluation(n, world):
    sizes = [(40 + i, 30 if i % 2 else 50) for i in range(n)]
    makers = {
        "shard": lambda r, pad: ShardSampler(
            n, shuffle=True, seed=3, pad=pad, num_replicas=world, rank=r
        ),
        "video": lambda r, pad: VideoSampler(
            n, shuffle=True, seed=3, pad=pad, num_replicas=world, rank=r
        ),
        "aspect": lambda r, pad: AspectBinBatchSampler(
            sizes, 2, shuffle=True, seed=3, pad=pad, num_replicas=world, rank=r
        ),
    }
    for name, make in makers.items():
        train = [list(make(r, True)) for r in range(world)]
        assert len({len(t) for t in train}) == 1, name  # equal step counts
        assert set(_flat(sum(train, []))) == set(range(n)), name
        evals = [_flat(list(make(r, False))) for r in range(world)]
        together = sum(evals, [])
        assert sorted(together) == list(range(n)), name  # each item exactly once
        assert [len(make(r, False)) for r in range(world)] == [
            len(list(make(r, False))) for r in range(world)
        ]


def test_fewer_evaluation_items_than_processes_is_an_error():
    from tailgraph.errors import DataError

    with pytest.raises(DataError, match="every process needs at least one"):
        list(ShardSampler(1, pad=False, num_replicas=2, rank=1))
    assert list(ShardSampler(1, pad=True, num_replicas=2, rank=1)) == [0]  # training pads


def test_single_process_shuffle_equals_a_shuffled_dataloader():
    """Without a seed the order is drawn from the global RNG exactly as DataLoader(shuffle=True)."""
    ds = list(range(23))
    torch.manual_seed(5)
    ref = [list(b) for b in DataLoader(ds, batch_size=4, sampler=RandomSampler(ds))]
    torch.manual_seed(5)
    got = [
        list(b) for b in DataLoader(ds, batch_size=4, sampler=ShardSampler(len(ds), shuffle=True))
    ]
    assert [[int(v) for v in b] for b in got] == [[int(v) for v in b] for b in ref]


def _cli(args, cwd, env=None):
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    out = subprocess.run(
        [sys.executable, "-m", "tailgraph.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=e,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_ddp_fit_and_test_in_two_processes_equal_one_process(tmp_path):
    from tests.engine.test_recipes import tiny_recipe

    recipe = tiny_recipe("vg_predcls_motifs", tmp_path)
    import yaml

    cfg = yaml.safe_load(recipe.read_text())
    # 7 test images on 2 processes: uneven shards (4 + 3), every image counted once
    cfg["data"]["init_args"].update(num_train=30, num_test=7, batch_size=3, num_val_im=3)
    cfg["trainer"].pop("limit_train_batches", None)
    cfg["trainer"]["max_epochs"] = 4
    recipe.write_text(yaml.safe_dump(cfg))
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    _cli(["fit", "--config", str(recipe), *ddp], tmp_path)
    ckpt = tmp_path / "out" / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    _cli(["test", "--config", str(recipe), "--ckpt_path", str(ckpt), *ddp], tmp_path)
    _cli(
        ["test", "--config", str(recipe), "--ckpt_path", str(ckpt), "--trainer.devices", "1"],
        tmp_path,
    )
    runs = sorted(
        (tmp_path / "out" / "runs").glob("version_*"), key=lambda p: int(p.name.split("_")[1])
    )
    two, one = (json.loads((r / "metrics.json").read_text())["models"]["model"] for r in runs[-2:])
    assert set(two) == set(one)
    for k, v in one.items():
        if k == "predicate_confusion":  # counts: summed over the ranks, equal exactly
            assert two[k] == v and sum(map(sum, v)) > 0
        elif isinstance(v, list):
            assert two[k] == pytest.approx(v, abs=1e-12), k
        elif isinstance(v, (int, float)):
            assert two[k] == pytest.approx(v, abs=1e-12), k
    assert two["num_images"] == one["num_images"] > 0
    assert max(one["R@100"], one["ngR@100"], one["mR@100"]) > 0  # the comparison is not all zeros


def _numbers(d, prefix=""):
    """Every number of a (nested) metrics document, keyed by its path."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_numbers(v, f"{key}/"))
        elif isinstance(v, list):
            out[key] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


@pytest.mark.parametrize(
    "recipe_name,count", [("ag_predcls_sttran", "num_frames"), ("vrd_vidvrd2", "num_videos")]
)
def test_ag_and_vidvrd_metrics_are_reduced_across_two_processes(recipe_name, count, tmp_path):
    """The AG composite (with / semi / no) and the VidVRD metric (video-level instances from
    segments) are torchmetrics Metrics: `test` on 2 processes, each with its own shard of the
    test videos, gives exactly the numbers of one process."""
    import yaml

    from tests.engine.test_recipes import tiny_recipe

    recipe = tiny_recipe(recipe_name, tmp_path)
    cfg = yaml.safe_load(recipe.read_text())
    cfg["data"]["init_args"].update(synth_train=4, synth_test=5)  # 5 test videos: 3 + 2 shards
    cfg["data"]["init_args"]["val_fraction"] = 0.0
    cfg["trainer"]["limit_val_batches"] = 0
    recipe.write_text(yaml.safe_dump(cfg))
    _cli(["fit", "--config", str(recipe)], tmp_path)
    ckpt = tmp_path / "out" / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    _cli(["test", "--config", str(recipe), "--ckpt_path", str(ckpt), *ddp], tmp_path)
    _cli(
        ["test", "--config", str(recipe), "--ckpt_path", str(ckpt), "--trainer.devices", "1"],
        tmp_path,
    )
    runs = sorted(
        (tmp_path / "out" / "runs").glob("version_*"), key=lambda p: int(p.name.split("_")[1])
    )
    two, one = (
        _numbers(json.loads((r / "metrics.json").read_text())["models"]["model"]) for r in runs[-2:]
    )
    assert set(two) == set(one)
    for k, v in one.items():
        assert two[k] == pytest.approx(v, abs=1e-12), k
    counted = [v for k, v in one.items() if k.endswith(count)]
    assert counted and all(c > 0 for c in counted)


def test_grouped_evaluation_shards_hold_whole_groups():
    groups = ["a", "a", "b", "c", "c", "c", "d", "e"]
    shards = [
        list(ShardSampler(len(groups), pad=False, num_replicas=2, rank=r, groups=groups))
        for r in range(2)
    ]
    assert sorted(shards[0] + shards[1]) == list(range(len(groups)))  # disjoint and complete
    assert {groups[i] for i in shards[0]}.isdisjoint({groups[i] for i in shards[1]})  # whole groups
    assert shards[0] == [0, 1, 3, 4, 5, 7] and shards[1] == [2, 6]  # groups a, c, e | b, d
    assert [
        len(ShardSampler(len(groups), pad=False, num_replicas=2, rank=r, groups=groups))
        for r in range(2)
    ] == [6, 2]
    # training still pads item by item
    assert len(ShardSampler(len(groups), pad=True, num_replicas=3, rank=2, groups=groups)) == 3
