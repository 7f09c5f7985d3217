"""Tensor contracts between the model stages (features → context → predicate head).

A batch of images is flattened: objects of all images are concatenated (``N`` rows, with
``obj_to_img`` saying which image each belongs to) and candidate pairs likewise (``P`` rows,
``pairs`` holding *global* object row indices, ``pair_to_img`` the image).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "RelationInputs",
    "ContextOutput",
    "ObjectOutput",
    "ContextObjectClassifier",
    "HeadOutput",
    "PredicateHead",
    "SegmentRelationModel",
    "FeatureStage",
    "ContextModel",
]


@dataclass
class RelationInputs:
    """What a context model receives.

    Attributes:
        boxes: ``[N, 4]`` xyxy boxes in pixels of each object's image.
        image_sizes: ``[B, 2]`` (height, width) of each image.
        obj_to_img: ``[N]`` image index of each object.
        labels: ``[N]`` object labels (GT in PredCls, predicted otherwise; may be ``None``
            in SGCls before the object classifier has run).
        label_dists: ``[N, C]`` class distribution per object (one-hot in PredCls; the
            detector's scores in SGDet); used by models that embed soft labels.
        pairs: ``[P, 2]`` global (subject_row, object_row) indices.
        pair_to_img: ``[P]`` image index of each pair.
        obj_feats: ``[N, D]`` visual RoI features, or ``None`` for layout-only models.
        union_feats: ``[P, D_u]`` visual union-box features, or ``None``.
        frame_index: ``[N]`` frame index of each object (video models), or ``None``.
        track_ids: ``[N]`` track id of each object (video models with tracking), or ``None``.
        obj_scores: ``[N]`` confidence of each object's label (1 in PredCls, the detector's
            score in SGDet, the classifier's in SGCls), or ``None`` when not known yet.
    """

    boxes: torch.Tensor
    image_sizes: torch.Tensor
    obj_to_img: torch.Tensor
    labels: torch.Tensor | None
    label_dists: torch.Tensor | None
    pairs: torch.Tensor
    pair_to_img: torch.Tensor
    obj_feats: torch.Tensor | None = None
    union_feats: torch.Tensor | None = None
    frame_index: torch.Tensor | None = None
    track_ids: torch.Tensor | None = None
    obj_scores: torch.Tensor | None = None

    @property
    def num_images(self) -> int:
        return int(self.image_sizes.shape[0])

    def normalized_boxes(self) -> torch.Tensor:
        """``[N, 4]`` boxes divided by their image's width / height (values in [0, 1])."""
        hw = self.image_sizes[self.obj_to_img].to(self.boxes.dtype)
        scale = torch.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], dim=1)
        return self.boxes / scale


@dataclass
class ContextOutput:
    """What a context model returns.

    Attributes:
        pair_feats: ``[P, H]`` features of each candidate pair for the predicate head.
        obj_logits: ``[N, C]`` object class logits (SGCls / SGDet refinement), or ``None``.
        freq_logits: ``[P, R]`` additive frequency-bias logits (MOTIFS-style), or ``None``.
        pair_score_logits: ``[P]`` relatedness logits of the pairs (VCTree's tree scores,
            trained with a binary loss), or ``None``.
        memory_writes: ``[(memory bank, [P, D] features)]``: what each of the context's memory
            banks (:class:`tailgraph.modeling.memory.RelationMemory`) stores from this batch
            (TEMPURA's pre-fusion features; the method fills the banks in training).
        extras: model-specific tensors for analysis (e.g. attention maps, tree structure).
    """

    pair_feats: torch.Tensor
    obj_logits: torch.Tensor | None = None
    freq_logits: torch.Tensor | None = None
    pair_score_logits: torch.Tensor | None = None
    memory_writes: list = field(default_factory=list)
    extras: dict = field(default_factory=dict)


@dataclass
class ObjectOutput:
    """What an object classifier returns.

    Attributes:
        logits: ``[N, C]`` object class logits.
        features: ``[N, F]`` the (tracked) object features the logits come from (TEMPURA's
            ``euc_con`` loss reads them), or ``None``.
        pre_logits: ``[N, C]`` logits of the label distribution the classifier embeds when no
            distribution is given (TEMPURA's SGCls), or ``None``.
    """

    logits: torch.Tensor
    features: torch.Tensor | None = None
    pre_logits: torch.Tensor | None = None


class ContextObjectClassifier(nn.Module):
    """Base of object classifiers that read the whole :class:`RelationInputs` (boxes, frames,
    label distributions): ``forward(obj_feats [N, D], inputs) -> ObjectOutput``. A plain
    module ``obj_feats [N, D] -> logits [N, C]`` works as an object classifier too."""

    def forward(self, obj_feats: torch.Tensor, inputs: RelationInputs) -> ObjectOutput:
        raise NotImplementedError


@dataclass
class HeadOutput:
    """What a predicate head returns.

    Attributes:
        logits: ``[P, R]`` predicate logits (the quantity a standard CE / BCE loss takes).
        probs: ``[P, R]`` predicate probabilities used for ranking at test time, or ``None``
            to mean ``softmax(logits)``.
        extras: head-specific tensors (uncertainties, mixture parameters, distances, ...).
    """

    logits: torch.Tensor
    probs: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


class FeatureStage(nn.Module):
    """Base of the pixel feature stages (:class:`tailgraph.modeling.roi.PixelFeatures`, the
    negative-mining network's features): ``forward(images, scales, boxes, obj_to_img, pairs)
    -> (obj_feats [N, obj_dim], union_feats [P, union_dim] or maps)``.

    Attributes:
        obj_dim: object feature size.
        union_dim: union-box feature size (channels of the maps with ``union_maps``); 0 = no
            union features.
        union_maps: union features are ``[P, union_dim, s, s]`` maps (STTran's union + mask
            maps) instead of vectors.
    """

    obj_dim: int = 0
    union_dim: int = 0
    union_maps: bool = False


class ContextModel(nn.Module):
    """Base of context models: ``forward(RelationInputs) -> ContextOutput``.

    Attributes:
        out_dim: size of the pair features the predicate head reads (``None``: no head reads
            them, e.g. the FREQ baseline).
        per_type_outputs: the pair features are one block per relation type, side by side
            (FReMuRe's decoupled branches; the typed head splits them).
    """

    out_dim: int | None = None
    per_type_outputs: bool = False


class PredicateHead(nn.Module):
    """Base class of predicate heads: ``forward(x [P, D]) -> HeadOutput``.

    Attributes:
        act: ``softmax`` (single-label: logits are proper softmax logits) or ``sigmoid``.
    """

    act = "softmax"

    def regularizer(self, out: HeadOutput) -> torch.Tensor | None:
        """A loss term the head adds to training (``None`` = none); the method weighs it."""
        return None


class SegmentRelationModel(nn.Module, metaclass=abc.ABCMeta):
    """Base of segment-level video relation models (VidVRD-II): the engine trains and evaluates
    them on :class:`tailgraph.structures.SegmentBatch` es instead of image batches.

    A subclass defines ``forward(batch) -> dict`` (with ``refined_logits`` / ``pair_feats`` as
    methods need them) and the three methods below, and exposes its predicate classifier as
    ``head``.
    """

    task = None  # segment models have no PredCls / SGCls / SGDet stage
    detector = None

    @abc.abstractmethod
    def losses(self, batch, out: dict) -> dict:
        """Its own supervised losses ``{name: loss}`` for a batch and its forward output."""

    @abc.abstractmethod
    def segment_predictions(self, batch, out: dict) -> list:
        """:class:`tailgraph.structures.SegmentPrediction` s (video id, segment begin, relation
        instances) for the batch's segments."""

    def detect(self, batch):
        """Segment batches come with their tracklets: nothing to detect."""
        return batch

    @torch.no_grad()
    def predict(self, batch) -> list:
        """The batch's :meth:`segment_predictions`."""
        return self.segment_predictions(batch, self(batch))

    @abc.abstractmethod
    def associate(self, segments) -> list:
        """Video-level relation instances from one video's per-segment instance lists (in
        time order)."""
