"""Why the IoU tracker splits synth-vrd's trajectories: link the *annotated* boxes of every
frame (no detector noise, no misses) and count tracks against trajectories; find the frames
where a trajectory's box jumps by more than its own width, and how many of them fall on a
relation instance's first or last frame of that object.

    .venv/bin/python benchmarks/bench_tracker_fragmentation.py --root data/synth-vrd-1000 \
        --split test --json OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tailgraph.data.tracklets import segment_tracklets  # noqa: E402
from tailgraph.data.vidvrd import load_vidvrd  # noqa: E402
from tailgraph.ops.tracks import link_detections  # noqa: E402


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
        n_tracks += len(link_detections(frames, 0))
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="data/synth-vrd-1000")
    ap.add_argument("--split", default="test")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    out = measure(a.root, a.split)
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
