"""DLL against VidVRD-II on synth-vrd, side by side: same base model, data, budget and seeds.

Data and model: ``configs/synthetic/dll_vrd.yaml`` (400 training / 100 test videos, 8-frame
segments, jittered tracklets, hidden 256, 20 epochs). The tracklet features are computed once
and shared by every run. Variants (the paper's Tables 1–4):

* ``VidVRD-II`` (focal losses), ``VidVRD-II + BCE`` (DLL with both parts off: the base model
  trained with DLL's target loss), ``+PDL``, ``+KDL``, ``+DLL``;
* PDL without adversarial disentanglement / mutual calibration / both (Table 2);
* mutual-calibration steps 1 / 2 × η 1e-3 / 1e-2 (Table 3);
* β 1e-3 / 1e-4 / 1e-5 for KDL, and Eq. 12's literal recurrence for α (Table 4);
* KDL / DLL with the header's own entry masked in the transfer (``transfer_mask``).

Mean ± std over ``--seeds`` of RelDet mR@50/100, R@50/100, Mean, mAP and RelTag P@5/10, plus the
recall of the head / body / tail thirds of the predicates by training count and seconds per
epoch.

    .venv/bin/python benchmarks/bench_dll.py [--seeds 0 1 2] [--epochs 20] [--parts main ablation]
        [--tracklets gt|jittered|tracked]
        [--train 400 --test 100 --root data/synth-vrd-400 --out benchmarks/results/dll_synth_vrd]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import yaml
from common import fit_and_test

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "synthetic" / "dll_vrd.yaml"
COLUMNS = (
    "mR@50",
    "mR@100",
    "RelDet_R@50",
    "RelDet_R@100",
    "Mean",
    "RelDet_mAP",
    "RelTag_P@5",
    "RelTag_P@10",
)
LINEAR = {
    "class_path": "tailgraph.modeling.heads.linear.LinearHead"
}  # = the base model's own linear head
SUPERVISED = {"class_path": "tailgraph.methods.base.Supervised"}


def variants(parts: list[str]) -> dict[str, dict]:
    """name -> {"method": DLL init_args overrides or None (Supervised), "head": head init_args
    overrides or LINEAR}."""
    v: dict[str, dict] = {}
    if "main" in parts:
        v["VidVRD-II"] = {"method": None, "head": LINEAR}
        v["VidVRD-II + BCE"] = {"method": {"pdl": False, "kdl": False}, "head": LINEAR}
        v["+PDL"] = {"method": {"kdl": False}, "head": {}}
        v["+KDL"] = {"method": {"pdl": False}, "head": LINEAR}
        v["+DLL"] = {"method": {}, "head": {}}
    if "ablation" in parts:
        v["PDL w/o AD"] = {"method": {"kdl": False, "adversarial": False}, "head": {}}
        v["PDL w/o MC"] = {"method": {"kdl": False}, "head": {"mc_steps": 0}}
        v["PDL w/o AD, MC"] = {
            "method": {"kdl": False, "adversarial": False},
            "head": {"mc_steps": 0},
        }
        v["PDL MC 1 step, eta 1e-2"] = {"method": {"kdl": False}, "head": {"eta": 0.01}}
        v["PDL MC 2 steps, eta 1e-3"] = {"method": {"kdl": False}, "head": {"mc_steps": 2}}
        v["PDL MC 2 steps, eta 1e-2"] = {
            "method": {"kdl": False},
            "head": {"mc_steps": 2, "eta": 0.01},
        }
        v["KDL beta 1e-3"] = {"method": {"pdl": False, "beta": 1e-3}, "head": LINEAR}
        v["KDL beta 1e-5"] = {"method": {"pdl": False, "beta": 1e-5}, "head": LINEAR}
        v["KDL, header entry masked"] = {
            "method": {"pdl": False, "transfer_mask": "target_and_header"},
            "head": LINEAR,
        }
        v["DLL, header entry masked"] = {
            "method": {"transfer_mask": "target_and_header"},
            "head": {},
        }
        v["KDL alpha recurrence (Eq. 12 literal)"] = {
            "method": {"pdl": False, "alpha_growth": "recurrence"},
            "head": LINEAR,
        }
    if "isolate" in parts:  # which part of KDL lowers mR: the transfer term's dose
        v["KDL, no transfer (alpha 0)"] = {
            "method": {"pdl": False, "alpha": 0.0, "alpha_max": 0.0},
            "head": LINEAR,
        }
        v["KDL, transfer alpha 1.0"] = {
            "method": {"pdl": False, "alpha": 1.0, "alpha_max": 1.0},
            "head": LINEAR,
        }
    return v


def model_spec(cfg: dict, variant: dict) -> dict:
    model = copy.deepcopy(cfg["model"])
    if variant["method"] is None:
        model["method"] = SUPERVISED
    else:
        model["method"]["init_args"].update(variant["method"])
    if variant["head"] is LINEAR:
        model["head"] = LINEAR
    else:
        model["head"]["init_args"].update(variant["head"])
    return model


def head_body_tail(metrics: dict, dm, k: int = 100) -> tuple[float, float, float]:
    """Mean recall@k of the most / middle / least frequent third of the predicates (training
    relation instances)."""
    names = [dm.vocab.predicates[p] for p in dm.vocab.foreground_predicates]
    counts = {n: 0 for n in names}
    for v in dm.splits["train"]:
        for r in v.extras["relation_instances"]:
            counts[r["predicate"]] += 1
    per = metrics[f"per_predicate_R@{k}"]
    present = [n for n in sorted(names, key=lambda n: -counts[n]) if n in per]
    thirds = np.array_split(np.array(present), 3)
    return tuple(float(np.mean([per[n] for n in t])) if len(t) else 0.0 for t in thirds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--parts", nargs="+", default=["main", "ablation"])
    ap.add_argument("--root", default=str(ROOT / "data" / "synth-vrd-400"))
    ap.add_argument(
        "--train", type=int, default=None, help="training videos (default: the recipe's)"
    )
    ap.add_argument("--test", type=int, default=None, help="test videos (default: the recipe's)")
    ap.add_argument(
        "--p-multilabel",
        type=float,
        default=0.0,
        help="synth-vrd's p_multilabel (pairs also annotated with their spatial predicate)",
    )
    ap.add_argument(
        "--p-confuse",
        type=float,
        default=0.0,
        help="synth-vrd's p_confuse (motion predicates annotated as their look-alike mate)",
    )
    ap.add_argument("--variants", nargs="+", default=None, help="run only these variants")
    ap.add_argument(
        "--tracklets",
        default=None,
        choices=["gt", "jittered", "tracked"],
        help="the data module's tracklet source (default: the recipe's, jittered)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dll_synth_vrd"))
    args = ap.parse_args()

    import lightning as L

    from tailgraph.datamodules.vidvrd import VidVRDDataModule
    from tailgraph.engine.module import SGGModule

    cfg = yaml.safe_load(RECIPE.read_text())
    epochs = args.epochs or int(cfg["trainer"]["max_epochs"])
    data = dict(cfg["data"]["init_args"], root=args.root)
    if args.train:
        data["synth_train"] = args.train
    if args.test:
        data["synth_test"] = args.test
    if args.tracklets:
        data["tracklets"] = args.tracklets
    if args.p_multilabel:
        data["synth_options"] = {
            **dict(data.get("synth_options") or {}),
            "p_multilabel": args.p_multilabel,
        }
    if args.p_confuse:
        data["synth_options"] = {
            **dict(data.get("synth_options") or {}),
            "p_confuse": args.p_confuse,
        }
    dm = VidVRDDataModule(**data)
    t0 = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - t0
    runs: dict[str, list[dict]] = {}
    for name, variant in variants(args.parts).items():
        if args.variants and name not in args.variants:
            continue
        for seed in args.seeds:
            L.seed_everything(seed, verbose=False)
            metrics, seconds = fit_and_test(SGGModule(**model_spec(cfg, variant)), dm, epochs)
            row = {c: float(metrics[c]) for c in COLUMNS}
            row["head"], row["body"], row["tail"] = head_body_tail(metrics, dm)
            row["s_per_epoch"] = seconds / epochs
            row["seed"] = seed
            runs.setdefault(name, []).append(row)
            print(name, seed, {k: round(v, 4) for k, v in row.items()}, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps(
            {"epochs": epochs, "seeds": args.seeds, "setup_seconds": setup_s, "runs": runs},
            indent=1,
        )
    )
    cols = list(COLUMNS) + ["head", "body", "tail", "s_per_epoch"]
    multi = f", p_multilabel {args.p_multilabel}" if args.p_multilabel else ""
    multi += f", p_confuse {args.p_confuse}" if args.p_confuse else ""
    lines = [
        f"synth-vrd ({data['synth_train']} / {data['synth_test']} videos{multi}, "
        f"{data.get('tracklets', 'gt')} tracklets), {epochs} "
        f"epochs, seeds {args.seeds}; mean ± std, in % (s/epoch in seconds); "
        f"data set-up incl. tracklet features {setup_s:.0f} s.",
        "",
        "| variant | "
        + " | ".join(c.replace("RelDet_", "").replace("RelTag_", "") for c in cols)
        + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, rows in runs.items():
        cells = []
        for c in cols:
            vals = [r[c] for r in rows]
            scale = 1.0 if c == "s_per_epoch" else 100.0
            sd = statistics.stdev(vals) * scale if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals) * scale:.2f} ± {sd:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
