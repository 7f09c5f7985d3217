"""Track operations: the volume IoU of two trajectories and the relative-motion feature of a
pair of tracklets (VidVRD-helper's and VidVRD-II's conventions, +1 pixel)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["viou", "relative_motion_feature"]


def viou(
    traj_1: np.ndarray, duration_1: Sequence[int], traj_2: np.ndarray, duration_2: Sequence[int]
) -> float:
    """Volume IoU of two trajectories (VidVRD-helper ``common.viou``), ``[T, 4]`` inclusive
    boxes."""
    b1, e1 = int(duration_1[0]), int(duration_1[1])
    b2, e2 = int(duration_2[0]), int(duration_2[1])
    if b1 >= e2 or e1 <= b2:
        return 0.0
    lo, hi = max(b1, b2), min(e1, e2)
    r1 = traj_1[lo - b1 : hi - b1]
    r2 = traj_2[lo - b2 : hi - b2]
    iw = np.clip(np.minimum(r1[:, 2], r2[:, 2]) - np.maximum(r1[:, 0], r2[:, 0]) + 1, 0, None)
    ih = np.clip(np.minimum(r1[:, 3], r2[:, 3]) - np.maximum(r1[:, 1], r2[:, 1]) + 1, 0, None)
    overlap = float((iw * ih).sum())
    v1 = float(((traj_1[:, 2] - traj_1[:, 0] + 1) * (traj_1[:, 3] - traj_1[:, 1] + 1)).sum())
    v2 = float(((traj_2[:, 2] - traj_2[:, 0] + 1) * (traj_2[:, 3] - traj_2[:, 1] + 1)).sum())
    return overlap / (v1 + v2 - overlap)


def _one(
    sub: torch.Tensor, obj: torch.Tensor, t_s: torch.Tensor, t_o: torch.Tensor
) -> torch.Tensor:
    ws = (sub[:, 2] - sub[:, 0]).clamp_min(1e-6)
    hs = (sub[:, 3] - sub[:, 1]).clamp_min(1e-6)
    wo = (obj[:, 2] - obj[:, 0]).clamp_min(1e-6)
    ho = (obj[:, 3] - obj[:, 1]).clamp_min(1e-6)
    xs, ys = (sub[:, 0] + sub[:, 2]) / 2, (sub[:, 1] + sub[:, 3]) / 2
    xo, yo = (obj[:, 0] + obj[:, 2]) / 2, (obj[:, 1] + obj[:, 3]) / 2
    return torch.stack(
        [
            (xs - xo) / wo,
            (ys - yo) / ho,
            ws.log() - wo.log(),
            hs.log() - ho.log(),
            (ws * hs).log() - (wo * ho).log(),
            (t_s - t_o).to(sub.dtype) / 30.0,
        ],
        dim=1,
    )


def relative_motion_feature(
    sub_start: torch.Tensor,
    obj_start: torch.Tensor,
    sub_end: torch.Tensor,
    obj_end: torch.Tensor,
    t_sub: tuple[torch.Tensor, torch.Tensor],
    t_obj: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """``[P, 12]``: at the segment's start and end, ``[(x_s−x_o)/w_o, (y_s−y_o)/h_o,
    log w_s − log w_o, log h_s − log h_o, log(w_s h_s) − log(w_o h_o), (t_s − t_o)/30]`` with
    box centres ``(x, y)`` and ``t`` the frame each box is taken from (``t_sub`` / ``t_obj`` =
    (start frames, end frames)).
    """
    return torch.cat(
        [
            _one(sub_start, obj_start, t_sub[0], t_obj[0]),
            _one(sub_end, obj_end, t_sub[1], t_obj[1]),
        ],
        dim=1,
    )
