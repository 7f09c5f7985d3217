"""Image context models on synth-vg (layout-only PredCls, fixed budget) next to FREQ:
R@K / mR@K and training throughput, same data and settings for every model.

    .venv/bin/python benchmarks/bench_context_models.py [--epochs 6] [--root data/bench-synth-vg]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch

MODELS = {
    "pairwise MLP": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
    "MOTIFS": "tailgraph.modeling.context.motifs.MotifsContext",
    "Transformer": "tailgraph.modeling.context.transformer.TransformerContext",
    "VCTree": "tailgraph.modeling.context.vctree.VCTreeContext",
}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--root", default="data/bench-synth-vg")
    p.add_argument("--hidden", type=int, default=128)
    a = p.parse_args()
    torch.set_num_threads(2)
    from tailgraph.datamodules.vg import SynthVGDataModule
    from tailgraph.engine.module import SGGModule

    dm = SynthVGDataModule(
        root=a.root, num_train=2000, num_test=400, image_size=128, layout_only=True, batch_size=32
    )
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    n_train = len(dm.splits["train"])
    rows = {}
    freq = SGGModule(context={"class_path": "tailgraph.modeling.freq.FrequencyBaseline"}, head=None)
    from tailgraph.methods.base import TrainStats

    freq.build(dm.vocab, "vg", TrainStats.from_graphs(dm.train_graphs(), dm.vocab))
    L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).test(
        freq, datamodule=dm, verbose=False
    )
    rows["FREQ"] = (freq.last_metrics, float("nan"))
    for name, path in MODELS.items():
        L.seed_everything(0)
        m = SGGModule(
            context={"class_path": path, "init_args": {"hidden_dim": a.hidden}},
            features=None,
            lr=2e-3,
            max_epochs_hint=a.epochs,
        )
        t = L.Trainer(
            max_epochs=a.epochs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        t0 = time.perf_counter()
        t.fit(m, datamodule=dm)
        rate = a.epochs * n_train / (time.perf_counter() - t0)
        t.test(m, datamodule=dm, verbose=False)
        rows[name] = (m.last_metrics, rate)
        print(
            name,
            {k: round(100 * m.last_metrics[k], 2) for k in ("R@50", "mR@50")},
            f"{rate:.0f} img/s",
            flush=True,
        )
    keys = ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100")
    lines = [
        "## Image context models vs FREQ on synth-vg (layout-only PredCls)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_context_models.py --epochs {a.epochs}`",
        "",
        f"synth-vg seed 0, 2,000 train / 400 test images; boxes + GloVe class embeddings (no "
        f"pixels); hidden size "
        f"{a.hidden}; AdamW lr 2e-3 one-cycle, {a.epochs} epochs, batch 32; percent. Throughput = "
        f"training images/s "
        "on 2 CPU threads.",
        "",
        "| model | " + " | ".join(keys) + " | train img/s |",
        "|" + "---|" * (len(keys) + 2),
    ]
    for name, (m, rate) in rows.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{100 * m[k]:.2f}" for k in keys)
            + f" | {'–' if rate != rate else f'{rate:.0f}'} |"
        )
    out = Path(__file__).resolve().parent / "results" / "context_models.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
