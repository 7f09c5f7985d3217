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
        [--tracklets gt|jittered|tracked] [--max-step 0.25]
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
        v["KDL, non-target softmax over logits"] = {
            "method": {"pdl": False, "nontarget": "logits"},
            "head": LINEAR,
        }
        for tau in (0.5, 0.25):  # a peakier transfer target than the header's own row
            v[f"KDL, transfer target sharpened (tau {tau})"] = {
                "method": {"pdl": False, "transfer_temperature": tau},
                "head": LINEAR,
            }
        v["KDL, transfer on misranked samples only"] = {
            "method": {"pdl": False, "transfer_on": "misranked"},
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


def train_instance_counts(dm) -> dict[str, int]:
    """Training relation instances per foreground predicate name."""
    counts = {dm.vocab.predicates[p]: 0 for p in dm.vocab.foreground_predicates}
    for v in dm.splits["train"]:
        for r in v.extras["relation_instances"]:
            counts[r["predicate"]] += 1
    return counts


def head_body_tail(metrics: dict, dm, k: int = 100) -> tuple[float, float, float]:
    """Mean recall@k of the most / middle / least frequent third of the predicates (training
    relation instances)."""
    names = [dm.vocab.predicates[p] for p in dm.vocab.foreground_predicates]
    counts = train_instance_counts(dm)
    per = metrics[f"per_predicate_R@{k}"]
    present = [n for n in sorted(names, key=lambda n: -counts[n]) if n in per]
    thirds = np.array_split(np.array(present), 3)
    return tuple(float(np.mean([per[n] for n in t])) if len(t) else 0.0 for t in thirds)


_LABELLED: dict[int, list] = {}


def labelled_test_segments(dm) -> list:
    """The test videos' segments built as training segments are (the data module's tracklets
    and features, candidate pairs labelled against the relation instances; evaluation segments
    carry no targets), normalised and batched like the data module's; built once per module."""
    from torch.utils.data import DataLoader

    from tailgraph.datamodules.tracklet_segments import build_tracklet_segments
    from tailgraph.datamodules.vidvrd import _TrackletSegments, build_extractor
    from tailgraph.structures import collate_segments

    if id(dm) not in _LABELLED:
        segments = build_tracklet_segments(
            dm.splits["test"],
            dm.vocab,
            build_extractor(dm.feature_spec),
            length=dm.length,
            stride=dm.stride,
            max_size=dm.max_size,
            training=True,
            **dm.tracklet_options,
        )
        ds = _TrackletSegments(segments, dm.feature_mean, dm.feature_std, None)
        _LABELLED[id(dm)] = list(
            DataLoader(ds, batch_size=dm.batch_size, collate_fn=collate_segments)
        )
    return _LABELLED[id(dm)]


def score_diagnostics(module, dm) -> dict:
    """Where a trained model's predicate scores go on the test videos' labelled segment pairs
    (:func:`labelled_test_segments`, sigmoid scores). For the ground-truth positions of each
    third of the predicates by training relation instances (``head`` / ``body`` / ``tail``):
    the mean target score, the mean of the pair's largest non-target score, the share where
    the target outranks every non-target of its pair and, of those it does not, the share lost
    to the target's *header* (KDL's transfer source). Over all pairs: the mean non-target
    score, and the mean top score of pairs with no relation (false triplets that compete with
    the true ones in RelDet's ranking). A third with no test position has no entries."""
    import torch

    from tailgraph.methods.dll import PatternMap, header_predicates

    vocab = dm.vocab
    fg = list(vocab.foreground_predicates)
    names = [vocab.predicates[p] for p in fg]
    counts = train_instance_counts(dm)
    order = sorted(range(len(fg)), key=lambda j: -counts[names[j]])
    third = torch.zeros(len(fg), dtype=torch.int64)  # column -> 0 head, 1 body, 2 tail
    for i, t in enumerate(np.array_split(np.array(order), 3)):
        third[torch.as_tensor(t, dtype=torch.int64)] = i
    pmap, _, _ = PatternMap.from_names(
        [vocab.action_pattern[p] for p in fg], [vocab.spatial_pattern[p] for p in fg]
    )
    header = header_predicates(pmap, [counts[n] for n in names])
    acc: dict[str, list[float]] = {}

    def add(key: str, values) -> None:
        acc.setdefault(key, []).extend(float(x) for x in values)

    module.eval()
    with torch.no_grad():
        for batch in labelled_test_segments(dm):
            probs = torch.sigmoid(module.model(batch)["refined_logits"])
            targets = batch.targets.bool()
            if not probs.numel():
                continue
            add("nontarget_p", probs[~targets].tolist())
            empty = ~targets.any(1)
            add("background_top_p", probs[empty].max(1).values.tolist())
            rows, ks = targets.nonzero(as_tuple=True)
            others = probs[rows].masked_fill(targets[rows], -1.0)
            top_other, top_j = others.max(1)
            pk = probs[rows, ks]
            for name, part in (("head", 0), ("body", 1), ("tail", 2)):
                sel = third[ks] == part
                if not sel.any():
                    continue
                add(f"{name}_target_p", pk[sel].tolist())
                add(f"{name}_top_nontarget_p", top_other[sel].tolist())
                won = pk[sel] > top_other[sel]
                add(f"{name}_target_top1", won.tolist())
                lost = ~won
                add(
                    f"{name}_lost_to_header",
                    (top_j[sel][lost] == header[ks[sel][lost]]).tolist(),
                )
    return {k: float(np.mean(v)) if v else float("nan") for k, v in acc.items()}


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
    ap.add_argument(
        "--max-step",
        type=float,
        default=None,
        help="synth-vrd's max_step (subjects reach their relations along ramps, no jumps)",
    )
    ap.add_argument("--variants", nargs="+", default=None, help="run only these variants")
    ap.add_argument(
        "--tracklets",
        default=None,
        choices=["gt", "jittered", "tracked"],
        help="the data module's tracklet source (default: the recipe's, jittered)",
    )
    ap.add_argument(
        "--scores",
        action="store_true",
        help="also record where each model's test scores go (score_diagnostics)",
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
    if args.max_step is not None:
        data["synth_options"] = {
            **dict(data.get("synth_options") or {}),
            "max_step": args.max_step,
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
            module = SGGModule(**model_spec(cfg, variant))
            metrics, seconds = fit_and_test(module, dm, epochs)
            row = {c: float(metrics[c]) for c in COLUMNS}
            row["head"], row["body"], row["tail"] = head_body_tail(metrics, dm)
            row["s_per_epoch"] = seconds / epochs
            row["seed"] = seed
            if args.scores:
                row["scores"] = score_diagnostics(module, dm)
            runs.setdefault(name, []).append(row)
            print(
                name,
                seed,
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
                flush=True,
            )
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
    if args.scores:  # where the scores go, mean over seeds (score_diagnostics)
        keys = sorted({k for rows in runs.values() for r in rows for k in r["scores"]})
        lines += ["", "| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, rows in runs.items():
            cells = [
                f"{np.nanmean([r['scores'].get(k, float('nan')) for r in rows]):.3f}" for k in keys
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
