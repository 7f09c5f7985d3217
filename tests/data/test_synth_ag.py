"""synth-ag: written in Action Genome's files, read back equal to the generator's truth."""

import torch

from tailgraph.cli.synth import main as synth_main
from tailgraph.data.action_genome import load_ag
from tailgraph.data.synthetic.ag import generate_synth_ag

from ..helpers import tree_digest


def test_round_trip_determinism_and_label_structure(tmp_path):
    info = generate_synth_ag(tmp_path / "a", num_train=4, num_test=2, seed=5, image_size=96)
    assert tree_digest(info.root) == tree_digest(
        generate_synth_ag(tmp_path / "b", num_train=4, num_test=2, seed=5, image_size=96).root
    )
    for split in ("train", "test"):
        videos, vocab = load_ag(info.root, split, layout_only=False)
        truth = info.videos[split]
        assert [v.video_id for v in videos] == [v.video_id for v in truth] and videos
        for a, b in zip(videos, truth):
            assert len(a) == len(b) >= 8
            for fa, fb in zip(a.frames, b.frames):
                assert torch.equal(fa.relations, fb.relations) and torch.equal(fa.labels, fb.labels)
                assert torch.allclose(fa.boxes, fb.boxes)
                rel = fa.relations
                # one attention label per object, at most one looking_at per frame, >= 1 spatial
                # label each
                att = rel[rel[:, 2] < 3]
                assert sorted(att[:, 1].tolist()) == list(range(1, fa.num_boxes))
                assert int((att[:, 2] == 0).sum()) <= 1
                spa = rel[(rel[:, 2] >= 3) & (rel[:, 2] < 9)]
                assert (
                    set(spa[:, 0].tolist()) == set(range(1, fa.num_boxes))
                    and (spa[:, 1] == 0).all()
                )
    small, _ = load_ag(info.root, "train", filter_small_box=True)
    assert sum(f.num_boxes for v in small for f in v.frames) <= sum(
        f.num_boxes for v in info.videos["train"] for f in v.frames
    )


def test_cli(tmp_path, capsys):
    assert (
        synth_main(
            [
                "--variant",
                "synth-ag",
                "--out",
                str(tmp_path),
                "--train",
                "3",
                "--test",
                "1",
                "--size",
                "96",
                "--stats",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "synth-ag: wrote" in out and "not_contacting" in out
