"""``tailgraph predict --ckpt CKPT --input DIR --out OUT``: scene graphs of the user's own
images or video frames, as interchange JSON and as pictures.

The checkpoint alone suffices: it carries the model's recipe (hyperparameters), its weights,
the vocabulary and the image size the network saw. ``DIR`` holds JPEG / PNG images of any
size (searched recursively; an image's id is its path below ``DIR`` without the suffix). For a
video model (the Action Genome protocol), every folder of frames is one video, its frames in
name order (``DIR`` itself when it holds the frames).

Where the boxes come from:

* SGDet with a pixel detector (Faster R-CNN with the user's weights, named by the recipe):
  the detector finds them;
* PredCls / SGCls, and SGDet with the synthetic detector (which simulates detection from
  annotations): ``--boxes FILE``, a ground-truth interchange file
  (``tailgraph-sg/1``) whose ``image_id`` s are the images' ids; its ``object_classes`` must be
  the checkpoint's. PredCls uses its labels, SGCls classifies the boxes itself.

``OUT`` receives ``scene_graphs.<fmt>`` (``--pred-format``: json, json.gz, h5, npz) and, per
image, ``<id>.boxes.png`` (the boxes of the top triplets, numbered, and the triplets listed)
and ``<id>.graph.png`` (the graph: objects as nodes, predicates as labelled edges); per video
``<video>.strip.png`` (evenly spaced frames with their boxes) and ``<video>.timeline.png``
(the video's top triplets against the frame index). ``OUT`` is built under a temporary name
and renamed when complete; an existing non-empty ``OUT`` is replaced only with
``--overwrite``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError

__all__ = [
    "main",
    "load_checkpoint_module",
    "list_inputs",
    "predict_folder",
    "top_triplets",
    "draw_boxes",
    "draw_graph",
    "draw_frame_strip",
    "draw_timeline",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_MAX_SIZE = 592


def load_checkpoint_module(ckpt: str | Path):
    """The :class:`SGGModule` of a checkpoint, built from its own hyperparameters and
    vocabulary, weights loaded, in eval mode. Returns ``(module, image_max_size or None)``."""
    import torch

    from tailgraph.engine.checkpoints import check_checkpoint
    from tailgraph.engine.module import SGGModule

    check_checkpoint(ckpt, field="--ckpt")
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    where = {"file": str(ckpt), "field": "hyper_parameters"}
    params = inspect.signature(SGGModule.__init__).parameters
    hp = {k: v for k, v in ck["hyper_parameters"].items() if k in params and k != "self"}
    info = ck.get("tailgraph") or {}
    if not info.get("vocab"):
        raise DataError(
            "the checkpoint carries no vocabulary (not written by tailgraph fit)",
            file=str(ckpt),
            field="tailgraph.vocab",
        )
    try:
        module = SGGModule(**hp)
        module.on_load_checkpoint(ck)
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"cannot rebuild the model: {exc}", **where) from None
    result = module.load_state_dict(ck["state_dict"], strict=False)
    # a method may create state during training (prototypes, Fisher terms) that inference
    # does not use; the model's own parameters must all be there
    missing = [k for k in result.missing_keys if not k.startswith("method.")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith("method.")]
    if missing or unexpected:
        raise DataError(
            f"weights do not fit the recipe (missing {missing[:3]}, unexpected {unexpected[:3]})",
            file=str(ckpt),
            field="state_dict",
        )
    module.eval()
    size = info.get("image_max_size")
    return module, (int(size) if isinstance(size, int) and size > 0 else None)


@dataclass
class InputItem:
    """One image, or one video's frames (``frames``: ids and paths in order)."""

    item_id: str
    frames: list[tuple[str, Path]]


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_inputs(root: str | Path, video: bool) -> list[InputItem]:
    """The images under ``root`` (recursively; id = relative path without suffix), or for a
    video model its videos: every folder that holds frames (``root`` itself included)."""
    root = Path(root)
    if not root.exists():
        raise DataError("input folder not found", file=str(root), field="--input")
    if not root.is_dir():
        raise DataError(
            "expected a folder of images or of video frames", file=str(root), field="--input"
        )
    folders = [root] + sorted(p for p in root.rglob("*") if p.is_dir())
    items: list[InputItem] = []
    for folder in folders:
        files = _image_files(folder)
        if not files:
            continue
        rel = folder.relative_to(root).as_posix()
        if video:
            vid = rel if rel != "." else root.name
            frames = [(f"{vid}/{f.stem}", f) for f in files]
            items.append(InputItem(vid, frames))
        else:
            for f in files:
                iid = f.relative_to(root).with_suffix("").as_posix()
                items.append(InputItem(iid, [(iid, f)]))
    if not items:
        raise DataError(
            f"no image ({', '.join(IMAGE_SUFFIXES)}) found", file=str(root), field="--input"
        )
    return items


def _image_size(path: Path, sample: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"cannot decode image ({exc})", file=str(path), sample=sample, field="image"
        ) from None


def _boxes_by_id(path: str | None, vocab) -> dict[str, Any]:
    if path is None:
        return {}
    from tailgraph.io.interchange import read_ground_truth

    graphs, gvocab, _ = read_ground_truth(path)
    if list(gvocab.object_classes) != list(vocab.object_classes):
        raise DataError(
            "its object_classes are not the checkpoint's", file=str(path), field="object_classes"
        )
    out: dict[str, Any] = {}
    for g in graphs:
        key = str(g.image_id)
        if key in out:
            raise DataError("duplicate image", file=str(path), sample=key, field="image_id")
        out[key] = g
    return out


def _graph_for(frame_id: str, path: Path, boxes: dict, needs_boxes: bool, boxes_file):
    import torch

    from tailgraph.structures import SceneGraph

    w, h = _image_size(path, frame_id)
    g = boxes.get(frame_id)
    if g is None:
        if needs_boxes:
            raise DataError(
                "no boxes for this image in --boxes",
                file=str(boxes_file),
                sample=frame_id,
                field="image_id",
            )
        g = SceneGraph(
            frame_id,
            w,
            h,
            torch.zeros(0, 4),
            torch.zeros(0, dtype=torch.int64),
            torch.zeros(0, 3, dtype=torch.int64),
            image_path=str(path),
        )
        return g
    if (int(g.width), int(g.height)) != (w, h):
        raise DataError(
            f"--boxes gives size {g.width}x{g.height}, the image is {w}x{h}",
            file=str(boxes_file),
            sample=frame_id,
            field="width",
        )
    return SceneGraph(
        frame_id,
        w,
        h,
        g.boxes,
        g.labels,
        g.relations,
        image_path=str(path),
        track_ids=g.track_ids,
        extras=dict(g.extras),
    )


def top_triplets(pred, num_predicates_bg: bool, k: int = 5) -> list[tuple[int, int, int, float]]:
    """The ``k`` best ``(subject, object, predicate, score)`` of one prediction: per pair its
    best predicate (foreground columns where the protocol has a background), scored
    predicate × subject × object score, as the VG protocol ranks them."""
    import numpy as np

    scores = pred.predicate_scores.numpy()
    if scores.shape[0] == 0:
        return []
    off = 1 if num_predicates_bg else 0
    fg = scores[:, off:]
    best = fg.argmax(1)
    ls = pred.label_scores.numpy()
    pairs = pred.pairs.numpy()
    s = fg[np.arange(len(fg)), best] * ls[pairs[:, 0]] * ls[pairs[:, 1]]
    order = np.argsort(-s, kind="stable")[:k]
    return [(int(pairs[i, 0]), int(pairs[i, 1]), int(best[i]) + off, float(s[i])) for i in order]


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
        f"   ({score:.3f})"
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
    """The scene graph of the top triplets: objects as nodes on a circle, predicates as
    labelled arrows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names, preds = vocab.object_classes, vocab.predicates
    objects = list(dict.fromkeys([t[0] for t in triplets] + [t[1] for t in triplets]))
    fig, ax = plt.subplots(figsize=(6, 6))
    n = max(len(objects), 1)
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False) + np.pi / 2
    pos = {o: (np.cos(a), np.sin(a)) for o, a in zip(objects, angle)}
    for k, (s, o, p, score) in enumerate(triplets):
        (x1, y1), (x2, y2) = pos[s], pos[o]
        rad = 0.15 * (1 + k % 3)
        ax.annotate(
            "",
            xy=(x2, y2),
            xytext=(x1, y1),
            arrowprops=dict(
                arrowstyle="-|>",
                color="#555",
                lw=1 + 2 * score,
                shrinkA=22,
                shrinkB=22,
                connectionstyle=f"arc3,rad={rad}",
            ),
        )
        mx, my = (x1 + x2) / 2 - rad * (y2 - y1) / 2, (y1 + y2) / 2 + rad * (x2 - x1) / 2
        ax.text(
            mx,
            my,
            preds[p],
            fontsize=9,
            ha="center",
            va="center",
            bbox=dict(boxstyle="round,pad=0.2", fc="#fff8dc", ec="#cca", lw=0.5),
        )
    for n_, o in enumerate(objects):
        c = np.asarray(_COLORS[n_ % len(_COLORS)]) / 255
        ax.scatter(*pos[o], s=2300, color=c, alpha=0.9, zorder=3)
        label = names[int(pred.labels[o])].replace(" ", "\n", 1)
        ax.text(
            *pos[o],
            f"{o}\n{label}",
            ha="center",
            va="center",
            fontsize=7,
            color="white",
            zorder=4,
            fontweight="bold",
        )
    if not triplets:
        ax.text(0, 0, "no relation scored", ha="center", va="center")
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
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


def predict_folder(
    ckpt: str | Path,
    input_dir: str | Path,
    out: str | Path,
    boxes: str | None = None,
    pred_format: str = "json",
    top: int = 5,
    max_size: int | None = None,
    batch_size: int = 8,
    overwrite: bool = False,
    draw: bool = True,
) -> dict[str, Any]:
    """Predict the scene graphs of the images (or videos) in ``input_dir`` into ``out``.

    Returns a summary: ``images``, ``videos``, ``seconds``, ``images_per_s`` and ``files``.
    """
    import torch

    from tailgraph.data.images import load_image, pad_images
    from tailgraph.io.outputs import build_folder_atomically
    from tailgraph.io.predictions import PRED_FORMATS, write_image_predictions
    from tailgraph.modeling.detector import SyntheticDetector
    from tailgraph.structures import GraphBatch, Task

    if pred_format not in PRED_FORMATS:
        raise DataError(
            f"unknown format {pred_format!r}; expected one of {', '.join(PRED_FORMATS)}",
            field="--pred-format",
        )
    if top <= 0:
        raise DataError(f"must be positive, got {top}", field="--top")
    module, ck_size = load_checkpoint_module(ckpt)
    vocab = module.vocab
    if module.protocol.folder_input is None:
        raise DataError(
            f"predicting from image folders is for image and frame models; this checkpoint's "
            f"protocol is {module.protocol_name!r} (use tailgraph predict --config RECIPE)",
            file=str(ckpt),
            field="protocol",
        )
    video = module.protocol.folder_input == "videos"
    detector = module.model.detector if module.task is Task.SGDET else None
    needs_boxes = module.task is not Task.SGDET or isinstance(detector, SyntheticDetector)
    if needs_boxes and boxes is None:
        why = (
            "the synthetic detector simulates detection from annotations"
            if module.task is Task.SGDET
            else f"a {module.task.value} model classifies given boxes"
        )
        raise DataError(
            f"pass --boxes FILE (a ground-truth interchange file): {why}", field="--boxes"
        )
    known = _boxes_by_id(boxes, vocab)
    items = list_inputs(input_dir, video)
    pixels = module.specs.get("features") is not None or (
        detector is not None and not isinstance(detector, SyntheticDetector)
    )
    size = int(max_size or ck_size or DEFAULT_MAX_SIZE)
    bg = bool(vocab.predicate_background)

    def run(graph_list, paths):
        imgs, scales = [], []
        if pixels:
            for g, p in zip(graph_list, paths):
                t, s = load_image(str(p), size, sample=g.image_id)
                imgs.append(t)
                scales.append(s)
            batch = GraphBatch(graph_list, pad_images(imgs), torch.tensor(scales))
        else:
            batch = GraphBatch(graph_list)
        with torch.no_grad():
            b = module.eval_batch(batch)
            return module.model.to_predictions(b, module.model(b))

    def build(tmp: Path) -> dict[str, Any]:
        from tailgraph.progress import progress

        t0 = time.perf_counter()
        all_preds = []
        files: list[Path] = []
        groups = (
            [[it] for it in items]
            if video
            else [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        )
        n_frames = sum(len(it.frames) for it in items)
        with progress(total=n_frames, desc="predict", unit="img") as bar:
            for group in groups:
                frames = [fr for it in group for fr in it.frames]
                graphs = [_graph_for(fid, p, known, needs_boxes, boxes) for fid, p in frames]
                preds = run(graphs, [p for _, p in frames])
                all_preds.extend(preds)
                bar.update(len(frames))
                if not draw:
                    continue
                drawn = [(p, pr, top_triplets(pr, bg, top)) for (_, p), pr in zip(frames, preds)]
                if video:
                    vid = group[0].item_id
                    files.append(draw_frame_strip(drawn, vocab, tmp / f"{vid}.strip.png"))
                    files.append(draw_timeline(drawn, vocab, tmp / f"{vid}.timeline.png"))
                else:
                    for (fid, path), (_, pr, trip) in zip(frames, drawn):
                        files.append(draw_boxes(path, pr, trip, vocab, tmp / f"{fid}.boxes.png"))
                        files.append(
                            draw_graph(pr, trip, vocab, tmp / f"{fid}.graph.png", title=fid)
                        )
        target = write_image_predictions(str(tmp / f"scene_graphs.{pred_format}"), all_preds)
        seconds = time.perf_counter() - t0
        return {
            "images": n_frames,
            "videos": len(items) if video else 0,
            "seconds": seconds,
            "images_per_s": n_frames / seconds if seconds > 0 else float("inf"),
            "files": [Path(target).name] + [f.relative_to(tmp).as_posix() for f in files],
        }

    return build_folder_atomically(out, build, overwrite=overwrite)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph predict",
        description="Scene graphs of a folder of images or video frames, from a checkpoint "
        "alone: interchange JSON plus drawings (boxes and top triplets, the graph; for video a "
        "frame strip and a relation timeline). With --config RECIPE --ckpt_path CKPT instead, "
        "predicts the recipe's test split (LightningCLI; its options: tailgraph predict "
        "--config RECIPE --help).",
    )
    p.add_argument("--ckpt", required=True, help="a checkpoint written by tailgraph fit")
    p.add_argument("--input", required=True, help="folder of JPEG / PNG images or video frames")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--boxes",
        default=None,
        help="ground-truth interchange file with the images' boxes (PredCls / SGCls, "
        "and SGDet with the synthetic detector)",
    )
    p.add_argument("--pred-format", default="json", help="json, json.gz, h5 or npz")
    p.add_argument("--top", type=int, default=5, help="triplets drawn per image")
    p.add_argument(
        "--max-size",
        type=int,
        default=None,
        help="longer image side fed to the network (default: the checkpoint's)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    p.add_argument("--no-draw", action="store_true", help="write the scene graphs only")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    a = p.parse_args(argv)
    if a.max_size is not None and a.max_size <= 0:
        p.error("--max-size must be positive")
    if a.batch_size <= 0:
        p.error("--batch-size must be positive")
    from tailgraph.engine.quiet import quiet_libraries

    quiet_libraries()
    summary = predict_folder(
        a.ckpt,
        a.input,
        a.out,
        boxes=a.boxes,
        pred_format=a.pred_format,
        top=a.top,
        max_size=a.max_size,
        batch_size=a.batch_size,
        overwrite=a.overwrite,
        draw=not a.no_draw,
    )
    kind = f"{summary['videos']} videos, " if summary["videos"] else ""
    print(
        f"predict: {kind}{summary['images']} images in {summary['seconds']:.1f} s "
        f"({summary['images_per_s']:.1f} images/s) -> {a.out} "
        f"(scene_graphs.{a.pred_format} + {len(summary['files']) - 1} pictures)",
        file=sys.stdout,
    )
    return 0
