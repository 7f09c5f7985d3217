"""Training throughput of the engine at this revision against the engine of an earlier revision,
on the same batches, side by side.

The earlier revision is checked out into a temporary git worktree; each measurement runs in a
fresh process whose ``tailgraph`` is either that worktree's or this tree's, and the two
alternate round by round so that machine noise hits both alike. Both train the model of
``configs/synth_vg_predcls.yaml`` (pixel features + pairwise context + linear head) through
``SGGModule.training_step`` on the same synth-vg batches (one data set, generated once, read by
both; the same seeds). Reported: images/s per round and the ratio of the medians.

    .venv/bin/python benchmarks/bench_engine_throughput.py [--rev e710d02] [--batches 25]
        [--rounds 3]
    .venv/bin/python benchmarks/bench_engine_throughput.py --overhead [--batches 25] [--rounds 3]
        # the engine against a bare PyTorch loop on the same model and batches, one process
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_engine():
    """``(SynthVGDataModule, SGGModule, TrainStats)`` of whichever tailgraph is on the path (the
    module paths moved with the layout)."""
    try:
        from tailgraph.datamodules.vg import SynthVGDataModule
    except ImportError:  # before the layout: tailgraph.data.datamodule
        from tailgraph.data.datamodule import SynthVGDataModule  # type: ignore[no-redef]
    try:
        from tailgraph.stats import TrainStats
    except ImportError:
        from tailgraph.methods.base import TrainStats  # type: ignore[no-redef]
    from tailgraph.engine.module import SGGModule

    return SynthVGDataModule, SGGModule, TrainStats


def _setup(root: str):
    """``(module class, its model arguments, TrainStats class, data module)`` of
    ``configs/synth_vg_predcls.yaml`` on the synth-vg at ``root`` (generated on first use), at
    2 threads."""
    import torch
    import yaml

    torch.set_num_threads(2)
    data_module, module_class, train_stats = _import_engine()
    cfg = yaml.safe_load((ROOT / "configs" / "synth_vg_predcls.yaml").read_text())
    dm = data_module(**dict(cfg["data"]["init_args"], root=root))
    dm.prepare_data()
    dm.setup("fit")
    args = {k: v for k, v in cfg["model"].items() if k in ("features", "context", "head", "lr")}
    args["bg_per_image"] = cfg["model"]["bg_per_image"]
    return module_class, args, train_stats, dm


def worker(root: str, batches: int, seed: int) -> float:
    """Images per second of ``batches`` optimiser steps (after 2 warm-up steps)."""
    import torch

    module_class, args, train_stats, dm = _setup(root)
    torch.manual_seed(seed)
    m = module_class(**args)
    m.build(dm.vocab, "vg", train_stats.from_graphs(dm.train_graphs(), dm.vocab))
    m.log = lambda *a, **k: None  # no trainer attached
    opt = m.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    m.train()
    loader = iter(dm.train_dataloader())
    items = [next(loader) for _ in range(batches + 2)]
    n_img, t0 = 0, 0.0
    for i, batch in enumerate(items):
        if i == 2:
            t0 = time.perf_counter()
        loss = m.training_step(batch, i)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            n_img += len(batch)
    return n_img / (time.perf_counter() - t0)


def _same(x):
    return x


def overhead(root: str, batches: int, rounds: int, seed: int) -> dict[str, list[float]]:
    """Steps per second of the same model on the same in-memory batches through the engine (a
    Lightning ``Trainer`` running ``SGGModule.training_step`` with the command line's callbacks
    and loggers) and through a bare PyTorch loop (the method's losses, backward, AdamW step),
    rounds alternating. Lightning's optimiser step is the same AdamW."""
    import lightning as L
    import torch

    from tailgraph.engine.callbacks import EpochCheckpoint, MetricsWriter, RunInfoWriter

    module_class, args, train_stats, dm = _setup(root)
    loader = iter(dm.train_dataloader())
    items = [next(loader) for _ in range(batches + 2)]
    stats = train_stats.from_graphs(dm.train_graphs(), dm.vocab)

    def fresh():
        torch.manual_seed(seed)
        m = module_class(**args, lr_schedule="constant")
        m.build(dm.vocab, "vg", stats)
        return m

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.t0 = 0.0
            self.n = 0
            self.elapsed = 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if batch_idx == 2:  # after 2 warm-up steps
                self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if batch_idx >= 2:
                self.n += 1
                self.elapsed = time.perf_counter() - self.t0

    def engine(tmp: str) -> float:
        from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

        m = fresh()
        timer = Timer()
        trainer = L.Trainer(
            max_epochs=1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=[CSVLogger(tmp, name="runs"), TensorBoardLogger(tmp, name="runs")],
            callbacks=[
                timer,
                EpochCheckpoint(save_last=True, filename="epoch{epoch}"),
                MetricsWriter(),
                RunInfoWriter(),
            ],
            log_every_n_steps=10,
            default_root_dir=tmp,
        )
        from torch.utils.data import DataLoader

        trainer.fit(m, train_dataloaders=DataLoader(items, batch_size=None, collate_fn=_same))
        return timer.n / timer.elapsed

    def bare() -> float:
        m = fresh()
        m.train()
        opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad], lr=m.lr)
        t0 = 0.0
        for i, batch in enumerate(items):
            if i == 2:
                t0 = time.perf_counter()
            losses = m.method.training_step(m.model, m.train_batch(batch))
            total = torch.stack(list(losses.values())).sum()
            opt.zero_grad()
            total.backward()
            opt.step()
        return batches / (time.perf_counter() - t0)

    rates: dict[str, list[float]] = {"engine (Trainer + callbacks)": [], "bare loop": []}
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rates["engine (Trainer + callbacks)"].append(engine(tmp))
        rates["bare loop"].append(bare())
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} steps/s" for k, v in rates.items()))
    return rates


def _measure(tree: Path, root: str, batches: int, seed: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--root", root]
    cmd += ["--batches", str(batches), "--seed", str(seed)]
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rev", default="e710d02", help="git revision of the engine to compare with")
    p.add_argument("--batches", type=int, default=25)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--root", default=None, help="synth-vg folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--overhead",
        action="store_true",
        help="the engine against a bare PyTorch loop, same model and batches, one process",
    )
    a = p.parse_args()
    if a.overhead:
        with tempfile.TemporaryDirectory() as tmp:
            root = a.root or str(Path(tmp) / "synth-vg")
            rates = overhead(root, a.batches, a.rounds, a.seed)
        med = {k: statistics.median(v) for k, v in rates.items()}
        ratio = med["engine (Trainer + callbacks)"] / med["bare loop"]
        print(f"ratio engine / bare loop (medians): {ratio:.3f}")
        return
    if a.worker:
        print(json.dumps({"images_per_s": worker(a.root, a.batches, a.seed)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = a.root or str(Path(tmp) / "synth-vg")
        old = Path(tmp) / "previous"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), a.rev],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            worker(root, 1, a.seed)  # generates the data once (and warms the file cache)
            trees = {f"engine at {a.rev}": old, "engine at this revision": ROOT}
            rates: dict[str, list[float]] = {k: [] for k in trees}
            for r in range(a.rounds):
                for name, tree in trees.items():
                    rates[name].append(_measure(tree, root, a.batches, a.seed + r))
                    print(f"round {r} {name}: {rates[name][-1]:.1f} images/s", flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True
            )
    med = {k: statistics.median(v) for k, v in rates.items()}
    new, prev = med["engine at this revision"], med[f"engine at {a.rev}"]
    lines = [
        f"## Training throughput: the engine against the engine at {a.rev}",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_engine_throughput.py --rev {a.rev} "
        f"--batches {a.batches} --rounds {a.rounds}`",
        "",
        "Model and data of `configs/synth_vg_predcls.yaml` (2,000 synth-vg train images at "
        f"128 px, batch 16), 2 threads, {a.batches} optimiser steps per round after 2 warm-up "
        "steps, one fresh process per measurement, rounds alternating.",
        "",
        "| engine | images/s per round | median |",
        "|---|---|---|",
    ]
    for k, v in rates.items():
        lines.append(f"| {k} | {', '.join(f'{x:.1f}' for x in v)} | {med[k]:.1f} |")
    lines += ["", f"Ratio this revision / {a.rev} (medians): {new / prev:.3f}", ""]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "engine_throughput.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
