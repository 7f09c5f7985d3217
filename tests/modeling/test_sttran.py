import pytest
import torch
import torch.nn.functional as F

from tailgraph.modeling.context.sttran import STTranContext, box_masks
from tailgraph.modeling.heads.typed import TypedHead
from tailgraph.modeling.types import RelationInputs

AG_GROUPS = [
    ("attention", range(3), True),
    ("spatial", range(3, 9), False),
    ("contacting", range(9, 26), False),
]

NAMES = ["__background__", "person", "cup", "table"]


def video_inputs(frames=4, d=8, u=8):
    torch.manual_seed(0)
    boxes, owner, labels, pairs = [], [], [], []
    for f in range(frames):
        base = len(boxes)
        boxes += [[0, 0, 40, 80], [30 + f, 40, 60 + f, 70], [50, 10, 90, 30]]
        owner += [f] * 3
        labels += [1, 2, 3]
        pairs += [[base, base + 1], [base, base + 2]]
    n, p = len(boxes), len(pairs)
    return RelationInputs(
        boxes=torch.tensor(boxes, dtype=torch.float32),
        image_sizes=torch.tensor([[100.0, 100.0]] * frames),
        obj_to_img=torch.tensor(owner),
        labels=torch.tensor(labels),
        label_dists=None,
        pairs=torch.tensor(pairs),
        pair_to_img=torch.tensor(owner)[torch.tensor(pairs)[:, 0]],
        obj_feats=torch.randn(n, d),
        union_feats=torch.randn(p, u),
    )


def model(**kw):
    torch.manual_seed(0)
    return STTranContext(
        NAMES,
        obj_feat_dim=8,
        union_feat_dim=8,
        proj_dim=16,
        embed_dim=8,
        num_heads=4,
        ff_dim=32,
        dropout=0.0,
        temporal_layers=2,
        **kw,
    ).eval()


def test_box_masks_by_hand():
    m = box_masks(
        torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[10.0, 10.0, 20.0, 20.0]]), size=4
    )
    # union 20x20; subject covers the top-left quadrant cells (centres .125, .375 <= .5)
    assert m.shape == (1, 2, 4, 4)
    assert m[0, 0].tolist() == [[0.5, 0.5, -0.5, -0.5]] * 2 + [[-0.5] * 4] * 2
    assert m[0, 1, 3, 3].item() == 0.5 and m[0, 1, 0, 0].item() == -0.5


def test_shapes_heads_and_gradients():
    inp = video_inputs()
    ctx = model().train()
    out = ctx(inp)
    assert out.pair_feats.shape == (8, 3 * 16 + 2 * 8)
    heads = TypedHead(
        ctx.out_dim,
        26,
        AG_GROUPS,
        head={
            "class_path": "tailgraph.modeling.heads.gmm.GMMHead",
            "init_args": {"num_components": 2},
        },
    )
    h = heads(out.pair_feats)
    assert h.logits.shape == (8, 26) and torch.allclose(
        h.probs[:, :3].sum(1), torch.ones(8), atol=1e-5
    )
    loss = F.nll_loss(
        torch.log(h.probs[:, :3] + 1e-12), torch.zeros(8, dtype=torch.long)
    ) + F.binary_cross_entropy(h.probs[:, 3:], torch.zeros(8, 23))
    loss.backward()
    assert (
        ctx.frame_embed.weight.grad.abs().sum() > 0 and ctx.mask_net[0].weight.grad.abs().sum() > 0
    )
    assert ctx.spatial.linear1.weight.grad.abs().sum() > 0


def test_sliding_windows_use_own_and_previous_frame_only():
    inp = video_inputs(frames=4)
    ctx = model()
    with torch.no_grad():
        a = ctx(inp).pair_feats
        changed = video_inputs(frames=4)
        changed.obj_feats[9:12] += 5.0  # objects of frame 3
        b = ctx(changed).pair_feats
    frame_of_pair = inp.obj_to_img[inp.pairs[:, 0]]
    for f in range(4):
        same = torch.allclose(a[frame_of_pair == f], b[frame_of_pair == f], atol=1e-5)
        assert same == (f != 3), (
            f
        )  # frame 3 only appears in window (2, 3), whose output goes to frame 3
    with torch.no_grad():
        changed = video_inputs(frames=4)
        changed.obj_feats[0:3] += 5.0  # frame 0 enters window (0, 1): frames 0 and 1 change
        c = ctx(changed).pair_feats
    assert not torch.allclose(a[frame_of_pair == 1], c[frame_of_pair == 1])
    assert torch.allclose(a[frame_of_pair == 2], c[frame_of_pair == 2], atol=1e-5)


def test_single_frame_video_and_bad_config():
    inp = video_inputs(frames=1)
    assert model()(inp).pair_feats.shape[0] == 2
    with pytest.raises(ValueError, match="divisible"):
        STTranContext(NAMES, 8, 8, proj_dim=10, embed_dim=2, num_heads=4)
    with pytest.raises(ValueError, match="needs object and union"):
        STTranContext(NAMES, 0, 8)


def test_sttran_overfits_a_tiny_video():
    from tailgraph.methods.base import group_losses
    from tailgraph.modeling.relation_model import GraphBatch, RelationModel
    from tailgraph.modeling.roi import PixelFeatures
    from tailgraph.protocols import AGProtocol
    from tailgraph.structures import SceneGraph
    from tests.helpers import ag_vocab

    torch.manual_seed(0)
    frames = []
    for f in range(3):
        rels = [
            [0, 1, f % 3],
            [1, 0, 3 + f],
            [0, 1, 9 + 2 * f],
            [0, 2, (f + 1) % 3],
            [2, 0, 8],
            [0, 2, 20],
        ]
        frames.append(
            SceneGraph(
                f"v/{f}",
                64,
                64,
                [[0, 0, 30, 60], [20 + 5 * f, 20, 40 + 5 * f, 40], [40, 5, 60, 25]],
                [1, 2, 3],
                rels,
            )
        )
    feats = PixelFeatures(last_stage="layer1", out_dim=16)
    ctx = STTranContext(
        NAMES,
        16,
        16,
        proj_dim=16,
        embed_dim=8,
        num_heads=4,
        ff_dim=32,
        dropout=0.0,
        temporal_layers=1,
    )
    model = RelationModel(
        ctx, TypedHead(ctx.out_dim, 26, AG_GROUPS), 4, features=feats, use_freq_bias=False
    )
    images = torch.randn(3, 3, 64, 64)
    pairs = [torch.tensor([[0, 1], [0, 2]])] * 3
    batch = GraphBatch(frames, images, torch.ones(3), pairs)
    protocol = AGProtocol(ag_vocab(NAMES))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(80):
        out = model(batch)
        loss = sum(
            group_losses(
                out.predicate_logits, protocol.targets(frames, out.pairs), protocol
            ).values()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = model(batch)
    probs, t = out.predicate_probs, protocol.targets(frames, out.pairs)
    assert (probs[:, :3].argmax(1) == t.labels["attention"]).all()
    assert ((probs[:, 3:] > 0.5).float() == t.multi_hot[:, 3:]).all()


def _loop_windows(ctx, spatial, frame, nf):
    """The per-window reference: each window (w, w + 1) decoded on its own."""
    out = torch.empty_like(spatial)
    for w in range(nf - 1):
        rows = torch.nonzero((frame == w) | (frame == w + 1)).flatten()
        if rows.numel() == 0:
            continue
        res = ctx._decode(spatial[rows], frame[rows] - w)
        later = frame[rows] == w + 1
        out[rows[later]] = res[later]
        if w == 0:
            out[rows[~later]] = res[~later]
    return out


@pytest.mark.parametrize("embed_on", ["qk", "inputs"])
@pytest.mark.parametrize("seed", range(6))
def test_batched_windows_equal_the_per_window_loop(embed_on, seed):
    """All windows as one padded batch equal one window at a time (1e-5), whatever the frame
    pattern: uneven pair counts, frames without pairs (also the first and the last), pairs not
    sorted by frame."""
    ctx = model(frame_embed_on=embed_on)
    g = torch.Generator().manual_seed(seed)
    nf = int(torch.randint(2, 8, (1,), generator=g))
    counts = torch.randint(0, 5, (nf,), generator=g)
    if counts.sum() == 0:
        counts[nf // 2] = 3
    frame = torch.repeat_interleave(torch.arange(nf), counts)
    frame = frame[torch.randperm(frame.numel(), generator=g)]
    spatial = torch.randn(frame.numel(), ctx.out_dim, generator=g)
    with torch.no_grad():
        got = ctx._decode_windows(spatial, frame, nf)
        want = _loop_windows(ctx, spatial, frame, nf)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
