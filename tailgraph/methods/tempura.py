"""TEMPURA (methods.md §0) as a training method on an STTran-style model.

The model side — the memory bank (:class:`tailgraph.modeling.memory.RelationMemory`, the
``memory`` option of the context), the GMM relation heads and TEMPURA's object classifier
(:class:`tailgraph.modeling.object_classifier.TempuraObjectClassifier`) — is built from the
recipe like any model. What happens *during training* is this method's:

* **filling the memory**: every training batch's pre-fusion relation features are accumulated
  per predicate with the batch's labels — by default the features of a no-grad pass in
  evaluation mode over the same batch (``feature_pass``: no dropout, batch-norm statistics
  untouched, the training modes restored after), else the training forward's own, detached;
* **refreshing it** at each training epoch's end (``M[c]`` = the epoch's class means);
* **the object losses**: cross-entropy with the background class weighted by ``eos_coef``, the
  cross-entropy of the label distribution the classifier embeds (``loss_obj_pre``), the
  ``euc_con`` contrastive loss on the (tracked) object features, and in SGDet the
  re-classification of detections against their matched ground-truth labels.

BMP (:mod:`tailgraph.methods.bmp`) trains its first phase with this method and FReMuRe
(:mod:`tailgraph.methods.fremure`) subclasses it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.losses import euclidean_contrastive_loss
from tailgraph.methods.base import Supervised
from tailgraph.modeling.heads.typed import TypedHead
from tailgraph.modeling.memory import RelationMemory
from tailgraph.structures import Task

__all__ = ["Tempura", "memory_features", "memory_updates", "predicate_uncertainty"]

_UNC = ("aleatoric", "epistemic")


def predicate_uncertainty(head: nn.Module | None, head_output) -> dict[str, torch.Tensor] | None:
    """The GMM head's per-class uncertainties in vocabulary columns: ``{"aleatoric",
    "epistemic": [P, R]}`` (columns of a relation type without a GMM head hold 0), or ``None``
    when no head reports them."""
    if head_output is None:
        return None
    ex = head_output.extras
    if all(
        isinstance(ex.get(k), torch.Tensor) and ex[k].shape == head_output.logits.shape
        for k in _UNC
    ):
        return {k: ex[k].detach() for k in _UNC}
    if isinstance(head, TypedHead):
        found = False
        result = {k: torch.zeros_like(head_output.logits) for k in _UNC}
        for i, name in enumerate(head.names):
            sub = ex.get(name)
            if sub is None or not all(
                isinstance(sub.extras.get(k), torch.Tensor)
                and sub.extras[k].shape == sub.logits.shape
                for k in _UNC
            ):
                continue  # no per-class uncertainties (e.g. the Bayesian head's per-pair one)
            found = True
            cols = head._cols(i)
            for k in _UNC:
                result[k] = result[k].index_copy(1, cols, sub.extras[k].detach())
        return result if found else None
    return None


def memory_updates(
    model: nn.Module, batch, out
) -> list[tuple[RelationMemory, torch.Tensor, dict[str, torch.Tensor] | None]]:
    """What each memory bank stores from a training batch: ``[(bank, features,
    uncertainties)]``.

    The training forward's pre-fusion features (``out.memory_writes``) and its head's
    uncertainties, or, for a bank with ``feature_pass``, those of a no-grad pass over the same
    batch with every module in evaluation mode (no dropout; batch-norm statistics untouched;
    the GMM head at ``μ`` as TEMPURA's uncertainty pass), the training modes restored after.
    Uncertainties (:func:`predicate_uncertainty`) are ``None`` without a GMM head.
    """
    head = getattr(model, "head", None)
    writes = list(out.memory_writes)
    wanted = any(m.needs_uncertainty for m, _ in writes)
    own = predicate_uncertainty(head, getattr(out, "head_output", None)) if wanted else None
    if not any(m.feature_pass for m, _ in writes):
        return [(m, f, own) for m, f in writes]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            out2 = model(batch)
            again = {id(m): f for m, f in out2.memory_writes}
            unc2 = (
                predicate_uncertainty(head, getattr(out2, "head_output", None)) if wanted else None
            )
    finally:
        for m, mode in modes:
            m.training = mode
    result = []
    for m, feats in writes:
        f = again.get(id(m), feats) if m.feature_pass else feats
        if f.shape != feats.shape:
            raise RuntimeError("the memory pass saw other pairs than the training forward")
        result.append((m, f, unc2 if m.feature_pass else own))
    return result


def memory_features(model: nn.Module, batch, out) -> list[tuple[RelationMemory, torch.Tensor]]:
    """:func:`memory_updates` without the uncertainties: ``[(bank, features)]``."""
    return [(m, f) for m, f, _ in memory_updates(model, batch, out)]


class Tempura(Supervised):
    """TEMPURA's training: :class:`Supervised`'s losses, the memory bank filled from every
    training batch and refreshed at each epoch's end, and TEMPURA's object losses.

    Args:
        loss, head_reg_weight, multilabel_loss, type_weights: as :class:`Supervised`.
        obj_eos_coef: weight of the background class in the object classifier's cross-entropy
            (TEMPURA's ``-eos_coef``); ``None`` = unweighted.
        obj_con_weight: weight of the ``euc_con`` contrastive loss on the object classifier's
            (tracked) features (``-obj_con_loss euc_con -lambda_con``; needs
            :class:`tailgraph.modeling.object_classifier.TempuraObjectClassifier`); 0 = off.
    """

    fills_memory = True

    def __init__(
        self,
        loss: dict | None = None,
        head_reg_weight: float = 1.0,
        obj_eos_coef: float | None = None,
        obj_con_weight: float = 0.0,
        multilabel_loss: str = "bce",
        type_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__(
            loss=loss,
            head_reg_weight=head_reg_weight,
            multilabel_loss=multilabel_loss,
            type_weights=type_weights,
        )
        self.obj_eos_coef = obj_eos_coef
        self.obj_con_weight = obj_con_weight

    # ------------------------------------------------------------------ the memory
    def after_forward(self, model, batch, out, targets) -> None:
        if model.training:
            for memory, feats, unc in memory_updates(model, batch, out):
                memory.accumulate(
                    feats, targets.multi_hot, unc if memory.needs_uncertainty else None
                )

    def on_train_epoch_end(self, model, epoch: int) -> None:
        for m in model.modules():  # this epoch's class means become the memory
            if isinstance(m, RelationMemory):
                m.end_epoch()

    # ------------------------------------------------------------------ the objects
    def object_targets(self, model, batch) -> torch.Tensor | None:
        """SGCls: the GT labels; SGDet with TEMPURA's classifier (which re-classifies the
        detections): each detection's matched GT label (0 = background)."""
        if model.task is Task.SGDET:
            if all("matched_labels" in g.extras for g in batch.graphs):
                return torch.cat([g.extras["matched_labels"] for g in batch.graphs])
            return None
        return super().object_targets(model, batch)

    def object_losses(self, model, batch, out) -> dict[str, torch.Tensor]:
        if out.obj_logits is None:
            return {}
        if model.task is Task.SGDET and out.obj_features is None:
            return {}  # the detector's own labels: nothing re-classifies them
        gt = self.object_targets(model, batch)
        if gt is None:
            return {}
        gt = gt.to(out.obj_logits.device)
        weight = None
        if self.obj_eos_coef is not None:  # the background class weighted by eos_coef
            weight = torch.ones(out.obj_logits.shape[1], device=out.obj_logits.device)
            weight[0] = self.obj_eos_coef
        losses = {"loss_obj": F.cross_entropy(out.obj_logits, gt, weight=weight)}
        if out.obj_pre_logits is not None:  # the label distribution the classifier embeds
            losses["loss_obj_pre"] = F.cross_entropy(out.obj_pre_logits, gt)
        if self.obj_con_weight and out.obj_features is not None:
            losses["loss_obj_con"] = self.obj_con_weight * euclidean_contrastive_loss(
                out.obj_features, gt
            )
        return losses
