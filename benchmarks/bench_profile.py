"""Where a training step's time goes, for every recipe in ``configs/synthetic/``.

Each recipe runs through ``tailgraph fit`` (the command line, its data module and method) on a
small data set of its own kind (generated into ``--work``), for ``--steps`` timed steps after
``--warm`` untimed ones, under ``torch.profiler`` (CPU). Per recipe: the mean step time, the
share of the step spent waiting for the data loader (between one step's end and the next
step's start), the number of operator calls per step (a Python loop over frames, windows,
pairs or segments shows up as thousands of small calls), the inclusive share of each
top-level part of the model (``features``, ``context``, ``head`` ...: forward only, measured
with ``record_function`` around the part) and the operators with the largest self time.
``--workers 0 1 2`` profiles each recipe once per number of data loader workers (the data
module's ``num_workers``; persistent workers), one row each; ``--epoch 1`` profiles the steps
of the second epoch instead of the first (caches filled, workers warm).

    .venv/bin/python benchmarks/bench_profile.py [--recipes NAME ...] [--workers N ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
SYN = ROOT / "configs" / "synthetic"

# small data of each kind (the recipe's own generator and options otherwise)
SMALL = {
    "SynthVGDataModule": {"num_train": 160, "num_test": 8, "num_val_im": 8},
    "AGDataModule": {"synth_train": 8, "synth_test": 2},
    "OIDataModule": {"synth_train": 160, "synth_test": 10},
    "VidVRDDataModule": {"synth_train": 32, "synth_test": 4},
}


INSTANCES: list[StepProfiler] = []


class StepProfiler(L.Callback):
    """Profiles training steps ``warm .. warm + steps`` of epoch ``epoch`` (0 = the first)."""

    def __init__(self, warm: int = 2, steps: int = 5, epoch: int = 0) -> None:
        INSTANCES.append(self)
        self.warm, self.steps, self.epoch = warm, steps, epoch
        self.prof: torch.profiler.profile | None = None
        self.step_s: list[float] = []
        self.wait_s: list[float] = []
        self._t_start = 0.0
        self._t_end: float | None = None
        self._hooks: list = []
        self._open: dict[str, object] = {}
        self._closed = False

    def _hook_parts(self, module) -> None:
        model = getattr(module, "model", None)
        if model is None:
            return
        for name, part in model.named_children():

            def pre(_m, _a, name=name):
                r = torch.autograd.profiler.record_function(f"part::{name}")
                r.__enter__()
                self._open[name] = r

            def post(_m, _a, _o, name=name):
                r = self._open.pop(name, None)
                if r is not None:
                    r.__exit__(None, None, None)  # type: ignore[attr-defined]

            self._hooks.append(part.register_forward_pre_hook(pre))
            self._hooks.append(part.register_forward_hook(post))

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.current_epoch != self.epoch:
            return
        now = time.perf_counter()
        if batch_idx == self.warm:
            self._hook_parts(module)
            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.prof.__enter__()
            self._t_end = None
        if self.warm <= batch_idx < self.warm + self.steps:
            if self._t_end is not None:
                self.wait_s.append(now - self._t_end)
            self._t_start = now

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and self.warm <= batch_idx < self.warm + self.steps:
            self._t_end = time.perf_counter()
            self.step_s.append(self._t_end - self._t_start)
            if batch_idx == self.warm + self.steps - 1:
                self._close()
                trainer.should_stop = True

    def on_train_end(self, trainer, module) -> None:
        self._close()  # an epoch shorter than warm-up + timed steps

    def _close(self) -> None:
        if self.prof is not None and not self._closed:
            self._closed = True
            self.prof.__exit__(None, None, None)
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def summary(self) -> dict:
        if self.prof is None or len(self.step_s) < self.steps:
            return {"error": "fewer training steps than warm-up + timed steps"}
        n = len(self.step_s)
        events = self.prof.key_averages()
        total_self = sum(e.self_cpu_time_total for e in events) or 1.0
        parts = {
            e.key[len("part::") :]: e.cpu_time_total / 1e6 / n
            for e in events
            if e.key.startswith("part::")
        }
        ops = sorted(
            (e for e in events if not e.key.startswith("part::")),
            key=lambda e: -e.self_cpu_time_total,
        )
        step = sum(self.step_s) / n
        loop = sum(self.step_s) + sum(self.wait_s)
        return {
            "steps": n,
            "step_s": step,
            "data_wait_share": sum(self.wait_s) / loop if loop else 0.0,
            "op_calls_per_step": sum(e.count for e in events if not e.key.startswith("part::")) / n,
            "parts_share": {k: v / step for k, v in parts.items()},
            "top_ops": [
                {
                    "op": e.key,
                    "self_share": e.self_cpu_time_total / total_self,
                    "calls_per_step": e.count / n,
                }
                for e in ops[:5]
            ],
        }


def small_recipe(
    recipe: Path, work: Path, out: Path, warm: int, steps: int, workers: int = 0, epoch: int = 0
) -> Path:
    cfg = yaml.safe_load(recipe.read_text())
    data = cfg["data"]
    kind = data["class_path"].rsplit(".", 1)[1]
    init = dict(data.get("init_args") or {})
    init.update({k: v for k, v in SMALL.get(kind, {}).items() if k in init or "synth" in k})
    init["root"] = str(work / f"{kind}-{Path(init.get('root', 'data')).name}")
    init["num_workers"] = workers
    data["init_args"] = init
    cfg["model"].pop("init_from", None)  # BMP's TEMPURA start: weights only, same steps
    cfg["trainer"] = dict(
        cfg.get("trainer") or {},
        max_epochs=epoch + 1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(out),
    )
    # only the profiler: no checkpoints or metric files (outside the steps anyway)
    cfg["trainer"]["callbacks"] = [
        {
            "class_path": "bench_profile.StepProfiler",
            "init_args": {"warm": warm, "steps": steps, "epoch": epoch},
        }
    ]
    path = out / recipe.name
    path.write_text(yaml.safe_dump(cfg))
    return path


def profile_recipe(
    recipe: Path, work: Path, warm: int, steps: int, workers: int = 0, epoch: int = 0
) -> dict:
    import os

    import bench_profile  # the module the recipe's class path names (not __main__)

    from tailgraph.cli import main as tailgraph_main

    os.environ["TAILGRAPH_DEBUG"] = "1"  # errors raise (a row of the table), not exit 2
    made = bench_profile.INSTANCES
    made.clear()
    with tempfile.TemporaryDirectory() as d:
        path = small_recipe(recipe, work, Path(d), warm, steps, workers, epoch)
        rc = tailgraph_main(["fit", "--config", str(path)])
        if rc != 0 or not made:
            return {"error": f"tailgraph fit exited {rc}"}
        return made[-1].summary()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", nargs="+", default=sorted(p.stem for p in SYN.glob("*.yaml")))
    ap.add_argument("--work", default=None, help="folder for the small data sets")
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--workers", type=int, nargs="+", default=[0], help="data loader workers")
    ap.add_argument("--epoch", type=int, default=0, help="profile this epoch's steps (0 = first)")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    work = Path(a.work or tempfile.mkdtemp(prefix="tailgraph-profile-"))
    rows: dict[str, dict] = {}
    t0 = time.perf_counter()
    for name in a.recipes:
        for w in a.workers:
            key = name if a.workers == [0] else f"{name} (workers {w})"
            try:
                rows[key] = profile_recipe(SYN / f"{name}.yaml", work, a.warm, a.steps, w, a.epoch)
            except Exception as exc:  # one recipe's failure is a row, not the end of the table
                rows[key] = {"error": f"{type(exc).__name__}: {exc}"}
            rows[key]["workers"] = w
            print(key, json.dumps(rows[key])[:400], flush=True)
    lines = [
        "| recipe | step (ms) | data wait | op calls / step | parts (share of step, forward) "
        "| top self-time ops (share) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"| {name} | – | – | – | {r['error'][:80]} | – |")
            continue
        parts = ", ".join(f"{k} {v:.0%}" for k, v in sorted(r["parts_share"].items(),
                                                            key=lambda kv: -kv[1]))  # fmt: skip
        ops = ", ".join(f"`{o['op']}` {o['self_share']:.0%}" for o in r["top_ops"][:3])
        lines.append(
            f"| {name} | {1000 * r['step_s']:.0f} | {r['data_wait_share']:.1%} | "
            f"{r['op_calls_per_step']:.0f} | {parts} | {ops} |"
        )
    print("\n".join(lines))
    print(f"wall {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
