"""The method seam: a :class:`Method` owns the training step's losses and its schedules.

The engine (:class:`tailgraph.engine.module.SGGModule`) builds the model and the protocol,
chooses the training pairs, and calls the method's four hooks::

    setup(model, vocab, train_stats, protocol=...)   once, before training / testing
    training_step(model, batch) -> {name: loss}      the engine sums the terms
    on_train_epoch_start(model, epoch)               schedules (phases, freezing, weights)
    on_after_optimizer_step(model, step)             running statistics

A method's learnable parts are sub-modules and its running statistics buffers, so they are
optimised, checkpointed and restored with the model. Schedule values are derived from the
epoch / step numbers the hooks receive, so a resumed run continues exactly.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.modeling.types import SegmentRelationModel
from tailgraph.structures import GraphBatch, Task
from tailgraph.vocab import Vocabulary

if TYPE_CHECKING:  # pragma: no cover
    from tailgraph.modeling.relation_model import RelationModel, RelationOutput
    from tailgraph.protocols import Protocol, Targets

__all__ = ["TrainStats", "Method", "Supervised", "group_losses"]


@dataclass
class TrainStats:
    """Statistics of the training split that methods and models are built from.

    Attributes:
        predicate_counts: ``[R]`` relation count per predicate (background 0).
        object_counts: ``[C]`` box count per class.
        pair_counts: ``[C, C, R]`` (subject class, object class, predicate) counts, or ``None``.
        triplets: the set of ``(subject class, object class, predicate)`` seen in training.
        num_samples: training images / frames.
    """

    predicate_counts: list[int]
    object_counts: list[int] = field(default_factory=list)
    pair_counts: torch.Tensor | None = None
    triplets: set[tuple[int, int, int]] = field(default_factory=set)
    num_samples: int = 0

    @classmethod
    def from_graphs(cls, graphs: Any, vocab: Vocabulary) -> TrainStats:
        """Count ``graphs`` (scene graphs or frames) over ``vocab``."""
        from tailgraph.modeling.freq import pair_predicate_counts

        graphs = list(graphs)
        pc = torch.zeros(vocab.num_predicates, dtype=torch.int64)
        oc = torch.zeros(vocab.num_classes, dtype=torch.int64)
        triplets: set[tuple[int, int, int]] = set()
        for g in graphs:
            oc += torch.bincount(g.labels, minlength=vocab.num_classes)[: vocab.num_classes]
            if g.num_relations:
                pc += torch.bincount(g.relations[:, 2], minlength=vocab.num_predicates)[
                    : vocab.num_predicates
                ]
                lab = g.labels
                for s, o, p in g.relations.tolist():
                    triplets.add((int(lab[s]), int(lab[o]), int(p)))
        if vocab.predicate_background:
            pc[0] = 0
        return cls(
            pc.tolist(),
            oc.tolist(),
            pair_predicate_counts(graphs, vocab.num_classes, vocab.num_predicates),
            triplets,
            len(graphs),
        )


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


def _memories(model: Any, out: Any) -> list[tuple[nn.Module, torch.Tensor]]:
    """``(memory bank, pre-fusion features)`` of a forward pass: a context's one ``memory``
    with ``extras["memory_input"]``, or its ``memories`` (one per branch) with
    ``extras["memory_inputs"]``."""
    ctx = getattr(model, "context", None)
    if getattr(ctx, "memories", None) is not None and "memory_inputs" in out.extras:
        return list(zip(ctx.memories, out.extras["memory_inputs"]))
    memory = getattr(ctx, "memory", None)
    if memory is not None and "memory_input" in out.extras:
        return [(memory, out.extras["memory_input"])]
    return []


def _memory_features(model: Any, batch: Any, out: Any) -> list[tuple[nn.Module, torch.Tensor]]:
    """What each memory bank stores from a training batch: the training forward's pre-fusion
    features, or (``feature_pass``) those of a no-grad pass over the same batch with every
    module in evaluation mode (no dropout; batch-norm statistics untouched), the training
    modes restored after."""
    mems = _memories(model, out)
    if not any(m.feature_pass for m, _ in mems):
        return mems
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            again = dict(_memories(model, model(batch)))
    finally:
        for m, mode in modes:
            m.training = mode
    out_list = []
    for m, feats in mems:
        f = again.get(m, feats) if m.feature_pass else feats
        if f.shape != feats.shape:
            raise RuntimeError("the memory pass saw other pairs than the training forward")
        out_list.append((m, f))
    return out_list


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
    def training_step(self, model: RelationModel, batch: GraphBatch) -> dict[str, torch.Tensor]:
        """Named loss terms of one batch (the engine sums them)."""

    def on_train_epoch_start(self, model: RelationModel, epoch: int) -> None:
        """Epoch schedules (derived from ``epoch`` so resume is exact)."""

    def on_after_optimizer_step(self, model: RelationModel, step: int) -> None:
        """Running statistics after each optimiser step."""

    def reset_optimizer(self) -> bool:
        """Asked by the engine after ``on_train_epoch_start``: ``True`` clears the optimiser's
        state (momenta) before the epoch, e.g. when a staged method starts a fresh model."""
        return False

    # shared helpers ---------------------------------------------------------------
    def auxiliary_losses(
        self, model: RelationModel, batch: GraphBatch, out: RelationOutput, targets: Targets
    ) -> dict[str, torch.Tensor]:
        """Losses every method keeps: the object classifier's CE (SGCls), a context model's
        pair-relatedness score (VCTree) and the head's regulariser (GMM-Plus)."""
        losses: dict[str, torch.Tensor] = {}
        if model.training:
            # TEMPURA's memory bank(s): this epoch's pre-fusion features with their labels
            for memory, feats in _memory_features(model, batch, out):
                memory.accumulate(feats, targets.multi_hot)
        if "pair_score_logits" in out.extras:
            losses["loss_pair_score"] = F.binary_cross_entropy_with_logits(
                out.extras["pair_score_logits"], targets.related.float()
            )
        redetect = (
            model.task is Task.SGDET
            and "obj_features" in out.extras
            and all("matched_labels" in g.extras for g in batch.graphs)
        )
        if out.obj_logits is not None and (model.task is Task.SGCLS or redetect):
            gt = (
                torch.cat([g.extras["matched_labels"] for g in batch.graphs]).to(
                    out.obj_logits.device
                )
                if redetect  # SGDet: the detections' matched GT labels, 0 = background
                else torch.cat([g.labels for g in batch.graphs])
            )
            weight = None
            eos = getattr(self, "obj_eos_coef", None)
            if eos is not None:  # TEMPURA: the background class weighted by eos_coef
                weight = torch.ones(out.obj_logits.shape[1], device=out.obj_logits.device)
                weight[0] = eos
            losses["loss_obj"] = F.cross_entropy(out.obj_logits, gt, weight=weight)
            if "obj_pre_logits" in out.extras:  # the label distribution TEMPURA's classifier embeds
                losses["loss_obj_pre"] = F.cross_entropy(out.extras["obj_pre_logits"], gt)
            con = getattr(self, "obj_con_weight", None)
            if con and "obj_features" in out.extras:  # TEMPURA's euc_con
                from tailgraph.losses import euclidean_contrastive_loss

                losses["loss_obj_con"] = con * euclidean_contrastive_loss(
                    out.extras["obj_features"], gt
                )
        if out.head_output is not None and model.head is not None:
            reg = model.head.regularizer(out.head_output)
            if reg is not None:
                losses["loss_head_reg"] = reg
        return losses


class Supervised(Method):
    """Plain supervised training: the protocol's per-type losses (softmax CE for single-label
    types, BCE for multi-label types) plus the auxiliary losses.

    Args:
        loss: optional spec of the single-label loss (``class_path`` + ``init_args``), called as
            ``loss(logits [P, G], labels [P])``; its constructor may take ``predicate_counts``
            (injected). Default: cross-entropy.
        head_reg_weight: weight of the head's regulariser (GMM-Plus variance floor).
        obj_eos_coef: weight of the background class in the object classifier's cross-entropy
            (TEMPURA's ``eos_coef``); ``None`` = unweighted.
        obj_con_weight: weight of TEMPURA's ``euc_con`` contrastive loss on the object
            classifier's (tracked) features (``-obj_con_loss euc_con -lambda_con``; needs
            :class:`tailgraph.modeling.object_classifier.TempuraObjectClassifier`); 0 = off.
    """

    def __init__(
        self,
        loss: dict | None = None,
        head_reg_weight: float = 1.0,
        obj_eos_coef: float | None = None,
        obj_con_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.loss_spec = loss
        self.head_reg_weight = head_reg_weight
        self.obj_eos_coef = obj_eos_coef
        self.obj_con_weight = obj_con_weight
        self.loss_fn: nn.Module | None = None

    def setup(self, model, vocab, train_stats, protocol=None) -> None:
        super().setup(model, vocab, train_stats, protocol)
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

    def training_step(self, model, batch):
        if self.protocol is None:
            raise RuntimeError("Method.setup(...) must run before training_step")
        if isinstance(model, SegmentRelationModel):  # VidVRD-II: the model's own (focal) losses
            return model.losses(batch, model(batch))
        out = model(batch)
        targets = self.protocol.targets(batch.graphs, out.pairs)
        losses = group_losses(out.predicate_logits, targets, self.protocol, self.loss_fn)
        aux = self.auxiliary_losses(model, batch, out, targets)
        if "loss_head_reg" in aux:
            aux["loss_head_reg"] = self.head_reg_weight * aux["loss_head_reg"]
        losses.update(aux)
        return losses
