"""STTran training on a tiny synth-ag set, end to end; AG targets and the FREQ baseline."""

import lightning as L
import torch

from tailgraph.engine.video_module import AGDataModule, AGModule, ag_frequency_predictions, ag_loss, ag_targets
from tailgraph.evaluation.ag import evaluate_ag
from tailgraph.structures import SceneGraph


def test_targets_and_loss_by_hand():
    f = SceneGraph("v/0", 50, 50, [[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]], [1, 2, 3],
                   [[0, 1, 0], [1, 0, 5], [0, 1, 14], [0, 2, 1], [2, 0, 3], [2, 0, 7]])
    a, s, c = ag_targets([f])
    assert a.tolist() == [0, 1]
    assert s[0].nonzero().flatten().tolist() == [2] and s[1].nonzero().flatten().tolist() == [0, 4]
    assert c[0].nonzero().flatten().tolist() == [5] and c[1].sum() == 0
    probs = torch.full((2, 26), 0.5)
    probs[:, :3] = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    losses = ag_loss(probs, (a, s, c))
    assert abs(losses["loss_attention"].item() - (-torch.log(torch.tensor(0.5 + 1e-12))).item()) < 1e-6
    assert abs(losses["loss_spatial"].item() - torch.log(torch.tensor(2.0)).item()) < 1e-5


def test_sttran_fit_and_test_on_tiny_synth_ag(tmp_path):
    L.seed_everything(0)
    dm = AGDataModule(root=str(tmp_path / "ag"), synth_train=3, synth_test=2, synth_size=64, max_size=64)
    module = AGModule(features={"class_path": "tailgraph.modeling.roi.PixelFeatures", "init_args": {"last_stage": "layer1", "out_dim": 16}},
                      context={"class_path": "tailgraph.modeling.context.sttran.STTranContext",
                               "init_args": {"proj_dim": 16, "embed_dim": 8, "num_heads": 4, "ff_dim": 32, "temporal_layers": 1}})
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, gradient_clip_val=5.0)
    trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    m = module.last_metrics
    assert m["num_frames"] == sum(len(v) for v in dm.splits["test"]) > 0
    assert 0 <= m["R@10"] <= m["R@20"] <= 1 and len(m["per_predicate_R@10"]) == 26
    preds = ag_frequency_predictions(dm.splits["train"], dm.splits["test"], dm.vocab.num_classes)
    frames = [f for v in dm.splits["test"] for f in v.frames]
    freq = evaluate_ag(frames, preds, ks=(10,), constraints=("with",))["with"]
    assert freq["R@10"] > 0.05  # even a 3-video class prior recovers some relations
