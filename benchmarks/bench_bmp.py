"""BMP vs TEMPURA vs STTran on synth-ag PredCls (methods.md §1), same data, model size and
epochs, several seeds; with / semi / no constraint R@K and mR@K (K = 10, 20, 50) and seconds per
training epoch. Each run is `tailgraph fit` + `tailgraph test` of
configs/synthetic/bmp_ag_predcls.yaml
with the variant's overrides.

    .venv/bin/python benchmarks/bench_bmp.py [--seeds 0 1 2] [--variants sttran tempura bmp]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ag_tables, cli_fit_test, recipe_epochs_and_synth_ag  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "synthetic" / "bmp_ag_predcls.yaml"
SUPERVISED = {"class_path": "tailgraph.methods.base.Supervised"}
TEMPURA = {"class_path": "tailgraph.methods.tempura.Tempura"}


def variant_recipe(name: str, work: Path) -> Path:
    """The recipe of a variant: BMP as written; TEMPURA = the same model with TEMPURA's training
    (plain losses, the memory filled) for all epochs; STTran = no memory bank, linear heads, plain
    losses."""
    import yaml

    cfg = yaml.safe_load(RECIPE.read_text())
    if name in ("tempura", "sttran"):
        cfg["model"]["method"] = TEMPURA if name == "tempura" else SUPERVISED
    if (
        name == "bmp_vae"
    ):  # the prototype networks' VAE loss added (the released code leaves it out)
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
    return cli_fit_test(variant_recipe(variant, work), seed, data, work / f"{variant}_{seed}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["sttran", "tempura", "bmp"], choices=VARIANTS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bmp_synth_ag.md"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        data = work / "synth-ag"
        epochs = recipe_epochs_and_synth_ag(RECIPE, data)
        res = {v: [run(v, s, data, work) for s in a.seeds] for v in a.variants}
    (Path(a.out).with_suffix(".json")).write_text(json.dumps(res, indent=1))
    lines = [
        "## BMP vs TEMPURA vs STTran on synth-ag (PredCls)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_bmp.py --seeds "
        f"{' '.join(map(str, a.seeds))}` "
        f"({len(a.seeds)} seeds, {epochs} epochs each, mean ± std, percent; 2 CPU cores)",
        "",
    ]
    lines += ag_tables(res, epochs, KS)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
