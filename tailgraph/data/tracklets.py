"""VidVRD-II's segment-level data: tracklets, tracklet features, candidate pairs and targets.

A video is cut into segments (:func:`tailgraph.data.vidvrd.split_segments`: 30 frames, stride
15). In each segment:

* **Tracklets** are the boxes of one track over the frames of the segment in which it appears
  (``source="gt"``: the annotated trajectories; ``source="jittered"``: the same with per-tracklet
  and per-frame box noise, a stand-in for a detector + tracker whose tracklets are not exact;
  ``source="tracked"``: a synthetic detector — every annotated box of every frame, missed with
  probability :data:`TRACKED_MISS_RATE` and otherwise moved by per-frame noise of ``jitter`` ×
  its size — whose detections an IoU tracker links into tracklets
  (:func:`tailgraph.ops.tracks.link_detections`): identities can switch, tracks can break and
  start late, as a real detector + tracker's do; the detector's classes are the annotated ones,
  and by default the tracker links only boxes of one class). A gap inside a tracklet is filled
  with the previous box.
* A tracklet's **class label** (the object head's target) is the class of the annotated track
  it overlaps most with vIoU ≥ ``label_viou`` (0.5), else background.
* **Candidate pairs** are the ordered pairs of distinct tracklets. A pair is *positive* for the
  predicates of the relation instances active in the segment whose annotated (subject, object)
  tracks it matches with ``min(vIoU_subject, vIoU_object) ≥ pos_viou`` (0.9); *negative* when it
  matches no active instance's pair with ≥ ``neg_viou`` (0.5); otherwise it is ignored. An
  instance is active in a segment when it covers at least ``min_overlap`` of
  ``min(segment length, instance length)``. Training keeps every positive pair and random
  negatives up to ``max_pairs`` (64) per segment.
* The **relative position** feature of a pair is VidVRD-II's 12-d start / end feature
  (:func:`tailgraph.ops.tracks.relative_motion_feature`).
* A tracklet's **visual feature** is the mean of its per-frame RoI features
  (:class:`tailgraph.modeling.tracklet_features.TrackletFeatureExtractor`).

vIoU is VidVRD-helper's (:func:`tailgraph.ops.tracks.viou`, +1 pixel convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tailgraph.errors import DataError
from tailgraph.ops.tracks import link_detections, relative_motion_feature, viou
from tailgraph.structures import Tracklet, VideoSceneGraph

__all__ = [
    "segment_tracklets",
    "read_tracklet_file",
    "is_tracklet_file",
    "active_instances",
    "assign_pairs",
    "pair_position",
    "TRACKLET_SOURCES",
]

TRACKLET_SOURCES = ("gt", "jittered", "tracked")
TRACKED_MISS_RATE = 0.1  # ``tracked``: the synthetic detector misses a box this often


def _track_boxes(video: VideoSceneGraph, begin: int, end: int) -> dict[Any, tuple[int, np.ndarray]]:
    """Annotated tracks in ``[begin, end)``: track id → (first frame, boxes over [first, last])."""
    seen: dict[Any, dict[int, np.ndarray]] = {}
    for f in range(begin, end):
        fr = video.frames[f]
        if fr.track_ids is None:
            raise DataError("VidVRD frames need track ids", sample=fr.image_id, field="track_ids")
        boxes = fr.boxes.numpy()
        for k, t in enumerate(fr.track_ids.tolist()):
            seen.setdefault(t, {})[f] = boxes[k]
    out = {}
    for t, by_frame in seen.items():
        first, last = min(by_frame), max(by_frame)
        rows, prev = [], None
        for f in range(first, last + 1):
            prev = by_frame.get(f, prev)
            rows.append(prev)
        out[t] = (first, np.asarray(rows, dtype=np.float64).reshape(-1, 4))
    return out


def is_tracklet_file(source: str) -> bool:
    """Whether a ``tracklets`` option names a user tracklet file (not a built-in source)."""
    return source not in TRACKLET_SOURCES and str(source).endswith(".json")


def read_tracklet_file(path: str) -> dict[str, list[tuple[int, np.ndarray]]]:
    """User tracklets in VidVRD's trajectory layout: ``{video_id: {"trajectories": [[{"tid":
    T, "bbox": {"xmin", "ymin", "xmax", "ymax"}}, ...] per frame]}}`` (frame ``f`` of the list
    is frame ``f`` of the video; a track may skip frames: the gap holds its last box).

    Returns ``{video_id: [(first frame, boxes [L, 4])]}``, tracks ordered by their ``tid``.
    """
    from tailgraph.io.files import read_json_file

    doc = read_json_file(path)
    if not isinstance(doc, dict) or not doc:
        raise DataError("expected an object {video_id: {trajectories}}", file=path)
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    for vid, entry in doc.items():
        frames = entry.get("trajectories") if isinstance(entry, dict) else None
        if not isinstance(frames, list):
            raise DataError(
                "expected {'trajectories': [per-frame lists]}", file=path, sample=vid,
                field="trajectories",
            )  # fmt: skip
        seen: dict[Any, dict[int, list[float]]] = {}
        for f, boxes in enumerate(frames):
            if not isinstance(boxes, list):
                raise DataError(
                    "a frame's entry must be a list of {tid, bbox}", file=path,
                    sample=f"{vid} frame {f}", field="trajectories",
                )  # fmt: skip
            for b in boxes:
                where = f"{vid} frame {f}"
                if not isinstance(b, dict) or not isinstance(b.get("bbox"), dict):
                    raise DataError("expected {tid, bbox}", file=path, sample=where, field="bbox")
                tid = b.get("tid")
                if isinstance(tid, bool) or not isinstance(tid, (int, str)):
                    raise DataError(f"tid {tid!r} is not an integer or string", file=path,
                                    sample=where, field="tid")  # fmt: skip
                bb = b["bbox"]
                try:
                    box = [float(bb[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
                except (KeyError, TypeError, ValueError):
                    raise DataError("bbox needs numbers xmin, ymin, xmax, ymax", file=path,
                                    sample=where, field="bbox") from None  # fmt: skip
                if any(isinstance(bb[k], bool) for k in ("xmin", "ymin", "xmax", "ymax")):
                    raise DataError("bbox values must be numbers", file=path, sample=where,
                                    field="bbox")  # fmt: skip
                if not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
                    raise DataError(f"box {box} is not finite and ordered", file=path,
                                    sample=where, field="bbox")  # fmt: skip
                if f in seen.setdefault(tid, {}):
                    raise DataError(f"tid {tid!r} twice in one frame", file=path, sample=where,
                                    field="tid")  # fmt: skip
                seen[tid][f] = box
        tracks = []
        for tid in sorted(seen, key=str):
            by_frame = seen[tid]
            first, last = min(by_frame), max(by_frame)
            rows, prev = [], None
            for f in range(first, last + 1):
                prev = by_frame.get(f, prev)
                rows.append(prev)
            tracks.append((first, np.asarray(rows, dtype=np.float64).reshape(-1, 4)))
        out[str(vid)] = tracks
    return out


def clip_tracks(tracks: Sequence[tuple[int, np.ndarray]], begin: int, end: int) -> list[Tracklet]:
    """The parts of whole-video tracks inside segment ``[begin, end)``."""
    out = []
    for first, boxes in tracks:
        lo, hi = max(begin, first), min(end, first + len(boxes))
        if hi > lo:
            out.append(Tracklet(lo, boxes[lo - first : hi - first]))
    return out


def segment_tracklets(
    video: VideoSceneGraph,
    begin: int,
    end: int,
    source: str = "gt",
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
    user_tracks: Sequence[tuple[int, np.ndarray]] | None = None,
    matching: str = "optimal",
    by_class: bool = True,
) -> tuple[list[Tracklet], dict[Any, tuple[int, np.ndarray]]]:
    """The tracklets of segment ``[begin, end)`` and the annotated tracks they come from.

    ``jittered``: every box moves by ``jitter`` × its size times (a per-tracklet offset drawn
    once + a per-frame offset of half that scale), normal noise from ``rng``. ``tracked``: the
    synthetic detector's boxes linked by the IoU tracker (see the module docstring) with
    ``matching`` (``optimal`` | ``greedy``), linking only boxes of one class when ``by_class``
    (:func:`tailgraph.ops.tracks.link_detections`).
    """
    if user_tracks is not None:  # a user tracklet file (read_tracklet_file)
        return clip_tracks(user_tracks, begin, end), _track_boxes(video, begin, end)
    if source not in TRACKLET_SOURCES:
        raise DataError(
            f"tracklet source must be one of {TRACKLET_SOURCES}, got {source!r}", field="tracklets"
        )
    tracks = _track_boxes(video, begin, end)
    if source == "tracked":
        rng = rng if rng is not None else np.random.default_rng(0)
        frames, classes = [], []
        for f in range(begin, end):
            boxes = video.frames[f].boxes.numpy().astype(np.float64).reshape(-1, 4)
            keep = rng.random(len(boxes)) >= TRACKED_MISS_RATE
            boxes = boxes[keep]
            classes.append(video.frames[f].labels.numpy().reshape(-1)[keep])
            wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
            boxes = boxes + rng.normal(0, jitter, boxes.shape) * wh
            x1, y1 = np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3])
            x2, y2 = np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])
            frames.append(np.stack([x1, y1, x2, y2], axis=1))
        linked = link_detections(
            frames, begin, labels=classes if by_class else None, matching=matching
        )
        return [Tracklet(first, boxes) for first, boxes in linked], tracks
    out = []
    for t in sorted(tracks, key=str):
        first, boxes = tracks[t]
        if source == "jittered" and jitter > 0:
            rng = rng if rng is not None else np.random.default_rng(0)
            wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
            noise = rng.normal(0, jitter, (1, 4)) + rng.normal(0, jitter / 2, boxes.shape)
            boxes = boxes + noise * wh
            x1, y1 = np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3])
            x2, y2 = np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])
            boxes = np.stack([x1, y1, x2, y2], axis=1)
        out.append(Tracklet(first, boxes, t))
    return out, tracks


def active_instances(
    instances: Sequence[dict], begin: int, end: int, min_overlap: float = 0.5
) -> list[dict]:
    """Relation instances covering at least ``min_overlap`` of ``min(segment, instance)``
    length within ``[begin, end)``."""
    out = []
    for r in instances:
        lo, hi = max(begin, r["begin_fid"]), min(end, r["end_fid"])
        need = min_overlap * min(end - begin, r["end_fid"] - r["begin_fid"])
        if hi > lo and hi - lo >= need:
            out.append(r)
    return out


def assign_pairs(
    tracklets: Sequence[Tracklet],
    tracks: dict[Any, tuple[int, np.ndarray]],
    instances: Sequence[dict],
    predicate_index: dict[str, int],
    categories: dict[Any, int],
    *,
    pos_viou: float = 0.9,
    neg_viou: float = 0.5,
    label_viou: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labels, candidate pairs and targets of one segment (see the module docstring).

    Args:
        tracklets: the segment's tracklets.
        tracks: annotated tracks in the segment (track id → (first frame, boxes)).
        instances: the relation instances active in the segment.
        predicate_index: predicate name → target column (foreground predicates from 0).
        categories: track id → class index.
    Returns:
        ``(labels [T], pairs [Q, 2], targets [Q, P], positive [Q])``; ignored pairs (vIoU between
        the thresholds) are left out.
    """
    tids = list(tracks)
    n, m = len(tracklets), len(tids)
    ov = np.zeros((n, m))
    for i, tr in enumerate(tracklets):
        for j, t in enumerate(tids):
            first, boxes = tracks[t]
            ov[i, j] = viou(tr.boxes, (tr.begin, tr.end), boxes, (first, first + len(boxes)))
    labels = torch.zeros(n, dtype=torch.int64)
    for i in range(n):
        if m and ov[i].max() >= label_viou:
            labels[i] = int(categories[tids[int(ov[i].argmax())]])
    col = {t: j for j, t in enumerate(tids)}
    num_p = len(predicate_index)
    pairs, targets, positive = [], [], []
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            y = torch.zeros(num_p)
            best = 0.0
            for r in instances:
                js, jo = col.get(r["subject_tid"]), col.get(r["object_tid"])
                if js is None or jo is None:
                    continue
                o = min(ov[a, js], ov[b, jo])
                best = max(best, o)
                if o >= pos_viou:
                    y[predicate_index[r["predicate"]]] = 1.0
            if y.any():
                pairs.append((a, b))
                targets.append(y)
                positive.append(True)
            elif best < neg_viou:
                pairs.append((a, b))
                targets.append(y)
                positive.append(False)
    pt = torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2)
    tt = torch.stack(targets) if targets else torch.zeros((0, num_p))
    return labels, pt, tt, torch.tensor(positive, dtype=torch.bool)


def pair_position(tracklets: Sequence[Tracklet], pairs: torch.Tensor) -> torch.Tensor:
    """``[Q, 12]`` relative position features of the pairs (boxes at each tracklet's first and
    last frame in the segment)."""
    if pairs.numel() == 0:
        return torch.zeros((0, 12))
    first = torch.tensor(np.stack([t.boxes[0] for t in tracklets]), dtype=torch.float32)
    last = torch.tensor(np.stack([t.boxes[-1] for t in tracklets]), dtype=torch.float32)
    t0 = torch.tensor([t.begin for t in tracklets], dtype=torch.float32)
    t1 = torch.tensor([t.end - 1 for t in tracklets], dtype=torch.float32)
    s, o = pairs[:, 0], pairs[:, 1]
    return relative_motion_feature(
        first[s], first[o], last[s], last[o], (t0[s], t1[s]), (t0[o], t1[o])
    )
