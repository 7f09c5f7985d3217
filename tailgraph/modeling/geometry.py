"""Box-geometry features for objects and pairs (pure tensor functions)."""

from __future__ import annotations

import torch

__all__ = ["box_geometry", "pair_geometry", "union_boxes", "BOX_GEOMETRY_DIM", "PAIR_GEOMETRY_DIM"]

BOX_GEOMETRY_DIM = 9
PAIR_GEOMETRY_DIM = 13


def box_geometry(
    boxes: torch.Tensor, image_sizes: torch.Tensor, obj_to_img: torch.Tensor
) -> torch.Tensor:
    """Per-object layout features.

    Args:
        boxes: ``[N, 4]`` xyxy pixels.
        image_sizes: ``[B, 2]`` (height, width).
        obj_to_img: ``[N]`` image index of each box.
    Returns:
        ``[N, 9]``: x1, y1, x2, y2, cx, cy, w, h (all divided by the image size) and the area
        fraction.
    """
    hw = image_sizes[obj_to_img].to(boxes.dtype)
    h, w = hw[:, 0:1], hw[:, 1:2]
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    bw, bh = (x2 - x1), (y2 - y1)
    cx, cy = x1 + bw / 2, y1 + bh / 2
    feats = torch.stack([x1, y1, x2, y2, cx, cy, bw, bh], dim=1)
    scale = torch.cat([w, h, w, h, w, h, w, h], dim=1)
    norm = feats / scale
    area = (norm[:, 6] * norm[:, 7]).unsqueeze(1)
    return torch.cat([norm, area], dim=1)


def pair_geometry(
    sub_boxes: torch.Tensor, obj_boxes: torch.Tensor, eps: float = 1.0
) -> torch.Tensor:
    """Relative layout of subject and object boxes (translation / scale invariant).

    Args:
        sub_boxes, obj_boxes: ``[P, 4]`` xyxy pixels.
        eps: pixels added to widths/heights to keep logs finite for degenerate boxes.
    Returns:
        ``[P, 13]``: (dx, dy) of centres over the object's size, log size ratios (w, h, area),
        the same offsets over the subject's size, IoU, intersection over each box, and the
        normalised gaps between the boxes on x and y (negative when they overlap).
    """
    sw = (sub_boxes[:, 2] - sub_boxes[:, 0]) + eps
    sh = (sub_boxes[:, 3] - sub_boxes[:, 1]) + eps
    ow = (obj_boxes[:, 2] - obj_boxes[:, 0]) + eps
    oh = (obj_boxes[:, 3] - obj_boxes[:, 1]) + eps
    scx, scy = (sub_boxes[:, 0] + sub_boxes[:, 2]) / 2, (sub_boxes[:, 1] + sub_boxes[:, 3]) / 2
    ocx, ocy = (obj_boxes[:, 0] + obj_boxes[:, 2]) / 2, (obj_boxes[:, 1] + obj_boxes[:, 3]) / 2
    ix = (
        torch.minimum(sub_boxes[:, 2], obj_boxes[:, 2])
        - torch.maximum(sub_boxes[:, 0], obj_boxes[:, 0])
    ).clamp(min=0)
    iy = (
        torch.minimum(sub_boxes[:, 3], obj_boxes[:, 3])
        - torch.maximum(sub_boxes[:, 1], obj_boxes[:, 1])
    ).clamp(min=0)
    inter = ix * iy
    sa, oa = sw * sh, ow * oh
    iou = inter / (sa + oa - inter)
    gap_x = torch.maximum(sub_boxes[:, 0], obj_boxes[:, 0]) - torch.minimum(
        sub_boxes[:, 2], obj_boxes[:, 2]
    )
    gap_y = torch.maximum(sub_boxes[:, 1], obj_boxes[:, 1]) - torch.minimum(
        sub_boxes[:, 3], obj_boxes[:, 3]
    )
    scale = torch.sqrt(torch.minimum(sa, oa))
    return torch.stack(
        [
            (scx - ocx) / ow,
            (scy - ocy) / oh,
            torch.log(sw / ow),
            torch.log(sh / oh),
            torch.log(sa / oa),
            (ocx - scx) / sw,
            (ocy - scy) / sh,
            iou,
            inter / sa,
            inter / oa,
            gap_x / scale,
            gap_y / scale,
            (scy - ocy) / torch.sqrt(sh * oh),
        ],
        dim=1,
    )


def union_boxes(boxes: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """``[P, 4]`` smallest boxes enclosing both boxes of each pair (``pairs`` ``[P, 2]``)."""
    s, o = boxes[pairs[:, 0]], boxes[pairs[:, 1]]
    return torch.cat([torch.minimum(s[:, :2], o[:, :2]), torch.maximum(s[:, 2:], o[:, 2:])], dim=1)
