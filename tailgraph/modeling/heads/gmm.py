"""TEMPURA's Gaussian-mixture predicate head (``rel_head=gmm``), methods.md §0."""

from __future__ import annotations

import torch
from torch import nn

from tailgraph.modeling.types import HeadOutput, PredicateHead

__all__ = ["GMMHead", "mixture_activation", "probs_to_logits"]


def mixture_activation(z: torch.Tensor, act: str) -> torch.Tensor:
    """``softmax`` over the last (class) dim or element-wise ``sigmoid``."""
    if act == "softmax":
        return torch.softmax(z, dim=-1)
    if act == "sigmoid":
        return torch.sigmoid(z)
    raise ValueError(f"act must be 'softmax' or 'sigmoid', got {act!r}")


def probs_to_logits(p: torch.Tensor, act: str, eps: float = 1e-12) -> torch.Tensor:
    """Logits whose standard loss equals the mixture's loss on ``p``.

    ``softmax``: ``log(p + eps)`` — cross-entropy on these is TEMPURA's NLL on ``log(p+1e-12)``
    (``p`` sums to 1, so the log-softmax is the identity). ``sigmoid``: ``logit(p)``, so
    ``BCEWithLogits`` equals BCE on ``p``.
    """
    if act == "softmax":
        return torch.log(p + eps)
    p = p.clamp(eps, 1 - 1e-7)
    return torch.log(p) - torch.log1p(-p)


class GMMHead(PredicateHead):
    """K-component Gaussian mixture over predicate logits (TEMPURA).

    Per component k, three linear maps of the pair feature ``h``: mean logits ``μ_k`` (C),
    mixing logit ``a_k`` (1) and variance ``v_k = sigmoid(W h)`` (C); ``π = softmax_k(a)``.
    Training: ``z_k = μ_k + sqrt(v_k)·ε`` (one sample per component) and
    ``p = Σ_k π_k act(z_k)``; evaluation: ``p = Σ_k π_k act(μ_k)``.

    Args:
        in_dim: pair feature size ``D``.
        num_predicates: classes ``C``.
        num_components: ``K`` (TEMPURA: 6 for PredCls, 4 otherwise).
        act: ``softmax`` (single-label: attention, objects) or ``sigmoid`` (multi-label).
        test_samples: ``0`` (TEMPURA, the released ``GMM_head``): evaluation at ``μ``;
            ``S > 0``: Monte-Carlo evaluation, ``p`` averaged over ``S`` draws of the training
            form (a diagnostic: what sampling at test would change).

    Shapes:
        ``forward(x [P, D], eps [K, P, C] | None) -> HeadOutput`` with ``probs`` ``[P, C]``
        (the mixture ``p``), ``logits`` = :func:`probs_to_logits` of it, and extras
        ``aleatoric`` ``[P, C]`` = Σ_k π_k v_k, ``epistemic`` ``[P, C]`` = Σ_k π_k (act(μ_k) − p̄)²
        with ``p̄ = Σ_k π_k act(μ_k)``, ``pi`` ``[P, K]``, ``mu`` / ``var`` ``[K, P, C]``.
    """

    def __init__(
        self,
        in_dim: int,
        num_predicates: int,
        num_components: int = 4,
        act: str = "softmax",
        test_samples: int = 0,
    ) -> None:
        super().__init__()
        mixture_activation(torch.zeros(1), act)  # validates act
        if isinstance(test_samples, bool) or not isinstance(test_samples, int) or test_samples < 0:
            raise ValueError(f"test_samples must be a non-negative integer, got {test_samples!r}")
        self.k, self.c, self.act = num_components, num_predicates, act
        self.test_samples = test_samples
        self.mean = nn.Linear(in_dim, num_components * num_predicates)
        self.mix = nn.Linear(in_dim, num_components)
        self.var = nn.Linear(in_dim, num_components * num_predicates)

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> HeadOutput:
        p_ = x.shape[0]
        mu = self.mean(x).view(p_, self.k, self.c).transpose(0, 1)  # [K, P, C]
        var = torch.sigmoid(self.var(x)).view(p_, self.k, self.c).transpose(0, 1)
        pi = torch.softmax(self.mix(x), dim=-1)  # [P, K]
        w = pi.t().unsqueeze(-1)  # [K, P, 1]
        act_mu = mixture_activation(mu, self.act)
        p_bar = (w * act_mu).sum(0)
        if self.training:
            noise = torch.randn_like(mu) if eps is None else eps
            probs = (w * mixture_activation(mu + var.sqrt() * noise, self.act)).sum(0)
        elif self.test_samples:
            draws = [
                (w * mixture_activation(mu + var.sqrt() * torch.randn_like(mu), self.act)).sum(0)
                for _ in range(self.test_samples)
            ]
            probs = torch.stack(draws).mean(0)
        else:
            probs = p_bar
        aleatoric = (w * var).sum(0)
        epistemic = (w * (act_mu - p_bar.unsqueeze(0)) ** 2).sum(0)
        return HeadOutput(
            logits=probs_to_logits(probs, self.act),
            probs=probs,
            extras={"aleatoric": aleatoric, "epistemic": epistemic, "pi": pi, "mu": mu, "var": var},
        )
