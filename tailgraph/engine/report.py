"""``tailgraph report``: a run's results as a readable page (Markdown + HTML + PNG plots).

Input is a results file written by ``tailgraph test`` / ``tailgraph demo``
(``metrics.json``)::

    {"task": "predcls",
     "predicates": [fg predicate names], "train_counts": [training counts],
     "models": {"FREQ": {"R@50": ..., "mR@50": ..., "per_predicate_R@50": [...], ...}, ...},
     "timings": {"phase": seconds, ...}}            # optional
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError

__all__ = ["write_report", "main", "results_table", "flatten_models"]

_MAIN_KEYS = (
    "R@10",
    "R@20",
    "R@50",
    "R@100",
    "mR@10",
    "mR@20",
    "mR@50",
    "mR@100",
    "ngR@50",
    "ng-mR@50",
    "zR@50",
    "A@50",
    "Mean@50",
    "mAP",
    "mAP*",
    "mAP_FG",
    "mAP*_FG",
    "RelDet_mAP",
    "RelDet_R@50",
    "RelDet_R@100",
    "RelTag_P@5",
    "Mean",
)


def flatten_models(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per model, and per constraint for protocols that nest their metrics (Action
    Genome's ``with`` / ``semi`` / ``no``): ``"model (with)"``."""
    out: dict[str, dict[str, Any]] = {}
    for name, m in models.items():
        nested = {
            k: v
            for k, v in m.items()
            if isinstance(v, dict) and any(str(x).startswith("R@") for x in v)
        }
        if nested:
            for c, sub in nested.items():
                out[f"{name} ({c})"] = sub
        else:
            out[name] = m
    return out


def _load(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "metrics.json"
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError("results file not found", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc})", file=str(path)) from None
    if "models" not in data or not isinstance(data["models"], dict):
        raise DataError(
            "expected a 'models' object (model name -> metrics)", file=str(path), field="models"
        )
    return data


def results_table(models: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (percentages, 2 decimals) of the main metrics present in the results."""
    keys = [k for k in _MAIN_KEYS if any(k in m for m in models.values())]
    rows = []
    for name, m in models.items():
        rows.append([name] + [f"{100 * float(m[k]):.2f}" if k in m else "–" for k in keys])
    return ["model"] + keys, rows


REPORT_FILES = {
    "plot": "per_predicate_recall.png",
    "markdown": "report.md",
    "html": "report.html",
}


def write_report(
    results_path: str | Path,
    out_dir: str | Path | None = None,
    k: int = 50,
    overwrite: bool = True,
) -> dict[str, Path]:
    """Render ``report.md``, ``report.html`` and ``per_predicate_recall.png``.

    Every file is rendered under a temporary name and renamed into place only when all are
    complete (a failure leaves nothing behind); existing report files are replaced only with
    ``overwrite``.

    Returns:
        The written files by kind.
    """
    from tailgraph.outputs import claim_file

    base_dir = (
        Path(out_dir)
        if out_dir is not None
        else (Path(results_path) if Path(results_path).is_dir() else Path(results_path).parent)
    )
    for name in REPORT_FILES.values():
        claim_file(base_dir / name, overwrite, field="--out")
    staged: list[tuple[Path, Path]] = []
    try:
        files = _render_report(results_path, out_dir, k, staged)
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return files


def _stage(out: Path, name: str, staged: list) -> Path:
    """A temporary name beside ``out / name`` (same suffix), renamed by :func:`write_report`."""
    final = out / name
    tmp = out / f".{final.stem}.tmp-{os.getpid()}{final.suffix}"
    staged.append((tmp, final))
    return tmp


def _render_report(
    results_path: str | Path, out_dir: str | Path | None, k: int, staged: list
) -> dict[str, Path]:
    from tailgraph.viz.plots import plot_per_predicate_recall

    results_path = Path(results_path)
    data = _load(results_path)
    base = results_path if results_path.is_dir() else results_path.parent
    out = Path(out_dir) if out_dir is not None else base
    out.mkdir(parents=True, exist_ok=True)
    models = flatten_models(data["models"])
    header, rows = results_table(models)
    files: dict[str, Path] = {}
    preds = data.get("predicates")
    counts = data.get("train_counts")
    key = f"per_predicate_R@{k}"
    per_pred = {n: m[key] for n, m in models.items() if isinstance(m.get(key), list)}
    if preds and counts and per_pred:
        plot_per_predicate_recall(
            preds, per_pred, counts, _stage(out, REPORT_FILES["plot"], staged), k=k
        )
        files["plot"] = out / REPORT_FILES["plot"]

    task = data.get("task", "")
    md = [f"# tailgraph results{(' — ' + task) if task else ''}", ""]
    if data.get("dataset"):
        md += [f"Data: {data['dataset']}", ""]
    md += ["Recall in percent (graph constraint unless marked ng; mR = mean over predicates).", ""]
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "---|" * len(header))
    for r in rows:
        md.append("| " + " | ".join(r) + " |")
    if "plot" in files:
        md += [
            "",
            f"![per-predicate recall@{k}]({files['plot'].name})",
            "",
            f"Per-predicate recall@{k}, predicates sorted by training frequency (line: "
            "training count, log scale).",
        ]
    if preds and per_pred:
        md += ["", f"## Per-predicate recall@{k} (%)", ""]
        names = list(per_pred)
        md.append("| predicate | train count | " + " | ".join(names) + " |")
        md.append("|" + "---|" * (len(names) + 2))
        order = sorted(range(len(preds)), key=lambda i: -(counts[i] if counts else 0))
        for i in order:
            vals = " | ".join(f"{100 * per_pred[n][i]:.1f}" for n in names)
            md.append(f"| {preds[i]} | {counts[i] if counts else ''} | {vals} |")
    if data.get("timings"):
        md += ["", "## Timings", "", "| phase | seconds |", "|---|---|"]
        for phase, sec in data["timings"].items():
            md.append(f"| {phase} | {float(sec):.1f} |")
    files["markdown"] = out / REPORT_FILES["markdown"]
    _stage(out, REPORT_FILES["markdown"], staged).write_text("\n".join(md) + "\n")

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tailgraph report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>",
        f"<h1>tailgraph results {html.escape(task)}</h1>",
        "<table><tr>",
    ]
    parts += [f"<th>{html.escape(h)}</th>" for h in header]
    parts.append("</tr>")
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    parts.append("</table>")
    if "plot" in files:
        parts.append(f"<p><img src='{files['plot'].name}' style='max-width:100%'></p>")
    parts.append("</body></html>")
    files["html"] = out / REPORT_FILES["html"]
    _stage(out, REPORT_FILES["html"], staged).write_text("".join(parts))
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tailgraph report", description="Render a run's metrics.json as a report."
    )
    parser.add_argument("results", help="metrics.json, or a folder that holds one")
    parser.add_argument("--out", default=None, help="output folder (default: next to the results)")
    parser.add_argument("-k", type=int, default=50, help="K of the per-predicate recall plot")
    parser.add_argument("--overwrite", action="store_true", help="replace existing report files")
    args = parser.parse_args(argv)
    try:
        files = write_report(args.results, args.out, k=args.k, overwrite=args.overwrite)
    except DataError as exc:
        print(f"tailgraph report: {exc}", file=sys.stderr)
        return 2
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0
