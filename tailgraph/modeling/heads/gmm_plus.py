"""FReMuRe's GMM-Plus predicate head (methods.md §2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.modeling.heads.gmm import mixture_activation, probs_to_logits
from tailgraph.modeling.types import HeadOutput, PredicateHead

__all__ = ["GMMPlusHead"]


class GMMPlusHead(PredicateHead):
    """K Gaussian components *per class* with per-class mixing weights and a variance floor.

    For class ``c`` and component ``k``: mean ``μ_kc``, variance
    ``σ²_kc = clamp(softplus(s_kc) + 1e-6, var_min, var_max)`` and weight ``π_kc`` with
    ``π_·c = softmax_k`` (normalised across the components of each class). Training perturbs
    the means, ``z_kc = μ_kc + σ_kc ε``; evaluation uses ``z_kc = μ_kc``. The class score is
    ``p_c = Σ_k π_kc act(z_k / τ)_c`` with a learnable temperature ``τ``; with ``softmax`` the
    scores are renormalised over classes.

    Frequency-aware regulariser (the paper's intent; FReMuRe's code has no such term): tail
    classes' variances must not collapse, so :meth:`variance_regularizer` penalises
    ``relu(log var_floor − log σ²_kc)`` weighted by the inverse training frequency of class
    ``c`` (weights normalised to mean 1).

    Args:
        in_dim: pair feature size ``D``.
        num_predicates: classes ``C``.
        num_components: ``K``.
        act: ``sigmoid`` (FReMuRe's code, all types) or ``softmax``.
        var_min, var_max: variance clamp (code: 1e-3 … 5.0).
        var_floor: variance below which the regulariser is active.
        predicate_counts: training counts per class (for the regulariser's weights).
        init_temperature: initial ``τ``.

    Shapes:
        ``forward(x [P, D], eps [K, P, C] | None) -> HeadOutput`` with ``probs`` ``[P, C]``,
        ``logits`` = :func:`probs_to_logits` of them, extras ``mu``, ``var`` ``[K, P, C]``,
        ``pi`` ``[K, P, C]``, ``temperature``.
    """

    tail_weight: torch.Tensor

    def __init__(
        self,
        in_dim: int,
        num_predicates: int,
        num_components: int = 3,
        act: str = "sigmoid",
        var_min: float = 1e-3,
        var_max: float = 5.0,
        var_floor: float = 0.05,
        predicate_counts: Sequence[int] | None = None,
        init_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        mixture_activation(torch.zeros(1), act)
        self.k, self.c, self.act = num_components, num_predicates, act
        self.var_min, self.var_max, self.var_floor = var_min, var_max, var_floor
        self.mean = nn.Linear(in_dim, num_components * num_predicates)
        self.spread = nn.Linear(in_dim, num_components * num_predicates)
        self.mix = nn.Linear(in_dim, num_components * num_predicates)
        self.log_temperature = nn.Parameter(torch.tensor(float(init_temperature)).log())
        counts = torch.as_tensor(
            list(predicate_counts) if predicate_counts is not None else [1] * num_predicates,
            dtype=torch.float32,
        )
        if counts.numel() != num_predicates:
            raise ValueError(
                f"predicate_counts has {counts.numel()} entries for {num_predicates} classes"
            )
        inv = 1.0 / counts.clamp_min(1.0)
        self.register_buffer("tail_weight", inv / inv.mean())

    def _split(self, y: torch.Tensor) -> torch.Tensor:
        return y.view(y.shape[0], self.k, self.c).transpose(0, 1)  # [K, P, C]

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> HeadOutput:
        mu = self._split(self.mean(x))
        var = (F.softplus(self._split(self.spread(x))) + 1e-6).clamp(self.var_min, self.var_max)
        pi = torch.softmax(self._split(self.mix(x)), dim=0)  # over components, per class
        tau = self.log_temperature.exp()
        z = mu
        if self.training:
            z = mu + var.sqrt() * (torch.randn_like(mu) if eps is None else eps)
        probs = (pi * mixture_activation(z / tau, self.act)).sum(0)
        if self.act == "softmax":
            probs = probs / probs.sum(-1, keepdim=True)
        return HeadOutput(
            logits=probs_to_logits(probs, self.act),
            probs=probs,
            extras={"mu": mu, "var": var, "pi": pi, "temperature": tau},
        )

    def regularizer(self, out: HeadOutput) -> torch.Tensor:
        """The variance-floor regulariser (:meth:`variance_regularizer`)."""
        return self.variance_regularizer(out)

    def variance_regularizer(self, out: HeadOutput) -> torch.Tensor:
        """Mean over components, pairs and classes of ``w_c · relu(log var_floor − log σ²_kc)``."""
        var = out.extras["var"]
        gap = F.relu(torch.log(torch.tensor(self.var_floor, device=var.device)) - var.log())
        return (gap * self.tail_weight).mean()
