"""FReMuRe (methods.md §2): the code variant's frequency statistics, the dual-branch local phase
(Eq. 1–4, both variants, Table 2's switches), the windowed global phase against a per-window
loop, decoupled per-type branches (separate parameters, separate gradients), the typed head's
per-type blocks, the multi-label margin loss, the union 7×7 map, and a run through the engine."""

import math

import pytest
import torch
import torch.nn.functional as F

from tailgraph.methods.base import multilabel_margin
from tailgraph.methods.fremure import (
    DualBranchLocal,
    FReMuReContext,
    FrequencyStatsGate,
    WindowedDecoder,
    frequency_correction,
    frequency_probe_loss,
    frequency_statistics,
    relation_frequencies,
)
from tailgraph.modeling.context.sttran import sinusoidal_encoding
from tailgraph.modeling.heads.typed import TypedHead
from tailgraph.modeling.types import RelationInputs

GROUPS = [("attention", [0, 1], True), ("spatial", [2, 3, 4], False), ("contacting", [5, 6], False)]
COUNTS = [50, 10, 30, 5, 1, 3, 1]


def test_frequency_statistics_by_hand():
    f = torch.tensor([3.0, 1.0, 0.0])
    eps = 1e-6
    pi = [(3 + eps) / (4 + 3 * eps), (1 + eps) / (4 + 3 * eps), eps / (4 + 3 * eps)]
    mean = sum(pi) / 3
    std = math.sqrt(sum((p - mean) ** 2 for p in pi) / 3)
    ent = -sum(p * math.log(p + eps) for p in pi)
    tail = sum(math.log(mean / (p + eps)) for p in pi) / 3
    got = frequency_statistics(f).tolist()
    assert got == pytest.approx([mean, min(pi), max(pi), std, ent, tail], rel=1e-5)
    gate = FrequencyStatsGate([3, 1, 0], dim=4, tau=2.0)
    expect = torch.sigmoid(gate.mlp(frequency_statistics(gate.frequencies)) / 2.0)
    assert torch.allclose(gate(), expect) and gate().shape == (4,)


def test_relation_frequencies_normalise_over_all_types():
    assert relation_frequencies([1, 3], total=8).tolist() == [0.125, 0.375]
    assert relation_frequencies([0, 0]).tolist() == [0.0, 0.0]


def _local(variant="paper", **kw):
    torch.manual_seed(0)
    m = DualBranchLocal(8, [10, 2, 1], total=20, num_heads=2, ff_dim=16, variant=variant, **kw)
    return m.eval()


def _ln(x):
    return F.layer_norm(x, x.shape[-1:])


def test_dual_branch_paper_formulation():
    m = _local("paper")
    assert torch.equal(m.fusion.bias, torch.zeros(8))  # zero-initialised gate bias
    torch.nn.init.normal_(m.fusion.bias)
    x = torch.randn(2, 3, 8)
    valid = torch.tensor([[True, True, True], [True, True, False]])
    pad = ~valid
    h = m.head(x, src_key_padding_mask=pad)
    t = m.tail(frequency_correction(x, m.gate()), src_key_padding_mask=pad)  # corrected input
    f = torch.tensor([10 / 20, 2 / 20, 1 / 20])
    assert torch.allclose(m.frequencies, f)
    g = torch.sigmoid(m.fusion(torch.cat([_ln(h), _ln(t), f.expand(2, 3, 3)], -1)))
    out = m(x, valid)
    assert torch.allclose(out[valid], (g * h + (1 - g) * t)[valid], atol=1e-6)


def test_dual_branch_code_formulation():
    m = _local("code")
    x = torch.randn(1, 4, 8)
    valid = torch.ones(1, 4, dtype=torch.bool)
    h = m.head(x, src_key_padding_mask=~valid)
    t = frequency_correction(
        m.tail(x, src_key_padding_mask=~valid), m.gate()
    )  # gate after the tail
    e = _ln(m.freq_embed(m.frequencies)).expand(1, 4, 64)
    g = torch.sigmoid(m.fusion(torch.cat([_ln(h), _ln(t), e], -1)) / 1.5).clamp(0.02, 0.98)
    assert torch.allclose(m(x, valid), g * _ln(h) + (1 - g) * _ln(t), atol=1e-6)


def test_table2_switches_of_the_local_phase():
    x = torch.randn(1, 3, 8)
    valid = torch.ones(1, 3, dtype=torch.bool)
    nofreq = _local(frequency=False)
    assert not hasattr(nofreq, "gate") and nofreq.fusion.in_features == 16
    h = nofreq.head(x, src_key_padding_mask=~valid)
    t = nofreq.tail(x, src_key_padding_mask=~valid)  # no correction of the input
    g = torch.sigmoid(nofreq.fusion(torch.cat([_ln(h), _ln(t)], -1)))
    assert torch.allclose(nofreq(x, valid), g * h + (1 - g) * t, atol=1e-6)
    single = _local(dual_branch=False)
    assert not hasattr(single, "tail")
    assert torch.allclose(single(x, valid), single.head(x, src_key_padding_mask=~valid))


def _per_window(dec, x, frame, nf):
    """The global phase window by window, no padding: the reference for the batched version."""
    w_count = max(1, nf - dec.window + 1)
    results = []
    for w in range(w_count):
        rows = torch.nonzero((frame >= w) & (frame < w + dec.window)).flatten()
        fr = frame[rows]
        if dec.pos_embed is not None:
            pos = dec.pos_embed((fr - w).clamp(0, dec.window - 1))
        else:
            pos = sinusoidal_encoding(fr, dec.dim)
        h = x[rows].unsqueeze(0)
        for layer in dec.layers:
            h = layer(h, pos.unsqueeze(0))
        results.append((w, rows, h.squeeze(0)))
    return results


@pytest.mark.parametrize("window,nf", [(2, 4), (3, 5), (3, 2)])
def test_windowed_decoder_mean_and_later_against_a_loop(window, nf):
    torch.manual_seed(0)
    frame = torch.tensor(sorted(torch.randint(0, nf, (11,)).tolist()))
    frame[0], frame[-1] = 0, nf - 1
    x = torch.randn(11, 8)
    mean = WindowedDecoder(8, 2, 16, 0.0, 2, window, "sinusoidal", "mean").eval()
    acc, cnt = torch.zeros_like(x), torch.zeros(11)
    for _, rows, h in _per_window(mean, x, frame, nf):
        acc[rows] += h
        cnt[rows] += 1
    assert torch.allclose(mean(x, frame, nf), acc / cnt[:, None], atol=1e-5)
    later = WindowedDecoder(8, 2, 16, 0.0, 2, window, "learned", "later").eval()
    later.load_state_dict(later.state_dict())
    expect = torch.full_like(x, float("nan"))
    for w, rows, h in _per_window(later, x, frame, nf):
        for i, r in enumerate(rows.tolist()):
            f = int(frame[r])
            if f == w + window - 1 or (w == 0 and f < window - 1) or nf < window:
                expect[r] = h[i]
    assert not torch.isnan(expect).any()
    assert torch.allclose(later(x, frame, nf), expect, atol=1e-5)


def test_relation_gate_is_the_expected_frequency_per_pair():
    """``gate="relation"`` (extension): g = σ(w · log(1/f̂ + ε) + b), f̂ = Σ_c p_c f_c with the
    probe's softmax p — a gate per pair, where Eq. 2's is one vector for all pairs."""
    m = _local(gate="relation")
    x = torch.randn(2, 3, 8)
    valid = torch.tensor([[True, True, True], [True, True, False]])
    pad = ~valid
    logits = m.probe(x)
    f_hat = (torch.softmax(logits, -1) * torch.tensor([0.5, 0.1, 0.05])).sum(-1, keepdim=True)
    g = torch.sigmoid(m.pair_gate(torch.log(1 / (f_hat + 1e-6) + 1e-6)))
    assert g.shape == (2, 3, 8) and not torch.allclose(g[0, 0], g[0, 1])
    h = m.head(x, src_key_padding_mask=pad)
    t = m.tail(frequency_correction(x, g), src_key_padding_mask=pad)
    f = m.frequencies.expand(2, 3, 3)
    gf = torch.sigmoid(m.fusion(torch.cat([_ln(h), _ln(t), f], -1)))
    out, probe = m(x, valid, return_probe=True)
    assert torch.allclose(out[valid], (gf * h + (1 - gf) * t)[valid], atol=1e-6)
    assert torch.equal(probe, logits)
    assert _local()(x, valid, return_probe=True)[1] is None  # Eq. 2: no probe
    with pytest.raises(ValueError, match="gate"):
        _local(gate="pair")
    with pytest.raises(ValueError, match="relation"):
        _local("code", gate="relation")


def test_frequency_probe_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5]])
    y = torch.tensor([[0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0]])  # row 2 has none in the branch
    lp = torch.log_softmax(logits, -1)
    expected = (-lp[0, 0] - 0.5 * (lp[1, 1] + lp[1, 2])) / 2
    assert torch.allclose(frequency_probe_loss(logits, y, [1, 2, 3]), expected)
    none = frequency_probe_loss(logits, torch.zeros(3, 4), [1, 2, 3])
    assert none.item() == 0


def _inputs(nf=3, per_frame=2, d=6):
    torch.manual_seed(1)
    n = nf * (per_frame + 1)
    obj_to_img = torch.arange(nf).repeat_interleave(per_frame + 1)
    pairs = torch.tensor(
        [
            [f * (per_frame + 1), f * (per_frame + 1) + k + 1]
            for f in range(nf)
            for k in range(per_frame)
        ]
    )
    xy = torch.rand(n, 2) * 40
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2) * 20], 1)
    return RelationInputs(
        boxes=boxes,
        image_sizes=torch.tensor([[64, 64]] * nf),
        obj_to_img=obj_to_img,
        labels=torch.randint(1, 4, (n,)),
        label_dists=None,
        pairs=pairs,
        pair_to_img=obj_to_img[pairs[:, 0]],
        obj_feats=torch.randn(n, d),
        union_feats=torch.randn(pairs.shape[0], d),
        obj_scores=torch.ones(n),
    )


def _context(**kw):
    torch.manual_seed(0)
    return FReMuReContext(
        ["__background__", "person", "cup", "table"],
        6,
        6,
        COUNTS,
        GROUPS,
        7,
        proj_dim=8,
        embed_dim=4,
        num_heads=2,
        ff_dim=16,
        temporal_layers=1,
        **kw,
    )


def test_decoupled_branches_have_their_own_frequencies_parameters_and_gradients():
    ctx = _context()
    assert ctx.per_type_outputs and len(ctx.local) == 3 and ctx.out_dim == 3 * ctx.branch_dim
    total = sum(COUNTS)
    for branch, (_, cols, _) in zip(ctx.local, GROUPS):
        assert torch.allclose(branch.frequencies, torch.tensor([COUNTS[c] / total for c in cols]))
    head = TypedHead(ctx.out_dim, 7, GROUPS, split_input=True)
    assert head.block == ctx.branch_dim
    out = head(ctx(_inputs()).pair_feats)
    out.logits[:, GROUPS[0][1]].sum().backward()  # a loss on attention only
    grads = [
        sum(p.grad.abs().sum() for p in b.parameters() if p.grad is not None) for b in ctx.local
    ]
    assert grads[0] > 0 and grads[1] == 0 and grads[2] == 0
    shared = _context(decouple=False)
    assert (
        not shared.per_type_outputs
        and len(shared.local) == 1
        and shared.out_dim == shared.branch_dim
    )
    assert torch.allclose(
        shared.local[0].frequencies, torch.tensor(COUNTS, dtype=torch.float32) / total
    )


def test_shared_weights_are_one_set_of_transformers_with_per_type_frequency_parts():
    ctx = _context(share_weights=True)
    own = _context()
    assert ctx.local[1].head is ctx.local[0].head and ctx.local[2].tail is ctx.local[0].tail
    assert ctx.temporal[1] is ctx.temporal[0] and ctx.local[1].gate is not ctx.local[0].gate
    assert ctx.local[1].fusion is not ctx.local[0].fusion
    n = sum(p.numel() for p in ctx.parameters())
    per_branch = sum(p.numel() for p in own.local[0].head.parameters()) + sum(
        p.numel() for p in own.local[0].tail.parameters()
    )
    per_branch += sum(p.numel() for p in own.temporal[0].parameters())
    assert n == sum(p.numel() for p in own.parameters()) - 2 * per_branch
    head = TypedHead(ctx.out_dim, 7, GROUPS, split_input=True)
    out = head(ctx(_inputs()).pair_feats)
    out.logits[:, GROUPS[0][1]].sum().backward()  # attention alone trains the shared weights
    assert ctx.local[0].head.layers[0].linear1.weight.grad.abs().sum() > 0
    assert not ctx.local[1].fusion.weight.grad.any()  # a type's own parts: its loss only
    restored = _context(share_weights=True)
    restored.load_state_dict(ctx.state_dict())
    assert restored.local[2].head is restored.local[0].head


def test_typed_head_reads_one_block_per_type():
    torch.manual_seed(0)
    head = TypedHead(6, 7, GROUPS, split_input=True).eval()
    x = torch.randn(4, 6)
    out = head(x)
    for k, (_, cols, _) in enumerate(GROUPS):
        assert torch.allclose(out.logits[:, cols], head.heads[k](x[:, 2 * k : 2 * k + 2]).logits)
    with pytest.raises(ValueError, match="equal per-type blocks"):
        TypedHead(7, 7, GROUPS, split_input=True)


def test_code_variant_uses_sttran_global_phase_and_memory_per_branch():
    ctx = _context(variant="code", memory={"lam": 0.5})
    assert all(t.position == "learned" and t.aggregate == "later" for t in ctx.temporal)
    assert len(ctx.memories) == 3
    ctx.train()
    out = ctx(_inputs())
    assert [m for m, _ in out.memory_writes] == list(ctx.memories)
    paper = _context()
    assert all(t.position == "sinusoidal" and t.aggregate == "mean" for t in paper.temporal)
    with pytest.raises(ValueError, match="window"):
        _context(variant="code", window=3)


def test_multilabel_margin_matches_torch_by_hand():
    p = torch.tensor([[0.9, 0.2, 0.4], [0.1, 0.3, 0.8]])
    y = torch.tensor([[1, 0, 1], [0, 0, 0]])
    # row 0: positives {0, 2}, negative {1}: (max(0, 1-(0.9-0.2)) + max(0, 1-(0.4-0.2))) / 3
    row0 = (max(0, 1 - 0.7) + max(0, 1 - 0.2)) / 3
    assert float(multilabel_margin(p, y)) == pytest.approx(row0 / 2, rel=1e-6)


def test_fremure_weights_its_per_type_losses():
    """FReMuRe's training losses go through Supervised.predicate_losses: ``type_weights``
    scales a type's loss and ``multilabel_loss: margin`` replaces its multi-label BCE."""
    from types import SimpleNamespace

    from tailgraph.methods.fremure import FReMuRe

    groups = [SimpleNamespace(name="attention", single_label=True, columns=[0]),
              SimpleNamespace(name="contacting", single_label=False, columns=[1])]  # fmt: skip
    proto = SimpleNamespace(groups=groups)
    targets = SimpleNamespace(labels={"attention": torch.tensor([0])},
                              multi_hot=torch.tensor([[1.0, 1.0]]))  # fmt: skip
    out = SimpleNamespace(
        predicate_logits=torch.zeros(1, 2), predicate_probs=torch.full((1, 2), 0.5)
    )
    plain, weighted = FReMuRe(), FReMuRe(type_weights={"contacting": 3.0})
    plain.protocol = weighted.protocol = proto
    a, b = plain.predicate_losses(None, out, targets), weighted.predicate_losses(None, out, targets)
    assert b["loss_contacting"].item() == pytest.approx(3 * a["loss_contacting"].item())
    assert b["loss_attention"].item() == pytest.approx(a["loss_attention"].item())


def test_union_maps_are_summed_with_the_mask_map_before_flattening():
    from tailgraph.modeling.context.sttran import STTranContext, box_masks
    from tailgraph.modeling.roi import PixelFeatures

    feats = PixelFeatures(depth=18, last_stage="layer1", out_dim=16, union_maps=True)
    imgs = torch.rand(1, 3, 64, 64)
    boxes = torch.tensor([[0.0, 0, 30, 30], [20, 20, 60, 60]])
    o2i = torch.zeros(2, dtype=torch.int64)
    pairs = torch.tensor([[0, 1]])
    obj, union = feats(imgs, torch.ones(1), boxes, o2i, pairs)
    assert (
        obj.shape == (1 * 2, 16)
        and union.shape == (1, feats.union_dim, 7, 7)
        and feats.union_dim == 64
    )
    ctx = STTranContext(
        ["bg", "a"],
        16,
        feats.union_dim,
        proj_dim=8,
        embed_dim=4,
        num_heads=2,
        ff_dim=8,
        temporal_layers=1,
        union_is_map=True,
    ).eval()
    inp = RelationInputs(
        boxes=boxes,
        image_sizes=torch.tensor([[64, 64]]),
        obj_to_img=o2i,
        labels=torch.tensor([1, 1]),
        label_dists=None,
        pairs=pairs,
        pair_to_img=torch.zeros(1, dtype=torch.int64),
        obj_feats=obj,
        union_feats=union,
        obj_scores=torch.ones(2),
    )
    rel = ctx.relation_features(inp)
    expect = ctx.mask_proj(
        (ctx.union_conv(union) + ctx.mask_net(box_masks(boxes[[0]], boxes[[1]]))).flatten(1)
    )
    assert torch.allclose(rel[:, 16:24], expect, atol=1e-6)
    with pytest.raises(ValueError, match="7, 7"):
        ctx.relation_features(
            RelationInputs(**{**inp.__dict__, "union_feats": torch.randn(1, 64, 5, 5)})
        )


def test_fremure_through_the_engine(tmp_path, monkeypatch):
    import json

    from tailgraph.cli import main as tailgraph_main
    from tests.helpers import tiny_ag_recipe

    monkeypatch.chdir(tmp_path)
    cfg = tiny_ag_recipe(
        tmp_path,
        {
            "task": "predcls",
            "lr": 0.001,
            "features": {
                "class_path": "tailgraph.modeling.roi.PixelFeatures",
                "init_args": {"last_stage": "layer1", "out_dim": 16, "union_maps": True},
            },
            "context": {
                "class_path": "tailgraph.methods.fremure.FReMuReContext",
                "init_args": {
                    "proj_dim": 16,
                    "embed_dim": 8,
                    "num_heads": 2,
                    "ff_dim": 32,
                    "temporal_layers": 1,
                    "memory": {"lam": 0.5},
                },
            },
            "head": {
                "class_path": "tailgraph.modeling.heads.typed.TypedHead",
                "init_args": {
                    "head": {
                        "class_path": "tailgraph.modeling.heads.gmm_plus.GMMPlusHead",
                        "init_args": {"num_components": 2},
                    }
                },
            },
            "method": {
                "class_path": "tailgraph.methods.fremure.FReMuRe",
                "init_args": {"multilabel_loss": "margin"},
            },
        },
        epochs=2,
        num_train=4,
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    for b in range(3):  # one memory bank per branch, filled and checkpointed
        assert state[f"model.context.memories.{b}.valid"].any()
    assert "model.context.local.2.gate.linear.weight" in state
    assert tailgraph_main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt)]) == 0
    m = json.loads((tmp_path / "runs" / "version_1" / "metrics.json").read_text())["models"][
        "model"
    ]
    for c in ("with", "semi", "no"):
        assert 0 <= m[c]["mR@20"] <= 1 and 0 < m[c]["R@50"] <= 1


def test_euclidean_contrastive_loss_by_hand():
    from tailgraph.losses import euclidean_contrastive_loss

    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, -1.0]], requires_grad=True)
    y = torch.tensor([0, 1, 0, 2])
    # normalised: e0, e1, e0, -e1. Positive pairs (0,2),(2,0): d = 0 -> no non-zero term.
    # negative pairs: d(e0,e1) = sqrt2 > 1 -> 0; d(e1,-e1) = 2 -> 0; d(e0,-e1) = sqrt2 -> 0: all
    # zero
    assert float(euclidean_contrastive_loss(f, y)) == 0.0
    g = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], requires_grad=True)
    lab = torch.tensor([0, 0, 1])
    d01 = math.dist([1, 0], [0.6, 0.8])  # positive pair
    d12 = math.dist([0.6, 0.8], [0, 1])  # negative pair, < 1
    d02 = math.sqrt(2)  # negative, > 1 -> 0
    loss = euclidean_contrastive_loss(g, lab)
    assert float(loss) == pytest.approx(d01 + (1 - d12), rel=1e-5)
    assert d02 > 1
    loss.backward()
    assert torch.isfinite(g.grad).all()
    f.grad = None
    euclidean_contrastive_loss(f, y).backward()  # identical normalised features: no NaN
    assert f.grad is None or torch.isfinite(f.grad).all()


def test_tempura_object_classifier_tracks_same_label_sequences_and_gmm_logits():
    from tailgraph.modeling.object_classifier import TempuraObjectClassifier

    torch.manual_seed(0)
    inp = _inputs(nf=3, per_frame=2)
    n = inp.boxes.shape[0]
    clf = TempuraObjectClassifier(
        6,
        4,
        ["__background__", "person", "cup", "table"],
        embed_dim=4,
        box_dim=6,
        hidden_dim=8,
        head="gmm",
        num_components=2,
        tracking=True,
        tracking_layers=1,
        tracking_heads=2,
        tracking_ff=8,
    ).eval()
    res = clf(inp.obj_feats, inp)
    logits = res.logits
    assert logits.shape == (n, 4) and torch.allclose(
        torch.softmax(logits, -1).sum(-1), torch.ones(n)
    )
    assert torch.allclose(logits.exp().sum(-1), torch.ones(n), atol=1e-5)  # log of mixture probs
    assert res.pre_logits is not None and res.features.shape == (n, 16)
    # tracking: a box's feature depends on the other boxes of its sequence (same label), not on
    # others
    from dataclasses import replace

    lab = torch.tensor([1, 2, 3] * 3)  # per frame: person, cup, table -> sequences by label
    given = replace(inp, label_dists=F.one_hot(lab, 4).float())
    base = clf(inp.obj_feats, given).features
    moved = inp.obj_feats.clone()
    moved[7] += 5.0  # the cup of frame 2
    ex2 = clf(moved, replace(given, obj_feats=moved)).features
    assert not torch.allclose(ex2[1], base[1])  # the cup of frame 0
    for o in torch.nonzero(lab != 2).flatten().tolist():
        assert torch.allclose(ex2[o], base[o], atol=1e-6)
    untracked = TempuraObjectClassifier(
        6, 4, ["__background__", "person", "cup", "table"], embed_dim=4, box_dim=6, hidden_dim=8
    ).eval()
    u1 = untracked(inp.obj_feats, given).features
    u2 = untracked(moved, replace(given, obj_feats=moved)).features
    assert torch.allclose(u1[1], u2[1])
    # a detector's distribution is used as given (no pre-classifier)
    d = F.one_hot(torch.randint(1, 4, (n,)), 4).float()
    assert clf(inp.obj_feats, replace(inp, label_dists=d)).pre_logits is None


@pytest.mark.parametrize("task", ["sgcls", "sgdet"])
def test_tempura_object_classifier_tracking_and_euc_con_through_the_engine(
    task, tmp_path, monkeypatch
):
    """SGCls: the classifier labels GT boxes; SGDet: it re-classifies the detections, trained on
    their matched GT labels (0 = background), and its labels are the ones evaluated."""
    import csv
    import json

    from tailgraph.cli import main as tailgraph_main
    from tests.helpers import tiny_ag_recipe, tiny_sttran_model

    monkeypatch.chdir(tmp_path)
    model = tiny_sttran_model(lr=0.001)
    model["task"] = task
    model["features"]["init_args"]["union_maps"] = True
    model.update(
        {
            "object_classifier": {
                "class_path": "tailgraph.modeling.object_classifier.TempuraObjectClassifier",
                "init_args": {
                    "embed_dim": 8,
                    "box_dim": 8,
                    "hidden_dim": 16,
                    "head": "gmm",
                    "tracking": True,
                    "tracking_layers": 1,
                    "tracking_heads": 2,
                    "tracking_ff": 16,
                },
            },
            "method": {
                "class_path": "tailgraph.methods.tempura.Tempura",
                "init_args": {"obj_eos_coef": 1.0, "obj_con_weight": 1.0},
            },
            **(
                {
                    "detector": {
                        "class_path": "tailgraph.modeling.detector.SyntheticDetector",
                        "init_args": {
                            "jitter": 0.05,
                            "miss_rate": 0.1,
                            "duplicate_rate": 0.1,
                            "confusion": 0.3,
                            "seed": 0,
                        },
                    }
                }
                if task == "sgdet"
                else {}
            ),
        }
    )
    cfg = tiny_ag_recipe(
        tmp_path,
        model,
        epochs=1,
        num_train=3,
        log_every_n_steps=1,
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    run = tmp_path / "runs" / "version_0"
    rows = list(csv.DictReader(open(next(run.rglob("metrics.csv")))))
    cols = set(rows[0])
    # SGDet embeds the detector's distribution, so there is no pre-classifier there
    assert {"train/loss_obj", "train/loss_obj_con"} <= cols
    assert ("train/loss_obj_pre" in cols) == (task == "sgcls")
    con = [float(r["train/loss_obj_con"]) for r in rows if r.get("train/loss_obj_con")]
    assert con and all(math.isfinite(c) for c in con) and max(con) > 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert tailgraph_main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt)]) == 0
    m = json.loads((tmp_path / "runs" / "version_1" / "metrics.json").read_text())["models"][
        "model"
    ]
    assert 0 <= m["with"]["R@20"] <= 1


def test_relation_gate_probe_is_trained_through_the_engine(tmp_path, monkeypatch, capsys):
    """FReMuRe adds ``loss_frequency_probe`` when the context gates per relation, and the
    probe's weights move."""
    from tailgraph.cli import main as tailgraph_main
    from tests.helpers import tiny_ag_recipe

    monkeypatch.chdir(tmp_path)
    model = {
        "task": "predcls",
        "lr": 0.01,
        "features": {
            "class_path": "tailgraph.modeling.roi.PixelFeatures",
            "init_args": {"last_stage": "layer1", "out_dim": 16},
        },
        "context": {
            "class_path": "tailgraph.methods.fremure.FReMuReContext",
            "init_args": {
                "proj_dim": 16,
                "embed_dim": 8,
                "num_heads": 2,
                "ff_dim": 32,
                "temporal_layers": 1,
                "gate": "relation",
            },
        },
        "head": {"class_path": "tailgraph.modeling.heads.typed.TypedHead"},
        "method": {"class_path": "tailgraph.methods.fremure.FReMuRe"},
    }
    states = []
    for epochs in (1, 2):
        root = tmp_path / f"e{epochs}"
        root.mkdir()
        cfg = tiny_ag_recipe(root, model, epochs=epochs, num_train=4)
        assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
        ckpt = root / "runs" / "version_0" / "checkpoints" / "last.ckpt"
        states.append(torch.load(ckpt, weights_only=True)["state_dict"])
    assert "train/loss_frequency_probe" in capsys.readouterr().out
    for b in range(3):
        key = f"model.context.local.{b}.probe.weight"
        assert not torch.allclose(states[0][key], states[1][key])
