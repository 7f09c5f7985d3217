"""Training throughput of the merged engine against the previous image-only engine, side by side.

The previous engine is read from git history (``git show REV:tailgraph/engine/module.py``) and
imported under another name; both train the model of ``configs/synth_vg_predcls.yaml`` (pixel
features + pairwise context + linear head) on the same synth-vg batches, alternating rounds so
that machine noise hits both alike. Reported: images/s per round and the ratio of the medians.

    .venv/bin/python benchmarks/bench_engine_throughput.py [--rev db08ccc] [--batches 25] [--rounds
    3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def old_module_class(rev: str):
    src = subprocess.run(
        ["git", "show", f"{rev}:tailgraph/engine/module.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # the component builder moved from tailgraph.engine.components to tailgraph.components
    src = src.replace("from tailgraph.engine.components import", "from tailgraph.components import")
    path = Path(tempfile.mkdtemp()) / "old_engine_module.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_engine_module", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_engine_module"] = mod
    spec.loader.exec_module(mod)
    return mod.SGGModule


def train_rate(module, dm, batches: int) -> float:
    """Images per second of ``batches`` optimiser steps (after 2 warm-up steps)."""
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    module.train()
    loader = iter(dm.train_dataloader())
    items = [next(loader) for _ in range(batches + 2)]
    n_img = 0
    for i, batch in enumerate(items):
        if i == 2:
            t0 = time.perf_counter()
        loss = module.training_step(batch, i)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            n_img += len(batch)
    return n_img / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rev", default="db08ccc", help="git revision of the previous engine")
    p.add_argument("--batches", type=int, default=25)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--root", default="data/synth-vg")
    a = p.parse_args()
    torch.set_num_threads(2)
    from tailgraph.datamodules.vg import SynthVGDataModule
    from tailgraph.engine.module import SGGModule
    from tailgraph.methods.base import TrainStats

    cfg = yaml.safe_load((ROOT / "configs" / "synth_vg_predcls.yaml").read_text())
    data_args = dict(cfg["data"]["init_args"], root=a.root)
    dm = SynthVGDataModule(**data_args)
    dm.prepare_data()
    dm.setup("fit")
    model_args = {
        k: v
        for k, v in cfg["model"].items()
        if k in ("features", "context", "head", "lr", "bg_per_image")
    }
    Old = old_module_class(a.rev)
    rates: dict[str, list[float]] = {"previous engine": [], "merged engine": []}
    for r in range(a.rounds):
        for name in rates:
            torch.manual_seed(r)
            if name == "previous engine":
                m = Old(**model_args)
                m.build(dm.vocab, dm.train_graphs())
            else:
                m = SGGModule(**model_args)
                m.build(dm.vocab, "vg", TrainStats.from_graphs(dm.train_graphs(), dm.vocab))
            m.log = lambda *args, **kwargs: None  # no trainer attached
            rates[name].append(train_rate(m, dm, a.batches))
            print(f"round {r} {name}: {rates[name][-1]:.1f} images/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    lines = [
        "## Training throughput: merged engine vs the previous image-only engine",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_engine_throughput.py --rev {a.rev} "
        f"--batches {a.batches} --rounds {a.rounds}`",
        "",
        f"Model and data of `configs/synth_vg_predcls.yaml` ({data_args['num_train']} synth-vg "
        f"train images at "
        f"{data_args['max_size']} px, batch {data_args['batch_size']}), 2 threads, {a.batches} "
        f"optimiser steps per round "
        "after 2 warm-up steps, rounds alternating.",
        "",
        "| engine | images/s per round | median |",
        "|---|---|---|",
    ]
    for k, v in rates.items():
        lines.append(f"| {k} | {', '.join(f'{x:.1f}' for x in v)} | {med[k]:.1f} |")
    lines += [
        "",
        f"Ratio merged / previous (medians): {med['merged engine'] / med['previous engine']:.3f}",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "engine_throughput.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
