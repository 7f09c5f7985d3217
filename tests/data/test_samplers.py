import math

import torch
from torch.utils.data import DataLoader

from tailgraph.data.samplers import (
    AspectBinBatchSampler,
    RepeatFactorSampler,
    VideoSampler,
    repeat_factors,
    resize_scale,
    sample_relation_pairs,
    video_collate,
)
from tailgraph.structures import SceneGraph, VideoSceneGraph


def g(n, rels, i=0):
    xy = torch.arange(n, dtype=torch.float32).unsqueeze(1) * 10
    return SceneGraph(i, 100, 100, torch.cat([xy, xy, xy + 5, xy + 5], 1), [1] * n, rels)


def test_resize_scale():
    assert resize_scale(640, 480) == 1.0  # shorter side 480
    assert resize_scale(2000, 500) == 960 / 2000  # longer side capped
    assert resize_scale(300, 600) == 480 / 300


def test_aspect_bins_and_ddp_shards():
    sizes = [(200, 100)] * 7 + [(100, 200)] * 5
    s = AspectBinBatchSampler(sizes, batch_size=3, shuffle=True, seed=1)
    batches = list(s)
    for b in batches:
        assert len({sizes[i][0] >= sizes[i][1] for i in b}) == 1  # one bin per batch
    assert sorted(i for b in batches for i in b) == list(range(12))
    shards = [
        list(AspectBinBatchSampler(sizes, 3, True, 1, num_replicas=2, rank=r)) for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == math.ceil(len(batches) / 2)
    assert {i for sh in shards for b in sh for i in b} == set(
        range(12)
    )  # 5 batches: one is repeated; all covered


def test_relation_pairs_positive_fraction_and_cap():
    graphs = [
        g(10, [[0, 1, 2], [1, 2, 3], [3, 4, 1]]) for _ in range(3)
    ]  # 9 positives, 261 negatives
    out = sample_relation_pairs(
        graphs, max_relations=400, generator=torch.Generator().manual_seed(0)
    )
    labels = torch.cat([lab for _, lab in out])
    pos = int((labels > 0).sum())
    assert pos == 9 and len(labels) == 36  # negatives limited to 3x positives (>= 25 % positive)
    many = [g(30, [[i, i + 1, 1] for i in range(29)]) for _ in range(12)]  # 348 positives
    out = sample_relation_pairs(many, max_relations=400, generator=torch.Generator().manual_seed(0))
    labels = torch.cat([lab for _, lab in out])
    assert len(labels) == 400 and int((labels > 0).sum()) == 300  # <= 75 % positives
    for pairs, lab in out:
        for (s, o), y in zip(pairs.tolist(), lab.tolist()):
            assert s != o and (y > 0) == (o == s + 1)


def test_repeat_factors_by_hand():
    # predicate 1 in all 10 images, predicate 2 in one: f = 1.0 and 0.1; t = 0.4
    graphs = [g(2, [[0, 1, 1]] + ([[1, 0, 2]] if i == 0 else []), i) for i in range(10)]
    f = repeat_factors(graphs, 3, threshold=0.4)
    assert f[0].item() == 2.0 and (f[1:] == 1.0).all()  # sqrt(0.4 / 0.1) = 2
    s0 = list(RepeatFactorSampler(graphs, 3, 0.4, num_replicas=2, rank=0))
    s1 = list(RepeatFactorSampler(graphs, 3, 0.4, num_replicas=2, rank=1))
    assert len(s0) == len(s1) and sorted(s0 + s1).count(0) == 2 and len(s0 + s1) == 11 + (11 % 2)


def test_video_batches_with_a_dataloader():
    videos = [
        VideoSceneGraph(f"v{i}", [g(2, [[0, 1, 1]], f) for f in range(i + 2)]) for i in range(3)
    ]
    loader = DataLoader(
        videos,
        batch_size=1,
        sampler=VideoSampler(3, seed=0, num_replicas=1, rank=0),
        collate_fn=video_collate,
    )
    seen = [v for v in loader]
    assert sorted(len(v) for v in seen) == [2, 3, 4]
    assert len(VideoSampler(3, num_replicas=2, rank=1)) == 2
