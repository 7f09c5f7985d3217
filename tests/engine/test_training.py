"""End to end: synth-vg on disk -> Lightning fit -> test -> checkpoint with vocabulary -> CLI."""

import json

import lightning as L
import pytest
import torch

from tailgraph.cli import main as tailgraph_main
from tailgraph.datamodules.vg import SynthVGDataModule
from tailgraph.engine.module import SGGModule
from tailgraph.structures import GraphBatch


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "synth-vg"
    dm = SynthVGDataModule(
        root=str(root), num_train=40, num_test=12, image_size=96, max_size=96, batch_size=8
    )
    dm.prepare_data()
    return root


def trainer(tmp_path, epochs=1, **kw):
    return L.Trainer(
        max_epochs=epochs,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        **kw,
    )


def test_fit_test_and_checkpoint_roundtrip(synth_root, tmp_path):
    L.seed_everything(0)
    dm = SynthVGDataModule(
        root=str(synth_root), num_train=40, num_test=12, image_size=96, max_size=96, batch_size=8
    )
    model = SGGModule(
        features={
            "class_path": "tailgraph.modeling.roi.PixelFeatures",
            "init_args": {"last_stage": "layer1", "out_dim": 32},
        },
        context={
            "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
            "init_args": {"hidden_dim": 32},
        },
    )
    t = trainer(tmp_path, epochs=2, enable_checkpointing=True)
    t.fit(model, datamodule=dm)
    t.test(model, datamodule=dm, verbose=False)
    m = model.last_metrics
    assert m["num_images"] > 0
    for k in ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100"):
        assert 0.0 <= m[k] <= 1.0
    assert m["R@20"] <= m["R@50"] <= m["R@100"]
    assert len(m["per_predicate_R@50"]) == 50

    ckpt = tmp_path / "model.ckpt"
    t.save_checkpoint(ckpt)
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert raw["tailgraph"]["vocab"]["predicates"][1:4] == dm.vocab.predicates[1:4]
    assert raw["tailgraph"]["versions"]["torch"] == torch.__version__
    # a checkpoint restores without the training set: the vocabulary is embedded
    restored = SGGModule.load_from_checkpoint(ckpt)
    assert restored.vocab.predicates == dm.vocab.predicates
    batch = next(iter(dm.test_dataloader()))
    model.eval()
    restored.eval()
    with torch.no_grad():
        a = model(batch).predicate_probs
        b = restored(batch).predicate_probs
    assert torch.allclose(a, b, atol=1e-6)


def test_training_pairs_keep_all_foreground_and_cap_background(synth_root):
    dm = SynthVGDataModule(
        root=str(synth_root), num_train=40, num_test=12, image_size=96, layout_only=True
    )
    dm.setup("fit")
    module = SGGModule(features=None, bg_per_image=2)
    module.build(dm.vocab, "vg")
    graphs = dm.train_graphs()[:4]
    sampled = module.train_batch(GraphBatch(graphs))
    for g, p in zip(graphs, sampled.pairs):
        fg = {tuple(r[:2]) for r in g.relations.tolist()}
        got = {tuple(x) for x in p.tolist()}
        assert fg <= got
        assert len(got - fg) == min(2, g.num_boxes * (g.num_boxes - 1) - len(fg))
        assert all(s != o for s, o in got)


def test_freq_module_has_no_training_but_evaluates(synth_root, tmp_path):
    dm = SynthVGDataModule(
        root=str(synth_root), num_train=40, num_test=12, image_size=96, layout_only=True
    )
    freq = SGGModule(context={"class_path": "tailgraph.modeling.freq.FrequencyBaseline"}, head=None)
    trainer(tmp_path).test(freq, datamodule=dm, verbose=False)
    assert freq.last_metrics["R@50"] > 0.2  # the class prior alone recovers many relations


def test_lightning_cli_fit_then_test(synth_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from tests.helpers import tiny_vg_recipe

    cfg = tiny_vg_recipe(tmp_path / "recipe.yaml", synth_root)
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpts = sorted(tmp_path.glob("runs/version_*/checkpoints/last.ckpt"))
    assert ckpts, list(tmp_path.rglob("*.ckpt"))
    assert tailgraph_main(["test", "--config", str(cfg), "--ckpt_path", str(ckpts[0])]) == 0
    metrics = sorted(tmp_path.glob("runs/version_*/metrics.json"))
    doc = json.loads(metrics[-1].read_text())
    assert set(doc["models"]["model"]) >= {"R@50", "mR@50"}
    assert len(doc["predicates"]) == 50 and len(doc["train_counts"]) == 50
    assert tailgraph_main(["report", str(metrics[-1])]) == 0
    assert (metrics[-1].parent / "report.md").is_file()


@pytest.mark.parametrize("context", ["pairwise", "motifs", "transformer", "vctree", "sttran"])
def test_two_bf16_mixed_steps_on_cpu(context, tmp_path):
    """Every context model trains two steps in ``bf16-mixed`` on CPU with finite weights."""
    from tests.helpers import tiny_ag_recipe, tiny_sttran_model, tiny_vg_recipe

    trainer = {"precision": "bf16-mixed", "limit_train_batches": 2}
    if context == "sttran":
        model = tiny_sttran_model()
        cfg = tiny_ag_recipe(tmp_path, model, epochs=1, num_train=4, **trainer)
    else:
        names = {
            "pairwise": "pairwise.PairwiseMLPContext",
            "motifs": "motifs.MotifsContext",
            "transformer": "transformer.TransformerContext",
            "vctree": "vctree.VCTreeContext",
        }
        spec = {"class_path": f"tailgraph.modeling.context.{names[context]}"}
        spec["init_args"] = {"hidden_dim": 16}
        cfg = tiny_vg_recipe(
            tmp_path / "r.yaml", tmp_path / "vg", tmp_path, model={"context": spec}, trainer=trainer
        )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = next(tmp_path.rglob("last.ckpt"))
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 2
    for k, v in state["state_dict"].items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k
