import numpy as np
import pytest
import torch

from tailgraph.errors import DataError
from tailgraph.modeling.detector import FasterRCNNDetector, SyntheticDetector
from tailgraph.modeling.pairs import ordered_pairs, score_pairs_in_chunks
from tailgraph.structures import SceneGraph


def graph(i=0, tracks=None):
    return SceneGraph(
        f"img{i}",
        100,
        80,
        [[10, 10, 30, 30], [40, 20, 90, 70], [5, 50, 25, 75]],
        [1, 2, 3],
        [[0, 1, 1]],
        track_ids=tracks,
    )


def test_synthetic_detector_is_deterministic_and_configurable():
    g = graph()
    det = SyntheticDetector(
        num_classes=5, jitter=0.0, miss_rate=0.0, duplicate_rate=0.0, confusion=0.0
    )
    d = det([g])[0]
    assert torch.allclose(d.boxes, g.boxes) and torch.equal(d.labels, g.labels)
    assert torch.allclose(d.scores, torch.ones(3)) and d.source.tolist() == [0, 1, 2]
    noisy = SyntheticDetector(
        num_classes=5, jitter=0.1, miss_rate=0.3, duplicate_rate=0.5, confusion=0.4, seed=3
    )
    a, b = noisy([g])[0], noisy([g])[0]
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.label_dists, b.label_dists)
    assert torch.allclose(a.label_dists.sum(1), torch.ones(a.boxes.shape[0]))
    assert ((a.boxes[:, 2] >= a.boxes[:, 0]) & (a.boxes[:, 3] >= a.boxes[:, 1])).all()


def test_synthetic_detector_rates_over_many_boxes():
    rng = np.random.default_rng(0)
    graphs = []
    for i in range(200):
        xy = rng.uniform(0, 60, (5, 2))
        graphs.append(
            SceneGraph(i, 100, 100, np.concatenate([xy, xy + 20], 1), rng.integers(1, 5, 5), [])
        )
    det = SyntheticDetector(num_classes=5, miss_rate=0.2, duplicate_rate=0.25, confusion=0.3)
    out = det(graphs)
    kept = sum(int((d.source >= 0).sum()) for d in out)
    dups = sum(int((d.source < 0).sum()) for d in out)
    assert abs(kept / 1000 - 0.8) < 0.05 and abs(dups / kept - 0.25) < 0.05
    correct = sum(
        int((d.labels[d.source >= 0] == g.labels[d.source[d.source >= 0]]).sum())
        for d, g in zip(out, graphs)
    )
    assert correct / kept > 0.6


def test_tracking_keeps_ids_and_decisions_across_frames():
    det = SyntheticDetector(num_classes=5, miss_rate=0.5, confusion=0.3, tracking=True, seed=1)
    frames = [graph(i, tracks=[7, 8, 9]) for i in range(6)]
    out = [det([f], video_id="v")[0] for f in frames]
    kept = [sorted(d.track_ids[d.source >= 0].tolist()) for d in out]
    assert all(k == kept[0] for k in kept)  # a missed track is missed in every frame
    first = {int(t): d for t, d in zip(out[0].track_ids, out[0].label_dists)}
    for d in out[1:]:
        for t, dist in zip(d.track_ids.tolist(), d.label_dists):
            if t in first:
                assert torch.allclose(dist, first[t])
    with pytest.raises(DataError, match="track_ids"):
        det([graph(0)], video_id="v")


def test_faster_rcnn_wrapper_runs_from_random_init_and_checks_weights(tmp_path):
    torch.manual_seed(0)
    det = FasterRCNNDetector(
        num_classes=4, min_size=64, max_size=96, score_thresh=0.0, detections_per_img=10
    )
    out = det([torch.rand(3, 64, 80)])[0]
    n = out.boxes.shape[0]
    assert (
        out.label_dists.shape == (n, 4)
        and out.features.shape == (n, 1024)
        and out.scores.shape == (n,)
    )
    assert (out.boxes[:, 2] <= 80).all() and (out.boxes[:, 3] <= 64).all()
    with pytest.raises(DataError, match="not found"):
        FasterRCNNDetector(4, weights_path=str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"backbone.body.conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(DataError, match="do not fit"):
        FasterRCNNDetector(4, weights_path=str(bad))


def test_chunked_pair_scoring_equals_unchunked_at_80_boxes():
    torch.manual_seed(0)
    pairs, owner = ordered_pairs([80, 80])
    assert pairs.shape == (2 * 6320, 2) and owner.tolist().count(1) == 6320
    feats = torch.randn(160, 16)
    head = torch.nn.Linear(32, 51)

    def score(p):
        return head(torch.cat([feats[p[:, 0]], feats[p[:, 1]]], 1))

    with torch.no_grad():
        full = score(pairs)
        chunked = score_pairs_in_chunks(score, pairs, chunk_size=1000)
    assert torch.allclose(full, chunked, atol=1e-6)
    assert score_pairs_in_chunks(score, pairs[:0], 10).shape == (0, 51)


@pytest.mark.parametrize("context", ["pairwise", "motifs"])
def test_relation_model_pair_chunks_equal_one_pass(context):
    from tailgraph.modeling.context.motifs import MotifsContext
    from tailgraph.modeling.context.pairwise import PairwiseMLPContext
    from tailgraph.modeling.heads.linear import LinearHead
    from tailgraph.modeling.relation_model import GraphBatch, RelationModel
    from tailgraph.modeling.roi import PixelFeatures

    torch.manual_seed(0)
    names = ["__background__", "a", "b", "c"]
    rng = np.random.default_rng(0)
    graphs = []
    for i in range(2):
        xy = rng.uniform(0, 80, (12, 2))
        graphs.append(
            SceneGraph(
                i,
                128,
                128,
                np.concatenate([xy, xy + rng.uniform(8, 40, (12, 2))], 1).clip(0, 127),
                rng.integers(1, 4, 12),
                [],
            )
        )
    feats = PixelFeatures(last_stage="layer1", out_dim=16)
    ctx = (
        PairwiseMLPContext(names, obj_feat_dim=16, union_feat_dim=16, hidden_dim=16)
        if context == "pairwise"
        else MotifsContext(names, 5, obj_feat_dim=16, union_feat_dim=16, hidden_dim=16)
    )
    model = RelationModel(ctx, LinearHead(16, 5), 4, features=feats).eval()
    batch = GraphBatch(graphs, torch.randn(2, 3, 128, 128), torch.ones(2))
    with torch.no_grad():
        full = model(batch).predicate_probs
        model.pair_chunk_size = 50  # 264 pairs in 6 chunks
        chunked = model(batch).predicate_probs
    assert torch.allclose(full, chunked, atol=1e-5)


def test_sgdet_with_a_perfect_synthetic_detector_equals_predcls():
    """FREQ through SGDet with a perfect detector (no jitter, misses, duplicates or confusion)
    scores exactly as PredCls; a noisy detector scores lower."""
    from tailgraph.data.synthetic import build_world, sample_scene, scene_seed
    from tailgraph.evaluation.vg import evaluate_vg
    from tailgraph.modeling.freq import FrequencyBaseline
    from tailgraph.modeling.relation_model import GraphBatch, RelationModel, SGDetPipeline
    from tailgraph.structures import Task

    world = build_world(0)
    graphs = [sample_scene(world, scene_seed(0, i), i)[1] for i in range(60)]
    train, test = graphs[:40], graphs[40:]
    v = world.vocab
    freq = FrequencyBaseline(v.num_classes, v.num_predicates).fit(train)
    pred_cls = RelationModel(freq, None, v.num_classes, task=Task.PREDCLS)
    p1 = pred_cls.to_predictions(GraphBatch(test), pred_cls(GraphBatch(test)))
    m1 = evaluate_vg(test, p1, "predcls", num_predicates=v.num_predicates)
    perfect = SyntheticDetector(
        v.num_classes, jitter=0.0, miss_rate=0.0, duplicate_rate=0.0, confusion=0.0
    )
    sgdet = SGDetPipeline(
        perfect, RelationModel(freq, None, v.num_classes, task=Task.SGDET, pair_chunk_size=16)
    )
    m2 = evaluate_vg(test, sgdet(GraphBatch(test)), "sgdet", num_predicates=v.num_predicates)
    for k in ("R@20", "R@50", "mR@50", "ngR@50"):
        assert m2[k] == pytest.approx(m1[k]), k
    noisy = SGDetPipeline(
        SyntheticDetector(v.num_classes, jitter=0.2, miss_rate=0.3, confusion=0.5),
        RelationModel(freq, None, v.num_classes, task=Task.SGDET),
    )
    assert (
        evaluate_vg(test, noisy(GraphBatch(test)), "sgdet", num_predicates=v.num_predicates)["R@50"]
        < m1["R@50"]
    )


def test_relation_model_reads_cached_features(tmp_path):
    from tailgraph.datamodules.feature_cache import CachedFeatures, build_cache
    from tailgraph.modeling.context.pairwise import PairwiseMLPContext
    from tailgraph.modeling.heads.linear import LinearHead
    from tailgraph.modeling.relation_model import GraphBatch, RelationModel
    from tailgraph.modeling.roi import PixelFeatures

    torch.manual_seed(0)
    graphs = [graph(i) for i in range(2)]
    fx = PixelFeatures(last_stage="layer1", out_dim=8, frozen_trunk=True, union_features=False)
    batch = GraphBatch(graphs, torch.randn(2, 3, 80, 100), torch.ones(2))
    build_cache(tmp_path / "c.h5", fx, [batch])
    names = ["__background__", "a", "b", "c", "d"]
    ctx = PairwiseMLPContext(names, obj_feat_dim=8, hidden_dim=8)
    live = RelationModel(ctx, LinearHead(8, 3), 5, features=fx).eval()
    cached = RelationModel(
        ctx, LinearHead(8, 3), 5, feature_cache=CachedFeatures(tmp_path / "c.h5")
    ).eval()
    cached.head = live.head
    with torch.no_grad():
        assert torch.allclose(
            live(batch).predicate_logits, cached(GraphBatch(graphs)).predicate_logits, atol=1e-5
        )
