"""``tailgraph stats``: what is in a data set on disk, before and after the training filters."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.errors import DataError

__all__ = ["vg_stats", "main", "STATS"]


def vg_stats(root: str | Path) -> dict[str, Any]:
    """Statistics of a VG150-format set.

    Returns:
        ``{"splits": {name: {"images", "boxes", "relations"}}, "predicate_counts": {name: raw
        count over all splits}, "filtered": {"splits": ..., "predicate_counts": ...}}``. Raw =
        every image row of the file; filtered = what ``load_vg`` yields for training and
        testing with the default filters (images without boxes or relations dropped,
        duplicate predicates of a pair reduced to one in train).
    """
    from tailgraph.data.vg import DICT_NAMES, _find, load_vg, read_vg_arrays, vg_vocabulary

    root = Path(root)
    a = read_vg_arrays(root)
    vocab = vg_vocabulary(_find(root, DICT_NAMES, None, "VG-SGG dicts json"))
    names = {0: "train", 1: "val", 2: "test"}
    splits: dict[str, dict[str, int]] = {}
    nbox = np.where(a.first_box >= 0, a.last_box - a.first_box + 1, 0)
    nrel = np.where(a.first_rel >= 0, a.last_rel - a.first_rel + 1, 0)
    for code in sorted(set(a.split.tolist())):
        m = a.split == code
        splits[names.get(code, str(code))] = {
            "images": int(m.sum()),
            "boxes": int(nbox[m].sum()),
            "relations": int(nrel[m].sum()),
        }
    counts = np.bincount(a.predicates, minlength=vocab.num_predicates)
    raw_counts = {vocab.predicates[i]: int(counts[i]) for i in range(1, vocab.num_predicates)}
    fsplits: dict[str, dict[str, int]] = {}
    fcounts = np.zeros(vocab.num_predicates, dtype=np.int64)
    for split in ("train", "test"):
        graphs, _ = load_vg(root, split, layout_only=True, count_split=None)
        fsplits[split] = {
            "images": len(graphs),
            "boxes": sum(g.num_boxes for g in graphs),
            "relations": sum(g.num_relations for g in graphs),
        }
        for g in graphs:
            fcounts += np.bincount(g.relations[:, 2].numpy(), minlength=vocab.num_predicates)
    filtered = {
        "splits": fsplits,
        "predicate_counts": {
            vocab.predicates[i]: int(fcounts[i]) for i in range(1, vocab.num_predicates)
        },
    }
    return {
        "format": "vg",
        "root": str(root),
        "splits": splits,
        "predicate_counts": raw_counts,
        "filtered": filtered,
    }


def _lazy(path: str) -> Callable[[str], dict[str, Any]]:
    def run(root: str) -> dict[str, Any]:
        module, func = path.split(":")
        return getattr(importlib.import_module(module), func)(root)

    return run


STATS: dict[str, Callable[[str], dict[str, Any]]] = {
    "vg": vg_stats,
    "ag": _lazy("tailgraph.data.action_genome:stats"),
    "vidvrd": _lazy("tailgraph.data.vidvrd:stats"),
    "oi": _lazy("tailgraph.data.openimages:stats"),
}


def _split_rows(splits: dict[str, dict[str, int]], note: str) -> None:
    """One row per split; the columns are the counts the data set has (images, or videos and
    frames, then boxes and relations)."""
    cols = [
        c
        for c in ("videos", "frames", "images", "boxes", "relations")
        if any(c in s for s in splits.values())
    ]
    print(f"{'split':<8}" + "".join(f"{c:>11}" for c in cols) + f"   ({note})")
    for name, s in splits.items():
        print(f"{name:<8}" + "".join(f"{s.get(c, 0):>11}" for c in cols))


def _print_table(stats: dict[str, Any]) -> None:
    _split_rows(stats["splits"], "raw")
    f = stats.get("filtered", {})
    if f.get("splits"):
        _split_rows(f["splits"], "after default filters")
    raw = stats["predicate_counts"]
    filt = f.get("predicate_counts", {})
    print()
    print(f"{'predicate':<36}{'raw':>10}{'filtered':>10}")
    for name, c in sorted(raw.items(), key=lambda kv: -kv[1]):
        print(f"{name:<36}{c:>10}{filt.get(name, 0):>10}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph stats", description="Statistics of a data set on disk."
    )
    p.add_argument("--format", required=True, choices=sorted(STATS))
    p.add_argument("--root", required=True, help="data set folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    try:
        stats = STATS[a.format](a.root)
    except DataError as exc:
        print(f"tailgraph stats: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(stats, indent=2))
    else:
        _print_table(stats)
    return 0
