"""synth-oi: the Open Images VRD variant of the synthetic benchmark (specs/synthetic.md).

Scenes like synth-vg's, with Open Images' 9 object–object relationships, annotated
exhaustively (no missing labels: every unannotated pair of boxes is a true negative) and a few
``is`` attribute rows. Spatial relationships are decided by geometry (``on``, ``under``,
``inside_of``, ``at`` = near), action relationships by an interaction glyph (``holds``,
``plays``, ``interacts_with``, ``wears``, ``hits``). Written as the challenge CSV
(``<split>-annotations-vrd.csv``), ``class-descriptions.csv``, ``image-sizes.csv`` and
``images/<ImageID>.jpg``; the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageDraw

from tailgraph.data.openimages import COLUMNS, OI_PREDICATES
from tailgraph.data.synthetic.render import COLOURS, SHAPES, background, draw_glyph, draw_shape
from tailgraph.data.synthetic.vg_scenes import _place_pair
from tailgraph.structures import SceneGraph

__all__ = ["generate_synth_oi", "SynthOIInfo", "OI_PATTERNS"]

# relationship -> (spatial pattern for placement, glyph (colour, pattern) or None)
OI_PATTERNS = {
    "at": ("near", None),
    "on": ("on", None),
    "under": ("below", None),
    "inside_of": ("inside", None),
    "holds": (None, ("white", "solid")),
    "plays": (None, ("yellow", "zigzag")),
    "interacts_with": (None, ("pink", "dashed")),
    "wears": (None, ("black", "dashed")),
    "hits": (None, ("white", "dotted")),
}
ATTRIBUTES = ["/m/attr_striped", "/m/attr_wooden", "/m/attr_shiny"]


@dataclass
class SynthOIInfo:
    root: Path
    splits: dict[str, list[SceneGraph]]
    class_mids: list[str]
    seconds: float


def generate_synth_oi(
    out_dir: str | os.PathLike,
    *,
    num_train: int,
    num_test: int,
    seed: int = 0,
    image_size: int = 192,
    num_classes: int = 20,
    head_tail_ratio: float = 300.0,
    jpeg_quality: int = 90,
) -> SynthOIInfo:
    """Generate synth-oi into ``out_dir``.

    Returns:
        :class:`SynthOIInfo` with the in-memory truth per split (boxes in pixels, labels =
        1 + class index, relations with predicate ids as :func:`tailgraph.data.openimages.load_oi`
        numbers them, attributes in ``extras["attributes"]``).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    world = np.random.default_rng([seed, 4242])
    combos = [(s, c) for c in COLOURS for s in SHAPES]
    pick = world.permutation(len(combos))[:num_classes]
    classes = [combos[int(i)] for i in pick]
    mids = [f"/m/synth{i:03d}" for i in range(num_classes)]
    names = [f"{c} {s}" for s, c in classes]
    order = world.permutation(len(OI_PREDICATES))
    a = np.log(head_tail_ratio) / np.log(len(OI_PREDICATES))
    probs = np.empty(len(OI_PREDICATES))
    probs[order] = [(k + 1) ** -a for k in range(len(OI_PREDICATES))]
    probs /= probs.sum()
    sizes = world.uniform(0.09, 0.16, num_classes)
    splits: dict[str, list[SceneGraph]] = {"train": [], "test": []}
    rows: dict[str, list[list]] = {"train": [], "test": []}
    size_rows = []
    from tailgraph.progress import track

    for idx in track(range(num_train + num_test), "generate synth-oi", unit="img"):
        split = "train" if idx < num_train else "test"
        rng = np.random.default_rng([seed, idx, 99])
        image_id = f"{idx:08x}"
        img = background(rng, image_size)
        draw = ImageDraw.Draw(img)
        n_units = int(rng.integers(1, 4))
        cells = [
            (0.0, 0.0, image_size / 2, image_size / 2),
            (image_size / 2, 0.0, image_size, image_size / 2),
            (0.0, image_size / 2, image_size / 2, image_size),
            (image_size / 2, image_size / 2, image_size, image_size),
        ]
        cells = [cells[int(i)] for i in rng.permutation(4)[:n_units]]
        boxes, labels, rels = [], [], []
        glyphs = []
        for cell in cells:
            p = int(rng.choice(len(OI_PREDICATES), p=probs))
            spatial, glyph = OI_PATTERNS[OI_PREDICATES[p]]
            sc, oc = int(rng.integers(num_classes)), int(rng.integers(num_classes))
            sb, ob, _ = _place_pair(
                rng, spatial, cell, sizes[sc] * image_size, sizes[oc] * image_size
            )
            boxes += [np.clip(sb, 0, image_size - 1), np.clip(ob, 0, image_size - 1)]
            labels += [sc + 1, oc + 1]
            rels.append((len(boxes) - 2, len(boxes) - 1, p + 1))
            if glyph is not None:
                glyphs.append((len(boxes) - 2, len(boxes) - 1, glyph))
        for k in range(len(boxes)):
            b = boxes[k]
            b[2:] = np.maximum(b[2:], b[:2] + 2)
            boxes[k] = np.clip(b, 0, image_size - 1)
            shape, colour = classes[labels[k] - 1]
            draw_shape(draw, shape, COLOURS[colour], tuple(float(v) for v in boxes[k]))  # type: ignore[arg-type]
        for s, o, (colour, pattern) in glyphs:
            bs, bo = boxes[s], boxes[o]
            draw_glyph(
                draw,
                ((bs[0] + bs[2]) / 2, (bs[1] + bs[3]) / 2),
                ((bo[0] + bo[2]) / 2, (bo[1] + bo[3]) / 2),
                colour,
                pattern,
                width=max(2, image_size // 64),
                period=max(6.0, image_size / 24),
            )
        attrs = [
            (k, ATTRIBUTES[int(rng.integers(len(ATTRIBUTES)))])
            for k in range(len(boxes))
            if rng.random() < 0.1
        ]
        # exhaustive annotation: every relation is written (objects appear only through rows)
        norm = [np.round(b / image_size, 6) for b in boxes]
        bx = np.array(
            [
                [n[0] * image_size, n[1] * image_size, n[2] * image_size, n[3] * image_size]
                for n in norm
            ]
        )

        def row(
            s: int, o: int, label: str, mid2: str, norm=norm, image_id=image_id, labels=labels
        ) -> list:
            a_, b_ = norm[s], norm[o]
            return [
                image_id,
                mids[labels[s] - 1],
                mid2,
                a_[0],
                a_[2],
                a_[1],
                a_[3],
                b_[0],
                b_[2],
                b_[1],
                b_[3],
                label,
            ]

        for s, o, p in rels:
            rows[split].append(row(s, o, OI_PREDICATES[p - 1], mids[labels[o] - 1]))
        for k, attr in attrs:
            rows[split].append(row(k, k, "is", attr))
        # objects are the distinct boxes referenced by rows, in first-reference order
        # (as the reader)
        ref = []
        for s, o, _ in rels:
            for k in (s, o):
                if k not in ref:
                    ref.append(k)
        remap = {k: i for i, k in enumerate(ref)}
        g = SceneGraph(
            image_id,
            image_size,
            image_size,
            bx[ref].astype(np.float32),
            [labels[k] for k in ref],
            np.array([(remap[s], remap[o], p) for s, o, p in rels], dtype=np.int64).reshape(-1, 3),
            extras={"attributes": [(remap[k], a_) for k, a_ in attrs if k in remap]},
        )
        splits[split].append(g)
        size_rows.append((image_id, image_size, image_size))
        tmp = out / "images" / f"{image_id}.jpg.tmp"
        img.save(tmp, format="JPEG", quality=jpeg_quality)
        os.replace(tmp, out / "images" / f"{image_id}.jpg")
    for split, rs in rows.items():
        with open(out / f"{split}-annotations-vrd.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            w.writerows(rs)
    with open(out / "class-descriptions.csv", "w", newline="") as f:
        csv.writer(f).writerows(zip(mids, names))
    with open(out / "image-sizes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "width", "height"])
        w.writerows(size_rows)
    return SynthOIInfo(out, splits, mids, time.perf_counter() - t0)
