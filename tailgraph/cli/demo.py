"""``tailgraph demo``: the main job on the built-in benchmark — and the tail lifted.

generate a long-tailed synth-vg (every predicate has ≥ 33 training relations, head / tail
115, ~4.7 relations per image) → the FREQ baseline → the same model (layout-only MOTIFS)
trained plainly and with HML → test all three → ``metrics.json`` (with the training counts), a
per-predicate recall plot (both models' bars against predicate frequency) and a report in
``--out``. The settings are those of ``configs/synthetic/hml_motifs_vg.yaml``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tailgraph.cli.synth import MAX_ITEMS
from tailgraph.io.args import int_in

__all__ = ["main", "run_demo", "DEMO_DATA", "DEMO_MODEL", "MIN_TRAIN"]

DEMO_THREADS = 2  # the demo's numbers are defined at two intra-op threads
MIN_TRAIN = 20  # training images: fewer leave no validation images and no tail to learn

# the data and model of configs/synthetic/hml_motifs_vg.yaml
DEMO_DATA: dict[str, Any] = dict(
    num_train=4000,
    num_test=500,
    image_size=128,
    head_tail_ratio=50,
    max_units=14,
    max_objects=30,
    num_val_im=200,
    layout_only=True,
    batch_size=32,
)
DEMO_MODEL: dict[str, Any] = dict(
    task="predcls",
    lr=0.002,
    bg_per_image=32,
    features=None,
    context={
        "class_path": "tailgraph.modeling.context.motifs.MotifsContext",
        "init_args": {"hidden_dim": 128},
    },
    head={"class_path": "tailgraph.modeling.heads.linear.LinearHead"},
)


def _trainer(out: Path, name: str, epochs: int):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from tailgraph.engine.callbacks import PhaseProgressBar

    return L.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=1,
        logger=[CSVLogger(out / "logs", name=name)],
        enable_checkpointing=False,
        default_root_dir=str(out / "runs" / name),
        num_sanity_val_steps=0,  # validation each epoch: the report's validation curves
        enable_model_summary=False,
        log_every_n_steps=20,
        callbacks=[PhaseProgressBar()],
    )


def run_demo(
    out: str | Path = "demo_out",
    num_train: int = DEMO_DATA["num_train"],
    num_test: int = DEMO_DATA["num_test"],
    epochs: int = 8,
    stage_epochs: tuple[int, ...] = (4, 4),
    seed: int = 0,
) -> dict[str, Any]:
    """Run the demo; returns the results document (also written to ``out/metrics.json``).

    The same seed gives the same numbers whatever the machine's load: the demo runs at
    :data:`DEMO_THREADS` intra-op threads (float reductions are ordered by the thread count)
    with deterministic kernels; both settings are restored afterwards.
    """
    import torch

    with _determinism(torch):
        from tailgraph.engine.quiet import quiet_libraries

        quiet_libraries()

        out = Path(out)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            return _run(out, num_train, num_test, epochs, stage_epochs, seed)
        except BaseException:  # an error or an interrupt before anything landed: no empty --out
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            raise


def _run(
    out: Path,
    num_train: int,
    num_test: int,
    epochs: int,
    stage_epochs: tuple[int, ...],
    seed: int,
) -> dict[str, Any]:
    """The body of :func:`run_demo` (determinism set, ``out`` made)."""
    import lightning as L
    import numpy as np

    from tailgraph.datamodules.vg import SynthVGDataModule
    from tailgraph.engine.module import SGGModule
    from tailgraph.io.outputs import write_json_atomic
    from tailgraph.io.results import results_document
    from tailgraph.viz.report import write_report

    timings: dict[str, float] = {}
    models: dict[str, dict] = {}
    logs: dict[str, str] = {}  # model -> its training curves (CSV), relative to ``out``

    t0 = time.perf_counter()
    data = {
        **DEMO_DATA,
        "num_train": num_train,
        "num_test": num_test,
        "num_val_im": min(DEMO_DATA["num_val_im"], num_train // 10),
    }
    dm = SynthVGDataModule(root=str(out / "synth-vg"), synth_seed=seed, **data)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    timings["generate synth-vg"] = time.perf_counter() - t0
    counts = np.array([dm.vocab.predicate_counts[i] for i in dm.vocab.foreground_predicates])  # type: ignore[union-attr]
    rels = np.array([g.num_relations for g in dm.splits["train"]])
    print(
        f"[demo] synth-vg: {len(dm.splits['train'])} train / {len(dm.splits['test'])} test "
        f"images in {out / 'synth-vg'}; "
        f"{rels.mean():.1f} relations per image; training relations per predicate "
        f"{counts.min()}..{counts.max()} "
        f"(head / tail {counts.max() / max(counts.min(), 1):.0f})"
    )

    t0 = time.perf_counter()
    freq = SGGModule(context={"class_path": "tailgraph.modeling.freq.FrequencyBaseline"}, head=None)
    _trainer(out, "freq", 1).test(freq, datamodule=dm, verbose=False)
    models["FREQ"] = freq.last_metrics
    timings["FREQ (count + test)"] = time.perf_counter() - t0

    runs = {
        "MOTIFS": ({"class_path": "tailgraph.methods.base.Supervised"}, epochs),
        "MOTIFS + HML": (
            {
                "class_path": "tailgraph.methods.hml.HML",
                "init_args": {"stage_epochs": list(stage_epochs)},
            },
            sum(stage_epochs),
        ),
    }
    for name, (method, n_epochs) in runs.items():
        t0 = time.perf_counter()
        L.seed_everything(seed, workers=True, verbose=False)
        module = SGGModule(method=method, **DEMO_MODEL)  # type: ignore[arg-type]
        trainer = _trainer(out, name.replace(" + ", "_").lower(), n_epochs)
        trainer.fit(module, datamodule=dm)
        trainer.test(module, datamodule=dm, verbose=False)
        models[name] = module.last_metrics
        logs[name] = str(Path(trainer.loggers[0].log_dir, "metrics.csv").relative_to(out))
        timings[f"{name} ({n_epochs} epochs fit + test)"] = time.perf_counter() - t0

    doc = results_document(
        models,
        dm.vocab,
        "predcls",
        timings=timings,
        logs=logs,
        dataset=f"synth-vg seed {seed}: {len(dm.splits['train'])} train / {num_test} test "
        "images, head/tail "
        f"{counts.max() / max(counts.min(), 1):.0f}, {rels.mean():.1f} relations per image",
    )
    write_json_atomic(out / "metrics.json", doc)
    files = write_report(out / "metrics.json", out)
    keys = ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100")
    print()
    print("PredCls on synth-vg (graph constraint), percent:")
    print(f"{'model':<16}" + "".join(f"{k:>9}" for k in keys) + f"{'Mean@50':>9}")
    for name, m in models.items():
        print(
            f"{name:<16}"
            + "".join(f"{100 * m[k]:>9.2f}" for k in keys)
            + f"{50 * (m['R@50'] + m['mR@50']):>9.2f}"
        )
    print()
    for phase, sec in timings.items():
        print(f"[demo] {phase}: {sec:.1f} s")
    print(f"[demo] metrics: {out / 'metrics.json'}")
    for kind, path in files.items():
        print(f"[demo] {kind}: {path}")
    return doc


@contextmanager
def _determinism(torch: Any) -> Iterator[None]:
    """:data:`DEMO_THREADS` threads and deterministic kernels, restored afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(DEMO_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument(
        "--train",
        type=int_in(MIN_TRAIN, MAX_ITEMS),
        default=DEMO_DATA["num_train"],
        help=f"training images ({MIN_TRAIN}-{MAX_ITEMS})",
    )
    p.add_argument(
        "--test",
        type=int_in(1, MAX_ITEMS),
        default=DEMO_DATA["num_test"],
        help=f"test images (1-{MAX_ITEMS})",
    )
    p.add_argument(
        "--epochs", type=int_in(1, 1000), default=8, help="epochs of the plain model (1-1000)"
    )
    p.add_argument(
        "--stage-epochs",
        type=int_in(1, 1000),
        nargs="+",
        default=[4, 4],
        help="epochs of each HML stage (1-1000)",
    )
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="0-2^32-1")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier demo in --out"
    )
    a = p.parse_args(argv)
    from tailgraph.io.outputs import claim_file
    from tailgraph.viz.report import REPORT_FILES

    for name in ("metrics.json", *REPORT_FILES.values()):  # checked before hours of work
        claim_file(Path(a.out) / name, a.overwrite, field="--out")
    doc = run_demo(a.out, a.train, a.test, a.epochs, tuple(a.stage_epochs), a.seed)
    plain, hml = doc["models"]["MOTIFS"], doc["models"]["MOTIFS + HML"]
    verdict = "lifts" if hml["mR@50"] > plain["mR@50"] else "does NOT lift"
    print(
        f"[demo] HML {verdict} the tail: mR@50 {100 * hml['mR@50']:.2f} vs "
        f"{100 * plain['mR@50']:.2f} "
        f"(R@50 {100 * hml['R@50']:.2f} vs {100 * plain['R@50']:.2f})"
    )
    return 0
