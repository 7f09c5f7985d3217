"""Training and evaluation speed of every synthetic recipe on one accelerator, full precision
against mixed precision, in one run.

For each recipe of ``configs/synthetic/`` (its model, method and data module; data sets
generated small into ``--work``), the real engine — ``SGGModule`` under a Lightning ``Trainer``
on ``--device`` — trains ``--steps`` steps at each precision (``32-true``, then ``16-mixed`` and
``bf16-mixed`` on CUDA, ``bf16-mixed`` on CPU) and tests ``--eval-batches`` batches at
``32-true``. Step times skip the first ``--warmup`` steps (kernel selection, caches); items are
the batch's images / frames / segments.

    python benchmarks/bench_gpu.py --json OUT.json              # CUDA, every recipe (≈ 5 min)
    python benchmarks/bench_gpu.py --device cpu --steps 4 --recipes vg_predcls_motifs

``OUT.json``: ``{"device": ..., "rows": [{"recipe", "precision", "steps_per_s",
"items_per_s", "peak_mem_mb"}, ...], "eval": [{"recipe", "batches_per_s", "items_per_s"}]}``;
a recipe that fails at a precision gets ``"error"`` instead of its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SYN = ROOT / "configs" / "synthetic"

# small but real data sets per data module (generated once per kind into --work)
DATA = {
    "SynthVGDataModule": {"num_train": 256, "num_test": 64, "num_val_im": 0},
    "AGDataModule": {"synth_train": 24, "synth_test": 8},
    "VidVRDDataModule": {"synth_train": 24, "synth_test": 8},
    "OIDataModule": {"synth_train": 128, "synth_test": 32},
}


def _items(batch) -> int:
    for attr in ("graphs", "segments"):
        if hasattr(batch, attr):
            return len(getattr(batch, attr))
    try:
        return len(batch)
    except TypeError:
        return 1


def _timer(warmup: int):
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.items = 0
            self._t = 0.0
            self._n = 0

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            _sync(module.device)
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            _sync(module.device)
            self._n += 1
            if self._n > warmup:
                self.times.append(time.perf_counter() - self._t)
                self.items += _items(batch)

    return StepTimer()


def _sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


def _recipe(name: str, work: Path) -> dict:
    cfg = yaml.safe_load((SYN / f"{name}.yaml").read_text())
    data = cfg["data"]
    kind = data["class_path"].rsplit(".", 1)[1]
    data["init_args"].update(DATA.get(kind, {}), root=str(work / kind))
    cfg["model"].pop("init_from", None)  # BMP: throughput does not need TEMPURA's weights
    return cfg


def _build(cfg: dict):
    from tailgraph.components import import_class
    from tailgraph.engine.module import SGGModule

    dm = import_class(cfg["data"]["class_path"])(**cfg["data"].get("init_args", {}))
    return SGGModule(**cfg["model"]), dm


def run_recipe(name: str, a, work: Path, precisions: list[str]) -> tuple[list[dict], dict]:
    import lightning as L
    import torch

    rows = []
    ev: dict = {"recipe": name, "error": "no full-precision model to evaluate"}
    cfg = _recipe(name, work)
    for precision in precisions:
        L.seed_everything(0, verbose=False)
        module, dm = _build(cfg)
        timer = _timer(a.warmup)
        trainer = L.Trainer(
            accelerator=a.device,
            devices=1,
            precision=precision,  # type: ignore[arg-type]
            max_steps=a.warmup + a.steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            gradient_clip_val=cfg.get("trainer", {}).get("gradient_clip_val"),
        )
        if a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        row: dict = {"recipe": name, "precision": precision}
        try:
            trainer.fit(module, datamodule=dm)
            t = sum(timer.times)
            row.update(
                steps_per_s=len(timer.times) / t if t else None,
                items_per_s=timer.items / t if t else None,
            )
            if a.device == "cuda":
                row["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
        except Exception as exc:  # noqa: BLE001 - a benchmark row records the failure
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        rows.append(row)
        print(json.dumps(row), flush=True)
        if precision == "32-true" and "error" not in row:
            ev = _evaluate(name, module, dm, a)
    return rows, ev


def _evaluate(name: str, module, dm, a) -> dict:
    import lightning as L

    class Count(L.Callback):
        items = 0
        batches = 0

        def on_test_batch_end(self, trainer, module, outputs, batch, batch_idx, *args) -> None:
            self.items += _items(batch)
            self.batches += 1

    counter = Count()
    trainer = L.Trainer(
        accelerator=a.device,
        devices=1,
        limit_test_batches=a.eval_batches,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[counter],
    )
    t0 = time.perf_counter()
    try:
        trainer.test(module, datamodule=dm, verbose=False)
    except Exception as exc:  # noqa: BLE001
        return {"recipe": name, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    t = time.perf_counter() - t0  # batches, the metric's pass over them and its summary
    row = {
        "recipe": name,
        "batches_per_s": counter.batches / t,
        "items_per_s": counter.items / t,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--recipes", nargs="*", default=sorted(p.stem for p in SYN.glob("*.yaml")))
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per precision")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--eval-batches", type=int, default=10)
    ap.add_argument("--work", default="data/bench-gpu", help="where the small data sets go")
    ap.add_argument("--json", help="write the rows here")
    a = ap.parse_args()

    import torch

    from tailgraph.engine.quiet import quiet_libraries

    quiet_libraries()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (use --device cpu)", file=sys.stderr)
        return 2
    precisions = ["32-true", "bf16-mixed"]
    if a.device == "cuda":
        precisions.insert(1, "16-mixed")
    work = Path(a.work)
    rows, evals = [], []
    t0 = time.perf_counter()
    for name in a.recipes:
        r, e = run_recipe(name, a, work, precisions)
        rows += r
        evals.append(e)
    doc = {
        "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "seconds": time.perf_counter() - t0,
        "rows": rows,
        "eval": evals,
    }
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1))
    print(f"{len(rows)} rows in {doc['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
