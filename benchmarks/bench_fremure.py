"""FReMuRe vs STTran vs TEMPURA on synth-ag PredCls (methods.md §2), with the rows of the
paper's Table 2; same data, features, model width and epochs, several seeds; with / semi / no
constraint R@K and mR@K (K = 10, 20, 50) and seconds per training epoch. Each run is
`tailgraph fit` + `tailgraph test` of configs/synthetic/fremure_gmmplus_ag_predcls.yaml with the
variant's overrides.

    .venv/bin/python benchmarks/bench_fremure.py [--seeds 0 1 2] [--variants ...]

Variants: sttran (STTran context, linear heads), tempura (STTran + memory bank + GMM heads,
K 6), fremure_bayes, fremure_gmmplus, and Table 2's rows on the GMM-Plus model: no_decouple,
no_frequency, no_dual_branch, head_gmm / head_linear (the GMM-Plus head replaced), and
fremure_code (the released code's gate, fusion and global phase) and fremure_code_memory (plus its
frequency-weighted memory bank, `weight_type: frequency`).
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
RECIPE = ROOT / "configs" / "synthetic" / "fremure_gmmplus_ag_predcls.yaml"
BAYES = ROOT / "configs" / "synthetic" / "fremure_bayes_ag_predcls.yaml"
SUPERVISED = {"class_path": "tailgraph.methods.base.Supervised"}
TYPED = "tailgraph.modeling.heads.typed.TypedHead"
GMM = {
    "class_path": TYPED,
    "init_args": {
        "head": {
            "class_path": "tailgraph.modeling.heads.gmm.GMMHead",
            "init_args": {"num_components": 6},
        }
    },
}
LINEAR = {"class_path": TYPED}
VARIANTS = (
    "sttran",
    "tempura",
    "fremure_bayes",
    "fremure_gmmplus",
    "no_decouple",
    "no_frequency",
    "no_dual_branch",
    "head_gmm",
    "head_linear",
    "fremure_code",
    "fremure_code_memory",
)
KS = (10, 20, 50)


def variant_recipe(name: str, work: Path) -> Path:
    import yaml

    cfg = yaml.safe_load((BAYES if name == "fremure_bayes" else RECIPE).read_text())
    m = cfg["model"]
    ctx = m["context"]["init_args"]
    if name in ("sttran", "tempura"):
        keep = {
            k: ctx[k] for k in ("proj_dim", "embed_dim", "num_heads", "ff_dim", "temporal_layers")
        }
        m["context"] = {
            "class_path": "tailgraph.modeling.context.sttran.STTranContext",
            "init_args": keep,
        }
        m["method"] = SUPERVISED
        m["head"] = LINEAR
        if name == "tempura":
            m["method"] = {"class_path": "tailgraph.methods.tempura.Tempura"}
            keep["memory"] = {
                "compute": "joint",
                "weight_type": "simple",
                "fusion": "late",
                "selection": "manual",
                "lam": 0.5,
            }
            m["head"] = GMM
    for switch in ("decouple", "frequency", "dual_branch"):
        if name == f"no_{switch}":
            ctx[switch] = False
    if name == "head_gmm":
        m["head"] = GMM
    if name == "head_linear":
        m["head"] = LINEAR
    if name in ("fremure_code", "fremure_code_memory"):
        ctx["variant"] = "code"
    if name == "fremure_code_memory":  # plus the code's memory: per-video frequency softmax
        ctx["memory"] = {"weight_type": "frequency", "temperature": 0.5, "lam": 0.5}
    out = work / f"{name}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def run(variant: str, seed: int, data: Path, work: Path) -> dict:
    r = cli_fit_test(variant_recipe(variant, work), seed, data, work / f"{variant}_{seed}")
    m = r["metrics"]
    print(
        f"{variant} seed {seed}: fit {r['fit_s']:.0f} s, with mR@20 "
        f"{100 * m['with']['mR@20']:.2f}, R@20 {100 * m['with']['R@20']:.2f}",
        flush=True,
    )
    return r


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fremure_synth_ag.md"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        data = work / "synth-ag"
        epochs = recipe_epochs_and_synth_ag(RECIPE, data)
        res: dict[str, list] = {v: [] for v in a.variants}
        for s in a.seeds:  # seeds outermost: a partial run still compares every variant
            for v in a.variants:
                res[v].append(run(v, s, data, work))
                Path(a.out).with_suffix(".json").write_text(json.dumps(res, indent=1))
    lines = [
        "## FReMuRe vs STTran vs TEMPURA on synth-ag (PredCls), with Table 2's rows",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_fremure.py --seeds "
        f"{' '.join(map(str, a.seeds))}` ({len(a.seeds)} seeds, {epochs} epochs each, "
        "mean ± std, percent; 2 CPU cores)",
        "",
    ]
    lines += ag_tables(res, epochs, KS)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
