"""Plots people look at: the long-tail per-predicate recall chart and training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_per_predicate_recall"]


def plot_per_predicate_recall(
    predicate_names: Sequence[str],
    recalls: Mapping[str, Sequence[float]],
    train_counts: Sequence[int],
    out_path: str | Path,
    k: int = 50,
    title: str | None = None,
) -> Path:
    """Bar chart of per-predicate recall@K, predicates sorted by training frequency.

    Args:
        predicate_names: foreground predicate names (length ``R``).
        recalls: model name → per-predicate recall@K (length ``R``, fractions).
        train_counts: training count of each predicate (length ``R``), drawn as a log-scale
            line on a second axis — the long tail.
        out_path: PNG file to write.
        k: the K of the recall (for labels).
        title: figure title.
    Returns:
        The written path.
    """
    names = list(predicate_names)
    counts = np.asarray(train_counts, dtype=float)
    if len(counts) != len(names):
        raise ValueError(f"{len(names)} predicate names but {len(counts)} counts")
    order = np.argsort(-counts, kind="stable")
    n_models = max(1, len(recalls))
    width = 0.8 / n_models
    fig, ax = plt.subplots(figsize=(max(8.0, 0.28 * len(names) + 2), 4.8))
    x = np.arange(len(names))
    for j, (label, values) in enumerate(recalls.items()):
        vals = np.asarray(values, dtype=float)
        if len(vals) != len(names):
            raise ValueError(f"model {label!r}: {len(vals)} recalls for {len(names)} predicates")
        ax.bar(x + (j - (n_models - 1) / 2) * width, vals[order], width=width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([names[i] for i in order], rotation=90, fontsize=7)
    ax.set_ylabel(f"recall@{k}")
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("predicates, most frequent in training first")
    ax2 = ax.twinx()
    ax2.plot(
        x,
        np.maximum(counts[order], 0.5),
        color="black",
        marker=".",
        linewidth=1,
        label="training count",
    )
    ax2.set_yscale("log")
    ax2.set_ylabel("training count (log)")
    lines, labels = ax.get_legend_handles_labels()
    l2, lab2 = ax2.get_legend_handles_labels()
    ax.legend(lines + l2, labels + lab2, fontsize=8, loc="upper right")
    ax.set_title(title or f"Per-predicate recall@{k} (graph constraint)")
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
