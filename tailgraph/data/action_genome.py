"""Action Genome reader (the STTran / TEMPURA data loader's semantics), specs/formats.md §2.

Files under ``root``:

* ``annotations/object_classes.txt`` (36 lines) and ``annotations/relationship_classes.txt``
  (26 lines);
* ``annotations/person_bbox.pkl``: ``"<video>/<frame>"`` → ``{"bbox": [k, 4] xyxy,
  "bbox_size": (w, h), ...}``;
* ``annotations/object_bbox_and_relationship.pkl`` (or ``..._filtersmall.pkl`` for SGCls /
  SGDet, ``filter_small_box=True``): ``"<video>/<frame>"`` → list of objects ``{"class",
  "bbox": (x, y, w, h) or None, "attention_relationship", "spatial_relationship",
  "contacting_relationship", "visible", "metadata": {"tag", "set"}}``;
* ``frames/<video>/<frame>`` images unless read layout-only.

Pickles are read with :func:`tailgraph.io.safe_pickle.safe_load` (no code can run).
A frame is kept when its ``metadata.set`` is the split and it has a visible object (and a
person box, with ``filter_nonperson_box_frame``); a video is kept when at least 3 frames
remain (the reference's ``len(video) > 2``). Each frame becomes a :class:`SceneGraph` laid out
as the reference evaluator builds its ground truth: box 0 is the person (label 1), objects
follow; attention and contacting relations are ``(0, i, p)``, spatial ``(i, 0, p)``, with the
26 predicates in the order attention (0–2), spatial (3–8), contacting (9–25). The per-object
label groups are kept in ``extras["groups"]`` for models that use the grouped multi-label form.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.errors import DataError, require_flag
from tailgraph.io.safe_pickle import safe_load
from tailgraph.ops.boxes import boxes_far_outside
from tailgraph.structures import SceneGraph, VideoSceneGraph
from tailgraph.vocab import BACKGROUND, Vocabulary

__all__ = [
    "load_ag",
    "ag_vocabulary",
    "stats",
    "AG_PREDICATES",
    "ATTENTION",
    "SPATIAL",
    "CONTACTING",
]

ATTENTION = ["looking_at", "not_looking_at", "unsure"]
SPATIAL = ["above", "beneath", "in_front_of", "behind", "on_the_side_of", "in"]
CONTACTING = [
    "carrying",
    "covered_by",
    "drinking_from",
    "eating",
    "have_it_on_the_back",
    "holding",
    "leaning_on",
    "lying_on",
    "not_contacting",
    "other_relationship",
    "sitting_on",
    "standing_on",
    "touching",
    "twisting",
    "wearing",
    "wiping",
    "writing_on",
]
AG_PREDICATES = ATTENTION + SPATIAL + CONTACTING
# the reference loader renames these rows of object_classes.txt (indices after __background__)
OBJECT_RENAMES = {
    9: "closet/cabinet",
    11: "cup/glass/bottle",
    23: "paper/notebook",
    24: "phone/camera",
    31: "sofa/couch",
}


def _lines(path: Path, expected: int) -> list[str]:
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    from tailgraph.io.files import read_text

    lines = [ln.strip() for ln in read_text(path, "class list").splitlines() if ln.strip()]
    if len(lines) != expected:
        raise DataError(f"expected {expected} lines, found {len(lines)}", file=str(path))
    return lines


def ag_vocabulary(root: str | Path, contact_single_label: bool = False) -> Vocabulary:
    """Object classes (``__background__`` + 36, the reference's renames applied) and the 26
    predicates with their relation type. ``contact_single_label``: the contacting type is
    trained as one softmax (a pair's one contact label) like attention, instead of 17
    independent sigmoids — not AG's protocol (contact relations are multi-label there), an
    option for data whose pairs carry one contact label."""
    ann = Path(root) / "annotations"
    classes = [BACKGROUND] + _lines(ann / "object_classes.txt", 36)
    for i, name in OBJECT_RENAMES.items():
        classes[i] = name
    if classes[1] != "person":
        raise DataError(
            f"the first class must be 'person', got {classes[1]!r}",
            file=str(ann / "object_classes.txt"),
            field="person",
        )
    dup = sorted({c for c in classes if classes.count(c) > 1})
    if dup:
        raise DataError(f"duplicate class names {dup}", file=str(ann / "object_classes.txt"))
    _lines(ann / "relationship_classes.txt", 26)  # checked; names are canonicalised below
    types = ["attention"] * 3 + ["spatial"] * 6 + ["contacting"] * 17
    return Vocabulary(
        classes,
        list(AG_PREDICATES),
        relation_type=types,  # type: ignore[arg-type]
        single_label_types=["attention", "contacting"] if contact_single_label else ["attention"],
        predicate_background=False,
        name="action-genome",
    )


RELATION_FIELDS = ("attention_relationship", "spatial_relationship", "contacting_relationship")


def _numbers(
    v: Any, shape: tuple[int, ...] | None, file: str, sample: str, field: str
) -> np.ndarray:
    """``v`` as a finite float array (of ``shape`` where given; ``-1`` = any), or a DataError."""
    if isinstance(v, (str, bytes, dict)) or v is None:
        raise DataError(
            f"expected numbers, got {type(v).__name__}", file=file, sample=sample, field=field
        )
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"expected numbers, got {v!r}"[:200], file=file, sample=sample, field=field
        ) from None
    if shape is not None and (
        a.ndim != len(shape) or any(s != -1 and a.shape[i] != s for i, s in enumerate(shape))
    ):
        raise DataError(
            f"expected shape {list(shape)}, got {list(a.shape)}",
            file=file,
            sample=sample,
            field=field,
        )
    if not np.isfinite(a).all():
        raise DataError("values must be finite", file=file, sample=sample, field=field)
    return a


def _check_objects(key: Any, objs: Any, file: str) -> None:
    """The types of one frame's object entries (what the readers use)."""
    if not isinstance(key, str) or "/" not in key:
        raise DataError(
            f"frame key must be 'video/frame', got {key!r}"[:200],
            file=file,
            sample=key,
            field="key",
        )
    if not isinstance(objs, list):
        raise DataError("expected a list of objects", file=file, sample=key)
    for j, o in enumerate(objs):
        sample = f"{key} object {j}"
        if not isinstance(o, dict):
            raise DataError(f"expected a dict, got {type(o).__name__}", file=file, sample=sample)
        if "visible" in o and not isinstance(o["visible"], (bool, np.bool_, int, np.integer)):
            raise DataError(
                f"expected a bool, got {o['visible']!r}"[:200],
                file=file,
                sample=sample,
                field="visible",
            )
        meta = o.get("metadata", {})
        if not isinstance(meta, dict) or not isinstance(meta.get("set", ""), str):
            raise DataError(
                "expected {'set': 'train' | 'test', ...}",
                file=file,
                sample=sample,
                field="metadata",
            )
        if "class" in o and not isinstance(o["class"], str):
            raise DataError(
                f"expected a class name, got {o['class']!r}"[:200],
                file=file,
                sample=sample,
                field="class",
            )
        if o.get("bbox") is not None:
            _numbers(o["bbox"], (4,), file, sample, "bbox")
        for field in RELATION_FIELDS:
            rel = o.get(field)
            if rel is not None and (
                not isinstance(rel, (list, tuple)) or not all(isinstance(r, str) for r in rel)
            ):
                raise DataError(
                    f"expected a list of predicate names, got {rel!r}"[:200],
                    file=file,
                    sample=sample,
                    field=field,
                )


def _check_person(key: str, person: Any, file: str) -> np.ndarray:
    """The person entry's boxes ``[n, 4]`` (its ``bbox_size`` is checked by the frame reader)."""
    if not isinstance(person, dict):
        raise DataError(f"expected a dict, got {type(person).__name__}", file=file, sample=key)
    a = _numbers(person.get("bbox", np.zeros((0, 4))), None, file, key, "bbox")
    if a.size % 4:
        raise DataError(
            f"expected [n, 4] boxes, got {list(a.shape)}", file=file, sample=key, field="bbox"
        )
    return a.reshape(-1, 4)


def _frame_graph(
    key: str,
    objects: list,
    person: dict,
    vocab: Vocabulary,
    obj_file: str,
    person_file: str,
    image_path: str | None,
) -> SceneGraph | None:
    """One frame's graph; ``None`` when the frame has no visible object."""
    if not isinstance(person, dict) or "bbox" not in person or "bbox_size" not in person:
        raise DataError(
            "expected {'bbox', 'bbox_size'}", file=person_file, sample=key, field="bbox"
        )
    pbox = _check_person(key, person, person_file)
    if pbox.shape[0] and (pbox[0, 2] < pbox[0, 0] or pbox[0, 3] < pbox[0, 1]):
        raise DataError(
            f"person box has x2<x1 or y2<y1: {pbox[0].tolist()}",
            file=person_file,
            sample=key,
            field="bbox",
        )
    size = _numbers(person["bbox_size"], (2,), person_file, key, "bbox_size")
    if (size != np.round(size)).any():
        raise DataError(
            f"image size must be whole pixels, got {size.tolist()}",
            file=person_file,
            sample=key,
            field="bbox_size",
        )
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise DataError(
            f"image size must be positive, got {w}x{h}",
            file=person_file,
            sample=key,
            field="bbox_size",
        )
    boxes = [pbox[0]]
    object_of = [-1]  # the object entry of each box (-1: the person)
    labels = [vocab.class_index("person")]
    rels, groups = [], []
    cls_index = {n: i for i, n in enumerate(vocab.object_classes)}
    for j, obj in enumerate(objects):
        if not isinstance(obj, dict) or "visible" not in obj:
            raise DataError(
                "object entry without 'visible'",
                file=obj_file,
                sample=f"{key} object {j}",
                field="visible",
            )
        if not obj["visible"]:
            continue
        for field in (
            "class",
            "bbox",
            "attention_relationship",
            "spatial_relationship",
            "contacting_relationship",
        ):
            if field not in obj:
                raise DataError(
                    f"missing key '{field}'", file=obj_file, sample=f"{key} object {j}", field=field
                )
        if obj["class"] not in cls_index:
            raise DataError(
                f"unknown object class {obj['class']!r}",
                file=obj_file,
                sample=f"{key} object {j}",
                field="class",
            )
        if obj["bbox"] is None:
            raise DataError(
                "visible object without a box",
                file=obj_file,
                sample=f"{key} object {j}",
                field="bbox",
            )
        x, y, bw, bh = (float(v) for v in obj["bbox"])
        if bw < 0 or bh < 0:
            raise DataError(
                f"bad box (x, y, w, h) = {obj['bbox']!r}",
                file=obj_file,
                sample=f"{key} object {j}",
                field="bbox",
            )
        i = len(boxes)
        boxes.append(np.array([x, y, x + bw, y + bh]))
        object_of.append(j)
        labels.append(cls_index[obj["class"]])
        group = {}
        for gname, names, offset in (
            ("attention_relationship", ATTENTION, 0),
            ("spatial_relationship", SPATIAL, 3),
            ("contacting_relationship", CONTACTING, 9),
        ):
            idx = []
            for r in obj[gname] or []:
                if r not in names:
                    raise DataError(
                        f"unknown {gname.split('_')[0]} predicate {r!r}",
                        file=obj_file,
                        sample=f"{key} object {j}",
                        field=gname,
                    )
                idx.append(names.index(r))
                p = offset + names.index(r)
                rels.append((i, 0, p) if offset == 3 else (0, i, p))
            group[gname.split("_")[0]] = idx
        groups.append(group)
    # one check per frame, not per box
    far = np.flatnonzero(boxes_far_outside(np.stack(boxes), w, h))
    if far.size:
        j = object_of[far[0]]
        raise DataError(
            f"{'person box' if j < 0 else 'box'} {boxes[far[0]].tolist()} lies more than one "
            f"image size outside the {w}x{h} frame",
            file=person_file if j < 0 else obj_file,
            sample=key if j < 0 else f"{key} object {j}",
            field="bbox",
        )
    if len(boxes) == 1:
        return None
    try:
        g = SceneGraph(
            key,
            w,
            h,
            np.stack(boxes),
            labels,
            np.array(rels, dtype=np.int64).reshape(-1, 3),
            image_path=image_path,
            extras={
                "groups": groups,
                "video_id": key.split("/")[0],
                "frame_id": key.split("/", 1)[-1],
            },
        )
        g.validate(num_classes=vocab.num_classes, num_predicates=vocab.num_predicates)
    except DataError as exc:
        raise exc.with_context(file=obj_file) from None
    return g


def load_ag(
    root: str | Path,
    split: str = "test",
    *,
    layout_only: bool = True,
    filter_small_box: bool = False,
    filter_nonperson_box_frame: bool = True,
    min_frames: int = 3,
    datasize: str = "large",
    mini_frames: int = 80000,
    contact_single_label: bool = False,
) -> tuple[list[VideoSceneGraph], Vocabulary]:
    """Read one split of Action Genome.

    Args:
        root: folder with ``annotations/`` (and ``frames/`` unless ``layout_only``).
        split: ``train`` | ``test`` (AG's ``metadata.set``).
        layout_only: do not require frame images.
        filter_small_box: read ``object_bbox_and_relationship_filtersmall.pkl`` (SGCls / SGDet).
        filter_nonperson_box_frame: drop frames without a person box.
        min_frames: videos with fewer kept frames are dropped (reference: 3).
        datasize: ``large`` (all frames) or ``mini``: only the first ``mini_frames`` frames
            of ``person_bbox.pkl`` in its stored order, as the reference loader's
            ``-datasize mini`` (80000) does, for quick runs.
        mini_frames: the frame count of ``mini``.
        contact_single_label: train the contacting type as one softmax
            (:func:`ag_vocabulary`).
    Returns:
        ``(videos, vocabulary)``; the vocabulary's ``predicate_counts`` are counted on the
        returned frames.
    """
    root = Path(root)
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; expected train or test", field="split")
    if datasize not in ("large", "mini"):
        raise DataError(f"unknown datasize {datasize!r}; expected large or mini", field="datasize")
    if isinstance(mini_frames, bool) or not isinstance(mini_frames, int) or mini_frames < 1:
        raise DataError(
            f"mini_frames must be a positive integer, got {mini_frames!r}", field="mini_frames"
        )
    require_flag("contact_single_label", contact_single_label)
    vocab = ag_vocabulary(root, contact_single_label)
    ann = root / "annotations"
    obj_file = ann / (
        "object_bbox_and_relationship_filtersmall.pkl"
        if filter_small_box
        else "object_bbox_and_relationship.pkl"
    )
    person_file = ann / "person_bbox.pkl"
    objects = safe_load(obj_file)
    persons = safe_load(person_file)
    if not isinstance(objects, dict):
        raise DataError("expected a dict frame -> objects", file=str(obj_file))
    if not isinstance(persons, dict):
        raise DataError("expected a dict frame -> person boxes", file=str(person_file))
    videos: OrderedDict[str, list[SceneGraph]] = OrderedDict()
    for key, objs in objects.items():
        _check_objects(key, objs, str(obj_file))
    keys = sorted(objects)
    if datasize == "mini":
        kept = set(list(persons)[:mini_frames])
        keys = [k for k in keys if k in kept]
    for key in keys:
        objs = objects[key]
        sets = {o.get("metadata", {}).get("set") for o in objs}
        if split not in sets:
            continue
        if key not in persons:
            raise DataError(
                "frame has no entry in person_bbox.pkl", file=str(person_file), sample=key
            )
        pb = _check_person(key, persons[key], str(person_file))
        if pb.size == 0:
            if filter_nonperson_box_frame:
                continue
            raise DataError(
                "frame has no person box (use filter_nonperson_box_frame=True)",
                file=str(person_file),
                sample=key,
                field="bbox",
            )
        path = None
        if not layout_only:
            p = root / "frames" / key
            if not p.is_file():
                raise DataError("frame image not found", file=str(p), sample=key, field="image")
            path = str(p)
        g = _frame_graph(key, objs, persons[key], vocab, str(obj_file), str(person_file), path)
        if g is None:
            continue
        videos.setdefault(key.split("/")[0], []).append(g)
    out = [
        VideoSceneGraph(vid, frames, [f.extras["frame_id"] for f in frames])
        for vid, frames in videos.items()
        if len(frames) >= min_frames
    ]
    counts = np.zeros(vocab.num_predicates, dtype=np.int64)
    for v in out:
        for f in v.frames:
            counts += np.bincount(f.relations[:, 2].numpy(), minlength=vocab.num_predicates)
    return out, vocab.with_counts(counts.tolist())


def stats(root: str | Path) -> dict[str, Any]:
    """``tailgraph stats --format ag``: videos / frames / boxes / relations and relations per
    predicate for each split, raw (every annotated frame with a visible object) and after the
    reference's filters."""
    ag_vocabulary(root)  # checks the class lists
    ann = Path(root) / "annotations"
    obj_file = ann / "object_bbox_and_relationship.pkl"
    objects = safe_load(obj_file)
    if not isinstance(objects, dict):
        raise DataError("expected a dict frame -> objects", file=str(obj_file))
    for key, objs in objects.items():
        _check_objects(key, objs, str(obj_file))
    raw: dict[str, dict[str, Any]] = {}
    raw_counts = dict.fromkeys(AG_PREDICATES, 0)
    seen_videos: dict[str, set] = {}
    for key, objs in objects.items():
        vis = [o for o in objs if isinstance(o, dict) and o.get("visible")]
        if not vis:
            continue
        split = vis[0].get("metadata", {}).get("set", "unknown")
        s = raw.setdefault(
            split,
            {
                "videos": 0,
                "frames": 0,
                "boxes": 0,
                "relations": 0,
                "predicate_counts": dict.fromkeys(AG_PREDICATES, 0),
            },
        )
        seen_videos.setdefault(split, set()).add(key.split("/")[0])
        s["frames"] += 1
        s["boxes"] += len(vis)
        for o in vis:
            for gname in (
                "attention_relationship",
                "spatial_relationship",
                "contacting_relationship",
            ):
                for r in o.get(gname) or []:
                    s["relations"] += 1
                    if r in raw_counts:
                        raw_counts[r] += 1
                        s["predicate_counts"][r] += 1
    for split, vids in seen_videos.items():
        raw[split]["videos"] = len(vids)
    filtered: dict[str, Any] = {"splits": {}, "predicate_counts": dict.fromkeys(AG_PREDICATES, 0)}
    for split in ("train", "test"):
        videos, _ = load_ag(root, split)
        frames = [f for v in videos for f in v.frames]
        filtered["splits"][split] = {
            "videos": len(videos),
            "frames": len(frames),
            "boxes": sum(f.num_boxes - 1 for f in frames),
            "relations": sum(f.num_relations for f in frames),
            "predicate_counts": dict.fromkeys(AG_PREDICATES, 0),
        }
        for f in frames:
            for p in f.relations[:, 2].tolist():
                filtered["predicate_counts"][AG_PREDICATES[p]] += 1
                filtered["splits"][split]["predicate_counts"][AG_PREDICATES[p]] += 1
    return {
        "format": "ag",
        "root": str(root),
        "splits": raw,
        "predicate_counts": raw_counts,
        "filtered": filtered,
        "note": "images = frames; boxes exclude the person box",
    }
