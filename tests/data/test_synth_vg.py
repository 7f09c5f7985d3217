"""synth-vg: determinism, exact round trip through the VG files, the spec's statistics."""

import numpy as np
import torch

from tailgraph.cli.synth import main as synth_main
from tailgraph.data.synthetic import (
    SynthVGConfig,
    build_world,
    generate_synth_vg,
    sample_scene,
    scene_seed,
)
from tailgraph.data.vg import load_vg

from ..helpers import tree_digest


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = generate_synth_vg(tmp_path / "a", num_train=12, num_test=4, seed=3, image_size=96)
    b = generate_synth_vg(tmp_path / "b", num_train=12, num_test=4, seed=3, image_size=96)
    c = generate_synth_vg(tmp_path / "c", num_train=12, num_test=4, seed=4, image_size=96)
    assert tree_digest(a.root) == tree_digest(b.root)
    assert tree_digest(a.root) != tree_digest(c.root)


def test_round_trip_equals_generator_truth(tmp_path):
    info = generate_synth_vg(tmp_path, num_train=20, num_test=6, seed=1, image_size=128)
    for split in ("train", "test"):
        graphs, vocab = load_vg(
            tmp_path, split, layout_only=False, filter_empty_rels=False, filter_duplicate_rels=False
        )
        truth = info.splits[split]
        assert [g.image_id for g in graphs] == [g.image_id for g in truth]
        for g, t in zip(graphs, truth):
            assert torch.equal(g.labels, t.labels)
            assert torch.equal(g.relations, t.relations)
            assert torch.allclose(g.boxes, t.boxes, atol=1e-4)
            assert g.image_path.endswith(f"{t.image_id}.jpg")
    assert vocab.coarse_parent == info.vocab.coarse_parent
    assert vocab.action_pattern == info.vocab.action_pattern
    assert vocab.spatial_pattern == info.vocab.spatial_pattern
    assert vocab.num_classes == 41 and vocab.num_predicates == 51


def test_world_long_tail_patterns_and_granularity():
    world = build_world(0)
    assert world.probs.max() / world.probs.min() == np.float64(
        world.probs.max() / world.probs.min()
    )
    assert abs(world.probs.max() / world.probs.min() - 1000.0) < 1e-6
    v = world.vocab
    names = v.predicates
    spatial_only = [i for i in range(1, 51) if v.spatial_pattern[i] and not v.action_pattern[i]]
    action_only = [i for i in range(1, 51) if v.action_pattern[i] and not v.spatial_pattern[i]]
    both = [i for i in range(1, 51) if v.action_pattern[i] and v.spatial_pattern[i]]
    assert len(spatial_only) == 11 and len(action_only) == 12 and len(both) == 27
    on = names.index("on")
    for fine in ("sitting on", "lying on", "parked on"):
        assert v.coarse_parent[names.index(fine)] == on
    has = names.index("has")
    assert (
        v.coarse_parent[names.index("carrying")] == has
        and v.coarse_parent[names.index("wearing")] == has
    )
    assert v.coarse_parent[names.index("walking near")] == names.index("near")
    # "on", "has", "near" head the tail, as in VG
    assert set(np.argsort(-world.probs)[:3] + 1) == {on, has, names.index("near")}


def test_scenes_follow_the_spec():
    world = build_world(0, SynthVGConfig(image_size=128))
    n_obj, missing, coarse, fine_total, fine_with_parent = [], 0, 0, 0, 0
    geom_ok = {"above": 0, "left of": 0}
    geom_n = {"above": 0, "left of": 0}
    for i in range(300):
        img, g = sample_scene(world, scene_seed(0, i))
        assert img.size == (128, 128)
        n_obj.append(g.num_boxes)
        fine = g.extras["fine_relations"]
        fine_total += len(fine)
        ann = {(s, o): p for s, o, p in g.relations.tolist()}
        for s, o, p in fine.tolist():
            parent = world.parent[p - 1]
            if (s, o) not in ann:
                missing += 1
                continue
            if parent > 0:
                fine_with_parent += 1
                coarse += ann[(s, o)] == parent
            name = world.predicates[p - 1]
            b = g.boxes
            if name in geom_ok:
                geom_n[name] += 1
                if name == "above":
                    geom_ok[name] += bool(b[s, 3] < b[o, 1])
                else:
                    geom_ok[name] += bool(b[s, 2] < b[o, 0])
    assert min(n_obj) >= 3 and max(n_obj) <= 10
    assert abs(missing / fine_total - 0.2) < 0.05
    assert fine_with_parent > 20 and abs(coarse / fine_with_parent - 0.4) < 0.15
    for name in geom_ok:
        assert geom_n[name] > 5 and geom_ok[name] == geom_n[name]


def test_cli_with_stats(tmp_path, capsys):
    assert (
        synth_main(
            ["--out", str(tmp_path), "--train", "30", "--test", "5", "--size", "96", "--stats"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "training images: 30" in out and "head/tail ratio" in out
    assert (tmp_path / "predicate_histogram.png").stat().st_size > 1000
