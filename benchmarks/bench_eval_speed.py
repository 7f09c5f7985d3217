"""VG evaluation at test-set scale: the SGB-shaped reference, tailgraph's API, and the
``tailgraph evaluate`` command on the binary format (and on JSON where it fits), side by side
on identical, deterministically generated inputs (``benchmarks/eval_cases.py``).

Cases: SGDet 500 and 2,000 images (80 boxes, 6,320 pairs × 51 scores, ~10 GT boxes, ~6
relations); PredCls 2,000 images (20 boxes, 380 pairs × 51 scores). Each CLI run is a fresh
process whose peak RSS is read from ``wait4``; files are read from a warm page cache.

    .venv/bin/python benchmarks/bench_eval_speed.py [--cases sgdet:500 sgdet:2000 predcls:2000]
                                                    [--json-cli predcls:2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.eval_cases import NUM_CLASSES, NUM_PREDICATES, make_case  # noqa: E402
from benchmarks.sgb_shaped import evaluate as reference_evaluate  # noqa: E402
from tailgraph.evaluation.vg import evaluate_vg  # noqa: E402
from tailgraph.io.binformat import ground_truth_arrays, predictions_arrays, write_binary  # noqa: E402

KS = (20, 50, 100)
META = {
    "protocol": "vg",
    "object_classes": ["__background__"] + [f"class{i}" for i in range(1, NUM_CLASSES)],
    "predicates": ["__background__"] + [f"predicate{i}" for i in range(1, NUM_PREDICATES)],
}


# The command runs as a grandchild: a fork of this (large) process would report this
# process's resident memory as the child's peak, so a small launcher forks it instead.
LAUNCH = (
    "import os, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "p = subprocess.Popen([sys.executable, '-m', 'tailgraph.cli', 'evaluate', *sys.argv[1:]],"
    " stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(time.perf_counter() - t0, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))\n"
)


def run_cli(args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of ``tailgraph evaluate ARGS`` in a new process."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCH, *args], cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode:
        print(out.stderr, file=sys.stderr)
        return 0.0, 0.0, out.returncode
    wall, rss, code = out.stdout.split()
    if int(code):
        print(out.stderr, file=sys.stderr)
    return float(wall), float(rss), int(code)


def max_diff(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) for k in a if isinstance(a[k], float))


def write_json_files(tmp: Path, gts, preds) -> tuple[Path, Path]:
    def arr(v):
        return v.tolist() if isinstance(v, np.ndarray) else v

    gt = tmp / "gt.json"
    pred = tmp / "pred.json"
    gt.write_text(
        json.dumps(
            {
                "format": "tailgraph-sg/1",
                **META,
                "images": [{k: arr(v) for k, v in g.items()} for g in gts],
            }
        )
    )
    with open(pred, "w") as f:
        json.dump(
            {
                "format": "tailgraph-sg/1",
                "images": [{k: arr(v) for k, v in p.items()} for p in preds],
            },
            f,
        )
    return gt, pred


def bench_case(mode: str, n: int, json_cli: bool, tmp: Path) -> dict:
    gts, preds = make_case(n, mode, seed=0)
    zs = [
        [int(g["labels"][r[0]]), int(g["labels"][r[1]]), int(r[2])]
        for g in gts[:5]
        for r in g["relations"][:3]
    ]
    (tmp / "zs.json").write_text(json.dumps(zs))
    scores_mb = sum(p["predicate_scores"].nbytes for p in preds) / 2**20
    evaluate_vg(gts[:20], preds[:20], mode, KS, zs, num_predicates=NUM_PREDICATES)  # warm-up

    t0 = time.perf_counter()
    ref = reference_evaluate(gts, preds, mode, KS, NUM_PREDICATES, zeroshot=zs)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    api = evaluate_vg(gts, preds, mode, KS, zs, num_predicates=NUM_PREDICATES)
    t_api = time.perf_counter() - t0
    t0 = time.perf_counter()
    api2 = evaluate_vg(gts, preds, mode, KS, zs, num_predicates=NUM_PREDICATES, workers=2)
    t_api2 = time.perf_counter() - t0
    assert api2 == api, "workers=2 must give the numbers of one process"
    t0 = time.perf_counter()
    for p in preds:
        p["predicate_scores"].max()
    t_floor = time.perf_counter() - t0

    write_binary(tmp / "gt.h5", "ground_truth", ground_truth_arrays(gts), META)
    write_binary(tmp / "pred.h5", "predictions", predictions_arrays(preds))
    args = [
        "--protocol",
        "vg",
        "--mode",
        mode,
        "--zeroshot",
        str(tmp / "zs.json"),
        "--json",
        str(tmp / "m.json"),
        "--overwrite",
    ]
    t_cli, rss_cli, code = run_cli(
        args + ["--gt", str(tmp / "gt.h5"), "--pred", str(tmp / "pred.h5")]
    )
    assert code == 0
    cli = json.loads((tmp / "m.json").read_text())
    t_py, rss_py, _ = run_cli(["--help"])  # interpreter + import floor of the command
    row = {
        "case": f"{mode} {n}",
        "images": n,
        "scores_mb": scores_mb,
        "t_ref": t_ref,
        "t_api": t_api,
        "t_api2": t_api2,
        "t_floor": t_floor,
        "t_cli": t_cli,
        "rss_cli": rss_cli,
        "t_start": t_py,
        "diff_api": max_diff(ref, api),
        "diff_cli": max_diff(ref, cli),
        "metrics": len(ref),
    }
    if json_cli:
        gj, pj = write_json_files(tmp, gts, preds)
        t_json, rss_json, code = run_cli(args + ["--gt", str(gj), "--pred", str(pj)])
        assert code == 0
        row.update(
            t_json=t_json,
            rss_json=rss_json,
            diff_json=max_diff(ref, json.loads((tmp / "m.json").read_text())),
        )
        gj.unlink()
        pj.unlink()
    for f in ("gt.h5", "pred.h5"):
        (tmp / f).unlink()
    return row


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", nargs="+", default=["sgdet:500", "sgdet:2000", "predcls:2000"])
    p.add_argument(
        "--json-cli", nargs="*", default=["predcls:2000"], help="cases also run through JSON"
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "evaluation_speed.md"))
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
        for case in a.cases:
            mode, n = case.split(":")
            rows.append(bench_case(mode, int(n), case in a.json_cli, Path(d)))
            print(rows[-1], flush=True)
    cmd = "benchmarks/bench_eval_speed.py" + (
        f" --cases {' '.join(a.cases)}" if a.cases != p.get_default("cases") else ""
    )
    lines = [
        "## VG evaluation speed at test-set scale (API and command line, binary format)",
        "",
        f"Command: `.venv/bin/python {cmd}` (2 cores; one process at a time)",
        "",
        "| case | scores | SGB-shaped reference | `evaluate_vg` (API) | API, `workers=2` | "
        "`tailgraph evaluate` .h5 (CLI) | CLI peak RSS | JSON CLI | one read of the scores | API "
        "÷ read |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        js = (
            f"{r['t_json']:.1f} s ({r['t_ref'] / r['t_json']:.1f}×), {r['rss_json']:.0f} MB"
            if "t_json" in r
            else "not run"
        )
        lines.append(
            f"| {r['case']} | {r['scores_mb']:.0f} MB | {r['t_ref']:.1f} s | {r['t_api']:.2f} s "
            f"(**{r['t_ref'] / r['t_api']:.0f}×**) "
            f"| {r['t_api2']:.2f} s (**{r['t_ref'] / r['t_api2']:.0f}×**) "
            f"| {r['t_cli']:.2f} s (**{r['t_ref'] / r['t_cli']:.0f}×**) | {r['rss_cli']:.0f} MB | "
            f"{js} | {r['t_floor']:.3f} s "
            f"| {r['t_api'] / r['t_floor']:.0f}× |"
        )
    lines += [""]
    for r in rows:
        lines.append(
            f"- {r['case']}: max |difference| to the reference over {r['metrics']} metrics: API "
            f"{r['diff_api']:.1e}, "
            f"CLI {r['diff_cli']:.1e}"
            + (f", JSON CLI {r['diff_json']:.1e}" if "diff_json" in r else "")
            + f"; per-image API time {1e3 * r['t_api'] / r['images']:.3f} ms "
            + f"({1e3 * (r['t_api'] - r['t_floor']) / r['images']:.3f} ms above the read)."
        )
    lines.append(
        f"- The CLI times include starting Python and importing the command "
        f"({rows[0]['t_start']:.2f} s for `--help`)."
    )
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["diff_api"] < 1e-12 and r["diff_cli"] < 1e-12 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
