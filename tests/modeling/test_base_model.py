"""Features, pairwise context, linear head, FREQ and RelationModel (the foundation model)."""

import pytest
import torch

from tailgraph.components import build_component
from tailgraph.errors import DataError
from tailgraph.modeling.backbone import ResNetTrunk, load_backbone_weights
from tailgraph.modeling.context.pairwise import PairwiseMLPContext
from tailgraph.modeling.embeddings import ClassEmbedding, glove_matrix
from tailgraph.modeling.freq import FrequencyBaseline, pair_predicate_counts
from tailgraph.modeling.geometry import box_geometry, pair_geometry, union_boxes
from tailgraph.modeling.heads.linear import LinearHead
from tailgraph.modeling.relation_model import GraphBatch, RelationModel, all_pairs
from tailgraph.modeling.roi import PixelFeatures
from tailgraph.structures import SceneGraph, Task
from tailgraph.wordvec import phrase_vector
from tests.helpers import pair_targets

NAMES = ["__background__", "red circle", "blue square", "green star"]


def g(image_id=0, rels=((0, 1, 1), (2, 0, 3))):
    return SceneGraph(
        image_id,
        128,
        96,
        [[0, 0, 50, 50], [20, 20, 90, 90], [60, 10, 120, 80]],
        [1, 2, 3],
        list(rels),
    )


def test_geometry_hand_computed():
    boxes = torch.tensor([[0.0, 0.0, 50.0, 20.0]])
    feats = box_geometry(boxes, torch.tensor([[100.0, 200.0]]), torch.tensor([0]))
    # x over width 200, y over height 100
    assert torch.allclose(feats[0], torch.tensor([0, 0, 0.25, 0.2, 0.125, 0.1, 0.25, 0.2, 0.05]))
    s = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    o = torch.tensor([[10.0, 0.0, 19.0, 9.0]])
    pg = pair_geometry(s, o)
    assert pg.shape == (1, 13)
    assert pg[0, 0].item() == pytest.approx(-10 / 10)  # dx over object width (w + eps = 10)
    assert pg[0, 2].item() == pytest.approx(0.0)  # same width
    assert pg[0, 7].item() == pytest.approx(0.0)  # no overlap
    assert torch.equal(
        union_boxes(torch.cat([s, o]), torch.tensor([[0, 1]])),
        torch.tensor([[0.0, 0.0, 19.0, 9.0]]),
    )


def test_all_pairs_excludes_self_and_offsets_images():
    pairs, owner = all_pairs([2, 0, 3])
    assert pairs.tolist() == [[0, 1], [1, 0], [2, 3], [2, 4], [3, 2], [3, 4], [4, 2], [4, 3]]
    assert owner.tolist() == [0, 0, 2, 2, 2, 2, 2, 2]


def test_pair_targets_labels_and_multi_hot():
    g1 = g(rels=((0, 1, 1), (0, 1, 2), (2, 0, 3)))
    pairs, _ = all_pairs([3, 3])
    g2 = g(image_id=1, rels=((1, 2, 2),))
    labels, mh = pair_targets([g1, g2], pairs)
    lab = {tuple(p): int(y) for p, y in zip(pairs.tolist(), labels)}
    assert lab[(0, 1)] in (1, 2) and lab[(2, 0)] == 3 and lab[(4, 5)] == 2
    assert sum(v != 0 for v in lab.values()) == 3
    row = pairs.tolist().index([0, 1])
    assert mh[row].tolist() == [0, 1, 1, 0]
    assert mh[pairs.tolist().index([1, 0])].tolist() == [1, 0, 0, 0]


def test_frequency_counts_and_baseline():
    counts = pair_predicate_counts([g()], num_classes=4, num_predicates=4)
    assert counts[1, 2, 1] == 1 and counts[3, 1, 3] == 1
    # 6 ordered pairs, 2 related -> 4 background
    assert counts[..., 0].sum() == 4 and counts.sum() == 6
    freq = FrequencyBaseline(4, 4).fit([g(), g(image_id=2)])
    model = RelationModel(freq, None, 4)
    out = model(GraphBatch([g()]))
    probs = out.predicate_probs
    row = out.pairs.tolist().index([0, 1])
    assert probs[row].argmax().item() == 1
    assert probs[row, 1].item() > 0.99
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))


def test_wordvec_and_class_embedding():
    v_on, found = phrase_vector("on")
    assert found and v_on.shape == (50,)
    v_multi, _ = phrase_vector("in front of")
    words = [phrase_vector(w)[0] for w in ("in", "front", "of")]
    assert torch.allclose(torch.tensor(v_multi), torch.tensor(sum(words) / 3), atol=1e-6)
    m = glove_matrix(NAMES)
    assert torch.allclose(
        m[1], torch.tensor((phrase_vector("red")[0] + phrase_vector("circle")[0]) / 2), atol=1e-6
    )
    emb = ClassEmbedding(NAMES, dim=16)
    assert emb(torch.tensor([1, 2])).shape == (2, 16)
    assert torch.allclose(emb.soft(torch.eye(4)[[1]]), emb(torch.tensor([1])))


def test_backbone_weights_from_path(tmp_path):
    trunk = ResNetTrunk(18, last_stage="layer2")
    assert trunk(torch.zeros(1, 3, 64, 64)).shape == (1, 128, 8, 8)
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pt"
    torch.save(ref.state_dict(), path)
    loaded = ResNetTrunk(18, weights_path=str(path), last_stage="layer1")
    assert torch.equal(loaded.stages["stem"][0].weight, ref.conv1.weight)
    with pytest.raises(DataError, match="not found"):
        ResNetTrunk(18, weights_path=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read"):
        ResNetTrunk(18, weights_path=str(bad))
    with pytest.raises(DataError, match="lack 80 parameters"):
        load_backbone_weights(torchvision.models.resnet34(weights=None), path)
    wrong = ref.state_dict()
    wrong["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(DataError, match="conv1.weight has shape"):
        ResNetTrunk(18, weights_path=str(tmp_path / "wrong.pt"))


def test_trunk_weights_from_a_tailgraph_checkpoint(tmp_path):
    """A trunk trained inside a relation model loads, by its checkpoint, as a frozen trunk
    (BatchNorm statistics included) for the stages it has; other stages are an error."""
    torch.manual_seed(0)
    feats = PixelFeatures(last_stage="layer2", out_dim=32)
    with torch.no_grad():  # statistics unlike a fresh trunk's
        feats.trunk(torch.rand(4, 3, 64, 64) * 3)
        for p in feats.trunk.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = {f"model.features.{k}": v for k, v in feats.state_dict().items()}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    frozen = ResNetTrunk(18, weights_path=str(path), last_stage="layer2", frozen=True)
    x = torch.rand(2, 3, 64, 64)
    feats.trunk.eval()
    with torch.no_grad():
        assert torch.allclose(frozen(x), feats.trunk(x), atol=1e-5)
    # a frozen trunk's checkpoint (FrozenBatchNorm2d: no num_batches_tracked) loads as well
    torch.save(frozen.state_dict(), tmp_path / "frozen.pt")  # a bare trunk's state
    again = ResNetTrunk(18, weights_path=str(tmp_path / "frozen.pt"), last_stage="layer2")
    assert torch.equal(
        again.stages["layer2"][0].conv1.weight, frozen.stages["layer2"][0].conv1.weight
    )
    with pytest.raises(DataError, match="lack .* parameters, e.g. \\['layer3"):
        ResNetTrunk(18, weights_path=str(path), last_stage="layer3")
    two = {**state, **{k.replace("model.features", "model.other"): v for k, v in state.items()}}
    torch.save(two, tmp_path / "two.pt")
    with pytest.raises(DataError, match="holds 2 trunks"):
        ResNetTrunk(18, weights_path=str(tmp_path / "two.pt"), last_stage="layer2")


@pytest.mark.parametrize("pixels", [False, True])
def test_relation_model_forward_backward(pixels):
    torch.manual_seed(0)
    feats = PixelFeatures(last_stage="layer1", out_dim=32) if pixels else None
    ctx = PairwiseMLPContext(
        NAMES, obj_feat_dim=32 if pixels else 0, union_feat_dim=32 if pixels else 0, hidden_dim=32
    )
    model = RelationModel(ctx, LinearHead(32, 5), 4, features=feats)
    batch = (
        GraphBatch([g(), g(1)], images=torch.randn(2, 3, 96, 128), scales=torch.ones(2))
        if pixels
        else GraphBatch([g(), g(1)])
    )
    out = model(batch)
    assert out.predicate_logits.shape == (12, 5) and out.obj_scores.tolist() == [1.0] * 6
    labels, _ = pair_targets(batch.graphs, out.pairs)
    loss = torch.nn.functional.cross_entropy(out.predicate_logits, labels)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(gr is not None for gr in grads) and any(gr.abs().sum() > 0 for gr in grads)
    preds = model.to_predictions(batch, out)
    assert [p.pairs.shape[0] for p in preds] == [6, 6]
    assert preds[1].pairs.min() == 0  # local indices


def test_layout_model_overfits_tiny_set():
    torch.manual_seed(0)
    graphs = [g(i) for i in range(4)]
    ctx = PairwiseMLPContext(NAMES, hidden_dim=64, dropout=0.0)
    model = RelationModel(ctx, LinearHead(64, 4), 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = GraphBatch(graphs)
    for _ in range(60):
        out = model(batch)
        labels, _ = pair_targets(graphs, out.pairs)
        loss = torch.nn.functional.cross_entropy(out.predicate_logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = model(batch)
    labels, _ = pair_targets(graphs, out.pairs)
    assert (out.predicate_logits.argmax(1) == labels).float().mean().item() == 1.0


def test_pixel_model_needs_images():
    model = RelationModel(
        PairwiseMLPContext(NAMES, obj_feat_dim=8),
        LinearHead(256, 4),
        4,
        features=PixelFeatures(last_stage="layer1", out_dim=8),
    )
    with pytest.raises(ValueError, match="no images"):
        model(GraphBatch([g()]))


def test_sgcls_without_classifier_is_a_clear_error():
    model = RelationModel(PairwiseMLPContext(NAMES), LinearHead(256, 4), 4, task=Task.SGCLS)
    with pytest.raises(ValueError, match="labels or label_dists|object classifier"):
        model(GraphBatch([g()]))


def test_build_component_injects_only_accepted_arguments():
    ctx = build_component(
        {
            "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
            "init_args": {"hidden_dim": 16},
        },
        {"class_names": NAMES, "num_predicates": 7, "in_dim": 3},
    )
    assert ctx.hidden_dim == 16 and ctx.class_embed.num_classes == 4
    head = build_component(
        {"class_path": "tailgraph.modeling.heads.linear.LinearHead"},
        {"in_dim": 16, "num_predicates": 7, "class_names": NAMES},
    )
    assert head.fc.out_features == 7
    with pytest.raises(DataError, match="no option"):
        build_component(
            {"class_path": "tailgraph.modeling.heads.linear.LinearHead", "init_args": {"bogus": 1}},
            {},
        )
    with pytest.raises(DataError, match="cannot import"):
        build_component({"class_path": "tailgraph.nowhere.Thing"})
    with pytest.raises(DataError, match="class_path"):
        build_component({"init_args": {}})


def test_sgcls_pairwise_with_object_classifier_learns_labels():
    from tailgraph.modeling.object_classifier import ObjectClassifier

    torch.manual_seed(0)
    feats = PixelFeatures(last_stage="layer1", out_dim=16, union_features=False)
    model = RelationModel(
        PairwiseMLPContext(NAMES, obj_feat_dim=16, hidden_dim=16),
        LinearHead(16, 4),
        4,
        features=feats,
        object_classifier=ObjectClassifier(16, 4, 16),
        task=Task.SGCLS,
    )
    images = torch.zeros(2, 3, 96, 128)
    # colour encodes the class: each box is painted with its own constant
    batch = GraphBatch([g(), g(1)], images, torch.ones(2))
    for k, (x1, y1, x2, y2) in enumerate([[0, 0, 50, 50], [20, 20, 90, 90], [60, 10, 120, 80]]):
        images[:, k, y1:y2, x1:x2] = 2.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gt = torch.cat([x.labels for x in batch.graphs])
    for _ in range(40):
        out = model(batch)
        loss = torch.nn.functional.cross_entropy(out.obj_logits, gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = model(batch)
    assert (
        torch.equal(out.obj_labels, gt)
        and (out.obj_scores > 0.5).all()
        and (out.obj_scores <= 1).all()
    )
