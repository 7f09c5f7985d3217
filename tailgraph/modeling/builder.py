"""Building a relation model from a recipe's component specs, without Lightning.

    from tailgraph.modeling.builder import build_model
    model = build_model(vocab,
                        context={"class_path": "tailgraph.modeling.context.motifs.MotifsContext"},
                        features=None, task="predcls", train_stats=stats)

Everything a component needs from the data set reaches it through one mechanism,
:func:`vocab_injection`: the vocabulary (class and predicate names, sizes, relation types,
DLL patterns, coarse parents), the training split's counts, and the sizes of the stages
before it. A spec sets any of these explicitly to override them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from tailgraph.components import build_component, import_class
from tailgraph.modeling.relation_model import RelationModel
from tailgraph.modeling.types import ContextModel, FeatureStage, PredicateHead, SegmentRelationModel
from tailgraph.structures import Task
from tailgraph.vocab import Vocabulary

__all__ = [
    "build_model",
    "vocab_injection",
    "default_groups",
    "DEFAULT_CONTEXT",
    "DEFAULT_HEAD",
    "DEFAULT_FEATURES",
]

DEFAULT_CONTEXT = {
    "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
    "init_args": {"hidden_dim": 256},
}
DEFAULT_HEAD = {"class_path": "tailgraph.modeling.heads.linear.LinearHead"}
DEFAULT_FEATURES = {
    "class_path": "tailgraph.modeling.roi.PixelFeatures",
    "init_args": {"depth": 18, "last_stage": "layer2", "out_dim": 256},
}


def default_groups(vocab: Vocabulary) -> list[tuple[str, list[int], bool]]:
    """``[(type name, predicate columns, single_label)]`` from the vocabulary's relation types;
    a vocabulary without types and with a background predicate is one softmax group (VG)."""
    groups = vocab.relation_groups()
    if len(groups) == 1 and groups[0][0] is None:
        return [("predicate", groups[0][1], bool(vocab.predicate_background))]
    singles = set(vocab.single_label_types)
    return [(str(t), cols, t in singles) for t, cols in groups]


def vocab_injection(
    vocab: Vocabulary, train_stats: Any = None, groups: Sequence[Sequence[Any]] | None = None
) -> dict[str, Any]:
    """The values offered to every component constructor (taken when it has the parameter)."""
    counts = (
        list(train_stats.predicate_counts)
        if train_stats is not None
        else list(vocab.predicate_counts)
    )
    inj: dict[str, Any] = {
        "class_names": vocab.object_classes,
        "predicate_names": vocab.predicates,
        "num_classes": vocab.num_classes,
        "num_predicates": vocab.num_predicates,
        "predicate_counts": counts,
        "object_counts": list(train_stats.object_counts)
        if train_stats is not None
        else list(vocab.object_counts),
        "coarse_parent": list(vocab.coarse_parent),
        "relation_type": list(vocab.relation_type),
        "action_pattern": list(vocab.action_pattern),
        "spatial_pattern": list(vocab.spatial_pattern),
        "groups": [
            (str(g[0]), [int(c) for c in g[1]], bool(g[2]))
            for g in (groups or default_groups(vocab))
        ],
    }
    if train_stats is not None and getattr(train_stats, "pair_counts", None) is not None:
        inj["pair_counts"] = train_stats.pair_counts
    return inj


def build_model(
    vocab: Vocabulary,
    *,
    context: Mapping[str, Any] | None = DEFAULT_CONTEXT,
    head: Mapping[str, Any] | None = DEFAULT_HEAD,
    features: Mapping[str, Any] | None = None,
    object_classifier: Mapping[str, Any] | None = None,
    detector: Mapping[str, Any] | None = None,
    task: Task | str = Task.PREDCLS,
    train_stats: Any = None,
    groups: Sequence[Sequence[Any]] | None = None,
    pair_chunk_size: int | None = None,
    use_freq_bias: bool = True,
) -> RelationModel | SegmentRelationModel:
    """A :class:`RelationModel` built from component specs (or, when ``context`` names a
    :class:`SegmentRelationModel` such as VidVRD-II, that model with ``head`` as its predicate
    classifier).

    Args:
        vocab: the data set's vocabulary.
        context, head, features, object_classifier, detector: ``class_path`` + ``init_args``
            specs (``None`` = none; ``head=None`` for a context that outputs ``freq_logits``).
        task: PredCls / SGCls / SGDet (SGDet needs a ``detector``).
        train_stats: :class:`tailgraph.methods.base.TrainStats` of the training split
            (counts for FREQ, frequency biases and count-aware heads); ``None`` = the
            vocabulary's counts.
        groups: ``[(type, columns, single_label)]`` trained together (default
            :func:`default_groups`); a single-group head gets ``act`` / ``multilabel`` from it.
        pair_chunk_size, use_freq_bias: :class:`RelationModel` options.
    """
    task = Task.parse(task)
    inj = vocab_injection(vocab, train_stats, groups)
    if context is not None and issubclass(
        import_class(str(context.get("class_path")), nn.Module), SegmentRelationModel
    ):
        # segment-level video models (VidVRD-II) are complete models: the head is theirs
        if features is not None or object_classifier is not None or detector is not None:
            raise ValueError(
                "a segment-level model reads tracklet features from its data module: "
                "set features, object_classifier and detector to null"
            )
        spec = dict(context)
        if head is not None and head != DEFAULT_HEAD:
            spec["init_args"] = {**dict(spec.get("init_args") or {}), "head": dict(head)}
        return build_component(spec, inj, kind=SegmentRelationModel)
    feats = build_component(features, inj, kind=FeatureStage)
    obj_dim = int(feats.obj_dim) if feats is not None else 0
    inj.update(
        obj_feat_dim=obj_dim,
        union_feat_dim=int(feats.union_dim) if feats is not None else 0,
        union_is_map=bool(feats.union_maps) if feats is not None else False,
    )
    ctx = build_component(context, inj, kind=ContextModel)
    if ctx is None:
        raise ValueError("a relation model needs a context model")
    head_inj = {**inj, "in_dim": ctx.out_dim}
    if ctx.per_type_outputs:  # one feature block per relation type
        head_inj["split_input"] = True
    if len(inj["groups"]) == 1:
        single = inj["groups"][0][2]
        head_inj.update(act="softmax" if single else "sigmoid", multilabel=not single)
    pred_head = build_component(head, head_inj, kind=PredicateHead) if head is not None else None
    if pred_head is not None and len(inj["groups"]) == 1 and pred_head.act != head_inj["act"]:
        raise ValueError(
            f"the predicates train with a {'softmax' if inj['groups'][0][2] else 'sigmoid'} loss: "
            f"the head must have act={head_inj['act']!r}, not {pred_head.act!r}"
        )
    obj_cls = build_component(object_classifier, {**inj, "in_dim": obj_dim})
    det = build_component(detector, inj)
    if task is Task.SGDET and det is None:
        raise ValueError(
            "task sgdet needs a detector spec (e.g. tailgraph.modeling.detector.SyntheticDetector)"
        )
    model = RelationModel(
        ctx,
        pred_head,
        vocab.num_classes,
        features=feats,
        object_classifier=obj_cls,
        task=task,
        use_freq_bias=use_freq_bias,
        pair_chunk_size=pair_chunk_size,
    )
    model.detector = det if det is not None else None
    if det is not None:
        for p in det.parameters():  # the detector is a fixed stage (trained separately)
            p.requires_grad_(False)
    return model


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """The parameters that require gradients."""
    return [p for p in module.parameters() if p.requires_grad]
