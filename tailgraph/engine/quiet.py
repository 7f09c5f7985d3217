"""Keep the console to what the user asked for: no library advertising or deprecation noise.

Lightning prints a "💡 Tip" advertising a cloud logger on every trainer, and the libraries warn
about details of their own internals (a pytree deprecation inside Lightning, the
``transfer_batch_to_device`` override that tailgraph makes on purpose, a checkpoint folder that
moves between ``fit`` and ``test`` runs, DataLoader worker counts on purpose left at 0, the
hardware inventory every trainer prints, a short run smaller than the logging interval,
jsonargparse's notes on APIs that Lightning's CLI still calls, the seed line, the line before a
checkpoint loads).
:func:`quiet_libraries` filters exactly those messages; every other warning and log line is
kept.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["quiet_libraries", "NOISE"]

# message fragments of library output that says nothing about the user's run
NOISE = (
    "litlogger",
    "isinstance(treespec, LeafSpec)",
    "You have overridden `transfer_batch_to_device`",
    "The dirpath has changed from",
    "does not have many workers",
    "Consider setting `persistent_workers=True`",
    # hardware inventory printed by every trainer (the run's own accelerator is in run.json)
    "GPU available:",
    "TPU available:",
    "HPU available:",
    # a short run (limit_train_batches, tiny synthetic sets) is smaller than the log interval
    "is smaller than the logging interval",
    # tailgraph passes LightningCLI its arguments and keeps sys.argv for DDP's re-launch
    "LightningCLI's args parameter is intended",
    # the end of a fit run is tailgraph's closing summary table (epochs, steps, metrics)
    "`Trainer.fit` stopped: `max_epochs=",
    # the metrics are synchronised by torchmetrics (every rank logs the same value)
    "when logging on epoch level in distributed setting",
    # the seed is the recipe's and is kept in run.json
    "Seed set to ",
    # printed before the weights load (so a checkpoint that does not fit would add a line to
    # its one-line error); Lightning's "Loaded model weights from ..." still names the file
    "Restoring states from the checkpoint path at",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in NOISE)


_installed = False


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    # Lightning's own use of jsonargparse APIs that jsonargparse has deprecated
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    for fragment in NOISE:
        warnings.filterwarnings("ignore", message=f".*{_escape(fragment)}.*")
    drop = _DropNoise()
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.fabric.utilities.seed",
        "lightning.pytorch",
        "lightning.fabric",
    ):
        logging.getLogger(name).addFilter(drop)
    # Lightning's own handlers sit on the package loggers: filter there too
    for name in ("lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(drop)


def _escape(text: str) -> str:
    import re

    return re.escape(text)
