"""Track operations: the volume IoU of two trajectories, the relative-motion feature of a
pair of tracklets (VidVRD-helper's and VidVRD-II's conventions, +1 pixel), and an IoU tracker
that links per-frame detections into tracks (:func:`link_detections`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor function runs: the VidVRD evaluator
    import torch  # (viou) is numpy only and serves ``tailgraph evaluate``

__all__ = ["viou", "relative_motion_feature", "box_iou_np", "link_detections"]


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
    import torch

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
    import torch

    return torch.cat(
        [
            _one(sub_start, obj_start, t_sub[0], t_obj[0]),
            _one(sub_end, obj_end, t_sub[1], t_obj[1]),
        ],
        dim=1,
    )


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]`` IoU of ``[N, 4]`` and ``[M, 4]`` boxes (x1, y1, x2, y2; continuous)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def link_detections(
    frames: Sequence[np.ndarray],
    begin: int = 0,
    iou_threshold: float = 0.3,
    max_gap: int = 2,
    min_length: int = 2,
) -> list[tuple[int, np.ndarray]]:
    """An IoU tracker (Bochinski et al., 2017, with gap bridging): per-frame detections
    linked into tracks.

    Frame by frame, each live track's last box is matched to the frame's detections greedily,
    highest IoU first, pairs below ``iou_threshold`` refused; an unmatched detection starts a
    track; a track unmatched for more than ``max_gap`` frames ends. A bridged gap holds the last
    box. Tracks shorter than ``min_length`` frames are dropped.

    Args:
        frames: per frame ``[n_f, 4]`` detection boxes (x1, y1, x2, y2).
        begin: the frame index of ``frames[0]``.
    Returns:
        ``[(first frame, boxes [L, 4])]`` ordered by first frame, then by first box.
    """
    live: list[dict] = []  # {"first", "boxes", "missed"}
    done: list[dict] = []
    for f, dets in enumerate(frames):
        dets = np.asarray(dets, dtype=np.float64).reshape(-1, 4)
        taken = np.zeros(len(dets), dtype=bool)
        matched = set()
        if live and len(dets):
            iou = box_iou_np(np.stack([t["boxes"][-1] for t in live]), dets)
            order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
            for ti, di in order:
                if iou[ti, di] < iou_threshold:
                    break
                if ti in matched or taken[di]:
                    continue
                t = live[ti]
                hold = t["boxes"][-1]
                t["boxes"].extend([hold] * t["missed"])  # the bridged gap holds the last box
                t["boxes"].append(dets[di])
                t["missed"] = 0
                matched.add(int(ti))
                taken[di] = True
        still = []
        for ti, t in enumerate(live):
            if ti not in matched:
                t["missed"] += 1
                if t["missed"] > max_gap:
                    done.append(t)
                    continue
            still.append(t)
        live = still
        for di in np.flatnonzero(~taken):
            live.append({"first": begin + f, "boxes": [dets[di]], "missed": 0})
    tracks = [
        (t["first"], np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4))
        for t in done + live
        if len(t["boxes"]) >= min_length
    ]
    return sorted(tracks, key=lambda t: (t[0], tuple(t[1][0])))
