"""Predicate histogram of a data set (log scale), coloured by coarse / fine predicates."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_predicate_histogram"]


def plot_predicate_histogram(
    names: Sequence[str],
    counts: Sequence[int],
    out_path: str | Path,
    is_fine: Sequence[bool] | None = None,
    title: str = "",
) -> Path:
    """Bar chart of predicate counts, most frequent first, log y axis.

    Args:
        names, counts: predicate names and counts (foreground only).
        out_path: PNG to write.
        is_fine: per predicate, whether it has a coarse parent (drawn in another colour).
    """
    counts_a = np.asarray(counts, dtype=float)
    order = np.argsort(-counts_a, kind="stable")
    colours = ["tab:orange" if (is_fine is not None and is_fine[i]) else "tab:blue" for i in order]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.25 * len(names) + 2), 4.2))
    ax.bar(np.arange(len(names)), np.maximum(counts_a[order], 0.8), color=colours)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels([names[i] for i in order], rotation=90, fontsize=7)
    ax.set_ylabel("relations (log)")
    if is_fine is not None:
        from matplotlib.patches import Patch

        ax.legend(
            handles=[
                Patch(color="tab:blue", label="coarse / no parent"),
                Patch(color="tab:orange", label="fine (has a coarse parent)"),
            ],
            fontsize=8,
        )
    ax.set_title(title or "Predicate histogram")
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
