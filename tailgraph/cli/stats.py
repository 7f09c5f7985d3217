"""``tailgraph stats``: what is in a data set on disk, before and after the training filters."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tailgraph.errors import DataError
from tailgraph.protocols import DATA_KINDS

__all__ = ["main"]


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
        for name, sp in f["splits"].items():
            removed = {k: v for k, v in (sp.get("removed") or {}).items() if v}
            if removed:
                print(
                    f"  {name} filters removed: "
                    + "; ".join(f"{v} {k}" for k, v in removed.items())
                )
    raw = stats["predicate_counts"]
    filt = f.get("predicate_counts", {})
    per_split = {k: v.get("predicate_counts", {}) for k, v in f.get("splits", {}).items()}
    print()
    print(
        f"{'predicate':<36}{'raw':>10}{'filtered':>10}"
        + "".join(f"{k:>10}" for k in per_split)
        + ("   (filtered, per split)" if per_split else "")
    )
    for name, c in sorted(raw.items(), key=lambda kv: -kv[1]):
        print(
            f"{name:<36}{c:>10}{filt.get(name, 0):>10}"
            + "".join(f"{pc.get(name, 0):>10}" for pc in per_split.values())
        )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph stats", description="Statistics of a data set on disk."
    )
    p.add_argument("--format", required=True, choices=sorted(DATA_KINDS))
    p.add_argument("--root", required=True, help="data set folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    try:
        stats = DATA_KINDS[a.format].stats(a.root)
    except DataError as exc:
        print(f"tailgraph stats: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(stats, indent=2))
    else:
        _print_table(stats)
    return 0
