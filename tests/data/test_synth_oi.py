"""synth-oi: written as Open Images VRD CSVs, read back equal to the generator's truth."""

import torch

from tailgraph.data.openimages import load_oi
from tailgraph.data.synthetic.oi import generate_synth_oi

from ..helpers import tree_digest


def test_round_trip_and_determinism(tmp_path):
    info = generate_synth_oi(tmp_path / "a", num_train=25, num_test=5, seed=2, image_size=96)
    assert tree_digest(info.root) == tree_digest(
        generate_synth_oi(tmp_path / "b", num_train=25, num_test=5, seed=2, image_size=96).root
    )
    for split in ("train", "test"):
        graphs, vocab = load_oi(info.root, split, layout_only=False)
        truth = {g.image_id: g for g in info.splits[split]}
        assert sorted(g.image_id for g in graphs) == sorted(truth)
        for g in graphs:
            t = truth[g.image_id]
            assert torch.equal(g.labels, t.labels) and torch.equal(g.relations, t.relations)
            assert torch.allclose(g.boxes, t.boxes, atol=1e-3)
            assert g.extras["attributes"] == t.extras["attributes"]
    assert vocab.num_predicates == 10 and sum(vocab.predicate_counts) == sum(
        g.num_relations for g in info.splits["train"]
    )


def test_cli_stats(tmp_path, capsys):
    from tailgraph.cli.synth import main as synth_main

    assert (
        synth_main(
            [
                "--variant",
                "synth-oi",
                "--out",
                str(tmp_path),
                "--train",
                "10",
                "--test",
                "2",
                "--size",
                "96",
                "--stats",
            ]
        )
        == 0
    )
    assert "train:" in capsys.readouterr().out
