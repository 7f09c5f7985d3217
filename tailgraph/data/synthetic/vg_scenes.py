"""synth-vg: the image variant of the synthetic benchmark (specs/synthetic.md).

A scene is a set of *relation units* (a subject and an object placed so that the unit's
spatial pattern holds, with the action pattern drawn as an interaction glyph between them)
plus unrelated distractor objects. The vocabulary, the Zipf long tail and the
class–predicate compatibility table are functions of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from tailgraph.data.synthetic.render import COLOURS, SHAPES, background, draw_glyph, draw_shape
from tailgraph.data.vg import decode_boxes, encode_boxes
from tailgraph.structures import SceneGraph
from tailgraph.vocab import BACKGROUND, Vocabulary

__all__ = ["SynthVGConfig", "SynthVGWorld", "build_world", "sample_scene", "SPATIAL", "ACTIONS"]

SPATIAL = (
    "above",
    "below",
    "left of",
    "right of",
    "on",
    "inside",
    "covering",
    "in front of",
    "behind",
    "near",
    "far",
)
# action pattern -> (verb used in fine names, glyph colour, glyph pattern)
ACTIONS = {
    "has": ("has", "white", "solid"),
    "hold": ("holding", "black", "solid"),
    "look": ("looking at", "yellow", "solid"),
    "touch": ("touching", "pink", "solid"),
    "carry": ("carrying", "white", "dashed"),
    "wear": ("wearing", "black", "dashed"),
    "eat": ("eating", "yellow", "dashed"),
    "push": ("pushing", "pink", "dashed"),
    "pull": ("pulling", "white", "zigzag"),
    "chase": ("chasing", "black", "zigzag"),
    "watch": ("watching", "yellow", "zigzag"),
    "ride": ("riding", "pink", "zigzag"),
    "sit": ("sitting", "white", "dotted"),
    "lie": ("lying", "black", "dotted"),
    "park": ("parked", "yellow", "dotted"),
    "walk": ("walking", "pink", "dotted"),
}
ACTION_ONLY = (
    "has",
    "hold",
    "look",
    "touch",
    "carry",
    "wear",
    "eat",
    "push",
    "pull",
    "chase",
    "watch",
    "ride",
)
# (action, spatial) pairs for dual-pattern predicates, in the order they are added.
DUAL = (
    ("sit", "on"),
    ("lie", "on"),
    ("park", "on"),
    ("walk", "near"),
    ("sit", "near"),
    ("park", "near"),
    ("ride", "on"),
    ("hold", "above"),
    ("carry", "above"),
    ("walk", "behind"),
    ("walk", "in front of"),
    ("sit", "behind"),
    ("sit", "in front of"),
    ("lie", "inside"),
    ("sit", "inside"),
    ("look", "far"),
    ("watch", "far"),
    ("chase", "left of"),
    ("chase", "right of"),
    ("push", "left of"),
    ("pull", "right of"),
    ("park", "behind"),
    ("lie", "near"),
    ("walk", "left of"),
    ("walk", "right of"),
    ("hold", "below"),
    ("touch", "covering"),
    ("eat", "in front of"),
    ("ride", "above"),
    ("carry", "below"),
    ("lie", "below"),
    ("watch", "near"),
    ("look", "near"),
    ("push", "behind"),
    ("pull", "in front of"),
    ("sit", "above"),
)
COARSE_OF_ACTION = {"carry": "has", "wear": "has", "hold": "has"}


@dataclass
class SynthVGConfig:
    """Generator options (defaults = the spec's synth-vg)."""

    image_size: int = 192
    num_classes: int = 40
    num_predicates: int = 50
    p_coarse: float = 0.4
    p_missing: float = 0.2
    head_tail_ratio: float = 1000.0
    min_objects: int = 3
    max_objects: int = 10
    max_units: int = 4
    compat_strength: float = 0.8
    class_groups: int = 4


@dataclass
class SynthVGWorld:
    """Everything that is fixed per seed: vocabulary, patterns, tail, compatibility."""

    config: SynthVGConfig
    classes: list[tuple[str, str]]  # (shape, colour) per class index - 1
    class_sizes: np.ndarray  # relative size prior per class (fraction of the canvas)
    predicates: list[str]  # fg names in id order (id = index + 1)
    spatial: list[str | None]
    action: list[str | None]
    parent: list[int]  # coarse parent id or -1, per fg predicate
    probs: np.ndarray  # Zipf probabilities per fg predicate
    compat_sub: np.ndarray  # [R, C] subject class distribution per predicate
    compat_obj: np.ndarray
    vocab: Vocabulary = field(repr=False, default=None)  # type: ignore[assignment]


def _predicate_table(n: int) -> list[tuple[str, str | None, str | None]]:
    table: list[tuple[str, str | None, str | None]] = [(s, s, None) for s in SPATIAL]
    table += [(ACTIONS[a][0], None, a) for a in ACTION_ONLY]
    for a, s in DUAL:
        table.append((f"{ACTIONS[a][0]} {s}", s, a))
    if n > len(table):
        raise ValueError(f"synth-vg supports at most {len(table)} predicates, asked for {n}")
    if n < len(SPATIAL) + 3:
        raise ValueError(f"synth-vg needs at least {len(SPATIAL) + 3} predicates")
    return table[:n]


def build_world(seed: int, config: SynthVGConfig | None = None) -> SynthVGWorld:
    """The per-seed world: classes, predicates with metadata, long tail, compatibility."""
    cfg = config or SynthVGConfig()
    rng = np.random.default_rng([seed, 7919])
    combos = [(s, c) for c in COLOURS for s in SHAPES]
    if cfg.num_classes > len(combos):
        raise ValueError(f"synth-vg supports at most {len(combos)} classes")
    order = rng.permutation(len(combos))[: cfg.num_classes]
    classes = [combos[i] for i in order]
    sizes = rng.uniform(0.09, 0.17, size=cfg.num_classes)
    table = _predicate_table(cfg.num_predicates)
    names = [t[0] for t in table]
    spatial = [t[1] for t in table]
    action = [t[2] for t in table]
    idx = {n: i for i, n in enumerate(names)}
    parent = []
    for name, s, a in table:
        p = -1
        if s is not None and a is not None and s in idx:
            p = idx[s] + 1
        elif (
            a in COARSE_OF_ACTION
            and COARSE_OF_ACTION[a] in {ACTIONS[x][0] for x in ACTION_ONLY}
            and ACTIONS["has"][0] in idx
            and name != "has"
        ):
            p = idx[ACTIONS["has"][0]] + 1
        parent.append(p)
    # Zipf tail: coarse predicates lead (as "on", "has", "near" do in VG), the rest shuffled.
    r = len(names)
    coarse = sorted({p - 1 for p in parent if p > 0})
    rest = [i for i in rng.permutation(r) if i not in coarse]
    rank_order = [c for c in (idx.get("on"), idx.get("has"), idx.get("near")) if c is not None]
    rank_order += [c for c in coarse if c not in rank_order] + rest
    a_exp = math.log(cfg.head_tail_ratio) / math.log(r)
    probs = np.empty(r)
    for rank, i in enumerate(rank_order):
        probs[i] = (rank + 1) ** (-a_exp)
    probs /= probs.sum()
    # Compatibility: each predicate prefers a few subject and object classes.
    c = cfg.num_classes
    # Compatibility: classes fall into a few groups; each predicate prefers one subject group
    # and one object group. Many predicates share a group pair (as "man"-"horse" carries
    # riding, on, near, has in VG), so the class prior is strong but favours head predicates.
    groups = rng.permutation(c) % cfg.class_groups
    compat_sub = np.zeros((r, c))
    compat_obj = np.zeros((r, c))
    for i in range(r):
        for table_ in (compat_sub, compat_obj):
            g = rng.integers(cfg.class_groups)
            members = np.flatnonzero(groups == g)
            table_[i, members] = rng.dirichlet(np.full(members.shape[0], 2.0))
    # mixed with uniform so the prior is not deterministic
    compat_sub = cfg.compat_strength * compat_sub + (1 - cfg.compat_strength) / c
    compat_obj = cfg.compat_strength * compat_obj + (1 - cfg.compat_strength) / c
    vocab = Vocabulary(
        object_classes=[BACKGROUND] + [f"{col} {shape}" for shape, col in classes],
        predicates=[BACKGROUND] + names,
        coarse_parent=[-1] + parent,
        action_pattern=[None, *action],
        spatial_pattern=[None, *spatial],
        name="synth-vg",
    )
    return SynthVGWorld(
        cfg, classes, sizes, names, spatial, action, parent, probs, compat_sub, compat_obj, vocab
    )


# --------------------------------------------------------------------------- placement
def _place_pair(
    rng: np.random.Generator,
    spatial: str | None,
    cell: tuple[float, float, float, float],
    ss: float,
    os_: float,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Subject and object boxes inside ``cell`` satisfying ``spatial``.

    Returns ``(sub_box, obj_box, subject_drawn_last)``.
    """
    x0, y0, x1, y1 = cell
    cw, ch = x1 - x0, y1 - y0

    def box(cx: float, cy: float, w: float, h: float) -> np.ndarray:
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    sw = sh = ss
    ow = oh = os_
    jitter = lambda a: rng.uniform(-a, a)  # noqa: E731
    s = spatial
    if s is None:  # action only: side by side at a moderate distance, any direction
        ang = rng.uniform(0, 2 * math.pi)
        d = (sw + ow) / 2 + rng.uniform(0.15, 0.3) * min(cw, ch)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return (
            box(cx - d / 2 * math.cos(ang), cy - d / 2 * math.sin(ang), sw, sh),
            box(cx + d / 2 * math.cos(ang), cy + d / 2 * math.sin(ang), ow, oh),
            True,
        )
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if s in ("above", "below", "on"):
        gap = 0.0 if s == "on" else rng.uniform(0.12, 0.25) * ch
        top_h, bot_h = (sh, oh) if s in ("above", "on") else (oh, sh)
        total = top_h + gap + bot_h
        ytop = cy - total / 2
        upper = box(cx + jitter(0.1 * cw), ytop + top_h / 2, sw if s != "below" else ow, top_h)
        lower = box(
            cx + jitter(0.1 * cw), ytop + top_h + gap + bot_h / 2, ow if s != "below" else sw, bot_h
        )
        return (upper, lower, True) if s in ("above", "on") else (lower, upper, True)
    if s in ("left of", "right of"):
        gap = rng.uniform(0.12, 0.25) * cw
        left_w, right_w = (sw, ow) if s == "left of" else (ow, sw)
        xl = cx - (left_w + gap + right_w) / 2
        left = box(xl + left_w / 2, cy + jitter(0.08 * ch), left_w, sh if s == "left of" else oh)
        right = box(
            xl + left_w + gap + right_w / 2,
            cy + jitter(0.08 * ch),
            right_w,
            oh if s == "left of" else sh,
        )
        return (left, right, True) if s == "left of" else (right, left, True)
    if s == "near":  # diagonal neighbours with a small gap
        dx = (sw + ow) / 2 + rng.uniform(0.03, 0.1) * cw
        dy = (sh + oh) / 2 + rng.uniform(0.03, 0.1) * ch
        sx, sy = rng.choice([-1, 1]), rng.choice([-1, 1])
        return (
            box(cx - sx * dx / 2, cy - sy * dy / 2, sw, sh),
            box(cx + sx * dx / 2, cy + sy * dy / 2, ow, oh),
            True,
        )
    if s == "far":  # opposite corners of the (large) cell
        sx, sy = rng.choice([-1, 1]), rng.choice([-1, 1])
        return (
            box(cx - sx * (cw / 2 - sw / 2 - 1), cy - sy * (ch / 2 - sh / 2 - 1), sw, sh),
            box(cx + sx * (cw / 2 - ow / 2 - 1), cy + sy * (ch / 2 - oh / 2 - 1), ow, oh),
            True,
        )
    if s == "inside":
        big, small = max(ss, os_) * 1.5, min(ss, os_) * 0.6
        o = box(cx, cy, big, big)
        return box(cx + jitter(0.15 * big), cy + jitter(0.15 * big), small, small), o, True
    if s == "covering":
        big, small = max(ss, os_) * 1.4, min(ss, os_) * 0.7
        o = box(cx + jitter(0.1 * cw), cy + jitter(0.1 * ch), small, small)
        return box(cx, cy, big, big), o, True
    # in front of / behind: similar sizes, partial overlap; depth = draw order
    off = rng.uniform(0.35, 0.55) * (ss + os_) / 2
    ang = rng.uniform(0, 2 * math.pi)
    sb = box(cx - off / 2 * math.cos(ang), cy - off / 2 * math.sin(ang), sw, sh)
    ob = box(cx + off / 2 * math.cos(ang), cy + off / 2 * math.sin(ang), ow, oh)
    return sb, ob, s == "in front of"


def _grid(n: int) -> int:
    """Side of the cell grid that holds ``n`` units (2 up to 4 units, then ⌈√n⌉)."""
    return 2 if n <= 4 else math.ceil(math.sqrt(n))


def _cells(size: int, n: int, rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Disjoint square cells (a 2×2 grid, or ⌈√n⌉² for more than 4 units) in random order."""
    g = _grid(n)
    h = size / g
    cells = [
        (
            c * h,
            r * h,
            (c + 1) * h if c < g - 1 else float(size),
            (r + 1) * h if r < g - 1 else float(size),
        )
        for r in range(g)
        for c in range(g)
    ]
    return [cells[i] for i in rng.permutation(g * g)[:n]]


def sample_scene(
    world: SynthVGWorld, seed: int | tuple[int, ...], image_id: int = 0
) -> tuple[Image.Image, SceneGraph]:
    """Draw one scene.

    Returns:
        ``(image, graph)``; ``graph.relations`` are the *annotated* relations (coarse labels
        with probability ``p_coarse``, missing with probability ``p_missing``), and
        ``graph.extras["fine_relations"]`` the clean true relations. Boxes are the values the
        VG reader yields after the file round trip (the 1024 grid).
    """
    cfg = world.config
    rng = np.random.default_rng(seed)
    size = cfg.image_size
    img = background(rng, size)
    draw = ImageDraw.Draw(img)
    n_units = int(rng.integers(1, cfg.max_units + 1))
    preds = rng.choice(len(world.predicates), size=n_units, p=world.probs)
    # a "far" unit needs the whole canvas: keep at most one, alone
    if any(world.spatial[p] == "far" for p in preds):
        preds = np.array([p for p in preds if world.spatial[p] == "far"][:1])
    cells = (
        [(0.0, 0.0, float(size), float(size))]
        if world.spatial[preds[0]] == "far"
        else _cells(size, len(preds), rng)
    )
    objs: list[tuple[int, np.ndarray, int]] = []  # (class, box, depth)
    fine: list[tuple[int, int, int]] = []
    glyphs = []
    depth = 0
    shrink = 2.0 / _grid(len(cells)) if len(cells) > 1 else 1.0  # objects fit smaller cells
    for p, cell in zip(preds, cells):
        sub_cls = int(rng.choice(cfg.num_classes, p=world.compat_sub[p]))
        obj_cls = int(rng.choice(cfg.num_classes, p=world.compat_obj[p]))
        ss = world.class_sizes[sub_cls] * size * rng.uniform(0.85, 1.15) * shrink
        os_ = world.class_sizes[obj_cls] * size * rng.uniform(0.85, 1.15) * shrink
        sb, ob, sub_last = _place_pair(rng, world.spatial[p], cell, ss, os_)
        si, oi = len(objs), len(objs) + 1
        d_s, d_o = (depth + 1, depth) if sub_last else (depth, depth + 1)
        objs += [(sub_cls, sb, d_s), (obj_cls, ob, d_o)]
        depth += 2
        fine.append((si, oi, int(p) + 1))
        if world.action[p] is not None:
            glyphs.append((si, oi, world.action[p]))
    n_extra = int(
        rng.integers(max(0, cfg.min_objects - len(objs)), max(0, cfg.max_objects - len(objs)) + 1)
    )
    for _ in range(n_extra):
        c = int(rng.integers(cfg.num_classes))
        s = world.class_sizes[c] * size * rng.uniform(0.7, 1.0)
        x, y = rng.uniform(s / 2, size - s / 2, size=2)
        objs.append((c, np.array([x - s / 2, y - s / 2, x + s / 2, y + s / 2]), -1))
    raw = np.stack([o[1] for o in objs])
    raw = np.clip(raw, 0, size - 1)
    raw[:, 2:] = np.maximum(raw[:, 2:], raw[:, :2] + 2)
    raw = np.clip(raw, 0, size - 1)
    # Boxes on the VG 1024 grid, exactly as the reader will return them.
    boxes = decode_boxes(encode_boxes(raw, size, size, 1024)) / 1024 * size
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, size - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, size - 1)
    for k in sorted(range(len(objs)), key=lambda k: objs[k][2]):
        shape, colour = world.classes[objs[k][0]]
        draw_shape(draw, shape, COLOURS[colour], tuple(float(v) for v in raw[k]))  # type: ignore[arg-type]
    width = max(2, size // 64)
    for si, oi, act in glyphs:
        _, gcol, gpat = ACTIONS[act]
        a, b = raw[si], raw[oi]
        p0 = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
        p1 = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        draw_glyph(draw, p0, p1, gcol, gpat, width=width, period=max(6.0, size / 24))
    annotated = []
    for s, o, p in fine:
        if rng.random() < cfg.p_missing:
            continue
        parent = world.parent[p - 1]
        if parent > 0 and rng.random() < cfg.p_coarse:
            annotated.append((s, o, parent))
        else:
            annotated.append((s, o, p))
    labels = np.array([o[0] + 1 for o in objs], dtype=np.int64)
    graph = SceneGraph(
        image_id,
        size,
        size,
        boxes.astype(np.float32),
        labels,
        np.array(annotated, dtype=np.int64).reshape(-1, 3),
        extras={"fine_relations": np.array(fine, dtype=np.int64).reshape(-1, 3)},
    )
    return img, graph
