"""Checkpoints: written atomically, found for ``--ckpt_path last``, checked before loading
(``weights_only=True``; a truncated, foreign or unsafe file is a one-line error)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = [
    "AtomicCheckpointIO",
    "latest_checkpoint",
    "check_checkpoint",
    "load_model_weights",
    "tensor_crc32",
]

# where a checkpoint written by tailgraph records the CRC-32 of each of its tensors
CRC_KEY = "tensor_crc32"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary name and renamed: a run killed while saving
    leaves the previous checkpoint intact, never a truncated one. A write that fails (disk
    full, a file-size limit) is an OSError naming the checkpoint, and leaves no temporary."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        except OSError as exc:
            if exc.filename is not None and Path(exc.filename) != tmp:
                raise
            # torch's zip writer reports no file name; the checkpoint is what could not be written
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        finally:
            if tmp.exists():
                tmp.unlink()


def latest_checkpoint(root: str | os.PathLike) -> str:
    """``--ckpt_path last``: the ``last.ckpt`` of the newest run under ``<root>/runs`` (every run
    gets a new ``version_N`` folder, so Lightning's own ``last`` would look in the empty new
    one)."""
    from tailgraph.errors import DataError

    runs = []
    for d in Path(root, "runs").glob("version_*"):
        ckpt = d / "checkpoints" / "last.ckpt"
        if ckpt.is_file() and d.name.split("_", 1)[1].isdigit():
            runs.append((int(d.name.split("_", 1)[1]), ckpt))
    if not runs:
        raise DataError(
            "--ckpt_path last: no run with checkpoints/last.ckpt",
            file=str(Path(root, "runs")),
            field="ckpt_path",
        )
    return str(max(runs)[1])


def check_checkpoint(path: str | os.PathLike, field: str = "ckpt_path") -> dict:
    """Refuse a checkpoint that is missing, truncated, foreign, damaged, or holds anything
    beyond tensors and plain containers: it is read with ``torch.load(weights_only=True)`` (no
    code can run), must be a Lightning checkpoint with a ``state_dict`` and
    ``hyper_parameters``, and its tensors must match their recorded CRC-32
    (:func:`tensor_crc32`). Returns the loaded checkpoint (tensors memory-mapped)."""
    import warnings

    import torch

    from tailgraph.errors import DataError

    p = Path(path)
    where = {"file": str(path), "field": field}
    if not p.exists():
        raise DataError("checkpoint not found", **where)
    if p.is_dir():
        raise DataError("is a directory, expected a checkpoint file", **where)
    with warnings.catch_warnings():  # torch's notes on legacy formats: the error says it
        warnings.simplefilter("ignore")
        return _load_checked(torch, p, where)


def load_model_weights(model: Any, path: str | os.PathLike, vocab: Any) -> None:
    """Start ``model`` from the model weights of a trained tailgraph checkpoint
    (``model.init_from``): a checkpoint file, or a folder whose ``runs/version_N`` hold
    checkpoints (the newest run's ``last.ckpt``, i.e. the ``trainer.default_root_dir`` of the
    upstream recipe).

    The checkpoint is checked as :func:`check_checkpoint` does; its vocabulary (object classes,
    predicates, relation types) must equal ``vocab``; every tensor of ``model`` must be in it
    under ``model.<name>`` with the same shape, and it may hold no model tensor that ``model``
    lacks. Method state (``method.*``: BMP prototypes, HML anchors) and optimiser state are not
    read. Each violation is a one-line :class:`~tailgraph.errors.DataError`.
    """
    import warnings

    import torch

    from tailgraph.errors import DataError

    where = {"file": str(path), "field": "model.init_from"}
    p = Path(path)
    if p.is_dir():  # a run folder: the newest run's last.ckpt under <dir>/runs
        try:
            p = Path(latest_checkpoint(p))
        except DataError:
            raise DataError(
                "a folder without runs/version_N/checkpoints/last.ckpt (train the upstream "
                "recipe first, or name a checkpoint file)",
                **where,
            ) from None
        where["file"] = str(p)
    if not p.is_file():
        raise DataError("checkpoint not found" if not p.exists() else "not a file", **where)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ck = _load_checked(torch, p, where)
    info = ck.get("tailgraph")
    theirs = info.get("vocab") if isinstance(info, dict) else None
    if not isinstance(theirs, dict):
        raise DataError("the checkpoint embeds no vocabulary", **where)
    ours = vocab.to_dict()
    for key in ("object_classes", "predicates", "relation_type"):
        a, b = list(theirs.get(key) or []), list(ours.get(key) or [])
        if a != b:
            i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            x = a[i] if i < len(a) else "<none>"
            y = b[i] if i < len(b) else "<none>"
            raise DataError(
                f"the checkpoint's vocabulary differs from this run's in '{key}' at {i}: "
                f"{x!r} in the checkpoint, {y!r} here",
                **where,
            )
    state = {k[len("model.") :]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        name = (missing or extra)[0]
        raise DataError(
            f"the checkpoint's model does not match this recipe's: {len(missing)} tensors "
            f"missing, {len(extra)} unexpected (first: '{name}')",
            **where,
        )
    for name, t in own.items():
        if tuple(state[name].shape) != tuple(t.shape):
            raise DataError(
                f"tensor '{name}' has shape {tuple(state[name].shape)} in the checkpoint, "
                f"{tuple(t.shape)} in this recipe's model",
                **where,
            )
    model.load_state_dict(state)


def tensor_crc32(checkpoint: Any) -> dict[str, int]:
    """CRC-32 of the bytes of every dense tensor in ``checkpoint`` (weights, optimiser moments,
    random states, method buffers), keyed by its path (``state_dict/model.head.weight``,
    ``optimizer_states/0/state/3/exp_avg``). A torch zip file stores tensor data uncompressed
    and ``torch.load`` checks no CRC, so a damaged byte would otherwise load as another value.
    ``SGGModule.on_save_checkpoint`` records it under ``tailgraph.tensor_crc32``; every load
    through :func:`check_checkpoint` / :func:`load_model_weights` compares it."""
    import torch

    from tailgraph.io.checksums import update_crc32

    out: dict[str, int] = {}

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, torch.Tensor):
            if obj.layout == torch.strided and not obj.is_meta and not obj.is_quantized:
                flat = obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                out[path] = update_crc32(flat.numpy())
        elif isinstance(obj, dict):
            for k, v in obj.items():
                if path == "" and k == "tailgraph":
                    continue  # the record itself (vocabulary, versions: no tensors)
                walk(v, f"{path}/{k}" if path else str(k))
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}/{i}" if path else str(i))

    walk(checkpoint, "")
    return out


def _verify_tensors(ck: dict, where: dict) -> None:
    """Compare the tensors of a loaded checkpoint with the CRC-32 recorded when it was saved
    (checkpoints without a record, e.g. of older versions, are not verified)."""
    from tailgraph.errors import DataError

    info = ck.get("tailgraph")
    recorded = info.get(CRC_KEY) if isinstance(info, dict) else None
    if recorded is None:
        return
    if not isinstance(recorded, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in recorded.items()
    ):
        raise DataError("malformed tailgraph.tensor_crc32 (expected {path: integer})", **where)
    now = tensor_crc32(ck)
    for path, crc in recorded.items():
        if path in now and now[path] != crc:
            raise DataError(
                f"tensor '{path}' does not match the CRC-32 recorded when the checkpoint was "
                "saved: the file is damaged (or was edited outside tailgraph; an edited file "
                "must drop 'tailgraph.tensor_crc32')",
                **where,
            )


def _load_checked(torch, p: Path, where: dict) -> dict:
    import pickle

    from tailgraph.errors import DataError

    try:
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            ck = torch.load(p, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        AttributeError,
        TypeError,
        IndexError,
        ImportError,
    ) as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(
            "not a loadable checkpoint (truncated, corrupt, not a torch file, or holding objects "
            f"that weights_only=True refuses): {type(exc).__name__}: {detail}",
            **where,
        ) from None
    if not isinstance(ck, dict) or not isinstance(ck.get("state_dict"), dict):
        raise DataError("not a Lightning checkpoint: no 'state_dict'", **where)
    if not isinstance(ck.get("hyper_parameters"), dict):
        raise DataError("not a tailgraph checkpoint: no 'hyper_parameters'", **where)
    _verify_tensors(ck, where)
    return ck


def run_version_of(checkpoint: str | os.PathLike, root: str | os.PathLike) -> int | None:
    """``N`` when ``checkpoint`` is ``<root>/runs/version_N/checkpoints/*.ckpt`` (a run of this
    root: resuming it continues that folder), else ``None``."""
    p = Path(checkpoint).resolve()
    run = p.parent.parent
    if p.parent.name != "checkpoints" or run.parent != Path(root, "runs").resolve():
        return None
    kind, _, number = run.name.partition("_")
    return int(number) if kind == "version" and number.isdigit() else None


def continuing_csv_logger(save_dir: str | os.PathLike, version: int) -> Any:
    """A ``CSVLogger`` writing into an existing ``runs/version_N`` of a resumed fit: its
    ``metrics.csv`` is extended (Lightning's own writer deletes it when the folder is not
    empty), the rows of the epochs before the resume kept."""
    import csv

    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter
    from lightning.pytorch.loggers.logger import rank_zero_experiment

    class _Writer(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            path = Path(self.metrics_file_path)
            if path.is_file():  # the header's keys, so new rows extend the same columns
                with open(path, newline="") as fh:
                    self.metrics_keys = sorted(next(csv.reader(fh), []))

    class _Logger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self) -> Any:
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = _Writer(log_dir=self.log_dir)
            return self._experiment

    return _Logger(save_dir=str(save_dir), name="runs", version=version)


def folder_only_logger(save_dir: str | os.PathLike, version: int | None = None) -> Any:
    """``trainer.logger: false``: a logger that records nothing, so that a run without logs
    still writes into its own ``<save_dir>/runs/version_N`` (``checkpoints/``, ``config.yaml``,
    ``run.json``, ``metrics.json``) rather than into ``checkpoints/`` and ``run.json`` of the
    working directory, where ``--ckpt_path last`` and ``report`` would not find it."""
    from lightning.pytorch.loggers import CSVLogger

    class _Logger(CSVLogger):
        @property
        def experiment(self) -> None:  # no writer: nothing is logged, nothing is cleared
            return None

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            pass

        def log_hyperparams(self, params: Any = None) -> None:
            pass

        def save(self) -> None:
            pass

        def finalize(self, status: str) -> None:
            pass

    return _Logger(save_dir=str(save_dir), name="runs", version=version)
