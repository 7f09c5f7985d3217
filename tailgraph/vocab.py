"""Vocabularies: object classes and predicates, with the predicate metadata the methods use.

A :class:`Vocabulary` travels with every data set and every checkpoint, so ``predict`` never
needs the training set. Predicate metadata:

* ``predicate_counts``: training-split frequency of each predicate (FReMuRe's gate, BMP's
  majority/minority split, HML's tree, class-balanced losses).
* ``coarse_parent``: index of the coarse parent predicate of a fine one, or ``-1``
  (mixed-granularity labels, HML).
* ``action_pattern`` / ``spatial_pattern``: the actional / spatial pattern a predicate is made
  of, or ``None`` (DLL's decoupling).
* ``relation_type``: ``attention`` / ``spatial`` / ``contacting`` for Action Genome, or any
  grouping a data set defines.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tailgraph.errors import DataError

BACKGROUND = "__background__"

__all__ = ["Vocabulary", "BACKGROUND"]


@dataclass
class Vocabulary:
    """Object classes and predicates of a data set.

    Args:
        object_classes: class names; index 0 is ``__background__`` when ``has_background``.
        predicates: predicate names; index 0 is ``__background__`` (no relation) when
            ``predicate_background`` is true.
        predicate_counts: training count per predicate index (background count is 0).
        object_counts: training count per class index.
        coarse_parent: per predicate, index of its coarse parent or -1.
        action_pattern: per predicate, name of its actional pattern or ``None``.
        spatial_pattern: per predicate, name of its spatial pattern or ``None``.
        relation_type: per predicate, a type name (``attention`` / ``spatial`` /
            ``contacting``) or ``None``.
        single_label_types: relation types whose predicates are mutually exclusive for a pair
            (one softmax over the type, e.g. Action Genome's ``attention``); the other types
            are multi-label (one sigmoid per predicate).
        name: data set name (informational).
    """

    object_classes: list[str]
    predicates: list[str]
    predicate_counts: list[int] = field(default_factory=list)
    object_counts: list[int] = field(default_factory=list)
    coarse_parent: list[int] = field(default_factory=list)
    action_pattern: list[str | None] = field(default_factory=list)
    spatial_pattern: list[str | None] = field(default_factory=list)
    relation_type: list[str | None] = field(default_factory=list)
    single_label_types: list[str] = field(default_factory=list)
    has_background: bool = True
    predicate_background: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        sample = self.name or None
        for fname in (
            "object_classes",
            "predicates",
            "predicate_counts",
            "object_counts",
            "coarse_parent",
            "action_pattern",
            "spatial_pattern",
            "relation_type",
            "single_label_types",
        ):
            v = getattr(self, fname)
            if v is not None and not isinstance(v, (list, tuple)):
                raise DataError(f"expected a list, got {v!r}"[:200], sample=sample, field=fname)
        for fname in ("object_classes", "predicates"):
            names = list(getattr(self, fname))
            bad = [n for n in names if not isinstance(n, str) or not n]
            if bad:
                raise DataError(
                    f"names must be non-empty strings, got {bad[0]!r}"[:200],
                    sample=sample,
                    field=fname,
                )
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise DataError(f"duplicate names {dup}"[:200], sample=sample, field=fname)
        for fname in ("predicate_counts", "object_counts", "coarse_parent"):
            for v in getattr(self, fname) or []:
                if (
                    isinstance(v, bool)
                    or not isinstance(v, numbers.Integral)
                    or (fname != "coarse_parent" and v < 0)
                ):
                    raise DataError(
                        f"entries must be {'non-negative ' if fname != 'coarse_parent' else ''}"
                        f"integers, got {v!r}"[:200],
                        sample=sample,
                        field=fname,
                    )
        for fname in ("action_pattern", "spatial_pattern", "relation_type", "single_label_types"):
            for v in getattr(self, fname) or []:
                if v is not None and not isinstance(v, str):
                    raise DataError(
                        f"entries must be names or null, got {v!r}"[:200],
                        sample=sample,
                        field=fname,
                    )
        self.object_classes = list(self.object_classes)
        self.predicates = list(self.predicates)
        p = len(self.predicates)
        if not self.predicate_counts:
            self.predicate_counts = [0] * p
        if not self.object_counts:
            self.object_counts = [0] * len(self.object_classes)
        if not self.coarse_parent:
            self.coarse_parent = [-1] * p
        if not self.action_pattern:
            self.action_pattern = [None] * p
        if not self.spatial_pattern:
            self.spatial_pattern = [None] * p
        if not self.relation_type:
            self.relation_type = [None] * p
        for fname in (
            "predicate_counts",
            "coarse_parent",
            "action_pattern",
            "spatial_pattern",
            "relation_type",
        ):
            if len(getattr(self, fname)) != p:
                raise DataError(
                    f"has {len(getattr(self, fname))} entries for {p} predicates",
                    sample=self.name or None,
                    field=fname,
                )
        self.single_label_types = list(self.single_label_types)
        unknown = [t for t in self.single_label_types if t not in self.relation_type]
        if unknown:
            raise DataError(
                f"single-label types {unknown} are not relation types of any predicate",
                sample=self.name or None,
                field="single_label_types",
            )
        if len(self.object_counts) != len(self.object_classes):
            raise DataError(
                f"has {len(self.object_counts)} entries for {len(self.object_classes)} classes",
                sample=self.name or None,
                field="object_counts",
            )
        for i, parent in enumerate(self.coarse_parent):
            if parent != -1 and not (0 <= parent < p):
                raise DataError(
                    f"predicate {i} has parent {parent} out of range",
                    sample=sample,
                    field="coarse_parent",
                )
        self._pred_index = {n: i for i, n in enumerate(self.predicates)}
        self._cls_index = {n: i for i, n in enumerate(self.object_classes)}

    # ------------------------------------------------------------------ sizes
    @property
    def num_classes(self) -> int:
        """Number of object classes including background (if any)."""
        return len(self.object_classes)

    @property
    def num_predicates(self) -> int:
        """Number of predicates including background (if any)."""
        return len(self.predicates)

    @property
    def foreground_predicates(self) -> list[int]:
        """Indices of the real predicates (background excluded)."""
        start = 1 if self.predicate_background else 0
        return list(range(start, self.num_predicates))

    def predicate_index(self, name: str) -> int:
        try:
            return self._pred_index[name]
        except KeyError:
            raise DataError(f"unknown predicate {name!r}", field="predicates") from None

    def class_index(self, name: str) -> int:
        try:
            return self._cls_index[name]
        except KeyError:
            raise DataError(f"unknown object class {name!r}", field="object_classes") from None

    def predicate_frequency(self) -> list[float]:
        """Training frequency of each predicate (counts / total; background 0)."""
        total = float(sum(self.predicate_counts)) or 1.0
        return [c / total for c in self.predicate_counts]

    def with_counts(
        self, predicate_counts: Sequence[int], object_counts: Sequence[int] | None = None
    ) -> Vocabulary:
        """A copy with other counts (e.g. recounted on the filtered training split)."""
        d = self.to_dict()
        d["predicate_counts"] = [int(c) for c in predicate_counts]
        if object_counts is not None:
            d["object_counts"] = [int(c) for c in object_counts]
        return Vocabulary.from_dict(d)

    def relation_groups(self) -> list[tuple[str | None, list[int]]]:
        """Predicates grouped by relation type, in order of first appearance.

        Returns:
            ``[(type, predicate indices)]``; a vocabulary without types is one group
            ``(None, every predicate)`` (background included when it has one).
        """
        groups: dict[str | None, list[int]] = {}
        for i, t in enumerate(self.relation_type):
            groups.setdefault(t, []).append(i)
        if set(groups) == {None}:
            return [(None, list(range(self.num_predicates)))]
        return list(groups.items())

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "object_classes": list(self.object_classes),
            "predicates": list(self.predicates),
            "predicate_counts": [int(c) for c in self.predicate_counts],
            "object_counts": [int(c) for c in self.object_counts],
            "coarse_parent": [int(c) for c in self.coarse_parent],
            "action_pattern": list(self.action_pattern),
            "spatial_pattern": list(self.spatial_pattern),
            "relation_type": list(self.relation_type),
            "single_label_types": list(self.single_label_types),
            "has_background": bool(self.has_background),
            "predicate_background": bool(self.predicate_background),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocabulary:
        required = ("object_classes", "predicates")
        for key in required:
            if key not in d:
                raise DataError(f"vocabulary is missing key '{key}'", field=key)
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)
