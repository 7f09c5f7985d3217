"""HML against plain training, side by side: same model, data, budget and seeds.

Data sets (layout-only PredCls): ``synth`` = the demo's long-tailed synth-vg
(``configs/synthetic/hml_motifs_vg.yaml``), ``rsvg`` = ``../shared/data/rs-vg`` (real VG-format
annotations). Models: MOTIFS, VCTree, Transformer (hidden 128). Methods: ``plain``
(Supervised, ``epochs`` epochs) and ``hml`` (two stages of ``epochs / 2``), plus on MOTIFS /
synth the ablations of the paper's Tables 2 and 3: CR only, MR only, 1 / 2 / 3 stages,
λ ∈ {0, 0.25, 0.5, 1}. Mean ± std over ``--seeds``; R@K, mR@K, Mean@K (average of R@K and mR@K)
and recall of the head / body / tail thirds of the predicates by training frequency.

    .venv/bin/python benchmarks/bench_hml.py --part main --data synth [--seeds 0 1 2] [--epochs 8]
    .venv/bin/python benchmarks/bench_hml.py --part ablation [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path

import numpy as np
import torch
import yaml
from common import fit_and_test

ROOT = Path(__file__).resolve().parents[1]
KS = (20, 50, 100)
CONTEXTS = {
    "MOTIFS": "tailgraph.modeling.context.motifs.MotifsContext",
    "VCTree": "tailgraph.modeling.context.vctree.VCTreeContext",
    "Transformer": "tailgraph.modeling.context.transformer.TransformerContext",
}


def data_module(name: str, root_synth: str):
    from tailgraph.datamodules.vg import SynthVGDataModule, VGDataModule

    cfg = yaml.safe_load((ROOT / "configs" / "synthetic" / "hml_motifs_vg.yaml").read_text())
    if name == "synth":
        return SynthVGDataModule(**dict(cfg["data"]["init_args"], root=root_synth))
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "rs-vg"
    return VGDataModule(root=str(shared), layout_only=True, batch_size=32, num_val_im=200)


def run(dm, context: str, method: dict, epochs: int, seed: int) -> tuple[dict, float]:
    import lightning as L

    from tailgraph.engine.module import SGGModule

    cfg = yaml.safe_load((ROOT / "configs" / "synthetic" / "hml_motifs_vg.yaml").read_text())
    model = copy.deepcopy(cfg["model"])
    model["context"] = {"class_path": CONTEXTS[context], "init_args": {"hidden_dim": 128}}
    model["method"] = method
    L.seed_everything(seed, verbose=False)
    return fit_and_test(SGGModule(**model), dm, epochs)


def head_body_tail(metrics: dict, counts: list[int], k: int = 50) -> tuple[float, float, float]:
    """Mean recall of the most / middle / least frequent third of the predicates."""
    per = np.asarray(metrics[f"per_predicate_R@{k}"], dtype=float)
    order = np.argsort(-np.asarray(counts), kind="stable")
    thirds = np.array_split(order, 3)
    return tuple(float(per[t].mean()) for t in thirds)


def summary(rows: list[dict], counts: list[int]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for m in rows:
        for k in KS:
            out.setdefault(f"R@{k}", []).append(m[f"R@{k}"])
            out.setdefault(f"mR@{k}", []).append(m[f"mR@{k}"])
            out.setdefault(f"Mean@{k}", []).append((m[f"R@{k}"] + m[f"mR@{k}"]) / 2)
        for name, v in zip(("head", "body", "tail"), head_body_tail(m, counts)):
            out.setdefault(name, []).append(v)
    return out


def fmt(v: list[float]) -> str:
    return (
        f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}"
        if len(v) > 1
        else f"{100 * v[0]:.2f}"
    )


def table(results: dict[str, dict[str, list[float]]], cols: list[str]) -> list[str]:
    lines = ["| run | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, s in results.items():
        lines.append(f"| {name} | " + " | ".join(fmt(s[c]) for c in cols) + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=("main", "ablation", "stageloss"), default="main")
    p.add_argument("--data", choices=("synth", "rsvg"), default="synth")
    p.add_argument("--contexts", nargs="+", default=list(CONTEXTS), choices=list(CONTEXTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--root", default="data/synth-vg-tail")
    a = p.parse_args()
    torch.set_num_threads(2)
    dm = data_module(a.data if a.part == "main" else "synth", a.root)
    dm.prepare_data()
    dm.setup("fit")
    counts = [dm.vocab.predicate_counts[i] for i in dm.vocab.foreground_predicates]
    half = a.epochs // 2
    plain = {"class_path": "tailgraph.methods.base.Supervised"}

    def hml(**kw) -> dict:
        args = {"stage_epochs": [half, a.epochs - half]}
        args.update(kw)
        return {"class_path": "tailgraph.methods.hml.HML", "init_args": args}

    if a.part == "main":
        runs = {}
        for c in a.contexts:
            runs[f"{c}"] = (c, plain, a.epochs)
            runs[f"{c} + HML"] = (c, hml(), a.epochs)
    elif a.part == "stageloss":  # is the paper's ℓ_new reweighted? (Table 3a: 1 layer = MOTIFS)
        runs = {
            "MOTIFS (plain)": ("MOTIFS", plain, a.epochs),
            "HML, class-balanced stage loss (default)": ("MOTIFS", hml(), a.epochs),
            "HML, unweighted stage loss": ("MOTIFS", hml(stage_weighting="none"), a.epochs),
            "HML, 1 stage, unweighted": (
                "MOTIFS",
                hml(stage_epochs=[a.epochs], stage_weighting="none"),
                a.epochs,
            ),
        }
    else:
        third = max(1, a.epochs // 3)
        runs = {
            "MOTIFS (plain)": ("MOTIFS", plain, a.epochs),
            "HML, CR + MR (λ 0.5)": ("MOTIFS", hml(), a.epochs),
            "HML, CR only": ("MOTIFS", hml(use_mr=False), a.epochs),
            "HML, MR only": ("MOTIFS", hml(use_cr=False), a.epochs),
            "HML, neither (stages + class-balanced loss)": (
                "MOTIFS",
                hml(use_cr=False, use_mr=False),
                a.epochs,
            ),
            "HML, 1 stage": ("MOTIFS", hml(stage_epochs=[a.epochs]), a.epochs),
            "HML, 3 stages": (
                "MOTIFS",
                hml(stage_epochs=[third, third, a.epochs - 2 * third]),
                a.epochs,
            ),
            "HML, λ 0": ("MOTIFS", hml(lam=0.0), a.epochs),
            "HML, λ 0.25": ("MOTIFS", hml(lam=0.25), a.epochs),
            "HML, λ 1": ("MOTIFS", hml(lam=1.0), a.epochs),
        }
    results, times = {}, {}
    raw = {}
    for name, (ctx, method, epochs) in runs.items():
        rows = []
        for seed in a.seeds:
            m, sec = run(dm, ctx, method, epochs, seed)
            rows.append(m)
            times.setdefault(name, []).append(sec)
            print(
                f"{name} seed {seed}: R@50 {100 * m['R@50']:.2f} mR@50 {100 * m['mR@50']:.2f} "
                f"({sec:.0f} s)",
                flush=True,
            )
        results[name] = summary(rows, counts)
        raw[name] = [{k: v for k, v in r.items() if not k.startswith("per_")} for r in rows]
    cols = (
        [f"R@{k}" for k in KS]
        + [f"mR@{k}" for k in KS]
        + [f"Mean@{k}" for k in KS]
        + ["head", "body", "tail"]
    )
    data_name = {
        "synth": "the demo's long-tailed synth-vg",
        "rsvg": "RS-VG (../shared/data/rs-vg)",
    }[a.data if a.part == "main" else "synth"]
    lines = [
        f"## HML vs plain training — {a.part}, {data_name}",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_hml.py --part {a.part} --data {a.data} "
        f"--seeds "
        f"{' '.join(map(str, a.seeds))} --epochs {a.epochs}`",
        "",
        f"Layout-only PredCls, hidden 128, AdamW lr 2e-3 constant, {a.epochs} epochs for every "
        f"run (HML: {half} + "
        f"{a.epochs - half} by default), {len(dm.splits['train'])} training images, "
        f"{len(a.seeds)} seeds, mean ± std, "
        "percent; head / body / tail = mean R@50 of the most / middle / least frequent third of "
        "the predicates.",
        "",
    ]
    lines += table(results, cols)
    lines += [
        "",
        "Training seconds per run (mean): "
        + ", ".join(f"{k} {statistics.mean(v):.0f}" for k, v in times.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    tag = "_".join(c.lower() for c in a.contexts) if a.part == "main" else "motifs"
    out = (
        ROOT
        / "benchmarks"
        / "results"
        / f"hml_{a.part}_{a.data if a.part == 'main' else 'synth'}_{tag}.md"
    )
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
