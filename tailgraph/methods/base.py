"""The method seam: a :class:`Method` owns the training step's losses and its schedules.

The engine (:class:`tailgraph.engine.module.SGGModule`) builds the model and the protocol,
chooses the training pairs, and calls the method's hooks::

    setup(model, vocab, train_stats, protocol=...)   once, before training / testing
    training_step(model, batch) -> {name: loss}      the engine sums the terms
    on_train_epoch_start(model, epoch)               schedules (phases, freezing, weights)
    on_train_epoch_end(model, epoch)                 refreshes (TEMPURA's memory bank)
    on_after_optimizer_step(model, step)             running statistics
    reset_optimizer() -> bool                        after on_train_epoch_start: clear momenta

A method's learnable parts are sub-modules and its running statistics buffers, so they are
optimised, checkpointed and restored with the model. Schedule values are derived from the
epoch / step numbers the hooks receive, so a resumed run continues exactly.

:class:`Supervised` is the default method: the protocol's per-type losses plus the terms that
the model's own parts define (the object classifier's cross-entropy in SGCls, a context
model's pair-relatedness score, the head's regulariser). Methods that add to it subclass or
compose it (:class:`tailgraph.methods.tempura.Tempura`, and through it BMP and FReMuRe).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.modeling.memory import RelationMemory
from tailgraph.modeling.types import SegmentRelationModel
from tailgraph.stats import TrainStats
from tailgraph.structures import GraphBatch, Task
from tailgraph.vocab import Vocabulary

if TYPE_CHECKING:  # pragma: no cover
    from tailgraph.modeling.relation_model import RelationModel, RelationOutput
    from tailgraph.protocols import Protocol, Targets

__all__ = [
    "TrainStats",
    "Method",
    "Supervised",
    "group_losses",
    "margin_group_losses",
    "model_losses",
    "multilabel_margin",
]

MULTILABEL_LOSSES = ("bce", "margin")


def group_losses(
    logits: torch.Tensor, targets: Targets, protocol: Protocol, loss_fn: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """The plain per-type losses: softmax cross-entropy on single-label groups (``loss_fn``
    when given, called as ``loss_fn(logits [P, G], labels [P])``), binary cross-entropy with
    logits on multi-label groups. Keys ``loss_<group>``."""
    out: dict[str, torch.Tensor] = {}
    for group in protocol.groups:
        cols = torch.tensor(group.columns, device=logits.device)
        z = logits.index_select(1, cols)
        if group.single_label:
            y = targets.labels[group.name]
            valid = y >= 0
            if not bool(valid.any()):
                out[f"loss_{group.name}"] = z.sum() * 0.0
            elif loss_fn is not None:
                out[f"loss_{group.name}"] = loss_fn(z[valid], y[valid])
            else:
                out[f"loss_{group.name}"] = F.cross_entropy(z[valid], y[valid])
        else:
            y = targets.multi_hot.index_select(1, cols)
            out[f"loss_{group.name}"] = (
                F.binary_cross_entropy_with_logits(z, y) if z.numel() else z.sum() * 0.0
            )
    return out


def multilabel_margin(scores: torch.Tensor, multi_hot: torch.Tensor) -> torch.Tensor:
    """PyTorch's multi-label margin loss with multi-hot targets (rows without a positive
    contribute 0)."""
    if scores.numel() == 0:
        return scores.sum() * 0.0
    y = multi_hot > 0
    c = y.shape[1]
    # target format: the positive class indices first, then -1
    order = torch.argsort((~y).to(torch.int8), dim=1, stable=True)
    target = torch.where(
        torch.arange(c, device=y.device).unsqueeze(0) < y.sum(1, keepdim=True), order, -1
    )
    return F.multilabel_margin_loss(scores, target)


def margin_group_losses(probs: torch.Tensor, targets: Targets, protocol: Protocol) -> dict:
    """STTran's loss of the multi-label groups: :func:`multilabel_margin` on the predicted
    probabilities (the released STTran's ``MultiLabelMarginLoss`` on its sigmoid outputs).
    Unlike the column-averaged BCE, every (positive, negative) pair of a row that violates
    the margin contributes ``1 / C``, so a row's gradient does not shrink with the group's
    size. Keys ``loss_<group>`` of the multi-label groups only."""
    out: dict[str, torch.Tensor] = {}
    for group in protocol.groups:
        if group.single_label:
            continue
        cols = torch.tensor(group.columns, device=probs.device)
        out[f"loss_{group.name}"] = multilabel_margin(
            probs.index_select(1, cols), targets.multi_hot.index_select(1, cols)
        )
    return out


def model_losses(
    model: RelationModel,
    batch: GraphBatch,
    out: RelationOutput,
    targets: Targets,
    head_reg_weight: float = 1.0,
    object_losses: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The terms a model's own parts define: the object classifier's cross-entropy in SGCls
    (``loss_obj``; ``object_losses`` replaces it when given), a context model's
    pair-relatedness score (VCTree, ``loss_pair_score``) and the head's regulariser (GMM-Plus,
    ``loss_head_reg``, weighted by ``head_reg_weight``)."""
    if object_losses is None:
        object_losses = {}
        if out.obj_logits is not None and model.task is Task.SGCLS:
            gt = torch.cat([g.labels for g in batch.graphs]).to(out.obj_logits.device)
            object_losses["loss_obj"] = F.cross_entropy(out.obj_logits, gt)
    losses = dict(object_losses)
    if out.pair_score_logits is not None:
        losses["loss_pair_score"] = F.binary_cross_entropy_with_logits(
            out.pair_score_logits, targets.related.float()
        )
    if out.head_output is not None and model.head is not None:
        reg = model.head.regularizer(out.head_output)  # type: ignore[operator]
        if reg is not None:
            losses["loss_head_reg"] = head_reg_weight * reg
    return losses


class Method(nn.Module, metaclass=abc.ABCMeta):
    """Base class of the training methods (the default is :class:`Supervised`); a method
    defines at least :meth:`training_step`."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Protocol | None = None
        self.vocab: Vocabulary | None = None

    def setup(
        self,
        model: RelationModel,
        vocab: Vocabulary,
        train_stats: TrainStats | None,
        protocol: Protocol | None = None,
    ) -> None:
        """Build vocabulary-shaped buffers, teachers and counts. Called once by the engine
        (also when restoring from a checkpoint, before the state dict is loaded)."""
        self.vocab = vocab
        self.protocol = protocol

    @abc.abstractmethod
    def training_step(self, model: Any, batch: Any) -> dict[str, torch.Tensor]:
        """Named loss terms of one batch (a :class:`GraphBatch`, or a :class:`SegmentBatch` for
        a segment-level model; the engine sums them)."""

    def on_train_epoch_start(self, model: RelationModel, epoch: int) -> None:
        """Epoch schedules (derived from ``epoch`` so resume is exact)."""
        return None

    def on_train_epoch_end(self, model: RelationModel, epoch: int) -> None:
        """Refreshes at the end of a training epoch (TEMPURA's memory bank)."""
        return None

    def on_after_optimizer_step(self, model: RelationModel, step: int) -> None:
        """Running statistics after each optimiser step."""
        return None

    def reset_optimizer(self) -> bool:
        """Asked by the engine after ``on_train_epoch_start``: ``True`` clears the optimiser's
        state (momenta) before the epoch, e.g. when a staged method starts a fresh model."""
        return False

    def uses_pixels(self, epoch: int) -> bool:
        """Whether :meth:`training_step` reads the batches' pixels in epoch ``epoch``. The
        engine asks before each epoch; ``False`` lets the data module skip decoding them (the
        batches then carry their graphs only), so the step must work on either kind of batch
        (a run's first batch, fetched before its first epoch starts, always has pixels)."""
        return True


class Supervised(Method):
    """Plain supervised training: the protocol's per-type losses (softmax CE for single-label
    types, BCE for multi-label types) plus the model's own terms (:meth:`model_losses`).

    Args:
        loss: optional spec of the single-label loss (``class_path`` + ``init_args``), called as
            ``loss(logits [P, G], labels [P])``; its constructor may take ``predicate_counts``
            (injected). Default: cross-entropy.
        head_reg_weight: weight of the head's regulariser (GMM-Plus variance floor).
        multilabel_loss: the multi-label groups' loss: ``bce`` — binary cross-entropy averaged
            over the group's columns (TEMPURA, methods.md §0) — or ``margin`` — the multi-label
            margin loss on the probabilities (:func:`margin_group_losses`; the released
            STTran's default).
        type_weights: ``{relation type: weight}`` multiplying that type's predicate loss
            (default 1 each; e.g. ``{contacting: 17}`` undoes the column average of a 17-way
            multi-label BCE against a single-label type's cross-entropy).

    A model with a memory bank (TEMPURA) trains with :class:`tailgraph.methods.tempura.Tempura`,
    which fills it; with this method the bank would stay empty, so :meth:`setup` refuses it.
    """

    fills_memory = False  # Tempura (and the methods built on it) fill the memory banks

    def __init__(
        self,
        loss: dict | None = None,
        head_reg_weight: float = 1.0,
        multilabel_loss: str = "bce",
        type_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        if multilabel_loss not in MULTILABEL_LOSSES:
            raise ValueError(f"multilabel_loss must be 'bce' or 'margin', got {multilabel_loss!r}")
        self.multilabel_loss = multilabel_loss
        self.type_weights = {str(k): float(v) for k, v in dict(type_weights or {}).items()}
        bad = [k for k, v in self.type_weights.items() if not (v >= 0 and v != float("inf"))]
        if bad:
            raise ValueError(f"type_weights.{bad[0]} must be a finite number >= 0")
        self.loss_spec = loss
        self.head_reg_weight = head_reg_weight
        self.loss_fn: nn.Module | None = None

    def setup(self, model, vocab, train_stats, protocol=None) -> None:
        super().setup(model, vocab, train_stats, protocol)
        if not self.fills_memory and any(isinstance(m, RelationMemory) for m in model.modules()):
            raise ValueError(
                f"{type(self).__name__} leaves the context's memory bank empty: train a model "
                "with a memory bank with tailgraph.methods.tempura.Tempura (or a method built "
                "on it)"
            )
        if self.loss_spec is not None and self.loss_fn is None:
            from tailgraph.components import build_component

            counts = (
                train_stats.predicate_counts
                if train_stats is not None
                else list(vocab.predicate_counts)
            )
            self.loss_fn = build_component(
                self.loss_spec, {"predicate_counts": counts}, kind=nn.Module
            )

    def object_targets(self, model: RelationModel, batch: GraphBatch) -> torch.Tensor | None:
        """The object classifier's targets: the GT labels in SGCls, ``None`` (no object loss)
        otherwise."""
        if model.task is Task.SGCLS:
            return torch.cat([g.labels for g in batch.graphs])
        return None

    def object_losses(
        self, model: RelationModel, batch: GraphBatch, out: RelationOutput
    ) -> dict[str, torch.Tensor]:
        """The object classifier's cross-entropy (``loss_obj``) where it has targets."""
        if out.obj_logits is None:
            return {}
        gt = self.object_targets(model, batch)
        if gt is None:
            return {}
        return {"loss_obj": F.cross_entropy(out.obj_logits, gt.to(out.obj_logits.device))}

    def model_losses(
        self, model: RelationModel, batch: GraphBatch, out: RelationOutput, targets: Targets
    ) -> dict[str, torch.Tensor]:
        """:func:`model_losses` with this method's object losses and head weight."""
        return model_losses(
            model,
            batch,
            out,
            targets,
            self.head_reg_weight,
            object_losses=self.object_losses(model, batch, out),
        )

    def predicate_losses(
        self, model: RelationModel, out: RelationOutput, targets: Targets
    ) -> dict[str, torch.Tensor]:
        """The protocol's per-type predicate losses (:func:`group_losses`)."""
        if self.protocol is None:
            raise RuntimeError("Method.setup(...) must run before training")
        losses = group_losses(out.predicate_logits, targets, self.protocol, self.loss_fn)
        if self.multilabel_loss == "margin":
            if out.predicate_probs is None:
                raise RuntimeError("multilabel_loss 'margin' needs the head's probabilities")
            losses.update(margin_group_losses(out.predicate_probs, targets, self.protocol))
        if self.type_weights:
            names = {g.name for g in self.protocol.groups}
            unknown = sorted(set(self.type_weights) - names)
            if unknown:
                raise ValueError(
                    f"type_weights names unknown relation types {unknown}; the protocol has "
                    f"{sorted(names)}"
                )
            for name, w in self.type_weights.items():
                losses[f"loss_{name}"] = w * losses[f"loss_{name}"]
        return losses

    def after_forward(
        self, model: RelationModel, batch: GraphBatch, out: RelationOutput, targets: Targets
    ) -> None:
        """Called with each training forward's output (TEMPURA fills its memory here)."""
        return None

    def training_step(self, model, batch):
        if self.protocol is None:
            raise RuntimeError("Method.setup(...) must run before training_step")
        if isinstance(model, SegmentRelationModel):  # VidVRD-II: the model's own (focal) losses
            return model.losses(batch, model(batch))
        out = model(batch)
        targets = self.protocol.targets(batch.graphs, out.pairs)
        self.after_forward(model, batch, out, targets)
        losses = self.predicate_losses(model, out, targets)
        losses.update(self.model_losses(model, batch, out, targets))
        return losses
