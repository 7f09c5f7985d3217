"""Semi-constraint recall of trained synth-ag runs at several thresholds.

The semi constraint keeps every spatial / contacting column scored strictly above a threshold
(0.9 in the official evaluation), so its recall depends on how confident a head is, not only on
its ranking: a class-balanced head, or a softmax type whose mass is spread over more columns,
passes fewer columns at 0.9. This re-tests the runs that ``bench_video_methods.py`` left in
``--work`` (``<variant>_<seed>``) and evaluates their predictions at each threshold::

    .venv/bin/python benchmarks/bench_ag_semi_threshold.py --work /tmp/vm4 \\
        --variants "TEMPURA (softmax contacting, unit weight)" \\
        "BMP (real head samples + majority, no consistency, softmax contacting, unit weight)" \\
        --json benchmarks/results/ag_semi_threshold.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tempura_ablation import mean_std, semi_recall, test_variant  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="a bench_video_methods.py work folder")
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    ap.add_argument(
        "--json", required=True, help="{variant: {threshold: {R@20, mR@20}}}, in [0, 1]"
    )
    a = ap.parse_args()
    work = Path(a.work)
    data = work / "synth-ag"
    result: dict = {}
    for name in a.variants:
        by: dict[str, dict[str, list[float]]] = {}
        for seed in a.seeds:
            run = work / f"{name}_{seed}"
            t = test_variant(work / f"{name}_{seed}.yaml", run, seed, data, [])
            for th in a.thresholds:
                s = semi_recall(t["predictions"], data, th)
                for m in ("R@20", "mR@20"):
                    by.setdefault(str(th), {}).setdefault(m, []).append(s[m])
            print(
                name, seed, {th: round(100 * v["R@20"][-1], 2) for th, v in by.items()}, flush=True
            )
        result[name] = {th: {m: statistics.mean(v) for m, v in ms.items()} for th, ms in by.items()}
        print(f"| {name} | " + " | ".join(
            f"{mean_std(by[str(th)]['R@20'])} / {mean_std(by[str(th)]['mR@20'])}"
            for th in a.thresholds) + " |")  # fmt: skip
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
