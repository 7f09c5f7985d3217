"""One predicate head per relation type (Action Genome's attention / spatial / contacting).

Any head class (linear, GMM, GMM-Plus, Bayesian, prototype) can serve each relation type;
sizes come from the vocabulary's relation types, and the activation from whether the type is
single-label (softmax: the head outputs proper softmax logits) or multi-label (sigmoid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tailgraph.modeling.types import HeadOutput, PredicateHead

__all__ = ["TypedHead"]

DEFAULT_TYPE_HEAD = {"class_path": "tailgraph.modeling.heads.linear.LinearHead"}


class TypedHead(PredicateHead):
    """A head per relation type, outputs laid out in vocabulary columns.

    Args:
        in_dim: pair feature size ``D``.
        num_predicates: vocabulary predicates ``R``.
        groups: ``[(type name, predicate columns, single_label)]`` (injected from the
            vocabulary by :func:`tailgraph.modeling.builder.build_model`).
        head: spec of the head used for every type (default :class:`LinearHead`).
        per_type: ``{type name: spec}`` overriding ``head`` for some types.
        predicate_counts: training counts per vocabulary predicate (sliced per type for heads
            that take them).
        split_input: the pair feature is one block per relation type, in the order of
            ``groups`` (a decoupled context such as FReMuRe's; injected from the context's
            ``per_type_outputs``): type ``k``'s head reads block ``k`` of ``in_dim / T``.

    Each type's head is built with ``in_dim``, ``num_predicates`` = the type's size, and
    ``act`` / ``multilabel`` set from the type (a recipe that asks a single-label type for a
    sigmoid head is refused).

    Shapes:
        ``forward(x [P, D]) -> HeadOutput(logits [P, R], probs [P, R])``; columns that belong
        to no type (a background column of a multi-label vocabulary) hold logit 0 and
        probability 0; ``extras`` hold each type's own :class:`HeadOutput` by type name.
    """

    def __init__(
        self,
        in_dim: int,
        num_predicates: int,
        groups: Sequence[Sequence[Any]],
        head: Mapping[str, Any] | None = None,
        per_type: Mapping[str, Mapping[str, Any]] | None = None,
        predicate_counts: Sequence[int] | None = None,
        split_input: bool = False,
    ) -> None:
        super().__init__()
        from torch import nn

        from tailgraph.components import build_component

        per_type = dict(per_type or {})
        names = [str(g[0]) for g in groups]
        unknown = [t for t in per_type if t not in names]
        if unknown:
            raise ValueError(
                f"per_type names unknown relation types {unknown}; the vocabulary has {names}"
            )
        self.names = names
        self.single = [bool(g[2]) for g in groups]
        self.num_predicates = num_predicates
        self.split_input = bool(split_input)
        if self.split_input and in_dim % len(groups):
            raise ValueError(
                f"split_input: in_dim {in_dim} is not {len(groups)} equal per-type blocks"
            )
        self.block = in_dim // len(groups) if self.split_input else in_dim
        heads = []
        for name, cols, single in groups:
            cols = [int(c) for c in cols]
            spec = dict(per_type.get(str(name)) or head or DEFAULT_TYPE_HEAD)
            init = dict(spec.get("init_args") or {})
            want = "softmax" if single else "sigmoid"
            if "act" in init and init["act"] != want:
                raise ValueError(
                    f"relation type {name!r} is {'single' if single else 'multi'}-label: its "
                    f"head needs act={want!r}"
                )
            if "multilabel" in init and bool(init["multilabel"]) == bool(single):
                raise ValueError(
                    f"relation type {name!r} is {'single' if single else 'multi'}-label: "
                    f"multilabel={not single} needed"
                )
            injected: dict[str, Any] = {
                "in_dim": self.block,
                "num_predicates": len(cols),
                "act": want,
                "multilabel": not single,
            }
            if predicate_counts is not None:
                injected["predicate_counts"] = [int(predicate_counts[c]) for c in cols]
            built = build_component(spec, injected, kind=PredicateHead)
            if built.act != want:
                raise ValueError(
                    f"relation type {name!r} needs a {want} head; {spec['class_path']} is "
                    f"{built.act}"
                )
            heads.append(built)
            self.register_buffer(
                f"_cols_{len(heads) - 1}", torch.tensor(cols, dtype=torch.int64), persistent=False
            )
        self.heads = nn.ModuleList(heads)
        self.act = "softmax" if all(self.single) else "sigmoid"

    def _cols(self, k: int) -> torch.Tensor:
        return getattr(self, f"_cols_{k}")

    def forward(self, x: torch.Tensor) -> HeadOutput:
        logits = x.new_zeros((x.shape[0], self.num_predicates))
        probs = x.new_zeros((x.shape[0], self.num_predicates))
        extras: dict[str, Any] = {}
        for k, (name, h) in enumerate(zip(self.names, self.heads)):
            out = h(x[:, k * self.block : (k + 1) * self.block] if self.split_input else x)
            cols = self._cols(k)
            p = out.probs if out.probs is not None else torch.softmax(out.logits, -1)
            logits = logits.index_copy(1, cols, out.logits)
            probs = probs.index_copy(1, cols, p)
            extras[name] = out
        return HeadOutput(logits=logits, probs=probs, extras=extras)

    def regularizer(self, out: HeadOutput) -> torch.Tensor | None:
        """Sum of the per-type heads' regularisers."""
        terms = [h.regularizer(out.extras[name]) for name, h in zip(self.names, self.heads)]  # type: ignore[operator]
        terms = [t for t in terms if t is not None]
        return torch.stack(terms).sum() if terms else None
