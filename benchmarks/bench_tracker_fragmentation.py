"""Why the IoU tracker splits synth-vrd's trajectories: link the *annotated* boxes of every
frame (no detector noise, no misses) and count tracks against trajectories; find the frames
where a trajectory's box jumps by more than its own width, and how many of them fall on a
relation instance's first or last frame of that object.

``--linkers`` compares the tracker's assignments (``optimal`` / ``greedy``) with and without
class gating, on the annotated boxes and on the synthetic detector's (``tracklets: tracked``:
boxes missed at :data:`TRACKED_MISS_RATE`, per-frame noise of ``--jitter`` × their size): tracks
per trajectory, identity switches (consecutive detections of one track from different
trajectories) and purity (the share of a track's detections from its majority trajectory).

    .venv/bin/python benchmarks/bench_tracker_fragmentation.py --root data/synth-vrd-1000 \
        --split test [--linkers] --json OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tailgraph.data.tracklets import TRACKED_MISS_RATE, segment_tracklets  # noqa: E402
from tailgraph.data.vidvrd import load_vidvrd  # noqa: E402
from tailgraph.ops.tracks import LINK_MATCHING, link_detections  # noqa: E402


def consecutive_iou(boxes: np.ndarray) -> np.ndarray:
    """IoU of each box of a trajectory with the next one (``[L - 1]``)."""
    a, b = boxes[:-1], boxes[1:]
    lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def measure(root: str, split: str) -> dict:
    videos, _ = load_vidvrd(root, split)
    n_traj = n_tracks = at_bound = elsewhere = 0
    ious, widths = [], []
    for v in videos:
        frames = [f.boxes.numpy().astype(np.float64).reshape(-1, 4) for f in v.frames]
        labels = [f.labels.numpy().reshape(-1) for f in v.frames]
        n_tracks += len(link_detections(frames, 0, labels=labels))
        _, tracks = segment_tracklets(v, 0, len(v.frames), "gt")
        n_traj += len(tracks)
        bounds: dict = {}
        for r in v.extras.get("relation_instances", []):
            for t in (r["subject_tid"], r["object_tid"]):
                bounds.setdefault(t, set()).update({r["begin_fid"], r["end_fid"]})
        for tid, (first, b) in tracks.items():
            if len(b) < 2:
                continue
            ious.append(consecutive_iou(b))
            w = b[:, 2] - b[:, 0]
            widths.append(float(np.median(w)))
            shift = np.abs(np.diff((b[:, 0] + b[:, 2]) / 2))
            for k in np.flatnonzero(shift > w[:-1]):
                if first + k + 1 in bounds.get(tid, ()):
                    at_bound += 1
                else:
                    elsewhere += 1
    iou = np.concatenate(ious) if ious else np.zeros(0)
    return {
        "videos": len(videos),
        "trajectories": n_traj,
        "tracks_from_annotated_boxes": n_tracks,
        "consecutive_iou_below_0.3": float((iou < 0.3).mean()) if iou.size else 0.0,
        "consecutive_iou_zero": float((iou == 0).mean()) if iou.size else 0.0,
        "consecutive_iou_median": float(np.median(iou)) if iou.size else 0.0,
        "median_box_width": float(np.median(widths)) if widths else 0.0,
        "jumps_wider_than_the_box": at_bound + elsewhere,
        "jumps_at_a_relation_boundary": at_bound,
    }


def _identity(track: np.ndarray, first: int, boxes: list, ids: list) -> list:
    """The trajectory each box of a linked track came from: the frame's detection it equals
    (``None`` for a bridged gap's held box, which no detection of that frame equals)."""
    out = []
    for k, b in enumerate(track):
        f = first + k
        hit = np.flatnonzero((boxes[f] == b).all(axis=1)) if len(boxes[f]) else []
        out.append(int(ids[f][hit[0]]) if len(hit) else None)
    return out


def compare_linkers(root: str, split: str, jitter: float, seed: int = 0) -> dict:
    """Each (matching, class gating) linker on the annotated and the detector's boxes."""
    videos, _ = load_vidvrd(root, split)
    out: dict = {}
    for noise in (0.0, jitter):
        rng = np.random.default_rng(seed)
        inputs = []
        for v in videos:
            boxes, ids, labels = [], [], []
            for fr in v.frames:
                b = fr.boxes.numpy().astype(np.float64).reshape(-1, 4)
                t = fr.track_ids.numpy().reshape(-1)
                c = fr.labels.numpy().reshape(-1)
                if noise:
                    keep = rng.random(len(b)) >= TRACKED_MISS_RATE
                    b, t, c = b[keep], t[keep], c[keep]
                    wh = np.concatenate([b[:, 2:] - b[:, :2]] * 2, axis=1)
                    b = b + rng.normal(0, noise, b.shape) * wh
                    b = np.concatenate(
                        [np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1
                    )
                boxes.append(b)
                ids.append(t)
                labels.append(c)
            inputs.append((boxes, ids, labels))
        name = (
            "annotated boxes"
            if not noise
            else f"detector (miss {TRACKED_MISS_RATE}, jitter {noise})"
        )
        for matching in LINK_MATCHING:
            for by_class in (True, False):
                n_traj = n_tracks = switches = majority = linked = 0
                for boxes, ids, labels in inputs:
                    tracks = link_detections(
                        boxes, 0, labels=labels if by_class else None, matching=matching
                    )
                    n_tracks += len(tracks)
                    n_traj += len({int(i) for f in ids for i in f})
                    for first, tb in tracks:
                        seq = [i for i in _identity(tb, first, boxes, ids) if i is not None]
                        switches += sum(a != b for a, b in zip(seq, seq[1:]))
                        if seq:
                            majority += int(np.unique(seq, return_counts=True)[1].max())
                            linked += len(seq)
                out.setdefault(name, {})[
                    f"{matching}, {'by class' if by_class else 'any class'}"
                ] = {
                    "trajectories": n_traj,
                    "tracks": n_tracks,
                    "tracks_per_trajectory": round(n_tracks / max(n_traj, 1), 3),
                    "identity_switches": switches,
                    "purity": round(majority / max(linked, 1), 4),
                }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="data/synth-vrd-1000")
    ap.add_argument("--split", default="test")
    ap.add_argument("--json", default=None)
    ap.add_argument("--linkers", action="store_true", help="compare the tracker's linkers")
    ap.add_argument("--jitter", type=float, default=0.05, help="the detector's box noise")
    a = ap.parse_args()
    out = measure(a.root, a.split)
    if a.linkers:
        out["linkers"] = compare_linkers(a.root, a.split, a.jitter)
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
