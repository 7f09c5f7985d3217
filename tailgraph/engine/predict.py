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
  annotations): ``--boxes FILE`` (:mod:`tailgraph.io.box_files`) — the simple form
  ``{"IMAGE_FILE": [{"box": [x1, y1, x2, y2], "label": "CLASS_NAME"}, ...]}``, a COCO-style
  file, or a ground-truth interchange file (``tailgraph-sg/1``) whose ``image_id`` s are the
  images' ids and whose ``object_classes`` are the checkpoint's. Boxes are in pixels of the
  original image and must lie inside it. PredCls uses the labels, SGCls classifies the boxes.

``OUT`` receives ``scene_graphs.<fmt>`` (``--pred-format``: json, json.gz, h5, npz; the JSON
entries also hold ``triplets``: the top ``--triplets`` ``{"subject": {"index", "label", "box"},
"predicate", "object": {...}, "score"}`` ranked by score, written to ``triplets.json`` beside a
binary file) and, per
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError
from tailgraph.io.args import int_in
from tailgraph.viz.drawings import draw_boxes, draw_frame_strip, draw_graph, draw_timeline

__all__ = [
    "main",
    "load_checkpoint_module",
    "list_inputs",
    "predict_folder",
    "top_triplets",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_MAX_SIZE = 592


def load_checkpoint_module(ckpt: str | Path):
    """The :class:`SGGModule` of a checkpoint, built from its own hyperparameters and
    vocabulary, weights loaded, in eval mode. Returns ``(module, image_max_size or None)``."""
    from tailgraph.engine.checkpoints import check_checkpoint
    from tailgraph.engine.module import SGGModule

    ck = check_checkpoint(ckpt, field="--ckpt")
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
    # what predict needs beyond the weights (e.g. a segment model's tracklet settings)
    object.__setattr__(module, "checkpoint_info", info)
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
    from tailgraph.data.images import image_size

    return image_size(path, sample)


def _boxes_by_id(path: str | None, vocab) -> dict[str, Any]:
    """The ``--boxes`` file by image id: simple / COCO entries
    (:class:`tailgraph.io.box_files.ImageBoxes`) or interchange graphs."""
    if path is None:
        return {}
    from tailgraph.io.box_files import read_box_file
    from tailgraph.io.interchange import read_ground_truth

    simple = read_box_file(path, list(vocab.object_classes))
    if simple is not None:
        return dict(simple)
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

    from tailgraph.io.box_files import ImageBoxes, check_inside
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
    if isinstance(g, ImageBoxes):
        if (g.width, g.height) != (None, None) and (g.width, g.height) != (w, h):
            raise DataError(
                f"--boxes gives size {g.width}x{g.height}, the image is {w}x{h}",
                file=str(boxes_file),
                sample=frame_id,
                field="width",
            )
        check_inside(g, w, h, str(boxes_file), frame_id)
        return SceneGraph(
            frame_id,
            w,
            h,
            torch.tensor(g.boxes, dtype=torch.float32).reshape(-1, 4),
            torch.tensor(g.labels, dtype=torch.int64),
            torch.zeros(0, 3, dtype=torch.int64),
            image_path=str(path),
        )
    if (int(g.width), int(g.height)) != (w, h):
        raise DataError(
            f"--boxes gives size {g.width}x{g.height}, the image is {w}x{h}",
            file=str(boxes_file),
            sample=frame_id,
            field="width",
        )
    check_inside(ImageBoxes(g.boxes.tolist(), g.labels.tolist()), w, h, str(boxes_file), frame_id)
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


def named_triplets(pred, vocab, k: int = 20) -> list[dict[str, Any]]:
    """The ``k`` best triplets of one prediction (:func:`top_triplets`), named:
    ``{"subject": {"index", "label", "box"}, "predicate", "object": {...}, "score"}`` with
    class and predicate names and boxes in the image's pixels."""
    names, preds = vocab.object_classes, vocab.predicates

    def obj(i: int) -> dict[str, Any]:
        return {
            "index": i,
            "label": names[int(pred.labels[i])],
            "box": [round(float(v), 2) for v in pred.boxes[i].tolist()],
        }

    return [
        {"subject": obj(s), "predicate": preds[p], "object": obj(o), "score": score}
        for s, o, p, score in top_triplets(pred, bool(vocab.predicate_background), k)
    ]


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
    triplets: int = 20,
    tracklets: str | None = None,
) -> dict[str, Any]:
    """Predict the scene graphs of the images (or videos) in ``input_dir`` into ``out``.

    A segment-level video model (VidVRD-II) writes relation instances instead
    (:mod:`tailgraph.engine.predict_video_relations`; tracklets from ``tracklets`` or linked
    from the per-frame detections in ``boxes``).

    ``top``: triplets drawn per image; ``triplets``: named triplets written per image (in
    ``scene_graphs.json``'s entries, or ``triplets.json`` beside a binary file).
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
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
        raise DataError(f"must be an integer in [1, 100], got {top!r}", field="--top")
    if isinstance(triplets, bool) or not isinstance(triplets, int) or not 1 <= triplets <= 10000:
        raise DataError(f"must be an integer in [1, 10000], got {triplets!r}", field="--triplets")
    module, ck_size = load_checkpoint_module(ckpt)
    vocab = module.vocab
    from tailgraph.modeling.types import SegmentRelationModel

    if isinstance(module.model, SegmentRelationModel):
        from tailgraph.engine.predict_video_relations import predict_video_relations

        known = _boxes_by_id(boxes, vocab)
        return predict_video_relations(
            module,
            ckpt,
            list_inputs(input_dir, video=True),
            out,
            boxes=boxes,
            tracklets=tracklets,
            known=known,
            frame_graph=lambda fid, path, kn: _graph_for(fid, path, kn, False, boxes),
            batch_size=batch_size,
            overwrite=overwrite,
            max_size=max_size,
        )
    if tracklets is not None:
        raise DataError(
            "--tracklets is for segment-level video models (VidVRD-II)", field="--tracklets"
        )
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
        named = [{"triplets": named_triplets(pr, vocab, triplets)} for pr in all_preds]
        target = write_image_predictions(str(tmp / f"scene_graphs.{pred_format}"), all_preds, named)
        if pred_format in ("h5", "npz"):  # the binary file holds scores only
            from tailgraph.io.outputs import write_json_atomic

            write_json_atomic(
                tmp / "triplets.json",
                {"images": [{"image_id": pr.image_id, **n} for pr, n in zip(all_preds, named)]},
            )
            files.insert(0, tmp / "triplets.json")
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
        help="the images' boxes (PredCls / SGCls, and SGDet with the synthetic detector): "
        "{IMAGE_FILE: [{box: [x1, y1, x2, y2], label: CLASS_NAME}, ...]}, a COCO-style file "
        "(images / annotations / categories) or a ground-truth interchange file",
    )
    p.add_argument(
        "--tracklets",
        default=None,
        help="VidVRD-II: the videos' tracklets in VidVRD's trajectory layout ({VIDEO_ID: "
        "{trajectories: [[{tid, bbox: {xmin, ymin, xmax, ymax}}, ...] per frame]}}); or give "
        "per-frame detections with --boxes, linked into tracklets by an IoU tracker",
    )
    p.add_argument("--pred-format", default="json", help="json, json.gz, h5 or npz")
    p.add_argument("--top", type=int_in(1, 100), default=5, help="triplets drawn per image (1-100)")
    p.add_argument(
        "--triplets",
        type=int_in(1, 10000),
        default=20,
        help="named triplets written per image, ranked by score (1-10000)",
    )
    p.add_argument(
        "--max-size",
        type=int_in(32, 8192),
        default=None,
        help="longer image side fed to the network, 32-8192 (default: the checkpoint's)",
    )
    p.add_argument(
        "--batch-size", type=int_in(1, 1024), default=8, help="images per forward pass (1-1024)"
    )
    p.add_argument("--no-draw", action="store_true", help="write the scene graphs only")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    a = p.parse_args(argv)
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
        triplets=a.triplets,
        tracklets=a.tracklets,
    )
    if "relations" in summary:  # a segment-level video model
        print(
            f"predict: {summary['videos']} videos, {summary['images']} frames, "
            f"{summary['tracklets']} tracklets in {summary['seconds']:.1f} s -> {a.out} "
            f"(relations.json: {summary['relations']} relation instances; tracklets.json)",
            file=sys.stdout,
        )
        return 0
    kind = f"{summary['videos']} videos, " if summary["videos"] else ""
    print(
        f"predict: {kind}{summary['images']} images in {summary['seconds']:.1f} s "
        f"({summary['images_per_s']:.1f} images/s) -> {a.out} "
        f"(scene_graphs.{a.pred_format} with the top {a.triplets} named triplets per image"
        f"{' in triplets.json' if a.pred_format in ('h5', 'npz') else ''}, "
        f"{sum(f.endswith('.png') for f in summary['files'])} pictures)",
        file=sys.stdout,
    )
    return 0
