"""The video methods against their baselines, on the benchmarks that can show debiasing.

synth-ag PredCls (400 / 100 videos, every predicate >= 30 training relations): STTran,
TEMPURA, BMP (from the same seed's TEMPURA checkpoint, ``model.init_from``), FReMuRe with
Bayesian heads and with GMM-Plus heads — every run from the recipes in ``configs/synthetic/``
with the same frozen-trunk cached features (``CachedTrunkFeatures``; the trunk's maps computed
once per seed and shared by the variants), budget and data. synth-vrd (1000 / 300 videos):
VidVRD-II (focal), VidVRD-II + BCE, +PDL, +KDL, +DLL (``bench_dll.py``'s variants, same
tracklet features). Mean ± std over ``--seeds``; R@K, mR@K and the recall of the head / body /
tail thirds of the predicates by training count; seconds per epoch.

    .venv/bin/python benchmarks/bench_video_methods.py --seeds 0 1 2 --json OUT
    .venv/bin/python benchmarks/bench_video_methods.py --quick --json OUT
        # seed 0 of STTran, TEMPURA, BMP, FReMuRe-bayes, VidVRD-II + BCE and +DLL, with 2 AG
        # epochs (BMP 1) and 6 VidVRD epochs

``OUT``: ``{"ag": {variant: {"with": {metric: mean}, "semi": ..., "no": ...}}, "vidvrd":
{variant: {metric: mean}}}`` with metric names as ``tailgraph evaluate --json`` writes them
(values in [0, 1]); ``OUT`` with ``.runs.json`` holds every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli_fit_test  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SYN = ROOT / "configs" / "synthetic"
AG_RECIPES = {
    "STTran": "ag_predcls_sttran",
    "TEMPURA": "tempura_ag_predcls",
    "BMP": "bmp_ag_predcls",
    "FReMuRe-bayes": "fremure_bayes_ag_predcls",
    "FReMuRe-GMM-Plus": "fremure_gmmplus_ag_predcls",
}


def _shared_gmm_plus(**head_options) -> tuple[str, dict]:
    """FReMuRe-GMM-Plus with shared weights and its GMM-Plus head (the recipe's K and variance
    clamp) with ``head_options`` changed."""
    head = {"num_components": 6, "var_min": 0.001, "var_max": 5.0, **head_options}
    return (
        "FReMuRe-GMM-Plus",
        {
            "context.share_weights": True,
            "head.head": {
                "class_path": "tailgraph.modeling.heads.gmm_plus.GMMPlusHead",
                "init_args": head,
            },
        },
    )


# variants that are a recipe with method options changed: name -> (recipe variant, options)
AG_OPTIONS = {
    "BMP (head-input prototypes)": ("BMP", {"prototype_features": "head_input"}),
    "BMP (head-input prototypes, VAE)": (
        "BMP",
        {"prototype_features": "head_input", "vae_weight": 1.0},
    ),
    "BMP (VAE)": ("BMP", {"vae_weight": 1.0}),
    # FReMuRe's Table 2 switches (context options, "context." prefix)
    "FReMuRe-bayes (no frequency)": ("FReMuRe-bayes", {"context.frequency": False}),
    "FReMuRe-bayes (no dual branch)": ("FReMuRe-bayes", {"context.dual_branch": False}),
    "FReMuRe-bayes (no decouple)": ("FReMuRe-bayes", {"context.decouple": False}),
    "FReMuRe-bayes (shared weights)": ("FReMuRe-bayes", {"context.share_weights": True}),
    "FReMuRe-GMM-Plus (shared weights)": ("FReMuRe-GMM-Plus", {"context.share_weights": True}),
    # Eq. 6's density head trained on its means (no training perturbation), as evaluated
    "FReMuRe-GMM-Plus (no perturbation, shared weights)": _shared_gmm_plus(perturb=False),
    # the same with the perturbation drawn at 0.3 of its size (a dose between the two)
    "FReMuRe-GMM-Plus (0.3 perturbation, shared weights)": _shared_gmm_plus(noise_scale=0.3),
    # the released code's GMM-Plus (a mixture over perturbed logits) in place of Eq. 6's density
    "FReMuRe-GMM-Plus (code head, shared weights)": _shared_gmm_plus(variant="code"),
    # what FReMuRe adds after TEMPURA's relation feature, one part at a time: the Bayesian
    # heads (a linear head per type instead), the global phase (STTran's: learned frame
    # embedding, later-frame rule)
    "FReMuRe (linear head)": (
        "FReMuRe-bayes",
        {"head.head": {"class_path": "tailgraph.modeling.heads.linear.LinearHead"}},
    ),
    "FReMuRe-bayes (STTran global phase)": (
        "FReMuRe-bayes",
        {"context.position": "learned", "context.aggregate": "later"},
    ),
    # TEMPURA's uncertainty-weighted memories (spec §0): the GMM heads' aleatoric, epistemic or
    # summed uncertainty weights each sample's share of its class prototype
    **{
        f"TEMPURA (memory {w})": (
            "TEMPURA",
            {
                "context.memory": {
                    "compute": "joint",
                    "weight_type": w,
                    "fusion": "late",
                    "selection": "manual",
                    "lam": 0.5,
                }
            },
        )
        for w in ("al", "ep", "both")
    },
    # the contacting type as one softmax (its columns compete for a pair's argmax, which the
    # with-constraint metric keeps), its loss weight that of a softmax type (1, as attention)
    "STTran (softmax contacting)": (
        "STTran",
        {"data.contact_single_label": True, "type_weights": {"spatial": 6}},
    ),
    "TEMPURA (softmax contacting)": ("TEMPURA", {"data.contact_single_label": True}),
    # the same with the contacting loss weight of a softmax type (1): the variant above keeps
    # the recipe's x17 on a cross-entropy, a 17-fold larger step for that type only
    "TEMPURA (softmax contacting, unit weight)": (
        "TEMPURA",
        {"data.contact_single_label": True, "type_weights": {"spatial": 6}},
    ),
    "BMP (real head samples + majority, no consistency, softmax contacting, unit weight)": (
        "BMP",
        {
            "head_samples": "real",
            "majority_samples": True,
            "lambda_consist": 0.0,
            "type_weights": {"spatial": 6},
            "data.contact_single_label": True,
        },
    ),
    # the same stage on the contacting head only: the sigmoid types keep TEMPURA's heads
    "BMP (real head samples + majority, no consistency, softmax contacting, unit weight, "
    "contacting head only)": (
        "BMP",
        {
            "head_samples": "real",
            "majority_samples": True,
            "lambda_consist": 0.0,
            "type_weights": {"spatial": 6},
            "head_types": ["contacting"],
            "data.contact_single_label": True,
        },
    ),
    # BMP's balanced head stage on a softmax contact type, from the TEMPURA trained the same way
    "BMP (real head samples + majority, no consistency, softmax contacting)": (
        "BMP",
        {
            "head_samples": "real",
            "majority_samples": True,
            "lambda_consist": 0.0,
            "data.contact_single_label": True,
        },
    ),
    # the ablation that isolates the samples: BMP's counts and losses on real head inputs
    "BMP (real head samples)": ("BMP", {"head_samples": "real"}),
    "BMP (real head samples, no consistency)": (
        "BMP",
        {"head_samples": "real", "lambda_consist": 0.0},
    ),
    "BMP (no consistency)": ("BMP", {"lambda_consist": 0.0}),
    "BMP (+ majority samples)": ("BMP", {"majority_samples": True}),
    "BMP (+ majority samples, no consistency)": (
        "BMP",
        {"majority_samples": True, "lambda_consist": 0.0},
    ),
    "BMP (real head samples + majority)": (
        "BMP",
        {"head_samples": "real", "majority_samples": True},
    ),
    "BMP (real head samples + majority, no consistency)": (
        "BMP",
        {"head_samples": "real", "majority_samples": True, "lambda_consist": 0.0},
    ),
}
VRD_VARIANTS = ("VidVRD-II", "VidVRD-II + BCE", "+PDL", "+KDL", "+DLL")
QUICK = {"ag": ("STTran", "TEMPURA", "BMP", "FReMuRe-bayes"), "vidvrd": ("VidVRD-II + BCE", "+DLL")}
AG_METRICS = ("R@10", "R@20", "R@50", "mR@10", "mR@20", "mR@50")
VRD_METRICS = ("RelDet_mAP", "RelDet_R@50", "RelDet_R@100", "mR@50", "mR@100", "RelTag_P@5")


def thirds(per_predicate, counts: dict) -> dict:
    """Mean recall of the most / middle / least frequent third of the predicates
    (``per_predicate``: a dict by name, or a list in the vocabulary's order of ``counts``)."""
    if isinstance(per_predicate, list):
        per_predicate = dict(zip(counts, per_predicate))
    names = sorted((n for n in per_predicate if n in counts), key=lambda n: -counts[n])
    if not names:
        return {}
    k = len(names)
    parts = {
        "head": names[: k // 3],
        "body": names[k // 3 : 2 * k // 3],
        "tail": names[2 * k // 3 :],
    }
    return {
        p: statistics.mean(float(per_predicate[n]) for n in ns) for p, ns in parts.items() if ns
    }


def ag_recipe(
    name: str,
    seed: int,
    work: Path,
    data: Path,
    epochs: int | None,
    trunk: str = "random",
    trunk_from: str | None = None,
    column_mean: bool = False,
) -> Path:
    """The variant's recipe with the shared trunk and, for BMP, the same seed's TEMPURA run as
    its start. ``trunk``: ``random`` — a frozen, randomly initialised trunk, its maps cached;
    ``learned`` — the trunk of the checkpoint ``trunk_from`` (e.g. a run with a trainable
    trunk), frozen and cached; ``trainable`` — the recipe's pixel path, trunk trained."""
    base, options = AG_OPTIONS.get(name, (name, {}))
    cfg = yaml.safe_load((SYN / f"{AG_RECIPES[base]}.yaml").read_text())
    for key, value in options.items():  # method options; "context.NAME": the context's
        part, _, opt = key.rpartition(".")
        if part == "data":  # "data.NAME": the data module's
            cfg["data"]["init_args"][opt] = value
            continue
        cfg["model"][part or "method"].setdefault("init_args", {})[opt] = value
    feats = cfg["model"]["features"]
    args = feats.setdefault("init_args", {})
    if trunk == "trainable":
        args["frozen_trunk"] = False
    else:
        feats["class_path"] = "tailgraph.modeling.roi.CachedTrunkFeatures"
        args["cache_dir"] = str(work / "trunk_cache")
        if trunk == "learned":
            if trunk_from is None:
                raise ValueError("trunk 'learned' needs trunk_from")
            args["weights_path"] = str(trunk_from)
    if column_mean:
        method = cfg["model"].get("method") or {}
        (method.get("init_args") or {}).pop("type_weights", None)
    if base == "BMP":
        cfg["model"]["init_from"] = str(work / f"{bmp_start(name)}_{seed}")
    if epochs is not None:
        cfg["trainer"]["max_epochs"] = epochs if base != "BMP" else max(1, epochs // 3)
    cfg["trainer"].pop("default_root_dir", None)
    path = work / f"{name}_{seed}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def bmp_start(name: str) -> str:
    """The TEMPURA variant a BMP variant starts from: the one with the same data options and
    loss type weights (``TEMPURA`` itself when the BMP variant changes neither)."""

    def shared(options: dict) -> dict:
        return {k: v for k, v in options.items() if k.startswith("data.") or k == "type_weights"}

    wanted = shared(AG_OPTIONS.get(name, (name, {}))[1])
    if not wanted:
        return "TEMPURA"
    for variant, (base, options) in AG_OPTIONS.items():
        if base == "TEMPURA" and shared(options) == wanted:
            return variant
    wanted.pop("type_weights", None)  # a BMP variant may set its own head-stage weights
    for variant, (base, options) in AG_OPTIONS.items():
        if base == "TEMPURA" and shared(options) == wanted:
            return variant
    raise ValueError(f"no TEMPURA variant with the data options of {name!r}: {wanted}")


def run_ag(
    names,
    seeds,
    work: Path,
    epochs: int | None,
    trunk: str = "random",
    trunk_from=None,
    data_dir=None,
    column_mean: bool = False,
) -> dict:
    from tailgraph.data.synthetic.ag import generate_synth_ag
    from tailgraph.protocols import DATA_KINDS

    base = yaml.safe_load((SYN / "ag_predcls_sttran.yaml").read_text())["data"]["init_args"]
    data = Path(data_dir) if data_dir else work / "synth-ag"
    if not data.exists():
        generate_synth_ag(
            data,
            num_train=base["synth_train"],
            num_test=base["synth_test"],
            image_size=base["synth_size"],
        )
    if trunk == "learned" and trunk_from is None:  # train the shared trunk once (seed 0)
        trunk_from = work / "trunk.pt"
        if not trunk_from.exists():
            import subprocess

            subprocess.run(
                [sys.executable, str(Path(__file__).with_name("bench_ag_trunk.py")), "--data",
                 str(data), "--out", str(trunk_from), "--json", str(work / "trunk.json")],
                check=True,
            )  # fmt: skip
    counts = DATA_KINDS["ag"].stats(data)["filtered"]["splits"]["train"]["predicate_counts"]

    def is_bmp(n: str) -> bool:
        return AG_OPTIONS.get(n, (n,))[0] == "BMP"

    order = list(names)
    for start in dict.fromkeys(bmp_start(n) for n in names if is_bmp(n)):
        if start not in order:
            order.insert(0, start)  # BMP needs the seed's TEMPURA run
    runs: dict[str, list] = {}
    for seed in seeds:
        for name in sorted(order, key=is_bmp):  # TEMPURA before BMP
            done = any((work / f"{name}_{seed}" / "runs").glob("version_*/checkpoints/last.ckpt"))
            if name not in names and done:  # only a start for BMP, already trained
                continue
            recipe = ag_recipe(name, seed, work, data, epochs, trunk, trunk_from, column_mean)
            r = cli_fit_test(recipe, seed, data, work / f"{name}_{seed}")
            cfg = yaml.safe_load(recipe.read_text())
            r["epochs"] = cfg["trainer"]["max_epochs"]
            r["s_per_epoch"] = r["fit_s"] / r["epochs"]
            for c in ("with", "semi", "no"):
                per = r["metrics"][c].get("per_predicate_R@20") or []
                r["metrics"][c].update({f"{k}@20": v for k, v in thirds(per, counts).items()})
            r["seed"] = seed
            if name in names:
                runs.setdefault(name, []).append(r)
            print(
                "ag",
                name,
                seed,
                {m: round(r["metrics"]["with"][m], 4) for m in AG_METRICS},
                f"{r['s_per_epoch']:.1f} s/epoch",
                flush=True,
            )
    return runs


def run_vrd(names, seeds, epochs: int | None) -> dict:
    import lightning as L
    from bench_dll import RECIPE, head_body_tail, model_spec, variants
    from common import fit_and_test

    from tailgraph.datamodules.vidvrd import VidVRDDataModule
    from tailgraph.engine.module import SGGModule

    cfg = yaml.safe_load(RECIPE.read_text())
    n_epochs = epochs or int(cfg["trainer"]["max_epochs"])
    vrd = yaml.safe_load((SYN / "vrd_vidvrd2.yaml").read_text())["data"]["init_args"]
    data = dict(cfg["data"]["init_args"])
    data.update(
        root=str(ROOT / "data" / "synth-vrd-1000"),
        synth_train=vrd["synth_train"],
        synth_test=vrd["synth_test"],
    )
    dm = VidVRDDataModule(**data)
    dm.prepare_data()
    dm.setup("fit")
    specs = variants(["main"])
    runs: dict[str, list] = {}
    for seed in seeds:
        for name in names:
            L.seed_everything(seed, verbose=False)
            metrics, seconds = fit_and_test(SGGModule(**model_spec(cfg, specs[name])), dm, n_epochs)
            row = {m: float(metrics[m]) for m in VRD_METRICS}
            row["head@100"], row["body@100"], row["tail@100"] = head_body_tail(metrics, dm)
            runs.setdefault(name, []).append(
                {"metrics": row, "seed": seed, "s_per_epoch": seconds / n_epochs}
            )
            print(
                "vidvrd",
                name,
                seed,
                {k: round(v, 4) for k, v in row.items()},
                f"{seconds / n_epochs:.1f} s/epoch",
                flush=True,
            )
    return runs


def summarise(runs: dict, nested: bool) -> dict:
    out: dict = {}
    for name, rows in runs.items():
        if nested:
            out[name] = {
                c: {
                    m: statistics.mean(float(r["metrics"][c][m]) for r in rows)
                    for m in rows[0]["metrics"][c]
                    if isinstance(rows[0]["metrics"][c][m], (int, float))
                }
                for c in ("with", "semi", "no")
            }
        else:
            out[name] = {
                m: statistics.mean(r["metrics"][m] for r in rows) for m in rows[0]["metrics"]
            }
    return out


def table(runs: dict, cols, pick) -> list[str]:
    lines = ["| variant | " + " | ".join(cols) + " | s / epoch |", "|---" * (len(cols) + 2) + "|"]
    for name, rows in runs.items():
        cells = []
        for c in cols:
            vals = [100 * pick(r, c) for r in rows]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.2f} ± {sd:.2f}")
        sec = statistics.mean(r["s_per_epoch"] for r in rows)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sec:.1f} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="seed 0 of six variants")
    ap.add_argument("--parts", nargs="+", default=["ag", "vidvrd"])
    ap.add_argument(
        "--ag-variants",
        nargs="+",
        default=list(AG_RECIPES),
        choices=[*AG_RECIPES, *AG_OPTIONS],
    )
    ap.add_argument("--vrd-variants", nargs="+", default=list(VRD_VARIANTS))
    ap.add_argument("--epochs", type=int, default=None, help="override the AG recipes' epochs")
    ap.add_argument("--vrd-epochs", type=int, default=None, help="override the VidVRD epochs")
    ap.add_argument(
        "--trunk",
        choices=["random", "learned", "trainable"],
        default="random",
        help="AG trunk: frozen random init (cached), a trained run's trunk frozen (cached, "
        "--trunk-from), or trained with each model (pixel path)",
    )
    ap.add_argument(
        "--trunk-from", default=None, help="checkpoint whose trunk --trunk learned uses"
    )
    ap.add_argument(
        "--column-mean",
        action="store_true",
        help="AG: drop the recipes' type_weights (each multi-label type's BCE averaged over its "
        "columns, TEMPURA's released loss)",
    )
    ap.add_argument("--data", default=None, help="synth-ag folder (default: WORK/synth-ag)")
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "video_methods"))
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    seeds, ag_names, vrd_names = a.seeds, a.ag_variants, a.vrd_variants
    ag_epochs, vrd_epochs = a.epochs, a.vrd_epochs
    if a.quick:  # seed 0, six variants, a reduced budget: a smoke run of the comparison
        seeds, ag_names, vrd_names = [0], list(QUICK["ag"]), list(QUICK["vidvrd"])
        ag_epochs, vrd_epochs = a.epochs or 2, a.vrd_epochs or 6
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: dict = {}
    runs: dict = {}
    lines: list[str] = []
    if "ag" in a.parts:
        runs["ag"] = run_ag(
            ag_names, seeds, work, ag_epochs, a.trunk, a.trunk_from, a.data, a.column_mean
        )
        result["ag"] = summarise(runs["ag"], nested=True)
        cols = ["R@20", "mR@20", "mR@50", "head@20", "body@20", "tail@20"]
        for c in ("with", "semi", "no"):
            lines += [f"synth-ag PredCls, {c} constraint (seeds {seeds})", ""]
            lines += table(runs["ag"], cols, lambda r, m, c=c: r["metrics"][c].get(m, float("nan")))
            lines.append("")
    if "vidvrd" in a.parts:
        runs["vidvrd"] = run_vrd(vrd_names, seeds, vrd_epochs)
        result["vidvrd"] = summarise(runs["vidvrd"], nested=False)
        cols = ["mR@50", "mR@100", "RelDet_R@50", "RelDet_mAP", "head@100", "body@100", "tail@100"]
        lines += [f"synth-vrd RelDet (seeds {seeds})", ""]
        lines += table(runs["vidvrd"], cols, lambda r, m: r["metrics"][m])
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".runs.json").write_text(json.dumps(runs, indent=1, default=str))
    print("\n".join(lines))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
