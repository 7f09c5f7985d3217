"""VidVRD-II's tracklet segments of a data set: tracklets, mean per-frame RoI features from a
frozen extractor, labelled candidate pairs; built once and kept on disk (keyed by the split's
videos, the settings and a checksum of the extractor's weights). The file is the ``torch.save``
payload behind a header of a magic string and the payload's CRC-32 (``torch.load`` checks no
checksum of tensor data: a damaged byte would be another feature value); a file whose CRC does
not match is rebuilt like a stale one."""

from __future__ import annotations

import io
import pickle
import zlib
from pathlib import Path
from typing import Any

import torch

from tailgraph.data.images import load_image, pad_images
from tailgraph.errors import DataError
from tailgraph.structures import VideoSceneGraph
from tailgraph.vocab import Vocabulary

__all__ = ["save_segments", "load_segments", "build_tracklet_segments", "SEGMENT_CACHE_VERSION"]


SEGMENT_CACHE_VERSION = 2  # 2: the CRC-32 header
_MAGIC = b"TGSEGv2\n"


def save_segments(path: str | Path, segments: list) -> None:
    """Write tracklet segments to ``path`` (tensors, ints and strings only: loadable with
    ``weights_only=True``), via a temporary file and a rename."""
    rows = []
    for s in segments:
        rows.append(
            {
                "video_id": s.video_id,
                "begin": int(s.begin),
                "end": int(s.end),
                "t_begin": torch.tensor([t.begin for t in s.tracklets], dtype=torch.int64),
                "t_boxes": [torch.as_tensor(t.boxes) for t in s.tracklets],
                "t_ids": [t.track_id for t in s.tracklets],
                "feats": s.feats,
                "labels": s.labels,
                "pairs": s.pairs,
                "targets": s.targets,
                "positive": s.positive,
                "position": s.position,
            }
        )
    from tailgraph.io.outputs import write_bytes_atomic

    buf = io.BytesIO()  # serialised in memory: torch's zip writer does not report a full disk
    torch.save({"version": SEGMENT_CACHE_VERSION, "segments": rows}, buf)
    payload = buf.getvalue()
    crc = zlib.crc32(payload).to_bytes(4, "little")
    write_bytes_atomic(path, _MAGIC + crc + payload)


def load_segments(path: str | Path) -> list | None:
    """Segments written by :func:`save_segments`, or ``None`` when the file is missing, of
    another version or unreadable (then it is rebuilt)."""
    from tailgraph.structures import Segment, Tracklet

    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 4
    if raw[: len(_MAGIC)] != _MAGIC or zlib.crc32(raw[head:]) != int.from_bytes(
        raw[len(_MAGIC) : head], "little"
    ):
        return None  # another version, or damaged: rebuilt
    try:
        doc = torch.load(io.BytesIO(raw[head:]), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != SEGMENT_CACHE_VERSION:
        return None
    out = []
    for r in doc["segments"]:
        tracklets = [
            Tracklet(int(b), boxes.numpy(), tid)
            for b, boxes, tid in zip(r["t_begin"].tolist(), r["t_boxes"], r["t_ids"])
        ]
        out.append(
            Segment(
                r["video_id"],
                r["begin"],
                r["end"],
                tracklets,
                r["feats"],
                r["labels"],
                r["pairs"],
                r["targets"],
                r["positive"],
                r["position"],
            )
        )
    return out


def build_tracklet_segments(
    videos: list[VideoSceneGraph],
    vocab: Vocabulary,
    extractor: Any,
    *,
    length: int,
    stride: int,
    max_size: int,
    source: str,
    jitter: float,
    seed: int,
    pos_viou: float,
    neg_viou: float,
    min_overlap: float,
    training: bool,
    frame_batch: int = 32,
    user_tracks: dict[str, list] | None = None,
    tracker_matching: str = "optimal",
    tracker_by_class: bool = True,
) -> list:
    """The VidVRD-II segments of ``videos`` (:mod:`tailgraph.data.tracklets`): tracklets,
    mean per-frame RoI features from ``extractor``, and (``training``) labelled candidate
    pairs, else every ordered pair of tracklets. ``user_tracks``: the videos' tracklets given
    directly (video id → ``[(first frame, boxes [L, 4])]``, e.g. linked detections), in place
    of ``source``. ``tracker_matching`` / ``tracker_by_class``: the IoU tracker's assignment and
    class gating for ``source="tracked"`` (:func:`tailgraph.ops.tracks.link_detections`)."""
    import numpy as np

    from tailgraph.data.tracklets import (
        active_instances,
        assign_pairs,
        is_tracklet_file,
        pair_position,
        read_tracklet_file,
        segment_tracklets,
    )
    from tailgraph.data.vidvrd import split_segments
    from tailgraph.structures import Segment

    fg = vocab.foreground_predicates
    pred_col = {vocab.predicates[p]: j for j, p in enumerate(fg)}
    cls_index = {c: i for i, c in enumerate(vocab.object_classes)}
    out = []
    from tailgraph.progress import track

    user = user_tracks
    if user is None and is_tracklet_file(source):
        user = read_tracklet_file(source)
    for vi, v in enumerate(track(videos, "tracklet features", unit="video")):
        cats = {t: cls_index[c] for t, c in v.extras.get("categories", {}).items()}
        mine = None
        if user is not None:
            mine = user.get(str(v.video_id))
            if mine is None:
                raise DataError("no tracklets for this video", file=source, sample=v.video_id)
        segs = []
        for si, seg in enumerate(split_segments(v, length, stride)):
            rng = np.random.default_rng([seed, vi, si, 4242])
            tracklets, tracks = segment_tracklets(
                v,
                seg["begin"],
                seg["end"],
                source,
                jitter,
                rng,
                user_tracks=mine,
                matching=tracker_matching,
                by_class=tracker_by_class,
            )
            if not tracklets:
                continue
            active = active_instances(
                v.extras.get("relation_instances", []), seg["begin"], seg["end"], min_overlap
            )
            labels, pairs, targets, positive = assign_pairs(
                tracklets, tracks, active, pred_col, cats, pos_viou=pos_viou, neg_viou=neg_viou
            )
            if not training:
                n = len(tracklets)
                pairs = torch.tensor(
                    [(a, b) for a in range(n) for b in range(n) if a != b], dtype=torch.int64
                ).reshape(-1, 2)
                targets, positive = (
                    torch.zeros((pairs.shape[0], len(fg))),
                    torch.zeros(pairs.shape[0], dtype=torch.bool),
                )
            segs.append((seg, tracklets, labels, pairs, targets, positive))
        # per-frame RoI features of every tracklet box, one trunk pass per frame of the video
        frames_needed = sorted(
            {t.begin + k for _, trs, *_ in segs for t in trs for k in range(len(t.boxes))}
        )
        index = {f: i for i, f in enumerate(frames_needed)}
        boxes, frame_of = [], []
        for _, trs, *_ in segs:
            for t in trs:
                boxes.append(torch.tensor(t.boxes, dtype=torch.float32))
                frame_of.append(torch.arange(t.begin, t.end))
        feats_per_box = torch.zeros((0, extractor.out_dim))
        if boxes:
            all_boxes, all_frames = torch.cat(boxes), torch.cat(frame_of)
            frame_row = torch.tensor([index[int(f)] for f in all_frames], dtype=torch.int64)
            chunks = []
            for c in range(0, len(frames_needed), frame_batch):
                fr = frames_needed[c : c + frame_batch]
                imgs = [
                    load_image(v.frames[f].image_path, max_size, sample=v.frames[f].image_id)
                    for f in fr
                ]
                images = pad_images([t for t, _ in imgs])
                scales = torch.tensor([sc for _, sc in imgs], dtype=torch.float32)
                sel = frame_row - c
                mask = (sel >= 0) & (sel < len(fr))
                chunks.append((mask, extractor(images, scales, all_boxes[mask], sel[mask])))
            feats_per_box = torch.zeros((all_boxes.shape[0], extractor.out_dim))
            for mask, f in chunks:
                feats_per_box[mask] = f
        row = 0
        for seg, trs, labels, pairs, targets, positive in segs:
            tf = []
            for t in trs:
                tf.append(feats_per_box[row : row + len(t.boxes)].mean(0))
                row += len(t.boxes)
            out.append(
                Segment(
                    v.video_id,
                    seg["begin"],
                    seg["end"],
                    trs,
                    torch.stack(tf),
                    labels,
                    pairs,
                    targets,
                    positive,
                    pair_position(trs, pairs),
                )
            )
    return out
