"""Core data structures: scene graphs, video scene graphs, predictions, the task enum, and
VidVRD-II's tracklets, segments and segment batches.

All structures hold torch tensors (CPU by default) and validate themselves on construction,
raising :class:`tailgraph.errors.DataError` that names the sample and the field at fault.

Conventions
-----------
* Boxes are ``xyxy`` float32 in pixels of the original image, shape ``[N, 4]``.
* Object labels are int64 class indices, shape ``[N]``; index 0 is ``__background__`` in
  vocabularies that have one, so real objects use ``1..num_classes-1``.
* Relations are int64 triplets ``(subject_index, object_index, predicate)``, shape ``[R, 3]``,
  where the indices point into the boxes of the same graph. One pair may carry several
  predicates (several rows with the same ``(s, o)``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from tailgraph.errors import DataError
from tailgraph.io.graph_checks import _has_bool, as_array, check_boxes, check_graph, check_labels

# what the structures' constructors accept: tensors, arrays, nested lists
ArrayLike = Any

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Task",
    "SceneGraph",
    "VideoSceneGraph",
    "Predictions",
    "GraphBatch",
    "as_tensor",
    "Batch",
    "Tracklet",
    "Segment",
    "SegmentBatch",
    "SegmentPrediction",
    "collate_segments",
]


class Task(str, enum.Enum):
    """The three standard SGG settings; it selects the detector stage.

    * ``PREDCLS``: ground-truth boxes and labels are given, predicates are predicted.
    * ``SGCLS``: ground-truth boxes are given, labels and predicates are predicted.
    * ``SGDET``: boxes, labels and predicates are all predicted.
    """

    PREDCLS = "predcls"
    SGCLS = "sgcls"
    SGDET = "sgdet"

    @property
    def uses_gt_boxes(self) -> bool:
        return self is not Task.SGDET

    @property
    def uses_gt_labels(self) -> bool:
        return self is Task.PREDCLS

    @classmethod
    def parse(cls, value: str | Task) -> Task:
        if isinstance(value, Task):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise DataError(
                f"unknown task {value!r}; expected one of predcls, sgcls, sgdet", field="task"
            ) from None


# the tensor dtypes whose conversion from lists / arrays :func:`as_array` does (the one check)
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64}


def as_tensor(
    value: Any, dtype: torch.dtype, *, sample: object = None, field: str = ""
) -> torch.Tensor:
    """Convert lists / numpy arrays / tensors to a tensor of ``dtype`` with a clear error.

    Nothing is coerced: booleans and complex numbers are not accepted as numbers, and for an
    integer ``dtype`` every value must be integral (``1.0`` passes as 1, ``1.6`` is an error,
    never truncated)."""
    if isinstance(value, torch.Tensor):
        t = value
    elif dtype in _NUMPY:
        return torch.as_tensor(as_array(value, _NUMPY[dtype], sample=sample, field=field))
    else:
        if not dtype.is_floating_point and isinstance(value, (list, tuple)) and _has_bool(value):
            raise DataError("expected numbers, got booleans", sample=sample, field=field)
        try:
            arr = np.asarray(value)
            if arr.dtype == object or arr.dtype.kind in "USV":
                raise ValueError("ragged or non-numeric values")
            t = torch.as_tensor(arr)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise DataError(
                f"cannot read as a numeric array ({exc})", sample=sample, field=field
            ) from None
    if t.dtype == torch.bool and dtype != torch.bool:
        raise DataError("expected numbers, got booleans", sample=sample, field=field)
    if t.is_complex():
        raise DataError("expected real numbers, got complex values", sample=sample, field=field)
    if not dtype.is_floating_point and dtype != torch.bool and t.is_floating_point():
        if t.numel():
            finite = torch.isfinite(t)
            whole = finite & (t == torch.round(t))
            if not bool(whole.all()):
                i = int((~whole).flatten().nonzero()[0, 0])
                v = t.flatten()[i].item()
                raise DataError(f"expected integers, got {v}", sample=sample, field=field)
    return t.to(dtype)


def _flat(t: torch.Tensor, sample: object, field: str) -> torch.Tensor:
    """``[N]`` (``[N, 1]`` and scalars-free lists pass; other shapes are an error)."""
    if t.ndim == 2 and t.shape[1] == 1:
        return t.reshape(-1)
    if t.ndim == 1 or t.numel() == 0:
        return t.reshape(-1)
    raise DataError(f"expected a flat list, got shape {list(t.shape)}", sample=sample, field=field)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _check_boxes(boxes: torch.Tensor, sample: object, name: str = "boxes") -> None:
    check_boxes(_np(boxes), sample, name)


def _check_labels(
    labels: torch.Tensor, n: int, num_classes: int | None, sample: object, name: str
) -> None:
    check_labels(_np(labels), n, num_classes, sample, name)


@dataclass
class SceneGraph:
    """One annotated image (or one video frame).

    Attributes:
        image_id: identifier of the image (string or int as the data set uses it).
        width, height: image size in pixels.
        boxes: ``[N, 4]`` float32 xyxy boxes.
        labels: ``[N]`` int64 object classes.
        relations: ``[R, 3]`` int64 ``(subject_idx, object_idx, predicate)``.
        image_path: path of the image file, or ``None`` in layout-only data.
        track_ids: optional ``[N]`` int64 track / trajectory id per box (video frames).
        extras: free-form per-sample data (e.g. clean fine labels of the synthetic benchmark).
    """

    image_id: Any
    width: int
    height: int
    boxes: torch.Tensor
    labels: torch.Tensor
    relations: torch.Tensor
    image_path: str | None = None
    track_ids: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ makes them tensors

        def __init__(
            self,
            image_id: Any,
            width: int,
            height: int,
            boxes: ArrayLike,
            labels: ArrayLike,
            relations: ArrayLike,
            image_path: str | None = None,
            track_ids: ArrayLike | None = None,
            extras: dict | None = None,
        ) -> None: ...

    def __post_init__(self) -> None:
        sid = self.image_id
        self.boxes = as_tensor(self.boxes, torch.float32, sample=sid, field="boxes")
        if self.boxes.numel() == 0:
            self.boxes = self.boxes.reshape(0, 4)
        self.labels = _flat(
            as_tensor(self.labels, torch.int64, sample=sid, field="labels"), sid, "labels"
        )
        self.relations = as_tensor(self.relations, torch.int64, sample=sid, field="relations")
        if self.relations.numel() == 0:
            self.relations = self.relations.reshape(0, 3)
        if self.track_ids is not None:
            self.track_ids = as_tensor(
                self.track_ids, torch.int64, sample=sid, field="track_ids"
            ).reshape(-1)
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(
        self, num_classes: int | None = None, num_predicates: int | None = None
    ) -> SceneGraph:
        """Check shapes, finiteness, box order and index ranges; raise :class:`DataError`.

        Args:
            num_classes: if given, labels must be ``< num_classes``.
            num_predicates: if given, predicates must be ``< num_predicates``.
        Returns:
            ``self``, so calls can be chained.
        """
        check_graph(
            self.image_id,
            self.width,
            self.height,
            _np(self.boxes),
            _np(self.labels),
            _np(self.relations),
            None if self.track_ids is None else _np(self.track_ids),
            num_classes,
            num_predicates,
        )
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_relations(self) -> int:
        return int(self.relations.shape[0])

    def to(self, device: torch.device | str) -> SceneGraph:
        """A copy with tensors moved to ``device`` (no validation is repeated)."""
        new = object.__new__(SceneGraph)
        new.__dict__.update(self.__dict__)
        new.boxes = self.boxes.to(device)
        new.labels = self.labels.to(device)
        new.relations = self.relations.to(device)
        new.track_ids = None if self.track_ids is None else self.track_ids.to(device)
        return new

    def with_relations(self, relations: torch.Tensor) -> SceneGraph:
        """A copy with another relation set (validated)."""
        return replace(self, relations=relations, extras=dict(self.extras))

    def to_dict(self) -> dict:
        """JSON-friendly dict in tailgraph's ground-truth interchange layout (formats.md §5)."""
        return {
            "image_id": self.image_id,
            "width": int(self.width),
            "height": int(self.height),
            "boxes": self.boxes.tolist(),
            "labels": self.labels.tolist(),
            "relations": self.relations.tolist(),
        }


@dataclass
class VideoSceneGraph:
    """A video as a sequence of annotated frames.

    Attributes:
        video_id: identifier of the video.
        frames: one :class:`SceneGraph` per annotated frame, in time order.
        frame_ids: identifier of each frame (e.g. AG's ``"000123.png"``, or a frame index).
        extras: free-form per-video data (e.g. VidVRD relation instances over frame ranges).
    """

    video_id: Any
    frames: list[SceneGraph]
    frame_ids: list[Any] = field(default_factory=list)
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.frame_ids:
            self.frame_ids = list(range(len(self.frames)))
        if len(self.frame_ids) != len(self.frames):
            raise DataError(
                f"{len(self.frames)} frames but {len(self.frame_ids)} frame ids",
                sample=self.video_id,
                field="frame_ids",
            )

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Predictions:
    """A model's scene graph for one image.

    Attributes:
        image_id: identifier matching the ground truth.
        boxes: ``[N, 4]`` float32 xyxy boxes (GT boxes in PredCls / SGCls).
        labels: ``[N]`` int64 predicted object classes.
        label_scores: ``[N]`` float32 object scores (1 in PredCls).
        pairs: ``[P, 2]`` int64 ordered ``(subject_idx, object_idx)`` candidate pairs.
        predicate_scores: ``[P, C]`` float32 predicate scores per pair; column 0 is background
            where the protocol has one. Probabilities (softmax) for the VG protocol.
    """

    image_id: Any
    boxes: torch.Tensor
    labels: torch.Tensor
    label_scores: torch.Tensor
    pairs: torch.Tensor
    predicate_scores: torch.Tensor

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ makes them tensors

        def __init__(
            self,
            image_id: Any,
            boxes: ArrayLike,
            labels: ArrayLike,
            label_scores: ArrayLike,
            pairs: ArrayLike,
            predicate_scores: ArrayLike,
        ) -> None: ...

    def __post_init__(self) -> None:
        sid = self.image_id
        self.boxes = as_tensor(self.boxes, torch.float32, sample=sid, field="boxes")
        if self.boxes.numel() == 0:
            self.boxes = self.boxes.reshape(0, 4)
        self.labels = _flat(
            as_tensor(self.labels, torch.int64, sample=sid, field="labels"), sid, "labels"
        )
        self.label_scores = _flat(
            as_tensor(self.label_scores, torch.float32, sample=sid, field="label_scores"),
            sid,
            "label_scores",
        )
        self.pairs = as_tensor(self.pairs, torch.int64, sample=sid, field="pairs")
        if self.pairs.numel() == 0:
            self.pairs = self.pairs.reshape(0, 2)
        self.predicate_scores = as_tensor(
            self.predicate_scores, torch.float32, sample=sid, field="predicate_scores"
        )
        if self.predicate_scores.ndim == 1 and self.predicate_scores.numel() == 0:
            self.predicate_scores = self.predicate_scores.reshape(0, 0)
        self.validate()

    def validate(
        self, num_classes: int | None = None, num_predicates: int | None = None
    ) -> Predictions:
        sid = self.image_id
        _check_boxes(self.boxes, sid)
        n = self.boxes.shape[0]
        _check_labels(self.labels, n, num_classes, sid, "labels")
        if self.label_scores.shape[0] != n:
            raise DataError(
                f"expected {n} label scores, got {self.label_scores.shape[0]}",
                sample=sid,
                field="label_scores",
            )
        if not bool(torch.isfinite(self.label_scores).all()):
            raise DataError("label scores contain NaN or inf", sample=sid, field="label_scores")
        if self.pairs.ndim != 2 or self.pairs.shape[1] != 2:
            raise DataError(
                f"expected shape [P, 2], got {list(self.pairs.shape)}", sample=sid, field="pairs"
            )
        if self.pairs.numel():
            bad = (self.pairs < 0) | (self.pairs >= n)
            if bool(bad.any()):
                r = int(bad.any(dim=1).nonzero()[0, 0])
                raise DataError(
                    f"pair {r} {self.pairs[r].tolist()} points outside the {n} boxes",
                    sample=sid,
                    field="pairs",
                )
        ps = self.predicate_scores
        if ps.ndim != 2 or ps.shape[0] != self.pairs.shape[0]:
            raise DataError(
                f"expected one score row per pair ({self.pairs.shape[0]}), got shape "
                f"{list(ps.shape)}",
                sample=sid,
                field="predicate_scores",
            )
        if ps.shape[0] and ps.shape[1] == 0:
            raise DataError("score rows have no column", sample=sid, field="predicate_scores")
        if num_predicates is not None and ps.shape[0] and ps.shape[1] != num_predicates:
            raise DataError(
                f"expected {num_predicates} columns, got {ps.shape[1]}",
                sample=sid,
                field="predicate_scores",
            )
        if ps.numel() and not bool(torch.isfinite(ps).all()):
            r = int((~torch.isfinite(ps)).any(dim=1).nonzero()[0, 0])
            raise DataError(f"row {r} contains NaN or inf", sample=sid, field="predicate_scores")
        return self

    def to_dict(self) -> dict:
        """JSON-friendly dict in tailgraph's prediction interchange layout (formats.md §5)."""
        return {
            "image_id": self.image_id,
            "boxes": self.boxes.tolist(),
            "labels": self.labels.tolist(),
            "label_scores": self.label_scores.tolist(),
            "pairs": self.pairs.tolist(),
            "predicate_scores": self.predicate_scores.tolist(),
        }


def collate_graphs(graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
    """Identity collate: graphs have different sizes, so a batch is a list."""
    return list(graphs)


# the images of a GraphBatch are RGB in [0, 1], normalised with ImageNet's mean and std
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Batch:
    """Base of the batches the engine trains and evaluates on (:class:`GraphBatch`,
    :class:`SegmentBatch`); Lightning moves them between devices with their ``to``."""

    def to(self, device: torch.device | str) -> Batch:
        raise NotImplementedError


@dataclass
class GraphBatch(Batch):
    """A batch of images and their (ground-truth) graphs.

    Attributes:
        graphs: the scene graphs; boxes in original image pixels.
        images: ``[B, 3, H, W]`` normalised, resized, zero-padded images, or ``None``
            (layout-only).
        scales: ``[B]`` resize factor from original pixels to ``images``' pixels.
        pairs: optional candidate pairs per image (local ``[P_i, 2]`` object indices); ``None``
            = all ordered pairs of distinct objects.
    """

    graphs: list[SceneGraph]
    images: torch.Tensor | None = None
    scales: torch.Tensor | None = None
    pairs: list[torch.Tensor] | None = None

    def to(self, device: torch.device | str) -> GraphBatch:
        images = self.images
        if images is not None:  # a pinned batch (pin_memory) copies without blocking
            images = images.to(device, non_blocking=images.is_pinned())
        return GraphBatch(
            graphs=[g.to(device) for g in self.graphs],
            images=images,
            scales=None if self.scales is None else self.scales.to(device),
            pairs=None if self.pairs is None else [p.to(device) for p in self.pairs],
        )

    def pin_memory(self) -> GraphBatch:
        """The same batch with its pixels in pinned host memory (what a ``DataLoader`` with
        ``pin_memory`` calls; the graphs' small tensors are left as they are)."""
        if self.images is None:
            return self
        return GraphBatch(self.graphs, self.images.pin_memory(), self.scales, self.pairs)

    def with_pairs(self, pairs: list[torch.Tensor]) -> GraphBatch:
        """The same batch restricted to the given candidate pairs (local ``[P_i, 2]`` per image)."""
        return GraphBatch(self.graphs, self.images, self.scales, pairs)

    def __len__(self) -> int:
        return len(self.graphs)


@dataclass
class Tracklet:
    """One tracklet of a segment: ``boxes [L, 4]`` over frames ``[begin, begin + L)``."""

    begin: int
    boxes: np.ndarray
    track_id: Any = None  # the annotated track it was made from (analysis only)

    @property
    def end(self) -> int:
        return self.begin + len(self.boxes)


@dataclass
class Segment:
    """A segment ready for the model (one item of the VidVRD-II data set)."""

    video_id: Any
    begin: int
    end: int
    tracklets: list[Tracklet]
    feats: torch.Tensor  # [T, F]
    labels: torch.Tensor  # [T] class (0 = background)
    pairs: torch.Tensor  # [Q, 2] local tracklet indices
    targets: torch.Tensor  # [Q, P] multi-hot over the foreground predicates
    positive: torch.Tensor  # [Q] bool
    position: torch.Tensor  # [Q, 12]


@dataclass
class SegmentBatch(Batch):
    """Segments concatenated: tracklet and pair tensors with global tracklet indices.

    Attributes:
        segments: the segments (video id, span, tracklets for the output trajectories).
        feats: ``[T, F]`` tracklet features; ``track_segment`` ``[T]`` their segment.
        labels: ``[T]`` tracklet classes (0 = background).
        pairs: ``[Q, 2]`` global tracklet indices; ``pair_segment`` ``[Q]``.
        targets: ``[Q, P]`` multi-hot over the foreground predicates (column j = predicate j + 1).
        position: ``[Q, 12]`` relative position features.
    """

    segments: list[Segment]
    feats: torch.Tensor
    track_segment: torch.Tensor
    labels: torch.Tensor
    pairs: torch.Tensor
    pair_segment: torch.Tensor
    targets: torch.Tensor
    position: torch.Tensor
    extras: dict = field(default_factory=dict)

    def to(self, device: torch.device | str) -> SegmentBatch:
        return SegmentBatch(
            self.segments,
            self.feats.to(device, non_blocking=self.feats.is_pinned()),
            self.track_segment.to(device),
            self.labels.to(device),
            self.pairs.to(device),
            self.pair_segment.to(device),
            self.targets.to(device),
            self.position.to(device),
            self.extras,
        )

    def pin_memory(self) -> SegmentBatch:
        """The same batch with its tracklet features in pinned host memory."""
        return replace(self, feats=self.feats.pin_memory())

    def __len__(self) -> int:
        return len(self.segments)


def collate_segments(segments: Sequence[Segment]) -> SegmentBatch:
    """Concatenate segments into a :class:`SegmentBatch`."""
    feats, tseg, labels, pairs, pseg, targets, pos = [], [], [], [], [], [], []
    offset = 0
    for k, s in enumerate(segments):
        n = s.feats.shape[0]
        feats.append(s.feats)
        labels.append(s.labels)
        tseg.append(torch.full((n,), k, dtype=torch.int64))
        pairs.append(s.pairs + offset)
        pseg.append(torch.full((s.pairs.shape[0],), k, dtype=torch.int64))
        targets.append(s.targets)
        pos.append(s.position)
        offset += n
    return SegmentBatch(
        list(segments),
        torch.cat(feats),
        torch.cat(tseg),
        torch.cat(labels),
        torch.cat(pairs).reshape(-1, 2),
        torch.cat(pseg),
        torch.cat(targets),
        torch.cat(pos),
    )


class SegmentPrediction(NamedTuple):
    """The relation instances a segment-level model predicts for one segment (VidVRD-II)."""

    video_id: Any
    begin: int
    instances: list[dict]
