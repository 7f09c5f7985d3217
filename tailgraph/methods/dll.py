"""DLL — Decoupled Label Learning for video scene graphs (seed 001; methods.md §3).

Two parts, each switchable:

* **PDL** (pattern-level decoupling) replaces the base model's predicate classifier with
  :class:`DecoupledHead`: decouplers ``D_a``, ``D_s`` split the pair's video feature ``f_v``
  into an actional and a spatial feature, pattern classifiers ``A`` and ``S`` score the
  actional / spatial patterns, mutual calibration (Eq. 7–8) aligns the two pattern
  distributions with the predicate space, and ``Map`` (Eq. 6) couples them into predicate
  logits. Adversarial disentanglement (Eq. 2–5) trains opposite-pattern networks ``N_s2a`` /
  ``N_a2s`` to recover the other pattern from each feature, behind a gradient-reversal layer so
  the decouplers learn to remove it.
* **KDL** (knowledge-level decoupling) learns a predicate correlation matrix ``M`` from the
  model's non-target predictions (Eq. 10) and transfers the non-target knowledge of each
  ground-truth predicate's *header* (the most frequent predicate sharing one of its patterns)
  back to the model (Eq. 11), with a growing weight ``α`` (Eq. 12).

``L = L_PDL + γ L_KDL`` with ``γ = 0.99^epoch`` (Eq. 13), ``L_PDL = λ L_r``,
``L_KDL = L_t + L_cm + α L_nt``; the base model's object loss is kept.

Readings of points the paper leaves open (documented choices):

* ``L_r = KL(p_a2s ‖ sg(p_a)) + KL(p_s2a ‖ sg(p_s))`` with ``p_a2s = A(N_s2a(R(f_s)))`` and
  ``p_s2a = S(N_a2s(R(f_a)))`` (``R`` = :func:`grad_reverse`, ``sg`` = stop-gradient); pattern
  distributions are the softmax of the pattern logits. Minimising ``λ L_r`` trains ``N`` (and
  ``A`` / ``S`` on these inputs) to recover the opposite pattern and, through ``R``, the
  decouplers to remove it — the printed Eq. 4 compares distributions of different pattern
  spaces and is not computable as written, so it is not offered.
* ``Map`` on logits: a dual-pattern predicate's logit is the mean of its two pattern logits, a
  single-pattern predicate's the logit of its pattern. ``Map⁻¹``: a pattern's value is the mean
  over the predicates that contain it; a pattern no predicate uses keeps its own value.
  Mutual calibration runs in the head's forward (training and inference).
* ``M``'s rows are distributions: ``softmax`` of a learnable matrix initialised to
  ``ln(1000 (P − 1)) · I`` (softmax ≈ I, 0.999 on the diagonal).
* ``L_t``: binary cross-entropy (``target_loss: bce``, the paper) or the base model's binary
  focal loss (``focal``), summed over predicates and averaged over pairs. ``L_cm`` and ``L_nt``
  are averaged over every ground-truth (pair, predicate) position of the batch.
* The header ``h`` of a predicate ``k`` is the predicate with the largest training count among
  those sharing ``k``'s actional or spatial pattern, ``k`` included (ties: lower index).
* ``α`` is held at ``alpha`` for ``alpha_hold_epochs`` epochs, then grows with the iteration
  count ``n`` after the hold: ``α = α_0 + β n`` (``alpha_growth: linear``, the default) or
  Eq. 12's recurrence ``α ← α + β i`` taken literally over ``i = 1, 2, …``
  (``recurrence``: ``α_n = α_0 + β n (n + 1) / 2``). The literal recurrence is quadratic: on
  VidVRD's schedule (≈ 90k iterations after the hold) it reaches α ≈ 4·10⁵, and on synth-vrd it
  drives ``L_nt`` to dominate and collapses recall (``benchmarks/RESULTS.md``), so the linear
  reading is the default. ``alpha_max`` optionally caps ``α``. Derived from the step number
  (kept in a buffer), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailgraph.methods.base import Method
from tailgraph.modeling.types import SegmentRelationModel

__all__ = [
    "grad_reverse",
    "PatternMap",
    "mutual_calibration",
    "non_target",
    "DecoupledHead",
    "DLL",
    "kl_divergence",
    "header_predicates",
]

_EPS = 1e-12


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Gradient reversal: identity forward, ``−coeff · grad`` backward."""
    return _GradReverse.apply(x, float(coeff))


class PatternMap(nn.Module):
    """The fixed correspondence between predicates and their actional / spatial patterns.

    Args:
        predicate_action: ``[P]`` actional pattern index of each predicate (−1 = none).
        predicate_spatial: ``[P]`` spatial pattern index of each predicate (−1 = none).
        num_action, num_spatial: numbers of patterns.

    ``to_predicates(a [..., A], s [..., S]) -> [..., P]`` is ``Map`` (mean of the two pattern
    values for a dual-pattern predicate, the one value for a single-pattern predicate);
    ``to_patterns(p [..., P]) -> (a [..., A], s [..., S])`` is ``Map⁻¹`` (a pattern's value is
    the mean over the predicates that contain it; 0 for a pattern no predicate uses —
    :func:`mutual_calibration` keeps such a pattern's own value).
    """

    from_p_a: torch.Tensor
    from_p_s: torch.Tensor
    predicate_action: torch.Tensor
    predicate_spatial: torch.Tensor
    to_p_a: torch.Tensor
    to_p_s: torch.Tensor
    used_a: torch.Tensor
    used_s: torch.Tensor

    def __init__(
        self,
        predicate_action: Sequence[int],
        predicate_spatial: Sequence[int],
        num_action: int,
        num_spatial: int,
    ) -> None:
        super().__init__()
        act = torch.as_tensor(list(predicate_action), dtype=torch.int64)
        spa = torch.as_tensor(list(predicate_spatial), dtype=torch.int64)
        if act.shape != spa.shape or act.dim() != 1:
            raise ValueError(
                "predicate_action and predicate_spatial must be 1-d and of equal length"
            )
        if ((act < -1) | (act >= num_action)).any() or ((spa < -1) | (spa >= num_spatial)).any():
            raise ValueError("pattern index out of range")
        if ((act < 0) & (spa < 0)).any():
            k = int(((act < 0) & (spa < 0)).nonzero()[0])
            raise ValueError(f"predicate {k} has neither an actional nor a spatial pattern")
        p = act.numel()
        dual = (act >= 0) & (spa >= 0)
        w = torch.where(dual, 0.5, 1.0)
        to_p_a = torch.zeros(num_action, p)
        to_p_s = torch.zeros(num_spatial, p)
        cols = torch.arange(p)
        to_p_a[act[act >= 0], cols[act >= 0]] = w[act >= 0]
        to_p_s[spa[spa >= 0], cols[spa >= 0]] = w[spa >= 0]
        member_a = (to_p_a > 0).float()
        member_s = (to_p_s > 0).float()
        self.register_buffer("predicate_action", act, persistent=False)
        self.register_buffer("predicate_spatial", spa, persistent=False)
        self.register_buffer("to_p_a", to_p_a, persistent=False)
        self.register_buffer("to_p_s", to_p_s, persistent=False)
        self.register_buffer(
            "from_p_a",
            (member_a / member_a.sum(1, keepdim=True).clamp_min(1)).T.contiguous(),
            persistent=False,
        )
        self.register_buffer(
            "from_p_s",
            (member_s / member_s.sum(1, keepdim=True).clamp_min(1)).T.contiguous(),
            persistent=False,
        )
        self.register_buffer("used_a", member_a.sum(1) > 0, persistent=False)
        self.register_buffer("used_s", member_s.sum(1) > 0, persistent=False)
        self.num_action, self.num_spatial, self.num_predicates = num_action, num_spatial, p

    @classmethod
    def from_names(
        cls, action: Sequence[str | None], spatial: Sequence[str | None]
    ) -> tuple[PatternMap, list[str], list[str]]:
        """From per-predicate pattern names (``None`` = none): ``(map, action names, spatial
        names)`` with the pattern names sorted."""
        a_names = sorted({a for a in action if a})
        s_names = sorted({s for s in spatial if s})
        ai = {n: i for i, n in enumerate(a_names)}
        si = {n: i for i, n in enumerate(s_names)}
        return (
            cls(
                [ai[a] if a else -1 for a in action],
                [si[s] if s else -1 for s in spatial],
                len(a_names),
                len(s_names),
            ),
            a_names,
            s_names,
        )

    def to_predicates(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return a @ self.to_p_a.to(a.dtype) + s @ self.to_p_s.to(s.dtype)

    def to_patterns(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return p @ self.from_p_a.to(p.dtype), p @ self.from_p_s.to(p.dtype)


def mutual_calibration(
    a: torch.Tensor, s: torch.Tensor, pattern_map: PatternMap, eta: float, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` rounds of Eq. 7–8: ``(a', s') = Map⁻¹(Map(a, s))``, ``a ← η a + (1 − η) a'``,
    ``s ← η s + (1 − η) s'``; a pattern no predicate uses keeps its own value."""
    for _ in range(int(steps)):
        a2, s2 = pattern_map.to_patterns(pattern_map.to_predicates(a, s))
        a2 = torch.where(pattern_map.used_a, a2, a)
        s2 = torch.where(pattern_map.used_s, s2, s)
        a, s = eta * a + (1 - eta) * a2, eta * s + (1 - eta) * s2
    return a, s


def non_target(p: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """``p`` with position ``k`` set to 0 and renormalised to sum 1 over the last dimension
    (``k``: an index, or one index per row ``[...]``)."""
    if isinstance(k, torch.Tensor) and k.dim() > 0:
        mask = F.one_hot(k, p.shape[-1]).to(torch.bool)
    else:
        mask = torch.zeros(p.shape[-1], dtype=torch.bool, device=p.device)
        mask[int(k)] = True
    q = p.masked_fill(mask, 0.0)
    return q / q.sum(-1, keepdim=True).clamp_min(_EPS)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``KL(p ‖ q) = Σ p (log p − log q)`` over the last dimension (0 · log 0 = 0)."""
    return (p * (p.clamp_min(_EPS).log() - q.clamp_min(_EPS).log())).sum(-1)


def _mlp(i: int, h: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(i, h), nn.ReLU(inplace=True), nn.Linear(h, h), nn.ReLU(inplace=True)
    )


class DecoupledHead(nn.Module):
    """PDL's predicate classifier on the pair feature ``f_v`` (Eq. 1, 6–8).

    Args:
        in_dim: size of ``f_v`` (injected).
        num_predicates: foreground predicates (injected).
        predicate_action, predicate_spatial: per-predicate pattern names (injected from the
            vocabulary's DLL metadata; ``None`` = none).
        hidden_dim: width of the decouplers / opposite-pattern networks (default ``in_dim``).
        mc_steps: mutual-calibration rounds (0 = off; paper best 1).
        eta: calibration weight η (VidVRD-II setting 1e-3; paper best 1e-2).
        grl_coeff: gradient-reversal coefficient.

    ``forward(f_v) -> {"logits" [Q, P], "action_logits", "spatial_logits", "f_a", "f_s"}``;
    :meth:`adversarial_loss` gives ``L_r`` from that output.
    """

    def __init__(
        self,
        in_dim: int,
        num_predicates: int,
        predicate_action: Sequence[str | None],
        predicate_spatial: Sequence[str | None],
        hidden_dim: int | None = None,
        mc_steps: int = 1,
        eta: float = 1e-3,
        grl_coeff: float = 1.0,
    ) -> None:
        super().__init__()
        if len(predicate_action) != num_predicates or len(predicate_spatial) != num_predicates:
            raise ValueError(
                f"pattern metadata covers {len(predicate_action)} / {len(predicate_spatial)} "
                f"predicates, expected {num_predicates}"
                " (the vocabulary needs action_pattern / spatial_pattern for DLL)"
            )
        self.pattern_map, self.action_names, self.spatial_names = PatternMap.from_names(
            predicate_action, predicate_spatial
        )
        h = hidden_dim or in_dim
        self.d_a, self.d_s = _mlp(in_dim, h), _mlp(in_dim, h)
        self.classify_a = nn.Linear(h, self.pattern_map.num_action)
        self.classify_s = nn.Linear(h, self.pattern_map.num_spatial)
        self.n_s2a, self.n_a2s = _mlp(h, h), _mlp(h, h)
        self.mc_steps, self.eta, self.grl_coeff = mc_steps, eta, grl_coeff

    def forward(self, f_v: torch.Tensor) -> dict[str, torch.Tensor]:
        f_a, f_s = self.d_a(f_v), self.d_s(f_v)
        a, s = self.classify_a(f_a), self.classify_s(f_s)
        a, s = mutual_calibration(a, s, self.pattern_map, self.eta, self.mc_steps)
        return {
            "logits": self.pattern_map.to_predicates(a, s),
            "action_logits": a,
            "spatial_logits": s,
            "f_a": f_a,
            "f_s": f_s,
        }

    def adversarial_loss(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """``L_r = KL(p_a2s ‖ sg(p_a)) + KL(p_s2a ‖ sg(p_s))`` averaged over pairs, with
        ``p_a2s = A(N_s2a(R(f_s)))``, ``p_s2a = S(N_a2s(R(f_a)))``.

        Algorithm 1 updates only D_a, D_s, N_a2s and N_s2a with Eq. 4: inside ``L_r`` the pattern
        classifiers A and S are fixed functions (their weights detached; gradients flow through
        them to N and, reversed, to D). A and S learn from the target losses only."""
        if out["f_a"].shape[0] == 0:
            return out["f_a"].sum() * 0.0
        p_a = torch.softmax(self.classify_a(out["f_a"]), -1).detach()
        p_s = torch.softmax(self.classify_s(out["f_s"]), -1).detach()
        f_s2a = self.n_s2a(grad_reverse(out["f_s"], self.grl_coeff))
        f_a2s = self.n_a2s(grad_reverse(out["f_a"], self.grl_coeff))
        p_a2s = torch.softmax(_fixed(self.classify_a, f_s2a), -1)
        p_s2a = torch.softmax(_fixed(self.classify_s, f_a2s), -1)
        return (kl_divergence(p_a2s, p_a) + kl_divergence(p_s2a, p_s)).mean()


def _fixed(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` with the layer's weights detached: a fixed function of ``x``."""
    bias = layer.bias.detach() if layer.bias is not None else None
    return F.linear(x, layer.weight.detach(), bias)


def header_predicates(pattern_map: PatternMap, counts: Sequence[int]) -> torch.Tensor:
    """``[P]``: for each predicate, the most frequent predicate sharing its actional or spatial
    pattern (itself included; ties: lower index)."""
    act, spa = pattern_map.predicate_action, pattern_map.predicate_spatial
    c = torch.as_tensor(list(counts), dtype=torch.float64)
    out = torch.empty(act.numel(), dtype=torch.int64)
    for k in range(act.numel()):
        share = ((act == act[k]) & (act >= 0)) | ((spa == spa[k]) & (spa >= 0))
        share[k] = True
        cand = share.nonzero().flatten()
        best = c[cand].max()
        out[k] = cand[c[cand] == best][0]
    return out


class DLL(Method):
    """Decoupled Label Learning on a segment-level model (VidVRD-II).

    Args:
        pdl: pattern-level decoupling (needs the model's head to be :class:`DecoupledHead`).
        kdl: knowledge-level decoupling (correlation matrix, ``L_cm``, ``L_nt``).
        adversarial: adversarial disentanglement (``L_r``; PDL only).
        adv_weight: λ of ``L_PDL = λ L_r`` (VidVRD-II: 0.13).
        alpha, beta: ``α`` start and growth β of Eq. 12 (0.1, 1e-4).
        alpha_hold_epochs: epochs ``α`` is held (VidVRD-II: 10 of 100).
        alpha_growth: ``linear`` | ``recurrence`` (Eq. 12 literally); ``alpha_max`` caps ``α``.
        gamma_decay: ``γ = gamma_decay^epoch`` (0.99).
        target_loss: ``bce`` (Eq. 9) | ``focal`` (the base model's binary focal loss).
        focal_gamma: γ of the focal target loss.
        transfer_mask: ``target`` — ``m_non^h`` is the header's row with the ground-truth
            position ``k`` masked (Eq. 11 as printed; since ``M``'s diagonal is never trained
            by ``L_cm`` it keeps most of the row's mass, so ``L_nt`` pulls tail samples towards
            the header predicate itself); ``target_and_header`` (default) also masks the header's
            own position, transferring only its non-target knowledge.
        nontarget: how ``p_non`` is formed from the scores. ``probabilities`` (default, Eq. 10–11
            as printed): the sigmoid probabilities with the masked positions dropped and the
            rest renormalised. ``logits``: a softmax over the unmasked logits, the "dark
            knowledge" distribution of knowledge distillation the paper cites — not in the
            paper's equations. The renormalised sigmoid form is invariant to a common scale of
            the probabilities, not of the logits: its gradient moves a row's logits as a whole
            as well as reshaping them; the softmax form's gradient over a row's logits sums to
            zero (it only reshapes the non-target distribution).
        transfer_temperature: ``τ`` of a sharpened transfer target, ``m_non^h ∝ (m_non^h)^(1/τ)``
            (default 1: Eq. 11 as printed). ``τ < 1`` makes the header's non-target row
            peakier — an ablation of how flat the transfer target is; not in the paper.
        transfer_on: which ground-truth positions ``L_nt`` pulls. ``all`` (default, Eq. 11):
            every one. ``misranked``: only those whose target probability does not exceed
            every predicate the pair is not annotated with (a sample already ranked right
            keeps its own non-target distribution); the sum is still divided by the number of
            all positions, so a ranked-right position adds zero. An ablation, not in the paper.

    Without PDL the predicate probabilities are the base head's; without KDL the loss is
    ``L_t + λ L_r``. The object loss of the base model is always added.
    """

    header: torch.Tensor
    hold_end_step: torch.Tensor
    last_step: torch.Tensor

    def __init__(
        self,
        pdl: bool = True,
        kdl: bool = True,
        adversarial: bool = True,
        adv_weight: float = 0.13,
        alpha: float = 0.1,
        beta: float = 1e-4,
        alpha_hold_epochs: int = 10,
        alpha_growth: str = "linear",
        alpha_max: float | None = None,
        gamma_decay: float = 0.99,
        target_loss: str = "bce",
        focal_gamma: float = 2.0,
        transfer_mask: str = "target_and_header",
        nontarget: str = "probabilities",
        transfer_temperature: float = 1.0,
        transfer_on: str = "all",
    ) -> None:
        super().__init__()
        if transfer_on not in ("all", "misranked"):
            raise ValueError(f"transfer_on must be 'all' or 'misranked', got {transfer_on!r}")
        self.transfer_on = transfer_on
        if not (math.isfinite(transfer_temperature) and transfer_temperature > 0):
            raise ValueError(
                f"transfer_temperature must be a finite number > 0, got {transfer_temperature!r}"
            )
        self.transfer_temperature = float(transfer_temperature)
        if nontarget not in ("probabilities", "logits"):
            raise ValueError(f"nontarget must be 'probabilities' or 'logits', got {nontarget!r}")
        self.nontarget = nontarget
        if alpha_growth not in ("recurrence", "linear"):
            raise ValueError(f"alpha_growth must be 'recurrence' or 'linear', got {alpha_growth!r}")
        if target_loss not in ("bce", "focal"):
            raise ValueError(f"target_loss must be 'bce' or 'focal', got {target_loss!r}")
        self.pdl, self.kdl, self.adversarial = pdl, kdl, adversarial
        self.adv_weight, self.alpha0, self.beta, self.alpha_hold_epochs = (
            adv_weight,
            alpha,
            beta,
            alpha_hold_epochs,
        )
        self.alpha_growth, self.alpha_max, self.gamma_decay = alpha_growth, alpha_max, gamma_decay
        if transfer_mask not in ("target", "target_and_header"):
            raise ValueError(
                f"transfer_mask must be 'target' or 'target_and_header', got {transfer_mask!r}"
            )
        self.target_loss, self.focal_gamma, self.transfer_mask = (
            target_loss,
            focal_gamma,
            transfer_mask,
        )
        self.correlation: nn.Parameter | None = None
        self.register_buffer("header", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("hold_end_step", torch.tensor(-1, dtype=torch.int64))
        self.register_buffer("last_step", torch.tensor(0, dtype=torch.int64))
        self.epoch = 0

    # -- setup -------------------------------------------------------------------------------
    def setup(self, model, vocab, train_stats, protocol=None) -> None:
        super().setup(model, vocab, train_stats, protocol)
        if not isinstance(model, SegmentRelationModel):
            raise ValueError(
                "DLL trains a segment-level video model (e.g. "
                "tailgraph.modeling.segment_model.VidVRD2Model)"
            )
        head = model.head
        if self.pdl and not isinstance(head, DecoupledHead):
            raise ValueError("DLL with pdl: true needs head: tailgraph.methods.dll.DecoupledHead")
        if not self.pdl and isinstance(head, DecoupledHead):
            raise ValueError(
                "DLL with pdl: false uses the base model's linear head; remove the DecoupledHead"
            )
        fg = vocab.foreground_predicates
        if isinstance(head, DecoupledHead):
            pmap = head.pattern_map
        else:
            pmap, _, _ = PatternMap.from_names(
                [vocab.action_pattern[p] for p in fg], [vocab.spatial_pattern[p] for p in fg]
            )
        counts = train_stats.predicate_counts if train_stats is not None else vocab.predicate_counts
        self.header = header_predicates(pmap, [counts[p] for p in fg])
        p = len(fg)
        if self.correlation is None:
            init = math.log(1000.0 * max(p - 1, 1))
            self.correlation = nn.Parameter(torch.eye(p) * init)

    # -- schedules ---------------------------------------------------------------------------
    def on_train_epoch_start(self, model, epoch: int) -> None:
        self.epoch = epoch

    def on_after_optimizer_step(self, model, step: int) -> None:
        self.last_step.fill_(step)
        if self.epoch < self.alpha_hold_epochs:
            self.hold_end_step.fill_(step)

    def gamma(self) -> float:
        """``γ = gamma_decay^epoch`` (Eq. 13)."""
        return self.gamma_decay**self.epoch

    def alpha(self) -> float:
        """``α`` now (Eq. 12; see the module docstring)."""
        if self.epoch < self.alpha_hold_epochs:
            return self.alpha0
        n = max(0, int(self.last_step) - int(self.hold_end_step))
        a = self.alpha0 + self.beta * (n * (n + 1) / 2 if self.alpha_growth == "recurrence" else n)
        return min(a, self.alpha_max) if self.alpha_max is not None else a

    # -- losses ------------------------------------------------------------------------------
    def kdl_losses(
        self, probs: torch.Tensor, targets: torch.Tensor, logits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_cm, L_nt)`` over every ground-truth position of ``targets`` (Eq. 10–11);
        ``logits`` (the scores before the sigmoid) are needed with ``nontarget: logits``."""
        rows, ks = targets.nonzero(as_tuple=True)
        if rows.numel() == 0:
            zero = probs.sum() * 0.0 + self.correlation.sum() * 0.0  # type: ignore[union-attr]
            return zero, zero
        m = torch.softmax(self.correlation, -1)  # type: ignore[arg-type]
        if self.nontarget == "logits":
            if logits is None:
                raise ValueError("nontarget: logits needs the logits")
            masked = logits[rows].masked_fill(F.one_hot(ks, logits.shape[-1]).bool(), -math.inf)
            p_non = torch.softmax(masked, -1)
        else:
            p_non = non_target(probs[rows], ks)
        m_k = non_target(m[ks], ks)
        heads = self.header[ks]
        m_h = non_target(m[heads], ks)
        p_t = p_non
        if self.transfer_mask == "target_and_header":
            # also drop the header's own (target) entry on both sides: transfer only its
            # non-target knowledge
            other = (heads != ks)[:, None]
            m_h = torch.where(other, non_target(m_h, heads), m_h)
            p_t = torch.where(other, non_target(p_non, heads), p_non)
        if self.transfer_temperature != 1.0:
            sharp = m_h.clamp_min(_EPS) ** (1.0 / self.transfer_temperature) * (m_h > 0)
            m_h = sharp / sharp.sum(-1, keepdim=True).clamp_min(_EPS)
        l_cm = kl_divergence(m_k, p_non.detach()).mean()
        kl_nt = kl_divergence(p_t, m_h.detach())
        if self.transfer_on == "misranked":
            others = probs[rows].detach().masked_fill(targets[rows] > 0, -math.inf)
            wrong = others.max(-1).values >= probs[rows, ks].detach()
            kl_nt = kl_nt * wrong.to(kl_nt.dtype)
        l_nt = kl_nt.mean()
        return l_cm, l_nt

    def training_step(self, model, batch):
        from tailgraph.modeling.segment_model import binary_focal_loss

        out = model(batch)
        losses = {"loss_obj": model.losses(batch, out)["loss_obj"]}
        logits = out["refined_logits"]
        if self.target_loss == "bce":
            l_t = (
                F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")
                .sum(1)
                .mean()
                if logits.numel()
                else logits.sum() * 0.0
            )
        else:
            l_t = binary_focal_loss(logits, batch.targets, self.focal_gamma)
        gamma = self.gamma() if self.kdl else 1.0
        losses["loss_target"] = gamma * l_t
        if self.pdl and self.adversarial:
            losses["loss_adversarial"] = self.adv_weight * model.head.adversarial_loss(out["head"])
        if self.kdl:
            l_cm, l_nt = self.kdl_losses(torch.sigmoid(logits), batch.targets, logits)
            losses["loss_correlation"] = gamma * l_cm
            losses["loss_transfer"] = gamma * self.alpha() * l_nt
        return losses
