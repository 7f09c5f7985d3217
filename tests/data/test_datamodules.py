"""Open Images and VidVRD data modules on their synthetic variants."""

import pytest
import torch

from tailgraph.datamodules.oi import OIDataModule
from tailgraph.datamodules.vidvrd import VidVRDDataModule


def test_oi_negative_mining_batches(tmp_path):
    dm = OIDataModule(
        root=str(tmp_path / "oi"),
        synth_train=20,
        synth_test=4,
        synth_size=64,
        batch_size=8,
        max_relations=30,
        shorter=96,
        longer_max=192,
    )
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert (
        sum(len(b) for b in batches) == 18 and len(dm.splits["val"]) == 2
    )  # 10 % held out for validation
    for b in batches:
        assert (
            b.images.shape[-1] == 96 and b.images.shape[-2] == 96
        )  # square 64 px images resized to shorter side 96
        assert torch.allclose(b.scales, torch.full((len(b),), 1.5))
        total = sum(p.shape[0] for p in b.pairs)
        pos = sum(
            sum(
                1
                for s, o in p.tolist()
                if any(r[0] == s and r[1] == o for r in g.relations.tolist())
            )
            for p, g in zip(b.pairs, b.graphs)
        )
        # positives are 25-75 % of the batch's pairs, by fraction
        assert total <= 30 and 0.25 * total - 1e-9 <= pos <= 0.75 * total + 1e-9
    test = next(iter(dm.test_dataloader()))
    assert test.pairs is None  # the protocol's candidates: every ordered pair at test time


def test_positive_fraction_bounds_hold_with_few_negatives():
    from tailgraph.data.samplers import sample_relation_pairs
    from tailgraph.structures import SceneGraph

    # 3 boxes, 5 of 6 ordered pairs annotated: one negative only
    g = SceneGraph(
        0,
        50,
        50,
        [[0, 0, 10, 10], [10, 10, 20, 20], [20, 20, 30, 30]],
        [1, 1, 1],
        [[0, 1, 1], [1, 0, 1], [0, 2, 2], [2, 0, 2], [1, 2, 3]],
    )
    ((pairs, labels),) = sample_relation_pairs(
        [g], 400, 0.25, 0.75, torch.Generator().manual_seed(0)
    )
    pos = int((labels > 0).sum())
    assert (pos, len(labels)) == (3, 4)  # 5 positives cut to 3 so that 3 / 4 = 75 %
    ((pairs, labels),) = sample_relation_pairs([g], 400, 0.25, 0.75, negatives=False)
    assert int((labels > 0).sum()) == 5 and len(labels) == 5  # gt_only: positives only


def test_vidvrd_segments(tmp_path):
    dm = VidVRDDataModule(
        root=str(tmp_path / "vrd"),
        synth_train=3,
        synth_test=1,
        synth_size=64,
        batch_size=4,
        output="segments",
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    seg = batch[0]
    assert seg["end"] - seg["begin"] <= 30 and len(seg["frames"]) == seg["end"] - seg["begin"]
    for r in seg["relation_instances"]:
        assert seg["begin"] <= r["begin_fid"] < r["end_fid"] <= seg["end"]
    assert dm.vocab.num_predicates > 1


def test_vidvrd_tracker_options_are_checked(tmp_path):
    from tailgraph.errors import DataError

    for bad, field in (({"tracker_matching": "hungry"}, "tracker_matching"),
                       ({"tracker_by_class": "yes"}, "tracker_by_class")):  # fmt: skip
        with pytest.raises(DataError) as err:
            VidVRDDataModule(root=str(tmp_path / "vrd"), **bad)
        assert err.value.field == field
