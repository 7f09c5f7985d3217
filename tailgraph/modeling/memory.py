"""TEMPURA's predicate memory bank (methods.md §0).

During each training epoch the pre-fusion relation features are accumulated per predicate with
their labels; at the epoch's end ``M[c]`` becomes the mean
feature of the pairs whose label set contains ``c`` (empty during epoch 0). Fusion attends from
each relation feature ``f`` to the class means and mixes: ``f' = λ f + (1 − λ) m``.

Options (TEMPURA's flags):

* ``compute``: ``joint`` — one attention over all class means (``rel_mem_compute=joint``);
  ``seperate`` — one attention per relation type over that type's means, the results averaged.
* ``selection``: ``manual`` — a fixed ``lam`` (λ = 0.5 PredCls / SGDet, 0.3 SGCls);
  ``automated`` — ``λ = sigmoid(Linear(f))`` per pair.
* ``fusion``: ``late`` (before the predicate head) or ``early`` (after the spatial encoder);
  the context model applies it at that point.
* ``feature_pass``: the stored features come from a separate no-grad pass in evaluation mode
  over each training batch (default, as TEMPURA's per-batch memory pass), so dropout does not
  reach them; ``False`` stores the training forward's own features, detached (one forward
  less per step).
* ``use_memory_at_test``: fuse at evaluation too (default; the released test scripts forget to
  restore the memory — here it is a buffer, saved in and restored from checkpoints).
* ``weight_type``: ``simple`` — plain class means; ``frequency`` — FReMuRe's released code:
  within each training batch (one video) and relation type, every positive (pair, class)
  entry weighs ``softmax_entries((1 / (f_c + 1e-6)) / T)`` (``f`` = the class's frequency
  within its type from the training counts, ``temperature`` T = 0.5), and ``M[c]`` is the
  weighted mean over the epoch. With frequencies this small the softmax puts almost all of a
  video's weight on its rarest class's entries — the code's behaviour, kept as it is.
  ``al`` / ``ep`` / ``both`` — TEMPURA's uncertainty-weighted memories
  (``-rel_mem_weight_type``): each positive (pair, class) entry weighs ``exp(u_ic)`` with
  ``u`` the GMM head's aleatoric (``al``), epistemic (``ep``) or summed (``both``) uncertainty
  of that class for that pair, and ``M[c] = Σ_i exp(u_ic) f_i / Σ_i exp(u_ic)`` over the
  epoch — a softmax over the class's entries, so the pairs the model is least sure of weigh
  most (the released ``memory_computation`` / ``normalize_batch_uncertainty``). The released
  ``both`` normaliser sums ``exp(al + al)`` while the numerator uses ``exp(al + ep)``, so its
  weights do not sum to one; here both use ``al + ep``. The uncertainties come with the
  stored features (:func:`tailgraph.methods.tempura.memory_updates`, from a GMM head).

Classes absent from the training data so far have no mean and are left out of the attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["RelationMemory", "WEIGHT_TYPES"]

WEIGHT_TYPES = ("simple", "frequency", "al", "ep", "both")
UNCERTAINTY_WEIGHTS = {
    "al": ("aleatoric",),
    "ep": ("epistemic",),
    "both": ("aleatoric", "epistemic"),
}


class RelationMemory(nn.Module):
    """Per-predicate feature memory with attention fusion.

    Args:
        dim: relation feature size ``D``.
        num_predicates: vocabulary predicates ``R``.
        groups: ``[(type name, columns, single_label)]`` (for ``compute="seperate"``).
        compute: ``joint`` | ``seperate``.
        selection: ``manual`` | ``automated``.
        lam: λ of ``manual`` selection.
        fusion: ``late`` | ``early`` (read by the context model).
        use_memory_at_test: fuse in evaluation mode too.
        feature_pass: accumulate from a no-grad evaluation-mode pass (else from the training
            forward, detached).
        weight_type: ``simple`` | ``frequency`` | ``al`` | ``ep`` | ``both``.

    Shapes:
        ``forward(f [P, D]) -> [P, D]``; ``accumulate(f [P, D], multi_hot [P, R],
        uncertainty {"aleatoric", "epistemic": [P, R]} | None)``.
    """

    counts: torch.Tensor
    frequencies: torch.Tensor
    means: torch.Tensor
    sums: torch.Tensor
    valid: torch.Tensor

    def __init__(
        self,
        dim: int,
        num_predicates: int,
        groups: Sequence[Sequence[Any]] | None = None,
        compute: str = "joint",
        selection: str = "manual",
        lam: float = 0.5,
        fusion: str = "late",
        use_memory_at_test: bool = True,
        weight_type: str = "simple",
        feature_pass: bool = True,
        predicate_counts: Sequence[float] | None = None,
        temperature: float = 0.5,
    ) -> None:
        super().__init__()
        if compute not in ("joint", "seperate"):
            raise ValueError(f"compute must be 'joint' or 'seperate', got {compute!r}")
        if selection not in ("manual", "automated"):
            raise ValueError(f"selection must be 'manual' or 'automated', got {selection!r}")
        if fusion not in ("late", "early"):
            raise ValueError(f"fusion must be 'late' or 'early', got {fusion!r}")
        if weight_type not in WEIGHT_TYPES:
            raise ValueError(f"weight_type must be one of {WEIGHT_TYPES}, got {weight_type!r}")
        if weight_type == "frequency" and predicate_counts is None:
            raise ValueError("weight_type 'frequency' needs the training predicate_counts")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.weight_type, self.temperature = weight_type, temperature
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be within [0, 1], got {lam}")
        if compute == "seperate" and not groups:
            raise ValueError("compute='seperate' needs the relation type groups")
        self.dim, self.num_predicates = dim, num_predicates
        self.compute, self.selection, self.lam, self.fusion = compute, selection, lam, fusion
        self.use_memory_at_test = use_memory_at_test
        self.feature_pass = bool(feature_pass)
        self.type_columns = (
            [list(g[1]) for g in groups] if groups else [list(range(num_predicates))]
        )
        n_att = len(self.type_columns) if compute == "seperate" else 1
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(dim, 1, batch_first=True) for _ in range(n_att)
        )
        self.gate = nn.Linear(dim, 1) if selection == "automated" else None
        freq = torch.zeros(num_predicates)
        if predicate_counts is not None:
            counts = torch.as_tensor(list(predicate_counts), dtype=torch.float32)
            for cols in self.type_columns:  # frequency within each relation type
                c = torch.tensor(cols)
                total = counts[c].sum()
                freq[c] = counts[c] / total if total > 0 else 0.0
        self.register_buffer("frequencies", freq, persistent=False)
        self.register_buffer("means", torch.zeros(num_predicates, dim))
        self.register_buffer("valid", torch.zeros(num_predicates, dtype=torch.bool))
        self.register_buffer("sums", torch.zeros(num_predicates, dim))
        self.register_buffer("counts", torch.zeros(num_predicates))

    @property
    def ready(self) -> bool:
        return bool(self.valid.any())

    @property
    def needs_uncertainty(self) -> bool:
        """Whether :meth:`accumulate` needs the head's uncertainties (``al``, ``ep``, ``both``)."""
        return self.weight_type in UNCERTAINTY_WEIGHTS

    @torch.no_grad()
    def accumulate(
        self,
        feats: torch.Tensor,
        multi_hot: torch.Tensor,
        uncertainty: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Add a batch's pre-fusion features to the running per-class sums."""
        y = multi_hot.to(feats.dtype)
        if self.needs_uncertainty:
            keys = UNCERTAINTY_WEIGHTS[self.weight_type]
            if uncertainty is None or any(k not in uncertainty for k in keys):
                raise ValueError(
                    f"weight_type {self.weight_type!r} needs the head's {' and '.join(keys)} "
                    "uncertainty (a GMM predicate head)"
                )
            u = torch.stack([uncertainty[k].to(feats.dtype) for k in keys]).sum(0)
            if u.shape != y.shape:
                raise ValueError(f"uncertainty of shape {tuple(u.shape)}, labels {tuple(y.shape)}")
            y = torch.where(y > 0, torch.exp(u), torch.zeros_like(y))
        elif self.weight_type == "frequency":
            w = torch.zeros_like(y)
            inv = 1.0 / (self.frequencies.to(feats.dtype) + 1e-6)
            for cols in self.type_columns:
                c = torch.tensor(cols, device=y.device)
                pos = y[:, c] > 0
                if not bool(pos.any()):
                    continue
                logits = torch.where(pos, (inv[c] / self.temperature).expand_as(pos), -torch.inf)
                w[:, c] = torch.softmax(logits.flatten(), 0).view_as(pos)
            y = w
        self.sums += y.t() @ feats.detach()
        self.counts += y.sum(0)

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Class means of the epoch just finished become the memory; the sums restart."""
        have = self.counts > 0
        if have.any():
            self.means.zero_()
            self.means[have] = self.sums[have] / self.counts[have, None]
            self.valid.copy_(have)
        self.sums.zero_()
        self.counts.zero_()

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if not self.ready or (not self.training and not self.use_memory_at_test) or f.shape[0] == 0:
            return f
        q = f.unsqueeze(0)
        outs = []
        cols = (
            self.type_columns if self.compute == "seperate" else [list(range(self.num_predicates))]
        )
        for attn, c in zip(self.attn, cols):
            idx = torch.tensor(c, device=f.device)
            idx = idx[self.valid[idx]]
            if idx.numel() == 0:
                continue
            mem = self.means[idx].unsqueeze(0)
            outs.append(attn(q, mem, mem, need_weights=False)[0].squeeze(0))
        if not outs:
            return f
        m = torch.stack(outs).mean(0)
        lam = torch.sigmoid(self.gate(f)) if self.gate is not None else self.lam
        return lam * f + (1 - lam) * m
