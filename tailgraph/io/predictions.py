"""Prediction files: image / frame predictions as interchange JSON or the binary format, and
video-level relation instances as VidVRD's results JSON or the binary ``vidvrd_results``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PRED_FORMATS", "write_image_predictions", "write_video_results"]

PRED_FORMATS = ("json", "json.gz", "h5", "npz")


def write_image_predictions(target: str, preds: list, extras: list[dict] | None = None) -> str:
    """Image / frame predictions as interchange JSON or the binary format (by extension);
    ``extras`` (one dict per image) go into the JSON entries — a binary file has no place for
    them (the caller writes them beside it)."""
    from tailgraph.io.binformat import is_binary, predictions_arrays, write_binary

    if is_binary(target):
        write_binary(target, "predictions", predictions_arrays(preds))
    else:
        from tailgraph.io.interchange import write_predictions

        write_predictions(target, preds, extras)
    return target


def write_video_results(target: str, results: Mapping[Any, Sequence[dict]]) -> str:
    """Video-level relation instances (video id → instances) as VidVRD's results JSON
    (``{"version", "results"}``, what ``tailgraph evaluate`` reads) or, for a binary
    extension, the ``vidvrd_results`` binary file."""
    from tailgraph.io.binformat import is_binary, vidvrd_arrays, write_binary
    from tailgraph.io.outputs import write_json_atomic

    if is_binary(target):
        arrays, names = vidvrd_arrays(dict(results), results=True)
        write_binary(target, "vidvrd_results", arrays, {"names": names})
    else:
        write_json_atomic(
            target, {"version": "VERSION 1.0", "results": {str(v): r for v, r in results.items()}}
        )
    return target
