"""Action Genome training: a LightningDataModule (real AG or synth-ag) and a LightningModule
wiring pixel features → STTran → attention / spatial / contacting heads, with the AG losses
and the AG metrics. One batch is one video.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tailgraph.data.datamodules import SplitDataModule
from tailgraph.data.images import load_image
from tailgraph.data.samplers import VideoSampler
from tailgraph.engine.components import build_component
from tailgraph.modeling.relation_model import GraphBatch, RelationModel
from tailgraph.structures import Predictions, VideoSceneGraph
from tailgraph.vocab import Vocabulary

__all__ = ["AGDataModule", "AGModule", "ag_targets", "ag_loss", "person_object_pairs", "ag_frequency_predictions"]


def person_object_pairs(frames: list) -> list[torch.Tensor]:
    """AG's candidate pairs: (person = box 0, object i) for every object of every frame."""
    return [torch.stack([torch.zeros(f.num_boxes - 1, dtype=torch.int64), torch.arange(1, f.num_boxes)], 1) for f in frames]


def ag_targets(frames: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (person, object) pair in :func:`person_object_pairs` order: attention class ``[P]``,
    spatial multi-hot ``[P, 6]``, contacting multi-hot ``[P, 17]``."""
    att, spa, con = [], [], []
    for f in frames:
        n = f.num_boxes - 1
        a = torch.full((n,), -100, dtype=torch.int64)
        s = torch.zeros((n, 6))
        c = torch.zeros((n, 17))
        for i, j, p in f.relations.tolist():
            if p < 3:
                a[j - 1] = p
            elif p < 9:
                s[i - 1, p - 3] = 1
            else:
                c[j - 1, p - 9] = 1
        att.append(a)
        spa.append(s)
        con.append(c)
    return torch.cat(att), torch.cat(spa), torch.cat(con)


def ag_loss(probs: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TEMPURA's losses on the 26 probability columns: NLL on log(p + 1e-12) for attention, BCE
    for spatial and contacting."""
    att, spa, con = (t.to(probs.device) for t in targets)
    return {
        "loss_attention": F.nll_loss(torch.log(probs[:, :3] + 1e-12), att, ignore_index=-100),
        "loss_spatial": F.binary_cross_entropy(probs[:, 3:9].clamp(1e-7, 1 - 1e-7), spa),
        "loss_contacting": F.binary_cross_entropy(probs[:, 9:].clamp(1e-7, 1 - 1e-7), con),
    }


class _VideoDataset(Dataset):
    def __init__(self, videos: list[VideoSceneGraph], max_size: int, layout_only: bool) -> None:
        self.videos, self.max_size, self.layout_only = videos, max_size, layout_only

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> GraphBatch:
        v = self.videos[i]
        if self.layout_only:
            return GraphBatch(list(v.frames))
        imgs = [load_image(f.image_path, self.max_size, sample=f.image_id) for f in v.frames]
        h = max(t.shape[1] for t, _ in imgs)
        w = max(t.shape[2] for t, _ in imgs)
        images = torch.zeros((len(imgs), 3, h, w))
        for k, (t, _) in enumerate(imgs):
            images[k, :, : t.shape[1], : t.shape[2]] = t
        return GraphBatch(list(v.frames), images, torch.tensor([s for _, s in imgs]))


class AGDataModule(SplitDataModule):
    """Action Genome (or synth-ag, generated on first use when ``synth_train`` > 0).

    Args:
        root: data set folder.
        synth_train, synth_test, synth_size, synth_seed: generate synth-ag into ``root`` when
            it has no annotations.
        max_size: frame size fed to the network.
        layout_only: no frame images.
    """

    reader = "tailgraph.data.action_genome:load_ag"
    generator = "tailgraph.data.synthetic.ag:generate_synth_ag"
    marker = "annotations/person_bbox.pkl"

    def __init__(self, root: str = "data/synth-ag", synth_train: int = 0, synth_test: int = 0, synth_size: int = 128,
                 synth_seed: int = 0, max_size: int = 128, layout_only: bool = False, num_workers: int = 0) -> None:
        super().__init__(root, synth_train, synth_test, synth_size, synth_seed, layout_only, num_workers)
        self.max_size = max_size

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = _VideoDataset(self.splits[split], self.max_size, self.layout_only)
        return DataLoader(ds, batch_size=None, sampler=VideoSampler(len(ds), shuffle=shuffle), num_workers=self.num_workers)



class AGModule(L.LightningModule):
    """STTran-style training on Action Genome (PredCls).

    Args:
        features: pixel-feature spec (default: ResNet-18 to layer2, 256-d object and union features).
        context: context spec (default :class:`tailgraph.modeling.context.sttran.STTranContext`).
        head: head spec (default :class:`tailgraph.modeling.context.sttran.STTranHeads`).
        lr: AdamW learning rate (TEMPURA: 1e-5 with a pretrained detector; higher from scratch).
        grad_clip: gradient-norm clip (5, as STTran), applied by the trainer.
        eval_ks: K values of the AG metrics (with constraint).
    """

    def __init__(self, features: dict | None = None, context: dict | None = None, head: dict | None = None,
                 lr: float = 1e-4, eval_ks: tuple[int, ...] = (10, 20, 50), vocab: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["vocab"])
        self.features_spec = features or {"class_path": "tailgraph.modeling.roi.PixelFeatures",
                                          "init_args": {"last_stage": "layer2", "out_dim": 256}}
        self.context_spec = context or {"class_path": "tailgraph.modeling.context.sttran.STTranContext",
                                        "init_args": {"proj_dim": 128, "embed_dim": 64, "num_heads": 8, "ff_dim": 512, "temporal_layers": 2}}
        self.head_spec = head or {"class_path": "tailgraph.modeling.context.sttran.STTranHeads"}
        self.lr, self.eval_ks = lr, tuple(eval_ks)
        self.model: RelationModel | None = None
        self.vocab = Vocabulary.from_dict(vocab) if vocab else None
        self.last_metrics: dict[str, Any] = {}
        if self.vocab is not None:
            self.build(self.vocab)

    def build(self, vocab: Vocabulary) -> None:
        from tailgraph.evaluation.metric import AGRecallMetric

        if self.model is not None:
            return
        self.vocab = vocab
        features = build_component(self.features_spec, {})
        dim = features.out_dim
        context = build_component(self.context_spec, {"class_names": vocab.object_classes, "obj_feat_dim": dim, "union_feat_dim": dim})
        head = build_component(self.head_spec, {"in_dim": context.out_dim})
        self.model = RelationModel(context, head, vocab.num_classes, features=features, use_freq_bias=False)
        self.metric = AGRecallMetric("with", "predcls", self.eval_ks)

    def setup(self, stage: str) -> None:
        if self.model is None:
            self.build(self.trainer.datamodule.vocab)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tailgraph"] = {"vocab": self.vocab.to_dict() if self.vocab else None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.model is None and (checkpoint.get("tailgraph") or {}).get("vocab"):
            self.build(Vocabulary.from_dict(checkpoint["tailgraph"]["vocab"]))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch.to(device) if isinstance(batch, GraphBatch) else super().transfer_batch_to_device(batch, device, dataloader_idx)

    def forward(self, batch: GraphBatch):
        return self.model(batch.with_pairs(person_object_pairs(batch.graphs)))

    def training_step(self, batch: GraphBatch, batch_idx: int) -> torch.Tensor:
        out = self(batch)
        losses = ag_loss(out.predicate_probs, ag_targets(batch.graphs))
        total = sum(losses.values())
        self.log("train/loss", total, batch_size=1, prog_bar=True)
        return total

    def _eval(self, batch: GraphBatch) -> None:
        b = batch.with_pairs(person_object_pairs(batch.graphs))
        out = self.model(b)
        self.metric.update([g.to("cpu") for g in batch.graphs], self.model.to_predictions(b, out))

    def validation_step(self, batch: GraphBatch, batch_idx: int) -> None:
        self._eval(batch)

    def test_step(self, batch: GraphBatch, batch_idx: int) -> None:
        self._eval(batch)

    def _end(self, prefix: str) -> None:
        m = self.metric.compute()
        self.metric.reset()
        self.last_metrics = m
        for k, v in m.items():
            if isinstance(v, (int, float)):
                self.log(f"{prefix}/{k}", float(v))

    def on_validation_epoch_end(self) -> None:
        self._end("val")

    def on_test_epoch_end(self) -> None:
        self._end("test")

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.lr)


def ag_frequency_predictions(train: list[VideoSceneGraph], test: list[VideoSceneGraph], num_classes: int) -> list[Predictions]:
    """AG's FREQ baseline: for each (person, object) pair, the training distribution of the
    attention label and the per-label frequencies of spatial and contacting labels given the
    object class (Laplace-smoothed)."""
    att = torch.ones((num_classes, 3))
    multi = torch.ones((num_classes, 23))
    seen = torch.full((num_classes,), 2.0)
    for v in train:
        for f in v.frames:
            a, s, c = ag_targets([f])
            cls = f.labels[1:]
            valid = a >= 0
            att.index_put_((cls[valid], a[valid]), torch.ones(int(valid.sum())), accumulate=True)
            multi.index_add_(0, cls, torch.cat([s, c], 1))
            seen.index_add_(0, cls, torch.ones(len(cls)))
    att = att / att.sum(1, keepdim=True)
    multi = multi / seen[:, None]
    preds = []
    for v in test:
        for f in v.frames:
            cls = f.labels[1:]
            scores = torch.cat([att[cls], multi[cls]], 1)
            preds.append(Predictions(f.image_id, f.boxes, f.labels, torch.ones(f.num_boxes), person_object_pairs([f])[0], scores))
    return preds
