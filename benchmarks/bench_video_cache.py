"""Training from cached trunk features against the pixel path, on the same synth-ag batches.

STTran (configs/synthetic/ag_predcls_sttran.yaml) three times in one process: the recipe's
pixel path (trainable ResNet trunk), the pixel path with the trunk frozen, and
``CachedTrunkFeatures`` (the same frozen trunk, maps computed once: a warm-up pass fills the
cache first). Each step is the method's losses, backward and an AdamW step; the variants
alternate batch by batch so load drifts hit all alike. Reports frames per second and the ratio.
``--breakdown`` then times the cached variant alone once more with forward hooks on the
relation model's parts and ``torch.profiler``: the share of the step that any cache of the
frozen trunk's outputs could remove (the features stage's forward) bounds the speed-up a cache
can give.

    .venv/bin/python benchmarks/bench_video_cache.py [--videos 60] [--rounds 2] [--breakdown]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "synthetic" / "ag_predcls_sttran.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=60, help="training videos timed per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--root", default=str(ROOT / "data" / "synth-ag-400"))
    ap.add_argument(
        "--breakdown", action="store_true", help="where the cached step's time goes, and the bound"
    )
    a = ap.parse_args()

    from tailgraph.datamodules.ag import AGDataModule
    from tailgraph.engine.module import SGGModule
    from tailgraph.stats import TrainStats

    cfg = yaml.safe_load(RECIPE.read_text())
    dm = AGDataModule(**dict(cfg["data"]["init_args"], root=a.root))
    dm.prepare_data()
    dm.setup("fit")
    batches = []
    for i, b in enumerate(dm.train_dataloader()):
        if i >= a.videos:
            break
        batches.append(b)
    frames = sum(len(b) for b in batches)
    feats = cfg["model"]["features"]
    specs = {
        "pixel (trainable trunk)": feats,
        "pixel (frozen trunk)": {
            "class_path": feats["class_path"],
            "init_args": dict(feats["init_args"], frozen_trunk=True),
        },
        "cached trunk": {
            "class_path": "tailgraph.modeling.roi.CachedTrunkFeatures",
            "init_args": dict(feats["init_args"]),
        },
    }
    stats = TrainStats.from_graphs(dm.train_graphs(), dm.vocab)
    modules, opts = {}, {}
    for name, spec in specs.items():
        torch.manual_seed(0)
        m = SGGModule(**dict(cfg["model"], features=spec))
        m.build(dm.vocab, dm.protocol, stats)
        m.train()
        modules[name] = m
        opts[name] = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-4)

    def step(name, batch):
        m = modules[name]
        losses = m.method.training_step(m.model, m.train_batch(batch))
        total = torch.stack(list(losses.values())).sum()
        opts[name].zero_grad()
        total.backward()
        opts[name].step()

    for b in batches:  # warm-up: fills the cache (and warms every variant's kernels)
        with torch.no_grad():
            modules["cached trunk"].model.features.feature_map(b.images)
    seconds = dict.fromkeys(specs, 0.0)
    for _ in range(a.rounds):
        for b in batches:
            for name in specs:
                t0 = time.perf_counter()
                step(name, b)
                seconds[name] += time.perf_counter() - t0
    base = seconds["pixel (trainable trunk)"]
    print(
        f"STTran on synth-ag, {frames} frames x {a.rounds} rounds, "
        f"{torch.get_num_threads()} threads"
    )
    print("| features | frames / s | speed-up against the recipe's pixel path |")
    print("|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {frames * a.rounds / s:.1f} | {base / s:.2f}x |")
    hits = modules["cached trunk"].model.features
    print(f"cache: {hits.misses} maps computed (the warm-up), {hits.hits} read while timing")
    if a.breakdown:
        breakdown(
            modules["cached trunk"],
            batches,
            lambda b: step("cached trunk", b),
            base / a.rounds,
            frames,
        )
    return 0


def breakdown(module, batches, step, pixel_seconds: float, frames: int) -> None:
    """Forward time of each part of the relation model as a share of the cached step, the top
    self-time ops, and the speed-up over the pixel path if the features stage cost nothing."""
    from torch.profiler import profile

    parts = dict(module.model.named_children())
    spent = dict.fromkeys(parts, 0.0)
    handles = []
    for name, part in parts.items():

        def pre(mod, args, name=name):
            mod._bench_t0 = time.perf_counter()

        def post(mod, args, out, name=name):
            spent[name] += time.perf_counter() - mod._bench_t0

        handles += [part.register_forward_pre_hook(pre), part.register_forward_hook(post)]
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    total = time.perf_counter() - t0
    for h in handles:
        h.remove()
    with profile() as prof:
        for b in batches:
            step(b)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    self_total = sum(e.self_cpu_time_total for e in ops) or 1.0
    print(f"\ncached step, {frames} frames once more: {frames / total:.1f} frames / s")
    print("| part (forward, inclusive) | share of the step |")
    print("|---|---|")
    for name, s in spent.items():
        print(f"| {name} | {100 * s / total:.1f}% |")
    rest = total - spent.get("features", 0.0)
    print(
        f"| all but the features' forward (incl. backward, optimiser) | {100 * rest / total:.1f}% |"
    )
    print(
        "a features stage that cost nothing: "
        f"{frames / rest:.1f} frames / s, {pixel_seconds / rest:.2f}x the trainable pixel path"
    )
    print(
        "top self-time ops: "
        + ", ".join(f"{e.key} {100 * e.self_cpu_time_total / self_total:.0f}%" for e in ops[:6])
    )


if __name__ == "__main__":
    raise SystemExit(main())
