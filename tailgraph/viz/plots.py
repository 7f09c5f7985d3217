"""Plots people look at: the long-tail per-predicate recall chart and training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "MAX_DRAWN_PREDICATES",
    "plot_per_predicate_recall",
    "plot_long_tail",
    "plot_training_curves",
    "plot_hierarchy_confusion",
]


MAX_DRAWN_PREDICATES = 80  # bars per model in the per-predicate chart


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

    More than :data:`MAX_DRAWN_PREDICATES` predicates are drawn as that many, evenly spaced
    over the frequency order (the most and the least frequent included), and the axis says so.
    """
    names = list(predicate_names)
    counts = np.asarray(train_counts, dtype=float)
    if len(counts) != len(names):
        raise ValueError(f"{len(names)} predicate names but {len(counts)} counts")
    order = np.argsort(-counts, kind="stable")
    total = len(order)
    if total > MAX_DRAWN_PREDICATES:
        order = order[
            np.unique(np.linspace(0, total - 1, MAX_DRAWN_PREDICATES).round().astype(int))
        ]
    drawn = [names[i] for i in order]
    n_models = max(1, len(recalls))
    width = 0.8 / n_models
    fig, ax = plt.subplots(figsize=(max(8.0, 0.28 * len(drawn) + 2), 4.8))
    x = np.arange(len(drawn))
    for j, (label, values) in enumerate(recalls.items()):
        vals = np.asarray(values, dtype=float)
        if len(vals) != len(names):
            raise ValueError(f"model {label!r}: {len(vals)} recalls for {len(names)} predicates")
        ax.bar(x + (j - (n_models - 1) / 2) * width, vals[order], width=width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(drawn, rotation=90, fontsize=7)
    ax.set_ylabel(f"recall@{k}")
    ax.set_ylim(0, 1.0)
    ax.set_xlabel(
        "predicates, most frequent in training first"
        + (f" ({len(drawn)} of {total}, evenly spaced by rank)" if len(drawn) < total else "")
    )
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


def _save(fig, out_path: str | Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110, format="png")
    plt.close(fig)
    return out_path


def plot_long_tail(
    series: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    out_path: str | Path,
    k: int = 50,
    bins: int = 6,
) -> Path:
    """The long-tail plot: per-predicate recall@K against training count (log x), one
    scatter per model (``(label, train counts, recalls)``) with a line through the mean recall
    of ``bins`` equal-width bins of log count (bins holding no predicate are skipped)."""
    fig, ax = plt.subplots(figsize=(8.0, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lo = min((max(min(c), 1) for _, c, _ in series), default=1)
    hi = max((max(max(c), 1) for _, c, _ in series), default=10)
    edges = np.logspace(np.log10(lo), np.log10(hi) + 1e-9, bins + 1)
    for j, (label, counts, recalls) in enumerate(series):
        c = np.maximum(np.asarray(counts, dtype=float), 1.0)
        r = np.asarray(recalls, dtype=float)
        color = colors[j % len(colors)]
        ax.scatter(c, r, s=14, alpha=0.6, color=color, label=label)
        which = np.clip(np.digitize(c, edges) - 1, 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            m = which == b
            if m.any():
                xs.append(np.exp(np.log(c[m]).mean()))
                ys.append(r[m].mean())
        ax.plot(xs, ys, color=color, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("training relations of the predicate (log scale)")
    ax.set_ylabel(f"recall@{k}")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Per-predicate recall@{k} against training frequency")
    return _save(fig, out_path)


def plot_training_curves(
    curves: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
    out_path: str | Path,
) -> Path:
    """Training curves of one or more runs (``label -> column -> [(x, value)]``, as read from
    Lightning's CSV logs): the losses (``train/…loss…``) against step, and the validation
    recalls (``val/…R@K``) against epoch."""
    import re

    fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    recall = re.compile(r"(^|/)(m?R@\d+)$")
    # one colour per run (distinct up to 20 runs), one line style / marker per metric: each
    # legend entry is one (run, metric) and no two look alike
    labels = list(curves)
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colours = {label: cmap(i % cmap.N) for i, label in enumerate(labels)}
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "x", "*", "P"]
    metric_style: dict[str, int] = {}
    n_loss = n_val = 0
    for label, cols in curves.items():
        for col, pts in cols.items():
            if not pts:
                continue
            x, y = zip(*pts)
            short = col.split("/", 1)[1] if "/" in col else col
            name = f"{label}: {short}" if len(curves) > 1 else short
            j = metric_style.setdefault(short, len(metric_style))
            colour = colours[label] if len(curves) > 1 else cmap(j % cmap.N)
            if col.startswith("train/") and "loss" in col:
                ax_l.plot(x, y, linewidth=1, label=name, color=colour, linestyle=styles[j % 4])
                n_loss += 1
            elif col.startswith("val/") and recall.search(col):
                ax_v.plot(
                    x,
                    y,
                    marker=markers[j % len(markers)],
                    markersize=3,
                    linewidth=1,
                    label=name,
                    color=colour,
                    linestyle=styles[(j // len(markers)) % 4],
                )
                n_val += 1
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("loss")
    ax_l.set_title("training losses")
    ax_v.set_xlabel("epoch")
    ax_v.set_ylabel("recall")
    ax_v.set_title("validation recalls")
    for ax, n in ((ax_l, n_loss), (ax_v, n_val)):
        if n:
            ax.legend(fontsize=7, loc="best", ncol=1 if n <= 8 else 2)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.grid(True, alpha=0.3)
    return _save(fig, out_path)


def plot_hierarchy_confusion(
    matrices: Sequence[tuple[str, Sequence[Sequence[float]]]],
    predicates: Sequence[str],
    parents: Sequence[str | None],
    out_path: str | Path,
) -> Path:
    """Heat maps (one per model) of the top-1 predicate of the GT relations restricted to the
    predicate hierarchy: every coarse parent followed by its fine children; rows normalised.
    ``matrices`` are ``[C, C]`` with index 0 the background and ``1..C-1`` ``predicates``."""
    names = list(predicates)
    order: list[int] = []
    for parent in dict.fromkeys(p for p in parents if p is not None):
        order.append(names.index(parent))
        order += [i for i, p in enumerate(parents) if p == parent and i not in order]
    idx = np.asarray(order) + 1
    n = len(matrices)
    # one map per row, as wide as a page allows: readable at page width whatever the count
    size = min(11.0, max(4.0, 0.28 * len(order) + 2.0))
    fig, axes = plt.subplots(n, 1, figsize=(size, size * n), squeeze=False)
    groups = []  # (first position, length) of each coarse parent's block
    for pos, i in enumerate(order):
        if parents[i] is None:
            groups.append([pos, 1])
        elif groups:
            groups[-1][1] += 1
    for ax, (label, m) in zip(axes[:, 0], matrices):
        full = np.asarray(m, dtype=float)
        sub = full[np.ix_(idx, idx)]
        totals = full[idx].sum(1, keepdims=True)
        norm = np.divide(sub, totals, out=np.zeros_like(sub), where=totals > 0)
        im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis")
        ticks = [names[i] + ("" if parents[i] is not None else " *") for i in order]
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(ticks, rotation=90, fontsize=7)
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels(ticks, fontsize=7)
        ax.set_xlabel("predicted (top-1)")
        ax.set_ylabel("ground truth")
        ax.set_title(f"{label} (* coarse; boxes: a parent and its fine children)", fontsize=9)
        from matplotlib.patches import Rectangle

        for first, length in groups:
            ax.add_patch(
                Rectangle(
                    (first - 0.5, first - 0.5),
                    length,
                    length,
                    fill=False,
                    edgecolor="white",
                    linewidth=1.2,
                )
            )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, out_path)
