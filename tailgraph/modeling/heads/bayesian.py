"""FReMuRe's Bayesian predicate head (methods.md §2)."""

from __future__ import annotations

import torch
from torch import nn

from tailgraph.modeling.heads.gmm import mixture_activation, probs_to_logits
from tailgraph.modeling.types import HeadOutput, PredicateHead

__all__ = ["BayesianHead"]


class BayesianHead(PredicateHead):
    """Mean and log-variance per class; Monte-Carlo averaging during training.

    Training: ``p = (1/S) Σ_s act(μ + σ ε_s)`` over ``S`` samples (FReMuRe's code: S = 6);
    evaluation: ``p = act(μ)``.

    Args:
        in_dim: pair feature size ``D``.
        num_predicates: classes ``C``.
        num_samples: ``S``.
        act: ``softmax`` or ``sigmoid``.
        log_var_init: initial bias of the log-variance layer (its weights then start at 0): ``0``
            starts every class at σ = 1 (PyTorch's default initialisation of both layers gives
            σ ≈ 1), ``-4`` at σ ≈ 0.14. A diagnostic of how much of the early training the
            sampling noise drowns (see RESULTS.md, FReMuRe's attention head).

    Shapes:
        ``forward(x [P, D], eps [S, P, C] | None) -> HeadOutput`` with ``probs`` ``[P, C]``,
        ``logits`` = :func:`probs_to_logits` of them, extras ``mu``, ``log_var`` ``[P, C]``,
        ``aleatoric`` = σ² ``[P, C]`` and ``epistemic`` ``[P]`` = entropy of the mean
        prediction (categorical for softmax; summed binary entropies for sigmoid).
    """

    def __init__(
        self,
        in_dim: int,
        num_predicates: int,
        num_samples: int = 6,
        act: str = "softmax",
        log_var_init: float | None = None,
    ) -> None:
        super().__init__()
        mixture_activation(torch.zeros(1), act)
        self.mu = nn.Linear(in_dim, num_predicates)
        self.log_var = nn.Linear(in_dim, num_predicates)
        if log_var_init is not None:
            nn.init.zeros_(self.log_var.weight)
            nn.init.constant_(self.log_var.bias, float(log_var_init))
        self.num_samples, self.act = num_samples, act

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> HeadOutput:
        mu, log_var = self.mu(x), self.log_var(x)
        std = torch.exp(0.5 * log_var)
        if self.training:
            noise = (
                torch.randn((self.num_samples, *mu.shape), device=mu.device, dtype=mu.dtype)
                if eps is None
                else eps
            )
            probs = mixture_activation(mu.unsqueeze(0) + std.unsqueeze(0) * noise, self.act).mean(0)
        else:
            probs = mixture_activation(mu, self.act)
        q = probs.clamp_min(1e-12)
        if self.act == "softmax":
            epistemic = -(q * q.log()).sum(-1)
        else:
            r = (1 - probs).clamp_min(1e-12)
            epistemic = -(q * q.log() + r * r.log()).sum(-1)
        return HeadOutput(
            logits=probs_to_logits(probs, self.act),
            probs=probs,
            extras={"mu": mu, "log_var": log_var, "aleatoric": std**2, "epistemic": epistemic},
        )
