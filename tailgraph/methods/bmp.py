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

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.methods.base import Method
from tailgraph.methods.tempura import Tempura
from tailgraph.modeling.heads.typed import TypedHead
from tailgraph.modeling.memory import RelationMemory

__all__ = [
    "minority_focal_loss",
    "gaussian_kl",
    "balance_prototypes",
    "minority_sample_counts",
    "real_samples",
    "prototype_log_posterior",
    "PrototypeNetwork",
    "BMP",
]


def minority_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    minority: torch.Tensor,
    positive_gamma: float = 0.5,
    negative_gamma: float = 2.0,
    prototype_prob: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over all elements of ``(1 − q_t)^γ · BCEWithLogits(s, y)``.

    ``q = σ(s)``, ``q_t = y q + (1 − y)(1 − q)``; ``γ = 1`` for majority classes,
    ``positive_gamma`` for minority positives and ``negative_gamma`` for minority negatives.
    With ``prototype_prob`` (``pp [B, C]``), each minority entry's exponent is multiplied by
    ``pp_{b,c}``, as the released ``lib/MFL.py`` does (its ``p_g[minority] *= pp``), so a
    sample far from class ``c``'s prototype is barely focused for that class.

    Args:
        logits: ``[B, C]`` logits ``s``.
        targets: ``[B, C]`` multi-hot ``y``.
        minority: ``[C]`` bool, true for minority classes.
        prototype_prob: optional ``[B, C]`` prototype probabilities (treated as constants).
    """
    y = targets.to(logits.dtype)
    q = torch.sigmoid(logits)
    q_t = y * q + (1 - y) * (1 - q)
    minority = minority.to(torch.bool).to(logits.device)
    gamma = torch.where(
        minority, torch.where(y > 0.5, positive_gamma, negative_gamma), torch.ones_like(y)
    )
    if prototype_prob is not None:
        pp = prototype_prob.detach().to(gamma)
        gamma = torch.where(minority.expand_as(gamma), gamma * pp, gamma)
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
                for row in kl.detach().cpu()
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


def real_samples(
    hot: torch.Tensor, n: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Rows of real samples standing in for ``n [C]`` synthetic ones per class.

    Class ``c``'s ``n_c`` samples cycle over the rows with ``hot[:, c] > 0`` in a random order
    (each row ``n_c // m`` or ``n_c // m + 1`` times for ``m`` such rows); a class without a
    positive row gets none. Returns ``(rows, labels)`` (int64, equal lengths), or ``None`` when
    no sample is left.
    """
    rows, labels = [], []
    for c in (n > 0).nonzero().flatten().tolist():
        pos = (hot[:, c] > 0).nonzero().flatten()
        if pos.numel() == 0:
            continue
        order = pos[torch.randperm(pos.numel(), generator=generator).to(pos.device)]
        reps = order.repeat(int(n[c]) // pos.numel() + 1)[: int(n[c])]
        rows.append(reps)
        labels.append(torch.full_like(reps, c))
    if not rows:
        return None
    return torch.cat(rows), torch.cat(labels)


# ---------------------------------------------------------------------------- the method


class PrototypeNetwork(nn.Module):
    """One relation type's prototype network: encoder ``d → 1.5d → 1.5d → 2d`` maps a base
    prototype (a memory class mean) to a Gaussian prototype ``[μ ; ℓ]`` (ℓ = log-variance);
    decoder ``d → 256 → 256 → d`` maps a latent sample back to a relation feature."""

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        h = int(round(1.5 * dim))
        self.encoder = nn.Sequential(
            nn.Linear(dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2 * dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )
        self.dim = dim

    def prototypes(self, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ [C, d], ℓ [C, d])`` of the base prototypes ``[C, d]``."""
        out = self.encoder(base)
        return out[:, : self.dim], out[:, self.dim :]


def prototype_log_posterior(
    x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, available: torch.Tensor | None = None
) -> torch.Tensor:
    """``log pp [B, C]``: the class posterior of features ``x [B, d]`` under diagonal Gaussian
    prototypes, computed in log space (``Σ_d log N(x_d; μ_cd, σ²_cd)`` then log-softmax over
    classes; the released code multiplies the densities, which underflows)."""
    var = logvar.exp()
    ll = -0.5 * (
        ((x[:, None, :] - mu[None]) ** 2) / var[None] + logvar[None] + math.log(2 * math.pi)
    ).sum(-1)
    if available is not None:
        ll = ll.masked_fill(~available[None].to(ll.device), float("-inf"))
    return torch.log_softmax(ll, dim=-1)


def memory_bank(model: nn.Module) -> RelationMemory:
    """The model's one TEMPURA memory bank (its class means are BMP's base prototypes)."""
    banks = [m for m in model.modules() if isinstance(m, RelationMemory)]
    if len(banks) != 1:
        raise ValueError("BMP needs TEMPURA's memory bank (one): set the context's 'memory' option")
    return banks[0]


class BMP(Method):
    """Balancing Minority Prototypes on a TEMPURA model (methods.md §1).

    Epochs ``< base_epochs`` are ordinary TEMPURA training (the protocol's per-type losses);
    they fill the context's memory bank, whose class means become the base prototypes. From
    epoch ``base_epochs`` on, everything but the relation heads is frozen and each batch
    trains the heads (and the prototype networks) on synthetic features sampled from the
    progressively balanced minority prototypes; the real video supplies only how many
    positives of each class it has.

    Per relation type (a prototype network each): majority classes have a training count
    ``≥ tau_maj``; minority prototypes are balanced (:func:`balance_prototypes`, ``q``,
    ``alpha``, ``nstage``); class ``i`` gets :func:`minority_sample_counts` samples
    ``x̃ = decoder(μ_i + e^{ℓ_i/2} ε)``. Loss per type: attention ``lambda_base · NLL``,
    spatial / contacting ``BCE``, plus ``lambda_mf`` × :func:`minority_focal_loss` and
    ``lambda_consist`` × mean KL(prototype posterior ‖ softmax(logits)) (posterior in log
    space, :func:`prototype_log_posterior`). ``vae_weight`` adds the prototype networks'
    reconstruction + KL loss, which the released code computes but never adds (default 0, as
    the code).

    Args:
        tau_maj: the majority threshold on training counts (AG code: 20000, hard-coded there).
        q, alpha, nstage: progressive balancing (3, 0.05, 6).
        positive_gamma, negative_gamma: the minority focal exponents (code: ``negtive_gamma``).
        lambda_consist, lambda_mf, lambda_base: loss weights (100, 2, 1).
        base_epochs: epochs of ordinary TEMPURA training first (1: the code's epoch 0).
        max_samples: cap on the synthetic samples of one type in one batch (the counts are
            scaled down proportionally beyond it; ``None`` = no cap).
        vae_weight: weight of the prototype networks' VAE loss.
        supervised: options of the phase-1 :class:`tailgraph.methods.tempura.Tempura` losses
            (e.g. ``obj_eos_coef``).
        prototype_features: where the class means the prototypes are built from come from:
            ``memory`` — TEMPURA's memory bank (the paper and the released code); the memory
            holds the context's features *before* the memory fusion, while the relation heads
            see them *after* it, so the synthetic samples are drawn in another space than the
            one the heads are applied to; ``head_input`` — running class means of the relation
            heads' real inputs over the head stage's training batches (one extra forward of the
            frozen model per batch; a class gets samples once it was seen). Not in the paper.
        type_weights: ``{relation type: weight}`` on the head stage's ``BCE`` and minority focal
            terms of that type (both are means over the type's columns; e.g. ``{contacting:
            17}`` makes them per-sample sums, as :class:`tailgraph.methods.base.Supervised`'s
            option does for the phase-1 losses). Default: ``supervised``'s ``type_weights``, so
            the two phases weigh the types alike.
        prototype_factor: scale the minority focal exponents by the prototype probability
            (seed 000: the loss "considering positive/negative factors and prototype
            probability"; released ``lib/MFL.py``: ``p_g[minority] *= pp``). The released code's
            ``pp`` is the raw product of per-dimension densities, which under- or overflows in
            feature dimensions; the class posterior of the prototypes is used instead (the
            same ``pp`` as the consistency term). ``False`` = the exponents alone.

        head_samples: ``synthetic`` — the head stage trains on decoded prototype samples (the
            paper); ``real`` — an ablation that keeps every count, loss and frozen part and
            replaces only the samples: each of class ``i``'s ``k_i`` samples is the real head
            input of one of the batch's ``n_i`` positive pairs of ``i`` (each used
            ``k_i / n_i`` times, the remainder spread at random), i.e. class-balanced
            re-weighting of the real features. Not in the paper.
        majority_samples: also give each majority class the batch's ``n_i`` samples (from its
            prototype, or its real positives with ``head_samples: real``), so the head stage
            keeps positives of every class; the paper's stage trains on minority samples only,
            majority classes appear in it as negatives. Not in the paper.
        head_types: the relation types whose heads the head stage trains (default: all, the
            paper). The others keep their start's weights — frozen, no phase-2 loss — e.g. the
            multi-label sigmoid types, whose confidences the semi constraint thresholds, while
            the stage re-balances a single-label type only. Not in the paper.

    Start BMP from a trained TEMPURA run with the module's ``init_from`` (and
    ``base_epochs: 0``): the memory bank and its attention are then trained before BMP's
    phase freezes them, instead of being frozen after one epoch from scratch.

    BMP's train flags map to the recipe: ``-rel_mem_compute / -rel_mem_weight_type /
    -mem_fusion / -mem_feat_selection / -mem_feat_lambda`` → the context's ``memory`` options
    (``compute``, ``weight_type``, ``fusion``, ``selection``, ``lam``); ``-rel_head gmm -K``
    → ``head.per-type GMMHead(num_components=K)``; ``-obj_head linear`` → the object
    classifier; ``-eos_coef`` → ``supervised.obj_eos_coef``; ``-lr`` → ``model.lr``;
    ``-nstage -alpha -positive_gamma -negtive_gamma -lambda_consist -lambda_mf -lambda_base``
    → this method's options; ``-mode`` → ``model.task``.
    """

    train_counts: torch.Tensor
    head_sums: torch.Tensor
    head_counts: torch.Tensor

    def __init__(
        self,
        tau_maj: int = 20000,
        q: int = 3,
        alpha: float = 0.05,
        nstage: int = 6,
        positive_gamma: float = 0.5,
        negative_gamma: float = 2.0,
        lambda_consist: float = 100.0,
        lambda_mf: float = 2.0,
        lambda_base: float = 1.0,
        base_epochs: int = 1,
        max_samples: int | None = 4096,
        vae_weight: float = 0.0,
        supervised: dict | None = None,
        prototype_factor: bool = True,
        type_weights: dict[str, float] | None = None,
        prototype_features: str = "memory",
        head_samples: str = "synthetic",
        majority_samples: bool = False,
        head_types: list[str] | None = None,
    ) -> None:
        super().__init__()
        if head_types is not None and (
            isinstance(head_types, str)
            or not all(isinstance(t, str) for t in head_types)
            or not list(head_types)
        ):
            raise ValueError("head_types must be a non-empty list of relation type names")
        self.head_types = None if head_types is None else [str(t) for t in head_types]
        if head_samples not in ("synthetic", "real"):
            raise ValueError(f"head_samples must be 'synthetic' or 'real', got {head_samples!r}")
        self.head_samples = head_samples
        self.majority_samples = bool(majority_samples)
        if prototype_features not in ("memory", "head_input"):
            raise ValueError(
                f"prototype_features must be 'memory' or 'head_input', got {prototype_features!r}"
            )
        self.prototype_features = prototype_features
        if tau_maj <= 0 or q < 1 or nstage < 0 or not 0 <= alpha <= 1 or base_epochs < 0:
            raise ValueError(
                "BMP needs tau_maj > 0, q >= 1, nstage >= 0, 0 <= alpha <= 1, base_epochs >= 0"
            )
        self.tau_maj, self.q, self.alpha, self.nstage = tau_maj, q, alpha, nstage
        self.positive_gamma, self.negative_gamma = positive_gamma, negative_gamma
        self.lambda_consist, self.lambda_mf, self.lambda_base = (
            lambda_consist,
            lambda_mf,
            lambda_base,
        )
        self.base_epochs, self.max_samples, self.vae_weight = base_epochs, max_samples, vae_weight
        self.prototype_factor = bool(prototype_factor)
        self.base = Tempura(**dict(supervised or {}))
        if type_weights is None:
            self.type_weights = dict(self.base.type_weights)
        else:
            self.type_weights = {str(k): float(v) for k, v in dict(type_weights).items()}
        bad = [k for k, v in self.type_weights.items() if not (v >= 0 and v != float("inf"))]
        if bad:
            raise ValueError(f"type_weights.{bad[0]} must be a finite number >= 0")
        self.prototype_nets = nn.ModuleList()
        self.register_buffer("train_counts", torch.zeros(0))
        self.register_buffer("head_sums", torch.zeros(0))  # prototype_features: head_input
        self.register_buffer("head_counts", torch.zeros(0))
        self._epoch = 0

    def setup(self, model, vocab, train_stats, protocol=None) -> None:
        super().setup(model, vocab, train_stats, protocol)
        self.base.setup(model, vocab, train_stats, protocol)
        memory = memory_bank(model)
        head = model.head
        if not isinstance(head, TypedHead):
            raise ValueError("BMP needs a TypedHead (one relation head per relation type)")
        unknown = sorted(set(self.type_weights) - set(head.names))
        if unknown:
            raise ValueError(
                f"type_weights names unknown relation types {unknown}; the head has "
                f"{sorted(head.names)}"
            )
        unknown = sorted(set(self.head_types or ()) - set(head.names))
        if unknown:
            raise ValueError(
                f"head_types names unknown relation types {unknown}; the head has "
                f"{sorted(head.names)}"
            )
        if not len(self.prototype_nets):
            for _ in head.names:
                self.prototype_nets.append(PrototypeNetwork(memory.dim))
        counts = train_stats.predicate_counts if train_stats is not None else vocab.predicate_counts
        self.train_counts = torch.tensor([float(c) for c in counts])
        if self.prototype_features == "head_input" and self.head_sums.numel() == 0:
            self.head_sums = torch.zeros(len(counts), memory.dim)
            self.head_counts = torch.zeros(len(counts))

    @property
    def phase(self) -> int:
        return 1 if self._epoch < self.base_epochs else 2

    def on_train_epoch_start(self, model, epoch: int) -> None:
        self._epoch = epoch
        if self.phase == 2:  # only the relation heads (and the prototype networks) learn
            frozen = tuple(
                f"head.heads.{k}."
                for k, t in enumerate(model.head.names)
                if not self._trains_type(t)
            )
            for name, p in model.named_parameters():
                p.requires_grad_(name.startswith("head.") and not name.startswith(frozen))

    def uses_pixels(self, epoch: int) -> bool:
        """The head stage on synthetic features from the memory's prototypes reads only the
        batch's relation labels, so its epochs need no pixels."""
        return (
            epoch < self.base_epochs
            or self.prototype_features == "head_input"
            or self.head_samples == "real"
        )

    def _trains_type(self, name: str) -> bool:
        """Whether the head stage trains relation type ``name``'s head (``head_types``)."""
        return self.head_types is None or name in self.head_types

    def on_train_epoch_end(self, model, epoch: int) -> None:
        self.base.on_train_epoch_end(model, epoch)  # the memory's class means

    def reset_optimizer(self) -> bool:
        return self._epoch == self.base_epochs

    def type_losses(
        self,
        model,
        k: int,
        video_counts: torch.Tensor,
        real: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Phase-2 losses of relation type ``k`` for a video with ``video_counts`` positives
        per vocabulary predicate; ``real``: the batch's head inputs ``[P, d]`` and multi-hot
        targets ``[P, R]`` (``head_samples: real``)."""
        head = model.head
        memory = memory_bank(model)
        cols = head._cols(k)
        name, single = head.names[k], head.single[k]
        dev = memory.means.device
        if self.prototype_features == "head_input":
            seen = self.head_counts.to(dev)[cols]
            available = seen > 0
            base_means = self.head_sums.to(dev)[cols] / seen.clamp_min(1)[:, None]
        else:
            available = memory.valid[cols]
            base_means = memory.means[cols]
        counts = self.train_counts.to(dev)[cols]
        minority = (counts < self.tau_maj) & available
        net = self.prototype_nets[k]
        mu, logvar = net.prototypes(base_means)  # type: ignore[operator]
        mu, logvar = balance_prototypes(
            mu, logvar, counts, minority, self.q, self.alpha, self.nstage
        )
        n = minority_sample_counts(counts, video_counts[cols].to(dev), minority, self.tau_maj)
        n = torch.as_tensor(n, device=dev).long()
        if self.majority_samples:
            major = (counts >= self.tau_maj) & available
            n = torch.where(major, video_counts[cols].to(dev).long(), n)
        total = int(n.sum())
        if total == 0:
            return {}
        if self.max_samples is not None and total > self.max_samples:
            n = torch.floor(n.float() * self.max_samples / total).long()
            total = int(n.sum())
            if total == 0:
                return {}
        if real is None:
            labels = torch.repeat_interleave(torch.arange(cols.numel(), device=dev), n)
            z = mu[labels] + torch.exp(0.5 * logvar[labels]) * torch.randn_like(mu[labels])
            x = net.decoder(z)  # type: ignore[operator]
        else:
            picked = real_samples(real[1][:, cols.to(real[1].device)], n)
            if picked is None:
                return {}
            rows, labels = picked
            x, labels = real[0][rows.to(real[0].device)].to(dev), labels.to(dev)
        logits = head.heads[k](x).logits
        y = torch.nn.functional.one_hot(labels, cols.numel()).to(logits.dtype)
        if single:
            base = self.lambda_base * torch.nn.functional.cross_entropy(logits, labels)
        else:
            base = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        log_pp = prototype_log_posterior(x, mu, logvar, available)
        pp = log_pp.exp()
        mf = minority_focal_loss(
            logits,
            y,
            minority,
            self.positive_gamma,
            self.negative_gamma,
            pp if self.prototype_factor else None,
        )
        consist = (pp * (log_pp.clamp_min(-1e30) - torch.log_softmax(logits, -1))).sum(-1).mean()
        w = self.type_weights.get(name, 1.0)
        loss = w * (base + self.lambda_mf * mf) + self.lambda_consist * consist
        out = {f"loss_bmp_{name}": loss}
        if self.vae_weight:
            z0 = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            recon = ((net.decoder(z0) - base_means) ** 2).sum(-1)[available].mean()  # type: ignore[operator]
            kl = gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar))[
                available
            ].mean()
            out[f"loss_bmp_vae_{name}"] = self.vae_weight * (recon + kl)
        return out

    @torch.no_grad()
    def head_inputs(self, model, batch) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The batch's real relation-head inputs ``[P, d]`` and their multi-hot targets
        ``[P, R]`` (one forward of the frozen model), or ``None`` without pairs."""
        seen: list[torch.Tensor] = []
        hook = model.head.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach()))
        try:
            out = model(batch)
        finally:
            hook.remove()
        if not seen or out.pairs.numel() == 0:
            return None
        if self.protocol is None:
            raise RuntimeError("BMP.setup(...) must run before training")
        targets = self.protocol.targets(batch.graphs, out.pairs)
        return seen[0], targets.multi_hot.to(seen[0].dtype)

    @torch.no_grad()
    def accumulate_head_inputs(self, model, batch, inputs=None) -> None:
        """Add the batch's real relation-head inputs to the per-predicate running sums
        (``prototype_features: head_input``; every positive predicate of a pair counts it)."""
        got = inputs if inputs is not None else self.head_inputs(model, batch)
        if got is None:
            return
        feats, hot = got
        self.head_sums = self.head_sums.to(hot.device) + hot.T @ feats
        self.head_counts = self.head_counts.to(hot.device) + hot.sum(0)

    def training_step(self, model, batch):
        if self.phase == 1:
            return self.base.training_step(model, batch)
        r = self.train_counts.numel()
        real = None
        if self.prototype_features == "head_input" or self.head_samples == "real":
            real = self.head_inputs(model, batch)
        if self.prototype_features == "head_input":
            self.accumulate_head_inputs(model, batch, real)
        if self.head_samples == "real" and real is None:
            return {"loss_bmp": sum(p.sum() * 0.0 for p in model.head.parameters())}
        video = torch.zeros(r)
        for g in batch.graphs:
            if g.relations.numel():
                video += torch.bincount(g.relations[:, 2].cpu(), minlength=r)[:r].float()
        losses: dict[str, torch.Tensor] = {}
        for k in range(len(model.head.names)):
            if not self._trains_type(model.head.names[k]):
                continue
            losses.update(
                self.type_losses(model, k, video, real if self.head_samples == "real" else None)
            )
        if not losses:  # no minority positive in this video: a zero that keeps the graph
            losses["loss_bmp"] = sum(p.sum() * 0.0 for p in model.head.parameters())
        return losses
