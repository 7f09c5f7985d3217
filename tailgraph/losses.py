"""Losses shared by the methods: plain functions on tensors, and small modules for recipes.

* :func:`cross_entropy` / :func:`binary_cross_entropy` — the plain losses, with an ignore
  label and optional per-class weights;
* :func:`focal_loss` — softmax focal loss (Lin et al.): ``−(1 − p_t)^γ log p_t``;
* :func:`class_balanced_weights` — HML Eq. 4 / Cui et al.: ``W_B = (1 − β) / (1 − β^n)``;
* :class:`ClassBalancedCE` — cross-entropy with those weights, built from the training counts;
* :func:`euclidean_contrastive_loss` — TEMPURA's ``euc_con`` object loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "cross_entropy",
    "binary_cross_entropy",
    "focal_loss",
    "class_balanced_weights",
    "ClassBalancedCE",
    "FocalLoss",
    "euclidean_contrastive_loss",
]


def cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Softmax cross-entropy ``[P, C]`` × ``[P]`` → scalar (weighted mean as torch's
    ``F.cross_entropy``: ``Σ w_y ℓ / Σ w_y`` over the rows that are not ignored; 0 when none)."""
    valid = labels != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid], labels[valid], weight=weight)


def binary_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean binary cross-entropy with logits over all elements (``weight`` broadcasts per class)."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weight)


def focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | None = None,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Softmax focal loss, mean over the rows that are not ignored.

    ``ℓ = −α_y (1 − p_y)^γ log p_y`` with ``p = softmax(logits)``; ``γ = 0`` and ``α = None`` is
    cross-entropy.
    """
    valid = labels != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logp = F.log_softmax(logits[valid], dim=-1).gather(1, labels[valid, None]).squeeze(1)
    loss = -((1 - logp.exp()).clamp_min(0) ** gamma) * logp
    if alpha is not None:
        loss = loss * alpha.to(loss)[labels[valid]]
    return loss.mean()


def class_balanced_weights(counts: torch.Tensor | Sequence[int], beta: float) -> torch.Tensor:
    """Class-balanced weights ``(1 − β) / (1 − β^n)`` per class (HML Eq. 4), ``0`` where
    ``n == 0``; not normalised.

    Args:
        counts: ``[C]`` sample counts.
        beta: ``β`` in [0, 1); ``β → 1`` approaches inverse frequency, ``β = 0`` gives 1.
    Returns:
        ``[C]`` float32 weights.
    """
    n = torch.as_tensor(counts, dtype=torch.float64)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    w = torch.where(
        n > 0,
        (1.0 - beta)
        / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n)).clamp_min(1e-300),
        torch.zeros_like(n),
    )
    return w.float()


class ClassBalancedCE(nn.Module):
    """Cross-entropy with class-balanced weights from the training counts.

    Args:
        predicate_counts: ``[C]`` training counts (injected from the training split).
        beta: ``β`` of :func:`class_balanced_weights`.
        background_weight: weight of column 0 when the vocabulary has a background predicate
            (its count is not a relation count; 1 keeps it at the mean foreground weight).
        normalize: scale the foreground weights to mean 1 over the classes with samples
            (Cui et al.), so the loss keeps the scale of plain cross-entropy.

    Shapes:
        ``forward(logits [P, C], labels [P]) -> scalar``.
    """

    weight: torch.Tensor

    def __init__(
        self,
        predicate_counts: Sequence[int],
        beta: float = 0.999,
        background_weight: float = 1.0,
        normalize: bool = True,
        has_background: bool = True,
    ) -> None:
        super().__init__()
        w = class_balanced_weights(predicate_counts, beta)
        if normalize:
            fg = w[1:] if has_background else w
            pos = fg > 0
            if bool(pos.any()):
                fg = fg / fg[pos].mean()
            w = torch.cat([w[:1], fg]) if has_background else fg
        if has_background:
            w[0] = background_weight
        self.register_buffer("weight", w)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, labels, self.weight.to(logits.dtype))


class FocalLoss(nn.Module):
    """:func:`focal_loss` as a recipe component (``gamma``)."""

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, labels, self.gamma)


def euclidean_contrastive_loss(
    feats: torch.Tensor, labels: torch.Tensor, pos_margin: float = 0.0, neg_margin: float = 1.0
) -> torch.Tensor:
    """TEMPURA's ``obj_con_loss=euc_con``: a contrastive loss on L2-normalised features.

    Over all ordered pairs ``i ≠ j`` with Euclidean distance ``d_ij`` of the normalised
    features: positive pairs (same label) cost ``relu(d_ij − pos_margin)``, negative pairs
    ``relu(neg_margin − d_ij)``; the loss is the mean of the non-zero positive terms plus the
    mean of the non-zero negative terms (each 0 when there are none).

    Args:
        feats: ``[N, D]`` object features.
        labels: ``[N]`` class labels.
    """
    if feats.shape[0] < 2:
        return feats.sum() * 0.0
    z = F.normalize(feats, dim=1)
    d = torch.cdist(z, z).clamp_min(0)
    off = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    same = (labels[:, None] == labels[None, :]) & off
    diff = (labels[:, None] != labels[None, :]) & off
    total = feats.sum() * 0.0
    for terms in (F.relu(d[same] - pos_margin), F.relu(neg_margin - d[diff])):
        nz = terms > 0
        if bool(nz.any()):
            total = total + terms[nz].mean()
    return total
