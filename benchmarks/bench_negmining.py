"""Negative-sample mining on synth-oi: GT-only vs mined negatives, and the input ablation.

Every row trains the model of ``configs/synthetic/oi_negmine.yaml`` on the same synth-oi data
with the same budget (epochs, batches, optimiser), ``--seeds`` seeds each, and reports the OI
metrics on the test split as mean ± std (percent), next to the slides' Open Images numbers.

Rows (the slides' two tables):

* ``gt_only`` — only annotated pairs train (all inputs on);
* ``mined: visual only`` / ``+ CoordConv`` / ``+ embeddings`` / ``all`` — mined negatives.

    .venv/bin/python benchmarks/bench_negmining.py [--seeds 0 1 2] [--epochs 6]
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
import yaml
from common import fit_and_test

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("mAP", "mAP*", "mAP_FG", "mAP*_FG")
SLIDES = {
    "gt_only": (34.6, 38.8, 91.0, 96.7),
    "mined: all": (78.2, 83.3, 88.7, 94.4),
    "mined: visual only": (None, 80.8, None, None),
    "mined: + CoordConv": (None, 81.6, None, None),
    "mined: + embeddings": (None, 83.1, None, None),
}
ROWS = {  # name -> (negatives, use_coordconv, use_embeddings)
    "gt_only": ("gt_only", True, True),
    "mined: visual only": ("mined", False, False),
    "mined: + CoordConv": ("mined", True, False),
    "mined: + embeddings": ("mined", False, True),
    "mined: all": ("mined", True, True),
}


def run(
    cfg: dict, root: str, negatives: str, coordconv: bool, embeddings: bool, seed: int, epochs: int
) -> tuple[dict, float]:
    import lightning as L

    from tailgraph.datamodules.oi import OIDataModule
    from tailgraph.engine.module import SGGModule

    model = copy.deepcopy(cfg["model"])
    model["features"]["init_args"]["use_coordconv"] = coordconv
    model["context"]["init_args"]["use_embeddings"] = embeddings
    model["max_epochs_hint"] = epochs
    data = dict(cfg["data"]["init_args"], root=root, negatives=negatives, seed=seed)
    L.seed_everything(seed, verbose=False)
    dm = OIDataModule(**data)
    return fit_and_test(SGGModule(**model), dm, epochs)


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--root", default="data/synth-oi-mild")
    a = p.parse_args()
    torch.set_num_threads(2)
    cfg = yaml.safe_load((ROOT / "configs" / "synthetic" / "oi_negmine.yaml").read_text())
    results: dict[str, dict[str, list[float]]] = {}
    times: dict[str, list[float]] = {}
    per_pred: dict[str, list[dict]] = {}
    for name in a.rows:
        negatives, cc, emb = ROWS[name]
        for seed in a.seeds:
            m, sec = run(cfg, a.root, negatives, cc, emb, seed, a.epochs)
            results.setdefault(name, {k: [] for k in KEYS})
            for k in KEYS:
                results[name][k].append(m[k])
            times.setdefault(name, []).append(sec)
            per_pred.setdefault(name, []).append(m["per_predicate_AP"])
            print(
                f"{name} seed {seed}: "
                + ", ".join(f"{k} {100 * m[k]:.2f}" for k in KEYS)
                + f" ({sec:.0f} s)",
                flush=True,
            )
    d = cfg["data"]["init_args"]
    lines = [
        "## Negative-sample mining on synth-oi",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_negmining.py --seeds "
        f"{' '.join(map(str, a.seeds))} --epochs {a.epochs}`",
        "",
        f"Model and data of `configs/synthetic/oi_negmine.yaml` (synth-oi seed 0, "
        f"{d.get('synth_options', {})}: "
        f"{d['synth_train']} train images, 10 % held out, {d['synth_test']} test; "
        f"{d['shorter']}/{d['longer_max']} px; batches of {d['batch_size']} images, ≤ "
        f"{d['max_relations']} "
        f"pairs, 25–75 % positives), {a.epochs} epochs, AdamW, one-cycle schedule, "
        f"random-initialised ResNet-18, "
        f"{len(a.seeds)} seeds (mean ± std, percent). Slides: Open Images VRD with ImageNet "
        f"weights.",
        "",
        "| row | mAP | mAP* | mAP_FG | mAP*_FG | train s | slides (mAP / mAP* / mAP_FG / mAP*_FG) "
        "|",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ref = " / ".join("–" if v is None else f"{v:.1f}" for v in SLIDES[name])
        lines.append(
            f"| {name} | "
            + " | ".join(fmt(r[k]) for k in KEYS)
            + f" | {statistics.mean(times[name]):.0f} | {ref} |"
        )
    lines += [
        "",
        "Per-predicate AP (mean over seeds, percent):",
        "",
        "| row | " + " | ".join(per_pred[a.rows[0]][0]) + " |",
        "|---|" + "---|" * len(per_pred[a.rows[0]][0]),
    ]
    for name, rows in per_pred.items():
        cells = []
        for pred in rows[0]:
            vals = [r[pred] for r in rows if r[pred] is not None]
            cells.append(f"{100 * statistics.mean(vals):.1f}" if vals else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "negmining.md").write_text(text)


if __name__ == "__main__":
    main()
