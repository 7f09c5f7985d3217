"""The LightningModule: wires a :class:`RelationModel`, a loss and the VG metrics together.

The module holds no modelling logic of its own; it builds the model parts from
``class_path`` specs once the data set's vocabulary is known (in ``setup``, or from a
checkpoint), trains with a predicate loss, and evaluates with :mod:`tailgraph.evaluation`.
"""

from __future__ import annotations

import platform
from typing import Any, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.engine.components import build_component
from tailgraph.evaluation.metric import VGRecallMetric
from tailgraph.modeling.relation_model import GraphBatch, RelationModel, RelationOutput
from tailgraph.structures import Predictions, SceneGraph, Task
from tailgraph.vocab import Vocabulary

__all__ = ["SGGModule", "pair_targets", "DEFAULT_CONTEXT", "DEFAULT_HEAD", "DEFAULT_FEATURES"]

DEFAULT_CONTEXT = {"class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext", "init_args": {"hidden_dim": 256}}
DEFAULT_HEAD = {"class_path": "tailgraph.modeling.heads.linear.LinearHead"}
DEFAULT_FEATURES = {
    "class_path": "tailgraph.modeling.roi.PixelFeatures",
    "init_args": {"depth": 18, "last_stage": "layer2", "out_dim": 256},
}


def pair_targets(graphs: Sequence[SceneGraph], pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicate targets of candidate pairs.

    Args:
        graphs: the batch's ground-truth graphs (objects concatenated in order).
        pairs: ``[P, 2]`` global object rows.
    Returns:
        ``(labels [P] int64, multi_hot [P, R] float32)`` where ``labels`` is one annotated
        predicate of the pair (the last row in the annotation when a pair has several) or 0
        (background) and ``multi_hot`` marks every annotated predicate (column 0 for none).
        ``R`` is one more than the largest predicate seen, so callers pass it explicitly via
        ``multi_hot[:, :R]`` when they need a fixed width.
    """
    device = pairs.device
    n_total = sum(g.num_boxes for g in graphs)
    rels, offset = [], 0
    for g in graphs:
        if g.num_relations:
            r = g.relations.clone()
            r[:, :2] += offset
            rels.append(r)
        offset += g.num_boxes
    num_pred = 1 + (max(int(r[:, 2].max()) for r in rels) if rels else 0)
    if not rels:
        z = torch.zeros(pairs.shape[0], dtype=torch.int64, device=device)
        mh = torch.zeros((pairs.shape[0], num_pred), device=device)
        mh[:, 0] = 1
        return z, mh
    rel = torch.cat(rels).to(device)
    dense = torch.zeros(n_total * n_total, dtype=torch.int64, device=device)
    dense[rel[:, 0] * n_total + rel[:, 1]] = rel[:, 2]
    key = pairs[:, 0] * n_total + pairs[:, 1]
    labels = dense[key]
    multi = torch.zeros((n_total * n_total, num_pred), device=device)
    multi[rel[:, 0] * n_total + rel[:, 1], rel[:, 2]] = 1.0
    mh = multi[key]
    mh[:, 0] = (mh[:, 1:].sum(dim=1) == 0).float()
    return labels, mh


class SGGModule(L.LightningModule):
    """Scene graph generation training / evaluation.

    Args:
        context: context-model spec (``class_path`` + ``init_args``); data-set-dependent
            arguments (``class_names``, ``num_classes``, ``num_predicates``,
            ``predicate_counts``, ``obj_feat_dim``, ``union_feat_dim``) are filled in.
        head: predicate-head spec (``in_dim`` and ``num_predicates`` are filled in), or
            ``None`` for a context model that outputs ``freq_logits`` (FREQ).
        features: pixel-feature spec, or ``None`` for a layout-only model.
        object_classifier: SGCls object-classifier spec (``in_dim``, ``num_classes`` filled in).
        loss: predicate-loss spec called as ``loss(logits [P, R], labels [P])``; default
            cross-entropy. Its constructor may take ``predicate_counts`` (filled in).
        task: ``predcls`` | ``sgcls``.
        lr, weight_decay: AdamW settings.
        max_epochs_hint: length of the cosine learning-rate schedule in epochs (0 = constant).
        bg_per_image: training uses every annotated pair of an image plus at most this many
            random unannotated (background) pairs; ``None`` = all pairs.
        eval_ks: K values of R@K / mR@K.
        vocab: vocabulary dict (set from the data module or the checkpoint; rarely given).
    """

    def __init__(
        self,
        context: dict | None = None,
        head: dict | None = None,
        features: dict | None = None,
        object_classifier: dict | None = None,
        loss: dict | None = None,
        task: str = "predcls",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_epochs_hint: int = 0,
        bg_per_image: int | None = 16,
        eval_ks: tuple[int, ...] = (20, 50, 100),
        vocab: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["vocab"])
        self.context_spec = context if context is not None else DEFAULT_CONTEXT
        self.head_spec = head if head is not None else DEFAULT_HEAD
        if context is not None and head is None and "FrequencyBaseline" in str(context.get("class_path", "")):
            self.head_spec = None
        self.features_spec = features
        self.object_classifier_spec = object_classifier
        self.loss_spec = loss
        self.task = Task.parse(task)
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs_hint = max_epochs_hint
        self.bg_per_image = bg_per_image
        self.eval_ks = tuple(int(k) for k in eval_ks)
        self.vocab: Vocabulary | None = Vocabulary.from_dict(vocab) if vocab else None
        self.model: RelationModel | None = None
        self.loss_fn: nn.Module | None = None
        self.metric: VGRecallMetric | None = None
        self.last_metrics: dict[str, Any] = {}
        if self.vocab is not None:
            self.build(self.vocab)

    # ------------------------------------------------------------------ construction
    def build(self, vocab: Vocabulary, train_graphs: Sequence[SceneGraph] | None = None) -> None:
        """Instantiate the model parts for ``vocab`` (idempotent)."""
        if self.model is not None:
            return
        self.vocab = vocab
        injected: dict[str, Any] = {
            "class_names": vocab.object_classes,
            "predicate_names": vocab.predicates,
            "num_classes": vocab.num_classes,
            "num_predicates": vocab.num_predicates,
            "predicate_counts": list(vocab.predicate_counts),
        }
        if train_graphs is not None:
            from tailgraph.modeling.freq import pair_predicate_counts

            # initial MOTIFS-style frequency bias of context models that take one
            injected["pair_counts"] = pair_predicate_counts(train_graphs, vocab.num_classes, vocab.num_predicates)
        features = build_component(self.features_spec, {})
        feat_dim = getattr(features, "out_dim", 0) if features is not None else 0
        union_dim = feat_dim if (features is not None and getattr(features, "union_features", False)) else 0
        injected.update(obj_feat_dim=feat_dim, union_feat_dim=union_dim)
        context = build_component(self.context_spec, injected)
        if train_graphs is not None and hasattr(context, "fit") and not any(p.requires_grad for p in context.parameters()):
            context.fit(train_graphs)
        out_dim = getattr(context, "out_dim", getattr(context, "hidden_dim", None))
        head = build_component(self.head_spec, {**injected, "in_dim": out_dim}) if self.head_spec else None
        obj_cls = build_component(self.object_classifier_spec, {**injected, "in_dim": feat_dim})
        self.model = RelationModel(context, head, vocab.num_classes, features=features, object_classifier=obj_cls, task=self.task)
        # Per-image statistics, concatenated across processes under DDP (torchmetrics).
        self.metric = VGRecallMetric(self.task.value, self.eval_ks, num_predicates=vocab.num_predicates)
        self.loss_fn = build_component(self.loss_spec, injected) if self.loss_spec else nn.CrossEntropyLoss()

    def setup(self, stage: str) -> None:
        if self.model is not None:
            return
        dm = self.trainer.datamodule if self.trainer is not None else None
        if dm is None or getattr(dm, "vocab", None) is None:
            raise RuntimeError("SGGModule needs a data module with a vocabulary (or a checkpoint that embeds one)")
        train_graphs = dm.train_graphs() if hasattr(dm, "train_graphs") else None
        self.build(dm.vocab, train_graphs)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        import lightning
        import torchvision

        from tailgraph import __version__

        checkpoint["tailgraph"] = {
            "vocab": self.vocab.to_dict() if self.vocab else None,
            "versions": {
                "tailgraph": str(__version__), "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
                "lightning": str(lightning.__version__), "python": platform.python_version(),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        info = checkpoint.get("tailgraph") or {}
        if self.model is None and info.get("vocab"):
            self.build(Vocabulary.from_dict(info["vocab"]))

    # ------------------------------------------------------------------ forward / loss
    def forward(self, batch: GraphBatch) -> RelationOutput:
        assert self.model is not None, "call build() or setup() first"
        return self.model(batch)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, GraphBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def sample_pairs(self, batch: GraphBatch) -> GraphBatch:
        """Training pairs per image: every annotated pair plus at most ``bg_per_image`` random
        unannotated ones (all pairs when ``bg_per_image`` is ``None``)."""
        if self.bg_per_image is None:
            return batch
        chosen = []
        for g in batch.graphs:
            n = g.num_boxes
            device = g.boxes.device
            related = torch.zeros((n, n), dtype=torch.bool, device=device)
            if g.num_relations:
                related[g.relations[:, 0], g.relations[:, 1]] = True
            fg = related.nonzero()
            free = ~related
            free.fill_diagonal_(False)
            bg = free.nonzero()
            if bg.shape[0] > self.bg_per_image:
                bg = bg[torch.randperm(bg.shape[0], device=device)[: self.bg_per_image]]
            chosen.append(torch.cat([fg, bg]))
        return batch.with_pairs(chosen)

    def compute_loss(self, batch: GraphBatch, out: RelationOutput) -> dict[str, torch.Tensor]:
        labels, _ = pair_targets(batch.graphs, out.pairs)
        losses = {}
        if labels.numel():
            losses["loss_rel"] = self.loss_fn(out.predicate_logits, labels)
        else:
            losses["loss_rel"] = out.predicate_logits.sum() * 0.0
        if "pair_score_logits" in out.extras:  # VCTree: the tree scores learn "is this pair related"
            losses["loss_pair_score"] = F.binary_cross_entropy_with_logits(out.extras["pair_score_logits"], (labels > 0).float())
        if out.obj_logits is not None and self.task is not Task.PREDCLS:
            gt = torch.cat([g.labels for g in batch.graphs])
            losses["loss_obj"] = F.cross_entropy(out.obj_logits, gt)
        return losses

    def training_step(self, batch: GraphBatch, batch_idx: int) -> torch.Tensor:
        batch = self.sample_pairs(batch)
        out = self(batch)
        losses = self.compute_loss(batch, out)
        total = sum(losses.values())
        for k, v in losses.items():
            self.log(f"train/{k}", v, batch_size=len(batch), prog_bar=False)
        self.log("train/loss", total, batch_size=len(batch), prog_bar=True)
        return total

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: GraphBatch) -> None:
        out = self(batch)
        preds = self.model.to_predictions(batch, out)
        self.metric.update([g.to("cpu") for g in batch.graphs], preds)

    def _eval_epoch_end(self, prefix: str) -> None:
        metrics = self.metric.compute()
        self.metric.reset()
        if not metrics.get("num_images"):
            return
        self.last_metrics = metrics
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self.log(f"{prefix}/{k}", float(v), prog_bar=k in ("R@50", "mR@50"), sync_dist=False)

    def on_validation_epoch_start(self) -> None:
        self.metric.reset()

    def validation_step(self, batch: GraphBatch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_start(self) -> None:
        self.metric.reset()

    def test_step(self, batch: GraphBatch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: GraphBatch, batch_idx: int) -> list[Predictions]:
        out = self(batch)
        return self.model.to_predictions(batch, out)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.max_epochs_hint and self.trainer is not None and self.trainer.estimated_stepping_batches:
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=self.lr, total_steps=int(self.trainer.estimated_stepping_batches), pct_start=0.1
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt
