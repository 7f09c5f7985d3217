"""Why TEMPURA is below STTran on synth-ag PredCls: its parts switched on one at a time, and
its test-time choices varied, on the runs of ``bench_video_methods.py`` (same data, cached trunk
features, budget and seeds).

Trained here (per seed, the video-methods recipes' cached-trunk form):

* ``STTran + GMM heads`` — STTran with TEMPURA's GMM heads (K 6), no memory;
* ``STTran + memory`` — STTran with TEMPURA's memory bank (and Tempura's training), linear
  heads.

Test-time variants of each seed's TEMPURA checkpoint (from ``--work``):

* the memory not fused at test (``use_memory_at_test: false``);
* Monte-Carlo evaluation of the GMM heads (``test_samples: 8``) instead of ``μ``;

and the semi-constraint threshold (0.5 / 0.7 / 0.9) on the test predictions of STTran and
TEMPURA (``tailgraph evaluate --semi-threshold``).

    .venv/bin/python benchmarks/bench_tempura_ablation.py --work benchmarks/results/video_methods \\
        --seeds 0 1 2 --epochs 3 --json OUT
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_video_methods import ag_recipe, thirds  # noqa: E402
from common import cli_fit_test  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GMM = {
    "class_path": "tailgraph.modeling.heads.typed.TypedHead",
    "init_args": {
        "head": {
            "class_path": "tailgraph.modeling.heads.gmm.GMMHead",
            "init_args": {"num_components": 6},
        }
    },
}
LINEAR = {
    "class_path": "tailgraph.modeling.heads.typed.TypedHead",
    "init_args": {"head": {"class_path": "tailgraph.modeling.heads.linear.LinearHead"}},
}


def variant_recipe(name: str, seed: int, work: Path, data: Path, epochs: int) -> Path:
    if name == "STTran + GMM heads":
        path = ag_recipe("STTran", seed, work, data, epochs)
        cfg = yaml.safe_load(path.read_text())
        cfg["model"]["head"] = GMM
    else:  # STTran + memory
        path = ag_recipe("TEMPURA", seed, work, data, epochs)
        cfg = yaml.safe_load(path.read_text())
        cfg["model"]["head"] = LINEAR
    out = work / f"{name.replace(' ', '_').replace('+', 'plus')}_{seed}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tailgraph.cli", *args], check=True, capture_output=True)


def test_variant(recipe: Path, run: Path, seed: int, data: Path, extra: list[str]) -> dict:
    """`tailgraph test` of ``run``'s checkpoint with ``extra`` overrides; the metrics and the
    h5 predictions' path."""
    common = ["--data.init_args.root", str(data), "--trainer.default_root_dir", str(run)]
    common += ["--trainer.enable_progress_bar", "false", "--seed_everything", str(seed)]
    from tailgraph.engine.checkpoints import latest_checkpoint

    ckpt = latest_checkpoint(run)  # the newest fit's, not version_0 of a reused folder
    before = set((run / "runs").glob("version_*"))
    cli("test", "--config", str(recipe), *common, "--ckpt_path", str(ckpt), "--pred-format",
        "h5", *extra)  # fmt: skip
    (new,) = set((run / "runs").glob("version_*")) - before
    metrics = json.loads((new / "metrics.json").read_text())["models"]["model"]
    return {"metrics": metrics, "predictions": str(next(new.glob("test_predictions.*")))}


def semi_recall(pred: str, data: Path, threshold: float) -> dict:
    out = Path(pred).with_suffix(f".semi{threshold}.json")
    cli("evaluate", "--protocol", "ag", "--gt", str(data), "--format", "ag", "--pred", pred,
        "--semi-threshold", str(threshold), "--json", str(out), "--overwrite")  # fmt: skip
    return json.loads(out.read_text())["semi"]


def mean_std(xs: list[float]) -> str:
    m = 100 * statistics.mean(xs)
    s = 100 * statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.2f} ± {s:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "video_methods"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    work, data = Path(a.work), Path(a.work) / "synth-ag"
    from tailgraph.protocols import DATA_KINDS

    counts = DATA_KINDS["ag"].stats(data)["filtered"]["splits"]["train"]["predicate_counts"]
    t0 = time.perf_counter()
    rows: dict[str, list[dict]] = {}
    semi: dict[str, dict[float, list[float]]] = {}
    for seed in a.seeds:
        for name in ("STTran + GMM heads", "STTran + memory"):
            recipe = variant_recipe(name, seed, work, data, a.epochs)
            run = work / f"{recipe.stem}"
            r = cli_fit_test(recipe, seed, data, run)
            rows.setdefault(name, []).append(r["metrics"])
            print(name, seed, round(r["metrics"]["with"]["mR@20"], 4), flush=True)
        for base in ("STTran", "TEMPURA"):
            recipe, run = work / f"{base}_{seed}.yaml", work / f"{base}_{seed}"
            variants = {f"{base} (as trained)": []}
            if base == "TEMPURA":
                mem = yaml.safe_load(recipe.read_text())["model"]["context"]["init_args"]["memory"]
                variants["TEMPURA, memory off at test"] = [
                    "--model.context.init_args.memory",
                    json.dumps({**mem, "use_memory_at_test": False}),
                ]
                variants["TEMPURA, Monte-Carlo test (8 draws)"] = [
                    "--model.head.init_args.head",
                    json.dumps(
                        {
                            "class_path": "tailgraph.modeling.heads.gmm.GMMHead",
                            "init_args": {"num_components": 6, "test_samples": 8},
                        }
                    ),
                ]
            for vname, extra in variants.items():
                t = test_variant(recipe, run, seed, data, extra)
                rows.setdefault(vname, []).append(t["metrics"])
                if vname.endswith("(as trained)"):
                    for th in (0.5, 0.7, 0.9):
                        s = semi_recall(t["predictions"], data, th)
                        semi.setdefault(base, {}).setdefault(th, []).append(s["R@20"])
                print(vname, seed, round(t["metrics"]["with"]["mR@20"], 4), flush=True)
    lines = [
        f"seeds {a.seeds}, {a.epochs} epochs, percent; with constraint unless named",
        "",
        "| variant | R@20 | mR@20 | semi R@20 | semi mR@20 | tail@20 |",
        "|---|---|---|---|---|---|",
    ]
    result: dict = {"rows": {}, "semi_threshold": {}}
    for name, ms in rows.items():
        tails = [thirds(m["with"]["per_predicate_R@20"], counts).get("tail", 0.0) for m in ms]
        cells = [
            mean_std([m["with"]["R@20"] for m in ms]),
            mean_std([m["with"]["mR@20"] for m in ms]),
            mean_std([m["semi"]["R@20"] for m in ms]),
            mean_std([m["semi"]["mR@20"] for m in ms]),
            mean_std(tails),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        result["rows"][name] = {
            "with": {k: statistics.mean(m["with"][k] for m in ms) for k in ("R@20", "mR@20")},
            "semi": {k: statistics.mean(m["semi"][k] for m in ms) for k in ("R@20", "mR@20")},
        }
    lines += ["", "semi-constraint R@20 by threshold:", "", "| model | 0.5 | 0.7 | 0.9 |"]
    lines.append("|---|---|---|---|")
    for base, by in semi.items():
        lines.append(f"| {base} | " + " | ".join(mean_std(by[t]) for t in (0.5, 0.7, 0.9)) + " |")
        result["semi_threshold"][base] = {str(t): statistics.mean(v) for t, v in by.items()}
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print("\n".join(lines))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
