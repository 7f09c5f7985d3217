"""synth-vrd: the ImageNet-VidVRD variant of the synthetic benchmark (specs/synthetic.md).

Videos of ``T`` frames with 2–4 moving objects (tracklets) and 1–3 relation instances over
frame ranges. Predicates follow VidVRD's naming, built from the two patterns DLL decouples:
spatial-only (``left``, ``above``, ...), actional-only (``chase``, ``watch``, ...) and both
(``walk_left``, ``run_front``, ...). During an instance the subject is kept at the spatial
pattern's position relative to the object (``front`` / ``behind`` by overlap and draw order)
and the action is drawn as an interaction glyph; predicates follow a Zipf long tail.

Written as VidVRD's per-video JSON (``<split>/<video_id>.json``) plus
``frames/<video_id>/<frame:06d>.jpg``; the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageDraw

from tailgraph.data.synthetic.render import (
    COLOURS,
    GLYPH_COLOURS,
    GLYPH_PATTERNS,
    SHAPES,
    background,
    draw_glyph,
    draw_shape,
)

__all__ = ["generate_synth_vrd", "SynthVRDInfo", "VRD_PREDICATES"]

_SPATIAL = ["above", "beneath", "left", "right", "front", "behind", "next_to", "inside"]
_ACTIONS = ["chase", "follow", "watch", "ride", "touch", "hold", "bite", "kick"]
_MOVES = ["walk", "run", "sit", "stand", "lie", "fly"]
VRD_PREDICATES = (
    _SPATIAL + _ACTIONS + [f"{m}_{s}" for m in _MOVES for s in ("left", "right", "front", "behind")]
)
_CATEGORIES = [
    "dog",
    "cat",
    "person",
    "car",
    "ball",
    "bicycle",
    "horse",
    "bird",
    "sofa",
    "table",
    "monkey",
    "zebra",
]


@dataclass
class SynthVRDInfo:
    root: Path
    docs: dict[str, list[dict]]
    seconds: float


def _offset(
    spatial: str | None, so: float, ss: float, rng: np.random.Generator
) -> tuple[float, float]:
    gap = 0.6 * (so + ss)
    return {
        "above": (0.0, -gap),
        "beneath": (0.0, gap),
        "left": (-gap - 4, 0.0),
        "right": (gap + 4, 0.0),
        "front": (0.3 * so, 0.2 * so),
        "behind": (-0.3 * so, -0.2 * so),
        "next_to": (0.55 * (so + ss), 0.55 * (so + ss)),
        "inside": (0.0, 0.0),
        None: (float(rng.uniform(-1, 1) * gap * 1.5), float(rng.uniform(-1, 1) * gap * 1.5)),
    }[spatial]


def generate_synth_vrd(
    out_dir: str | os.PathLike,
    *,
    num_train: int,
    num_test: int,
    seed: int = 0,
    image_size: int = 128,
    min_frames: int = 16,
    max_frames: int = 32,
    head_tail_ratio: float = 100.0,
    jpeg_quality: int = 90,
    write_frames: bool = True,
    p_multilabel: float = 0.0,
) -> SynthVRDInfo:
    """Generate synth-vrd into ``out_dir``; returns the per-video JSON documents written.

    ``p_multilabel``: probability that a pair with a dual-pattern predicate (``walk_left``) is
    also annotated with its spatial predicate alone (``left``) over the same frames, so pairs
    carry several predicates as in VidVRD (0 = one predicate per pair; the output for a given
    seed is then unchanged).
    """
    from tailgraph.data.vidvrd import predicate_patterns

    t0 = time.perf_counter()
    out = Path(out_dir)
    world = np.random.default_rng([seed, 777])
    combos = [(s, c) for c in COLOURS for s in SHAPES]
    look = {c: combos[int(i)] for c, i in zip(_CATEGORIES, world.permutation(len(combos)))}
    order = world.permutation(len(VRD_PREDICATES))
    a = np.log(head_tail_ratio) / np.log(len(VRD_PREDICATES))
    probs = np.empty(len(VRD_PREDICATES))
    probs[order] = [(k + 1) ** -a for k in range(len(VRD_PREDICATES))]
    probs /= probs.sum()
    actions = sorted({act for act in (predicate_patterns(p)[0] for p in VRD_PREDICATES) if act})
    glyph_of = {
        act: (list(GLYPH_COLOURS)[k % 4], GLYPH_PATTERNS[(k // 4) % 4])
        for k, act in enumerate(actions)
    }
    docs: dict[str, list[dict]] = {"train": [], "test": []}
    size = image_size
    from tailgraph.progress import track

    for v in track(range(num_train + num_test), "generate synth-vidvrd", unit="video"):
        split = "train" if v < num_train else "test"
        rng = np.random.default_rng([seed, v, 1618])
        vid = f"SV{v:05d}"
        n = int(rng.integers(min_frames, max_frames + 1))
        k = int(rng.integers(2, 5))
        cats = [_CATEGORIES[int(i)] for i in rng.integers(len(_CATEGORIES), size=k)]
        sz = rng.uniform(0.1, 0.16, k) * size
        start = rng.uniform(0.2, 0.8, (k, 2)) * size
        vel = rng.normal(0, 0.01, (k, 2)) * size
        centres = np.stack([start + vel * f for f in range(n)], 1)  # [k, n, 2]
        instances: list[dict[str, Any]] = []
        used = set()
        for _ in range(int(rng.integers(1, 4))):
            s, o = (int(x) for x in rng.choice(k, 2, replace=False))
            if (s, o) in used or (o, s) in used:
                continue
            used.add((s, o))
            p = VRD_PREDICATES[int(rng.choice(len(VRD_PREDICATES), p=probs))]
            b = int(rng.integers(0, max(1, n - 8)))
            e = int(rng.integers(b + 4, n + 1))
            act, spa = predicate_patterns(p)
            dx, dy = _offset(spa, sz[o], sz[s], rng)
            if spa == "inside":
                sz[s] = min(sz[s], 0.5 * sz[o])
            centres[s, b:e] = centres[o, b:e] + np.array([dx, dy])
            instances.append(
                {
                    "subject_tid": s,
                    "object_tid": o,
                    "predicate": p,
                    "begin_fid": b,
                    "end_fid": e,
                    "_act": act,
                    "_spa": spa,
                }
            )
            # multi-label pairs (as VidVRD annotates): a dual predicate's spatial pattern is
            # also annotated on its own over the same frames
            if p_multilabel > 0 and act and spa in VRD_PREDICATES and rng.random() < p_multilabel:
                instances.append(
                    {
                        "subject_tid": s,
                        "object_tid": o,
                        "predicate": spa,
                        "begin_fid": b,
                        "end_fid": e,
                        "_act": None,
                        "_spa": spa,
                    }
                )
        # "front" draws the subject after the object, "behind" before
        depth = list(range(k))
        for r in instances:
            if r["_spa"] in ("front", "inside") and depth.index(r["subject_tid"]) < depth.index(
                r["object_tid"]
            ):
                depth.remove(r["subject_tid"])
                depth.insert(depth.index(r["object_tid"]) + 1, r["subject_tid"])
            if r["_spa"] == "behind" and depth.index(r["subject_tid"]) > depth.index(
                r["object_tid"]
            ):
                depth.remove(r["subject_tid"])
                depth.insert(depth.index(r["object_tid"]), r["subject_tid"])
        trajectories = []
        for f in range(n):
            frame = []
            boxes = {}
            for t in range(k):
                c = np.clip(centres[t, f], sz[t] / 2, size - 1 - sz[t] / 2)
                bb = [
                    round(float(c[0] - sz[t] / 2), 2),
                    round(float(c[1] - sz[t] / 2), 2),
                    round(float(c[0] + sz[t] / 2), 2),
                    round(float(c[1] + sz[t] / 2), 2),
                ]
                boxes[t] = bb
                frame.append(
                    {"tid": t, "bbox": {"xmin": bb[0], "ymin": bb[1], "xmax": bb[2], "ymax": bb[3]}}
                )
            trajectories.append(frame)
            if write_frames:
                img = background(rng, size)
                draw = ImageDraw.Draw(img)
                for t in depth:
                    shape, colour = look[cats[t]]
                    draw_shape(draw, shape, COLOURS[colour], tuple(boxes[t]))  # type: ignore[arg-type]
                for r in instances:
                    if r["_act"] and r["begin_fid"] <= f < r["end_fid"]:
                        bs, bo = boxes[r["subject_tid"]], boxes[r["object_tid"]]
                        colour, pattern = glyph_of[r["_act"]]
                        draw_glyph(
                            draw,
                            ((bs[0] + bs[2]) / 2, (bs[1] + bs[3]) / 2),
                            ((bo[0] + bo[2]) / 2, (bo[1] + bo[3]) / 2),
                            colour,
                            pattern,
                            width=max(2, size // 64),
                            period=max(6.0, size / 24),
                        )
                path = out / "frames" / vid / f"{f:06d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                img.save(path.with_name(path.name + ".tmp"), format="JPEG", quality=jpeg_quality)
                os.replace(path.with_name(path.name + ".tmp"), path)
        doc = {
            "video_id": vid,
            "frame_count": n,
            "fps": 30,
            "width": size,
            "height": size,
            "subject/objects": [{"tid": t, "category": cats[t]} for t in range(k)],
            "trajectories": trajectories,
            "relation_instances": [
                {key: val for key, val in r.items() if not key.startswith("_")} for r in instances
            ],
        }
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{vid}.json.tmp"
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, folder / f"{vid}.json")
        docs[split].append(doc)
    return SynthVRDInfo(out, docs, time.perf_counter() - t0)
