"""Scene-graph drawings of predictions: boxes and triplets on an image, the graph (networkx
layout), and, for videos, a strip of frames and a timeline of the top triplets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["draw_boxes", "draw_graph", "draw_frame_strip", "draw_timeline"]


_COLORS = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (128, 128, 0),
    (0, 128, 128),
    (170, 110, 40),
]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _open_rgb(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def _boxes_on(img, boxes, labels, names, objects: Sequence[int], width: int = 2):
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    font = _font(max(10, img.size[1] // 40))
    for n, i in enumerate(objects):
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        c = _COLORS[n % len(_COLORS)]
        draw.rectangle((x1, y1, x2, y2), outline=c, width=width)
        tag = f"{i}:{names[int(labels[i])]}"
        tb = draw.textbbox((x1, y1), tag, font=font)
        draw.rectangle((tb[0], tb[1], tb[2] + 2, tb[3] + 1), fill=c)
        draw.text((x1 + 1, y1), tag, fill=(255, 255, 255), font=font)
    return img


def draw_boxes(image_path: Path, pred, triplets, vocab, out: Path) -> Path:
    """The image with the boxes of its top triplets (numbered ``index:class``) and the triplets
    listed under it."""
    from PIL import Image, ImageDraw

    img = _open_rgb(image_path)
    names, preds = vocab.object_classes, vocab.predicates
    objects = list(dict.fromkeys([t[0] for t in triplets] + [t[1] for t in triplets]))
    scale = 1.0
    if max(img.size) < 480:  # small images are enlarged so labels stay legible
        scale = 480 / max(img.size)
        img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)))
    boxes = pred.boxes.numpy() * scale
    _boxes_on(img, boxes, pred.labels.numpy(), names, objects)
    font = _font(14)
    lines = [
        f"{s}:{names[int(pred.labels[s])]}  -[{preds[p]}]->  {o}:{names[int(pred.labels[o])]}"
        f"   ({score:.3g})"
        for s, o, p, score in triplets
    ] or ["(no relation scored)"]
    pad = 20 * len(lines) + 12
    canvas = Image.new("RGB", (max(img.size[0], 420), img.size[1] + pad), (255, 255, 255))
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for n, line in enumerate(lines):
        draw.text((6, img.size[1] + 6 + 20 * n), line, fill=(20, 20, 20), font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, format="PNG", compress_level=1)  # fast: drawings are for eyes
    return out


def draw_graph(pred, triplets, vocab, out: Path, title: str = "") -> Path:
    """The scene graph of the top triplets, laid out by ``networkx`` (circular up to 8 objects,
    else a seeded spring layout):
    objects as nodes, predicates as arrows with their label (and score) on the arrow itself;
    several relations between the same two objects bend apart, each label on its own curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx
    import numpy as np

    names, preds = vocab.object_classes, vocab.predicates
    objects = list(dict.fromkeys([t[0] for t in triplets] + [t[1] for t in triplets]))
    g = nx.MultiDiGraph()
    g.add_nodes_from(objects)
    for s, o, p, score in triplets:
        g.add_edge(s, o, label=f"{preds[p]}\n{score:.3g}", score=score)
    if len(objects) <= 8:  # few nodes: evenly spaced, related nodes placed apart
        pos = nx.circular_layout(g)
    else:
        pos = nx.spring_layout(g, seed=0, k=3.0 / np.sqrt(len(objects)), iterations=300)
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    node_size = 1800
    colours = [np.asarray(_COLORS[n % len(_COLORS)]) / 255 for n in range(len(objects))]
    nx.draw_networkx_nodes(
        g, pos, nodelist=objects, node_size=node_size, node_color=colours, alpha=0.9, ax=ax
    )
    nx.draw_networkx_labels(
        g,
        pos,
        labels={o: f"{o}\n{names[int(pred.labels[o])]}".replace(" ", "\n", 1) for o in objects},
        font_size=7,
        font_color="white",
        font_weight="bold",
        ax=ax,
    )
    # parallel edges (same two nodes, either direction) get distinct bends
    seen: dict[frozenset, int] = {}
    for u, v, k, data in g.edges(keys=True, data=True):
        n = seen.get(frozenset((u, v)), 0)
        seen[frozenset((u, v))] = n + 1
        style = f"arc3,rad={0.12 + 0.18 * n}"
        nx.draw_networkx_edges(
            g,
            pos,
            edgelist=[(u, v, k)],
            width=1 + 2 * float(data["score"]),
            edge_color="#555",
            arrowstyle="-|>",
            arrowsize=14,
            node_size=node_size,
            connectionstyle=style,
            ax=ax,
        )
        nx.draw_networkx_edge_labels(
            g,
            pos,
            edge_labels={(u, v, k): data["label"]},
            font_size=8,
            bbox=dict(boxstyle="round,pad=0.2", fc="#fff8dc", ec="#cca", lw=0.5),
            node_size=node_size,
            connectionstyle=style,
            rotate=False,
            ax=ax,
        )
    if not triplets:
        ax.text(0.5, 0.5, "no relation scored", ha="center", va="center", transform=ax.transAxes)
    ax.margins(0.18)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.94)
    fig.savefig(out, dpi=100, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return out


def draw_frame_strip(frames: list[tuple[Path, Any, list]], vocab, out: Path, n: int = 8) -> Path:
    """Up to ``n`` evenly spaced frames side by side (160 px high), each with the boxes of its
    top triplets and its frame name."""
    import numpy as np
    from PIL import Image, ImageDraw

    pick = np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int))
    tiles = []
    for i in pick:
        path, pred, triplets = frames[i]
        img = _open_rgb(path)
        s = 160 / img.size[1]
        img = img.resize((max(1, round(img.size[0] * s)), 160))
        objects = list(dict.fromkeys([t[0] for t in triplets] + [t[1] for t in triplets]))
        _boxes_on(
            img, pred.boxes.numpy() * s, pred.labels.numpy(), vocab.object_classes, objects, width=1
        )
        ImageDraw.Draw(img).text((3, 146), path.stem, fill=(255, 255, 0), font=_font(11))
        tiles.append(img)
    strip = Image.new(
        "RGB", (sum(t.size[0] for t in tiles) + 4 * (len(tiles) - 1), 160), (255, 255, 255)
    )
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.size[0] + 4
    out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(out, format="PNG", compress_level=1)
    return out


def draw_timeline(frames: list[tuple[Path, Any, list]], vocab, out: Path, rows: int = 12) -> Path:
    """The video's relation timeline: its ``rows`` best triplets (subject class, predicate,
    object class; by their best score over the frames) against the frame index, coloured by
    the triplet's score in each frame where it is among the frame's top triplets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names, preds = vocab.object_classes, vocab.predicates
    table: dict[tuple[str, str, str], dict[int, float]] = {}
    for f, (_, pred, triplets) in enumerate(frames):
        for s, o, p, score in triplets:
            key = (names[int(pred.labels[s])], preds[p], names[int(pred.labels[o])])
            cell = table.setdefault(key, {})
            cell[f] = max(cell.get(f, 0.0), score)
    best = sorted(table, key=lambda k: -max(table[k].values()))[:rows]
    grid = np.full((max(len(best), 1), len(frames)), np.nan)
    for r, key in enumerate(best):
        for f, v in table[key].items():
            grid[r, f] = v
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(frames) + 3), 0.35 * len(best) + 1.8))
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, interpolation="nearest")
    ax.set_yticks(range(len(best)))
    ax.set_yticklabels([" ".join(k) for k in best], fontsize=8)
    ax.set_xlabel("frame")
    ax.set_title("relation timeline (top triplets per frame; colour: score)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=100, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return out
