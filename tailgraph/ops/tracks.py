"""Track operations: the volume IoU of two trajectories, the relative-motion feature of a
pair of tracklets (VidVRD-helper's and VidVRD-II's conventions, +1 pixel), and an IoU tracker
that links per-frame detections into tracks (:func:`link_detections`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor function runs: the VidVRD evaluator
    import torch  # (viou) is numpy only and serves ``tailgraph evaluate``

__all__ = ["viou", "relative_motion_feature", "box_iou_np", "link_detections", "LINK_MATCHING"]


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


LINK_MATCHING = ("optimal", "greedy")


def link_detections(
    frames: Sequence[np.ndarray],
    begin: int = 0,
    iou_threshold: float = 0.3,
    max_gap: int = 2,
    min_length: int = 2,
    labels: Sequence[np.ndarray] | None = None,
    matching: str = "optimal",
) -> list[tuple[int, np.ndarray]]:
    """An IoU tracker (Bochinski et al., 2017, with gap bridging and an optimal assignment):
    per-frame detections linked into tracks.

    Frame by frame, each live track's last box is matched to the frame's detections by IoU,
    pairs below ``iou_threshold`` refused: ``matching="optimal"`` takes the one-to-one
    assignment of largest summed IoU (the Hungarian method,
    :func:`scipy.optimize.linear_sum_assignment`), ``"greedy"`` the highest-IoU pair first (the
    original IoU tracker, which swaps identities where boxes overlap: a subject drawn over its
    object takes the object's next box when that one overlaps its own last box more). With
    ``labels`` (the detections' classes, one array per frame) a track links only detections of
    the class it started with. An unmatched detection starts a track; a track unmatched for
    more than ``max_gap`` frames ends. A bridged gap holds the last box. Tracks shorter than
    ``min_length`` frames are dropped.

    Args:
        frames: per frame ``[n_f, 4]`` detection boxes (x1, y1, x2, y2).
        begin: the frame index of ``frames[0]``.
        labels: per frame ``[n_f]`` class indices, or ``None`` (classes not used).
        matching: ``"optimal"`` | ``"greedy"``.
    Returns:
        ``[(first frame, boxes [L, 4])]`` ordered by first frame, then by first box.
    """
    if matching not in LINK_MATCHING:
        raise ValueError(f"matching must be one of {LINK_MATCHING}, got {matching!r}")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"labels has {len(labels)} frames, frames {len(frames)}")
    live: list[dict] = []  # {"first", "boxes", "missed", "label"}
    done: list[dict] = []
    for f, dets in enumerate(frames):
        dets = np.asarray(dets, dtype=np.float64).reshape(-1, 4)
        cls = None if labels is None else np.asarray(labels[f]).reshape(-1)
        if cls is not None and len(cls) != len(dets):
            raise ValueError(f"frame {f}: {len(dets)} boxes but {len(cls)} labels")
        taken = np.zeros(len(dets), dtype=bool)
        matched = set()
        if live and len(dets):
            iou = box_iou_np(np.stack([t["boxes"][-1] for t in live]), dets)
            if cls is not None:
                own = np.asarray([t["label"] for t in live])
                iou = np.where(own[:, None] == cls[None, :], iou, 0.0)
            iou = np.where(iou >= iou_threshold, iou, 0.0)
            for ti, di in _assign(iou, matching):
                t = live[ti]
                hold = t["boxes"][-1]
                t["boxes"].extend([hold] * t["missed"])  # the bridged gap holds the last box
                t["boxes"].append(dets[di])
                t["missed"] = 0
                matched.add(ti)
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
        for dj in np.flatnonzero(~taken).tolist():
            label = None if cls is None else cls[dj]
            live.append({"first": begin + f, "boxes": [dets[dj]], "missed": 0, "label": label})
    tracks = [
        (t["first"], np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4))
        for t in done + live
        if len(t["boxes"]) >= min_length
    ]
    return sorted(tracks, key=lambda t: (t[0], tuple(t[1][0])))


def _assign(score: np.ndarray, matching: str) -> list[tuple[int, int]]:
    """One-to-one (track, detection) pairs of positive ``score`` (refused pairs hold 0)."""
    if matching == "optimal":
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(score, maximize=True)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if score[r, c] > 0]
    pairs, used_t, used_d = [], set(), set()
    order = np.dstack(np.unravel_index(np.argsort(-score, axis=None), score.shape))[0]
    for ti, di in order:
        if score[ti, di] <= 0:
            break
        if ti in used_t or di in used_d:
            continue
        pairs.append((int(ti), int(di)))
        used_t.add(ti)
        used_d.add(di)
    return pairs
