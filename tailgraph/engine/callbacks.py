"""The console of ``tailgraph fit / test``: one progress bar per phase, a closing summary.

:class:`PhaseProgressBar` draws one bar for the whole of ``fit`` (every epoch, its validation
folded into the bar's figures; no sanity-check bar) and one for ``test`` / ``predict``.
:class:`FitSummary` prints a table when ``fit`` ends: epochs, steps, time, the last training
losses, the monitored validation metric (best and last) and the checkpoint folder.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, _update_n, convert_inf

__all__ = ["PhaseProgressBar", "FitSummary", "summary_table"]


class PhaseProgressBar(TQDMProgressBar):
    """One bar for all of ``fit`` (``fit · epoch e/E``), one for ``test`` and ``predict``."""

    def __init__(self, refresh_rate: int | None = None) -> None:
        # a log file or pipe gets every 25th step, not a line per step
        if refresh_rate is None:
            refresh_rate = 1 if sys.stdout.isatty() else 25
        super().__init__(refresh_rate=refresh_rate, leave=False)
        self._done = 0  # training batches of the epochs before this one

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

    def _eval_batch_start(self, bar: Tqdm, total: str, desc: str, dataloader_idx: int) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        bar.reset(total=convert_inf(getattr(self, total)))
        bar.initial = 0
        bar.set_description(desc if dataloader_idx == 0 else f"{desc} ({dataloader_idx})")

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: D102
        self._eval_batch_start(
            self.test_progress_bar,
            "total_test_batches_current_dataloader",
            "test",
            dataloader_idx,
        )

    def on_predict_batch_start(
        self, trainer, pl_module, batch, batch_idx, dataloader_idx=0
    ) -> None:  # noqa: D102
        self._eval_batch_start(
            self.predict_progress_bar,
            "total_predict_batches_current_dataloader",
            "predict",
            dataloader_idx,
        )

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:  # noqa: D102
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


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
        protocol = getattr(pl_module, "protocol", None)
        self._key = f"val/{protocol.monitor}" if protocol is not None else None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        if trainer.sanity_checking or self._key is None:
            return
        v = trainer.callback_metrics.get(self._key)
        if v is None:
            return
        v = float(v)
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
        if self._best is not None:
            rows.append(
                (
                    self._key,
                    f"{100 * self._best[0]:.2f} best (epoch {self._best[1]}), "
                    f"{100 * self._last:.2f} last",
                )
            )
        ckpt = getattr(trainer, "checkpoint_callback", None)
        if ckpt is not None and getattr(ckpt, "dirpath", None):
            rows.append(("checkpoints", str(ckpt.dirpath)))
        print("\n" + summary_table(rows, "fit summary"))
