"""FReMuRe — Frequency-guided Relational Multi-level Reasoning (seed 003 + authors' code;
methods.md §2).

The pieces, paper formulation by default:

* :func:`frequency_correction` — Eq. 1, ``g ⊙ LN(x) + (1 − g) ⊙ x`` with a parameter-free
  LayerNorm;
* :class:`FrequencyGate` — Eq. 2, ``g(f) = σ(W · log(1/f + ε) + b)`` from the **training**
  split's relation frequencies (the released code also counts the test split: leakage, not
  reproduced);
* :class:`DualBranchLocal` — the local phase of the dual-branch predicate embedding generator
  (DPEG, Eq. 3–4): a head branch (the standard spatial encoder), a frequency-aware tail branch
  and their gated fusion;
* :class:`WindowedDecoder` — the global phase: a temporal decoder with positional encoding over
  sliding windows of frames, a relation seen in several overlapping windows averaged;
* :class:`FReMuReContext` — the relation feature of TEMPURA, then one local + global branch per
  relation type (attention / spatial / contacting, separate parameters: "decouple"), the
  per-type embeddings laid out as blocks for :class:`tailgraph.modeling.heads.typed.TypedHead`
  (whose Bayesian / GMM-Plus / GMM / linear heads classify them);
* :class:`FReMuRe` — the method: cross-entropy for attention, BCE (or the multi-label margin
  loss) for spatial and contacting, the GMM-Plus head's frequency-aware variance regulariser.

``variant="code"`` follows the released code where it differs from the paper (see
:class:`FReMuReContext`). The switches of the paper's Table 2: ``decouple`` (false = one shared
branch for all types), ``frequency`` (false = no frequency gate anywhere), ``dual_branch``
(false = head branch only) and the head spec (bayesian / gmm-plus / gmm / linear).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.methods.tempura import Tempura
from tailgraph.modeling.context.common import pad_by_image, unpad
from tailgraph.modeling.context.sttran import (
    PositionalDecoderLayer,
    RelationFeatureMixin,
    sinusoidal_encoding,
)
from tailgraph.modeling.types import ContextModel, ContextOutput, RelationInputs

__all__ = [
    "frequency_correction",
    "FrequencyGate",
    "FrequencyStatsGate",
    "relation_frequencies",
    "frequency_statistics",
    "DualBranchLocal",
    "WindowedDecoder",
    "FReMuReContext",
    "FReMuRe",
    "frequency_probe_loss",
]

VARIANTS = ("paper", "code")
GATES = ("dataset", "relation")


def frequency_correction(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``gate ⊙ LN(x) + (1 − gate) ⊙ x`` (Eq. 1), with a parameter-free LayerNorm over the
    last dimension (eps 1e-5); ``gate`` broadcasts to ``x``."""
    return gate * F.layer_norm(x, x.shape[-1:], eps=1e-5) + (1 - gate) * x


def relation_frequencies(
    counts: Sequence[float] | torch.Tensor, total: float | None = None
) -> torch.Tensor:
    """``f_r = n_r / Σ n`` from training counts (``total`` overrides ``Σ n``, e.g. the count
    over all types when ``counts`` is one type's slice; all zeros stay zeros)."""
    n = torch.as_tensor(counts, dtype=torch.float32)
    t = n.sum() if total is None else torch.tensor(float(total))
    return n / t if t > 0 else n


def frequency_statistics(f: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The released code's 6 statistics of a frequency vector, ``[6]``: with
    ``π = (f + ε) / (Σ f + ε·C)``: mean, min, max, std (population), entropy ``−Σ π log(π + ε)``
    and tailness ``mean_c log(mean(π) / (π_c + ε))``."""
    pi = (f + eps) / (f.sum() + eps * f.numel())
    mean = pi.mean()
    return torch.stack(
        [
            mean,
            pi.min(),
            pi.max(),
            pi.std(unbiased=False),
            -(pi * torch.log(pi + eps)).sum(),
            torch.log(mean / (pi + eps)).mean(),
        ]
    )


class FrequencyGate(nn.Module):
    """Eq. 2: ``g(f) = σ(W · log(1/f + ε) + b)`` over the relation frequencies ``f``.

    Args:
        predicate_counts: training counts per relation class (injected); ``f`` is their
            normalisation, kept as a buffer.
        dim: size of the gate (the feature it corrects).
        eps: ``ε`` inside the log.
        total: the normaliser of ``f`` (default: the sum of ``predicate_counts``).

    Shapes:
        ``forward() -> [dim]`` (the gate for the data set's frequency profile) and
        ``forward(f [..., R]) -> [..., dim]`` for other frequency vectors.
    """

    frequencies: torch.Tensor

    def __init__(
        self,
        predicate_counts: Sequence[float],
        dim: int,
        eps: float = 1e-6,
        total: float | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("frequencies", relation_frequencies(predicate_counts, total))
        self.eps = eps
        self.linear = nn.Linear(self.frequencies.numel(), dim)

    def forward(self, f: torch.Tensor | None = None) -> torch.Tensor:
        f = self.frequencies if f is None else f
        return torch.sigmoid(self.linear(torch.log(1.0 / (f + self.eps) + self.eps)))


class FrequencyStatsGate(nn.Module):
    """The released code's gate: an MLP over :func:`frequency_statistics`, 6 → ``hidden`` →
    ReLU → ``dim``, then ``σ(· / τ)``.

    Shapes:
        ``forward() -> [dim]``.
    """

    frequencies: torch.Tensor

    def __init__(
        self,
        predicate_counts: Sequence[float],
        dim: int,
        hidden: int = 64,
        tau: float = 1.0,
        total: float | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("frequencies", relation_frequencies(predicate_counts, total))
        self.mlp = nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.tau = tau

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.mlp(frequency_statistics(self.frequencies)) / self.tau)


def _encoder(d: int, heads: int, ff: int, dropout: float, layers: int) -> nn.Module:
    layer = nn.TransformerEncoderLayer(d, heads, ff, dropout, batch_first=True)  # post-norm
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class DualBranchLocal(nn.Module):
    """DPEG's local phase over the pairs of each frame (Eq. 1–4).

    Paper variant:

    * head branch ``H = Enc_h(x)`` — the standard spatial encoder;
    * tail branch ``T = Enc_t(x')`` on the frequency-corrected input ``x' = g(f) ⊙ LN(x) +
      (1 − g(f)) ⊙ x`` (:class:`FrequencyGate`);
    * fusion ``G = σ(W [LN(H) ‖ LN(T) ‖ f] + b)`` (bias initialised to zero, parameter-free
      LayerNorms on the branch outputs), ``Z = G ⊙ H + (1 − G) ⊙ T``.

    Code variant: the tail branch is ``T = g ⊙ LN(Enc_t(x)) + (1 − g) ⊙ Enc_t(x)`` with the
    statistics gate (:class:`FrequencyStatsGate`); the fusion is ``G = clamp(σ(W [LN(H) ‖ LN(T)
    ‖ e] / 1.5), 0.02, 0.98)`` with ``e = LN(Linear(f → 64))`` and ``Z = G ⊙ LN(H) + (1 − G) ⊙
    LN(T)``.

    ``frequency=False`` drops the gate (``x' = x``, plain tail output) and ``f`` / ``e`` from the
    fusion; ``dual_branch=False`` keeps the head branch only (``Z = H``).

    ``gate="relation"`` (paper variant; an extension, **not in the paper**): Eq. 2's gate is a
    function of the data set's frequency vector only — one learned constant per channel, the
    same for every pair. This option gates each pair by the frequency it is expected to have:
    a linear probe over ``x`` predicts the branch's classes, ``p = softmax(probe(x))``, and
    ``g = σ(w · log(1/f̂ + ε) + b)`` with ``f̂ = Σ_c p_c f_c`` (``w``, ``b`` ∈ R^D). The probe is
    trained by :class:`FReMuRe` (``loss_frequency_probe``: cross-entropy against the pair's
    labels in the branch, normalised to a distribution).

    Args:
        dim: feature size ``D``.
        predicate_counts: training counts of the relation classes this branch serves.
        total: the count over all relation classes (the normaliser of ``f``).
        num_heads, ff_dim, dropout, layers: encoder settings (8, 2048, 0.1, 1).
        variant: ``paper`` | ``code``.
        frequency, dual_branch: Table 2's switches.
        gate: ``dataset`` (Eq. 2) | ``relation`` (the per-pair extension above).

    Shapes:
        ``forward(x [F, L, D], valid [F, L]) -> [F, L, D]`` (padded frames);
        ``forward(..., return_probe=True) -> ([F, L, D], probe logits [F, L, R] | None)``.
    """

    frequencies: torch.Tensor

    def __init__(
        self,
        dim: int,
        predicate_counts: Sequence[float],
        total: float | None = None,
        num_heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        layers: int = 1,
        variant: str = "paper",
        frequency: bool = True,
        dual_branch: bool = True,
        gate: str = "dataset",
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        if gate == "relation" and (variant != "paper" or not frequency or not dual_branch):
            raise ValueError("gate 'relation' needs variant 'paper', frequency and dual_branch")
        self.variant, self.frequency, self.dual_branch = variant, frequency, dual_branch
        self.gate_kind = gate
        self.head = _encoder(dim, num_heads, ff_dim, dropout, layers)
        if not dual_branch:
            return
        self.tail = _encoder(dim, num_heads, ff_dim, dropout, layers)
        f = relation_frequencies(predicate_counts, total)
        self.register_buffer("frequencies", f)
        extra = 0
        if frequency:
            if variant == "paper":
                self.gate = FrequencyGate(predicate_counts, dim, total=total)
                extra = f.numel()
                if gate == "relation":
                    self.probe = nn.Linear(dim, f.numel())
                    self.pair_gate = nn.Linear(1, dim)
            else:
                self.gate = FrequencyStatsGate(predicate_counts, dim, total=total)  # type: ignore[assignment]
                self.freq_embed = nn.Linear(f.numel(), 64)
                extra = 64
        self.fusion = nn.Linear(2 * dim + extra, dim)
        nn.init.zeros_(self.fusion.bias)

    def _ln(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:])

    def relation_gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``gate="relation"``: the per-pair gate ``[..., D]`` and the probe's logits
        ``[..., R]``."""
        logits = self.probe(x)
        f_hat = (torch.softmax(logits, -1) * self.frequencies).sum(-1, keepdim=True)
        eps = self.gate.eps
        return torch.sigmoid(self.pair_gate(torch.log(1.0 / (f_hat + eps) + eps))), logits

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor, return_probe: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        z, probe = self._forward(x, valid)
        return (z, probe) if return_probe else z

    def _forward(
        self, x: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        pad = ~valid
        h = self.head(x, src_key_padding_mask=pad)
        probe = None
        if not self.dual_branch:
            return h, probe
        if self.variant == "paper":
            if self.gate_kind == "relation":
                g, probe = self.relation_gate(x)
                xin = frequency_correction(x, g)
            else:
                xin = frequency_correction(x, self.gate()) if self.frequency else x
            t = self.tail(xin, src_key_padding_mask=pad)
        else:
            t = self.tail(x, src_key_padding_mask=pad)
            if self.frequency:
                t = frequency_correction(t, self.gate())
        parts = [self._ln(h), self._ln(t)]
        if self.frequency:
            f = (
                self.frequencies
                if self.variant == "paper"
                else self._ln(self.freq_embed(self.frequencies))
            )
            parts.append(f.expand(*h.shape[:-1], f.shape[-1]))
        z = self.fusion(torch.cat(parts, dim=-1))
        if self.variant == "paper":
            g = torch.sigmoid(z)
            return g * h + (1 - g) * t, probe
        g = torch.sigmoid(z / 1.5).clamp(0.02, 0.98)
        return g * parts[0] + (1 - g) * parts[1], probe


class WindowedDecoder(nn.Module):
    """The global phase: ``layers`` self-attention layers over sliding windows of ``window``
    consecutive frames (stride 1), a position encoding added to queries and keys.

    Args:
        dim, num_heads, ff_dim, dropout, layers: decoder settings (3 layers).
        window: frames per window (2 as STTran).
        position: ``sinusoidal`` — a sine / cosine encoding of the frame's index in the video
            (paper) — or ``learned`` — one learned row per position in the window (STTran's
            frame embedding).
        aggregate: ``mean`` — every window containing a frame contributes, the outputs averaged
            (paper) — or ``later`` — a frame takes the window in which it is the last frame,
            the first window's frames from it (STTran, the released code).

    Shapes:
        ``forward(x [P, D], frame [P], num_frames) -> [P, D]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        layers: int = 3,
        window: int = 2,
        position: str = "sinusoidal",
        aggregate: str = "mean",
    ) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if position not in ("sinusoidal", "learned"):
            raise ValueError(f"position must be 'sinusoidal' or 'learned', got {position!r}")
        if aggregate not in ("mean", "later"):
            raise ValueError(f"aggregate must be 'mean' or 'later', got {aggregate!r}")
        self.window, self.position, self.aggregate, self.dim = window, position, aggregate, dim
        self.layers = nn.ModuleList(
            PositionalDecoderLayer(dim, num_heads, ff_dim, dropout) for _ in range(layers)
        )
        self.pos_embed = nn.Embedding(window, dim) if position == "learned" else None

    def windows(self, frame: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [W, L], valid [W, L])``: the pair rows of each window (padded with 0)."""
        starts = max(1, num_frames - self.window + 1)
        rows = [
            torch.nonzero((frame >= w) & (frame < w + self.window)).flatten() for w in range(starts)
        ]
        length = max(1, max(r.numel() for r in rows))
        idx = torch.zeros((starts, length), dtype=torch.int64, device=frame.device)
        valid = torch.zeros((starts, length), dtype=torch.bool, device=frame.device)
        for w, r in enumerate(rows):
            idx[w, : r.numel()] = r
            valid[w, : r.numel()] = True
        return idx, valid

    def forward(self, x: torch.Tensor, frame: torch.Tensor, num_frames: int) -> torch.Tensor:
        if x.shape[0] == 0:
            return x
        idx, valid = self.windows(frame, num_frames)
        start = torch.arange(idx.shape[0], device=x.device).unsqueeze(1)
        fr = frame[idx]
        if self.pos_embed is not None:
            pos = self.pos_embed((fr - start).clamp(0, self.window - 1))
        else:
            pos = sinusoidal_encoding(fr.flatten(), self.dim).view(*fr.shape, self.dim)
        h = x[idx]
        for layer in self.layers:
            h = layer(h, pos.to(h.dtype), key_padding_mask=~valid)
        if self.aggregate == "mean":
            out = x.new_zeros(x.shape).index_add(0, idx[valid], h[valid])
            count = torch.bincount(idx[valid], minlength=x.shape[0]).clamp_min(1)
            return out / count.unsqueeze(1).to(out.dtype)
        last = fr == start + self.window - 1
        take = valid & (last | ((start == 0) & (fr < self.window - 1)))
        if idx.shape[0] == 1:  # fewer frames than the window: the one window gives all
            take = valid
        out = x.new_zeros(x.shape)
        out[idx[take]] = h[take]
        return out


class FReMuReContext(RelationFeatureMixin, ContextModel):
    """FReMuRe's relation model over one video (methods.md §2).

    TEMPURA's relation feature (:class:`RelationFeatureMixin`), then per branch: the dual-branch
    local phase (:class:`DualBranchLocal`, over the pairs of each frame), optionally TEMPURA's
    memory bank (``early``: after the local phase, ``late``: after the global one), and the
    global phase (:class:`WindowedDecoder`). With ``decouple`` there is one branch per relation
    type (own parameters, the type's frequencies); the output is the per-type embeddings side
    by side (``per_type_outputs``: the typed head reads one block per type). Without, one
    branch serves all types.

    ``variant="code"`` (the released code): the statistics gate, tail-then-gate and clamped
    fusion of :class:`DualBranchLocal`, and the global phase as STTran's (window 2, learned
    frame embedding, later-frame rule). The released code runs the three types through *one*
    set of transformer weights (only the frequency mapper is per type), against the paper's
    separate parameters per type: offered as ``share_weights`` (with either variant).
    Differences not offered: its frequencies also count the test split; it scales the memory
    read-out by ``1 + log(1/f)``.
    Its frequency-softmax memory weights per video are the memory option
    ``weight_type: frequency`` (:class:`tailgraph.modeling.memory.RelationMemory`).

    Args:
        class_names, obj_feat_dim, union_feat_dim, union_is_map: injected (as STTran).
        proj_dim, embed_dim: relation feature sizes (512, 200 in the reference).
        num_heads, ff_dim, dropout: transformer settings (8, 2048, 0.1).
        spatial_layers: local encoder depth per branch (``-enc_layer``, 1).
        temporal_layers: global decoder depth (``-dec_layer``, 3).
        window: frames per global window (2).
        position, aggregate: global phase options (default by variant: ``sinusoidal`` /
            ``mean`` for the paper, ``learned`` / ``later`` for the code).
        variant: ``paper`` | ``code``.
        decouple, frequency, dual_branch: Table 2's switches (``-freq False`` = ``frequency``
            false).
        share_weights: with ``decouple``, the types' branches share their transformer weights
            (the local head / tail encoders and the global decoder) and keep their own frequency
            gates and fusion — the released code's form (its three types run through one set of
            transformer weights, only the frequency parts per type). Default off: the paper's
            separate parameters per type.
        gate: ``dataset`` (Eq. 2) | ``relation`` — the per-pair expected-frequency gate of
            :class:`DualBranchLocal` (an extension, not in the paper; its probe's logits go
            out as ``extras["frequency_probe"]`` = ``[(columns, [P, R_b] logits)]``).
        memory: :class:`tailgraph.modeling.memory.RelationMemory` options, one bank per
            branch, or ``None``.
        predicate_counts, num_predicates, groups: injected from the training split and the
            vocabulary.

    Shapes:
        ``forward(RelationInputs) -> ContextOutput(pair_feats [P, B · D])`` with ``B`` branches
        and ``D = 3·proj_dim + 2·embed_dim``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        obj_feat_dim: int,
        union_feat_dim: int,
        predicate_counts: Sequence[int],
        groups: Sequence[Sequence[Any]],
        num_predicates: int,
        proj_dim: int = 512,
        embed_dim: int = 200,
        num_heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        spatial_layers: int = 1,
        temporal_layers: int = 3,
        window: int = 2,
        position: str | None = None,
        aggregate: str | None = None,
        variant: str = "paper",
        decouple: bool = True,
        frequency: bool = True,
        dual_branch: bool = True,
        memory: dict | None = None,
        union_is_map: bool = False,
        gate: str = "dataset",
        share_weights: bool = False,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self._init_relation_features(
            class_names, obj_feat_dim, union_feat_dim, proj_dim, embed_dim, union_is_map
        )
        d = self.relation_dim
        if d % num_heads:
            raise ValueError(f"model width {d} must be divisible by num_heads {num_heads}")
        if len(predicate_counts) != num_predicates:
            raise ValueError(
                f"predicate_counts has {len(predicate_counts)} entries for {num_predicates} "
                "predicates"
            )
        if position is None:
            position = "sinusoidal" if variant == "paper" else "learned"
        if aggregate is None:
            aggregate = "mean" if variant == "paper" else "later"
        if variant == "code" and window != 2:
            raise ValueError("variant 'code' uses STTran's window of 2 frames")
        self.variant, self.decouple = variant, bool(decouple)
        typed_cols = [[int(c) for c in g[1]] for g in groups]
        all_cols = sorted({c for cols in typed_cols for c in cols})
        branch_cols = typed_cols if self.decouple else [all_cols]
        total = float(sum(predicate_counts[c] for c in all_cols))
        self.local = nn.ModuleList(
            DualBranchLocal(
                d,
                [predicate_counts[c] for c in cols],
                total=total,
                num_heads=num_heads,
                ff_dim=ff_dim,
                dropout=dropout,
                layers=spatial_layers,
                variant=variant,
                frequency=frequency,
                dual_branch=dual_branch,
                gate=gate,
            )
            for cols in branch_cols
        )
        self.branch_cols = [list(c) for c in branch_cols]
        self.share_weights = bool(share_weights) and self.decouple
        self.temporal = nn.ModuleList(
            WindowedDecoder(
                d, num_heads, ff_dim, dropout, temporal_layers, window, position, aggregate
            )
            for _ in branch_cols
        )
        if self.share_weights:  # the released code: one set of transformer weights for all
            for b in range(1, len(branch_cols)):
                self.local[b].head = self.local[0].head
                if self.local[0].dual_branch:
                    self.local[b].tail = self.local[0].tail
                self.temporal[b] = self.temporal[0]
        self.memory = None
        self.memories = None
        if memory is not None:
            from tailgraph.modeling.memory import RelationMemory

            opts = {"predicate_counts": list(predicate_counts), **dict(memory)}
            self.memories = nn.ModuleList(
                RelationMemory(d, num_predicates, groups, **opts) for _ in branch_cols
            )
        self.per_type_outputs = self.decouple
        self.branch_dim = d
        self.out_dim = self.hidden_dim = d * len(branch_cols)

    def forward(self, inp: RelationInputs) -> ContextOutput:
        x = self.relation_features(inp)
        frame = inp.obj_to_img[inp.pairs[:, 0]]
        nf = inp.num_images
        padded, valid, pos = pad_by_image(x, frame, nf)
        outs: list[torch.Tensor] = []
        writes: list = []
        probes: list = []
        for b, (local, temporal) in enumerate(zip(self.local, self.temporal)):
            zp, probe = local(padded, valid, return_probe=True)
            z = unpad(zp, frame, pos)
            if probe is not None:
                probes.append((self.branch_cols[b], unpad(probe, frame, pos)))
            mem = self.memories[b] if self.memories is not None else None
            if mem is not None and mem.fusion == "early":
                writes.append((mem, z.detach()))
                z = mem(z)
            e = temporal(z, frame, nf)
            if mem is not None and mem.fusion == "late":
                writes.append((mem, e.detach()))
                e = mem(e)
            outs.append(e)
        extras = {"frequency_probe": probes} if probes else {}
        return ContextOutput(pair_feats=torch.cat(outs, dim=1), memory_writes=writes, extras=extras)


class FReMuRe(Tempura):
    """FReMuRe's training losses (methods.md §2; the architecture is
    :class:`FReMuReContext` + a typed Bayesian / GMM-Plus head).

    Attention (single-label): cross-entropy on the head's logits (for the probabilistic
    heads, the log of their averaged probabilities: NLL). Spatial and contacting
    (multi-label): ``bce`` — binary cross-entropy — or ``margin`` — PyTorch's multi-label margin
    loss on the predicted probabilities, as STTran. Plus the head's regulariser (GMM-Plus:
    the frequency-aware variance floor) weighted by ``head_reg_weight``, and the object losses.

    Args:
        multilabel_loss: ``bce`` | ``margin``.
        type_weights: per relation type loss weights (:class:`tailgraph.methods.base.Supervised`).
        head_reg_weight: weight of the head regulariser.
        obj_eos_coef: background weight of the object cross-entropy (SGCls).
        obj_con_weight: weight of TEMPURA's ``euc_con`` object loss (SGCls with
            :class:`tailgraph.modeling.object_classifier.TempuraObjectClassifier`).
    """

    def __init__(
        self,
        multilabel_loss: str = "bce",
        head_reg_weight: float = 1.0,
        obj_eos_coef: float | None = None,
        obj_con_weight: float = 0.0,
        type_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__(
            head_reg_weight=head_reg_weight,
            obj_eos_coef=obj_eos_coef,
            obj_con_weight=obj_con_weight,
            multilabel_loss=multilabel_loss,
            type_weights=type_weights,
        )

    def training_step(self, model, batch):
        if self.protocol is None:
            raise RuntimeError("Method.setup(...) must run before training_step")
        out = model(batch)
        targets = self.protocol.targets(batch.graphs, out.pairs)
        self.after_forward(model, batch, out, targets)
        losses = self.predicate_losses(model, out, targets)
        losses.update(self.model_losses(model, batch, out, targets))
        probes = out.extras.get("frequency_probe")
        if probes:  # gate "relation": the probe predicts each branch's classes
            losses["loss_frequency_probe"] = torch.stack(
                [frequency_probe_loss(logits, targets.multi_hot, cols) for cols, logits in probes]
            ).mean()
        return losses


def frequency_probe_loss(
    logits: torch.Tensor, multi_hot: torch.Tensor, columns: Sequence[int]
) -> torch.Tensor:
    """Cross-entropy of the relation gate's probe ``[P, R_b]`` against each pair's labels in
    the branch's ``columns``, normalised to a distribution (pairs without one give 0)."""
    cols = torch.as_tensor(list(columns), device=multi_hot.device)
    y = multi_hot.index_select(1, cols).to(logits.dtype)
    n = y.sum(1, keepdim=True)
    has = n.squeeze(1) > 0
    if not bool(has.any()):
        return logits.sum() * 0.0
    q = y[has] / n[has]
    return -(q * torch.log_softmax(logits[has], -1)).sum(-1).mean()
