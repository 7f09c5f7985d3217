"""``tailgraph report RUN_DIR [RUN_DIR ...] --out DIR``: runs' results as a page people read.

Each ``RUN_DIR`` is a folder holding a results file ``metrics.json`` (a ``tailgraph test`` run
folder, a ``tailgraph demo`` output) or the file itself::

    {"task": "predcls", "protocol": "vg",
     "predicates": [fg predicate names], "train_counts": [training counts],
     "coarse_parent": [parent name or null per fg predicate],      # optional
     "models": {"FREQ": {"R@50": ..., "mR@50": ..., "per_predicate_R@50": [...], ...}, ...},
     "logs": {"FREQ": "logs/freq/version_0/metrics.csv", ...},      # optional
     "timings": {"phase": seconds, ...}}                            # optional

The report (``report.html``, self-contained with its images inlined; ``report.md`` with the
PNG files beside it) has:

* the metric tables, one per protocol / task, one row per run and model (Action Genome's
  constraints as rows ``model (with)`` …);
* head / body / tail recall: the foreground predicates sorted by training count and cut in
  three equal thirds, the mean per-predicate recall@K of each third;
* the long-tail plot: per-predicate recall@K against training frequency (log scale), every
  run's models overlaid, and the per-predicate bar chart of the models that share the first
  run's predicates;
* training curves from the CSV logs (losses against step, validation recalls against epoch):
  the ``logs`` of the results file, else a ``metrics.csv`` in the run folder that holds
  training columns;
* where the vocabulary has coarse parents and the results hold a ``predicate_confusion``
  (PredCls / SGCls): how often each fine predicate's GT relations are predicated as the fine
  predicate, its coarse parent, a sibling or anything else, and the confusion heat map of the
  hierarchy's predicates.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError
from tailgraph.io.outputs import naming_errors, remove_stale_temporaries, temporary_name

__all__ = [
    "write_report",
    "results_table",
    "flatten_models",
    "head_body_tail",
    "coarse_fine_confusion",
    "read_training_log",
    "load_run",
    "RunResults",
]

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

REPORT_FILES = {
    "plot": "per_predicate_recall.png",
    "long_tail": "long_tail.png",
    "curves": "training_curves.png",
    "confusion": "coarse_fine_confusion.png",
    "markdown": "report.md",
    "html": "report.html",
}


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


def results_table(models: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (percentages, 2 decimals) of the main metrics present in the results."""
    keys = [k for k in _MAIN_KEYS if any(_is_number(m.get(k)) for m in models.values())]
    rows = []
    for name, m in models.items():
        rows.append(
            [name] + [f"{100 * float(m[k]):.2f}" if _is_number(m.get(k)) else "–" for k in keys]
        )
    return ["model"] + keys, rows


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------- reading runs
@dataclass
class RunResults:
    """One results file: its label in the report, the document and its models' curves."""

    label: str
    path: Path
    doc: dict[str, Any]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # flattened, labelled
    logs: dict[str, Path] = field(default_factory=dict)  # labelled model -> metrics.csv


def _results_file(path: Path) -> Path:
    if path.is_dir():
        return path / "metrics.json"
    return path


def _read_results(path: Path) -> dict[str, Any]:
    from tailgraph.io.files import read_json_file

    if not path.exists():
        raise DataError(
            "results file not found (expected a run folder with metrics.json)", file=str(path)
        )
    data = read_json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise DataError(
            "expected a 'models' object (model name -> metrics)", file=str(path), field="models"
        )
    for name, m in data["models"].items():
        if not isinstance(m, dict):
            raise DataError(
                "a model's metrics must be an object", file=str(path), sample=name, field="models"
            )
        _check_values(m, path, name, "", False)
    preds, counts = data.get("predicates"), data.get("train_counts")
    if preds is not None and (
        not isinstance(preds, list) or not all(isinstance(p, str) for p in preds)
    ):
        raise DataError("expected a list of predicate names", file=str(path), field="predicates")
    if counts is not None and (
        not isinstance(counts, list)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        or (preds is not None and len(counts) != len(preds))
    ):
        raise DataError(
            "expected one non-negative integer count per predicate",
            file=str(path),
            field="train_counts",
        )
    if preds is not None:
        for name, m in data["models"].items():
            _check_lengths(m, len(preds), path, name, "")
    parents = data.get("coarse_parent")
    if parents is not None and (
        not isinstance(parents, list)
        or preds is None
        or len(parents) != len(preds)
        or not all(p is None or p in preds for p in parents)
    ):
        raise DataError(
            "expected, per predicate, the name of a parent predicate or null",
            file=str(path),
            field="coarse_parent",
        )
    return data


def _check_lengths(m: dict, n: int, file: Path, model: str, key: str) -> None:
    """Every per-predicate list of a model (at any depth: AG's ``with`` / ``semi`` / ``no``)
    has one value per predicate of ``predicates`` — a longer or shorter one cannot be aligned
    and would be dropped from the page."""
    for k, v in m.items():
        sub = f"{key}.{k}" if key else str(k)
        if isinstance(v, dict):
            _check_lengths(v, n, file, model, sub)
        elif isinstance(v, list) and str(k).startswith("per_predicate_") and len(v) != n:
            raise DataError(
                f"{len(v)} values for the {n} predicates", file=str(file), sample=model, field=sub
            )


# metric names whose values are fractions (recalls, APs): numbers in [0, 1], or null where
# undefined (a predicate without test instances)
_FRACTION_KEY = re.compile(
    r"(^|_)(m|z|mz|ng|ng_m|ng_z)?R@\d+$|(^|_)w?mAP|(^|_)AP(_FG)?$|recall|^score"
)


def _check_values(value: Any, file: Path, model: str, key: str, fraction: bool) -> None:
    """Metric values are finite numbers (fractions in [0, 1]) — never strings, NaN, ±inf."""
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            # a name-keyed per-predicate table (VidVRD, OI) keeps its parent's kind
            _check_values(v, file, model, sub, fraction or bool(_FRACTION_KEY.search(str(k))))
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(v, file, model, f"{key}[{i}]", fraction)
        return
    if value is None or (isinstance(value, str) and not fraction):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(
            f"expected a number, got {value!r}", file=str(file), sample=model, field=key
        )
    if not math.isfinite(value):
        raise DataError(f"{value} is not finite", file=str(file), sample=model, field=key)
    if fraction and not -1e-9 <= value <= 1 + 1e-9:
        raise DataError(
            f"{value} is not a fraction in [0, 1]", file=str(file), sample=model, field=key
        )


def load_run(path: str | Path, label: str | None = None) -> RunResults:
    """Read one run: ``path`` is a run folder (with ``metrics.json``) or the results file."""
    path = Path(path)
    file = _results_file(path)
    doc = _read_results(file)
    run = RunResults(label or file.parent.name or str(file.parent), file, doc)
    logs = doc.get("logs") if isinstance(doc.get("logs"), dict) else {}
    local = file.parent / "metrics.csv"
    for name in doc["models"]:
        log = logs.get(name)  # type: ignore[union-attr]
        csv_path = None
        if isinstance(log, str):
            p = Path(log)
            csv_path = p if p.is_absolute() else file.parent / p
        elif local.is_file() and _has_training_columns(local):
            csv_path = local
        if csv_path is not None and csv_path.is_file():
            run.logs[name] = csv_path
    return run


def _has_training_columns(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return any(h.startswith("train/") for h in header)


def read_training_log(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """A Lightning CSV log as ``column -> [(x, value)]``: ``train/*`` columns against
    ``step``, the others (``val/*``) against ``epoch``; empty cells skipped."""
    path = Path(path)
    out: dict[str, list[tuple[float, float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row_no, row in enumerate(reader, start=2):
                for col, cell in row.items():
                    if col in ("epoch", "step") or col is None or cell in (None, ""):
                        continue
                    x_cell = row.get("step" if col.startswith("train/") else "epoch")
                    try:
                        x, v = float(x_cell), float(cell)  # type: ignore[arg-type]
                    except (TypeError, ValueError):
                        raise DataError(
                            f"not a number: {cell!r}",
                            file=str(path),
                            sample=f"line {row_no}",
                            field=col,
                        ) from None
                    if math.isfinite(v):
                        out.setdefault(col, []).append((x, v))
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", file=str(path)) from None
    except csv.Error as exc:
        raise DataError(f"not a CSV log ({exc})", file=str(path)) from None
    return out


# ---------------------------------------------------------------------------- analyses
def _per_predicate(m: dict[str, Any], key: str, predicates: list[str]) -> list[float] | None:
    """A model's per-predicate vector aligned with ``predicates`` (lists as they are,
    name-keyed objects such as VidVRD's by name), or ``None``."""
    v = m.get(key)
    if isinstance(v, dict):
        if not all(p in v for p in predicates):
            return None
        v = [v[p] for p in predicates]
    if not isinstance(v, list) or len(v) != len(predicates) or not all(_is_number(x) for x in v):
        return None
    return [float(x) for x in v]


def head_body_tail(recalls: list[float], counts: list[int]) -> dict[str, float]:
    """Mean recall of the head / body / tail thirds of the predicates by training count
    (sorted by count, most frequent first, ties by index; ``numpy.array_split`` into three)."""
    import numpy as np

    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    parts = np.array_split(np.asarray(order, dtype=int), 3)
    r = np.asarray(recalls, dtype=float)
    return {
        name: float(r[idx].mean()) if len(idx) else float("nan")
        for name, idx in zip(("head", "body", "tail"), parts)
    }


def coarse_fine_confusion(
    confusion: list[list[float]], predicates: list[str], parents: list[str | None]
) -> list[dict[str, Any]]:
    """Per fine predicate (one with a coarse parent): where its GT relations' top-1
    predictions went. ``confusion`` is ``[C, C]`` with row / column 0 the background (column 0:
    pair not scored) and rows / columns ``1..C-1`` the foreground ``predicates``.

    Returns rows ``{"predicate", "parent", "count", "fine", "coarse", "sibling", "other",
    "unscored"}`` (fractions of the GT relations)."""
    index = {p: i + 1 for i, p in enumerate(predicates)}
    rows = []
    for i, (name, parent) in enumerate(zip(predicates, parents)):
        if parent is None:
            continue
        row = confusion[i + 1]
        total = float(sum(row))
        if total <= 0:
            continue
        siblings = [index[q] for q, pq in zip(predicates, parents) if pq == parent and q != name]
        fine = row[i + 1]
        coarse = row[index[parent]]
        sib = sum(row[j] for j in siblings)
        unscored = row[0]
        rows.append(
            {
                "predicate": name,
                "parent": parent,
                "count": int(total),
                "fine": fine / total,
                "coarse": coarse / total,
                "sibling": sib / total,
                "other": (total - fine - coarse - sib - unscored) / total,
                "unscored": unscored / total,
            }
        )
    return rows


# ---------------------------------------------------------------------------- writing
def _unique_labels(paths: list[Path]) -> list[str]:
    """The shortest path tails that tell the runs apart (``version_3``, ``a/version_0``)."""
    parts = [
        p.resolve().parent.parts if p.name == "metrics.json" else p.resolve().parts for p in paths
    ]
    depth = 1
    while depth < max(len(p) for p in parts):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
        depth += 1
    return [str(p) for p in paths]


def _load_runs(paths: list[Path], given: list[str] | None = None) -> list[RunResults]:
    files = [_results_file(p) for p in paths]
    labels = _unique_labels(files) if len(files) > 1 else [""]
    if given:
        if len(given) != len(paths):
            raise DataError(
                f"{len(given)} labels for {len(paths)} runs (one --label per run, in order)",
                field="--label",
            )
        if len(set(given)) != len(given) or not all(g.strip() for g in given):
            raise DataError("labels must be non-empty and distinct", field="--label")
        labels = list(given)
    runs = []
    for path, label in zip(paths, labels):
        run = load_run(path, label or None)

        def shown(name: str, label: str = label) -> str:
            if not label:
                return name
            return label if name == "model" else f"{label}: {name}"

        run.models = {}
        for name, m in run.doc["models"].items():
            for flat, metrics in flatten_models({name: m}).items():
                run.models[shown(name) + flat[len(name) :]] = metrics
        run.logs = {shown(name): log for name, log in run.logs.items()}
        runs.append(run)
    return runs


def _groups(runs: list[RunResults]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        d = run.doc
        key = " / ".join(str(x) for x in (d.get("protocol"), d.get("task")) if x)
        groups.setdefault(key, {}).update(run.models)
    return list(groups.items())


def write_report(
    results_path: str | Path | list[str | Path],
    out_dir: str | Path | None = None,
    k: int = 50,
    overwrite: bool = True,
    labels: list[str] | None = None,
) -> dict[str, Path]:
    """Render the report of one or more runs into ``out_dir`` (default: beside the first
    results file). ``labels`` name the runs in order (default: the shortest path tails that
    tell them apart).

    Every file is rendered under a temporary name and renamed into place only when all are
    complete (a failure leaves nothing behind); existing report files are replaced only with
    ``overwrite``.

    Returns:
        The written files by kind (``html``, ``markdown`` and the plots that apply).
    """
    from tailgraph.io.outputs import claim_file

    paths = [Path(p) for p in (results_path if isinstance(results_path, list) else [results_path])]
    if not paths:
        raise DataError("no run given", field="RUN_DIR")
    if k <= 0:
        raise DataError(f"K must be positive, got {k}", field="-k")
    first = paths[0]
    base_dir = Path(out_dir) if out_dir is not None else (first if first.is_dir() else first.parent)
    if base_dir.exists() and not base_dir.is_dir():
        raise DataError("exists and is not a folder", file=str(base_dir), field="--out")
    for name in REPORT_FILES.values():
        claim_file(base_dir / name, overwrite, field="--out")
    staged: list[tuple[Path, Path]] = []
    created = not base_dir.exists()
    failed = True
    try:
        files = _render_report(paths, base_dir, k, staged, labels)
        for tmp, final in staged:
            os.replace(tmp, final)
        for name in REPORT_FILES.values():  # a plot of an earlier report that no longer applies
            if base_dir / name not in files.values():
                (base_dir / name).unlink(missing_ok=True)
        failed = False
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if failed and created and base_dir.is_dir() and not any(base_dir.iterdir()):
            base_dir.rmdir()  # a failure leaves no empty output folder either
    return files


def _stage(out: Path, name: str, staged: list) -> Path:
    """A temporary name beside ``out / name`` (same suffix), renamed by :func:`write_report`."""
    final = out / name
    remove_stale_temporaries(final)
    tmp = temporary_name(final, final.suffix)
    staged.append((tmp, final))
    return tmp


def _render_report(
    paths: list[Path], out: Path, k: int, staged: list, labels: list[str] | None = None
) -> dict[str, Path]:
    from tailgraph.viz import plots

    runs = _load_runs(paths, labels)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    images: dict[str, Path] = {}  # kind -> staged file (inlined into the HTML)
    key = f"per_predicate_R@{k}"

    def plot(kind: str, draw) -> None:
        """Render one figure under its staged name (``draw(path)``) and record it."""
        tmp = _stage(out, REPORT_FILES[kind], staged)
        with naming_errors(out / REPORT_FILES[kind]):
            draw(tmp)
        files[kind] = out / REPORT_FILES[kind]
        images[kind] = tmp

    # per-predicate vectors of every model whose run has predicates and counts
    series = []  # (label, predicates, counts, recalls, run)
    for run in runs:
        preds, counts = run.doc.get("predicates"), run.doc.get("train_counts")
        if not preds or not counts:
            continue
        for name, m in run.models.items():
            r = _per_predicate(m, key, preds)
            if r is not None:
                series.append((name, preds, counts, r, run))

    if series:
        p0 = series[0][1]
        other = next((s for s in series if s[1] != p0), None)
        if other is not None:  # never compared by dropping one run's values
            raise DataError(
                f"its {len(other[1])} predicates differ from the {len(p0)} of "
                f"{series[0][4].path}: per-predicate results of different predicate lists "
                "cannot be compared (report the runs separately)",
                file=str(other[4].path),
                field="predicates",
            )
        same = {s[0]: s[3] for s in series}
        plot("plot", lambda t: plots.plot_per_predicate_recall(p0, same, series[0][2], t, k=k))
        plot(
            "long_tail",
            lambda t: plots.plot_long_tail([(s[0], s[2], s[3]) for s in series], t, k=k),
        )

    curves = {}
    for run in runs:
        for name, log in run.logs.items():
            c = read_training_log(log)
            if c:
                curves[name] = c
    if curves:
        plot("curves", lambda t: plots.plot_training_curves(curves, t))

    confusions = []  # (model, rows, matrix, predicates, parents)
    for run in runs:
        preds, parents = run.doc.get("predicates"), run.doc.get("coarse_parent")
        if not preds or not parents:
            continue
        for name, m in run.models.items():
            conf = m.get("predicate_confusion")
            if (
                isinstance(conf, list)
                and len(conf) == len(preds) + 1
                and all(isinstance(r, list) and len(r) == len(preds) + 1 for r in conf)
            ):
                rows = coarse_fine_confusion(conf, preds, parents)
                if rows:
                    confusions.append((name, rows, conf, preds, parents))
    if confusions:
        plot(
            "confusion",
            lambda t: plots.plot_hierarchy_confusion(
                [(c[0], c[2]) for c in confusions[:4]], confusions[0][3], confusions[0][4], t
            ),
        )

    sections = _sections(runs, series, confusions, k)
    md = _markdown(runs, sections, files, k)
    files["markdown"] = out / REPORT_FILES["markdown"]
    with naming_errors(files["markdown"]):
        _stage(out, REPORT_FILES["markdown"], staged).write_text(md, encoding="utf-8")
    page = _html(runs, sections, images, k)
    files["html"] = out / REPORT_FILES["html"]
    with naming_errors(files["html"]):
        _stage(out, REPORT_FILES["html"], staged).write_text(page, encoding="utf-8")
    return files


def _sections(runs, series, confusions, k) -> dict[str, Any]:
    tables = [(title, *results_table(models)) for title, models in _groups(runs)]
    hbt = []
    for name, _, counts, recalls, _ in series:
        g = head_body_tail(recalls, counts)
        hbt.append([name] + [f"{100 * g[x]:.2f}" for x in ("head", "body", "tail")])
    per_pred = None
    if series:
        p0, c0 = series[0][1], series[0][2]
        cols = [s for s in series if s[1] == p0]
        order = sorted(range(len(p0)), key=lambda i: (-c0[i], i))
        per_pred = (
            ["predicate", "train count"] + [s[0] for s in cols],
            [[p0[i], str(c0[i])] + [f"{100 * s[3][i]:.1f}" for s in cols] for i in order],
        )
    conf_tables = []
    for name, rows, *_ in confusions:
        conf_tables.append(
            (
                name,
                [
                    "fine predicate",
                    "coarse parent",
                    "GT",
                    "as fine",
                    "as parent",
                    "as sibling",
                    "other",
                    "not scored",
                ],
                [
                    [r["predicate"], r["parent"], str(r["count"])]
                    + [
                        f"{100 * r[x]:.1f}"
                        for x in ("fine", "coarse", "sibling", "other", "unscored")
                    ]
                    for r in rows
                ],
            )
        )
    timings = []
    for run in runs:
        t = run.doc.get("timings")
        if isinstance(t, dict):
            for phase, sec in t.items():
                if _is_number(sec):
                    timings.append(
                        [f"{run.label}: {phase}" if run.label else phase, f"{float(sec):.1f}"]
                    )
    return {
        "cards": run_cards(runs),
        "tables": tables,
        "hbt": hbt,
        "per_pred": per_pred,
        "confusion": conf_tables,
        "timings": timings,
    }


_CAPTIONS = {
    "long_tail": "Per-predicate recall@{k} against the predicate's training count (log scale); "
    "one series per model, lines through the means of equal-width log-count bins.",
    "plot": "Per-predicate recall@{k}, predicates sorted by training frequency (line: training "
    "count, log scale).",
    "curves": "Training curves from the CSV logs: losses against step, validation recalls "
    "against epoch.",
    "confusion": "Top-1 predicate of the GT relations of the hierarchy's predicates (rows: GT, "
    "normalised per row; groups: a coarse parent and its fine children).",
}


def _short(class_path: Any) -> str:
    return str(class_path).rsplit(".", 1)[-1] if class_path else "–"


def _spec(cfg: Any, *keys: str) -> Any:
    for key in keys:
        cfg = cfg.get(key) if isinstance(cfg, dict) else None
    return cfg


def run_card(run: RunResults) -> dict[str, str]:
    """What a run is: its recipe, data, model, method, epochs, seed, checkpoint and library
    versions (from the ``config.yaml`` and ``run.json`` beside its results), "–" when unknown."""
    import json

    import yaml

    from tailgraph.io.recipes import check_recipe_file

    folder = run.path.parent
    card = {"results": str(run.path)}
    cfg: dict = {}
    recipe = folder / "config.yaml"
    if recipe.is_file():
        try:
            check_recipe_file(recipe)
            loaded = yaml.safe_load(recipe.read_text(encoding="utf-8"))
            cfg = loaded if isinstance(loaded, dict) else {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError, DataError):
            cfg = {}
        card["recipe"] = str(recipe) if cfg else "– (unreadable config.yaml)"
    data = _spec(cfg, "data")
    root = _spec(data, "init_args", "root") if isinstance(data, dict) else None
    card["data"] = f"{_short(_spec(data, 'class_path'))} {root or ''}".strip() if data else "–"
    model = _spec(cfg, "model") or {}
    head = _spec(model, "head", "class_path")
    if _short(head) == "TypedHead":  # the head each relation type gets
        head = _spec(model, "head", "init_args", "head", "class_path") or head
    card["model"] = f"{_short(_spec(model, 'context', 'class_path'))} / {_short(head)}"
    method = _spec(model, "method", "class_path")
    card["method"] = _short(method) if method else "Supervised"
    card["epochs"] = str(_spec(cfg, "trainer", "max_epochs") or "–")
    card["seed"] = str(cfg.get("seed_everything", "–")) if cfg else "–"
    card["checkpoint"] = str(cfg.get("ckpt_path") or "–") if cfg else "–"
    counts = run.doc.get("train_counts")
    if isinstance(counts, list):
        card["training relations"] = f"{sum(counts):,} over {len(counts)} predicates"
    info = folder / "run.json"
    versions = "–"
    if info.is_file():
        try:
            v = json.loads(info.read_text(encoding="utf-8")).get("versions") or {}
            versions = ", ".join(
                f"{k} {v[k]}" for k in ("tailgraph", "torch", "lightning") if k in v
            )
        except (ValueError, OSError, AttributeError):
            versions = "– (unreadable run.json)"
    card["versions"] = versions or "–"
    return card


def run_cards(runs: list[RunResults]) -> tuple[list[str], list[list[str]]]:
    """The run cards as one table: a row per run."""
    cards = [run_card(r) for r in runs]
    keys = list(dict.fromkeys(k for c in cards for k in c))
    return ["run"] + keys, [
        [r.label or "run"] + [c.get(k, "–") for k in keys] for r, c in zip(runs, cards)
    ]


def _title(runs: list[RunResults]) -> str:
    tasks = sorted({str(r.doc.get("task")) for r in runs if r.doc.get("task")})
    return "tailgraph results" + (f" — {', '.join(tasks)}" if tasks else "")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _markdown(runs, sec, files, k) -> str:
    md = [f"# {_title(runs)}", ""]
    for run in runs:
        if run.doc.get("dataset"):
            md += [f"Data{(' (' + run.label + ')') if run.label else ''}: {run.doc['dataset']}", ""]
    md += ["## Runs", ""] + _md_table(*sec["cards"]) + [""]
    md += ["Recall in percent (graph constraint unless marked ng; mR = mean over predicates).", ""]
    for title, header, rows in sec["tables"]:
        if title:
            md += [f"## {title}", ""]
        md += _md_table(header, rows) + [""]
    if sec["hbt"]:
        md += [
            f"## Head / body / tail recall@{k} (%)",
            "",
            "Foreground predicates sorted by training count, cut in three equal thirds.",
            "",
        ]
        md += _md_table(["model", "head", "body", "tail"], sec["hbt"]) + [""]
    for kind in ("long_tail", "plot", "curves", "confusion"):
        if kind in files:
            md += [f"![{kind}]({files[kind].name})", "", _CAPTIONS[kind].format(k=k), ""]
    for name, header, rows in sec["confusion"]:
        md += [f"## Coarse / fine confusion — {name} (%)", ""]
        md += _md_table(header, rows) + [""]
    if sec["per_pred"]:
        md += [f"## Per-predicate recall@{k} (%)", ""]
        md += _md_table(*sec["per_pred"]) + [""]
    if sec["timings"]:
        md += ["## Timings", ""] + _md_table(["phase", "seconds"], sec["timings"]) + [""]
    return "\n".join(md)


def _html_table(header: list[str], rows: list[list[str]], sortable: bool = False) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    cls = " class='sortable'" if sortable else ""
    return f"<table{cls}><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


# a click on a header of a sortable table orders its rows by that column (numbers as numbers;
# a second click reverses); no library, the page stays one self-contained file
_SORT_SCRIPT = """<script>
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.style.cursor = 'pointer';
  th.title = 'sort';
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.from(body.rows);
    var up = th.dataset.order !== 'up';
    th.closest('tr').querySelectorAll('th').forEach(function (o) { delete o.dataset.order; });
    th.dataset.order = up ? 'up' : 'down';
    var key = function (r) {
      var t = r.cells[col].textContent.trim(), v = parseFloat(t);
      return isNaN(v) ? t.toLowerCase() : v;
    };
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0)
        : (typeof x === 'number' ? -1 : 1);
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
</script>"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}figure{margin:1em 0 2em}figcaption{color:#555;font-size:.9em}"
    "details{margin:1em 0}summary{cursor:pointer;font-weight:600}"
)


def _html(runs, sec, images, k) -> str:
    title = html.escape(_title(runs))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    for run in runs:
        if run.doc.get("dataset"):
            who = f" ({html.escape(run.label)})" if run.label else ""
            parts.append(f"<p>Data{who}: {html.escape(str(run.doc['dataset']))}</p>")
    parts.append("<h2>Runs</h2>" + _html_table(*sec["cards"]))
    parts.append(
        "<p>Recall in percent (graph constraint unless marked ng; mR = mean over predicates).</p>"
    )
    for t, header, rows in sec["tables"]:
        parts.append(f"<h2>Metrics{(' — ' + html.escape(t)) if t else ''}</h2>")
        parts.append(_html_table(header, rows))
    if sec["hbt"]:
        parts.append(f"<h2>Head / body / tail recall@{k}</h2>")
        parts.append(
            "<p>Foreground predicates sorted by training count, cut in three equal thirds; "
            "the mean per-predicate recall of each.</p>"
        )
        parts.append(_html_table(["model", "head", "body", "tail"], sec["hbt"]))
    heads = {
        "long_tail": "The long tail",
        "plot": "Per-predicate recall",
        "curves": "Training curves",
        "confusion": "Coarse / fine confusion",
    }
    for kind in ("long_tail", "plot", "curves", "confusion"):
        if kind in images:
            parts.append(f"<h2>{heads[kind]}</h2><figure>{_img(images[kind], kind)}")
            parts.append(f"<figcaption>{html.escape(_CAPTIONS[kind].format(k=k))}</figcaption>")
            parts.append("</figure>")
            if kind == "confusion":
                for name, header, rows in sec["confusion"]:
                    parts.append(f"<h3>{html.escape(name)} (%)</h3>")
                    parts.append(_html_table(header, rows))
    if sec["per_pred"]:
        parts.append(
            f"<details open><summary>Per-predicate recall@{k} (%) — click a column to sort"
            "</summary>"
        )
        header, rows = sec["per_pred"]
        parts.append(_html_table(header, rows, sortable=True) + "</details>")
    if sec["timings"]:
        parts.append("<h2>Timings</h2>" + _html_table(["phase", "seconds"], sec["timings"]))
    if sec["per_pred"]:
        parts.append(_SORT_SCRIPT)
    parts.append("</body></html>")
    return "".join(parts)
