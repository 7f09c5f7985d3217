"""Data sets: one reader module per format, all producing tailgraph's structures.

``load_dataset(format, root, split)`` is the single entry point used by the command line
(``stats``, ``evaluate``) and by the data modules. Each reader validates its files once, at
the border, and raises :class:`tailgraph.errors.DataError` naming file, sample and field.
"""

from __future__ import annotations

import importlib
from typing import Any

from tailgraph.errors import DataError

# format name -> "module:function"; each function is
#   load(root: str, split: str = "test", *, layout_only: bool = True, **options)
#       -> tuple[list[SceneGraph | VideoSceneGraph], Vocabulary]
READERS: dict[str, str] = {
    "vg": "tailgraph.data.vg:load_vg",
    "ag": "tailgraph.data.action_genome:load_ag",
    "vidvrd": "tailgraph.data.vidvrd:load_vidvrd",
    "oi": "tailgraph.data.openimages:load_oi",
}


def load_dataset(
    format: str, root: str, split: str = "test", *, layout_only: bool = True, **options: Any
):
    """Read one split of a data set on disk.

    Args:
        format: ``vg`` | ``ag`` | ``vidvrd`` | ``oi``.
        root: the data set's folder.
        split: ``train`` | ``val`` | ``test``.
        layout_only: do not require image files (boxes, labels and relations only).
        **options: reader-specific options (filters, file names).
    Returns:
        ``(samples, vocabulary)``: a list of :class:`SceneGraph` (images) or
        :class:`VideoSceneGraph` (videos) and the data set's :class:`Vocabulary`.
    """
    if format not in READERS:
        raise DataError(
            f"unknown data set format {format!r}; expected one of {sorted(READERS)}", field="format"
        )
    module_name, func_name = READERS[format].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return func(root, split, layout_only=layout_only, **options)
