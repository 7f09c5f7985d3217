"""``tailgraph convert``: prediction and ground-truth files between JSON and the binary format,
and the ground truth of a data set split.

    tailgraph convert IN OUT [--overwrite]
    tailgraph convert --format vg|ag|vidvrd|oi --root DIR [--split test] OUT [--overwrite]

The formats are chosen by extension (``.json``, ``.json.gz``, ``.h5`` / ``.hdf5``, ``.npz``);
the content kind (image predictions, image ground truth, VidVRD results, VidVRD ground truth)
is read from IN. IN is validated as ``tailgraph evaluate`` validates it. With ``--root`` the
split of the data set on disk (read as ``tailgraph evaluate --gt DIR --format K`` reads it:
default filters, layout only) is written as interchange ground truth — frames for Action
Genome, video-level relation instances for VidVRD. OUT is written to a temporary name and
renamed, and an existing OUT is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.errors import DataError
from tailgraph.io.binformat import (
    BinaryReader,
    ground_truth_arrays,
    is_binary,
    predictions_arrays,
    vidvrd_arrays,
    write_binary,
)

__all__ = ["main", "convert", "dataset_ground_truth"]

SUFFIXES = (".json", ".json.gz", ".h5", ".hdf5", ".npz")


def _check_name(path: str, field: str) -> None:
    if not path.lower().endswith(SUFFIXES):
        raise DataError(
            f"unknown extension; expected one of {', '.join(SUFFIXES)}", file=path, field=field
        )


def _read_json_kind(path: str) -> tuple[str, Any, dict]:
    """``(kind, content, meta)`` of a JSON interchange / VidVRD results file."""
    from tailgraph.io.interchange import FORMAT, read_ground_truth, read_json, read_predictions

    doc = read_json(path)
    if isinstance(doc, dict) and isinstance(doc.get("results"), dict):
        from tailgraph.evaluation.vidvrd import read_vidvrd_results

        return "vidvrd_results", read_vidvrd_results(path), {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f'expected "format": "{FORMAT}" or a VidVRD results file', file=path)
    if "videos" in doc:  # video-level relation instances (VidVRD's ground truth)
        if not isinstance(doc["videos"], dict):
            raise DataError("expected 'videos' (video id -> instances)", file=path, field="videos")
        return "vidvrd_ground_truth", doc["videos"], {"predicates": doc.get("predicates")}
    if "protocol" in doc:
        from tailgraph.protocols import DATA_KINDS

        kinds = {k.interchange for k in DATA_KINDS.values()}
        graphs, vocab, protocol = read_ground_truth(path, kinds)
        meta = {
            "protocol": protocol,
            "object_classes": vocab.object_classes,
            "predicates": vocab.predicates,
        }
        return "ground_truth", graphs, meta
    return "predictions", read_predictions(path), {}


def _read_binary(path: str) -> tuple[str, Any, dict]:
    with BinaryReader(path) as r:
        kind, meta = r.kind, {k: v for k, v in r.meta.items() if k not in ("format", "kind")}
        if kind.startswith("vidvrd"):  # type: ignore[union-attr]
            videos = {
                vid: [
                    dict(x, sub_traj=np.array(x["sub_traj"]), obj_traj=np.array(x["obj_traj"]))
                    for x in rels
                ]
                for vid, rels in r.videos()
            }
            return kind, videos, meta  # type: ignore[return-value]
        if kind == "ground_truth":
            for key in ("object_classes", "predicates"):
                if not isinstance(meta.get(key), list):
                    raise DataError(f"meta needs a list '{key}'", file=path, field=key)
            r.num_classes, r.num_predicates = len(meta["object_classes"]), len(meta["predicates"])
        items = []
        for chunk in r.chunks(256):
            for d in chunk:
                items.append(
                    {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
                )
        return kind, items, meta  # type: ignore[return-value]


def _jsonable(d: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _write_json(path: str, kind: str, content: Any, meta: dict) -> None:
    from tailgraph.io.interchange import FORMAT, write_json

    if kind == "vidvrd_results":
        doc = {
            "version": "VERSION 1.0",
            "results": {str(v): [_jsonable(x) for x in rels] for v, rels in content.items()},
        }
    elif kind == "vidvrd_ground_truth":
        doc = {
            "format": FORMAT,
            "protocol": "vidvrd",
            "videos": {str(v): [_jsonable(x) for x in rels] for v, rels in content.items()},
            "predicates": meta.get("predicates"),  # type: ignore[dict-item]
        }
    elif kind == "ground_truth":
        images = []
        for g in content:
            d = (
                g
                if isinstance(g, dict)
                else {
                    **g.to_dict(),
                    **{k: g.extras[k] for k in ("video_id", "frame_id") if k in g.extras},
                }
            )
            images.append(_jsonable(d))
        doc = {
            "format": FORMAT,
            "protocol": meta["protocol"],
            "object_classes": meta["object_classes"],
            "predicates": meta["predicates"],
            "images": images,  # type: ignore[dict-item]
        }
    else:
        doc = {
            "format": FORMAT,
            "images": [_jsonable(p) if isinstance(p, dict) else p.to_dict() for p in content],  # type: ignore[misc]
        }
    write_json(path, doc)


def dataset_ground_truth(fmt: str, root: str, split: str = "test") -> tuple[str, Any, dict]:
    """``(kind, content, meta)`` of a data set split's ground truth, as ``tailgraph evaluate
    --gt ROOT --format FMT`` reads it."""
    from tailgraph.protocols import data_kind
    from tailgraph.protocols.base import load_ground_truth

    row = data_kind(fmt, field="--format")
    if not Path(root).is_dir():
        raise DataError("data set folder not found", file=str(root), field="--root")
    if fmt == "vidvrd":
        from tailgraph.data.vidvrd import to_groundtruth

        videos, vocab = row.reader(str(root), split, layout_only=True)
        return "vidvrd_ground_truth", to_groundtruth(videos), {"predicates": vocab.predicates[1:]}
    graphs, vocab = load_ground_truth(root, row.interchange, row.reader, split)
    if not graphs:
        raise DataError(f"split {split!r} has no sample", file=str(root), field="--split")
    meta = {
        "protocol": row.interchange,
        "object_classes": list(vocab.object_classes),
        "predicates": list(vocab.predicates),
    }
    return "ground_truth", graphs, meta


def convert(
    src: str | None,
    dst: str,
    overwrite: bool = False,
    *,
    format: str | None = None,
    root: str | None = None,
    split: str = "test",
) -> str:
    """Convert ``src`` to ``dst`` (formats by extension), or with ``format`` and ``root`` write
    that data set split's ground truth to ``dst``; returns the content kind."""
    if (src is None) == (root is None):
        raise DataError("give either IN or --format and --root", field="IN")
    if root is not None and format is None:
        raise DataError("--root needs --format (vg, ag, vidvrd or oi)", field="--format")
    if src is not None:
        _check_name(src, "IN")
    _check_name(dst, "OUT")
    if Path(dst).exists() and not overwrite:
        raise DataError("exists (pass --overwrite to replace it)", file=dst, field="OUT")
    if Path(dst).is_dir():
        raise DataError("is a directory", file=dst, field="OUT")
    if src is not None and Path(src).resolve() == Path(dst).resolve():
        raise DataError("IN and OUT are the same file", file=dst, field="OUT")
    if src is None:
        kind, content, meta = dataset_ground_truth(str(format), str(root), split)
    else:
        kind, content, meta = _read_binary(src) if is_binary(src) else _read_json_kind(src)
    if is_binary(dst):
        if kind == "predictions":
            write_binary(dst, kind, predictions_arrays(content))
        elif kind == "ground_truth":
            write_binary(dst, kind, ground_truth_arrays(content), meta)
        else:
            arrays, names = vidvrd_arrays(content, results=kind == "vidvrd_results")
            write_binary(dst, kind, arrays, {**meta, "names": names})
    else:
        _write_json(dst, kind, content, meta)
    return kind


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="[IN] OUT", help="IN OUT, or OUT with --root")
    p.add_argument("--format", default=None, help="data set kind of --root: vg, ag, vidvrd, oi")
    p.add_argument("--root", default=None, help="data set folder whose split to write as GT")
    p.add_argument("--split", default="test", help="split of --root (default test)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    a = p.parse_args(argv)
    want = 1 if a.root is not None else 2
    if len(a.paths) != want:
        p.error("give IN OUT, or --format K --root DIR [--split S] OUT")
    src, dst = (None, a.paths[0]) if want == 1 else (a.paths[0], a.paths[1])
    kind = convert(src, dst, a.overwrite, format=a.format, root=a.root, split=a.split)
    origin = f"{a.root} ({a.format}, {a.split})" if src is None else src
    print(f"{kind}: {origin} -> {dst}")
    return 0
