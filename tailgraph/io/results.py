"""The results document of a run (``metrics.json``): what ``tailgraph test`` and the demo write
and ``tailgraph report`` reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["results_document", "training_log_of"]


def results_document(models: dict[str, dict], vocab: Any, task: str, **more: Any) -> dict:
    """The results file layout read by ``tailgraph report``: ``task``, ``models`` (name ->
    metrics), the foreground ``predicates`` with their ``train_counts``, and where the
    vocabulary has a predicate hierarchy ``coarse_parent`` (per foreground predicate, its
    parent's name or null). ``more`` adds keys such as ``timings``, ``dataset``, ``protocol``
    and ``logs`` (model name -> the training run's ``metrics.csv``)."""
    doc: dict[str, Any] = {"task": task, "models": models}
    if vocab is not None:
        fg = vocab.foreground_predicates
        doc["predicates"] = [vocab.predicates[i] for i in fg]
        doc["train_counts"] = [int(vocab.predicate_counts[i]) for i in fg]
        parents = [int(vocab.coarse_parent[i]) for i in fg] if vocab.coarse_parent else []
        if any(p >= 0 for p in parents):
            doc["coarse_parent"] = [vocab.predicates[p] if p >= 0 else None for p in parents]
    doc.update({k: v for k, v in more.items() if v is not None})
    return doc


def training_log_of(ckpt_path: str | os.PathLike | None) -> str | None:
    """The CSV log (``metrics.csv``) of the run that wrote ``ckpt_path``
    (``<run>/checkpoints/x.ckpt`` -> ``<run>/metrics.csv``), if it exists."""
    if not ckpt_path:
        return None
    csv = Path(ckpt_path).resolve().parent.parent / "metrics.csv"
    return str(csv) if csv.is_file() else None
