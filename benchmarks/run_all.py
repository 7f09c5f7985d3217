"""Run every benchmark script in this folder (each writes its own file in results/).

.venv/bin/python benchmarks/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_synth.py",
    "bench_pixel_model.py",
    "bench_eval_speed.py",
    "bench_eval_protocols.py",
    "bench_rs_vg.py",
    "bench_context_models.py",
    "bench_sgdet_memory.py",
    "bench_sttran_ag.py",
    "bench_data.py",
    "bench_model_throughput.py",
    "bench_engine_throughput.py",
    "bench_negmining.py",
    "bench_product.py",
]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, str(HERE / name)], cwd=HERE.parent) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}")
    print(
        "results in benchmarks/results/; benchmarks/RESULTS.md collects them with the demo's "
        "timings"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
