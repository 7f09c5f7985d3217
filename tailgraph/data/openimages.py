"""Open Images VRD reader (challenge CSVs), specs/formats.md §4.

Files under ``root``:

* ``<split>-annotations-vrd.csv`` (or ``challenge-2018-<split>-vrd.csv``): columns ``ImageID,
  LabelName1, LabelName2, XMin1, XMax1, YMin1, YMax1, XMin2, XMax2, YMin2, YMax2,
  RelationshipLabel``, boxes normalised to [0, 1];
* ``class-descriptions.csv`` (or ``class-descriptions-boxable.csv``): ``MID,name`` rows;
* image sizes, from ``image-sizes.csv`` (``ImageID,width,height``; tailgraph's synthetic
  set writes it) or else from ``images/<ImageID>.jpg`` headers.

Objects of an image are its distinct (class, box) pairs; every row is a relation between two of
them. Rows labelled ``is`` are attributes (``LabelName2`` is an attribute MID): they are kept
in ``extras["attributes"]`` as ``(object index, attribute MID)`` and not in the relations, so
the relation vocabulary is the 9 object–object predicates the negative-mining setting uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.io.files import read_csv_rows
from tailgraph.structures import SceneGraph
from tailgraph.vocab import BACKGROUND, Vocabulary

__all__ = ["load_oi", "stats", "OI_PREDICATES", "COLUMNS"]

OI_PREDICATES = [
    "at",
    "on",
    "holds",
    "plays",
    "interacts_with",
    "wears",
    "inside_of",
    "under",
    "hits",
]
COLUMNS = [
    "ImageID",
    "LabelName1",
    "LabelName2",
    "XMin1",
    "XMax1",
    "YMin1",
    "YMax1",
    "XMin2",
    "XMax2",
    "YMin2",
    "YMax2",
    "RelationshipLabel",
]


def _first(root: Path, names: list[str], what: str) -> Path:
    for n in names:
        if (root / n).is_file():
            return root / n
        if os.path.lexists(root / n):  # a directory, a broken link or a link loop
            raise DataError(f"{what} is not a readable file", file=str(root / n))
    raise DataError(f"{what} not found (looked for {', '.join(names)})", file=str(root))


def _split_present(root: Path, split: str) -> bool:
    """Whether ``split``'s relationship CSV is there (in any state: reading it decides)."""
    return any(
        os.path.lexists(root / n)
        for n in (f"{split}-annotations-vrd.csv", f"challenge-2018-{split}-vrd.csv")
    )


def _classes(root: Path) -> tuple[list[str], list[str]]:
    path = _first(
        root, ["class-descriptions.csv", "class-descriptions-boxable.csv"], "class descriptions"
    )
    mids, names = [], []
    for i, row in enumerate(read_csv_rows(path)[0]):
        if not row or (i == 0 and row[0] in ("LabelName", "MID")):
            continue
        if len(row) < 2 or not row[0] or not row[1]:
            raise DataError("expected MID,name", file=str(path), sample=f"row {i + 1}")
        if row[0] in mids:
            raise DataError(
                f"duplicate class MID {row[0]!r}", file=str(path), sample=f"row {i + 1}"
            )
        mids.append(row[0])
        names.append(row[1])
    if not mids:
        raise DataError("no classes", file=str(path))
    return mids, names


def _sizes(root: Path, image_ids: set[str]) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    path = root / "image-sizes.csv"
    if path.is_file():
        for i, row in enumerate(read_csv_rows(path, dict_rows=True)[0]):
            try:
                image_id, w, h = row["ImageID"], int(row["width"]), int(row["height"])
            except (KeyError, ValueError, TypeError):
                raise DataError(
                    "expected ImageID,width,height", file=str(path), sample=f"row {i + 2}"
                ) from None
            if w <= 0 or h <= 0:
                raise DataError(
                    f"image size must be positive, got {w}x{h}",
                    file=str(path),
                    sample=f"row {i + 2}",
                    field="width/height",
                )
            sizes[image_id] = (w, h)
    missing = [i for i in image_ids if i not in sizes]
    if missing:
        from tailgraph.data.images import image_size

        for image_id in missing:
            p = root / "images" / f"{image_id}.jpg"
            if not p.is_file():
                raise DataError(
                    "image size unknown: no image-sizes.csv entry and no image file",
                    file=str(p),
                    sample=image_id,
                    field="width/height",
                )
            sizes[image_id] = image_size(p, image_id)
    return sizes


def _rows(root: Path, split: str) -> tuple[Path, list[dict[str, str]]]:
    path = _first(
        root,
        [f"{split}-annotations-vrd.csv", f"challenge-2018-{split}-vrd.csv"],
        f"{split} relationship CSV",
    )
    rows, header = read_csv_rows(path, dict_rows=True)
    if header is None or any(c not in header for c in COLUMNS):
        raise DataError(f"expected columns {COLUMNS}, got {header}", file=str(path), field="header")
    for i, r in enumerate(rows):
        if None in r or any(v is None for v in r.values()):  # too many / too few fields
            raise DataError(
                f"row has {len([v for k, v in r.items() if k is not None and v is not None])}"
                f"{'+' if None in r else ''} fields, the header {len(header)}",
                file=str(path),
                sample=f"row {i + 2}",
            )
    return path, rows


def load_oi(
    root: str | Path, split: str = "test", *, layout_only: bool = True
) -> tuple[list[SceneGraph], Vocabulary]:
    """Read one split of Open Images VRD.

    Returns:
        ``(graphs, vocabulary)``: classes ``__background__`` + the class descriptions, predicates
        ``__background__`` (no relation) + the 9 object–object relationships;
        ``predicate_counts`` count the ``train`` rows.
    """
    root = Path(root)
    mids, names = _classes(root)
    cls_index = {m: i + 1 for i, m in enumerate(mids)}
    pred_index = {p: i + 1 for i, p in enumerate(OI_PREDICATES)}
    path, rows = _rows(root, split)
    sizes = _sizes(root, {r["ImageID"] for r in rows})
    per_image: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(rows):
        sample = f"row {i + 2} (image {r['ImageID']})"
        try:
            coords = [float(r[c]) for c in COLUMNS[3:11]]
        except (ValueError, TypeError):
            raise DataError(
                "box coordinates must be numbers",
                file=str(path),
                sample=sample,
                field="XMin1..YMax2",
            ) from None
        x1a, x2a, y1a, y2a, x1b, x2b, y1b, y2b = coords
        for (lo, hi), name in (
            ((x1a, x2a), "XMin1/XMax1"),
            ((y1a, y2a), "YMin1/YMax1"),
            ((x1b, x2b), "XMin2/XMax2"),
            ((y1b, y2b), "YMin2/YMax2"),
        ):
            if not (0.0 <= lo <= hi <= 1.0):
                raise DataError(
                    f"normalised box range [{lo}, {hi}] is not within [0, 1] with min <= max",
                    file=str(path),
                    sample=sample,
                    field=name,
                )
        w, h = sizes[r["ImageID"]]
        img = per_image.setdefault(
            r["ImageID"], {"objects": {}, "relations": [], "attributes": [], "w": w, "h": h}
        )

        def obj(
            mid: str, x1: float, x2: float, y1: float, y2: float, field: str, img=img, sample=sample
        ) -> int:
            if mid not in cls_index:
                raise DataError(
                    f"unknown class MID {mid!r}", file=str(path), sample=sample, field=field
                )
            key = (mid, x1, x2, y1, y2)
            if key not in img["objects"]:
                img["objects"][key] = len(img["objects"])
            return img["objects"][key]

        s = obj(r["LabelName1"], x1a, x2a, y1a, y2a, "LabelName1")
        label = r["RelationshipLabel"]
        if label == "is":
            img["attributes"].append((s, r["LabelName2"]))
            continue
        if label not in pred_index:
            raise DataError(
                f"unknown relationship {label!r}",
                file=str(path),
                sample=sample,
                field="RelationshipLabel",
            )
        o = obj(r["LabelName2"], x1b, x2b, y1b, y2b, "LabelName2")
        img["relations"].append((s, o, pred_index[label]))
    graphs = []
    for image_id, img in per_image.items():
        keys = sorted(img["objects"], key=img["objects"].get)
        boxes = np.array(
            [[k[1] * img["w"], k[3] * img["h"], k[2] * img["w"], k[4] * img["h"]] for k in keys],
            dtype=np.float32,
        ).reshape(-1, 4)
        labels = [cls_index[k[0]] for k in keys]
        path_img = None
        if not layout_only:
            p = root / "images" / f"{image_id}.jpg"
            if not p.is_file():
                raise DataError("image file not found", file=str(p), sample=image_id, field="image")
            path_img = str(p)
        graphs.append(
            SceneGraph(
                image_id,
                img["w"],
                img["h"],
                boxes,
                labels,
                np.array(img["relations"], dtype=np.int64).reshape(-1, 3),
                image_path=path_img,
                extras={"attributes": img["attributes"]},
            )
        )
    counts = [0] * (len(OI_PREDICATES) + 1)
    if split == "train":
        for g in graphs:
            for p in g.relations[:, 2].tolist():
                counts[p] += 1
    else:
        try:
            _, train_rows = _rows(root, "train")
            for r in train_rows:
                if r["RelationshipLabel"] in pred_index:
                    counts[pred_index[r["RelationshipLabel"]]] += 1
        except DataError:
            pass  # no training file next to this split: counts stay 0
    vocab = Vocabulary(
        [BACKGROUND] + names,
        [BACKGROUND] + OI_PREDICATES,
        predicate_counts=counts,
        name="openimages-vrd",
    )
    return graphs, vocab


def stats(root: str | Path) -> dict[str, Any]:
    """``tailgraph stats --format oi``: images, boxes, rows and rows per predicate for each
    split (raw, ``is`` rows included) and object–object relations (filtered)."""
    splits: dict[str, Any] = {}
    fsplits: dict[str, Any] = {}
    raw_counts: dict[str, int] = {}
    fcounts: dict[str, int] = {}
    if not Path(root).is_dir():
        raise DataError("data set folder not found", file=str(root), field="--root")
    present = [s for s in ("train", "validation", "val", "test") if _split_present(Path(root), s)]
    if not present:
        raise DataError(
            "no split found (looked for <split>-annotations-vrd.csv and "
            "challenge-2018-<split>-vrd.csv for train, validation, val, test)",
            file=str(root),
        )
    for split in present:  # a split that is there and cannot be read is an error
        _, rows = _rows(Path(root), split)
        graphs, _ = load_oi(root, split)
        splits[split] = {
            "images": len({r["ImageID"] for r in rows}),
            "boxes": sum(g.num_boxes for g in graphs),
            "relations": len(rows),
            "predicate_counts": {},
        }
        fsplits[split] = {
            "images": len(graphs),
            "boxes": sum(g.num_boxes for g in graphs),
            "relations": sum(g.num_relations for g in graphs),
            "predicate_counts": {},
        }
        for r in rows:
            label = r["RelationshipLabel"]
            raw_counts[label] = raw_counts.get(label, 0) + 1
            per = splits[split]["predicate_counts"]
            per[label] = per.get(label, 0) + 1
            if label != "is":
                fcounts[label] = fcounts.get(label, 0) + 1
                per = fsplits[split]["predicate_counts"]
                per[label] = per.get(label, 0) + 1
    return {
        "format": "oi",
        "root": str(root),
        "splits": splits,
        "predicate_counts": raw_counts,
        "filtered": {"splits": fsplits, "predicate_counts": fcounts},
        "note": "filtered = without the 'is' attribute rows",
    }
