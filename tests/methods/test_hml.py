"""HML's pieces against hand computation, and the method end to end."""

import math
import os

import lightning as L
import pytest
import torch

from tailgraph.methods.hml import (
    HML,
    ImportanceTracker,
    build_predicate_tree,
    cr_loss,
    mr_loss,
    normalize_importance,
    normalize_importance_all,
    predicate_vectors,
)


def test_tree_groups_and_layers_by_hand():
    counts = [5, 9, 9, 1, 3]
    v = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.0, 1.0], [1.0, 0.05]])
    # visit order: 1, 2 (tie 9/9: lower index first), 0, 4, 3
    t = build_predicate_tree(counts, v, threshold=0.9)
    assert t.groups == [[1, 0, 4], [2, 3]]
    assert t.layers == [[1, 2], [0, 3], [4]]
    # a threshold above 1: every predicate its own group, one layer in visit order
    t = build_predicate_tree(counts, v, threshold=1.01)
    assert t.groups == [[1], [2], [0], [4], [3]]
    assert t.layers == [[1, 2, 0, 4, 3]]


def test_tree_running_mean_decides_membership():
    # after [1,0] and [0,1] join one group the mean is [.5,.5]; [1,1] then joins it (cos 1)
    counts = [3, 2, 1]
    v = torch.tensor([[1.0, 0.0], [0.7, 0.7], [0.0, 1.0]])
    t = build_predicate_tree(counts, v, threshold=0.7)
    # 0 starts; 1: cos([1,0],[.7,.7]) = .707 >= .7 joins, mean [.85,.35]; 2: cos([.85,.35],[0,1]) =
    # .38 -> new group
    assert t.groups == [[0, 1], [2]]
    assert t.layers == [[0, 2], [1]]
    # ties between groups: the earlier group wins
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = build_predicate_tree([3, 2, 1], v, threshold=0.5)
    assert t.groups == [[0, 2], [1]]


def test_tree_human_action_rule_moves_rare_singletons_last():
    counts = [1000, 900, 800, 700, 5]
    v = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0], [-1.0, -1.0]])
    t = build_predicate_tree(counts, v, threshold=0.9, human_action_ratio=100)
    assert t.groups == [[0, 1], [2, 3], [4]]
    assert t.layers == [[0, 2], [1, 3, 4]]


def test_predicate_vectors_average_words():
    from tailgraph.wordvec import phrase_vector

    v = predicate_vectors(["on", "parked on"])
    assert v.shape == (2, 50)
    assert torch.allclose(
        v[1], torch.tensor((phrase_vector("parked")[0] + phrase_vector("on")[0]) / 2), atol=1e-6
    )


def test_normalize_importance_by_hand():
    omega = torch.tensor([0.0, 1.0, 3.0, 4.0])
    out = normalize_importance(omega)
    # P = 4, sum = 8: ratios 0, .5, 1.5, 2
    want = [0.0] + [1 / (1 + math.exp(-math.log10(r))) for r in (0.5, 1.5, 2.0)]
    assert out.tolist() == pytest.approx(want, rel=1e-6)
    assert normalize_importance(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_normalize_importance_over_all_parameters_by_hand():
    """Eq. 10's P and ΣΩ run over every parameter of the MR set, not per tensor: a tensor
    whose importance is below the overall average gets weights below σ(0) = 0.5."""
    a, b = torch.tensor([1.0, 1.0]), torch.tensor([2.0, 4.0, 0.0])
    out = normalize_importance_all([a, b])
    # P = 5, ΣΩ = 8: ratios 5/8, 5/8 | 10/8, 20/8, 0
    sig = [1 / (1 + math.exp(-math.log10(r))) for r in (5 / 8, 10 / 8, 20 / 8)]
    assert out[0].tolist() == pytest.approx([sig[0], sig[0]], rel=1e-6)
    assert out[1].tolist() == pytest.approx([sig[1], sig[2], 0.0], rel=1e-6)
    # the per-tensor form maps a constant tensor to 0.5, the global form does not
    assert normalize_importance(a).tolist() == pytest.approx([0.5, 0.5])
    assert out[0][0] < 0.5


def test_unweighted_stage_loss_option():
    hml = HML(stage_weighting="none")
    hml.vocab = type("V", (), {"num_predicates": 5})()
    assert hml.stage_weights(0).tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="stage_weighting"):
        HML(stage_weighting="cb")
    with pytest.raises(ValueError, match="importance_norm"):
        HML(importance_norm="layer")


def test_mr_loss_by_hand():
    p = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    q = [torch.tensor([0.0, 2.0]), torch.tensor([[1.0]])]
    f = [torch.tensor([0.5, 1.0]), torch.tensor([[2.0]])]
    o = [torch.tensor([0.5, 0.0]), torch.tensor([[1.0]])]
    # (0.5+0.5)*1 + (1+0)*0 + (2+1)*4 = 13, P = 3
    assert mr_loss(p, q, f, o).item() == pytest.approx(13 / 3)


def test_cr_loss_by_hand():
    s = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]])
    # row 0: softmax s = [.5,.5], t = [.75,.25]; old class 0 only -> (.25)^2; row 1 identical -> 0
    assert cr_loss(s, t, [0]).item() == pytest.approx(0.0625 / 2)
    assert cr_loss(s, t, [0, 1]).item() == pytest.approx(2 * 0.0625 / 2)


def test_importance_tracker_fisher_mean_and_path_integral():
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    tr = ImportanceTracker([p.shape], fisher="mean", eps=0.0)
    tr.start([p])
    # step 1: g = [2, -1], theta moves by [-0.5, +0.25] (lowers the loss: sum g*d = -1.25)
    p.grad = torch.tensor([2.0, -1.0])
    with torch.no_grad():
        p += torch.tensor([-0.5, 0.25])
    tr.step([p])
    f1 = torch.tensor([4.0, 1.0])
    assert torch.allclose(tr.fisher[0], f1)
    want = (
        -torch.tensor([2.0, -1.0])
        * torch.tensor([-0.5, 0.25])
        / (0.5 * f1 * torch.tensor([0.25, 0.0625]))
    )
    assert torch.allclose(tr.omega_raw[0], want)
    # step 2: g = [0, 1], theta moves by [0, +0.5]: raises the loss -> no contribution; F is the
    # mean
    p.grad = torch.tensor([0.0, 1.0])
    with torch.no_grad():
        p += torch.tensor([0.0, 0.5])
    tr.step([p])
    assert torch.allclose(tr.fisher[0], torch.tensor([2.0, 1.0]))
    assert torch.allclose(tr.omega_raw[0], want)


def test_hml_stages_on_synth_vg(tmp_path):
    from tailgraph.datamodules.vg import SynthVGDataModule
    from tailgraph.engine.module import SGGModule

    L.seed_everything(0)
    dm = SynthVGDataModule(
        root=str(tmp_path / "vg"),
        num_train=60,
        num_test=10,
        image_size=64,
        layout_only=True,
        batch_size=16,
        num_val_im=0,
    )
    module = SGGModule(
        features=None,
        context={
            "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
            "init_args": {"hidden_dim": 16},
        },
        method={"class_path": "tailgraph.methods.hml.HML", "init_args": {"stage_epochs": [2, 2]}},
    )
    seen = []

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(
                (
                    trainer.current_epoch,
                    int(pl_module.method.current_stage),
                    sorted(trainer.callback_metrics),
                )
            )

    t = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Watch()],
    )
    t.fit(module, datamodule=dm)
    m = module.method
    assert [s for _, s, _ in seen][0] == 0 and [s for _, s, _ in seen][-1] == 1
    assert all(s == (e >= 2) for e, s, _ in seen)
    assert (
        len(m.stages) == 2
        and set(m.stages[0]) < set(m.stages[1])
        and m.stages[1] == dm.vocab.foreground_predicates
    )
    # the teacher is the stage-1 model, frozen, and MR anchors at its parameters
    assert all(not p.requires_grad for p in m.teacher.parameters())
    for a, b in zip(m.anchor.fisher, m.tracker.fisher):
        assert a.shape == b.shape
    assert float(sum(o.sum() for o in [m.anchor._get("omega", i) for i in range(m.anchor.n)])) > 0
    losses = m.training_step(module.model, module.train_batch(next(iter(dm.train_dataloader()))))
    assert {"loss_new", "loss_cr", "loss_mr"} <= set(losses)
    with pytest.raises(ValueError):
        HML(stage_epochs=[0])


def test_hml_resumes_mid_stage_without_restarting_it(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from tailgraph.datamodules.vg import SynthVGDataModule
    from tailgraph.engine.module import SGGModule

    def make():
        return SGGModule(
            features=None,
            context={
                "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
                "init_args": {"hidden_dim": 16},
            },
            method={
                "class_path": "tailgraph.methods.hml.HML",
                "init_args": {"stage_epochs": [1, 3]},
            },
        )

    dm = SynthVGDataModule(
        root=str(tmp_path / "vg"),
        num_train=40,
        num_test=8,
        image_size=64,
        layout_only=True,
        batch_size=16,
        num_val_im=0,
    )
    L.seed_everything(0)
    ckpt = ModelCheckpoint(
        dirpath=tmp_path / "ck",
        save_top_k=-1,
        every_n_epochs=1,
        filename="e{epoch}",
        auto_insert_metric_name=False,
    )
    t = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ckpt],
    )
    first = make()
    t.fit(first, datamodule=dm)  # stage 1 = epoch 0, stage 2 = epochs 1..3; stops after epoch 2
    path = tmp_path / "ck" / "e2.ckpt"
    saved = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert int(saved["method.current_stage"]) == 1

    starts = {}

    class AtStart(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            starts[trainer.current_epoch] = (
                {k: v.clone() for k, v in pl_module.model.state_dict().items()},
                int(pl_module.method.current_stage),
            )

    second = make()
    t2 = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[AtStart()],
    )
    t2.fit(second, datamodule=dm, ckpt_path=str(path))
    weights, stage = starts[3]
    assert stage == 1  # still stage 2 after the resume
    # the model continues from the checkpoint (no fresh re-initialisation), the teacher and MR
    # anchor are restored
    for k, v in weights.items():
        assert torch.equal(v, saved[f"model.{k}"]), k
    for k, v in second.method.teacher.state_dict().items():
        assert torch.equal(v, saved[f"method.teacher.{k}"]), k
    assert torch.equal(second.method.anchor._get("fisher", 0), saved["method.anchor.fisher_0"])


def test_demo_runs_tiny(tmp_path):
    import json

    from tailgraph.cli.demo import run_demo

    doc = run_demo(tmp_path / "demo", num_train=120, num_test=20, epochs=1, stage_epochs=(1, 1))
    assert set(doc["models"]) == {"FREQ", "MOTIFS", "MOTIFS + HML"}
    assert len(doc["train_counts"]) == len(doc["predicates"]) == 50
    saved = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert saved["models"]["MOTIFS + HML"]["mR@50"] == doc["models"]["MOTIFS + HML"]["mR@50"]
    assert (tmp_path / "demo" / "report.md").is_file()


@pytest.mark.parametrize(
    "context",
    [
        "tailgraph.modeling.context.motifs.MotifsContext",
        "tailgraph.modeling.context.vctree.VCTreeContext",
        "tailgraph.modeling.context.transformer.TransformerContext",
    ],
)
def test_hml_wraps_every_image_context_model(context, tmp_path):
    from tailgraph.datamodules.vg import SynthVGDataModule
    from tailgraph.engine.module import SGGModule

    L.seed_everything(0)
    dm = SynthVGDataModule(
        root=str(tmp_path / "vg"),
        num_train=24,
        num_test=6,
        image_size=64,
        layout_only=True,
        batch_size=12,
        num_val_im=0,
    )
    module = SGGModule(
        features=None,
        context={"class_path": context, "init_args": {"hidden_dim": 16}},
        method={"class_path": "tailgraph.methods.hml.HML", "init_args": {"stage_epochs": [1, 1]}},
    )
    t = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    t.fit(module, datamodule=dm)
    assert int(module.method.current_stage) == 1
    losses = module.method.training_step(
        module.model, module.train_batch(next(iter(dm.train_dataloader())))
    )
    assert {"loss_new", "loss_cr", "loss_mr"} <= set(losses) and all(
        torch.isfinite(v) for v in losses.values()
    )
    if "vctree" in context:
        assert "loss_pair_score" in losses
    t.test(module, datamodule=dm, verbose=False)
    assert 0 <= module.last_metrics["mR@50"] <= 1 and "Mean@50" in module.last_metrics


def test_the_demo_gives_the_same_numbers_whatever_the_threads_and_load(tmp_path):
    """Two tiny demos with the same seed in fresh processes — one started with 1 thread and a
    busy process beside it, one with 4 threads — write the same metrics to the last digit."""
    import json
    import subprocess
    import sys

    code = (
        "import sys; from tailgraph.cli.demo import run_demo; "
        "run_demo(sys.argv[1], num_train=60, num_test=12, epochs=1, stage_epochs=(1, 1))"
    )
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        docs = []
        for name, threads in (("a", "1"), ("b", "4")):
            env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
            if name == "b":
                busy.kill()
                busy.wait()
            r = subprocess.run(
                [sys.executable, "-c", code, str(tmp_path / name)],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert r.returncode == 0, r.stderr[-2000:]
            docs.append(json.loads((tmp_path / name / "metrics.json").read_text())["models"])
    finally:
        busy.kill()
        busy.wait()
    assert docs[0] == docs[1]
