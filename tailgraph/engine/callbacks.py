"""The callbacks of ``tailgraph fit / test / predict``: the console and what a run writes.

:class:`PhaseProgressBar` draws one bar for the whole of ``fit`` (every epoch, its validation
folded into the bar's figures; no sanity-check bar) and one for ``test`` / ``predict``.
:class:`FitSummary` prints a table when ``fit`` ends: epochs, steps, time, the last training
losses, the monitored validation metric (best and last) and the checkpoint folder.
:class:`MetricsWriter` writes ``metrics.json`` after ``test``, :class:`RunInfoWriter`
``run.json`` (versions, seed), :class:`PredictionWriter` the predictions of ``predict`` (and,
with ``write_test``, of ``test``), each receiving what it writes from the engine's step outputs.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    Callback,
    ModelCheckpoint,
    TQDMProgressBar,
)
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, _update_n, convert_inf

from tailgraph.engine.module import SGGModule, library_versions
from tailgraph.io.outputs import write_json_atomic
from tailgraph.io.predictions import PRED_FORMATS, write_image_predictions, write_video_results
from tailgraph.io.results import results_document, training_log_of

__all__ = [
    "EpochCheckpoint",
    "PhaseProgressBar",
    "FitSummary",
    "summary_table",
    "MetricsWriter",
    "RunInfoWriter",
    "PredictionWriter",
]


class EpochCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``{epoch}`` counts from 1, as the progress bar and the fit
    summary do (``epoch1.ckpt`` is the state after the first epoch)."""

    def format_checkpoint_name(self, metrics: dict, *args: Any, **kwargs: Any) -> str:  # noqa: D102
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": int(metrics["epoch"]) + 1}
        return super().format_checkpoint_name(metrics, *args, **kwargs)


def _percent(key: str, value: Any) -> Any:
    """Recalls and APs as a person reads them: ``val/mR@50=17.94`` (%), losses as they are."""
    name = key.rsplit("/", 1)[-1]
    if ("R@" in name or "AP" in name) and isinstance(value, (int, float)):
        return f"{100 * float(value):.2f}%"
    return value


class PhaseProgressBar(TQDMProgressBar):
    """One bar for all of ``fit`` (``fit · epoch e/E``), one for ``test`` and ``predict``."""

    def __init__(self, refresh_rate: int | None = None) -> None:
        # a log file or pipe gets every 25th step, not a line per step
        if refresh_rate is None:
            refresh_rate = 1 if sys.stdout.isatty() else 25
        super().__init__(refresh_rate=refresh_rate, leave=False)
        self._done: int | None = 0  # training batches of the epochs before this one

    def on_sanity_check_start(self, *_: Any) -> None:  # noqa: D102 - no sanity-check bar
        self.val_progress_bar = Tqdm(disable=True)
        self.train_progress_bar = Tqdm(disable=True)

    def on_sanity_check_end(self, *_: Any) -> None:  # noqa: D102
        pass

    def init_validation_tqdm(self) -> Tqdm:  # noqa: D102 - validation inside fit: no bar
        if self.trainer.state.fn == "fit":
            return Tqdm(disable=True)
        return super().init_validation_tqdm()

    def on_train_start(self, trainer: L.Trainer, *_: Any) -> None:  # noqa: D102
        self.train_progress_bar = self.init_train_tqdm()
        self._done = None  # set at the first epoch (a resumed run starts further on)

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:  # noqa: D102
        per_epoch = self.total_train_batches
        bar = self.train_progress_bar
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        if self._done is None:
            finite = isinstance(per_epoch, int) or (
                isinstance(per_epoch, float) and math.isfinite(per_epoch)
            )
            self._done = int(trainer.current_epoch * per_epoch) if finite else 0
            bar.reset()
            bar.total = int(per_epoch * epochs) if (finite and epochs) else None
            bar.initial = 0
            _update_n(bar, self._done)
        of = f"/{epochs}" if epochs else ""
        bar.set_description(f"fit · epoch {trainer.current_epoch + 1}{of}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        n = (self._done or 0) + batch_idx + 1
        if self._should_update(n, self.train_progress_bar.total or n):
            _update_n(self.train_progress_bar, n)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        per_epoch = self.total_train_batches
        if isinstance(per_epoch, (int, float)) and math.isfinite(per_epoch):
            self._done = (self._done or 0) + int(per_epoch)
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def _phase_bar(self, desc: str) -> Tqdm:
        return Tqdm(
            desc=desc,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def init_train_tqdm(self) -> Tqdm:  # noqa: D102
        return self._phase_bar("fit")

    def init_test_tqdm(self) -> Tqdm:  # noqa: D102
        return self._phase_bar("test")

    def init_predict_tqdm(self) -> Tqdm:  # noqa: D102
        return self._phase_bar("predict")

    def _eval_batch_start(
        self, bar: Tqdm, total: Callable[[], Any], desc: str, dataloader_idx: int
    ) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        bar.reset(total=convert_inf(total()))  # the count of the dataloader just entered
        bar.initial = 0
        bar.set_description(desc if dataloader_idx == 0 else f"{desc} ({dataloader_idx})")

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: D102
        self._eval_batch_start(
            self.test_progress_bar,
            lambda: self.total_test_batches_current_dataloader,
            "test",
            dataloader_idx,
        )

    def on_predict_batch_start(
        self, trainer, pl_module, batch, batch_idx, dataloader_idx=0
    ) -> None:  # noqa: D102
        self._eval_batch_start(
            self.predict_progress_bar,
            lambda: self.total_predict_batches_current_dataloader,
            "predict",
            dataloader_idx,
        )

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:  # noqa: D102
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return {k: _percent(k, v) for k, v in items.items()}


def summary_table(rows: list[tuple[str, str]], title: str) -> str:
    """A two-column text table under ``title``."""
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title, "-" * max(len(title), 20)]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


class FitSummary(Callback):
    """Prints the closing table of ``fit`` (rank 0)."""

    def __init__(self) -> None:
        self._t0 = 0.0
        self._best: tuple[float, int] | None = None
        self._last: float | None = None
        self._key: str | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        self._t0 = time.perf_counter()
        self._best = self._last = None
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank takes part
        if trainer.is_global_zero:  # where to look, before hours of work
            params = list(pl_module.parameters())
            trainable = sum(p.numel() for p in params if p.requires_grad)
            frozen = sum(p.numel() for p in params if not p.requires_grad)
            name = type(getattr(pl_module, "model", pl_module)).__name__
            print(f"model: {name}, {trainable:,} trainable + {frozen:,} frozen parameters")
            if log_dir:
                print(f"run folder: {log_dir}", flush=True)
        protocol = pl_module.protocol if isinstance(pl_module, SGGModule) else None
        self._key = f"val/{protocol.monitor}" if protocol is not None else None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        if trainer.sanity_checking or self._key is None:
            return
        metric = trainer.callback_metrics.get(self._key)
        if metric is None:
            return
        v = float(metric)
        self._last = v
        if self._best is None or v > self._best[0]:
            self._best = (v, trainer.current_epoch + 1)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        if not trainer.is_global_zero:
            return
        seconds = time.perf_counter() - self._t0
        rows = [
            ("epochs", f"{trainer.current_epoch} (steps {trainer.global_step})"),
            ("time", f"{seconds:.1f} s"),
        ]
        for k, v in sorted(trainer.callback_metrics.items()):
            if k.startswith("train/") and "loss" in k:
                rows.append((k, f"{float(v):.4f} (last step)"))
        if self._best is not None and self._key is not None and self._last is not None:
            rows.append(
                (
                    self._key,
                    f"{100 * self._best[0]:.2f} best (epoch {self._best[1]}), "
                    f"{100 * self._last:.2f} last",
                )
            )
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, ModelCheckpoint) and ckpt.dirpath:
            rows.append(("checkpoints", str(ckpt.dirpath)))
        print("\n" + summary_table(rows, "fit summary"))


class MetricsWriter(Callback):
    """Writes the test metrics to ``metrics.json`` in the run's log folder (or ``path``) and
    prints where."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def on_test_end(self, trainer: L.Trainer, pl_module: SGGModule) -> None:  # type: ignore[override]
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        metrics = pl_module.last_metrics
        if not metrics or not trainer.is_global_zero:
            return
        target = self.path or os.path.join(log_dir or trainer.default_root_dir, "metrics.json")
        vocab = pl_module.vocab
        stats = pl_module.train_stats
        if vocab is not None and stats is not None:
            vocab = vocab.with_counts(stats.predicate_counts)
        log = training_log_of(trainer.ckpt_path)
        doc = results_document(
            {"model": metrics},
            vocab,
            pl_module.task.value,
            protocol=pl_module.protocol_name,
            logs={"model": log} if log else None,
        )
        write_json_atomic(target, doc)
        from tailgraph.viz.report import flatten_models, results_table

        header, rows = results_table(flatten_models({"model": metrics}))
        if len(header) > 1:
            print(f"\ntest ({pl_module.task.value}), percent:")
            print("".join(f"{h:>{10 if i else 12}}" for i, h in enumerate(header)))
            for r in rows:
                print("".join(f"{c:>{10 if i else 12}}" for i, c in enumerate(r)))
        print(f"metrics: {target}")


class RunInfoWriter(Callback):
    """Writes ``run.json`` (library versions, seed, subcommand) into the run's log folder."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        if not trainer.is_global_zero:
            return
        seed = os.environ.get("PL_GLOBAL_SEED")
        info = {
            "versions": library_versions(),
            "seed": int(seed) if seed is not None else None,
            "stage": stage,
        }
        write_json_atomic(os.path.join(log_dir or trainer.default_root_dir, "run.json"), info)


class PredictionWriter(BasePredictionWriter):
    """Writes the predictions the engine's ``predict_step`` (and ``test_step``) return.

    Image and frame models' predictions become tailgraph-sg/1 predictions
    (``predictions.<format>`` in the run's folder, or ``path``); a segment-level video model's
    (VidVRD-II) are associated per video by the protocol and written as VidVRD's results
    (``predictions.json`` or, with a binary format, ``vidvrd_results``: what ``tailgraph
    evaluate`` reads).

    Args:
        path: the output file (default: in the run's log folder).
        format: ``json`` | ``json.gz`` | ``h5`` | ``npz`` (``--pred-format``).
        write_test: also write the test split's predictions after ``test``
            (``test_predictions.<format>``; ``tailgraph test --pred-format``).
    """

    def __init__(self, path: str | None = None, format: str = "json", write_test: bool = False):
        super().__init__(write_interval="epoch")
        if format not in PRED_FORMATS:
            from tailgraph.errors import DataError

            raise DataError(
                f"unknown format {format!r}; expected one of {', '.join(PRED_FORMATS)}",
                field="--pred-format",
            )
        self.path, self.format, self.write_test = path, format, write_test
        self._test: list = []

    def _target(self, trainer: L.Trainer, stem: str) -> str:
        return self.path or os.path.join(trainer.log_dir or ".", f"{stem}.{self.format}")

    def _write(self, target: str, collated: Any) -> str:
        if isinstance(collated, dict):  # video id -> relation instances
            write_video_results(target, collated)
            return f"{target} ({len(collated)} videos)"
        write_image_predictions(target, collated)
        return f"{target} ({len(collated)} images)"

    def on_test_epoch_start(self, trainer, pl_module) -> None:  # noqa: D102
        self._test = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):  # noqa: D102
        if self.write_test:
            self._test.extend(outputs or [])

    def on_test_epoch_end(self, trainer, pl_module) -> None:  # noqa: D102
        if not self.write_test:
            return
        target = self._target(trainer, "test_predictions")  # every rank (a DDP collective)
        if not trainer.is_global_zero:
            return
        collated = pl_module.protocol.collate_predictions(pl_module.model, self._test)
        self._test = []
        print(f"predictions: {self._write(target, collated)}")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:  # noqa: D102
        flat = [p for batch in predictions for p in batch]
        collated = pl_module.protocol.collate_predictions(pl_module.model, flat)
        ext = self.format
        if isinstance(collated, dict) and ext == "json.gz":  # VidVRD results are plain JSON
            ext = "json"
        target = self.path or os.path.join(trainer.log_dir or ".", f"predictions.{ext}")
        print(f"predictions: {self._write(target, collated)}")
