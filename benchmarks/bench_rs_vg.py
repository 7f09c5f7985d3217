"""Layout-only model vs FREQ on the real RS-VG annotations (train split → test split).

    .venv/bin/python benchmarks/bench_rs_vg.py [--root ../shared/data/rs-vg] [--epochs 6]

Writes benchmarks/results/rs_vg.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=str(HERE.parent.parent / "shared" / "data" / "rs-vg"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default=str(HERE / "results" / "rs_vg.md"))
    a = p.parse_args()
    torch.set_num_threads(2)

    from tailgraph.datamodules.vg import VGDataModule
    from tailgraph.engine.module import SGGModule

    dm = VGDataModule(root=a.root, layout_only=True, batch_size=a.batch_size)
    dm.setup("fit")
    dm.setup("test")
    rows = {}
    t0 = time.perf_counter()
    freq = SGGModule(context={"class_path": "tailgraph.modeling.freq.FrequencyBaseline"}, head=None)
    from tailgraph.methods.base import TrainStats

    freq.build(dm.vocab, "vg", TrainStats.from_graphs(dm.train_graphs(), dm.vocab))
    trainer = L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(freq, datamodule=dm, verbose=False)
    rows["FREQ"] = (freq.last_metrics, time.perf_counter() - t0)

    t0 = time.perf_counter()
    L.seed_everything(0)
    model = SGGModule(features=None, lr=2e-3, max_epochs_hint=a.epochs)
    trainer = L.Trainer(
        max_epochs=a.epochs,
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    rows["layout-only"] = (model.last_metrics, time.perf_counter() - t0)

    keys = ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100")
    lines = [
        "## Layout-only model vs FREQ on RS-VG (real annotations, no pixels)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_rs_vg.py --epochs {a.epochs}`",
        "",
        f"PredCls, graph constraint, train split ({len(dm.splits['train'])} images after filters) "
        f"→ "
        f"test split ({len(dm.splits['test'])} images with relations); percent.",
        "",
        "| model | " + " | ".join(keys) + " | seconds |",
        "|" + "---|" * (len(keys) + 2),
    ]
    for name, (m, sec) in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{100 * m[k]:.2f}" for k in keys) + f" | {sec:.0f} |"
        )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
