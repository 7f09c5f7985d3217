"""Helpers shared by the benchmark scripts (run from ``benchmarks/``)."""

from __future__ import annotations

import time


def fit_and_test(module, dm, epochs: int) -> tuple[dict, float]:
    """Train ``module`` on ``dm`` for ``epochs`` (no validation, no logging or checkpoints),
    then test it; returns ``(test metrics, training seconds)``."""
    import lightning as L

    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - t0
    trainer.test(module, datamodule=dm, verbose=False)
    return module.last_metrics, seconds


def cli_fit_test(recipe, seed: int, data, out) -> dict:
    """`tailgraph fit` then `tailgraph test` of ``recipe`` (fresh processes) on ``data`` into
    ``out``: ``{"fit_s": fit wall seconds, "metrics": the test metrics.json's model entry}``."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = Path(out)
    common = [
        "--data.init_args.root",
        str(data),
        "--trainer.default_root_dir",
        str(out),
        "--trainer.enable_progress_bar",
        "false",
        "--seed_everything",
        str(seed),
    ]

    def new_run(before: set) -> Path:
        """The one run folder the command just made (a reused ``out`` keeps its old runs: the
        fit's and the test's folders are found, never assumed to be version_0 / version_1)."""
        made = set((out / "runs").glob("version_*")) - before
        if len(made) != 1:
            raise RuntimeError(f"expected one new run folder under {out / 'runs'}, got {made}")
        return made.pop()

    runs = out / "runs"
    before = set(runs.glob("version_*"))
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tailgraph.cli", "fit", "--config", str(recipe), *common],
        check=True,
        capture_output=True,
    )
    fit_s = time.perf_counter() - t0
    fit_run = new_run(before)
    ckpt = fit_run / "checkpoints" / "last.ckpt"
    before = set(runs.glob("version_*"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tailgraph.cli",
            "test",
            "--config",
            str(recipe),
            *common,
            "--ckpt_path",
            str(ckpt),
        ],
        check=True,
        capture_output=True,
    )
    metrics = json.loads((new_run(before) / "metrics.json").read_text())
    return {"fit_s": fit_s, "metrics": metrics["models"]["model"]}


def ag_tables(res: dict, epochs: int, ks=(10, 20, 50), ref: str = "sttran") -> list[str]:
    """Markdown tables of Action Genome runs ``{variant: [run, ...]}`` (runs of
    :func:`cli_fit_test`): R@K / mR@K mean ± std per constraint, then seconds per epoch."""
    import numpy as np

    lines: list[str] = []
    keys = [f"R@{k}" for k in ks] + [f"mR@{k}" for k in ks]
    for c in ("with", "semi", "no"):
        lines += [
            f"**{c} constraint**",
            "",
            "| variant | " + " | ".join(keys) + " |",
            "|---|" + "---|" * len(keys),
        ]
        for v, runs in res.items():
            cells = []
            for key in keys:
                vals = np.array([100 * r["metrics"][c][key] for r in runs])
                cells.append(f"{vals.mean():.2f} ± {vals.std():.2f}")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines.append("")
    ref = ref if ref in res else next(iter(res))
    base = np.mean([r["fit_s"] for r in res[ref]]) / epochs
    lines += [
        f"| variant | seconds per epoch (fit wall time / epochs) | ratio to {ref} |",
        "|---|---|---|",
    ]
    for v, runs in res.items():
        t = np.mean([r["fit_s"] for r in runs]) / epochs
        lines.append(f"| {v} | {t:.1f} | {t / base:.2f} |")
    return lines


def recipe_epochs_and_synth_ag(recipe, data) -> int:
    """Generate a synth-ag recipe's data set into ``data`` once (so the first fit does not
    time the generation) and return the recipe's ``trainer.max_epochs``."""
    import yaml

    from tailgraph.data.synthetic.ag import generate_synth_ag

    doc = yaml.safe_load(recipe.read_text())
    cfg = doc["data"]["init_args"]
    generate_synth_ag(
        data, num_train=cfg["synth_train"], num_test=cfg["synth_test"], image_size=cfg["synth_size"]
    )
    return doc["trainer"]["max_epochs"]
