"""``tailgraph demo``: the main job on the built-in benchmark.

generate synth-vg → FREQ baseline → fit a layout-only model and a pixel model (PredCls) →
test all three → ``metrics.json``, a per-predicate recall plot and a report in ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "run_demo"]


def _trainer(out: Path, name: str, epochs: int, limit_val: float | int = 0):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    return L.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=1,
        logger=[CSVLogger(out / "logs", name=name), TensorBoardLogger(out / "logs", name=name)],
        enable_checkpointing=True,
        default_root_dir=str(out / "checkpoints" / name),
        limit_val_batches=limit_val,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        log_every_n_steps=10,
    )


def run_demo(
    out: str | Path = "demo_out",
    num_train: int = 2000,
    num_test: int = 400,
    image_size: int = 128,
    epochs: int = 4,
    layout_epochs: int = 8,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    last_stage: str = "layer2",
) -> dict[str, Any]:
    """Run the demo; returns the results document (also written to ``out/metrics.json``)."""
    import lightning as L
    import torch

    from tailgraph.data.datamodule import SynthVGDataModule
    from tailgraph.engine.cli import results_document, write_json_atomic
    from tailgraph.engine.module import SGGModule
    from tailgraph.engine.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    models: dict[str, dict] = {}
    torch.set_num_threads(max(1, torch.get_num_threads()))

    t0 = time.perf_counter()
    data_root = out / "synth-vg"
    common = dict(root=str(data_root), num_train=num_train, num_test=num_test, image_size=image_size,
                  synth_seed=seed, batch_size=batch_size, max_size=image_size)
    dm = SynthVGDataModule(**common)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    timings["generate synth-vg"] = time.perf_counter() - t0
    print(f"[demo] synth-vg: {len(dm.splits['train'])} train / {len(dm.splits['test'])} test images in {data_root}")

    # FREQ: counts only, no training.
    t0 = time.perf_counter()
    freq = SGGModule(context={"class_path": "tailgraph.modeling.freq.FrequencyBaseline"}, head=None)
    _trainer(out, "freq", 1).test(freq, datamodule=dm, verbose=False)
    models["FREQ"] = freq.last_metrics
    timings["FREQ (count + test)"] = time.perf_counter() - t0

    # Layout-only model: boxes + class embeddings, no pixels.
    t0 = time.perf_counter()
    L.seed_everything(seed, workers=True)
    layout_dm = SynthVGDataModule(**{**common, "layout_only": True, "batch_size": 32})
    layout = SGGModule(features=None, lr=lr, max_epochs_hint=layout_epochs)
    trainer = _trainer(out, "layout", layout_epochs)
    trainer.fit(layout, datamodule=layout_dm)
    trainer.test(layout, datamodule=layout_dm, verbose=False)
    models["layout-only"] = layout.last_metrics
    timings["layout-only (fit + test)"] = time.perf_counter() - t0

    # Pixel model: ResNet-18 trunk prefix + RoIAlign (objects, union boxes) + geometry + GloVe.
    t0 = time.perf_counter()
    L.seed_everything(seed, workers=True)
    pixel = SGGModule(
        features={"class_path": "tailgraph.modeling.roi.PixelFeatures",
                  "init_args": {"depth": 18, "last_stage": last_stage, "out_dim": 256}},
        lr=lr, max_epochs_hint=epochs,
    )
    trainer = _trainer(out, "pixel", epochs)
    trainer.fit(pixel, datamodule=dm)
    timings["pixel (fit)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.test(pixel, datamodule=dm, verbose=False)
    models["pixel"] = pixel.last_metrics
    timings["pixel (test)"] = time.perf_counter() - t0

    doc = results_document(
        models, dm.vocab, "predcls", timings=timings,
        dataset=f"synth-vg seed {seed}: {num_train} train / {num_test} test images, {image_size} px",
    )
    write_json_atomic(out / "metrics.json", doc)
    files = write_report(out / "metrics.json", out)
    print()
    print("PredCls on synth-vg (graph constraint), percent:")
    print(f"{'model':<12}" + "".join(f"{k:>9}" for k in ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100")))
    for name, m in models.items():
        print(f"{name:<12}" + "".join(f"{100 * m[k]:>9.2f}" for k in ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100")))
    print()
    for phase, sec in timings.items():
        print(f"[demo] {phase}: {sec:.1f} s")
    print(f"[demo] metrics: {out / 'metrics.json'}")
    for kind, path in files.items():
        print(f"[demo] {kind}: {path}")
    return doc


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tailgraph demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument("--train", type=int, default=2000, help="training images")
    p.add_argument("--test", type=int, default=400, help="test images")
    p.add_argument("--size", type=int, default=128, help="image size in pixels")
    p.add_argument("--epochs", type=int, default=4, help="epochs of the pixel model")
    p.add_argument("--layout-epochs", type=int, default=8, help="epochs of the layout-only model")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--last-stage", default="layer2", help="last ResNet-18 stage of the pixel model")
    a = p.parse_args(argv)
    doc = run_demo(a.out, a.train, a.test, a.size, a.epochs, a.layout_epochs, a.batch_size, a.lr, a.seed, a.last_stage)
    freq, pixel = doc["models"]["FREQ"], doc["models"]["pixel"]
    verdict = "beats" if pixel["mR@50"] > freq["mR@50"] else "does NOT beat"
    print(f"[demo] pixel model {verdict} FREQ on mR@50 ({100 * pixel['mR@50']:.2f} vs {100 * freq['mR@50']:.2f})")
    return 0
