"""Visual Genome VG150 files (Scene-Graph-Benchmark layout): reader and writer.

Files in a data set folder:

* ``VG-SGG-with-attri.h5`` (or ``VG-SGG.h5``): boxes, labels, relations and splits of all
  images (see ``specs/formats.md`` §1);
* ``VG-SGG-dicts.json`` (or ``VG-SGG-dicts-with-attri.json``): class and predicate names;
* ``image_data.json``: per image ``image_id``, ``width``, ``height``;
* ``images/<image_id>.jpg`` unless the set is read layout-only;
* optionally ``tailgraph-vocab.json``: extra predicate metadata (coarse parents, patterns)
  written by tailgraph's own writer and merged into the :class:`Vocabulary`.

The reader reproduces SGB's ``load_graphs`` / ``get_groundtruth``: centre-format boxes at the
1024 scale are converted to xyxy (``x1 = cx - w/2``, ``x2 = x1 + w``) and scaled by
``max(width, height) / 1024``; split code 0 = train (the first ``num_val_im`` of them = val),
2 = test; images without boxes are dropped, images without relations too when
``filter_empty_rels``; for training, ``filter_duplicate_rels`` keeps one random predicate per
(subject, object) pair and ``filter_non_overlap`` keeps only relations between overlapping
boxes. Boxes are then clipped to the image as SGB does for evaluation (``clip_to_image``:
``[0, w-1] × [0, h-1]``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.io.h5probe import probe_h5
from tailgraph.io.outputs import write_h5_atomic, write_text_atomic
from tailgraph.structures import SceneGraph
from tailgraph.vocab import BACKGROUND, Vocabulary

__all__ = [
    "load_vg",
    "write_vg",
    "read_vg_arrays",
    "vg_vocabulary",
    "encode_boxes",
    "decode_boxes",
    "VGArrays",
]

H5_NAMES = ("VG-SGG-with-attri.h5", "VG-SGG.h5")
DICT_NAMES = ("VG-SGG-dicts-with-attri.json", "VG-SGG-dicts.json")
VOCAB_EXTRA = "tailgraph-vocab.json"
SPLIT_CODE = {"train": 0, "val": 0, "test": 2}
REQUIRED_KEYS = (
    "labels",
    "img_to_first_box",
    "img_to_last_box",
    "relationships",
    "predicates",
    "img_to_first_rel",
    "img_to_last_rel",
    "split",
)


def _find(root: Path, names: Sequence[str], given: str | None, what: str) -> Path:
    if given is not None:
        p = root / given
        if not p.is_file():
            raise DataError(f"{what} not found", file=str(p))
        return p
    for n in names:
        if (root / n).is_file():
            return root / n
    raise DataError(f"{what} not found (looked for {', '.join(names)})", file=str(root))


class VGArrays:
    """The raw arrays of a VG-SGG h5 file (global rows), validated."""

    def __init__(self, path: Path, box_scale: int = 1024) -> None:
        import h5py

        self.path = path
        probe_h5(path)
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(
                f"cannot open as HDF5 (corrupt or truncated?): {exc}", file=str(path)
            ) from None
        try:
            with f:
                self._read(f, path, box_scale)
        except DataError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise DataError(
                f"cannot read arrays (corrupt or truncated?): {exc}", file=str(path)
            ) from None
        box_key = self.box_key
        n_img = self.split.shape[0]
        for name in ("first_box", "last_box", "first_rel", "last_rel"):
            if getattr(self, name).shape[0] != n_img:
                raise DataError(
                    f"has {getattr(self, name).shape[0]} rows for {n_img} images",
                    file=str(path),
                    field=f"img_to_{name}",
                )
        for kind in ("box", "rel"):  # -1 marks "none" at both ends or at neither
            first, last = getattr(self, f"first_{kind}"), getattr(self, f"last_{kind}")
            bad = ((first < 0) != (last < 0)) | (first < -1) | (last < -1)
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                raise DataError(
                    f"first {kind} index {int(first[i])} and last {int(last[i])}: -1 marks an "
                    "image without any at both ends",
                    file=str(path),
                    sample=f"image {i}",
                    field=f"img_to_first_{kind}/img_to_last_{kind}",
                )
        if (
            self.boxes.ndim != 2
            or self.boxes.shape[1] != 4
            or self.boxes.shape[0] != self.labels.shape[0]
        ):
            raise DataError(
                f"shape {list(self.boxes.shape)} does not match {self.labels.shape[0]} labels",
                file=str(path),
                field=box_key,
            )
        if (
            self.rels.ndim != 2
            or self.rels.shape[1] != 2
            or self.rels.shape[0] != self.predicates.shape[0]
        ):
            raise DataError(
                f"shape {list(self.rels.shape)} does not match {self.predicates.shape[0]} "
                "predicates",
                file=str(path),
                field="relationships",
            )

    def _read(self, f: Any, path: Path, box_scale: int) -> None:
        for key in REQUIRED_KEYS:
            if key not in f:
                raise DataError(f"missing key '{key}'", file=str(path), field=key)
        box_key = f"boxes_{box_scale}"
        if box_key not in f:
            raise DataError(
                f"missing key '{box_key}' (keys: {sorted(f.keys())})",
                file=str(path),
                field=box_key,
            )

        def ints(key: str) -> np.ndarray:
            a = np.asarray(f[key][:])
            if a.dtype.kind in "iub":
                return a.astype(np.int64)
            if a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all():
                return a.astype(np.int64)
            raise DataError(f"must hold integers, got {a.dtype} values", file=str(path), field=key)

        self.labels = ints("labels").reshape(-1)
        boxes = np.asarray(f[box_key][:])
        if boxes.dtype.kind not in "iuf":
            raise DataError(f"must hold numbers, got {boxes.dtype}", file=str(path), field=box_key)
        self.boxes = boxes.astype(np.float64)
        self.first_box = ints("img_to_first_box")
        self.last_box = ints("img_to_last_box")
        self.rels = ints("relationships")
        self.predicates = ints("predicates").reshape(-1)
        self.first_rel = ints("img_to_first_rel")
        self.last_rel = ints("img_to_last_rel")
        self.split = ints("split")
        self.box_key = box_key

    @property
    def num_images(self) -> int:
        return int(self.split.shape[0])


def decode_boxes(boxes_cxcywh: np.ndarray) -> np.ndarray:
    """SGB's conversion of stored (cx, cy, w, h) to xyxy at the storage scale (float)."""
    b = np.asarray(boxes_cxcywh, dtype=np.float64).copy()
    b[:, :2] = b[:, :2] - b[:, 2:] / 2
    b[:, 2:] = b[:, :2] + b[:, 2:]
    return b


def encode_boxes(boxes_xyxy: np.ndarray, width: int, height: int, scale: int = 1024) -> np.ndarray:
    """Encode xyxy pixel boxes as stored (cx, cy, w, h) int32 at ``scale`` (long side).

    Follows ``vg_to_roidb.encode_box`` (``w = ceil(s·w)``, stored centre ``x + floor(w/2)``)
    but rounds the corner to the nearest grid point (``x = floor(s·x1 + 1/2)``) instead of
    flooring 1-based VG coordinates, so that encoding what :func:`decode_boxes` returns gives
    the same integers again (a written and re-read data set round-trips exactly).
    """
    s = scale / max(width, height)
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    x = np.floor(s * b[:, 0] + 0.5)
    y = np.floor(s * b[:, 1] + 0.5)
    w = np.ceil(s * (b[:, 2] - b[:, 0]) - 1e-6)
    h = np.ceil(s * (b[:, 3] - b[:, 1]) - 1e-6)
    x = np.clip(x, 0, scale - 1)
    y = np.clip(y, 0, scale - 1)
    w = np.clip(w, 0, scale - x)
    h = np.clip(h, 0, scale - y)
    return np.stack([x + np.floor(w / 2), y + np.floor(h / 2), w, h], axis=1).astype(np.int32)


def _read_json(path: Path) -> Any:
    from tailgraph.io.files import read_json_file

    return read_json_file(path)


def vg_vocabulary(dicts_path: Path, extra_path: Path | None = None) -> Vocabulary:
    """Read ``VG-SGG-dicts.json`` (+ optional tailgraph metadata) into a :class:`Vocabulary`."""
    d = _read_json(dicts_path)
    if not isinstance(d, dict):
        raise DataError(f"expected a JSON object, got {type(d).__name__}", file=str(dicts_path))
    for key in ("idx_to_label", "idx_to_predicate"):
        if key not in d:
            raise DataError(f"missing key '{key}'", file=str(dicts_path), field=key)

    def ordered(mapping: Mapping[str, str], field: str) -> list[str]:
        if not isinstance(mapping, dict):
            raise DataError("expected an object {index: name}", file=str(dicts_path), field=field)
        try:
            items = sorted(((int(k), v) for k, v in mapping.items()), key=lambda kv: kv[0])
        except ValueError:
            raise DataError(
                "keys must be integer strings", file=str(dicts_path), field=field
            ) from None
        if [k for k, _ in items] != list(range(1, len(items) + 1)):
            raise DataError("indices must be 1..N without gaps", file=str(dicts_path), field=field)
        return [BACKGROUND] + [v for _, v in items]

    classes = ordered(d["idx_to_label"], "idx_to_label")
    predicates = ordered(d["idx_to_predicate"], "idx_to_predicate")
    meta: dict[str, Any] = {}
    if extra_path is not None and extra_path.is_file():
        meta = _read_json(extra_path)
        if not isinstance(meta, dict):
            raise DataError("expected a JSON object", file=str(extra_path))
        if meta.get("predicates") and meta["predicates"] != predicates:
            raise DataError(
                "predicate list differs from VG-SGG-dicts.json",
                file=str(extra_path),
                field="predicates",
            )
    name = meta.get("name", dicts_path.parent.name)
    try:
        return Vocabulary(
            object_classes=classes,
            predicates=predicates,
            coarse_parent=meta.get("coarse_parent", []),
            action_pattern=meta.get("action_pattern", []),
            spatial_pattern=meta.get("spatial_pattern", []),
            relation_type=meta.get("relation_type", []),
            name=name if isinstance(name, str) else "",
        )
    except DataError as exc:
        names_file = extra_path if meta else dicts_path
        if exc.field in ("object_classes", "predicates"):
            names_file = dicts_path
        raise exc.with_context(file=str(names_file)) from None


def read_vg_arrays(root: str | Path, h5_name: str | None = None, box_scale: int = 1024) -> VGArrays:
    return VGArrays(_find(Path(root), H5_NAMES, h5_name, "VG-SGG h5 file"), box_scale)


def _select_images(a: VGArrays, split: str, filter_empty_rels: bool, num_val_im: int) -> np.ndarray:
    if split not in SPLIT_CODE:
        raise DataError(f"unknown split {split!r}; expected train, val or test", field="split")
    mask = (a.split == SPLIT_CODE[split]) & (a.first_box >= 0)
    if filter_empty_rels:
        mask &= a.first_rel >= 0
    index = np.nonzero(mask)[0]
    if num_val_im > 0:
        if split == "val":
            index = index[:num_val_im]
        elif split == "train":
            index = index[num_val_im:]
    elif split == "val":
        raise DataError(
            "split 'val' needs num_val_im > 0 (validation images are held out of split 0)",
            field="num_val_im",
        )
    return index


def default_num_val_im(root: str | Path, fraction: float = 0.1, cap: int = 5000) -> int:
    """How many split-0 images to hold out for validation when a recipe does not say:
    ``min(cap, round(fraction × n))`` of the ``n`` split-0 images with boxes and relations
    (Scene-Graph-Benchmark holds out 5,000 of VG150's), at least 1 when ``n`` ≥ 2."""
    a = read_vg_arrays(root)
    n = int(((a.split == SPLIT_CODE["train"]) & (a.first_box >= 0) & (a.first_rel >= 0)).sum())
    return min(cap, max(1 if n >= 2 else 0, round(fraction * n)))


def _image_graph(
    a: VGArrays,
    i: int,
    info: Mapping[str, Any],
    num_classes: int,
    num_predicates: int,
    h5: str,
    box_scale: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (boxes xyxy pixels, labels, relations) of image row ``i``."""
    fb, lb = int(a.first_box[i]), int(a.last_box[i])
    sample = f"image {i} (image_id {info.get('image_id')})"
    if not (0 <= fb <= lb < a.labels.shape[0]):
        raise DataError(
            f"box range [{fb}, {lb}] outside the {a.labels.shape[0]} boxes",
            file=h5,
            sample=sample,
            field="img_to_first_box/img_to_last_box",
        )
    raw = a.boxes[fb : lb + 1]
    if (raw[:, 2:] < 0).any():
        j = int(np.nonzero((raw[:, 2:] < 0).any(axis=1))[0][0])
        raise DataError(
            f"box {j} has negative width or height: {raw[j].tolist()}",
            file=h5,
            sample=sample,
            field=a.box_key,
        )
    if not np.isfinite(raw).all():
        raise DataError("non-finite box values", file=h5, sample=sample, field=a.box_key)
    if (raw > 2 * box_scale).any():  # stored at box_scale (the long side): far outside is bad
        j = int(np.nonzero((raw > 2 * box_scale).any(axis=1))[0][0])
        raise DataError(
            f"box {j} {raw[j].tolist()} lies far outside the stored scale {box_scale}",
            file=h5,
            sample=sample,
            field=a.box_key,
        )
    labels = a.labels[fb : lb + 1]
    bad = (labels < 1) | (labels >= num_classes)
    if bad.any():
        j = int(np.nonzero(bad)[0][0])
        raise DataError(
            f"label {int(labels[j])} of box {j} outside 1..{num_classes - 1}",
            file=h5,
            sample=sample,
            field="labels",
        )
    w, h = info["width"], info["height"]
    boxes = decode_boxes(raw) / box_scale * max(w, h)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
    fr, lr = int(a.first_rel[i]), int(a.last_rel[i])
    if fr >= 0:
        if not (fr <= lr < a.rels.shape[0]):
            raise DataError(
                f"relation range [{fr}, {lr}] outside the {a.rels.shape[0]} relations",
                file=h5,
                sample=sample,
                field="img_to_first_rel/img_to_last_rel",
            )
        pairs = a.rels[fr : lr + 1] - fb
        if (pairs < 0).any() or (pairs > lb - fb).any():
            j = int(np.nonzero(((pairs < 0) | (pairs > lb - fb)).any(axis=1))[0][0])
            raise DataError(
                f"relation {j} (global row {fr + j}) points to boxes {a.rels[fr + j].tolist()} "
                f"outside the image's rows [{fb}, {lb}]",
                file=h5,
                sample=sample,
                field="relationships",
            )
        preds = a.predicates[fr : lr + 1]
        badp = (preds < 1) | (preds >= num_predicates)
        if badp.any():
            j = int(np.nonzero(badp)[0][0])
            raise DataError(
                f"predicate {int(preds[j])} of relation {j} outside 1..{num_predicates - 1}",
                file=h5,
                sample=sample,
                field="predicates",
            )
        rels = np.column_stack([pairs, preds])
    else:
        rels = np.zeros((0, 3), dtype=np.int64)
    return boxes.astype(np.float32), labels, rels


def _iou_positive(boxes: np.ndarray, rels: np.ndarray) -> np.ndarray:
    """Mask of relations whose boxes overlap (SGB ``bbox_overlaps`` with +1 convention > 0)."""
    s, o = boxes[rels[:, 0]], boxes[rels[:, 1]]
    iw = np.minimum(s[:, 2], o[:, 2]) - np.maximum(s[:, 0], o[:, 0]) + 1
    ih = np.minimum(s[:, 3], o[:, 3]) - np.maximum(s[:, 1], o[:, 1]) + 1
    return (iw > 0) & (ih > 0)


def load_vg(
    root: str | os.PathLike,
    split: str = "test",
    *,
    layout_only: bool = True,
    filter_empty_rels: bool = True,
    filter_duplicate_rels: bool | None = None,
    filter_non_overlap: bool = False,
    num_val_im: int = 0,
    box_scale: int = 1024,
    h5_name: str | None = None,
    dicts_name: str | None = None,
    image_dir: str = "images",
    seed: int = 0,
    count_split: str | None = "train",
) -> tuple[list[SceneGraph], Vocabulary]:
    """Read one split of a VG150-format data set.

    Args:
        root: the data set folder.
        split: ``train`` | ``val`` | ``test`` (SGB semantics; ``val`` = the first
            ``num_val_im`` images of split 0, which ``train`` then excludes).
        layout_only: do not require image files; otherwise each image must exist at
            ``root/image_dir/<image_id>.jpg``.
        filter_empty_rels: drop images without relations (SGB default True).
        filter_duplicate_rels: keep one random predicate per (subject, object) pair
            (default: True for ``train``, as SGB).
        filter_non_overlap: keep only relations whose boxes overlap (SGB: SGDet-style
            training only); images left without relations are dropped.
        num_val_im: images held out of split 0 for ``val`` (SGB: 5000; default 0 here so
            that small sets keep all training images).
        box_scale: which ``boxes_<scale>`` array to read (1024 or 512).
        h5_name, dicts_name: file names when not the standard ones.
        image_dir: image folder relative to ``root``.
        seed: seed of the duplicate-relation sampling.
        count_split: split whose relations (after the training filters) fill
            ``Vocabulary.predicate_counts`` / ``object_counts``; ``None`` = no counts.
    Returns:
        ``(graphs, vocabulary)``. Predicates keep their file ids (1..R-1; 0 = background).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("data set folder not found", file=str(root))
    a = read_vg_arrays(root, h5_name, box_scale)
    h5 = str(a.path)
    dicts = _find(root, DICT_NAMES, dicts_name, "VG-SGG dicts json")
    vocab = vg_vocabulary(dicts, root / VOCAB_EXTRA)
    info_path = _find(root, ("image_data.json",), None, "image_data.json")
    infos = _read_json(info_path)
    if not isinstance(infos, list) or len(infos) != a.num_images:
        raise DataError(
            f"expected a list of {a.num_images} images (as in {a.path.name}), got "
            f"{len(infos) if isinstance(infos, list) else type(infos).__name__}",
            file=str(info_path),
        )
    if filter_duplicate_rels is None:
        filter_duplicate_rels = split == "train"
    rng = np.random.default_rng(seed)
    graphs: list[SceneGraph] = []
    seen: dict[Any, int] = {}
    for i in _select_images(a, split, filter_empty_rels, num_val_im):
        info = infos[i]
        if not isinstance(info, dict):
            raise DataError(
                "expected an object {image_id, width, height}",
                file=str(info_path),
                sample=f"image {i}",
            )
        for key in ("image_id", "width", "height"):
            if key not in info:
                raise DataError(
                    f"missing key '{key}'", file=str(info_path), sample=f"image {i}", field=key
                )
        if (
            not (isinstance(info["width"], int) and isinstance(info["height"], int))
            or isinstance(info["width"], bool)
            or isinstance(info["height"], bool)
            or info["width"] <= 0
            or info["height"] <= 0
        ):
            raise DataError(
                f"bad size {info['width']}x{info['height']}",
                file=str(info_path),
                sample=f"image {i} (image_id {info['image_id']})",
                field="width/height",
            )
        key = info["image_id"]
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            raise DataError(
                f"expected an integer or string id, got {key!r}",
                file=str(info_path),
                sample=f"image {i}",
                field="image_id",
            )
        if key in seen:  # within the split read: one image, one graph
            raise DataError(
                f"image_id {key!r} also at image {seen[key]}",
                file=str(info_path),
                sample=f"image {i}",
                field="image_id",
            )
        seen[key] = int(i)
        boxes, labels, rels = _image_graph(
            a, int(i), info, vocab.num_classes, vocab.num_predicates, h5, box_scale
        )
        if filter_non_overlap and split == "train" and len(rels):
            rels = rels[_iou_positive(boxes, rels)]
            if len(rels) == 0:
                continue
        if filter_duplicate_rels and len(rels):
            groups: dict[tuple[int, int], list[int]] = defaultdict(list)
            for s, o, p in rels.tolist():
                groups[(s, o)].append(p)
            rels = np.array(
                [
                    (s, o, ps[0] if len(ps) == 1 else int(rng.choice(ps)))
                    for (s, o), ps in groups.items()
                ],
                dtype=np.int64,
            )
        path = None
        if not layout_only:
            p = root / image_dir / f"{info['image_id']}.jpg"
            if not p.is_file():
                raise DataError(
                    "image file not found (use layout_only=True to read boxes and relations only)",
                    file=str(p),
                    sample=info["image_id"],
                    field="image",
                )
            path = str(p)
        graphs.append(
            SceneGraph(
                info["image_id"],
                int(info["width"]),
                int(info["height"]),
                boxes,
                labels,
                rels.reshape(-1, 3),
                image_path=path,
            )
        )
    if count_split is not None:
        count_graphs = (
            graphs
            if count_split == split
            else load_vg(
                root,
                count_split,
                layout_only=True,
                num_val_im=num_val_im,
                box_scale=box_scale,
                h5_name=h5_name,
                dicts_name=dicts_name,
                seed=seed,
                count_split=None,
                filter_non_overlap=filter_non_overlap,
            )[0]
            if (count_split != "val" or num_val_im > 0)
            else []
        )
        pc = np.zeros(vocab.num_predicates, dtype=np.int64)
        oc = np.zeros(vocab.num_classes, dtype=np.int64)
        for g in count_graphs:
            pc += np.bincount(g.relations[:, 2].numpy(), minlength=vocab.num_predicates)
            oc += np.bincount(g.labels.numpy(), minlength=vocab.num_classes)
        vocab = vocab.with_counts(pc.tolist(), oc.tolist())
    return graphs, vocab


def write_vg(
    out_dir: str | os.PathLike,
    graphs_by_split: Mapping[str, Sequence[SceneGraph]],
    vocab: Vocabulary,
    *,
    h5_name: str = "VG-SGG-with-attri.h5",
    extra_metadata: bool = True,
) -> dict[str, Path]:
    """Write graphs in the VG150 layout (h5 + dicts + image_data; images are the caller's).

    Args:
        out_dir: destination folder.
        graphs_by_split: ``{"train": [...], "test": [...]}`` (val images go to split 0 too:
            pass them first in ``train`` and read with ``num_val_im``).
        vocab: object classes and predicates (index 0 = background).
        h5_name: name of the h5 file.
        extra_metadata: also write ``tailgraph-vocab.json`` (coarse parents, patterns).
    Returns:
        Paths of the written files. Files are written to temporary names and renamed, so a
        crash never leaves a half-written data set.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, b1024, b512, rels, preds, splits = [], [], [], [], [], []
    first_box, last_box, first_rel, last_rel = [], [], [], []
    infos = []
    n_box = n_rel = 0
    for split, graphs in graphs_by_split.items():
        if split not in SPLIT_CODE:
            raise DataError(f"unknown split {split!r}", field="split")
        for g in graphs:
            n = g.num_boxes
            infos.append(
                {
                    "image_id": g.image_id,
                    "width": int(g.width),
                    "height": int(g.height),
                    "url": "",
                    "coco_id": None,
                    "flickr_id": None,
                }
            )
            splits.append(SPLIT_CODE[split])
            bx = g.boxes.numpy()
            if n:
                labels.append(g.labels.numpy())
                b1024.append(encode_boxes(bx, g.width, g.height, 1024))
                b512.append(encode_boxes(bx, g.width, g.height, 512))
                first_box.append(n_box)
                last_box.append(n_box + n - 1)
            else:
                first_box.append(-1)
                last_box.append(-1)
            r = g.relations.numpy()
            if len(r):
                rels.append(r[:, :2] + n_box)
                preds.append(r[:, 2])
                first_rel.append(n_rel)
                last_rel.append(n_rel + len(r) - 1)
                n_rel += len(r)
            else:
                first_rel.append(-1)
                last_rel.append(-1)
            n_box += n

    def cat(parts: list, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype=dtype)

    h5_path = out / h5_name

    def fill(f: Any) -> None:
        def put(name: str, arr: np.ndarray) -> None:
            f.create_dataset(name, data=arr, track_times=False)

        put("labels", cat(labels, (0,), np.int64).reshape(-1, 1))
        put("boxes_1024", cat(b1024, (0, 4), np.int32))
        put("boxes_512", cat(b512, (0, 4), np.int32))
        put("attributes", np.zeros((n_box, 10), dtype=np.int64))
        put("active_object_mask", np.ones((n_box, 1), dtype=bool))
        put("img_to_first_box", np.asarray(first_box, dtype=np.int32))
        put("img_to_last_box", np.asarray(last_box, dtype=np.int32))
        put("relationships", cat(rels, (0, 2), np.int32))
        put("predicates", cat(preds, (0,), np.int64).reshape(-1, 1))
        put("img_to_first_rel", np.asarray(first_rel, dtype=np.int32))
        put("img_to_last_rel", np.asarray(last_rel, dtype=np.int32))
        put("split", np.asarray(splits, dtype=np.int32))

    write_h5_atomic(h5_path, fill, track_order=False)

    classes = vocab.object_classes[1:]
    predicates = vocab.predicates[1:]
    dicts = {
        "label_to_idx": {c: i + 1 for i, c in enumerate(classes)},
        "idx_to_label": {str(i + 1): c for i, c in enumerate(classes)},
        "predicate_to_idx": {p: i + 1 for i, p in enumerate(predicates)},
        "idx_to_predicate": {str(i + 1): p for i, p in enumerate(predicates)},
        "object_count": {c: int(vocab.object_counts[i + 1]) for i, c in enumerate(classes)},
        "predicate_count": {
            p: int(vocab.predicate_counts[i + 1]) for i, p in enumerate(predicates)
        },
    }
    files = {"h5": h5_path}

    def dump(name: str, obj: Any) -> Path:
        return write_text_atomic(out / name, json.dumps(obj, sort_keys=True))

    files["dicts"] = dump("VG-SGG-dicts.json", dicts)
    files["image_data"] = dump("image_data.json", infos)
    if extra_metadata:
        meta = {
            k: v
            for k, v in vocab.to_dict().items()
            if k
            in (
                "name",
                "predicates",
                "coarse_parent",
                "action_pattern",
                "spatial_pattern",
                "relation_type",
            )
        }
        files["vocab"] = dump(VOCAB_EXTRA, meta)
    return files


def stats(root: str | Path) -> dict[str, Any]:
    """Statistics of a VG150-format set.

    Returns:
        ``{"splits": {name: {"images", "boxes", "relations", "predicate_counts"}},
        "predicate_counts": {name: raw
        count over all splits}, "filtered": {"splits": ..., "predicate_counts": ...}}``. Raw =
        every image row of the file; filtered = what ``load_vg`` yields for training and
        testing with the default filters (images without boxes or relations dropped,
        duplicate predicates of a pair reduced to one in train); ``filtered.splits.<name>.removed``
        counts what each filter removed.
    """
    root = Path(root)
    a = read_vg_arrays(root)
    vocab = vg_vocabulary(_find(root, DICT_NAMES, None, "VG-SGG dicts json"))
    # validated before any count is sized by them (a predicate of 1e9 would allocate GBs)
    bad = np.flatnonzero((a.predicates < 1) | (a.predicates >= vocab.num_predicates))
    if len(bad):
        raise DataError(
            f"predicate {int(a.predicates[bad[0]])} of relation row {int(bad[0])} outside "
            f"1..{vocab.num_predicates - 1}",
            file=str(_find(root, H5_NAMES, None, "VG-SGG h5")),
            field="predicates",
        )
    names = {0: "train", 1: "val", 2: "test"}
    splits: dict[str, dict[str, int]] = {}
    nbox = np.where(a.first_box >= 0, a.last_box - a.first_box + 1, 0)
    nrel = np.where(a.first_rel >= 0, a.last_rel - a.first_rel + 1, 0)
    rel_split = np.repeat(a.split, nrel)  # the split of each relation row, in image order
    rel_rows = np.concatenate(
        [np.arange(f, f + n) for f, n in zip(a.first_rel.tolist(), nrel.tolist()) if n > 0]
        or [np.zeros(0, dtype=np.int64)]
    )
    for code in sorted(set(a.split.tolist())):
        m = a.split == code
        pc = np.bincount(a.predicates[rel_rows[rel_split == code]], minlength=vocab.num_predicates)
        splits[names.get(code, str(code))] = {
            "images": int(m.sum()),
            "boxes": int(nbox[m].sum()),
            "relations": int(nrel[m].sum()),
            "predicate_counts": {  # type: ignore[dict-item]
                vocab.predicates[i]: int(pc[i]) for i in range(1, vocab.num_predicates)
            },
        }
    counts = np.bincount(a.predicates, minlength=vocab.num_predicates)
    raw_counts = {vocab.predicates[i]: int(counts[i]) for i in range(1, vocab.num_predicates)}
    fsplits: dict[str, dict[str, int]] = {}
    fcounts = np.zeros(vocab.num_predicates, dtype=np.int64)
    for split in ("train", "test"):
        graphs, _ = load_vg(root, split, layout_only=True, count_split=None)
        pc = np.zeros(vocab.num_predicates, dtype=np.int64)
        for g in graphs:
            pc += np.bincount(g.relations[:, 2].numpy(), minlength=vocab.num_predicates)
        fcounts += pc
        code = SPLIT_CODE[split]
        in_split = a.split == code
        kept = _select_images(a, split, True, 0)
        fsplits[split] = {
            "images": len(graphs),
            "boxes": sum(g.num_boxes for g in graphs),
            "relations": sum(g.num_relations for g in graphs),
            "predicate_counts": {  # type: ignore[dict-item]
                vocab.predicates[i]: int(pc[i]) for i in range(1, vocab.num_predicates)
            },
            # what each default filter removed from the raw split
            "removed": {  # type: ignore[dict-item]
                "images without boxes": int((in_split & (a.first_box < 0)).sum()),
                "images without relations": int(
                    (in_split & (a.first_box >= 0) & (a.first_rel < 0)).sum()
                ),
                "duplicate predicates of a pair (one kept, train)": int(nrel[kept].sum())
                - sum(g.num_relations for g in graphs),
            },
        }
    filtered = {
        "splits": fsplits,
        "predicate_counts": {
            vocab.predicates[i]: int(fcounts[i]) for i in range(1, vocab.num_predicates)
        },
    }
    return {
        "format": "vg",
        "root": str(root),
        "splits": splits,
        "predicate_counts": raw_counts,
        "filtered": filtered,
    }
