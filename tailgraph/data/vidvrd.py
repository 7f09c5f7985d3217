"""ImageNet-VidVRD reader (VidVRD-helper semantics), specs/formats.md §3.

``<root>/{train,test}/<video_id>.json`` per video: ``subject/objects`` (``tid``, ``category``),
``trajectories`` (per frame, a list of ``{tid, bbox: {xmin, ymin, xmax, ymax}}``) and
``relation_instances`` (``subject_tid``, ``object_tid``, ``predicate``, ``begin_fid``,
``end_fid`` exclusive). Boxes are inclusive pixel coordinates. Category and predicate ids are
the sorted names over the loaded splits (as the helper builds them), index 0 = background.

Each video becomes a :class:`VideoSceneGraph` with one :class:`SceneGraph` per frame (the
boxes of the trajectories present in it, ``track_ids`` = tids, and the relation instances
active in that frame); ``extras["relation_instances"]`` keeps the instances over frame ranges.
DLL's pattern metadata (actional / spatial pattern of every predicate, methods.md §3) is
derived from the predicate names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.ops.boxes import boxes_far_outside
from tailgraph.structures import SceneGraph, VideoSceneGraph
from tailgraph.vocab import BACKGROUND, Vocabulary

__all__ = [
    "load_vidvrd",
    "split_segments",
    "to_groundtruth",
    "predicate_patterns",
    "stats",
    "SPATIAL_SUFFIXES",
]

SPATIAL_SUFFIXES = (
    "above",
    "away",
    "behind",
    "beneath",
    "front",
    "inside",
    "left",
    "next_to",
    "past",
    "right",
    "toward",
    "with",
)


def predicate_patterns(name: str) -> tuple[str | None, str | None]:
    """``(actional, spatial)`` pattern of a VidVRD predicate name (DLL's decomposition).

    ``"fly_above"`` → ``("fly", "above")``; ``"next_to"`` → ``(None, "next_to")``;
    ``"chase"`` → ``("chase", None)``.
    """
    if name in SPATIAL_SUFFIXES:
        return None, name
    for suffix in sorted(SPATIAL_SUFFIXES, key=len, reverse=True):
        if name.endswith("_" + suffix):
            return name[: -len(suffix) - 1], suffix
    return name, None


def _read(path: Path) -> dict:
    from tailgraph.io.files import read_json_file

    doc = read_json_file(path)
    if not isinstance(doc, dict):
        raise DataError("expected a JSON object", file=str(path))
    for key in ("video_id", "subject/objects", "trajectories", "relation_instances"):
        if key not in doc:
            raise DataError(
                f"missing key '{key}'", file=str(path), sample=doc.get("video_id"), field=key
            )
    _check_types(doc, str(path))
    return doc


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_types(doc: dict, file: str) -> None:
    """Every field the reader uses has its type: ids and frame numbers are integers (a float is
    refused, not truncated), names are strings, coordinates finite numbers."""
    vid = doc["video_id"]
    if not isinstance(vid, str) and not _is_int(vid):
        raise DataError(f"expected a string, got {vid!r}"[:200], file=file, field="video_id")

    def bad(what: str, value: Any, sample: str, field: str) -> DataError:
        return DataError(
            f"expected {what}, got {value!r}"[:200], file=file, sample=sample, field=field
        )

    for key in ("width", "height", "frame_count", "fps"):
        v = doc.get(key)
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0
        ):
            raise bad("a non-negative number", v, vid, key)
        if key in ("width", "height", "frame_count") and v is not None and v != int(v):
            raise bad("an integer", v, vid, key)  # 1.0 is 1; 640.5 is not a frame size
    for key in ("subject/objects", "trajectories", "relation_instances"):
        if not isinstance(doc[key], list):
            raise bad("a list", doc[key], vid, key)
    for j, o in enumerate(doc["subject/objects"]):
        if not isinstance(o, dict):
            raise bad("an object {tid, category}", o, f"{vid} object {j}", "subject/objects")
        if "tid" in o and not _is_int(o["tid"]):
            raise bad("an integer", o["tid"], f"{vid} object {j}", "tid")
        if "category" in o and not isinstance(o["category"], str):
            raise bad("a category name", o["category"], f"{vid} object {j}", "category")
    for f, frame in enumerate(doc["trajectories"]):
        if not isinstance(frame, list):
            raise bad("a list of boxes", frame, f"{vid} frame {f}", "trajectories")
        for b in frame:
            if not isinstance(b, dict) or not isinstance(b.get("bbox"), dict):
                raise bad("{tid, bbox}", b, f"{vid} frame {f}", "trajectories")
            if not _is_int(b.get("tid")):
                raise bad("an integer", b.get("tid"), f"{vid} frame {f}", "tid")
            for c in ("xmin", "ymin", "xmax", "ymax"):
                v = b["bbox"].get(c)
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise bad("a number", v, f"{vid} frame {f} tid {b['tid']}", f"bbox.{c}")
    for i, r in enumerate(doc["relation_instances"]):
        sample = f"{vid} relation {i}"
        if not isinstance(r, dict):
            raise bad("a relation instance", r, sample, "relation_instances")
        for key in ("subject_tid", "object_tid", "begin_fid", "end_fid"):
            if key in r and not _is_int(r[key]):
                raise bad("an integer", r[key], sample, key)
        if "predicate" in r and not isinstance(r["predicate"], str):
            raise bad("a predicate name", r["predicate"], sample, "predicate")


def _split_files(root: Path, split: str) -> list[Path]:
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"split folder '{split}' not found", file=str(folder))
    return sorted(folder.glob("*.json"))


def _video(
    doc: dict,
    path: Path,
    cls_index: dict[str, int],
    pred_index: dict[str, int],
    frames_dir: Path | None = None,
) -> VideoSceneGraph:
    vid = doc["video_id"]
    cat = {}
    for o in doc["subject/objects"]:
        if "tid" not in o or "category" not in o:
            raise DataError(
                "object needs 'tid' and 'category'",
                file=str(path),
                sample=vid,
                field="subject/objects",
            )
        if o["tid"] in cat:
            raise DataError(
                f"tid {o['tid']} listed twice", file=str(path), sample=vid, field="subject/objects"
            )
        cat[o["tid"]] = o["category"]
    trajs = doc["trajectories"]
    n_frames = len(trajs)
    width = int(doc.get("width") or 0) or None
    height = int(doc.get("height") or 0) or None
    frame_boxes: list[dict[int, list[float]]] = []
    for f, frame in enumerate(trajs):
        boxes = {}
        for b in frame:
            try:
                bb = b["bbox"]
                box = [float(bb["xmin"]), float(bb["ymin"]), float(bb["xmax"]), float(bb["ymax"])]
                tid = b["tid"]
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    "box needs 'tid' and bbox xmin/ymin/xmax/ymax",
                    file=str(path),
                    sample=f"{vid} frame {f}",
                    field="trajectories",
                ) from None
            if tid not in cat:
                raise DataError(
                    f"tid {tid} is not in subject/objects",
                    file=str(path),
                    sample=f"{vid} frame {f}",
                    field="trajectories",
                )
            if not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
                raise DataError(
                    f"bad box {box}",
                    file=str(path),
                    sample=f"{vid} frame {f} tid {tid}",
                    field="bbox",
                )
            if tid in boxes:
                raise DataError(
                    f"tid {tid} has two boxes in this frame",
                    file=str(path),
                    sample=f"{vid} frame {f}",
                    field="trajectories",
                )
            boxes[tid] = box
        frame_boxes.append(boxes)
    if width and height:  # one check per video, not per box
        where = [(f, tid) for f, boxes in enumerate(frame_boxes) for tid in boxes]
        if where:
            every = np.array([frame_boxes[f][tid] for f, tid in where])
            far = np.flatnonzero(boxes_far_outside(every, width, height))
            if far.size:
                f, tid = where[far[0]]
                raise DataError(
                    f"box {frame_boxes[f][tid]} lies more than one frame size outside the "
                    f"{width}x{height} frame",
                    file=str(path),
                    sample=f"{vid} frame {f} tid {tid}",
                    field="bbox",
                )
    instances = []
    for i, r in enumerate(doc["relation_instances"]):
        try:
            s, o, p, b, e = (
                r["subject_tid"],
                r["object_tid"],
                r["predicate"],
                int(r["begin_fid"]),
                int(r["end_fid"]),
            )
        except (KeyError, TypeError, ValueError):
            raise DataError(
                "relation needs subject_tid, object_tid, predicate, begin_fid, end_fid",
                file=str(path),
                sample=f"{vid} relation {i}",
                field="relation_instances",
            ) from None
        if s not in cat or o not in cat:
            raise DataError(
                f"tid {s if s not in cat else o} is not in subject/objects",
                file=str(path),
                sample=f"{vid} relation {i}",
                field="relation_instances",
            )
        if not (0 <= b < e <= n_frames):
            raise DataError(
                f"frame range [{b}, {e}) outside the {n_frames} frames",
                file=str(path),
                sample=f"{vid} relation {i}",
                field="begin_fid/end_fid",
            )
        missing = [f for f in range(b, e) if s not in frame_boxes[f] or o not in frame_boxes[f]]
        if missing:
            raise DataError(
                f"trajectory has no box in frame {missing[0]}",
                file=str(path),
                sample=f"{vid} relation {i}",
                field="trajectories",
            )
        if p not in pred_index:
            raise DataError(
                f"unknown predicate {p!r}",
                file=str(path),
                sample=f"{vid} relation {i}",
                field="predicate",
            )
        instances.append(
            {
                "subject_tid": s,
                "object_tid": o,
                "predicate": p,
                "begin_fid": b,
                "end_fid": e,
                "triplet": (cat[s], p, cat[o]),
            }
        )
    frames = []
    for f, boxes in enumerate(frame_boxes):
        tids = sorted(boxes)
        pos = {t: k for k, t in enumerate(tids)}
        rels = [
            (pos[r["subject_tid"]], pos[r["object_tid"]], pred_index[r["predicate"]])
            for r in instances
            if r["begin_fid"] <= f < r["end_fid"]
        ]
        bx = np.array([boxes[t] for t in tids], dtype=np.float32).reshape(-1, 4)
        w = width or int(bx[:, 2].max() + 1 if len(bx) else 1)
        h = height or int(bx[:, 3].max() + 1 if len(bx) else 1)
        image_path = None
        if frames_dir is not None:
            ip = frames_dir / vid / f"{f:06d}.jpg"
            if not ip.is_file():
                raise DataError(
                    "frame image not found (use layout_only=True to read annotations only)",
                    file=str(ip),
                    sample=f"{vid}/{f}",
                    field="image",
                )
            image_path = str(ip)
        frames.append(
            SceneGraph(
                f"{vid}/{f}",
                w,
                h,
                bx,
                [cls_index[cat[t]] for t in tids],
                np.array(rels, dtype=np.int64).reshape(-1, 3),
                track_ids=tids,
                image_path=image_path,
            )
        )
    return VideoSceneGraph(
        vid,
        frames,
        list(range(n_frames)),
        extras={
            "relation_instances": instances,
            "categories": cat,
            "fps": doc.get("fps"),
            "file": str(path),
        },
    )


def load_vidvrd(
    root: str | Path,
    split: str = "test",
    *,
    layout_only: bool = True,
    splits_for_vocab: Iterable[str] = ("train", "test"),
) -> tuple[list[VideoSceneGraph], Vocabulary]:
    """Read one split of ImageNet-VidVRD.

    Args:
        root: folder with ``train/`` and ``test/`` annotation folders.
        split: ``train`` | ``test``.
        layout_only: read the annotations only; otherwise every frame needs
            ``frames/<video_id>/<frame:06d>.jpg``.
        splits_for_vocab: splits whose names define the category / predicate ids.
    Returns:
        ``(videos, vocabulary)``; ``predicate_counts`` count the relation instances of ``train``.
    """
    root = Path(root)
    docs = {}
    for s in splits_for_vocab:
        if (root / s).is_dir():
            docs[s] = [(p, _read(p)) for p in _split_files(root, s)]
    if split not in docs:
        _split_files(root, split)  # raises the missing-folder error
    cats = sorted(
        {
            o["category"]
            for d in docs.values()
            for _, doc in d
            for o in doc["subject/objects"]
            if "category" in o
        }
    )
    preds = sorted(
        {
            r["predicate"]
            for d in docs.values()
            for _, doc in d
            for r in doc["relation_instances"]
            if "predicate" in r
        }
    )
    cls_index = {c: i + 1 for i, c in enumerate(cats)}
    pred_index = {p: i + 1 for i, p in enumerate(preds)}
    patterns = [predicate_patterns(p) for p in preds]
    counts = [0] * (len(preds) + 1)
    for _, doc in docs.get("train", []):
        for r in doc["relation_instances"]:
            if r.get("predicate") in pred_index:
                counts[pred_index[r["predicate"]]] += 1
    vocab = Vocabulary(
        [BACKGROUND] + cats,
        [BACKGROUND] + preds,
        predicate_counts=counts,
        action_pattern=[None, *(a for a, _ in patterns)],
        spatial_pattern=[None, *(s for _, s in patterns)],
        name="vidvrd",
    )
    frames_dir = None if layout_only else root / "frames"
    seen: dict[str, Path] = {}
    for p, doc in docs[split]:  # a video listed twice would be counted twice
        vid = doc["video_id"]
        if vid in seen:
            raise DataError(
                f"video {vid!r} also in {seen[vid].name}", file=str(p), field="video_id"
            )
        seen[vid] = p
    videos = [_video(doc, p, cls_index, pred_index, frames_dir) for p, doc in docs[split]]
    return videos, vocab


def split_segments(
    video: VideoSceneGraph, length: int = 30, stride: int = 15
) -> list[dict[str, Any]]:
    """VidVRD-II's segment split: windows of ``length`` frames every ``stride`` frames (the last
    window ends at the video's end); each segment lists the relation instances overlapping it,
    clipped to it.

    Returns:
        ``[{"begin": b, "end": e, "relation_instances": [...]}]``.
    """
    n = len(video)
    starts = list(range(0, max(1, n - length + 1), stride))
    if not starts or starts[-1] + length < n:
        starts.append(max(0, n - length))
    out = []
    for b in starts:
        e = min(n, b + length)
        rels = []
        for r in video.extras.get("relation_instances", []):
            lo, hi = max(b, r["begin_fid"]), min(e, r["end_fid"])
            if lo < hi:
                rels.append({**r, "begin_fid": lo, "end_fid": hi})
        out.append({"begin": b, "end": e, "relation_instances": rels})
    return out


def to_groundtruth(videos: Iterable[VideoSceneGraph]) -> dict[Any, list]:
    """The evaluator's ground truth: video id → instances with ``triplet``, ``duration``,
    ``sub_traj`` and ``obj_traj`` (one box per frame of the duration)."""
    gt = {}
    for v in videos:
        rels = []
        for r in v.extras.get("relation_instances", []):
            sub, obj = [], []
            for f in range(r["begin_fid"], r["end_fid"]):
                fr = v.frames[f]
                tids = fr.track_ids.tolist()  # type: ignore[union-attr]  # VidVRD frames carry them
                sub.append(fr.boxes[tids.index(r["subject_tid"])].tolist())
                obj.append(fr.boxes[tids.index(r["object_tid"])].tolist())
            rels.append(
                {
                    "triplet": list(r["triplet"]),
                    "duration": [r["begin_fid"], r["end_fid"]],
                    "sub_traj": sub,
                    "obj_traj": obj,
                }
            )
        gt[v.video_id] = rels
    return gt


def stats(root: str | Path) -> dict[str, Any]:
    """``tailgraph stats --format vidvrd``: videos, frames, trajectory boxes and relation
    instances per split, and instance counts per predicate, per split and over all (no filters
    apply to VidVRD, so
    ``filtered`` equals the raw numbers)."""
    splits: dict[str, Any] = {}
    counts: dict[str, int] = {}
    if not Path(root).is_dir():
        raise DataError("data set folder not found", file=str(root), field="--root")
    present = [s for s in ("train", "test") if os.path.lexists(Path(root) / s)]
    if not present:
        raise DataError("no split found (looked for train/ and test/)", file=str(root))
    for split in present:
        if not (Path(root) / split).is_dir():
            raise DataError("split is not a readable folder", file=str(Path(root) / split))
        videos, vocab = load_vidvrd(root, split)
        splits[split] = {
            "videos": len(videos),
            "frames": sum(len(v) for v in videos),
            "boxes": sum(f.num_boxes for v in videos for f in v.frames),
            "relations": sum(len(v.extras["relation_instances"]) for v in videos),
            "predicate_counts": dict.fromkeys(vocab.predicates[1:], 0),
        }
        for v in videos:
            for r in v.extras["relation_instances"]:
                counts[r["predicate"]] = counts.get(r["predicate"], 0) + 1
                per = splits[split]["predicate_counts"]
                per[r["predicate"]] = per.get(r["predicate"], 0) + 1
    return {
        "format": "vidvrd",
        "root": str(root),
        "splits": splits,
        "predicate_counts": counts,
        "filtered": {"splits": splits, "predicate_counts": counts},
        "note": "relations = relation instances over frame ranges",
    }
