"""The border checks of one annotated image, on numpy arrays (no torch).

:class:`tailgraph.structures.SceneGraph` validates through these, and the interchange reader
uses them directly when it reads ground truth for evaluation (``read_ground_truth(...,
arrays=True)``), so that ``tailgraph evaluate`` never imports the model stack. Nothing is
coerced: booleans and complex numbers are not numbers, and an integer field takes ``1.0`` as 1
but refuses ``1.6``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tailgraph.errors import DataError

__all__ = ["as_array", "flat", "check_boxes", "check_labels", "check_graph", "graph_arrays"]


def _has_bool(value: Any) -> bool:
    """Whether a (nested) list holds a Python / numpy boolean (NumPy would make it 0 / 1)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, (bool, np.bool_)):
            return True
    return False


def as_array(value: Any, dtype: Any, *, sample: object = None, field: str = "") -> np.ndarray:
    """``value`` (lists, numpy arrays) as a numpy array of ``dtype`` (``np.float32``,
    ``np.int64`` …), with the project's error for what is not such an array."""
    dtype = np.dtype(dtype)
    integer = dtype.kind in "iu"
    # a list's booleans are looked for where an integer is expected (walking a large float
    # list, e.g. score rows, would cost more than reading it); a boolean array is refused always
    if integer and isinstance(value, (list, tuple)) and _has_bool(value):
        raise DataError("expected numbers, got booleans", sample=sample, field=field)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"cannot read as a numeric array ({exc})", sample=sample, field=field
        ) from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise DataError(
            "cannot read as a numeric array (ragged or non-numeric values)",
            sample=sample,
            field=field,
        )
    if arr.dtype.kind == "b":
        raise DataError("expected numbers, got booleans", sample=sample, field=field)
    if arr.dtype.kind == "c":
        raise DataError("expected real numbers, got complex values", sample=sample, field=field)
    if integer and arr.dtype.kind == "f" and arr.size:
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not whole.all():
            v = arr.reshape(-1)[int(np.flatnonzero(~whole.reshape(-1))[0])].item()
            raise DataError(f"expected integers, got {v}", sample=sample, field=field)
    return arr.astype(dtype, copy=False)


def flat(arr: np.ndarray, sample: object, field: str) -> np.ndarray:
    """``[N]`` (``[N, 1]`` and empty arrays pass; other shapes are an error)."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        return arr.reshape(-1)
    if arr.ndim == 1 or arr.size == 0:
        return arr.reshape(-1)
    raise DataError(
        f"expected a flat list, got shape {list(arr.shape)}", sample=sample, field=field
    )


def check_boxes(boxes: np.ndarray, sample: object, name: str = "boxes") -> None:
    """``[N, 4]``, finite, ``x1 <= x2`` and ``y1 <= y2``."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(
            f"expected shape [N, 4], got {list(boxes.shape)}", sample=sample, field=name
        )
    if boxes.size == 0:
        return
    finite = np.isfinite(boxes).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(f"box {i} is not finite: {boxes[i].tolist()}", sample=sample, field=name)
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"box {i} has x2<x1 or y2<y1: {boxes[i].tolist()}", sample=sample, field=name
        )


def check_labels(
    labels: np.ndarray, n: int, num_classes: int | None, sample: object, name: str
) -> None:
    """``[n]`` labels in ``[0, num_classes)``."""
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DataError(
            f"expected shape [{n}], got {list(labels.shape)}", sample=sample, field=name
        )
    if labels.size and int(labels.min()) < 0:
        i = int(np.flatnonzero(labels < 0)[0])
        raise DataError(f"label {i} is negative ({int(labels[i])})", sample=sample, field=name)
    if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
        i = int(np.flatnonzero(labels >= num_classes)[0])
        raise DataError(
            f"label {i} = {int(labels[i])} is out of range [0, {num_classes})",
            sample=sample,
            field=name,
        )


def check_graph(
    sid: Any,
    width: Any,
    height: Any,
    boxes: np.ndarray,
    labels: np.ndarray,
    relations: np.ndarray,
    track_ids: np.ndarray | None = None,
    num_classes: int | None = None,
    num_predicates: int | None = None,
) -> None:
    """Shapes, finiteness, box order and index ranges of one image; a :class:`DataError`."""
    if (
        not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer)))
        or isinstance(width, (bool, np.bool_))
        or isinstance(height, (bool, np.bool_))
    ):
        raise DataError("width/height must be integers", sample=sid, field="width/height")
    if width <= 0 or height <= 0:
        raise DataError(
            f"image size must be positive, got {width}x{height}",
            sample=sid,
            field="width/height",
        )
    check_boxes(boxes, sid)
    n = boxes.shape[0]
    check_labels(labels, n, num_classes, sid, "labels")
    rel = relations
    if rel.ndim != 2 or rel.shape[1] != 3:
        raise DataError(
            f"expected shape [R, 3], got {list(rel.shape)}", sample=sid, field="relations"
        )
    if rel.size:
        idx = rel[:, :2]
        bad = ((idx < 0) | (idx >= n)).any(axis=1)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"relation {r} {rel[r].tolist()} points outside the {n} boxes",
                sample=sid,
                field="relations",
            )
        if int(rel[:, 2].min()) < 0:
            r = int(np.flatnonzero(rel[:, 2] < 0)[0])
            raise DataError(f"relation {r} has a negative predicate", sample=sid, field="relations")
        if num_predicates is not None and int(rel[:, 2].max()) >= num_predicates:
            r = int(np.flatnonzero(rel[:, 2] >= num_predicates)[0])
            raise DataError(
                f"relation {r} predicate {int(rel[r, 2])} out of range [0, {num_predicates})",
                sample=sid,
                field="relations",
            )
    if track_ids is not None and track_ids.shape[0] != n:
        raise DataError(
            f"expected {n} track ids, got {track_ids.shape[0]}", sample=sid, field="track_ids"
        )


def graph_arrays(
    image_id: Any,
    width: Any,
    height: Any,
    boxes: Any,
    labels: Any,
    relations: Any,
    num_classes: int | None = None,
    num_predicates: int | None = None,
) -> dict[str, Any]:
    """One image as the dict the evaluators read (``boxes [N, 4]`` float32, ``labels [N]`` and
    ``relations [R, 3]`` int64), converted and validated as a :class:`SceneGraph` would be."""
    b = as_array(boxes, np.float32, sample=image_id, field="boxes")
    if b.size == 0:
        b = b.reshape(0, 4)
    lab = flat(as_array(labels, np.int64, sample=image_id, field="labels"), image_id, "labels")
    rel = as_array(relations, np.int64, sample=image_id, field="relations")
    if rel.size == 0:
        rel = rel.reshape(0, 3)
    check_graph(image_id, width, height, b, lab, rel, None, num_classes, num_predicates)
    return {
        "image_id": image_id,
        "width": width,
        "height": height,
        "boxes": b,
        "labels": lab,
        "relations": rel,
    }
