"""``model.compile``: the relation model through ``torch.compile`` equals the eager one."""

from __future__ import annotations

import pytest
import torch
import yaml

from tailgraph.cli import main as tailgraph_main
from tailgraph.engine.module import SGGModule, compile_options
from tailgraph.errors import DataError
from tailgraph.stats import TrainStats


def _data_and_spec(kind: str, tmp_path):
    if kind == "vg":
        from tailgraph.datamodules.vg import SynthVGDataModule

        dm = SynthVGDataModule(
            root=str(tmp_path / "vg"),
            num_train=8,
            num_test=2,
            image_size=64,
            layout_only=True,
            batch_size=4,
        )
        spec = {
            "features": None,
            "context": {
                "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
                "init_args": {"hidden_dim": 16},
            },
        }
    else:
        from tailgraph.data.synthetic.ag import generate_synth_ag
        from tailgraph.datamodules.ag import AGDataModule
        from tests.helpers import tiny_sttran_model

        generate_synth_ag(tmp_path / "ag", num_train=2, num_test=1, image_size=64)
        dm = AGDataModule(root=str(tmp_path / "ag"), max_size=64, val_fraction=0.0)
        spec = tiny_sttran_model()
        # the trunk's maps from the cache (file and hash work that the compiled graph skips)
        spec["features"]["class_path"] = "tailgraph.modeling.roi.CachedTrunkFeatures"
    dm.setup("fit")
    return dm, spec


@pytest.mark.parametrize("kind, compile_", [("vg", True), ("ag", {"backend": "aot_eager"})])
def test_compiled_model_equals_eager(kind, compile_, tmp_path):
    """The pairwise MLP (image, ``compile: true`` = inductor on CPU) and STTran (video,
    dynamo's graphs through AOT autograd without inductor's code generation, which takes
    minutes on STTran's 26 graphs on a cold cache): the same weights and checkpoint keys,
    the same predicate scores and gradients as eager; for the image model also the same test
    predictions."""
    import torch._dynamo

    torch._dynamo.reset()
    dm, spec = _data_and_spec(kind, tmp_path)
    stats = TrainStats.from_graphs(dm.train_graphs(), dm.vocab)
    modules = []
    for option in (False, compile_):
        torch.manual_seed(0)
        m = SGGModule(**spec, compile=option)
        m.build(dm.vocab, dm.protocol, stats)
        m.model.eval()  # no dropout: eager and inductor draw their random numbers differently
        modules.append(m)
    eager, compiled = modules
    assert compiled.model._compiled_call_impl is not None
    assert eager.model._compiled_call_impl is None
    sd_e, sd_c = eager.state_dict(), compiled.state_dict()
    assert list(sd_e) == list(sd_c) and not any("_orig_mod" in k for k in sd_c)
    assert all(torch.equal(sd_e[k], sd_c[k]) for k in sd_e)

    batch = eager.train_batch(next(iter(dm.train_dataloader())))
    outs, grads = [], []
    for m in modules:
        m.model.zero_grad()
        out = m.model(batch)
        (out.predicate_logits.square().mean()).backward()
        outs.append(out.predicate_logits.detach())
        grads.append({n: p.grad for n, p in m.model.named_parameters() if p.grad is not None})
    assert outs[0].shape == outs[1].shape and outs[0].numel() > 0
    torch.testing.assert_close(outs[1], outs[0], atol=1e-4, rtol=1e-4)
    assert grads[0]
    params = dict(eager.model.named_parameters())
    for n in set(grads[0]) | set(grads[1]):  # a part the loss does not reach: None or zeros
        ge, gc = (g.get(n, torch.zeros_like(params[n])) for g in grads)
        torch.testing.assert_close(gc, ge, atol=1e-4, rtol=1e-3, msg=n)

    if kind != "vg":
        return
    test_batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        preds = [m.predictions(test_batch) for m in modules]
    for pe, pc in zip(*preds):
        torch.testing.assert_close(
            torch.as_tensor(pc.predicate_scores), torch.as_tensor(pe.predicate_scores),
            atol=1e-4, rtol=1e-4,
        )  # fmt: skip


def test_compile_through_the_command_line_keeps_eager_checkpoints(tmp_path):
    """``fit`` with ``model.compile`` trains, and its checkpoint tests in an eager run (the
    keys carry no ``_orig_mod`` prefix)."""
    from tests.helpers import tiny_vg_recipe

    cfg = tiny_vg_recipe(
        tmp_path / "r.yaml",
        tmp_path / "vg",
        tmp_path,
        model={"compile": {"backend": "aot_eager"}},
        trainer={"limit_train_batches": 2},
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = next(tmp_path.rglob("last.ckpt"))
    state = torch.load(ckpt, weights_only=False)
    assert state["global_step"] == 2
    assert not any("_orig_mod" in k for k in state["state_dict"])
    doc = yaml.safe_load(cfg.read_text())
    doc["model"].pop("compile")
    cfg.write_text(yaml.safe_dump(doc))
    assert tailgraph_main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt)]) == 0


@pytest.mark.parametrize(
    "spec, message",
    [
        ("yes", "true, false or a mapping"),
        ({"backnd": "inductor"}, "unknown torch.compile option 'backnd'"),
        ({"dynamic": 1}, "must be a boolean"),
        ({"mode": "max-autotune", "options": {}}, "mode or options"),
    ],
)
def test_bad_compile_options_name_the_field(spec, message):
    with pytest.raises(DataError, match=message) as err:
        compile_options(spec)
    assert "model.compile" in str(err.value)


def test_compile_options():
    assert compile_options(False) is None and compile_options(None) is None
    assert compile_options(True) == {"dynamic": True}
    assert compile_options({"backend": "aot_eager", "dynamic": False}) == {
        "backend": "aot_eager",
        "dynamic": False,
    }
