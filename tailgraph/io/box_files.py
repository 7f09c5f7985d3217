"""The box files ``tailgraph predict --boxes FILE`` reads: the objects of the user's own images.

Three forms, told apart by their content:

* **simple** — ``{"IMAGE_FILE": [{"box": [x1, y1, x2, y2], "label": "CLASS_NAME"}, ...], ...}``:
  boxes in pixels of the original image, labels by name from the checkpoint's vocabulary.
  ``IMAGE_FILE`` is the image's path below the input folder, with or without its suffix
  (``kitchen.jpg``, ``trip/day1.png``, ``trip/day1``); a video's frames are
  ``VIDEO_FOLDER/FRAME_FILE``.
* **COCO** — a COCO-style file: ``{"images": [{"id", "file_name", ...}], "annotations":
  [{"image_id", "bbox": [x, y, w, h], "category_id"}, ...], "categories": [{"id", "name"}]}``
  (a detector's output in the data-set layout); category names must be vocabulary classes.
  A bare COCO *results* list (``[{"image_id", "bbox", ...}]``) has no file names and is
  refused with a message saying so.
* **interchange** — a ground-truth interchange file (``"format": "tailgraph-sg/1"``; read by
  :func:`tailgraph.io.interchange.read_ground_truth`).

Every box is checked: four finite numbers (booleans are not numbers), ``x1 < x2`` and
``y1 < y2``, inside the image (checked against the decoded image's size by the caller with
:func:`check_inside`); every label is a foreground class of the vocabulary — an unknown name is
an error that lists the valid ones. Images may be listed twice in no form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError

__all__ = ["ImageBoxes", "read_box_file", "check_inside", "box_file_kind"]


@dataclass
class ImageBoxes:
    """The boxes of one image: ``boxes`` ``[[x1, y1, x2, y2], ...]`` (pixels), ``labels``
    (vocabulary indices), and the image size when the file states one (``None`` otherwise)."""

    boxes: list[list[float]]
    labels: list[int]
    width: int | None = None
    height: int | None = None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _valid_names(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _box(v: Any, file: str, sample: str, field: str, xywh: bool = False) -> list[float]:
    if not isinstance(v, (list, tuple)) or len(v) != 4 or not all(_is_number(x) for x in v):
        raise DataError(
            f"expected a box of four numbers, got {str(v)[:60]}",
            file=file,
            sample=sample,
            field=field,
        )
    b = [float(x) for x in v]
    if not all(math.isfinite(x) for x in b):
        raise DataError(f"box has a non-finite value: {b}", file=file, sample=sample, field=field)
    if xywh:
        if b[2] <= 0 or b[3] <= 0:
            raise DataError(
                f"bbox [x, y, w, h] needs w > 0 and h > 0, got {b}",
                file=file,
                sample=sample,
                field=field,
            )
        b = [b[0], b[1], b[0] + b[2], b[1] + b[3]]
    elif not (b[0] < b[2] and b[1] < b[3]):
        raise DataError(
            f"box [x1, y1, x2, y2] needs x1 < x2 and y1 < y2, got {b}",
            file=file,
            sample=sample,
            field=field,
        )
    return b


def _label(name: Any, classes: list[str], file: str, sample: str, field: str) -> int:
    fg = classes[1:]
    if not isinstance(name, str) or name not in fg:
        raise DataError(
            f"unknown class {name!r}; the checkpoint's classes are {_valid_names(fg)}",
            file=file,
            sample=sample,
            field=field,
        )
    return classes.index(name)


def check_inside(entry: ImageBoxes, width: int, height: int, file: str, sample: str) -> None:
    """Every box inside the ``width × height`` image (1 px of slack for rounding)."""
    for k, (x1, y1, x2, y2) in enumerate(entry.boxes):
        if x1 < -1 or y1 < -1 or x2 > width + 1 or y2 > height + 1:
            raise DataError(
                f"box {k} {[x1, y1, x2, y2]} lies outside the {width}x{height} image",
                file=file,
                sample=sample,
                field="box",
            )


def box_file_kind(doc: Any) -> str:
    """``interchange`` | ``coco`` | ``coco-results`` | ``simple`` | ``unknown``."""
    if isinstance(doc, list):
        return "coco-results"
    if not isinstance(doc, dict):
        return "unknown"
    if "format" in doc:
        return "interchange"
    if "images" in doc and "annotations" in doc and "categories" in doc:
        return "coco"
    return "simple"


def _key(name: str) -> str:
    """An image's id: its path below the input folder, without the suffix."""
    p = Path(name)
    return p.with_suffix("").as_posix() if p.suffix else p.as_posix()


def _add(out: dict[str, ImageBoxes], key: str, entry: ImageBoxes, file: str) -> None:
    if key in out:
        raise DataError("image listed twice", file=file, sample=key, field="image")
    out[key] = entry


def _simple(doc: dict, classes: list[str], file: str) -> dict[str, ImageBoxes]:
    out: dict[str, ImageBoxes] = {}
    for name, objs in doc.items():
        if not isinstance(objs, list):
            raise DataError(
                "expected a list of {'box', 'label'} objects", file=file, sample=name, field="image"
            )
        boxes, labels = [], []
        for k, o in enumerate(objs):
            where = f"{name}[{k}]"
            if not isinstance(o, dict) or "box" not in o or "label" not in o:
                raise DataError(
                    "expected {'box': [x1, y1, x2, y2], 'label': CLASS_NAME}",
                    file=file,
                    sample=where,
                    field="box",
                )
            boxes.append(_box(o["box"], file, where, "box"))
            labels.append(_label(o["label"], classes, file, where, "label"))
        _add(out, _key(name), ImageBoxes(boxes, labels), file)
    return out


def _int_id(v: Any, file: str, sample: str, field: str) -> int | str:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise DataError(
            f"expected an integer or string id, got {v!r}", file=file, sample=sample, field=field
        )
    return v


def _coco(doc: dict, classes: list[str], file: str) -> dict[str, ImageBoxes]:
    for part in ("images", "annotations", "categories"):
        if not isinstance(doc[part], list):
            raise DataError("expected a list", file=file, field=part)
    cats: dict[Any, int] = {}
    for k, c in enumerate(doc["categories"]):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise DataError("expected {'id', 'name'}", file=file, sample=k, field="categories")
        cid = _int_id(c["id"], file, f"categories[{k}]", "id")
        if cid in cats:
            raise DataError("category id listed twice", file=file, sample=cid, field="categories")
        cats[cid] = _label(c["name"], classes, file, f"categories[{k}]", "name")
    images: dict[Any, tuple[str, ImageBoxes]] = {}
    seen: set[str] = set()
    for k, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError("expected {'id', 'file_name'}", file=file, sample=k, field="images")
        iid = _int_id(im["id"], file, f"images[{k}]", "id")
        fname = im["file_name"]
        if not isinstance(fname, str) or not fname:
            raise DataError("expected a file name", file=file, sample=iid, field="file_name")
        size = []
        for f in ("width", "height"):
            v = im.get(f)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise DataError(
                    f"expected a positive integer, got {v!r}", file=file, sample=iid, field=f
                )
            size.append(v)
        key = _key(fname)
        if iid in images or key in seen:
            raise DataError("image listed twice", file=file, sample=fname, field="images")
        seen.add(key)
        images[iid] = (key, ImageBoxes([], [], size[0], size[1]))
    for k, a in enumerate(doc["annotations"]):
        where = f"annotations[{k}]"
        if not isinstance(a, dict) or not {"image_id", "bbox", "category_id"} <= set(a):
            raise DataError(
                "expected {'image_id', 'bbox', 'category_id'}",
                file=file,
                sample=where,
                field="annotations",
            )
        iid = _int_id(a["image_id"], file, where, "image_id")
        if iid not in images:
            raise DataError(
                f"image_id {iid!r} is not in 'images'", file=file, sample=where, field="image_id"
            )
        cid = _int_id(a["category_id"], file, where, "category_id")
        if cid not in cats:
            raise DataError(
                f"category_id {cid!r} is not in 'categories'",
                file=file,
                sample=where,
                field="category_id",
            )
        entry = images[iid][1]
        entry.boxes.append(_box(a["bbox"], file, where, "bbox", xywh=True))
        entry.labels.append(cats[cid])
    return {key: entry for key, entry in images.values()}


def read_box_file(path: str | Path, classes: list[str]) -> dict[str, ImageBoxes] | None:
    """The boxes of a simple or COCO box file by image id (path below the input folder
    without its suffix), or ``None`` for an interchange file (read it with
    :func:`tailgraph.io.interchange.read_ground_truth`). ``classes``: the vocabulary's object
    classes, background first."""
    from tailgraph.io.interchange import read_json

    file = str(path)
    doc = read_json(path)
    kind = box_file_kind(doc)
    if kind == "interchange":
        return None
    if kind == "coco-results":
        raise DataError(
            "a COCO results list has no file names: give the COCO data-set form {'images': "
            "[{'id', 'file_name'}], 'annotations': [...], 'categories': [...]} or the simple "
            "form {IMAGE_FILE: [{'box', 'label'}]}",
            file=file,
        )
    if kind == "unknown":
        raise DataError(
            "expected {IMAGE_FILE: [{'box': [x1, y1, x2, y2], 'label': NAME}]}, a COCO file or "
            "a ground-truth interchange file",
            file=file,
        )
    return _coco(doc, classes, file) if kind == "coco" else _simple(doc, classes, file)
