"""``tailgraph report RUN_DIR ... [--out DIR]``: runs' results as a readable page
(:func:`tailgraph.viz.report.write_report`)."""

from __future__ import annotations

import argparse
import sys

from tailgraph.errors import DataError
from tailgraph.io.args import int_in
from tailgraph.viz.report import write_report

__all__ = ["main"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tailgraph report",
        description="Render runs' results (metrics.json) as a self-contained HTML page and a "
        "Markdown report with PNG plots; several runs are compared side by side.",
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders holding metrics.json, or the files"
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: beside the first run's results)"
    )
    parser.add_argument(
        "-k", type=int_in(1, 10000), default=50, help="K of the per-predicate recalls (1-10000)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing report files")
    parser.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="NAME",
        help="name of a run in the report, once per run in order (default: path tails)",
    )
    args = parser.parse_args(argv)
    try:
        files = write_report(
            list(args.runs), args.out, k=args.k, overwrite=args.overwrite, labels=args.label
        )
    except DataError as exc:
        print(f"tailgraph report: {exc}", file=sys.stderr)
        return 2
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0
