"""``tailgraph predict`` with a segment-level video model (VidVRD-II): relation instances of
the user's own videos, from folders of frames.

Every folder of frames under ``--input`` is one video (its frames in name order; the video id
is the folder's path below ``--input``). The tracklets come from one of:

* ``--tracklets FILE``: the user's tracklets in VidVRD's trajectory layout, ``{video_id:
  {"trajectories": [[{"tid", "bbox": {"xmin", "ymin", "xmax", "ymax"}}, ...] per frame]}}``
  (:func:`tailgraph.data.tracklets.read_tracklet_file`);
* ``--boxes FILE``: per-frame detections (the simple form ``{"VIDEO/FRAME_FILE": [{"box": [x1,
  y1, x2, y2], "label": "CLASS"}, ...]}``, COCO-style, or interchange), linked into tracklets by
  the IoU tracker (:func:`tailgraph.ops.tracks.link_detections`) with the checkpoint's tracker
  settings (the data module's ``tracker_matching`` / ``tracker_by_class``; by default an optimal
  assignment that links only boxes of one class). Beyond that the labels are not used:
  VidVRD-II classifies its tracklets.

The video is cut into the checkpoint's segments, each tracklet's features come from the
checkpoint's frozen extractor (standardised with the training features' statistics, kept in
the checkpoint), and the model's per-segment triplets are associated across segments as in
``tailgraph test``. ``OUT/relations.json`` is VidVRD's results layout (``{"version",
"results": {video_id: [{"triplet", "score", "duration", "sub_traj", "obj_traj"}]}}``, what
``tailgraph evaluate`` reads) and ``OUT/tracklets.json`` the tracklets used (the trajectory
layout above).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError

__all__ = ["predict_video_relations", "tracklets_document"]


def tracklets_document(tracks: dict[str, list], lengths: dict[str, int]) -> dict[str, Any]:
    """Tracks (video id → ``[(first frame, boxes [L, 4])]``) in VidVRD's trajectory layout
    (``tid`` = the track's index)."""
    doc: dict[str, Any] = {}
    for vid, ts in tracks.items():
        frames: list[list[dict]] = [[] for _ in range(lengths[vid])]
        for tid, (first, boxes) in enumerate(ts):
            for k, b in enumerate(boxes.tolist()):
                x1, y1, x2, y2 = (float(v) for v in b)
                frames[first + k].append(
                    {"tid": tid, "bbox": {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2}}
                )
        doc[vid] = {"trajectories": frames}
    return doc


def predict_video_relations(
    module: Any,
    ckpt: str | Path,
    items: list,
    out: str | Path,
    *,
    boxes: str | None,
    tracklets: str | None,
    known: dict[str, Any],
    frame_graph: Any,
    batch_size: int = 8,
    overwrite: bool = False,
    max_size: int | None = None,
) -> dict[str, Any]:
    """Relation instances of the videos ``items`` (:class:`tailgraph.engine.predict.InputItem`)
    from a VidVRD-II ``module``; see the module docstring. ``known``: ``--boxes`` by frame id;
    ``frame_graph(frame_id, path, known)``: a frame's :class:`SceneGraph` (size checked, boxes
    from ``known``). Returns the summary of :func:`tailgraph.engine.predict.predict_folder`."""
    import numpy as np
    import torch

    from tailgraph.data.tracklets import read_tracklet_file
    from tailgraph.datamodules.tracklet_segments import build_tracklet_segments
    from tailgraph.datamodules.vidvrd import build_extractor
    from tailgraph.io.outputs import build_folder_atomically, write_json_atomic
    from tailgraph.io.predictions import write_video_results
    from tailgraph.ops.tracks import link_detections
    from tailgraph.structures import SceneGraph, VideoSceneGraph, collate_segments

    info = getattr(module, "checkpoint_info", None) or {}
    settings = info.get("tracklet_segments")
    if not isinstance(settings, dict):
        raise DataError(
            "the checkpoint carries no tracklet-segment settings (written before tailgraph "
            "kept them, or not by fit on a VidVRD data module with output: tracklets): "
            "train it again, or predict a data set with tailgraph predict --config RECIPE",
            file=str(ckpt),
            field="tailgraph.tracklet_segments",
        )
    if (boxes is None) == (tracklets is None):
        raise DataError(
            "pass exactly one of --tracklets FILE (VidVRD trajectory layout) and --boxes FILE "
            "(per-frame detections, linked into tracklets)",
            field="--tracklets",
        )
    videos, lengths = [], {}
    for it in items:
        frames = []
        for fid, path in it.frames:
            g = frame_graph(fid, path, {})
            frames.append(
                SceneGraph(
                    fid,
                    g.width,
                    g.height,
                    torch.zeros(0, 4),
                    torch.zeros(0, dtype=torch.int64),
                    torch.zeros(0, 3, dtype=torch.int64),
                    image_path=str(path),
                    track_ids=torch.zeros(0, dtype=torch.int64),
                )
            )
        videos.append(VideoSceneGraph(it.item_id, frames))
        lengths[it.item_id] = len(frames)
    if tracklets is not None:
        tracks = read_tracklet_file(tracklets)
        unknown = sorted(set(tracks) - set(lengths))
        if unknown:
            raise DataError(
                f"video {unknown[0]!r} is not a folder of frames under --input",
                file=tracklets,
                sample=unknown[0],
                field="video_id",
            )
        for v in videos:
            ts = tracks.setdefault(str(v.video_id), [])
            for first, bx in ts:
                if first + len(bx) > len(v):
                    raise DataError(
                        f"a track ends at frame {first + len(bx) - 1}; the video has {len(v)} "
                        "frames",
                        file=tracklets,
                        sample=str(v.video_id),
                        field="trajectories",
                    )
                w, h = v.frames[0].width, v.frames[0].height
                if (
                    (bx[:, 0] < -1).any()
                    or (bx[:, 1] < -1).any()
                    or (bx[:, 2] > w + 1).any()
                    or (bx[:, 3] > h + 1).any()
                ):
                    raise DataError(
                        f"a box lies outside the {w}x{h} frames",
                        file=tracklets,
                        sample=str(v.video_id),
                        field="bbox",
                    )
    else:
        tracks = {}
        matching = str(settings.get("tracker_matching", "optimal"))
        by_class = bool(settings.get("tracker_by_class", True))
        for it, v in zip(items, videos):
            per_frame, classes = [], []
            for fid, path in it.frames:
                g = frame_graph(fid, path, known) if fid in known else None
                per_frame.append(
                    np.zeros((0, 4)) if g is None else g.boxes.numpy().astype(np.float64)
                )
                classes.append(
                    np.zeros(0, dtype=np.int64) if g is None else g.labels.numpy().reshape(-1)
                )
            tracks[str(v.video_id)] = link_detections(
                per_frame, 0, labels=classes if by_class else None, matching=matching
            )
    extractor = build_extractor(settings["feature_extractor"])
    size = int(max_size or settings["max_size"])
    mean = torch.as_tensor(settings["feature_mean"], dtype=torch.float32)
    std = torch.as_tensor(settings["feature_std"], dtype=torch.float32)

    def build(tmp: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        segments = build_tracklet_segments(
            videos,
            module.vocab,
            extractor,
            length=int(settings["segment_length"]),
            stride=int(settings["segment_stride"]),
            max_size=size,
            source="gt",
            jitter=0.0,
            seed=0,
            pos_viou=0.9,
            neg_viou=0.5,
            min_overlap=0.5,
            training=False,
            user_tracks=tracks,
        )
        from dataclasses import replace

        segments = [replace(s, feats=(s.feats - mean) / std) for s in segments]
        preds: list = []
        with torch.no_grad():
            for i in range(0, len(segments), batch_size):
                batch = collate_segments(segments[i : i + batch_size])
                preds.extend(module.predictions(batch))
        results = module.protocol.collate_predictions(module.model, preds) if preds else {}
        results = {str(v.video_id): results.get(str(v.video_id), []) for v in videos}
        write_video_results(str(tmp / "relations.json"), results)
        write_json_atomic(tmp / "tracklets.json", tracklets_document(tracks, lengths))
        seconds = time.perf_counter() - t0
        n_frames = sum(lengths.values())
        return {
            "images": n_frames,
            "videos": len(videos),
            "seconds": seconds,
            "images_per_s": n_frames / seconds if seconds > 0 else float("inf"),
            "files": ["relations.json", "tracklets.json"],
            "relations": sum(len(r) for r in results.values()),
            "tracklets": sum(len(t) for t in tracks.values()),
        }

    return build_folder_atomically(out, build, overwrite=overwrite)
