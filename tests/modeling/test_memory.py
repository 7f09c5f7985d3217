"""TEMPURA's memory bank: class means by hand, the fusion formula, per-type attention, test-time
use, checkpoints; STTran's frame embedding on queries and keys only."""

import pytest
import torch

from tailgraph.modeling.context.sttran import PositionalDecoderLayer
from tailgraph.modeling.memory import RelationMemory

GROUPS = [("a", [0, 1], True), ("b", [2, 3], False)]


def test_class_means_by_hand_and_empty_first_epoch():
    mem = RelationMemory(2, 4, GROUPS)
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    x = torch.randn(5, 2)
    assert torch.equal(mem(x), x)  # epoch 0: no memory yet, identity
    mem.accumulate(f, y)
    assert torch.equal(mem(x), x)  # still epoch 0
    mem.end_epoch()
    assert mem.valid.tolist() == [True, False, True, False]
    assert torch.allclose(mem.means[0], torch.tensor([2.0, 3.0]))  # mean of rows 0, 1
    assert torch.allclose(mem.means[2], torch.tensor([3.0, 4.0]))  # mean of rows 0, 2
    assert mem.counts.sum() == 0 and mem.sums.abs().sum() == 0  # restarted for the next epoch


def test_fusion_formula_joint_and_seperate():
    torch.manual_seed(0)
    for compute in ("joint", "seperate"):
        mem = RelationMemory(4, 4, GROUPS, compute=compute, lam=0.3)
        mem.accumulate(torch.randn(6, 4), torch.eye(4)[[0, 1, 2, 3, 0, 2]])
        mem.end_epoch()
        f = torch.randn(3, 4)
        q = f.unsqueeze(0)
        if compute == "joint":
            m = mem.attn[0](q, mem.means[None], mem.means[None])[0][0]
        else:
            m = torch.stack(
                [
                    a(q, mem.means[c][None], mem.means[c][None])[0][0]
                    for a, c in zip(mem.attn, ([0, 1], [2, 3]))
                ]
            ).mean(0)
        assert torch.allclose(mem(f), 0.3 * f + 0.7 * m, atol=1e-6)


def test_automated_selection_and_test_time_switch():
    mem = RelationMemory(3, 2, selection="automated", use_memory_at_test=False)
    mem.accumulate(torch.randn(4, 3), torch.tensor([[1, 0], [0, 1], [1, 1], [0, 1]]))
    mem.end_epoch()
    f = torch.randn(2, 3)
    lam = torch.sigmoid(mem.gate(f))
    m = mem.attn[0](f[None], mem.means[None], mem.means[None])[0][0]
    assert torch.allclose(mem(f), lam * f + (1 - lam) * m, atol=1e-6)
    mem.eval()
    assert torch.equal(mem(f), f)  # use_memory_at_test=False: not fused in evaluation
    mem.use_memory_at_test = True
    assert not torch.equal(mem(f), f)


def test_memory_is_saved_in_and_restored_from_the_state_dict():
    a = RelationMemory(3, 2)
    a.accumulate(torch.randn(4, 3), torch.tensor([[1, 0], [0, 1], [1, 1], [0, 1]]))
    a.end_epoch()
    b = RelationMemory(3, 2)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    f = torch.randn(5, 3)
    assert torch.equal(a(f), b(f)) and b.ready


def test_frame_embedding_enters_queries_and_keys_only():
    torch.manual_seed(0)
    layer = PositionalDecoderLayer(8, 2, 16, 0.0).eval()
    x = torch.randn(1, 1, 8)
    # one element: attention weight 1 on its own value, so the position cannot change the output
    assert torch.allclose(layer(x, torch.zeros(1, 1, 8)), layer(x, torch.randn(1, 1, 8)))
    x2 = torch.randn(1, 3, 8)
    assert not torch.allclose(layer(x2, torch.zeros(1, 3, 8)), layer(x2, torch.randn(1, 3, 8)))


def test_memory_through_the_engine_is_checkpointed_and_used_at_test(tmp_path, monkeypatch):
    import json

    from tailgraph.cli import main as tailgraph_main
    from tests.helpers import tiny_ag_recipe, tiny_sttran_model

    monkeypatch.chdir(tmp_path)
    model = tiny_sttran_model(lr=0.001)
    model["context"]["init_args"]["memory"] = {"lam": 0.5}
    model["method"] = {"class_path": "tailgraph.methods.tempura.Tempura"}
    cfg = tiny_ag_recipe(
        tmp_path,
        model,
        epochs=2,
        num_train=4,
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    valid = state["model.context.memory.valid"]
    assert valid.any() and state["model.context.memory.means"][valid].abs().sum() > 0
    scores = []
    for use in ("true", "false"):  # a test-time switch on the command line wins over the ckpt
        assert (
            tailgraph_main(
                [
                    "predict",
                    "--config",
                    str(cfg),
                    "--ckpt_path",
                    str(ckpt),
                    "--model.context.init_args.memory",
                    f'{{"lam": 0.5, "use_memory_at_test": {use}}}',
                ]
            )
            == 0
        )
        runs = sorted(
            (tmp_path / "runs").glob("version_*"), key=lambda p: int(p.name.split("_")[1])
        )
        doc = json.loads((runs[-1] / "predictions.json").read_text())
        scores.append(
            torch.tensor([s for im in doc["images"] for row in im["predicate_scores"] for s in row])
        )
    # the restored memory is fused into the test-time features (use_memory_at_test), and only then
    assert scores[0].shape == scores[1].shape and not torch.allclose(scores[0], scores[1])


def test_frequency_weighting_of_the_code_variant_by_hand():
    """weight_type 'frequency': within a batch and type, softmax over positive entries of
    (1 / (f_c + 1e-6)) / T; M[c] is the weighted mean of its entries' features."""
    import math

    groups = [("a", [0, 1], True), ("b", [2, 3], False)]
    counts = [3, 1, 1, 1]  # type a: f = 0.75, 0.25; type b: 0.5, 0.5
    mem = RelationMemory(
        2, 4, groups, weight_type="frequency", predicate_counts=counts, temperature=2.0
    )
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    y = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0]])
    mem.accumulate(feats, y)
    mem.end_epoch()
    la, lb = (1 / (0.75 + 1e-6)) / 2, (1 / (0.25 + 1e-6)) / 2
    z = 2 * math.exp(la) + math.exp(lb)
    wa = math.exp(la) / z  # entries (0, 0) and (1, 0)
    # class 0 = weighted mean of pairs 0 and 1 with equal weights -> (0.5, 0.5)
    assert mem.means[0].tolist() == pytest.approx([0.5, 0.5])
    assert mem.counts.sum() == 0 and mem.valid.all()
    # type b: three entries with equal frequency -> equal weights 1/3
    assert mem.means[2].tolist() == pytest.approx([1.5, 1.0])
    assert mem.means[3].tolist() == pytest.approx([0.0, 1.0])
    assert wa < 1 / 3  # the rarer class 1 takes most of type a's weight
    with pytest.raises(ValueError, match="predicate_counts"):
        RelationMemory(2, 4, groups, weight_type="frequency")


def test_feature_pass_stores_the_no_grad_evaluation_mode_features():
    """feature_pass (default): the memory stores the pre-fusion features of a no-grad pass in
    evaluation mode (no dropout, batch-norm statistics untouched), training modes restored;
    feature_pass=False stores the training forward's own (dropped-out) features."""
    from types import SimpleNamespace

    from torch import nn

    from tailgraph.methods.tempura import memory_features

    class Ctx(nn.Module):
        def __init__(self, feature_pass):
            super().__init__()
            self.lin, self.bn, self.drop = nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Dropout(0.5)
            self.memory = RelationMemory(3, 2, feature_pass=feature_pass)

    class Model(nn.Module):
        def __init__(self, feature_pass):
            super().__init__()
            self.context = Ctx(feature_pass)

        def forward(self, x):
            c = self.context
            return SimpleNamespace(memory_writes=[(c.memory, c.drop(c.bn(c.lin(x))).detach())])

    torch.manual_seed(0)
    x = torch.randn(6, 4)
    for feature_pass in (True, False):
        model = Model(feature_pass).train()
        out = model(x)
        bn_mean = model.context.bn.running_mean.clone()
        ((mem, feats),) = memory_features(model, x, out)
        assert mem is model.context.memory
        assert model.training and model.context.drop.training and model.context.bn.training
        assert torch.equal(model.context.bn.running_mean, bn_mean)
        model.eval()
        with torch.no_grad():
            expected = model(x).memory_writes[0][1]
        if feature_pass:
            assert torch.allclose(feats, expected)
        else:
            assert torch.equal(feats, out.memory_writes[0][1]) and not torch.allclose(
                feats, expected
            )


@pytest.mark.parametrize("kind", ["al", "ep", "both"])
def test_uncertainty_weighted_memory_by_hand(kind):
    """TEMPURA's ``al`` / ``ep`` / ``both`` memories: each positive entry weighs exp(u_ic), and
    M[c] is the weighted mean over the epoch (several batches), a softmax over c's entries."""
    import math

    mem = RelationMemory(2, 2, weight_type=kind)
    al = torch.tensor([[0.2, 0.9], [0.5, 0.1], [0.7, 0.3]])
    ep = torch.tensor([[0.05, 0.4], [0.3, 0.0], [0.1, 0.2]])
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 4.0]])
    y = torch.tensor([[1, 0], [1, 1], [0, 1]])
    unc = {"aleatoric": al, "epistemic": ep}
    mem.accumulate(feats[:2], y[:2], {k: v[:2] for k, v in unc.items()})
    mem.accumulate(feats[2:], y[2:], {k: v[2:] for k, v in unc.items()})
    mem.end_epoch()
    u = {"al": al, "ep": ep, "both": al + ep}[kind]
    for c, rows in ((0, [0, 1]), (1, [1, 2])):
        w = torch.tensor([math.exp(u[i, c]) for i in rows])
        expected = (w[:, None] * feats[rows]).sum(0) / w.sum()
        assert mem.means[c].tolist() == pytest.approx(expected.tolist())
    simple = RelationMemory(2, 2)
    simple.accumulate(feats, y)
    simple.end_epoch()
    assert not torch.allclose(simple.means, mem.means)
    with pytest.raises(ValueError, match="uncertainty"):
        mem.accumulate(feats, y)


def test_tempura_fills_an_uncertainty_weighted_memory_from_the_gmm_heads(tmp_path, monkeypatch):
    """Through the engine: one epoch of the same seed with ``weight_type: simple`` and ``both``
    (GMM heads per relation type) trains the same weights — the memory is empty in epoch 0 —
    and stores the same classes, but ``both`` weighs them by the heads' uncertainties."""
    from tailgraph.cli import main as tailgraph_main
    from tailgraph.methods.tempura import predicate_uncertainty
    from tailgraph.modeling.heads.typed import TypedHead
    from tailgraph.modeling.types import HeadOutput
    from tests.helpers import tiny_ag_recipe

    gmm = {"class_path": "tailgraph.modeling.heads.gmm.GMMHead", "init_args": {"num_components": 2}}
    states = {}
    for kind in ("simple", "both"):
        root = tmp_path / kind
        root.mkdir()
        monkeypatch.chdir(root)
        cfg = tiny_ag_recipe(
            root,
            {
                "task": "predcls",
                "lr": 0.001,
                "features": {
                    "class_path": "tailgraph.modeling.roi.PixelFeatures",
                    "init_args": {"last_stage": "layer1", "out_dim": 16},
                },
                "context": {
                    "class_path": "tailgraph.modeling.context.sttran.STTranContext",
                    "init_args": {
                        "proj_dim": 16,
                        "embed_dim": 8,
                        "num_heads": 2,
                        "ff_dim": 32,
                        "temporal_layers": 1,
                        "memory": {"lam": 0.5, "weight_type": kind},
                    },
                },
                "head": {
                    "class_path": "tailgraph.modeling.heads.typed.TypedHead",
                    "init_args": {"head": gmm},
                },
                "method": {"class_path": "tailgraph.methods.tempura.Tempura"},
            },
            epochs=1,
            num_train=4,
        )
        assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
        ckpt = root / "runs" / "version_0" / "checkpoints" / "last.ckpt"
        states[kind] = torch.load(ckpt, weights_only=True)["state_dict"]
    a, b = states["simple"], states["both"]
    assert torch.allclose(a["model.head.heads.0.mean.weight"], b["model.head.heads.0.mean.weight"])
    valid = a["model.context.memory.valid"]
    assert valid.any() and torch.equal(valid, b["model.context.memory.valid"])
    diff = (a["model.context.memory.means"] - b["model.context.memory.means"])[valid].abs()
    assert diff.max() > 1e-6

    # the uncertainties handed to the bank are the typed GMM heads' own, in vocabulary columns
    torch.manual_seed(0)
    head = TypedHead(8, 5, [("a", [0, 1], True), ("b", [2, 3, 4], False)], head=gmm).eval()
    out = head(torch.randn(3, 8))
    unc = predicate_uncertainty(head, out)
    assert unc is not None and unc["aleatoric"].shape == (3, 5)
    assert torch.equal(unc["epistemic"][:, 2:], out.extras["b"].extras["epistemic"])
    assert torch.equal(unc["aleatoric"][:, :2], out.extras["a"].extras["aleatoric"])
    assert predicate_uncertainty(None, HeadOutput(logits=torch.zeros(3, 5))) is None


def test_heads_without_per_class_uncertainties_give_none():
    """The Bayesian head's epistemic uncertainty is one value per pair: no per-class weights
    come from it (and a memory that needs none never asks)."""
    from tailgraph.methods.tempura import predicate_uncertainty
    from tailgraph.modeling.heads.typed import TypedHead

    bayes = {"class_path": "tailgraph.modeling.heads.bayesian.BayesianHead"}
    head = TypedHead(8, 5, [("a", [0, 1], True), ("b", [2, 3, 4], False)], head=bayes).eval()
    out = head(torch.randn(3, 8))
    assert out.extras["a"].extras["epistemic"].shape == (3,)
    assert predicate_uncertainty(head, out) is None
