"""Is synth-ag's tail in the trained models' scores, or in the frozen features at all?

Two diagnostics on the runs of ``bench_video_methods.py`` (same data, cached trunk, seeds):

* ``prior`` — post-hoc prior correction of each trained checkpoint's test scores: per relation
  type, ``logit(s_c) - tau * log(prior_c)`` for the multi-label (sigmoid) spatial and contact
  columns and ``p_c / prior_c^tau`` (renormalised) for the attention softmax, ``prior_c`` the
  predicate's share of its type's training relations. ``tau = 0`` is the model as trained. If
  a correction lifts the tail third, the scores rank the tail predicates and what the
  debiasing methods change is the calibration; if the tail stays at 0, no reweighting of these
  scores can reach it.
* ``headprobe`` — what a classifier-level method can reach at all: the contacting head's own
  input features (captured at ``head.heads[contacting]``) of each trained checkpoint, on every
  training and test pair with a contact label; a class-balanced softmax (inverse-frequency
  weights) and a plain one retrained on the frozen training features (classifier re-training,
  Kang et al. 2020), against the checkpoint's own head: per-predicate top-1 over the 17
  contacting columns (what the with-constraint protocol keeps). If the balanced probe recalls
  the tail third, the features hold it and a head-level method (BMP's phase 2) could reach it.
* ``bmpsamples`` — do BMP's synthetic minority samples look like the real features of their
  class? For each BMP checkpoint: samples ``decoder(μ_c + σ_c ε)`` of every minority contact
  predicate ``c`` (200 each), against the real contacting-head inputs of the training pairs:
  the share of samples whose nearest real class mean is ``c``, the mean distance of a sample
  to its class's real mean over the median distance between real class means, and the BMP
  head's top-1 on the samples (it is trained on them) against its top-1 on real test pairs.
* ``probe`` — a class-balanced linear probe (softmax over the 16 contact predicates, inverse
  frequency weights) on the frozen trunk's RoI-pooled ``layer2`` union and object maps of the
  contacting pairs: per-predicate test recall of the tail third. The frozen features' ceiling
  for a model that sees the same maps, without the temporal encoder.

    .venv/bin/python benchmarks/bench_ag_tail.py --work /tmp/vm_new --seeds 0 1 2 \\
        --variants STTran TEMPURA BMP --json OUT
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tempura_ablation import mean_std, test_variant  # noqa: E402
from bench_video_methods import thirds  # noqa: E402

TYPES = {"attention": slice(0, 3), "spatial": slice(3, 9), "contacting": slice(9, 26)}


def type_priors(counts: dict[str, int], names: list[str]) -> np.ndarray:
    """Each predicate's share of its relation type's training relations (``names`` order)."""
    prior = np.zeros(len(names))
    for sl in TYPES.values():
        c = np.array([counts.get(n, 0) for n in names[sl]], dtype=np.float64) + 1.0
        prior[sl] = c / c.sum()
    return prior


def corrected(scores: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """``scores`` (pairs × 26) with the prior correction of strength ``tau``."""
    out = scores.astype(np.float64).copy()
    att = TYPES["attention"]
    a = out[:, att] / prior[att] ** tau
    out[:, att] = a / a.sum(1, keepdims=True)
    for sl in (TYPES["spatial"], TYPES["contacting"]):
        s = np.clip(out[:, sl], 1e-7, 1 - 1e-7)
        logit = np.log(s) - np.log1p(-s) - tau * np.log(prior[sl])
        out[:, sl] = 1.0 / (1.0 + np.exp(-logit))
    return out.astype(np.float32)


def prior_part(a, work: Path, data: Path, counts: dict) -> dict:
    from tailgraph.protocols import DATA_KINDS
    from tailgraph.protocols.base import EvalOptions, load_ground_truth

    kind = DATA_KINDS["ag"]
    graphs, vocab = load_ground_truth(data, "ag", kind.reader, "test")
    names = list(vocab.predicates)
    prior = type_priors(counts, names)
    rows: dict[str, dict[float, list[dict]]] = {}
    for name in a.variants:
        for seed in a.seeds:
            run, recipe = work / f"{name}_{seed}", work / f"{name}_{seed}.yaml"
            found = sorted(run.glob("runs/version_*/test_predictions.h5"))
            if found:
                pred = found[0]
            else:
                pred = Path(test_variant(recipe, run, seed, data, [])["predictions"])
            for tau in a.taus:
                out = pred.with_name(f"prior_tau{tau}.h5")
                shutil.copyfile(pred, out)
                with h5py.File(out, "r+") as f:
                    s = f["predicate_scores"][...]
                    f["predicate_scores"][...] = corrected(s, prior, tau)
                res = kind.files.evaluate_binary(graphs, vocab, str(out), EvalOptions())
                out.unlink()
                m = {}
                for c in ("with", "semi", "no"):
                    m[c] = {k: res[c][k] for k in ("R@20", "mR@20")}
                    m[c].update(thirds(res[c]["per_predicate_R@20"], counts))
                    m[c]["per_predicate_R@20"] = dict(zip(names, res[c]["per_predicate_R@20"]))
                rows.setdefault(name, {}).setdefault(tau, []).append(m)
                print(name, seed, tau, {k: round(v, 4) for k, v in m["with"].items()
                                        if not isinstance(v, dict)}, flush=True)  # fmt: skip
    return rows


def probe_part(a, data: Path, counts: dict) -> dict:
    import torch
    import torch.nn.functional as F
    from bench_ag_cues import trunk_features

    from tailgraph.data.action_genome import CONTACTING, load_ag
    from tailgraph.modeling.backbone import ResNetTrunk

    def pairs(split: str) -> list[tuple]:
        videos, vocab = load_ag(str(data), split, layout_only=False)
        names = vocab.predicates
        out = []
        for v in videos:
            for g in v.frames:
                for s, o, p in g.relations.tolist():
                    n = names[p]
                    if n in CONTACTING and n != "not_contacting":
                        out.append((g.image_path, g.boxes[s].tolist(), g.boxes[o].tolist(), n))
        return out

    torch.manual_seed(0)
    torch.set_num_threads(2)
    tr, te = pairs("train"), pairs("test")
    classes = sorted({p[3] for p in tr}, key=lambda n: -counts[n])
    idx = {n: i for i, n in enumerate(classes)}
    # the recipes' frozen random trunk, or (--trunk-from) a trained run's trunk, frozen
    trunk = ResNetTrunk(18, a.trunk_from, last_stage=a.probe_stage, frozen=True).eval()
    t0 = time.perf_counter()
    feats = []
    for ps in (tr, te):
        feats.append(torch.cat([trunk_features(trunk, ps, "union"),
                                trunk_features(trunk, ps, "obj")], 1))  # fmt: skip
    ftr, fte = feats
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    y = torch.tensor([idx[p[3]] for p in tr])
    yt = np.array([idx[p[3]] for p in te])
    print(
        f"probe: {len(tr)} / {len(te)} contacting pairs, features {time.perf_counter() - t0:.0f} s"
    )
    freq = torch.bincount(y, minlength=len(classes)).float()
    out: dict = {"classes": classes, "train_counts": freq.tolist()}
    for weighting in ("balanced", "plain"):
        torch.manual_seed(0)
        if a.probe_model == "head":  # the relation models' RoI head: 1x1 conv, flatten, MLP
            c = ftr.shape[1] // 49
            model = torch.nn.Sequential(
                torch.nn.Unflatten(1, (c, 7, 7)),
                torch.nn.Conv2d(c, 32, 1),
                torch.nn.ReLU(),
                torch.nn.Flatten(),
                torch.nn.Linear(32 * 49, 256),
                torch.nn.ReLU(),
                torch.nn.Linear(256, len(classes)),
            )
        else:
            model = torch.nn.Linear(ftr.shape[1], len(classes))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        w = (freq.sum() / (len(classes) * freq)) if weighting == "balanced" else None
        for _ in range(a.probe_epochs):
            perm = torch.randperm(len(ftr))
            for i in range(0, len(ftr), 256):
                b = perm[i : i + 256]
                loss = F.cross_entropy(model(ftr[b]), y[b], weight=w)
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = model(fte).argmax(1).numpy()
        recall = {n: float((pred[yt == i] == i).mean()) for i, n in enumerate(classes)
                  if (yt == i).any()}  # fmt: skip
        out[weighting] = {"per_predicate_recall": recall, **thirds(recall, counts)}
        print(f"probe {weighting}", {k: round(v, 3) for k, v in recall.items()}, flush=True)
    return out


def head_features(ckpt: Path, recipe: Path, data: Path, split: str):
    """``(features [Q, D], labels [Q], own top-1 column [Q])`` of every (pair, contact label)
    of ``split``: the contacting head's input, the label's column among the 17 contacting
    columns, and the checkpoint's own head's best contacting column."""
    import torch
    import yaml

    from tailgraph.datamodules.ag import AGDataModule
    from tailgraph.engine.predict import load_checkpoint_module

    module, _ = load_checkpoint_module(ckpt)
    head = module.model.head
    k = head.names.index("contacting")
    cols = head._cols(k)
    col_of = {int(c): j for j, c in enumerate(cols.tolist())}
    args = yaml.safe_load(recipe.read_text())["data"]["init_args"]
    dm = AGDataModule(**{**args, "root": str(data)})
    dm.setup("fit" if split == "train" else "test")
    loader = dm.train_dataloader() if split == "train" else dm.test_dataloader()
    seen: list = []
    hook = head.heads[k].register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    feats, labels, own = [], [], []
    with torch.no_grad():
        for batch in loader:
            seen.clear()
            b = module.eval_batch(batch)
            out = module.model(b)
            (f,) = seen
            offsets, n = [], 0
            for g in b.graphs:
                offsets.append(n)
                n += g.num_boxes
            gt: dict = {}
            for i, g in enumerate(b.graphs):
                for s_, o_, p_ in g.relations.tolist():
                    if int(p_) in col_of:
                        gt.setdefault((i, s_, o_), []).append(col_of[int(p_)])
            best = out.predicate_probs[:, cols].argmax(1)
            for q, (i, (s_, o_)) in enumerate(zip(out.pair_to_img.tolist(), out.pairs.tolist())):
                for c in gt.get((i, s_ - offsets[i], o_ - offsets[i]), []):
                    feats.append(f[q])
                    labels.append(c)
                    own.append(int(best[q]))
    hook.remove()
    names = [module.vocab.predicates[int(c)] for c in cols.tolist()]
    return torch.stack(feats), torch.tensor(labels), torch.tensor(own), names


def headprobe_part(a, work: Path, data: Path, counts: dict) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    out: dict = {}
    for name in a.variants:
        for seed in a.seeds:
            run, recipe = work / f"{name}_{seed}", work / f"{name}_{seed}.yaml"
            ckpt = sorted(run.glob("runs/version_*/checkpoints/last.ckpt"))[0]
            t0 = time.perf_counter()
            ftr, ytr, _, names = head_features(ckpt, recipe, data, "train")
            fte, yte, own, _ = head_features(ckpt, recipe, data, "test")
            mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
            ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
            freq = torch.bincount(ytr, minlength=len(names)).float().clamp_min(1)

            def recall(pred, yte=yte, names=names) -> dict:
                return {names[c]: float((pred[yte == c] == c).float().mean())
                        for c in range(len(names)) if (yte == c).any()}  # fmt: skip

            row = {"model": recall(own), "pairs": [len(ytr), len(yte)]}
            # what the model's own head puts first on each label's test pairs (with constraint
            # a pair keeps only that column): the three most frequent winners per label
            row["model_winners"] = {
                names[c]: [
                    [names[int(w)], round(float(n) / int((yte == c).sum()), 3)]
                    for w, n in sorted(
                        zip(*torch.unique(own[yte == c], return_counts=True)),
                        key=lambda t: -int(t[1]),
                    )[:3]
                ]
                for c in range(len(names))
                if (yte == c).any()
            }
            for weighting in ("balanced", "plain"):
                torch.manual_seed(seed)
                probe = torch.nn.Linear(ftr.shape[1], len(names))
                opt = torch.optim.Adam(probe.parameters(), lr=1e-3, weight_decay=1e-4)
                w = freq.sum() / (len(names) * freq) if weighting == "balanced" else None
                for _ in range(a.probe_epochs):
                    perm = torch.randperm(len(ftr))
                    for i in range(0, len(ftr), 512):
                        bi = perm[i : i + 512]
                        loss = F.cross_entropy(probe(ftr[bi]), ytr[bi], weight=w)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                with torch.no_grad():
                    row[weighting] = recall(probe(fte).argmax(1))
            for key in ("model", "balanced", "plain"):
                rec = {n: v for n, v in row[key].items() if n != "not_contacting"}
                row[f"{key}_thirds"] = thirds(rec, counts)
                row[f"{key}_mean"] = float(np.mean(list(row[key].values())))
            out.setdefault(name, []).append(row)
            print(name, seed, f"{time.perf_counter() - t0:.0f} s",
                  {k: {t: round(v, 3) for t, v in row[f"{k}_thirds"].items()}
                   for k in ("model", "balanced", "plain")}, flush=True)  # fmt: skip
    return out


def bmpsamples_part(a, work: Path, data: Path) -> dict:
    import torch

    from tailgraph.engine.predict import load_checkpoint_module
    from tailgraph.methods.bmp import balance_prototypes, memory_bank

    out: dict = {}
    for seed in a.seeds:
        run, recipe = work / f"{a.bmp_variant}_{seed}", work / f"{a.bmp_variant}_{seed}.yaml"
        ckpt = sorted(run.glob("runs/version_*/checkpoints/last.ckpt"))[0]
        ftr, ytr, _, names = head_features(ckpt, recipe, data, "train")
        fte, yte, own, _ = head_features(ckpt, recipe, data, "test")
        module, _ = load_checkpoint_module(ckpt)
        bmp, head = module.method, module.model.head
        k = head.names.index("contacting")
        cols = head._cols(k)
        memory = memory_bank(module.model)
        counts = bmp.train_counts[cols]
        minority = (counts < bmp.tau_maj) & memory.valid[cols]
        nan = torch.full((ftr.shape[1],), float("nan"))
        means = torch.stack(
            [ftr[ytr == c].mean(0) if (ytr == c).any() else nan for c in range(len(names))]
        )
        inter = torch.cdist(means, means)
        spread = float(inter[torch.isfinite(inter) & (inter > 0)].median())
        torch.manual_seed(seed)
        row: dict = {"per_predicate": {}}
        with torch.no_grad():
            mu, logvar = bmp.prototype_nets[k].prototypes(memory.means[cols])
            mu, logvar = balance_prototypes(
                mu, logvar, counts, minority, bmp.q, bmp.alpha, bmp.nstage
            )
            mem_gap = (memory.means[cols] - means).norm(dim=1) / spread
            for c in minority.nonzero().flatten().tolist():
                z = mu[c] + torch.exp(0.5 * logvar[c]) * torch.randn(200, mu.shape[1])
                x = bmp.prototype_nets[k].decoder(z)
                d = torch.cdist(x, torch.nan_to_num(means, nan=1e9))
                head_top = head.heads[k](x).logits.argmax(1)
                real = own[yte == c] if (yte == c).any() else torch.zeros(0)
                row["per_predicate"][names[c]] = {
                    "nearest_real_mean_is_class": float((d.argmin(1) == c).float().mean()),
                    "distance_to_class_mean": float(d[:, c].mean() / spread),
                    "memory_mean_to_real_mean": float(mem_gap[c]),
                    "head_top1_synthetic": float((head_top == c).float().mean()),
                    "head_top1_real_test": float((real == c).float().mean()) if len(real) else None,
                }
        pp = row["per_predicate"]
        for key in next(iter(pp.values())):
            vals = [v[key] for v in pp.values() if v[key] is not None]
            row[key] = float(np.mean(vals)) if vals else None
        out[str(seed)] = row
        rounded = {k_: round(v, 3) for k_, v in row.items() if isinstance(v, float)}
        print(a.bmp_variant, seed, rounded, flush=True)
    return out


def contact_part(a, work: Path, data: Path) -> dict:
    """Does each trained model's contacting head read the pair? Over the test pairs of the
    saved predictions: the AUC of ``1 - s(not_contacting)`` for "in contact" (any contact
    predicate but ``not_contacting``) and the standard deviation of ``s(not_contacting)`` over
    pairs (an input-blind head gives AUC 0.5, std ~0); per GT contact predicate, the share of
    its pairs whose top contacting column is that predicate (what the with-constraint protocol
    keeps)."""
    from bench_ag_cues import auc

    from tailgraph.protocols import DATA_KINDS
    from tailgraph.protocols.base import load_ground_truth

    graphs, vocab = load_ground_truth(data, "ag", DATA_KINDS["ag"].reader, "test")
    names = list(vocab.predicates)
    cols = list(range(TYPES["contacting"].start, TYPES["contacting"].stop))
    nc = names.index("not_contacting")
    by_id = {g.image_id: g for g in graphs}
    out: dict = {}
    for name in a.variants:
        for seed in a.seeds:
            run, recipe = work / f"{name}_{seed}", work / f"{name}_{seed}.yaml"
            found = sorted(run.glob("runs/version_*/test_predictions.h5"))
            pred = (
                found[0]
                if found
                else Path(test_variant(recipe, run, seed, data, [])["predictions"])
            )
            with h5py.File(pred, "r") as f:
                po, pairs, scores = f["pair_offsets"][:], f["pairs"][:], f["predicate_scores"][:]
                ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["image_ids"][:]]
            s_nc, in_contact, top1 = [], [], {}
            for i, iid in enumerate(ids):
                gt: dict = {}
                for s_, o_, p_ in by_id[iid].relations.tolist():
                    if p_ in cols:
                        gt.setdefault((s_, o_), set()).add(p_)
                sc = scores[po[i] : po[i + 1]]
                for j, (s_, o_) in enumerate(pairs[po[i] : po[i + 1]].tolist()):
                    labs = gt.get((s_, o_))
                    if not labs:
                        continue
                    s_nc.append(sc[j, nc])
                    in_contact.append(int(any(p_ != nc for p_ in labs)))
                    best = cols[int(np.argmax(sc[j, cols]))]
                    for p_ in labs:
                        top1.setdefault(names[p_], []).append(best == p_)
            s_arr = np.array(s_nc)
            row = {
                "in_contact_auc": auc(1 - s_arr, np.array(in_contact)),
                "not_contacting_std": float(s_arr.std()),
                "top1": {n: float(np.mean(v)) for n, v in top1.items()},
            }
            out.setdefault(name, []).append(row)
            top = sorted(row["top1"].items(), key=lambda kv: -len(top1[kv[0]]))[:4]
            auc_std = f"AUC {row['in_contact_auc']:.3f} std {row['not_contacting_std']:.3f}"
            print(name, seed, auc_std, {k: round(v, 3) for k, v in top}, flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="bench_video_methods.py's --work folder")
    ap.add_argument(
        "--parts",
        nargs="+",
        default=["prior", "probe"],
        choices=["prior", "probe", "contact", "headprobe", "bmpsamples"],
    )
    ap.add_argument("--variants", nargs="+", default=["STTran", "TEMPURA", "BMP"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--bmp-variant", default="BMP", help="bmpsamples: the BMP runs' name")
    ap.add_argument("--taus", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5])
    ap.add_argument("--probe-epochs", type=int, default=15)
    ap.add_argument("--trunk-from", default=None, help="probe this checkpoint's trunk")
    ap.add_argument("--probe-model", choices=["linear", "head"], default="linear")
    ap.add_argument("--probe-stage", default="layer2", help="the trunk stage probed")
    ap.add_argument("--data", default=None, help="synth-ag folder (default: WORK/synth-ag)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    from tailgraph.protocols import DATA_KINDS

    work = Path(a.work)
    data = Path(a.data) if a.data else work / "synth-ag"
    counts = DATA_KINDS["ag"].stats(data)["filtered"]["splits"]["train"]["predicate_counts"]
    t0 = time.perf_counter()
    result: dict = {}
    if "prior" in a.parts:
        rows = prior_part(a, work, data, counts)
        result["prior"] = {n: {str(t): ms for t, ms in by.items()} for n, by in rows.items()}
        lines = [
            "| variant | tau | R@20 | mR@20 | head@20 | body@20 | tail@20 | tail@20 (no) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n, by in rows.items():
            for t, ms in by.items():
                cells = [mean_std([m["with"][k] for m in ms]) for k in
                         ("R@20", "mR@20", "head", "body", "tail")]  # fmt: skip
                cells.append(mean_std([m["no"]["tail"] for m in ms]))
                lines.append(f"| {n} | {t:g} | " + " | ".join(cells) + " |")
        print("\n".join(lines))
    if "contact" in a.parts:
        result["contact"] = contact_part(a, work, data)
    if "headprobe" in a.parts:
        rows = headprobe_part(a, work, data, counts)
        result["headprobe"] = rows
        lines = [
            "| variant | contacting head | mean top-1 (17) | head | body | tail (thirds) |",
            "|---|---|---|---|---|---|",
        ]
        for n, rs in rows.items():
            for key in ("model", "plain", "balanced"):
                cells = [mean_std([r[f"{key}_mean"] for r in rs])]
                cells += [mean_std([r[f"{key}_thirds"][t] for r in rs]) for t in
                          ("head", "body", "tail")]  # fmt: skip
                lines.append(f"| {n} | {key} | " + " | ".join(cells) + " |")
        print("\n".join(lines))
    if "bmpsamples" in a.parts:
        result["bmpsamples"] = bmpsamples_part(a, work, data)
    if "probe" in a.parts:
        result["probe"] = probe_part(a, data, counts)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    Path(a.json).write_text(json.dumps(result, indent=1, default=lambda x: None))
    print(f"wall {result['wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
