"""``tailgraph fit / validate / test / predict``: LightningCLI over :class:`SGGModule`.

A recipe YAML has three sections: ``model`` (the :class:`SGGModule` options, whose parts are
``class_path`` + ``init_args`` specs), ``data`` (a LightningDataModule by ``class_path``, of any
data kind: VG, Action Genome, Open Images, VidVRD or their synthetic twins) and ``trainer``.

Every run writes into one folder, ``<trainer.default_root_dir>/runs/version_N/``: the CSV and
TensorBoard logs, ``config.yaml`` (the resolved recipe), ``run.json`` (library versions and
seed), ``checkpoints/last.ckpt`` (``fit``) and ``metrics.json`` (``test``; the keys
``tailgraph evaluate --json`` writes for the protocol, AG nested under ``with`` / ``semi`` /
``no``). Errors in the recipe or the data end in one line on stderr and exit code 2
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ArgumentError
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tailgraph.engine.module import SGGModule, library_versions

__all__ = [
    "fit_main",
    "validate_main",
    "test_main",
    "predict_main",
    "MetricsWriter",
    "PredictionWriter",
    "RunInfoWriter",
    "latest_checkpoint",
    "write_json_atomic",
    "results_document",
]


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def results_document(models: dict[str, dict], vocab: Any, task: str, **more: Any) -> dict:
    """The results file layout read by ``tailgraph report``: ``task``, ``models`` (name ->
    metrics), the foreground ``predicates`` with their ``train_counts``, and where the
    vocabulary has a predicate hierarchy ``coarse_parent`` (per foreground predicate, its
    parent's name or null). ``more`` adds keys such as ``timings``, ``dataset``, ``protocol``
    and ``logs`` (model name -> the training run's ``metrics.csv``)."""
    doc: dict[str, Any] = {"task": task, "models": models}
    if vocab is not None:
        fg = vocab.foreground_predicates
        doc["predicates"] = [vocab.predicates[i] for i in fg]
        doc["train_counts"] = [int(vocab.predicate_counts[i]) for i in fg]
        parents = [int(vocab.coarse_parent[i]) for i in fg] if vocab.coarse_parent else []
        if any(p >= 0 for p in parents):
            doc["coarse_parent"] = [vocab.predicates[p] if p >= 0 else None for p in parents]
    doc.update({k: v for k, v in more.items() if v is not None})
    return doc


def training_log_of(ckpt_path: str | os.PathLike | None) -> str | None:
    """The CSV log (``metrics.csv``) of the run that wrote ``ckpt_path``
    (``<run>/checkpoints/x.ckpt`` -> ``<run>/metrics.csv``), if it exists."""
    if not ckpt_path:
        return None
    csv = Path(ckpt_path).resolve().parent.parent / "metrics.csv"
    return str(csv) if csv.is_file() else None


class MetricsWriter(Callback):
    """Writes the test metrics to ``metrics.json`` in the run's log folder (or ``path``) and
    prints where."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        metrics = getattr(pl_module, "last_metrics", None)
        if not metrics or not trainer.is_global_zero:
            return
        target = self.path or os.path.join(log_dir or trainer.default_root_dir, "metrics.json")
        vocab = getattr(pl_module, "vocab", None)
        stats = getattr(pl_module, "train_stats", None)
        if vocab is not None and stats is not None:
            vocab = vocab.with_counts(stats.predicate_counts)
        log = training_log_of(trainer.ckpt_path)
        doc = results_document(
            {"model": metrics},
            vocab,
            pl_module.task.value,
            protocol=getattr(pl_module, "protocol_name", None),
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


PRED_FORMATS = ("json", "json.gz", "h5", "npz")


def pred_format() -> str:
    """The prediction file format of this run (``--pred-format``; default ``json``)."""
    return os.environ.get("TAILGRAPH_PRED_FORMAT", "json")


def write_image_predictions(target: str, preds: list) -> str:
    """Image / frame predictions as interchange JSON or the binary format (by extension)."""
    from tailgraph.io.binformat import is_binary, predictions_arrays, write_binary

    if is_binary(target):
        write_binary(target, "predictions", predictions_arrays(preds))
    else:
        from tailgraph.io.interchange import write_predictions

        write_predictions(target, preds)
    return target


class PredictionWriter(BasePredictionWriter):
    """Writes ``tailgraph predict`` outputs as tailgraph-sg/1 predictions
    (``predictions.<fmt>`` in the run's log folder, or ``path``; ``--pred-format`` json,
    json.gz, h5 or npz); a segment-level video model's predictions (VidVRD-II) are associated
    per video and written as VidVRD's results JSON (``{"results": {video id: relation
    instances}}``, what ``tailgraph evaluate`` reads). With ``tailgraph test --pred-format
    FMT`` the test set's predictions are written the same way (image and frame models)."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = path
        self._test: list = []

    def _target(self, trainer, stem: str) -> str:
        return self.path or os.path.join(trainer.log_dir or ".", f"{stem}.{pred_format()}")

    def on_test_epoch_start(self, trainer, pl_module) -> None:  # noqa: D102
        self._test = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):  # noqa: D102
        if "TAILGRAPH_PRED_FORMAT" in os.environ:
            self._test.extend(getattr(pl_module, "last_eval_predictions", None) or [])

    def on_test_epoch_end(self, trainer, pl_module) -> None:  # noqa: D102
        if "TAILGRAPH_PRED_FORMAT" not in os.environ:
            return
        target = self._target(trainer, "test_predictions")  # every rank (a DDP collective)
        if not trainer.is_global_zero:
            return
        if not self._test:
            print("predictions: none to write (segment models write them with predict)")
            return
        target = write_image_predictions(target, self._test)
        print(f"predictions: {target} ({len(self._test)} images)")
        self._test = []

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:  # noqa: D102
        flat = [p for batch in predictions for p in batch]
        if flat and isinstance(flat[0], tuple):  # (video id, segment begin, instances)
            target = self.path or os.path.join(trainer.log_dir or ".", "predictions.json")
            by_video: dict[Any, list] = {}
            for vid, begin, instances in flat:
                by_video.setdefault(vid, []).append((begin, instances))
            results = {
                str(v): pl_module.model.associate(
                    [inst for _, inst in sorted(segs, key=lambda x: x[0])]
                )
                for v, segs in by_video.items()
            }
            if target.endswith(".json") or target.endswith(".json.gz"):
                write_json_atomic(target, {"version": "VERSION 1.0", "results": results})
            else:
                from tailgraph.io.binformat import vidvrd_arrays, write_binary

                arrays, names = vidvrd_arrays(results, results=True)
                write_binary(target, "vidvrd_results", arrays, {"names": names})
            print(f"predictions: {target} ({len(results)} videos)")
            return
        target = write_image_predictions(self._target(trainer, "predictions"), flat)
        print(f"predictions: {target} ({len(flat)} images)")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary name and renamed: a run killed while saving
    leaves the previous checkpoint intact, never a truncated one."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
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


def _child(node: Any, key: str) -> Any:
    """``node[key]`` of a dict or a jsonargparse namespace."""
    return node[key] if isinstance(node, dict) else getattr(node, key)


def check_checkpoint(path: str | os.PathLike, field: str = "ckpt_path") -> None:
    """Refuse a checkpoint that is missing, truncated, foreign, or holds anything beyond tensors
    and plain containers: it is read with ``torch.load(weights_only=True)`` (no code can run)
    and must be a Lightning checkpoint with a ``state_dict`` and ``hyper_parameters``."""
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
        _load_checked(torch, p, where)


def _load_checked(torch, p: Path, where: dict) -> None:
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


DDP_NAMES = ("ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")


def ddp_strategy(name: str = "ddp"):
    """Lightning's DDP as tailgraph runs it: ``--trainer.strategy ddp`` (or its
    ``find_unused_parameters`` spellings).

    * parameters a model leaves unused in a step (MOTIFS' object decoder in PredCls, a head
      per relation type) are allowed, except with ``ddp_find_unused_parameters_false``;
    * module buffers are synced once at start-up, not at every forward: evaluation shards are
      disjoint and may differ in length, and a per-step broadcast would wait for a rank that
      has finished. On GPUs batch-norm statistics are kept in step by ``sync_batchnorm``
      (set by default); on CPUs (gloo) each rank keeps its own during training and rank 0's
      are checkpointed.
    """
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(
        find_unused_parameters=name != "ddp_find_unused_parameters_false",
        forward_sync_buffers=False,  # buffers are synced once, at start-up
    )


class TailgraphCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:  # noqa: D401 - LightningCLI hook
        parser.set_defaults(
            {
                "trainer.callbacks": [
                    {
                        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                        "init_args": {
                            "save_last": True,
                            "filename": "epoch{epoch}",
                            "auto_insert_metric_name": False,
                        },
                    },
                    {"class_path": "tailgraph.engine.lightning_cli.MetricsWriter"},
                    {"class_path": "tailgraph.engine.lightning_cli.PredictionWriter"},
                    {"class_path": "tailgraph.engine.lightning_cli.RunInfoWriter"},
                    {"class_path": "tailgraph.engine.callbacks.FitSummary"},
                ],
                # the data modules shard for DDP themselves (evaluation without the padding
                # duplicates a DistributedSampler adds, so metrics count every image once)
                "trainer.use_distributed_sampler": False,
            }
        )

    def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):  # noqa: D102
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("test", "validate"):
            # the closing table is MetricsWriter's (the main metrics), not Lightning's list of
            # every logged number
            parser.set_defaults({"verbose": False})
        return parser

    def parse_arguments(self, parser, args) -> None:  # noqa: D102 - LightningCLI hook
        self._given_args = list(args or [])
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, Lightning replaces the ``model`` section by the checkpoint's
        hyperparameters (so ``test --config RECIPE`` rebuilds the model as it was trained, with
        the fit's overrides). Options given explicitly on this command line (``--model.…``)
        then win over the checkpoint's, so test-time switches are not silently dropped."""
        import copy

        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        if ckpt and ckpt not in ("last", "best", "hpc"):
            check_checkpoint(ckpt)
        before = copy.deepcopy(self.config)
        super()._parse_ckpt_path()
        sub = self.config.get("subcommand")
        if not sub:
            return
        for a in self._given_args:
            if not a.startswith("--model."):
                continue
            path = a[2:].split("=", 1)[0].split(".")[1:]
            # a component override (--model.context.init_args.x) is kept by jsonargparse as
            # the key x next to the spec's init_args
            for cand in ([p for p in path if p != "init_args"], path):
                src, dst = before[sub]["model"], self.config[sub]["model"]
                try:
                    for part in cand[:-1]:
                        src, dst = _child(src, part), _child(dst, part)
                    value = _child(src, cand[-1])
                except (KeyError, AttributeError, TypeError):
                    continue
                if isinstance(dst, dict):
                    dst[cand[-1]] = value
                else:
                    setattr(dst, cand[-1], value)
                break

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if kwargs.get("ckpt_path") == "last":
            kwargs["ckpt_path"] = latest_checkpoint(self.trainer.default_root_dir)
            check_checkpoint(kwargs["ckpt_path"])
        return kwargs

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> L.Trainer:
        # One run folder for every logger: <default_root_dir>/runs/version_N.
        if config.get("logger") in (None, True):
            from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

            root = config.get("default_root_dir") or os.getcwd()
            csv = CSVLogger(save_dir=root, name="runs")
            config["logger"] = [
                csv,
                TensorBoardLogger(
                    save_dir=root, name="runs", version=csv.version, default_hp_metric=False
                ),
            ]
        if not config.get("plugins"):
            config["plugins"] = [AtomicCheckpointIO()]
        if config.get("enable_progress_bar", True) is not False:
            from lightning.pytorch.callbacks import ProgressBar

            from tailgraph.engine.callbacks import PhaseProgressBar

            given = list(config.get("callbacks") or []) + list(callbacks or [])
            if not any(isinstance(c, ProgressBar) for c in given):
                callbacks = [*callbacks, PhaseProgressBar()]
        strategy = config.get("strategy")
        if isinstance(strategy, str) and strategy in DDP_NAMES:
            config["strategy"] = ddp_strategy(strategy)
            if config.get("accelerator") not in ("cpu",) and not config.get("sync_batchnorm"):
                config["sync_batchnorm"] = True  # (SyncBatchNorm needs GPUs)
        return super()._instantiate_trainer(config, callbacks)


def _take_pred_format(subcommand: str, argv: list[str]) -> list[str]:
    """Strip ``--pred-format FMT`` (predict / test) from ``argv`` into the environment."""
    from tailgraph.errors import DataError

    out, i = [], 0
    os.environ.pop("TAILGRAPH_PRED_FORMAT", None)
    while i < len(argv):
        a = argv[i]
        if a == "--pred-format" or a.startswith("--pred-format="):
            if a == "--pred-format":
                if i + 1 >= len(argv):
                    raise DataError("expects a value", field="--pred-format")
                value, i = argv[i + 1], i + 2
            else:
                value, i = a.split("=", 1)[1], i + 1
            if subcommand not in ("predict", "test"):
                raise DataError(
                    f"only for predict and test, not {subcommand}", field="--pred-format"
                )
            if value not in PRED_FORMATS:
                raise DataError(
                    f"unknown format {value!r}; expected one of {', '.join(PRED_FORMATS)}",
                    field="--pred-format",
                )
            os.environ["TAILGRAPH_PRED_FORMAT"] = value
            continue
        out.append(a)
        i += 1
    return out


def _run(subcommand: str, argv: list[str]) -> int:
    from tailgraph.engine.quiet import quiet_libraries
    from tailgraph.errors import DataError

    quiet_libraries()
    given = list(argv)
    argv = _take_pred_format(subcommand, argv)
    debug = os.environ.get("TAILGRAPH_DEBUG") == "1"
    saved_argv = sys.argv
    # the arguments reach LightningCLI explicitly; sys.argv is the command a DDP launcher
    # re-runs for the other ranks (`tailgraph fit ...` / `python -m tailgraph.cli fit ...`)
    sys.argv = [saved_argv[0], subcommand, *given]
    try:
        TailgraphCLI(
            SGGModule,
            L.LightningDataModule,
            subclass_mode_data=True,
            args=[subcommand, *argv],
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False, subcommand: {"exit_on_error": False}},
        )
    except SystemExit as exc:  # argument errors (jsonargparse prints them) and --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    except ArgumentError as exc:  # a bad recipe or option: jsonargparse's message, one line
        if debug:
            raise
        msg = " ".join(str(exc).split())
        print(
            f"tailgraph {subcommand}: bad recipe or option: {msg[:600]} (see tailgraph "
            f"{subcommand} --help)",
            file=sys.stderr,
        )
        return 2
    except (
        DataError,
        ValueError,
        RuntimeError,
        TypeError,
        KeyError,
        OSError,
        AttributeError,
    ) as exc:
        if debug:
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"tailgraph {subcommand}: "
            f"{type(exc).__name__ + ': ' if not isinstance(exc, DataError) else ''}{msg}"
            f" (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 2
    finally:
        sys.argv = saved_argv
    return 0


def fit_main(argv: list[str]) -> int:
    return _run("fit", argv)


def validate_main(argv: list[str]) -> int:
    return _run("validate", argv)


def test_main(argv: list[str]) -> int:
    return _run("test", argv)


def predict_main(argv: list[str]) -> int:
    """``tailgraph predict``: on a folder (``--ckpt CKPT --input DIR --out OUT``,
    :mod:`tailgraph.engine.predict`) or on a recipe's data module (LightningCLI)."""
    folder = any(  # the folder form's own options (LightningCLI's checkpoint is --ckpt_path)
        a.split("=", 1)[0] in ("--input", "--ckpt", "--out", "--boxes") for a in argv
    )
    asks_help = any(a in ("-h", "--help") for a in argv)
    recipe = any(a == "--config" or a.startswith("--config=") for a in argv)
    if folder or (asks_help and not recipe):  # `tailgraph predict --help`: the folder form
        from tailgraph.engine.predict import main

        try:
            return main(argv)
        except SystemExit as exc:  # --help and argument errors
            return int(exc.code or 0) if isinstance(exc.code, int) else 2
    return _run("predict", argv)
