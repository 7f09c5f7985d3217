"""Box operations with the conventions of the field's evaluators."""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou_plus1", "boxes_far_outside"]


def box_iou_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[len(a), len(b)]`` IoU with the +1 pixel convention, float32 (as SGB)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    # a predicted box with float32-extreme coordinates overflows its area to inf; its IoU
    # is then NaN, which matches nothing (as it should): no warning for that
    with np.errstate(over="ignore", invalid="ignore"):
        area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
        area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        lt = np.maximum(a[:, None, :2], b[None, :, :2])
        rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
        wh = np.clip(rb - lt + 1, 0, None)
        inter = wh[..., 0] * wh[..., 1]
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def boxes_far_outside(boxes: np.ndarray, width, height) -> np.ndarray:
    """Rows of ``boxes`` (``[N, 4]`` xyxy pixels) with a corner more than one image size
    outside the ``width x height`` image (``width`` / ``height``: scalars or one per row).

    Ground truth lies in its image; a box that far out is a corrupt coordinate, not an
    annotation (a coordinate of ~1e19 would also overflow float32 areas in the evaluators).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.asarray(width, dtype=np.float64)
    h = np.asarray(height, dtype=np.float64)
    return (b[:, 0] < -w) | (b[:, 1] < -h) | (b[:, 2] > 2 * w) | (b[:, 3] > 2 * h)
