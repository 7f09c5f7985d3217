"""FReMuRe's GMM-Plus predicate head (methods.md §2): Eq. 6's mixture density over the
relation embedding, or the released code's mixture over perturbed logits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.modeling.heads.gmm import mixture_activation, probs_to_logits
from tailgraph.modeling.types import HeadOutput, PredicateHead

__all__ = ["GMMPlusHead"]


class GMMPlusHead(PredicateHead):
    """FReMuRe's GMM-Plus head: K Gaussian components per class, mixing weights per class,
    variances kept from collapsing.

    ``variant="paper"`` (default; seed 003, Eq. 6): a Gaussian mixture *density over the
    relation embedding*. The pair feature is projected to ``z = W x`` (``embed_dim``); class
    ``c`` has components with means ``μ_kc ∈ R^d``, diagonal variances
    ``σ²_kc = clamp(softplus(s_kc) + 1e-6, var_min, var_max)`` and weights
    ``π_·c = softmax_k(w_·c)``, and
    ``log p(z | c) = logsumexp_k [log π_kc + log N(z; μ_kc, σ²_kc)]``. Training perturbs the
    component means, ``μ̃_kc = μ_kc + σ_kc ε`` (one draw per pair); evaluation uses ``μ_kc``.
    The class logit is ``(log p(z | c) + d(1 + log 2π)/2) / τ + b_c`` with a learnable
    temperature ``τ`` (initially ``√d``) and bias (the shift makes a point at the typical
    distance ``‖z − μ‖² = d σ²`` of a unit-variance component score 0 before the bias);
    ``act`` turns logits into scores (``sigmoid`` per class, or ``softmax`` over classes).

    ``variant="code"`` (the released ``lib/gmm_heads_plus.py``): the components live in
    *logit space* — per component a linear map gives ``μ_k(x)``, ``σ²_k(x)`` and ``π_k(x)``
    per class, training samples ``z_k = μ_k + σ_k ε``, evaluation ``z_k = μ_k``, and
    ``p_c = Σ_k π_kc act(z_k / τ)_c`` (renormalised over classes with ``softmax``).

    Frequency-aware regulariser (the paper's intent; the released code has none):
    :meth:`variance_regularizer` penalises ``relu(log var_floor − log σ²)`` of every component
    of class ``c``, weighted by the inverse training frequency of ``c`` (weights normalised to
    mean 1), so tail classes' components do not degenerate towards Dirac distributions.

    Args:
        in_dim: pair feature size ``D``.
        num_predicates: classes ``C``.
        num_components: ``K``.
        act: ``sigmoid`` (FReMuRe's code, all types) or ``softmax``.
        var_min, var_max: variance clamp (code: 1e-3 … 5.0).
        var_floor: variance below which the regulariser is active.
        predicate_counts: training counts per class (for the regulariser's weights).
        init_temperature: initial ``τ`` (``None``: ``√embed_dim`` for the paper's form, 1 for
            the code's).
        variant: ``paper`` (Eq. 6) or ``code``.
        embed_dim: ``d``, the size of the embedding the densities live in (paper variant).
        perturb: draw the training perturbation (both variants; the paper and the released
            code do). ``False`` trains on ``μ`` as evaluation does — an ablation switch.
        noise_scale: ``s`` in ``μ̃ = μ + s σ ε`` (default 1, the paper's and the code's draw;
            neither states another scale). An ablation of the perturbation's size; ``0`` is
            ``perturb=False``.

    Shapes:
        ``forward(x [P, D], eps | None) -> HeadOutput`` with ``logits`` and ``probs``
        ``[P, C]``; extras ``var`` (``[C, K, d]`` paper, ``[K, P, C]`` code), ``pi``,
        ``temperature``. ``eps``: the noise of the perturbation (``[P, C, K, d]`` paper,
        ``[K, P, C]`` code), drawn when ``None``.
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
        init_temperature: float | None = None,
        variant: str = "paper",
        embed_dim: int = 32,
        perturb: bool = True,
        noise_scale: float = 1.0,
    ) -> None:
        super().__init__()
        mixture_activation(torch.zeros(1), act)
        if variant not in ("paper", "code"):
            raise ValueError(f"variant must be 'paper' or 'code', got {variant!r}")
        self.k, self.c, self.act, self.variant = num_components, num_predicates, act, variant
        self.var_min, self.var_max, self.var_floor = var_min, var_max, var_floor
        self.perturb = bool(perturb)
        if not math.isfinite(noise_scale) or noise_scale < 0:
            raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
        self.noise_scale = float(noise_scale)
        if variant == "code":
            self.mean = nn.Linear(in_dim, num_components * num_predicates)
            self.spread = nn.Linear(in_dim, num_components * num_predicates)
            self.mix = nn.Linear(in_dim, num_components * num_predicates)
            tau0 = 1.0 if init_temperature is None else float(init_temperature)
        else:
            self.embed_dim = int(embed_dim)
            self.proj = nn.Linear(in_dim, self.embed_dim)
            self.means = nn.Parameter(torch.randn(num_predicates, num_components, self.embed_dim))
            # softplus(0.5413) + 1e-6 = 1: unit variances at the start
            self.spread_raw = nn.Parameter(
                torch.full((num_predicates, num_components, self.embed_dim), 0.5413)
            )
            self.mix_logits = nn.Parameter(torch.zeros(num_predicates, num_components))
            self.bias = nn.Parameter(torch.zeros(num_predicates))
            tau0 = math.sqrt(self.embed_dim) if init_temperature is None else init_temperature
        self.log_temperature = nn.Parameter(torch.tensor(float(tau0)).log())
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

    def variances(self) -> torch.Tensor:
        """``σ²`` of the paper variant's components, ``[C, K, d]``."""
        return (F.softplus(self.spread_raw) + 1e-6).clamp(self.var_min, self.var_max)

    def class_log_density(
        self, z: torch.Tensor, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``log p(z | c)`` of Eq. 6 for embeddings ``z [P, d]`` → ``([P, C], var, π)``."""
        var = self.variances()
        log_pi = torch.log_softmax(self.mix_logits, dim=1)  # over components, per class
        mu = self.means.unsqueeze(0)  # [1, C, K, d]
        if self.training and self.perturb:
            noise = torch.randn((z.shape[0], *self.means.shape), device=z.device, dtype=z.dtype)
            mu = mu + self.noise_scale * var.sqrt() * (noise if eps is None else eps)
        diff = z[:, None, None, :] - mu  # [P, C, K, d]
        log_n = -0.5 * ((diff**2) / var + var.log() + math.log(2 * math.pi)).sum(-1)
        return torch.logsumexp(log_pi + log_n, dim=-1), var, log_pi.exp()

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> HeadOutput:
        tau = self.log_temperature.exp()
        if self.variant == "paper":
            log_p, var, pi = self.class_log_density(self.proj(x), eps)
            shift = 0.5 * self.embed_dim * (1.0 + math.log(2 * math.pi))
            logits = (log_p + shift) / tau + self.bias
            return HeadOutput(
                logits=logits,
                probs=mixture_activation(logits, self.act),
                extras={"var": var, "pi": pi, "temperature": tau, "log_density": log_p},
            )
        mu = self._split(self.mean(x))
        var = (F.softplus(self._split(self.spread(x))) + 1e-6).clamp(self.var_min, self.var_max)
        pi = torch.softmax(self._split(self.mix(x)), dim=0)  # over components, per class
        z = mu
        if self.training and self.perturb:
            z = mu + self.noise_scale * var.sqrt() * (torch.randn_like(mu) if eps is None else eps)
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
        """Mean over classes (and components, pairs or dimensions) of
        ``w_c · relu(log var_floor − log σ²)``."""
        var = out.extras["var"]
        gap = F.relu(torch.log(torch.tensor(self.var_floor, device=var.device)) - var.log())
        if self.variant == "paper":  # [C, K, d]
            return (gap.mean((1, 2)) * self.tail_weight).mean()
        return (gap * self.tail_weight).mean()  # [K, P, C]
