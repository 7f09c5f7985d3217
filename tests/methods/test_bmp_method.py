"""BMP as a method: the prototype posterior in log space, the two phases (what is frozen, what
learns), the number of synthetic samples, and the losses per relation type."""

import math

import pytest
import torch

from tailgraph.methods.bmp import (
    BMP,
    PrototypeNetwork,
    minority_sample_counts,
    prototype_log_posterior,
)
from tailgraph.modeling.heads.typed import TypedHead
from tailgraph.modeling.memory import RelationMemory
from tailgraph.structures import SceneGraph

GROUPS = [("attention", [0, 1, 2], True), ("spatial", [3, 4, 5], False)]


def test_prototype_posterior_in_log_space_matches_direct_and_never_underflows():
    torch.manual_seed(0)
    x, mu, lv = (
        torch.randn(4, 3, dtype=torch.float64),
        torch.randn(5, 3, dtype=torch.float64),
        torch.randn(5, 3, dtype=torch.float64),
    )
    dens = torch.exp(-0.5 * ((x[:, None] - mu[None]) ** 2 / lv.exp()[None])) / torch.sqrt(
        2 * math.pi * lv.exp()[None]
    )
    direct = dens.prod(-1)
    direct = direct / direct.sum(-1, keepdim=True)
    assert torch.allclose(prototype_log_posterior(x, mu, lv).exp(), direct)
    # 1936 dimensions: the product of densities is 0 in float32, the log-space posterior is fine
    x, mu, lv = torch.randn(2, 1936), torch.randn(3, 1936), torch.zeros(3, 1936)
    assert (torch.exp(-0.5 * (x[:, None] - mu[None]) ** 2) / math.sqrt(2 * math.pi)).prod(
        -1
    ).max() == 0
    lp = prototype_log_posterior(x, mu, lv, torch.tensor([True, False, True]))
    assert torch.isfinite(lp[:, [0, 2]]).all() and torch.allclose(lp.exp().sum(-1), torch.ones(2))
    assert (lp[:, 1] == float("-inf")).all()


class TinyModel(torch.nn.Module):
    """What BMP touches: ``context.memory``, a TypedHead, and some frozen-in-phase-2 weights."""

    def __init__(self, d=6):
        super().__init__()
        self.context = torch.nn.Module()
        self.context.memory = RelationMemory(d, 6)
        self.context.proj = torch.nn.Linear(d, d)
        self.head = TypedHead(d, 6, GROUPS)


class Stats:
    predicate_counts = [100, 5, 2, 80, 3, 0]


class Vocab:
    predicate_counts = Stats.predicate_counts


def _bmp(**kw):
    torch.manual_seed(0)
    model = TinyModel()
    model.context.memory.accumulate(
        torch.randn(12, 6), torch.eye(6)[[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 3]]
    )
    model.context.memory.end_epoch()
    m = BMP(tau_maj=50, base_epochs=1, max_samples=None, **kw)
    m.setup(model, Vocab(), Stats())
    return m, model


def test_phase_two_freezes_all_but_the_heads_and_trains_heads_and_prototype_networks():
    m, model = _bmp()
    m.on_train_epoch_start(model, 0)
    assert m.phase == 1 and all(p.requires_grad for p in model.parameters())
    m.on_train_epoch_start(model, 1)
    assert m.phase == 2 and m.reset_optimizer()
    assert not any(
        p.requires_grad for n, p in model.named_parameters() if not n.startswith("head.")
    )
    g = SceneGraph(
        0,
        10,
        10,
        [[0, 0, 5, 5], [1, 1, 6, 6]],
        [1, 2],
        [[0, 1, 1], [0, 1, 2], [1, 0, 4], [0, 1, 0]],
    )
    batch = type("B", (), {"graphs": [g]})()
    losses = m.training_step(model, batch)
    assert set(losses) == {"loss_bmp_attention", "loss_bmp_spatial"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert all(p.grad is not None for p in m.prototype_nets.parameters())
    assert model.context.proj.weight.grad is None


def test_head_types_train_only_the_named_types_heads_the_others_keep_their_weights():
    m, model = _bmp(head_types=["attention"])
    m.on_train_epoch_start(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.heads.0.") for n in trainable)
    assert any(n.startswith("head.heads.1.") for n, _ in model.named_parameters())
    g = SceneGraph(
        0, 10, 10, [[0, 0, 5, 5], [1, 1, 6, 6]], [1, 2], [[0, 1, 1], [0, 1, 2], [1, 0, 4]]
    )
    losses = m.training_step(model, type("B", (), {"graphs": [g]})())
    assert set(losses) == {"loss_bmp_attention"}  # spatial has a minority positive (4) too
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.head.heads[1].parameters())
    assert all(p.grad is not None for p in model.head.heads[0].parameters())
    with pytest.raises(ValueError, match="head_types names unknown relation types"):
        _bmp(head_types=["contact"])
    with pytest.raises(ValueError, match="non-empty list"):
        BMP(head_types="attention")


def test_synthetic_sample_counts_per_minority_class():
    m, model = _bmp()
    m.on_train_epoch_start(model, 1)
    seen = {}
    for k, h in enumerate(model.head.heads):
        h.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, inp[0].shape[0]))
    video = torch.tensor([1.0, 2.0, 1.0, 0.0, 1.0, 3.0])
    for k in range(2):
        m.type_losses(model, k, video)
    # attention: counts 100, 5, 2 (tau 50) -> minority 1, 2: floor(45/5*2) + floor(48/2*1) = 18 + 24
    assert seen[0] == 42
    # spatial: counts 80, 3, 0 -> minority 4 only (5 has no training sample and no memory):
    # floor(47/3*1) = 15
    assert seen[1] == 15
    assert minority_sample_counts([80, 3, 0], [0, 1, 3], [False, True, True], 50).tolist() == [
        0,
        15,
        0,
    ]


def test_no_minority_positive_gives_a_zero_loss_with_a_graph():
    m, model = _bmp()
    m.on_train_epoch_start(model, 1)
    g = SceneGraph(0, 10, 10, [[0, 0, 5, 5], [1, 1, 6, 6]], [1, 2], [[0, 1, 0], [0, 1, 3]])
    losses = m.training_step(model, type("B", (), {"graphs": [g]})())
    assert list(losses) == ["loss_bmp"] and float(losses["loss_bmp"]) == 0.0
    losses["loss_bmp"].backward()


def test_type_weights_scale_the_head_stage_bce_and_focal_terms_of_that_type():
    video = torch.tensor([1.0, 2.0, 1.0, 0.0, 1.0, 3.0])

    def losses(**kw):
        m, model = _bmp(lambda_consist=0.0, **kw)
        m.on_train_epoch_start(model, 1)
        torch.manual_seed(1)
        names = model.head.names
        return {
            n: float(m.type_losses(model, k, video)[f"loss_bmp_{n}"]) for k, n in enumerate(names)
        }

    plain = losses()
    weighted = losses(type_weights={"spatial": 5.0})
    assert weighted["attention"] == pytest.approx(plain["attention"])
    assert weighted["spatial"] == pytest.approx(5.0 * plain["spatial"])
    # by default the head stage weighs the types as the phase-1 losses do
    inherited = losses(supervised={"type_weights": {"spatial": 5.0}})
    assert inherited["spatial"] == pytest.approx(weighted["spatial"])
    # the consistency term (a per-sample KL sum) is not scaled
    m, model = _bmp(type_weights={"spatial": 5.0})
    m.on_train_epoch_start(model, 1)
    torch.manual_seed(1)
    m.type_losses(model, 0, video)  # the same random draws as above
    with_consist = float(m.type_losses(model, 1, video)["loss_bmp_spatial"])
    m, model = _bmp()
    m.on_train_epoch_start(model, 1)
    torch.manual_seed(1)
    m.type_losses(model, 0, video)
    unweighted_consist = float(m.type_losses(model, 1, video)["loss_bmp_spatial"])
    assert with_consist - unweighted_consist == pytest.approx(4.0 * plain["spatial"], rel=1e-4)
    with pytest.raises(ValueError, match="unknown relation types"):
        _bmp(type_weights={"contacting": 17.0})
    with pytest.raises(ValueError, match="finite"):
        BMP(type_weights={"spatial": float("nan")})


def _fake_head_stage(m, model):
    """Phase 2 with a model whose forward feeds the heads 4 fixed inputs ``x``, and a protocol
    whose targets are ``hot`` (pairs 0 and 1 positive for 1, pair 2 for 4, pair 3 for 0)."""
    from types import SimpleNamespace

    m.on_train_epoch_start(model, 1)
    x = torch.randn(4, 6)
    hot = torch.zeros(4, 6)
    hot[0, 1] = hot[1, 1] = hot[2, 4] = hot[3, 0] = 1.0

    def forward(batch):
        model.head(x)
        return SimpleNamespace(pairs=torch.zeros(4, 2, dtype=torch.int64))

    model.forward = forward
    m.protocol = SimpleNamespace(targets=lambda graphs, pairs: SimpleNamespace(multi_hot=hot))
    return x, hot


def test_head_input_prototypes_are_running_class_means_of_the_real_head_inputs():
    """``prototype_features: head_input``: the class means come from what the heads see on
    the head stage's real batches (not the memory), and only seen classes get samples."""
    from types import SimpleNamespace

    m, model = _bmp(prototype_features="head_input")
    x, hot = _fake_head_stage(m, model)
    m.accumulate_head_inputs(model, SimpleNamespace(graphs=[]))
    assert torch.allclose(m.head_counts, hot.sum(0))
    assert torch.allclose(m.head_sums[1] / 2, (x[0] + x[1]) / 2)
    assert torch.allclose(m.head_sums[4], x[2])
    seen = {}
    for k, h in enumerate(model.head.heads):
        h.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, inp[0].shape[0]))
    video = torch.tensor([1.0, 2.0, 1.0, 0.0, 1.0, 3.0])
    m.type_losses(model, 0, video)
    m.type_losses(model, 1, video)
    # attention: minority 1 (seen) gets floor(45/5*2) = 18 samples, 2 (never seen) none;
    # spatial: minority 4 (seen) floor(47/3*1) = 15
    assert seen == {0: 18, 1: 15}
    with pytest.raises(ValueError, match="prototype_features"):
        BMP(prototype_features="pixels")


def test_real_head_samples_are_the_batchs_positive_head_inputs_with_the_synthetic_counts():
    """``head_samples: real``: the same counts k_i as the synthetic samples, each sample one of
    the batch's real head inputs positive for its class; the decoder is not used."""
    from types import SimpleNamespace

    from tailgraph.methods.bmp import real_samples

    hot = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1.0, 0, 0]])
    rows, labels = real_samples(hot, torch.tensor([5, 3, 4]))
    assert labels.tolist() == [0] * 5 + [2] * 4  # class 1 has no positive row: no sample
    assert sorted(rows[:5].tolist()) == [0, 0, 0, 2, 2]
    assert sorted(rows[5:].tolist()) == [0, 0, 1, 1]
    assert real_samples(hot, torch.zeros(3, dtype=torch.long)) is None

    m, model = _bmp(head_samples="real")
    x, hot = _fake_head_stage(m, model)
    real = m.head_inputs(model, SimpleNamespace(graphs=[]))
    assert real is not None and torch.equal(real[0], x)
    seen: dict = {}
    for k, h in enumerate(model.head.heads):
        h.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, inp[0]))
    m.prototype_nets[0].decoder.register_forward_hook(lambda *a: seen.__setitem__("dec", 1))
    video = torch.tensor([1.0, 2.0, 1.0, 0.0, 1.0, 3.0])
    out = m.type_losses(model, 0, video, real)
    m.type_losses(model, 1, video, real)
    # attention: minority 1 gets floor(45/5*2) = 18 samples, all copies of pairs 0 and 1
    # (9 each); class 2 has a count but no positive pair here: none; spatial: 4 gets 15 of pair 2
    assert seen[0].shape[0] == 18 and "dec" not in seen
    assert all(any(torch.equal(r, x[i]) for i in (0, 1)) for r in seen[0])
    assert sum(torch.equal(r, x[0]) for r in seen[0]) == 9
    assert seen[1].shape[0] == 15 and all(torch.equal(r, x[2]) for r in seen[1])
    assert torch.isfinite(out["loss_bmp_attention"])
    with pytest.raises(ValueError, match="head_samples"):
        BMP(head_samples="decoded")


def test_majority_samples_give_each_majority_class_its_batch_count():
    """``majority_samples``: a majority class (count >= tau_maj) gets the batch's n_i samples
    beside the minority ones (the paper's stage: none)."""
    video = torch.tensor([2.0, 2.0, 1.0, 3.0, 1.0, 3.0])
    # minority: 1 gets floor(45/5*2) = 18, 2 floor(48/2*1) = 24, 4 floor(47/3*1) = 15;
    # majority 0 and 3 get their batch counts 2 and 3 with the option
    for flag, expected in ((False, {0: 18 + 24, 1: 15}), (True, {0: 2 + 18 + 24, 1: 3 + 15})):
        m, model = _bmp(majority_samples=flag)
        m.on_train_epoch_start(model, 1)
        seen: dict = {}
        for k, h in enumerate(model.head.heads):
            h.register_forward_hook(
                lambda mod, inp, out, k=k, seen=seen: seen.__setitem__(k, inp[0].shape[0])
            )
        m.type_losses(model, 0, video)
        m.type_losses(model, 1, video)
        assert seen == expected, (flag, seen)


def test_bmp_needs_the_memory_bank_and_typed_heads():
    model = TinyModel()
    model.context.memory = None
    with pytest.raises(ValueError, match="memory bank"):
        BMP().setup(model, Vocab(), Stats())
    assert PrototypeNetwork(8).prototypes(torch.zeros(3, 8))[0].shape == (3, 8)


def test_bmp_through_the_engine_freezes_the_context_and_resumes_into_phase_two(
    tmp_path, monkeypatch
):
    import json

    import yaml

    from tailgraph.cli import main as tailgraph_main

    monkeypatch.chdir(tmp_path)
    cfg = _tiny_ag_recipe(  # from scratch: one epoch of TEMPURA training, then BMP's phase 2
        tmp_path,
        {
            "class_path": "tailgraph.methods.bmp.BMP",
            "init_args": {"base_epochs": 1, "tau_maj": 60, "max_samples": 256},
        },
    )
    path = tmp_path / "bmp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert tailgraph_main(["fit", "--config", str(path)]) == 0
    first = torch.load(
        tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )["state_dict"]
    assert (
        tailgraph_main(
            ["fit", "--config", str(path), "--trainer.max_epochs", "3", "--ckpt_path", "last"]
        )
        == 0
    )
    second = torch.load(  # the resumed run continues its own folder
        tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )["state_dict"]
    changed = {
        k
        for k in first
        if first[k].dtype.is_floating_point and not torch.equal(first[k], second[k])
    }
    assert any(k.startswith("model.head.") for k in changed)
    assert any(k.startswith("method.prototype_nets.") for k in changed)
    frozen = [
        k
        for k in changed
        if k.startswith("model.")
        and not k.startswith("model.head.")
        and "running_" not in k
        and "num_batches" not in k
    ]
    assert not frozen, frozen  # phase 2 trains the relation heads only (BN statistics aside)
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    assert tailgraph_main(["test", "--config", str(path), "--ckpt_path", str(ckpt)]) == 0
    m = json.loads((tmp_path / "runs" / "version_1" / "metrics.json").read_text())["models"][
        "model"
    ]
    assert 0 < m["with"]["mR@20"] <= 1 and 0 < m["with"]["R@20"] <= 1


def _tiny_ag_recipe(tmp_path, method):
    import yaml

    from tailgraph.data.synthetic.ag import generate_synth_ag

    root = tmp_path / "ag"
    if not root.exists():
        generate_synth_ag(root, num_train=4, num_test=2, image_size=64)
    cfg = yaml.safe_load(
        (
            __import__("pathlib").Path(__file__).parents[2]
            / "configs"
            / "synthetic"
            / "bmp_ag_predcls.yaml"
        ).read_text()
    )
    cfg["model"].pop("init_from")  # from scratch (the recipe starts from its TEMPURA run)
    cfg["model"]["features"]["init_args"] = {"last_stage": "layer1", "out_dim": 16}
    cfg["model"]["context"]["init_args"].update(
        proj_dim=16, embed_dim=8, num_heads=2, ff_dim=32, temporal_layers=1
    )
    cfg["model"]["method"] = method
    cfg["data"]["init_args"] = {"root": str(root), "max_size": 64, "val_fraction": 0.0}
    cfg["trainer"] = {
        "max_epochs": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
    }
    return cfg


def test_bmp_starts_from_a_trained_tempura_checkpoint(tmp_path, monkeypatch, capsys):
    """``model.init_from``: BMP's phase 2 from epoch 0 on a TEMPURA run's weights — the memory
    bank and its attention arrive trained, stay frozen, and only the heads learn."""
    import yaml

    from tailgraph.cli import main as tailgraph_main

    monkeypatch.chdir(tmp_path)
    tempura = _tiny_ag_recipe(tmp_path, {"class_path": "tailgraph.methods.tempura.Tempura"})
    (tmp_path / "tempura.yaml").write_text(yaml.safe_dump(tempura))
    assert tailgraph_main(["fit", "--config", str(tmp_path / "tempura.yaml")]) == 0
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    before = torch.load(ckpt, weights_only=True)["state_dict"]
    assert bool(before["model.context.memory.valid"].any())  # TEMPURA filled the memory

    bmp = _tiny_ag_recipe(
        tmp_path,
        {
            "class_path": "tailgraph.methods.bmp.BMP",
            "init_args": {"base_epochs": 0, "tau_maj": 60, "max_samples": 256},
        },
    )
    bmp["model"]["init_from"] = str(ckpt)
    (tmp_path / "bmp.yaml").write_text(yaml.safe_dump(bmp))
    assert tailgraph_main(["fit", "--config", str(tmp_path / "bmp.yaml")]) == 0
    after = torch.load(
        tmp_path / "runs" / "version_1" / "checkpoints" / "last.ckpt", weights_only=True
    )["state_dict"]
    model_keys = [k for k in before if k.startswith("model.")]
    frozen = [
        k
        for k in model_keys
        if not k.startswith("model.head.") and "running_" not in k and "num_batches" not in k
    ]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(
        not torch.equal(before[k], after[k])
        for k in model_keys
        if k.startswith("model.head.") and before[k].dtype.is_floating_point
    )

    # a checkpoint of another vocabulary, or of another model, is a one-line error (exit 2)
    bad = torch.load(ckpt, weights_only=True)
    bad["tailgraph"]["vocab"]["predicates"] = bad["tailgraph"]["vocab"]["predicates"][::-1]
    torch.save(bad, tmp_path / "other_vocab.ckpt")
    capsys.readouterr()
    bmp["model"]["init_from"] = str(tmp_path / "other_vocab.ckpt")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bmp))
    assert tailgraph_main(["fit", "--config", str(tmp_path / "bad.yaml")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("tailgraph")]
    assert (
        len(err) == 1
        and "'predicates' at 0: 'writing_on'" in err[0]
        and "other_vocab.ckpt" in err[0]
    )
    bmp["model"]["init_from"] = str(ckpt)
    bmp["model"]["features"]["init_args"]["out_dim"] = 24
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bmp))
    assert tailgraph_main(["fit", "--config", str(tmp_path / "bad.yaml")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("tailgraph")]
    assert len(err) == 1 and "shape" in err[0] and "model.init_from" in err[0]


def test_bmp_head_stage_skips_decoding_pixels_and_trains_the_same(tmp_path, monkeypatch):
    """The head stage on prototype samples reads only relation labels: its training batches
    come without pixels (the data module is told before each epoch), and the weights equal a
    run that decodes them."""
    import yaml

    from tailgraph.cli import main as tailgraph_main
    from tailgraph.methods.bmp import BMP

    monkeypatch.chdir(tmp_path)
    seen: list[tuple[int, bool]] = []
    step = BMP.training_step

    def probe(self, model, batch):
        seen.append((self._epoch, batch.images is not None))
        return step(self, model, batch)

    monkeypatch.setattr(BMP, "training_step", probe)
    cfg = _tiny_ag_recipe(
        tmp_path,
        {
            "class_path": "tailgraph.methods.bmp.BMP",
            "init_args": {"base_epochs": 1, "tau_maj": 60, "max_samples": 256},
        },
    )
    cfg["trainer"]["max_epochs"] = 2
    path = tmp_path / "bmp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert tailgraph_main(["fit", "--config", str(path)]) == 0
    assert {e for e, _ in seen} == {0, 1}
    assert all(has for e, has in seen if e == 0)  # the base stage trains on pixels
    assert not any(has for e, has in seen if e == 1)  # the head stage needs none
    skipped = torch.load(
        tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )["state_dict"]

    seen.clear()
    monkeypatch.setattr(BMP, "uses_pixels", lambda self, epoch: True)
    assert tailgraph_main(["fit", "--config", str(path)]) == 0
    assert all(has for _, has in seen)
    decoded = torch.load(
        tmp_path / "runs" / "version_1" / "checkpoints" / "last.ckpt", weights_only=True
    )["state_dict"]
    assert skipped.keys() == decoded.keys()
    for k in skipped:
        assert torch.equal(skipped[k], decoded[k]), k
