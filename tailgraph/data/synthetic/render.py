"""Drawing primitives of the synthetic benchmarks: textured backgrounds, shapes, glyphs.

Everything is drawn with PIL on small canvases; each function takes an explicit
``numpy.random.Generator`` so a scene is a pure function of its seed.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "SHAPES",
    "COLOURS",
    "GLYPH_COLOURS",
    "GLYPH_PATTERNS",
    "background",
    "draw_shape",
    "draw_glyph",
    "draw_ring",
    "draw_end_mark",
    "draw_gaze_ray",
    "GAZE_COLOUR",
]

SHAPES = (
    "circle",
    "square",
    "triangle",
    "diamond",
    "star",
    "cross",
    "ring",
    "hexagon",
    "bar",
    "arrow",
)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "orange": (240, 140, 20),
    "purple": (140, 50, 170),
    "cyan": (30, 190, 200),
}
# Interaction glyphs use colours no object has, so a glyph is never mistaken for an object.
GLYPH_COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "yellow": (250, 240, 30),
    "pink": (255, 120, 200),
}
GLYPH_PATTERNS = ("solid", "dashed", "zigzag", "dotted")
# synth-ag's gaze (the head mark and its ray): a colour neither an object nor a glyph has.
GAZE_COLOUR = (160, 255, 0)


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """Low-frequency coloured noise (a 5×5 random grid upsampled) plus mild pixel noise."""
    grid = rng.integers(70, 170, size=(5, 5, 3), dtype=np.uint8)
    img = Image.fromarray(grid, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.int16) + rng.integers(
        -12, 13, size=(size, size, 1), dtype=np.int16
    )
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _polygon(shape: str, x1: float, y1: float, x2: float, y2: float) -> list[tuple[float, float]]:
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    if shape == "triangle":
        return [(cx, y1), (x2, y2), (x1, y2)]
    if shape == "diamond":
        return [(cx, y1), (x2, cy), (cx, y2), (x1, cy)]
    if shape == "hexagon":
        return [
            (x1 + w / 4, y1),
            (x2 - w / 4, y1),
            (x2, cy),
            (x2 - w / 4, y2),
            (x1 + w / 4, y2),
            (x1, cy),
        ]
    if shape == "star":
        pts = []
        for i in range(10):
            r = 0.5 if i % 2 == 0 else 0.22
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + r * w * math.cos(a), cy + r * h * math.sin(a)))
        return pts
    if shape == "arrow":
        return [
            (x1, cy - h / 6),
            (cx, cy - h / 6),
            (cx, y1),
            (x2, cy),
            (cx, y2),
            (cx, cy + h / 6),
            (x1, cy + h / 6),
        ]
    raise ValueError(shape)


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    colour: tuple[int, int, int],
    box: tuple[float, float, float, float],
) -> None:
    """Draw ``shape`` filling ``box`` (x1, y1, x2, y2 in pixels) with a dark outline."""
    x1, y1, x2, y2 = box
    outline = tuple(max(0, c - 90) for c in colour)
    w, h = x2 - x1, y2 - y1
    if shape == "circle":
        draw.ellipse(box, fill=colour, outline=outline)
    elif shape == "square":
        draw.rectangle(box, fill=colour, outline=outline)
    elif shape == "ring":
        t = max(2, int(min(w, h) / 5))
        draw.ellipse(box, outline=colour, width=t)
    elif shape == "cross":
        t = max(2.0, min(w, h) / 3.5)  # type: ignore[assignment]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        draw.rectangle((cx - t / 2, y1, cx + t / 2, y2), fill=colour)
        draw.rectangle((x1, cy - t / 2, x2, cy + t / 2), fill=colour)
    elif shape == "bar":
        draw.rectangle(box, fill=colour, outline=outline)
        draw.line((x1, (y1 + y2) / 2, x2, (y1 + y2) / 2), fill=outline, width=1)
    else:
        draw.polygon(_polygon(shape, x1, y1, x2, y2), fill=colour, outline=outline)


def _segments(
    p0: tuple[float, float], p1: tuple[float, float], pattern: str, period: float
) -> list[list[tuple[float, float]]]:
    """Polylines of a patterned line from ``p0`` to ``p1``."""
    (xa, ya), (xb, yb) = p0, p1
    length = math.hypot(xb - xa, yb - ya)
    if length < 1e-6:
        return []
    ux, uy = (xb - xa) / length, (yb - ya) / length
    if pattern == "solid":
        return [[p0, p1]]
    if pattern == "zigzag":
        n = max(2, int(length / (period / 2)))
        pts = []
        for i in range(n + 1):
            t = i / n
            off = (period / 3) * (1 if i % 2 else -1) if 0 < i < n else 0.0
            pts.append((xa + ux * length * t - uy * off, ya + uy * length * t + ux * off))
        return [pts]
    on = period * (0.6 if pattern == "dashed" else 0.2)
    segs, s = [], 0.0
    while s < length:
        e = min(length, s + on)
        segs.append([(xa + ux * s, ya + uy * s), (xa + ux * e, ya + uy * e)])
        s += period
    return segs


def draw_glyph(
    draw: ImageDraw.ImageDraw,
    p0: tuple[float, float],
    p1: tuple[float, float],
    colour: str,
    pattern: str,
    width: int = 2,
    period: float = 8.0,
) -> None:
    """An interaction glyph from subject point ``p0`` to object point ``p1``: a patterned line
    in a glyph colour, with a small filled disc at the subject end (its direction)."""
    rgb = GLYPH_COLOURS[colour]
    for seg in _segments(p0, p1, pattern, period):
        if pattern == "dotted":
            (xa, ya), _ = seg
            r = width
            draw.ellipse((xa - r, ya - r, xa + r, ya + r), fill=rgb)
        else:
            draw.line(seg, fill=rgb, width=width)
    r = width + 1.5  # type: ignore[assignment]
    draw.ellipse((p0[0] - r, p0[1] - r, p0[0] + r, p0[1] + r), fill=rgb)


def draw_ring(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    colour: str,
    inset: int = 0,
    width: int = 2,
) -> None:
    """A glyph's end mark: the border of ``box`` (shrunk by ``inset`` px) outlined ``width`` px
    deep in the glyph colour, so the object a glyph reaches carries the colour in its own box."""
    x1, y1, x2, y2 = box
    pad = max(0.0, min(float(inset), (x2 - x1) / 2 - 1, (y2 - y1) / 2 - 1))  # tiny boxes
    if x2 - x1 < 1 or y2 - y1 < 1:
        return
    draw.rectangle(
        (x1 + pad, y1 + pad, x2 - pad, y2 - pad), outline=GLYPH_COLOURS[colour], width=width
    )


def draw_end_mark(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    colour: str,
    pattern: str,
    inset: int = 0,
    width: int = 2,
) -> None:
    """A glyph's end mark on the object it reaches: the box border in the glyph colour
    (:func:`draw_ring`) plus, inside it, a mark of the glyph's pattern — ``solid`` none,
    ``dashed`` a centre disc, ``zigzag`` the two diagonals, ``dotted`` a horizontal band — so
    colour *and* pattern are in the object's own box at a size a stride-8 feature map keeps
    (a 2-px line pattern is not)."""
    x1, y1, x2, y2 = box
    if x2 - x1 < 1 or y2 - y1 < 1:
        return
    draw_ring(draw, box, colour, inset=inset, width=width)
    pad = max(0.0, min(float(inset), (x2 - x1) / 2 - 1, (y2 - y1) / 2 - 1))
    x1, y1, x2, y2 = x1 + pad, y1 + pad, x2 - pad, y2 - pad
    rgb = GLYPH_COLOURS[colour]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = min(x2 - x1, y2 - y1)
    if pattern == "dashed":
        r = max(float(width), 0.22 * side)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=rgb)
    elif pattern == "zigzag":
        draw.line((x1, y1, x2, y2), fill=rgb, width=width)
        draw.line((x1, y2, x2, y1), fill=rgb, width=width)
    elif pattern == "dotted":
        hb = max(width / 2, 0.11 * (y2 - y1))
        draw.rectangle((x1, cy - hb, x2, cy + hb), fill=rgb)
    elif pattern != "solid":
        raise ValueError(f"unknown glyph pattern {pattern!r}")


def draw_gaze_ray(
    draw: ImageDraw.ImageDraw,
    head: tuple[float, float],
    box: tuple[float, float, float, float],
    width: int = 1,
) -> None:
    """A thin ray in :data:`GAZE_COLOUR` from ``head`` to where the line towards ``box``'s
    centre meets its border (the looked-at object's end of the gaze)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    dx, dy = cx - head[0], cy - head[1]
    hw, hh = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    s = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf, 1.0)
    draw.line((head[0], head[1], cx - dx * s, cy - dy * s), fill=GAZE_COLOUR, width=width)


def draw_person(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    gaze: tuple[float, float] | None,
) -> None:
    """A stick figure filling ``box`` with a head whose gaze mark (a short bright line from the
    head) points towards ``gaze`` (a point), or no mark when ``gaze`` is ``None``."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    r = max(2.0, min(w, h) * 0.16)
    hy = y1 + r
    body = (40, 40, 40)
    t = max(2, int(w / 10))
    draw.ellipse((cx - r, hy - r, cx + r, hy + r), fill=(235, 200, 170), outline=body)
    draw.line((cx, hy + r, cx, y1 + 0.65 * h), fill=body, width=t)  # torso
    draw.line((x1, y1 + 0.4 * h, x2, y1 + 0.4 * h), fill=body, width=t)  # arms
    draw.line((cx, y1 + 0.65 * h, x1 + 0.15 * w, y2), fill=body, width=t)  # legs
    draw.line((cx, y1 + 0.65 * h, x2 - 0.15 * w, y2), fill=body, width=t)
    if gaze is not None:
        dx, dy = gaze[0] - cx, gaze[1] - hy
        n = math.hypot(dx, dy) or 1.0
        draw.line(
            (cx, hy, cx + dx / n * 2.2 * r, hy + dy / n * 2.2 * r),
            fill=GAZE_COLOUR,
            width=max(2, t),
        )
