"""``tailgraph fit / validate / test / predict``: LightningCLI over :class:`SGGModule`.

A recipe YAML has three sections: ``model`` (the :class:`SGGModule` options, whose parts are
``class_path`` + ``init_args`` specs), ``data`` (a LightningDataModule by ``class_path``) and
``trainer``. ``tailgraph fit --config configs/synth_vg_predcls.yaml``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.cli import LightningCLI

from tailgraph.engine.module import SGGModule

__all__ = ["fit_main", "validate_main", "test_main", "predict_main", "MetricsWriter", "PredictionWriter", "write_json_atomic", "results_document"]


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def results_document(models: dict[str, dict], vocab: Any, task: str, **more: Any) -> dict:
    """The results file layout read by ``tailgraph report``."""
    doc: dict[str, Any] = {"task": task, "models": models}
    if vocab is not None:
        fg = vocab.foreground_predicates
        doc["predicates"] = [vocab.predicates[i] for i in fg]
        doc["train_counts"] = [int(vocab.predicate_counts[i]) for i in fg]
    doc.update(more)
    return doc


class MetricsWriter(Callback):
    """Writes the full test metrics (incl. per-predicate recall) to ``metrics.json`` in the
    run's log folder (or ``path``)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = getattr(pl_module, "last_metrics", None)
        if not metrics or not trainer.is_global_zero:
            return
        target = self.path or os.path.join(trainer.log_dir or ".", "metrics.json")
        write_json_atomic(target, results_document({"model": metrics}, getattr(pl_module, "vocab", None), pl_module.task.value))


class PredictionWriter(BasePredictionWriter):
    """Writes ``tailgraph predict`` outputs as tailgraph-sg/1 prediction JSON
    (``predictions.json`` in the run's log folder, or ``path``)."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:  # noqa: D102
        from tailgraph.interchange import write_predictions

        flat = [p for batch in predictions for p in batch]
        target = self.path or os.path.join(trainer.log_dir or ".", "predictions.json")
        write_predictions(target, flat)
        print(f"predictions: {target} ({len(flat)} images)")


class TailgraphCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:  # noqa: D401 - LightningCLI hook
        parser.set_defaults(
            {
                "trainer.callbacks": [
                    {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                     "init_args": {"save_last": True, "filename": "epoch{epoch}", "auto_insert_metric_name": False}},
                    {"class_path": "tailgraph.engine.cli.MetricsWriter"},
                    {"class_path": "tailgraph.engine.cli.PredictionWriter"},
                ],
            }
        )


def _run(subcommand: str, argv: list[str]) -> int:
    TailgraphCLI(
        SGGModule,
        L.LightningDataModule,
        subclass_mode_data=True,
        args=[subcommand, *argv],
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": [
                {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": "tailgraph"}},
                {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs", "name": "tailgraph"}},
            ],
        },
    )
    return 0


def fit_main(argv: list[str]) -> int:
    return _run("fit", argv)


def validate_main(argv: list[str]) -> int:
    return _run("validate", argv)


def test_main(argv: list[str]) -> int:
    return _run("test", argv)


def predict_main(argv: list[str]) -> int:
    return _run("predict", argv)


