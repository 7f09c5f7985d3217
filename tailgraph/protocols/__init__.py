"""Protocols: what differs between data kinds, as data — and the one table of data kinds.

A protocol is chosen by name by the data module (``datamodule.protocol``: ``vg``, ``ag``,
``oi`` or ``vidvrd``) and built from the data set's :class:`Vocabulary`. It answers three
questions and nothing else:

* **targets** — what each candidate pair should predict (:meth:`Protocol.targets`, the one
  target builder of that data kind), laid out per relation type (:class:`LossGroup`);
* **candidate pairs** — which (subject, object) pairs a model scores
  (:meth:`Protocol.candidate_pairs`) and which of them train (:meth:`Protocol.training_pairs`);
* **metric** — which evaluator scores the predictions (:meth:`Protocol.make_metric`), with
  the keys ``tailgraph evaluate --json`` writes for that protocol.

The four protocols:

========  ===========================================  =======================================
name      targets                                      pairs / metric
========  ===========================================  =======================================
``vg``    one softmax over predicates, column 0 =      all ordered pairs; R / mR / ngR / zR / A
          background; a pair may carry several         (:class:`VGRecallMetric`)
          predicates (``multi_hot``), ``labels`` keeps
          one (the last annotated)
``ag``    per relation type from the vocabulary:       person → object; with / semi / no
          single-label types (attention; index 0 is a  constraint (:class:`AGMetric`),
          real class, -100 = none) and multi-label     nested under ``with`` / ``semi`` / ``no``
          types (spatial, contacting)
``oi``    softmax over {no relation} ∪ predicates      all ordered pairs of annotated boxes;
                                                       mAP / mAP* / mAP_FG (:class:`OIMetric`)
``vidvrd`` multi-label (sigmoid) over the predicates   all ordered track pairs; RelDet / RelTag
          (background column unused)                   (:class:`VidVRDFrameMetric`)
========  ===========================================  =======================================

SGDet training (detected boxes) goes through :func:`assign_detections`, which moves the ground
truth's relations onto the detections that overlap their boxes, so the same target builder
serves every task.

:data:`DATA_KINDS` is the only place that names the data kinds: per kind its protocol, its
reader, its statistics function, the kind written in interchange files, the K values of
``tailgraph evaluate`` and its synthetic variant. The command line (``synth``, ``stats``,
``evaluate``, ``convert``) and the data modules read it; a new data kind is one row here, one
module in ``protocols/``, one reader in ``data/``, one data module and one evaluator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tailgraph.errors import DataError
from tailgraph.protocols.files import EvalOptions, FileEvaluation

if TYPE_CHECKING:  # the names below are imported on first use (``__getattr__``)
    from tailgraph.protocols.ag import AGProtocol
    from tailgraph.protocols.base import (
        LossGroup,
        Protocol,
        Targets,
        assign_detections,
        pair_relation_targets,
        sample_background_pairs,
    )
    from tailgraph.protocols.vg import OIProtocol, VGProtocol
    from tailgraph.protocols.vidvrd import VidVRDProtocol, frames_to_relation_instances
    from tailgraph.structures import Task
    from tailgraph.vocab import Vocabulary

__all__ = [
    "DataKind",
    "DATA_KINDS",
    "data_kind",
    "synthetic_kind",
    "load_dataset",
    "EvalOptions",
    "LossGroup",
    "Targets",
    "Protocol",
    "VGProtocol",
    "AGProtocol",
    "OIProtocol",
    "VidVRDProtocol",
    "PROTOCOLS",
    "build_protocol",
    "assign_detections",
    "sample_background_pairs",
    "pair_relation_targets",
    "frames_to_relation_instances",
]


def _resolve(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class DataKind:
    """One data kind: everything the command line and the data modules need to know of it.

    The code of a kind is named by ``"module:attribute"`` references and imported on first
    use, so that a command that needs one part (``evaluate``: the file evaluation, numpy
    only) does not import the others (the protocol's targets, the readers: torch).

    Attributes:
        name: the kind's name (``--format`` of ``stats`` / ``evaluate``, ``--protocol``).
        protocol: its :class:`Protocol` class.
        files: its evaluation from files (:mod:`tailgraph.protocols.files`).
        reader: ``reader(root, split, *, layout_only=True, **options) -> (samples, vocab)``.
        stats: ``stats(root) -> dict`` (``tailgraph stats --json``).
        interchange: the ``protocol`` value of its interchange files.
        default_ks: the K values ``tailgraph evaluate`` reports by default.
        synthetic: the name of its synthetic variant (``tailgraph synth --variant``).
        generate: the synthetic generator, ``generate(out, *, num_train, num_test, seed,
            image_size) -> info``.
    """

    name: str
    protocol_ref: str
    files_ref: str
    reader_ref: str
    stats_ref: str
    interchange: str
    default_ks: tuple[int, ...]
    synthetic: str
    generate_ref: str

    @property
    def protocol(self) -> type[Protocol]:
        return _resolve(self.protocol_ref)

    @property
    def files(self) -> type[FileEvaluation]:
        return _resolve(self.files_ref)

    @property
    def reader(self) -> Callable[..., tuple[list[Any], Vocabulary]]:
        return _resolve(self.reader_ref)

    @property
    def stats(self) -> Callable[[str], dict[str, Any]]:
        return _resolve(self.stats_ref)

    @property
    def generate(self) -> Callable[..., Any]:
        return _resolve(self.generate_ref)


_P, _F, _D = "tailgraph.protocols", "tailgraph.protocols.files", "tailgraph.data"
DATA_KINDS: dict[str, DataKind] = {
    k.name: k
    for k in (
        DataKind("vg", f"{_P}.vg:VGProtocol", f"{_F}:VGFiles", f"{_D}.vg:load_vg",
                 f"{_D}.vg:stats", "vg", (20, 50, 100), "synth-vg",
                 f"{_D}.synthetic:generate_synth_vg"),
        DataKind("ag", f"{_P}.ag:AGProtocol", f"{_F}:AGFiles", f"{_D}.action_genome:load_ag",
                 f"{_D}.action_genome:stats", "ag", (10, 20, 50), "synth-ag",
                 f"{_D}.synthetic.ag:generate_synth_ag"),
        DataKind("oi", f"{_P}.vg:OIProtocol", f"{_F}:OIFiles", f"{_D}.openimages:load_oi",
                 f"{_D}.openimages:stats", "oi", (20, 50, 100), "synth-oi",
                 f"{_D}.synthetic.oi:generate_synth_oi"),
        DataKind("vidvrd", f"{_P}.vidvrd:VidVRDProtocol", f"{_F}:VidVRDFiles",
                 f"{_D}.vidvrd:load_vidvrd", f"{_D}.vidvrd:stats", "vidvrd", (50, 100),
                 "synth-vrd", f"{_D}.synthetic.vrd:generate_synth_vrd"),
    )
}  # fmt: skip

# the names re-exported from the protocol modules, imported on first use
_LAZY = {
    "Protocol": "base",
    "LossGroup": "base",
    "Targets": "base",
    "assign_detections": "base",
    "sample_background_pairs": "base",
    "pair_relation_targets": "base",
    "VGProtocol": "vg",
    "OIProtocol": "vg",
    "AGProtocol": "ag",
    "VidVRDProtocol": "vidvrd",
    "frames_to_relation_instances": "vidvrd",
}


def __getattr__(name: str) -> Any:
    if name == "PROTOCOLS":
        return {k.name: k.protocol for k in DATA_KINDS.values()}
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_kind(name: str, field: str = "format") -> DataKind:
    """The row of :data:`DATA_KINDS` named ``name`` (a :class:`DataError` naming ``field``
    otherwise)."""
    if name not in DATA_KINDS:
        raise DataError(
            f"unknown data kind {name!r}; expected one of {sorted(DATA_KINDS)}", field=field
        )
    return DATA_KINDS[name]


def synthetic_kind(variant: str) -> DataKind:
    """The data kind whose synthetic variant is ``variant`` (``synth-vg`` …)."""
    for k in DATA_KINDS.values():
        if k.synthetic == variant:
            return k
    raise DataError(
        f"unknown synthetic variant {variant!r}; expected one of "
        f"{sorted(k.synthetic for k in DATA_KINDS.values())}",
        field="--variant",
    )


def load_dataset(
    format: str, root: str, split: str = "test", *, layout_only: bool = True, **options: Any
):
    """Read one split of a data set on disk.

    Args:
        format: a data kind of :data:`DATA_KINDS` (``vg`` | ``ag`` | ``vidvrd`` | ``oi``).
        root: the data set's folder.
        split: ``train`` | ``val`` | ``test``.
        layout_only: do not require image files (boxes, labels and relations only).
        **options: reader-specific options (filters, file names).
    Returns:
        ``(samples, vocabulary)``: a list of :class:`SceneGraph` (images) or
        :class:`VideoSceneGraph` (videos) and the data set's :class:`Vocabulary`.
    """
    return data_kind(format).reader(root, split, layout_only=layout_only, **options)


def build_protocol(
    name: str,
    vocab: Vocabulary,
    task: Task | str = "predcls",
    ks: Sequence[int] | None = None,
    **options: Any,
) -> Protocol:
    """The protocol ``name`` (``vg`` | ``ag`` | ``oi`` | ``vidvrd``) for ``vocab``."""
    if name not in DATA_KINDS:
        raise ValueError(f"unknown protocol {name!r}; expected one of {sorted(DATA_KINDS)}")
    return DATA_KINDS[name].protocol(vocab, task, ks, **options)
