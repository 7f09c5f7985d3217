"""BMP vs TEMPURA vs STTran on synth-ag PredCls (methods.md §1), same data, model size and
epochs, several seeds; with / semi / no constraint R@K and mR@K (K = 10, 20, 50) and seconds per
training epoch. Each run is `tailgraph fit` + `tailgraph test` of configs/synthetic/bmp_ag_predcls.yaml
with the variant's overrides.

    .venv/bin/python benchmarks/bench_bmp.py [--seeds 0 1 2] [--variants sttran tempura bmp]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "synthetic" / "bmp_ag_predcls.yaml"
SUPERVISED = {"class_path": "tailgraph.methods.base.Supervised"}


def variant_recipe(name: str, work: Path) -> Path:
    """The recipe of a variant: BMP as written; TEMPURA = the same model with plain losses for
    all epochs; STTran = no memory bank, linear heads, plain losses."""
    import yaml

    cfg = yaml.safe_load(RECIPE.read_text())
    if name in ("tempura", "sttran"):
        cfg["model"]["method"] = SUPERVISED
    if name == "bmp_vae":  # the prototype networks' VAE loss added (the released code leaves it out)
        cfg["model"]["method"]["init_args"]["vae_weight"] = 1.0
    if name == "sttran":
        cfg["model"]["context"]["init_args"].pop("memory")
        cfg["model"]["head"] = {"class_path": "tailgraph.modeling.heads.typed.TypedHead"}
    out = work / f"{name}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


VARIANTS = ("sttran", "tempura", "bmp", "bmp_vae")
KS = (10, 20, 50)


def run(variant: str, seed: int, data: Path, work: Path) -> dict:
    out = work / f"{variant}_{seed}"
    common = ["--data.init_args.root", str(data), "--trainer.default_root_dir", str(out),
              "--trainer.enable_progress_bar", "false", "--seed_everything", str(seed)]
    t0 = time.perf_counter()
    recipe = variant_recipe(variant, work)
    subprocess.run([sys.executable, "-m", "tailgraph.cli", "fit", "--config", str(recipe), *common],
                   check=True, capture_output=True)
    fit_s = time.perf_counter() - t0
    ckpt = out / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    subprocess.run([sys.executable, "-m", "tailgraph.cli", "test", "--config", str(recipe), *common,
                    "--ckpt_path", str(ckpt)], check=True, capture_output=True)
    m = json.loads((out / "runs" / "version_1" / "metrics.json").read_text())["models"]["model"]
    return {"fit_s": fit_s, "metrics": m}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["sttran", "tempura", "bmp"], choices=VARIANTS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bmp_synth_ag.md"))
    a = p.parse_args()
    import yaml

    epochs = yaml.safe_load(RECIPE.read_text())["trainer"]["max_epochs"]
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        data = work / "synth-ag"
        # generate the data once (the first fit would otherwise time the generation)
        from tailgraph.data.synthetic.ag import generate_synth_ag

        cfg = yaml.safe_load(RECIPE.read_text())["data"]["init_args"]
        generate_synth_ag(data, num_train=cfg["synth_train"], num_test=cfg["synth_test"], image_size=cfg["synth_size"])
        res = {v: [run(v, s, data, work) for s in a.seeds] for v in a.variants}
    (Path(a.out).with_suffix(".json")).write_text(json.dumps(res, indent=1))
    lines = ["## BMP vs TEMPURA vs STTran on synth-ag (PredCls)", "",
             f"Command: `.venv/bin/python benchmarks/bench_bmp.py --seeds {' '.join(map(str, a.seeds))}` "
             f"({len(a.seeds)} seeds, {epochs} epochs each, mean ± std, percent; 2 CPU cores)", ""]
    for c in ("with", "semi", "no"):
        lines += [f"**{c} constraint**", "",
                  "| variant | " + " | ".join(f"R@{k}" for k in KS) + " | " + " | ".join(f"mR@{k}" for k in KS) + " |",
                  "|---|" + "---|" * (2 * len(KS))]
        for v, runs in res.items():
            cells = []
            for key in [f"R@{k}" for k in KS] + [f"mR@{k}" for k in KS]:
                vals = np.array([100 * r["metrics"][c][key] for r in runs])
                cells.append(f"{vals.mean():.2f} ± {vals.std():.2f}")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines.append("")
    ref = "sttran" if "sttran" in res else next(iter(res))
    base = np.mean([r["fit_s"] for r in res[ref]]) / epochs
    lines += [f"| variant | seconds per epoch (fit wall time / epochs) | ratio to {ref} |", "|---|---|---|"]
    for v, runs in res.items():
        t = np.mean([r["fit_s"] for r in runs]) / epochs
        lines.append(f"| {v} | {t:.1f} | {t / base:.2f} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
