"""Prototype predicate head (per-class prototypes, distance logits), used by BMP."""

from __future__ import annotations

import math

import torch
from torch import nn

from tailgraph.modeling.types import HeadOutput, PredicateHead

__all__ = ["PrototypeHead", "gaussian_log_likelihood"]


def gaussian_log_likelihood(
    x: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor
) -> torch.Tensor:
    """``[P, C]``: Σ_d log N(x_d; μ_cd, exp(ℓ_cd)) for ``x`` ``[P, D]``, ``mu`` / ``log_var``
    ``[C, D]``.

    Summed in log space (BMP's code multiplies 1,936 densities, which underflows).
    """
    diff2 = (x.unsqueeze(1) - mu.unsqueeze(0)) ** 2  # [P, C, D]
    return -0.5 * (
        diff2 / log_var.exp().unsqueeze(0) + log_var.unsqueeze(0) + math.log(2 * math.pi)
    ).sum(-1)


class PrototypeHead(PredicateHead):
    """Scores pairs by their distance to one prototype per class.

    ``euclidean``: ``logit_c = −‖W x − m_c‖² / τ`` (learnable ``τ``). ``gaussian``: each
    prototype is a diagonal Gaussian ``[μ_c ; ℓ_c]`` (BMP's prototype form) and
    ``logit_c = Σ_d log N((W x)_d; μ_cd, exp(ℓ_cd)) / τ``.

    Args:
        in_dim: pair feature size ``D``.
        num_predicates: classes ``C``.
        proto_dim: prototype size (``None`` = ``in_dim`` and no projection).
        kind: ``euclidean`` | ``gaussian``.
        multilabel: rank with sigmoid instead of softmax.

    Shapes:
        ``forward(x [P, D]) -> HeadOutput(logits [P, C], probs [P, C])``, extras ``embedding``
        ``[P, proto_dim]``.
    """

    def __init__(
        self,
        in_dim: int,
        num_predicates: int,
        proto_dim: int | None = None,
        kind: str = "euclidean",
        multilabel: bool = False,
        init_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in ("euclidean", "gaussian"):
            raise ValueError(f"kind must be 'euclidean' or 'gaussian', got {kind!r}")
        dim = proto_dim or in_dim
        self.project = nn.Linear(in_dim, dim) if proto_dim else nn.Identity()
        self.prototypes = nn.Parameter(torch.randn(num_predicates, dim) * 0.1)
        self.log_var = (
            nn.Parameter(torch.zeros(num_predicates, dim)) if kind == "gaussian" else None
        )
        self.log_temperature = nn.Parameter(torch.tensor(float(init_temperature)).log())
        self.kind, self.multilabel = kind, multilabel

    def forward(self, x: torch.Tensor) -> HeadOutput:
        e = self.project(x)
        tau = self.log_temperature.exp()
        if self.kind == "euclidean":
            logits = -torch.cdist(e, self.prototypes).pow(2) / tau
        else:
            logits = gaussian_log_likelihood(e, self.prototypes, self.log_var) / tau  # type: ignore[arg-type]
        probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)
        return HeadOutput(logits=logits, probs=probs, extras={"embedding": e})
