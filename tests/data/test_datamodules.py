"""Open Images and VidVRD data modules on their synthetic variants."""

import torch

from tailgraph.data.datamodules import OIDataModule, VidVRDDataModule


def test_oi_negative_mining_batches(tmp_path):
    dm = OIDataModule(root=str(tmp_path / "oi"), synth_train=20, synth_test=4, synth_size=64, batch_size=8, max_relations=30,
                      shorter=96, longer_max=192)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert sum(len(b) for b in batches) == 20
    for b in batches:
        assert b.images.shape[-1] == 96 and b.images.shape[-2] == 96  # square 64 px images resized to shorter side 96
        assert torch.allclose(b.scales, torch.full((len(b),), 1.5))
        total = sum(p.shape[0] for p in b.pairs)
        pos = sum(sum(1 for s, o in p.tolist() if any(r[0] == s and r[1] == o for r in g.relations.tolist())) for p, g in zip(b.pairs, b.graphs))
        assert total <= 30 and pos >= 0.25 * total - 1e-9 and pos <= 0.75 * 30
    test = next(iter(dm.test_dataloader()))
    g = test.graphs[0]
    assert test.pairs[0].shape[0] == g.num_boxes * (g.num_boxes - 1)  # every ordered pair at test time


def test_vidvrd_segments(tmp_path):
    dm = VidVRDDataModule(root=str(tmp_path / "vrd"), synth_train=3, synth_test=1, synth_size=64, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    seg = batch[0]
    assert seg["end"] - seg["begin"] <= 30 and len(seg["frames"]) == seg["end"] - seg["begin"]
    for r in seg["relation_instances"]:
        assert seg["begin"] <= r["begin_fid"] < r["end_fid"] <= seg["end"]
    assert dm.vocab.num_predicates > 1
