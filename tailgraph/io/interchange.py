"""tailgraph's JSON interchange files (``"format": "tailgraph-sg/1"``), optionally gzipped.

Ground truth::

    {"format": "tailgraph-sg/1", "protocol": "vg", "object_classes": [...], "predicates": [...],
     "images": [{"image_id", "width", "height", "boxes": [[x1, y1, x2, y2], ...],
                 "labels": [...], "relations": [[s, o, p], ...]}]}

Predictions::

    {"format": "tailgraph-sg/1",
     "images": [{"image_id", "boxes", "labels", "label_scores", "pairs": [[s, o], ...],
                 "predicate_scores": [[...], ...]}]}

Index 0 of ``object_classes`` / ``predicates`` is ``__background__`` where the protocol has
one (VG); each ``predicate_scores`` row has one column per predicate. The order of ``pairs`` is
free: the VG evaluator ranks pairs itself by SGB's triple score (max foreground predicate
probability × subject score × object score). Files are validated on read; errors name the
file, the image and the field. Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.io.outputs import naming_errors, remove_stale_temporaries, temporary_name
from tailgraph.vocab import Vocabulary

if TYPE_CHECKING:  # torch is imported only by the readers that build these
    from tailgraph.structures import Predictions, SceneGraph

__all__ = [
    "FORMAT",
    "read_ground_truth",
    "write_ground_truth",
    "read_predictions",
    "write_predictions",
    "read_json",
    "write_json",
]

FORMAT = "tailgraph-sg/1"


def read_json(path: str | os.PathLike) -> Any:
    """Read a ``.json`` or ``.json.gz`` file with clear errors."""
    from tailgraph.io.files import read_json_file

    path = Path(path)
    if path.suffix != ".gz":
        return read_json_file(path)
    try:
        with gzip.open(path, "rt") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a JSON file", file=str(path)) from None
    except (json.JSONDecodeError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"not valid JSON (corrupt or truncated?): {exc}", file=str(path)) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", file=str(path)) from None


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (gzip when the name ends in ``.gz``) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with naming_errors(path), opener(tmp, "wt") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_header(doc: Any, path: str) -> None:
    if not isinstance(doc, dict):
        raise DataError("expected a JSON object", file=path)
    if doc.get("format") != FORMAT:
        raise DataError(
            f'expected "format": "{FORMAT}", got {doc.get("format")!r}', file=path, field="format"
        )
    if not isinstance(doc.get("images"), list):
        raise DataError("expected a list 'images'", file=path, field="images")


def _get(entry: dict, key: str, path: str, i: int) -> Any:
    if not isinstance(entry, dict):
        raise DataError("image entry is not an object", file=path, sample=f"images[{i}]")
    if key not in entry:
        raise DataError(
            f"missing key '{key}'",
            file=path,
            sample=entry.get("image_id", f"images[{i}]"),
            field=key,
        )
    return entry[key]


def _entries(doc: dict, path: str):
    """Yield ``(index, entry, image_id)`` of ``doc["images"]``, refusing duplicate image ids."""
    seen = set()
    for i, e in enumerate(doc["images"]):
        image_id = _get(e, "image_id", path, i)
        if isinstance(image_id, bool) or not isinstance(image_id, (str, int)):
            raise DataError(
                f"image_id must be a string or an integer, got {image_id!r}"[:200],
                file=path,
                sample=f"images[{i}]",
                field="image_id",
            )
        if image_id in seen:
            raise DataError("duplicate image_id", file=path, sample=image_id, field="image_id")
        seen.add(image_id)
        yield i, e, image_id


def write_ground_truth(
    path: str | os.PathLike, graphs: Sequence[SceneGraph], vocab: Vocabulary, protocol: str = "vg"
) -> Path:
    """Write ground-truth graphs and their class / predicate names."""
    images = []
    for g in graphs:
        d = g.to_dict()
        for key in ("video_id", "frame_id"):
            if key in g.extras:
                d[key] = g.extras[key]
        images.append(d)
    return write_json(
        path,
        {
            "format": FORMAT,
            "protocol": protocol,
            "object_classes": vocab.object_classes,
            "predicates": vocab.predicates,
            "images": images,
        },
    )


def read_ground_truth(
    path: str | os.PathLike, protocols: Collection[str] | None = None, arrays: bool = False
) -> tuple[list[Any], Vocabulary, str]:
    """Read and validate a ground-truth file.

    Args:
        path: the file.
        protocols: the ``protocol`` values accepted (the interchange kinds of
            :data:`tailgraph.protocols.DATA_KINDS`); ``None`` accepts any name.
        arrays: the images as dicts of numpy arrays (``image_id``, ``width``, ``height``,
            ``boxes``, ``labels``, ``relations`` and, where given, ``video_id`` /
            ``frame_id``), as the binary reader gives them, instead of :class:`SceneGraph`s —
            the same checks, without importing torch (``tailgraph evaluate``).
    Returns:
        ``(graphs, vocabulary, protocol)``.
    """
    from tailgraph.io.graph_checks import check_graph, graph_arrays
    from tailgraph.ops.boxes import boxes_far_outside

    p = str(path)
    doc = read_json(path)
    _check_header(doc, p)
    protocol = doc.get("protocol")
    if not isinstance(protocol, str) or not protocol:
        raise DataError("expected a protocol name", file=p, field="protocol")
    if protocols is not None and protocol not in protocols:
        raise DataError(
            f"unknown protocol {protocol!r}; expected one of {sorted(protocols)}",
            file=p,
            field="protocol",
        )
    for key in ("object_classes", "predicates"):
        names = doc.get(key)
        if not isinstance(names, list) or not names:
            raise DataError(f"expected a non-empty list of names '{key}'", file=p, field=key)
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise DataError(f"names must be strings, got {bad[0]!r}", file=p, field=key)
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DataError(f"name {dup!r} listed twice", file=p, field=key)
    bg = bool(doc["predicates"]) and doc["predicates"][0] == "__background__"
    try:
        vocab = Vocabulary(
            doc["object_classes"],
            doc["predicates"],
            predicate_background=bg,
            has_background=bool(doc["object_classes"])
            and doc["object_classes"][0] == "__background__",
        )
    except DataError as exc:
        raise exc.with_context(file=p) from None
    graphs: list[Any] = []
    for i, e, image_id in _entries(doc, p):
        try:
            g = graph_arrays(
                image_id,
                _get(e, "width", p, i),
                _get(e, "height", p, i),
                _get(e, "boxes", p, i),
                _get(e, "labels", p, i),
                _get(e, "relations", p, i),
            )
            boxes, labels, rels = g["boxes"], g["labels"], g["relations"]
            check_graph(
                image_id,
                g["width"],
                g["height"],
                boxes,
                labels,
                rels,
                num_classes=vocab.num_classes,
                num_predicates=vocab.num_predicates,
            )
            far = boxes_far_outside(boxes, g["width"], g["height"])
            if far.any():
                j = int(far.argmax())
                raise DataError(
                    f"box {j} {boxes[j].tolist()} lies far outside the "
                    f"{g['width']}x{g['height']} image",
                    sample=image_id,
                    field="boxes",
                )
            if vocab.has_background and labels.size and int(labels.min()) == 0:
                j = int(np.flatnonzero(labels == 0)[0])
                raise DataError(
                    f"box {j} is labelled background: ground truth is foreground",
                    sample=image_id,
                    field="labels",
                )
            if bg and rels.size and int(rels[:, 2].min()) == 0:
                j = int(np.flatnonzero(rels[:, 2] == 0)[0])
                raise DataError(
                    f"relation {j} has the background predicate: ground truth is foreground",
                    sample=image_id,
                    field="relations",
                )
        except DataError as exc:
            raise exc.with_context(file=p) from None
        extras = {key: e[key] for key in ("video_id", "frame_id") if key in e}
        if arrays:
            graphs.append({**g, **extras})
            continue
        from tailgraph.structures import SceneGraph

        graph = SceneGraph(image_id, g["width"], g["height"], boxes, labels, rels)
        graph.extras.update(extras)
        graphs.append(graph)
    if not graphs:
        raise DataError("ground truth holds no image", file=p, field="images")
    return graphs, vocab, protocol


def write_predictions(
    path: str | os.PathLike,
    preds: Sequence[Predictions],
    extras: Sequence[dict] | None = None,
) -> Path:
    """Write predictions (one entry per image); ``extras``: one dict per image merged into its
    entry (``tailgraph predict``'s named ``triplets``; readers ignore keys they do not know)."""
    entries = [p.to_dict() for p in preds]
    if extras is not None:
        if len(extras) != len(entries):
            raise ValueError(f"{len(extras)} extras for {len(entries)} predictions")
        for e, x in zip(entries, extras):
            e.update(x)
    return write_json(path, {"format": FORMAT, "images": entries})


def read_predictions(
    path: str | os.PathLike, num_classes: int | None = None, num_predicates: int | None = None
) -> list[Predictions]:
    """Read and validate a prediction file (NaN / inf scores, indices out of range are errors)."""
    from tailgraph.structures import Predictions

    p = str(path)
    doc = read_json(path)
    _check_header(doc, p)
    out = []
    for i, e, image_id in _entries(doc, p):
        try:
            pred = Predictions(
                image_id,
                _get(e, "boxes", p, i),
                _get(e, "labels", p, i),
                _get(e, "label_scores", p, i),
                _get(e, "pairs", p, i),
                _get(e, "predicate_scores", p, i),
            )
            pred.validate(num_classes=num_classes, num_predicates=num_predicates)
        except DataError as exc:
            raise exc.with_context(file=p) from None
        out.append(pred)
    return out
