"""Checkpoints: written atomically, found for ``--ckpt_path last``, checked before loading
(``weights_only=True``; a truncated, foreign or unsafe file is a one-line error)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "latest_checkpoint", "check_checkpoint"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary name and renamed: a run killed while saving
    leaves the previous checkpoint intact, never a truncated one."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def latest_checkpoint(root: str | os.PathLike) -> str:
    """``--ckpt_path last``: the ``last.ckpt`` of the newest run under ``<root>/runs`` (every run
    gets a new ``version_N`` folder, so Lightning's own ``last`` would look in the empty new
    one)."""
    from tailgraph.errors import DataError

    runs = []
    for d in Path(root, "runs").glob("version_*"):
        ckpt = d / "checkpoints" / "last.ckpt"
        if ckpt.is_file() and d.name.split("_", 1)[1].isdigit():
            runs.append((int(d.name.split("_", 1)[1]), ckpt))
    if not runs:
        raise DataError(
            "--ckpt_path last: no run with checkpoints/last.ckpt",
            file=str(Path(root, "runs")),
            field="ckpt_path",
        )
    return str(max(runs)[1])


def check_checkpoint(path: str | os.PathLike, field: str = "ckpt_path") -> None:
    """Refuse a checkpoint that is missing, truncated, foreign, or holds anything beyond tensors
    and plain containers: it is read with ``torch.load(weights_only=True)`` (no code can run)
    and must be a Lightning checkpoint with a ``state_dict`` and ``hyper_parameters``."""
    import warnings

    import torch

    from tailgraph.errors import DataError

    p = Path(path)
    where = {"file": str(path), "field": field}
    if not p.exists():
        raise DataError("checkpoint not found", **where)
    if p.is_dir():
        raise DataError("is a directory, expected a checkpoint file", **where)
    with warnings.catch_warnings():  # torch's notes on legacy formats: the error says it
        warnings.simplefilter("ignore")
        _load_checked(torch, p, where)


def _load_checked(torch, p: Path, where: dict) -> None:
    import pickle

    from tailgraph.errors import DataError

    try:
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            ck = torch.load(p, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        AttributeError,
        TypeError,
        IndexError,
        ImportError,
    ) as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(
            "not a loadable checkpoint (truncated, corrupt, not a torch file, or holding objects "
            f"that weights_only=True refuses): {type(exc).__name__}: {detail}",
            **where,
        ) from None
    if not isinstance(ck, dict) or not isinstance(ck.get("state_dict"), dict):
        raise DataError("not a Lightning checkpoint: no 'state_dict'", **where)
    if not isinstance(ck.get("hyper_parameters"), dict):
        raise DataError("not a tailgraph checkpoint: no 'hyper_parameters'", **where)
