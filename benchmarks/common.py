"""Helpers shared by the benchmark scripts (run from ``benchmarks/``)."""

from __future__ import annotations

import time


def fit_and_test(module, dm, epochs: int) -> tuple[dict, float]:
    """Train ``module`` on ``dm`` for ``epochs`` (no validation, no logging or checkpoints),
    then test it; returns ``(test metrics, training seconds)``."""
    import lightning as L

    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - t0
    trainer.test(module, datamodule=dm, verbose=False)
    return module.last_metrics, seconds
