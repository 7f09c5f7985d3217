"""STTran (pixels → STTran → AG heads) vs the AG FREQ baseline on synth-ag, PredCls.

.venv/bin/python benchmarks/bench_sttran_ag.py [--train 80] [--test 20] [--epochs 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=80)
    p.add_argument("--test", type=int, default=20)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--root", default="data/bench-synth-ag")
    a = p.parse_args()
    torch.set_num_threads(2)
    from tailgraph.datamodules.ag import AGDataModule
    from tailgraph.engine.module import SGGModule
    from tailgraph.evaluation.ag import evaluate_ag
    from tailgraph.protocols.ag import ag_frequency_predictions

    dm = AGDataModule(
        root=a.root,
        synth_train=a.train,
        synth_test=a.test,
        synth_size=a.size,
        max_size=a.size,
        val_fraction=0.0,
    )
    dm.setup("fit")
    frames = [f for v in dm.splits["test"] for f in v.frames]
    ks = (10, 20, 50)
    freq = evaluate_ag(
        frames, ag_frequency_predictions(dm.splits["train"], dm.splits["test"], dm.vocab), ks=ks
    )
    L.seed_everything(0)
    module = SGGModule(
        lr=3e-4,
        features={
            "class_path": "tailgraph.modeling.roi.PixelFeatures",
            "init_args": {"last_stage": "layer2", "out_dim": 256},
        },
        context={
            "class_path": "tailgraph.modeling.context.sttran.STTranContext",
            "init_args": {
                "proj_dim": 128,
                "embed_dim": 64,
                "num_heads": 8,
                "ff_dim": 512,
                "temporal_layers": 2,
            },
        },
        head={"class_path": "tailgraph.modeling.heads.typed.TypedHead"},
    )
    trainer = L.Trainer(
        max_epochs=a.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=5.0,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    train_s = time.perf_counter() - t0
    rows = {"FREQ": {}, "STTran": {}}
    for c in ("with", "semi", "no"):
        rows["FREQ"][c] = freq[c]
    module.eval_ks = ks
    module.protocol.ks = ks
    trainer.test(module, datamodule=dm, verbose=False)
    for c in ("with", "semi", "no"):
        rows["STTran"][c] = module.last_metrics[c]
    n_train_frames = sum(len(v) for v in dm.splits["train"])
    lines = [
        "## STTran vs FREQ on synth-ag (PredCls)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_sttran_ag.py --train {a.train} --test "
        f"{a.test} --epochs {a.epochs}`",
        "",
        f"synth-ag seed 0, {len(dm.splits['train'])} train videos ({n_train_frames} frames) / "
        f"{len(frames)} test frames, {a.size} px; "
        f"STTran from random init (ResNet-18 to layer2, proj 128, 2 temporal layers), AdamW 3e-4, "
        f"{a.epochs} epochs "
        f"({train_s:.0f} s, {a.epochs * n_train_frames / train_s:.0f} frames/s); percent.",
        "",
        "| model | constraint | "
        + " | ".join(f"R@{k}" for k in ks)
        + " | "
        + " | ".join(f"mR@{k}" for k in ks)
        + " |",
        "|---|---|" + "---|" * (2 * len(ks)),
    ]
    for name, per in rows.items():
        for c, m in per.items():
            lines.append(
                f"| {name} | {c} | "
                + " | ".join(f"{100 * m[f'R@{k}']:.2f}" for k in ks)
                + " | "
                + " | ".join(f"{100 * m[f'mR@{k}']:.2f}" for k in ks)
                + " |"
            )
    out = Path(__file__).resolve().parent / "results" / "sttran_ag.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
