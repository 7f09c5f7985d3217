"""BMP — Balancing Minority Prototypes (seed 000 + authors' code; methods.md §1): the formulas.

The method's training phases (TEMPURA memory bank → base prototypes, prototype networks,
synthetic minority features, consistency loss) build on these functions:

* :func:`minority_focal_loss` — the focal loss with a different focusing exponent for
  minority positives / negatives (fed logits; the released code feeds probabilities, a bug not
  reproduced);
* :func:`gaussian_kl` — KL divergence of diagonal Gaussians (``σ² = exp(ℓ)`` everywhere; the
  code mixes variance and standard deviation);
* :func:`balance_prototypes` — progressive balancing of the minority prototypes towards their
  nearest majority prototypes (weights over the *selected* nearest classes; the code reads the
  first ``q`` columns);
* :func:`minority_sample_counts` — how many synthetic samples each minority class gets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["minority_focal_loss", "gaussian_kl", "balance_prototypes", "minority_sample_counts"]


def minority_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    minority: torch.Tensor,
    positive_gamma: float = 0.5,
    negative_gamma: float = 2.0,
) -> torch.Tensor:
    """Mean over all elements of ``(1 − q_t)^γ · BCEWithLogits(s, y)``.

    ``q = σ(s)``, ``q_t = y q + (1 − y)(1 − q)``; ``γ = 1`` for majority classes,
    ``positive_gamma`` for minority positives and ``negative_gamma`` for minority negatives.

    Args:
        logits: ``[B, C]`` logits ``s``.
        targets: ``[B, C]`` multi-hot ``y``.
        minority: ``[C]`` bool, true for minority classes.
    """
    y = targets.to(logits.dtype)
    q = torch.sigmoid(logits)
    q_t = y * q + (1 - y) * (1 - q)
    minority = minority.to(torch.bool).to(logits.device)
    gamma = torch.where(
        minority, torch.where(y > 0.5, positive_gamma, negative_gamma), torch.ones_like(y)
    )
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return ((1 - q_t).clamp_min(0) ** gamma * ce).mean()


def gaussian_kl(
    mu_p: torch.Tensor, logvar_p: torch.Tensor, mu_q: torch.Tensor, logvar_q: torch.Tensor
) -> torch.Tensor:
    """``KL(N(μ_p, e^{ℓ_p}) ‖ N(μ_q, e^{ℓ_q}))`` of diagonal Gaussians, summed over the last
    dimension (broadcasting): ``½ Σ [ℓ_q − ℓ_p + e^{ℓ_p − ℓ_q} + (μ_q − μ_p)² e^{−ℓ_q} − 1]``."""
    return 0.5 * (
        logvar_q
        - logvar_p
        + torch.exp(logvar_p - logvar_q)
        + (mu_q - mu_p) ** 2 * torch.exp(-logvar_q)
        - 1
    ).sum(-1)


def balance_prototypes(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    counts: Sequence[float] | torch.Tensor,
    minority: torch.Tensor,
    q: int = 3,
    alpha: float = 0.05,
    nstage: int = 6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Progressive balancing of the minority prototypes (``nstage`` rounds).

    In each round every minority class ``i`` takes the ``q`` majority classes ``j`` with the
    smallest ``KL(P_i ‖ P_j)`` (ties: lower index; all of them if there are fewer than ``q``),
    weights ``w_j ∝ KL_ij · N_j`` normalised over those (equal weights if they sum to 0), and
    moves ``P_i ← (1 − α) P_i + α Σ_j w_j P_j`` for the mean and the log-variance. All
    minority classes are updated from the previous round's values; majority prototypes do not
    change.

    Args:
        mu, logvar: ``[C, D]`` prototypes.
        counts: ``[C]`` training counts ``N``.
        minority: ``[C]`` bool.
    Returns:
        ``(mu, logvar)`` after the last round.
    """
    mu, logvar = mu.clone(), logvar.clone()
    minority = torch.as_tensor(minority, dtype=torch.bool, device=mu.device)
    n = torch.as_tensor(counts, dtype=mu.dtype, device=mu.device)
    major = (~minority).nonzero().flatten()
    minor = minority.nonzero().flatten()
    if major.numel() == 0 or minor.numel() == 0:
        return mu, logvar
    k = min(q, major.numel())
    for _ in range(int(nstage)):
        kl = gaussian_kl(
            mu[minor, None], logvar[minor, None], mu[None, major], logvar[None, major]
        )  # [m, M]
        # stable k-smallest: sort by (KL, index)
        order = torch.stack(
            [
                torch.as_tensor(sorted(range(major.numel()), key=lambda j: (float(row[j]), j))[:k])
                for row in kl
            ]
        )
        chosen_kl = kl.gather(1, order.to(kl.device))
        w = chosen_kl * n[major][order]
        total = w.sum(1, keepdim=True)
        w = torch.where(
            total > 0, w / total.clamp_min(torch.finfo(w.dtype).tiny), torch.full_like(w, 1.0 / k)
        )
        target_mu = (w[..., None] * mu[major][order]).sum(1)
        target_lv = (w[..., None] * logvar[major][order]).sum(1)
        new_mu = (1 - alpha) * mu[minor] + alpha * target_mu
        new_lv = (1 - alpha) * logvar[minor] + alpha * target_lv
        mu[minor], logvar[minor] = new_mu, new_lv
    return mu, logvar


def minority_sample_counts(
    train_counts: Sequence[int] | torch.Tensor,
    positives: Sequence[int] | torch.Tensor,
    minority: Sequence[bool] | torch.Tensor,
    tau_maj: float,
) -> torch.Tensor:
    """``k_i = floor((τ_maj − N_i) / N_i · n_i)`` synthetic samples for each minority class with
    ``N_i > 0`` training samples and ``n_i`` positives in the current video; 0 otherwise.

    Returns:
        ``[C]`` int64 counts.
    """
    big_n = torch.as_tensor(train_counts, dtype=torch.float64)
    small_n = torch.as_tensor(positives, dtype=torch.float64)
    minority = torch.as_tensor(minority, dtype=torch.bool)
    safe = big_n.clamp_min(1)
    k = torch.floor((tau_maj - big_n) / safe * small_n)
    return torch.where(minority & (big_n > 0), k.clamp_min(0), torch.zeros_like(k)).to(torch.int64)
