"""synth-vrd: the ImageNet-VidVRD variant of the synthetic benchmark (specs/synthetic.md).

Videos of ``T`` frames with 4–6 moving objects (tracklets) and 2–5 relation instances over
frame ranges (a tree: each tracklet is the subject of at most one instance). Predicates follow
VidVRD's naming, built from the two patterns DLL decouples:
spatial-only (``left``, ``above``, ...), actional-only (``chase``, ``watch``, ...) and both
(``walk_left``, ``run_front``, ...). During an instance the subject is kept at the spatial
pattern's position relative to the object (``front`` / ``behind`` by overlap and draw order)
and the action is drawn as an interaction glyph; predicates follow a long tail with a floor
(``tails.py``), dealt per split so every predicate has enough instances to learn and measure.

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
from tailgraph.data.synthetic.tails import deal_deck

__all__ = ["generate_synth_vrd", "SynthVRDInfo", "VRD_PREDICATES"]

_SPATIAL = ["above", "beneath", "left", "right", "front", "behind", "next_to", "inside"]
_ACTIONS = ["chase", "follow", "watch", "ride", "touch", "hold", "bite", "kick"]
_MOVES = ["walk", "run", "sit", "stand", "lie", "fly"]
VRD_PREDICATES = (
    _SPATIAL + _ACTIONS + [f"{m}_{s}" for m in _MOVES for s in ("left", "right", "front", "behind")]
)
# look-alike motions an annotator confuses (``p_confuse``)
_MATE = {"walk": "run", "run": "walk", "sit": "stand", "stand": "sit", "lie": "fly", "fly": "lie"}
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


def _subject_size(spatial: str | None, subject: float, obj: float) -> float:
    return float(min(subject, 0.5 * obj)) if spatial == "inside" else float(subject)


def _choose_object(
    candidates: list[int],
    s: int,
    spatial: str | None,
    centres: np.ndarray,
    sz: np.ndarray,
    u: np.ndarray,
    size: int,
    taken: dict[int, set],
    rng: np.random.Generator,
) -> int:
    """The object for subject ``s`` among the already placed tracklets: one where the canvas
    pushes the subject least off the predicate's geometry over the instance's frames
    (``centres`` cut to them), avoiding an object that already has a subject at the same
    spatial offset; ties are drawn at random."""
    scores = []
    for t in candidates:
        ss = _subject_size(spatial, sz[s], sz[t])
        c = centres[t] + np.array(_offset(spatial, sz[t], ss, u))
        off = float(np.abs(np.clip(c, ss / 2, size - 1 - ss / 2) - c).max(initial=0.0))
        dup = spatial is not None and spatial in taken.get(t, ())
        scores.append(off + (100.0 if dup else 0.0))
    best = min(scores)
    ties = [t for t, sc in zip(candidates, scores) if sc <= best + 1e-6]
    return ties[int(rng.integers(len(ties)))]


@dataclass
class SynthVRDInfo:
    root: Path
    docs: dict[str, list[dict]]
    seconds: float


def _offset(spatial: str | None, so: float, ss: float, u: np.ndarray) -> tuple[float, float]:
    """The subject's centre relative to the object's for a spatial pattern; ``u`` (two draws
    in [-1, 1]) places a subject whose predicate has no spatial pattern."""
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
        None: (float(u[0] * gap * 1.5), float(u[1] * gap * 1.5)),
    }[spatial]


def _ramp(track: np.ndarray, free: np.ndarray, b: int, e: int, step: float) -> None:
    """Blend ``track`` (``[n, 2]`` centres, placed at a relation over frames ``b:e``) back into
    its ``free`` path before ``b`` and after ``e``: over ``L = ceil(d / step)`` frames, ``d``
    the distance to cover, frame ``j`` away from the relation sits ``j / L`` of the way from the
    relation's end position to the free path's."""
    n = len(track)
    for edge, sign in ((b, -1), (e - 1, 1)):
        nxt = edge + sign
        if not 0 <= nxt < n:
            continue
        anchor = track[edge].copy()
        steps = int(np.ceil(float(np.linalg.norm(free[nxt] - anchor)) / step))
        for j in range(1, steps + 1):
            f = edge + sign * j
            if not 0 <= f < n:
                break
            track[f] = anchor + (free[f] - anchor) * (j / steps)


def generate_synth_vrd(
    out_dir: str | os.PathLike,
    *,
    num_train: int,
    num_test: int,
    seed: int = 0,
    image_size: int = 128,
    min_frames: int = 16,
    max_frames: int = 32,
    head_tail_ratio: float = 30.0,
    floor_share: float = 0.4,
    min_objects: int = 4,
    max_objects: int = 6,
    jpeg_quality: int = 90,
    write_frames: bool = True,
    p_multilabel: float = 0.0,
    p_confuse: float = 0.0,
    max_step: float | None = None,
) -> SynthVRDInfo:
    """Generate synth-vrd into ``out_dir``; returns the per-video JSON documents written.

    Each video has ``min_objects`` … ``max_objects`` tracklets and ``k - 2`` … ``k - 1``
    relation instances; the predicates are dealt per split from a deck
    (:mod:`tailgraph.data.synthetic.tails`) in which each predicate has at least
    ``floor_share`` of its uniform share (at least 3 instances) and the head is
    ``head_tail_ratio`` times the tail.

    ``p_multilabel``: probability that a pair with a dual-pattern predicate (``walk_left``) is
    also annotated with its spatial predicate alone (``left``) over the same frames, so pairs
    carry several predicates as in VidVRD (0 = one predicate per pair; the output for a given
    seed is then unchanged).

    ``p_confuse``: probability that a motion predicate's annotation names its confusable mate
    instead (``walk`` / ``run``, ``sit`` / ``stand``, ``lie`` / ``fly`` at the same spatial
    pattern: ``run_left`` drawn, ``walk_left`` annotated), in both splits — annotator noise
    between look-alike predicates, as ImageNet-VidVRD's ``walk_*`` / ``run_*``; the drawing
    keeps the dealt predicate (0 = exact labels; the output for a given seed is then
    unchanged). Not part of specs/synthetic.md: an extension for testing knowledge transfer
    between correlated labels (DLL's KDL).

    ``max_step``: how a subject reaches its relation's geometry. ``None`` (the default, the
    output of earlier versions for a given seed): it is placed there on ``begin_fid`` and
    released to its own path on ``end_fid``, a jump of up to the canvas between two frames
    (its trajectory is continuous only piecewise; an IoU tracker rightly breaks it there). A
    number in (0, 4]: the same placements (instances, objects, offsets) are reached along
    linear ramps over the frames before ``begin_fid`` and after ``end_fid``, at most about
    ``max_step`` × the video's smallest box per frame (the video's first / last frame
    permitting), so no box moves more than ``max_step`` of its own size between two frames
    beyond its slow drift, and every trajectory moves smoothly as specs/synthetic.md describes;
    the subject keeps its offset from its object over the relation's frames.
    """
    if not 0.0 <= p_confuse <= 1.0 or not 0.0 <= p_multilabel <= 1.0:
        raise ValueError("p_confuse and p_multilabel must lie in [0, 1]")
    if max_step is not None and (
        isinstance(max_step, bool) or not isinstance(max_step, (int, float))
        or not 0.0 < float(max_step) <= 4.0
    ):  # fmt: skip
        raise ValueError(f"max_step must be None or a number in (0, 4], got {max_step!r}")
    from tailgraph.data.vidvrd import predicate_patterns

    t0 = time.perf_counter()
    out = Path(out_dir)
    world = np.random.default_rng([seed, 777])
    combos = [(s, c) for c in COLOURS for s in SHAPES]
    look = {c: combos[int(i)] for c, i in zip(_CATEGORIES, world.permutation(len(combos)))}
    order = [int(i) for i in world.permutation(len(VRD_PREDICATES))]  # head first
    actions = sorted({act for act in (predicate_patterns(p)[0] for p in VRD_PREDICATES) if act})
    glyph_of = {
        act: (list(GLYPH_COLOURS)[k % 4], GLYPH_PATTERNS[(k // 4) % 4])
        for k, act in enumerate(actions)
    }

    def plan(v: int) -> tuple[np.random.Generator, int, int, int]:
        """The draws that fix a video's size: frames, tracklets and relation instances."""
        rng = np.random.default_rng([seed, v, 1618])
        n = int(rng.integers(min_frames, max_frames + 1))
        k = int(rng.integers(min_objects, max_objects + 1))
        return rng, n, k, int(rng.integers(max(1, k - 2), k))

    # one deck of predicates per split (tails.py): every predicate has a floor
    decks: dict[str, list[int]] = {}
    for split, videos in (
        ("train", range(num_train)),
        ("test", range(num_train, num_train + num_test)),
    ):
        decks[split] = deal_deck(
            np.random.default_rng([seed, 9090, len(decks)]),
            sum(plan(v)[3] for v in videos),
            order,
            floor_share=floor_share,
            head_tail_ratio=head_tail_ratio,
            min_floor=3,
        )
    docs: dict[str, list[dict]] = {"train": [], "test": []}
    size = image_size
    from tailgraph.progress import track

    for v in track(range(num_train + num_test), "generate synth-vidvrd", unit="video"):
        split = "train" if v < num_train else "test"
        rng, n, k, m = plan(v)
        noise = np.random.default_rng([seed, v, 4242])  # annotation noise: its own stream
        vid = f"SV{v:05d}"
        cats = [_CATEGORIES[int(i)] for i in rng.integers(len(_CATEGORIES), size=k)]
        sz = rng.uniform(0.1, 0.16, k) * size
        start = rng.uniform(0.2, 0.8, (k, 2)) * size
        vel = rng.normal(0, 0.01, (k, 2)) * size
        centres = np.stack([start + vel * f for f in range(n)], 1)  # [k, n, 2]
        for t in range(k):  # on the canvas, so the subjects are placed where the objects are drawn
            centres[t] = np.clip(centres[t], sz[t] / 2, size - 1 - sz[t] / 2)
        instances: list[dict[str, Any]] = []
        # the instances form a tree over the tracklets in a random order: each tracklet is the
        # subject of at most one instance, and its object comes earlier in the order (already
        # placed), so no later placement moves a subject off its relation's geometry
        perm = [int(x) for x in rng.permutation(k)]
        free = centres.copy()  # every tracklet's own path, before any subject is placed
        placed: list[tuple[int, int, int, int, np.ndarray]] = []
        taken: dict[int, set] = {}  # object -> spatial patterns of its subjects
        for i in range(m):
            s = perm[i + 1]
            p = VRD_PREDICATES[decks[split].pop()]
            act, spa = predicate_patterns(p)
            b = int(rng.integers(0, max(1, n - 8)))
            e = int(rng.integers(min(b + 4, n), n + 1))
            u = rng.uniform(-1, 1, 2)
            o = _choose_object(perm[: i + 1], s, spa, centres[:, b:e], sz, u, size, taken, rng)
            taken.setdefault(o, set()).add(spa)
            sz[s] = _subject_size(spa, sz[s], sz[o])
            dx, dy = _offset(spa, sz[o], sz[s], u)
            centres[s, b:e] = centres[o, b:e] + np.array([dx, dy])
            placed.append((s, o, b, e, np.array([dx, dy])))
            centres[s] = np.clip(centres[s], sz[s] / 2, size - 1 - sz[s] / 2)
            label = p
            if p_confuse > 0 and act in _MATE and noise.random() < p_confuse:
                label = f"{_MATE[act]}_{spa}"  # annotated as the look-alike; drawn as dealt
            instances.append(
                {
                    "subject_tid": s,
                    "object_tid": o,
                    "predicate": label,
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
        if max_step is not None:  # the same placements, reached along ramps
            centres = free.copy()
            step = float(max_step) * float(sz.min())  # the video's smallest box bounds a move
            for s, o, b, e, offset in placed:
                own = centres[s].copy()
                centres[s, b:e] = centres[o, b:e] + offset
                _ramp(centres[s], own, b, e, step)
                centres[s] = np.clip(centres[s], sz[s] / 2, size - 1 - sz[s] / 2)
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
