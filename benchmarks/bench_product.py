"""The product's costs on CPU: `tailgraph predict` images/s (with and without drawings), report
build time for 1 and 5 runs, the overhead of resuming `fit`, and DDP with 1 vs 2 gloo processes.

    .venv/bin/python benchmarks/bench_product.py [--out benchmarks/results/product.json]

Every number is a wall-clock time of the real command line (`tailgraph ...` in a subprocess,
process start included) on synth-vg, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TG = [sys.executable, "-m", "tailgraph.cli"]

RECIPE = """
seed_everything: 0
model:
  lr: 0.002
  features:
    class_path: tailgraph.modeling.roi.PixelFeatures
    init_args: {{depth: 18, last_stage: layer2, out_dim: 128}}
  context:
    class_path: tailgraph.modeling.context.motifs.MotifsContext
    init_args: {{hidden_dim: 64}}
data:
  class_path: tailgraph.datamodules.vg.SynthVGDataModule
  init_args:
    root: {root}
    num_train: {train}
    num_test: 100
    num_val_im: 20
    image_size: 128
    max_size: 128
    batch_size: 8
trainer:
  default_root_dir: {out}
  max_epochs: {epochs}
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  limit_val_batches: 0
  deterministic: true
"""


LAST_STDOUT = [""]


def run(args: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        TG + args, cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise SystemExit(f"tailgraph {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    LAST_STDOUT[0] = proc.stdout
    return time.perf_counter() - t0


def recipe(base: Path, name: str, epochs: int, train: int = 400) -> Path:
    cfg = base / f"{name}.yaml"
    cfg.write_text(
        RECIPE.format(root=base / "synth-vg", out=base / name, train=train, epochs=epochs)
    )
    return cfg


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "product.json"))
    a = p.parse_args()
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # ---- predict on a folder of the test images (pixel model, PredCls, --boxes)
        cfg = recipe(base, "model", epochs=1)
        res["fit_1_epoch_s"] = run(["fit", "--config", str(cfg)])
        ckpt = next((base / "model").glob("runs/version_*/checkpoints/last.ckpt"))
        sys.path.insert(0, str(REPO))
        from PIL import Image

        from tailgraph.datamodules.vg import SynthVGDataModule
        from tailgraph.io.interchange import write_ground_truth

        dm = SynthVGDataModule(
            root=str(base / "synth-vg"), num_train=400, num_test=100, image_size=128
        )
        dm.setup("fit")
        dm.setup("test")
        n_train = len(dm.splits["train"])
        images = base / "images"
        images.mkdir()
        graphs = dm.eval_graphs("test")
        for g in graphs:
            with Image.open(g.image_path) as im:
                im.convert("RGB").save(images / f"{g.image_id}.jpg")
        write_ground_truth(base / "boxes.json", graphs, dm.vocab, "vg")
        n = len(graphs)
        for draw in (False, True):
            args = [
                "predict",
                "--ckpt",
                str(ckpt),
                "--input",
                str(images),
                "--boxes",
                str(base / "boxes.json"),
                "--out",
                str(base / f"pred_{draw}"),
            ]
            t = run(args + ([] if draw else ["--no-draw"]))
            import re

            inner = re.search(r"images in ([\d.]+) s \(([\d.]+) images/s\)", LAST_STDOUT[0])
            res[f"predict_{'draw' if draw else 'nodraw'}"] = {
                "images": n,
                "seconds": t,
                "images_per_s": n / t,
                # without process start, imports and model loading (what predict prints)
                "loop_seconds": float(inner.group(1)),
                "loop_images_per_s": float(inner.group(2)),
            }
        # ---- report: 1 and 5 runs (each a fit + test of a layout-only model)
        runs = []
        for k in range(5):
            c = base / f"lay{k}.yaml"
            c.write_text(
                RECIPE.format(root=base / "synth-vg", out=base / f"lay{k}", train=400, epochs=2)
                .replace(
                    "  features:\n    class_path: tailgraph.modeling.roi.PixelFeatures\n"
                    "    init_args: {depth: 18, last_stage: layer2, out_dim: 128}\n",
                    "  features: null\n",
                )
                .replace("seed_everything: 0", f"seed_everything: {k}")
                .replace("limit_val_batches: 0", "limit_val_batches: 1.0")
            )
            run(["fit", "--config", str(c)])
            ck = next((base / f"lay{k}").glob("runs/version_*/checkpoints/last.ckpt"))
            run(["test", "--config", str(c), "--ckpt_path", str(ck)])
            runs.append(str(max((base / f"lay{k}").glob("runs/version_*/metrics.json")).parent))
        res["report_1_run_s"] = run(["report", runs[0], "--out", str(base / "rep1")])
        res["report_5_runs_s"] = run(["report", *runs, "--out", str(base / "rep5")])
        res["report_5_runs_html_bytes"] = (base / "rep5" / "report.html").stat().st_size
        # ---- resume: 4 epochs straight vs 2 epochs, then --ckpt_path last for 2 more
        straight = recipe(base, "straight", epochs=4)
        res["fit_4_epochs_s"] = run(["fit", "--config", str(straight)])
        half = recipe(base, "resumed", epochs=2)
        t1 = run(["fit", "--config", str(half)])
        t2 = run(["fit", "--config", str(half), "--trainer.max_epochs", "4", "--ckpt_path", "last"])
        res["fit_2_plus_resume_2_s"] = t1 + t2
        res["resume_overhead_s"] = t1 + t2 - res["fit_4_epochs_s"]
        # ---- DDP on CPU: 1 process vs 2 gloo processes (1 thread each), 2 epochs
        ddp = {}
        for procs in (1, 2):
            c = recipe(base, f"ddp{procs}", epochs=2)
            extra = ["--trainer.accelerator", "cpu"]
            if procs == 2:
                extra += ["--trainer.strategy", "ddp", "--trainer.devices", "2"]
            env = {"OMP_NUM_THREADS": str(2 // procs)}
            t = run(["fit", "--config", str(c), *extra], env=env)
            ddp[f"{procs}_process"] = {"seconds": t, "train_images_per_s": 2 * n_train / t}
        res["ddp"] = ddp
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
