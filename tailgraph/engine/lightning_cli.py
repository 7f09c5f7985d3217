"""``tailgraph fit / validate / test / predict``: LightningCLI over :class:`SGGModule`.

A recipe YAML has three sections: ``model`` (the :class:`SGGModule` options, whose parts are
``class_path`` + ``init_args`` specs), ``data`` (a LightningDataModule by ``class_path``, of any
data kind: VG, Action Genome, Open Images, VidVRD or their synthetic twins) and ``trainer``.

Every run writes into one folder, ``<trainer.default_root_dir>/runs/version_N/``: the CSV and
TensorBoard logs, ``config.yaml`` (the resolved recipe), ``run.json`` (library versions and
seed), ``checkpoints/last.ckpt`` (``fit``) and ``metrics.json`` (``test``; the keys
``tailgraph evaluate --json`` writes for the protocol, AG nested under ``with`` / ``semi`` /
``no``); with ``trainer.logger: false`` the same folder without the logs. Errors in the recipe
or the data end in one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningCLI

from tailgraph.engine.checkpoints import (
    AtomicCheckpointIO,
    check_checkpoint,
    continuing_csv_logger,
    folder_only_logger,
    latest_checkpoint,
    run_version_of,
)
from tailgraph.engine.module import SGGModule
from tailgraph.io.outputs import output_error_line
from tailgraph.io.predictions import PRED_FORMATS

__all__ = ["fit_main", "validate_main", "test_main", "predict_main", "TailgraphCLI", "ddp_strategy"]


def _class_path(spec: Any) -> str | None:
    """The ``class_path`` of a component spec (a dict or a namespace), ``None`` for none."""
    if spec is None:
        return None
    try:
        return str(_child(spec, "class_path"))
    except (KeyError, AttributeError, TypeError):
        return None


def _child(node: Any, key: str) -> Any:
    """``node[key]`` of a dict or a jsonargparse namespace."""
    return node[key] if isinstance(node, dict) else getattr(node, key)


def _set_child(node: Any, key: str, value: Any) -> None:
    """``node[key] = value`` on a dict or a jsonargparse namespace."""
    if isinstance(node, dict):
        node[key] = value
    else:
        setattr(node, key, value)


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
    """LightningCLI with tailgraph's run folder, callbacks, checkpoint checks and DDP.

    Args:
        pred_format: ``--pred-format`` of ``predict`` / ``test`` (the :class:`PredictionWriter`
            option; with ``test`` it also writes the test split's predictions), or ``None``.
        *args, **kwargs: LightningCLI's.
    """

    def __init__(self, *args: Any, pred_format: str | None = None, **kwargs: Any) -> None:
        self.pred_format = pred_format
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:  # noqa: D401 - LightningCLI hook
        parser.set_defaults(
            {
                "trainer.callbacks": [
                    {
                        "class_path": "tailgraph.engine.callbacks.EpochCheckpoint",
                        "init_args": {
                            "save_last": True,
                            "filename": "epoch{epoch}",
                            "auto_insert_metric_name": False,
                        },
                    },
                    {"class_path": "tailgraph.engine.callbacks.MetricsWriter"},
                    {
                        "class_path": "tailgraph.engine.callbacks.PredictionWriter",
                        "init_args": {
                            "format": self.pred_format or "json",
                            "write_test": self.pred_format is not None,
                        },
                    },
                    {"class_path": "tailgraph.engine.callbacks.RunInfoWriter"},
                    {"class_path": "tailgraph.engine.callbacks.FitSummary"},
                ],
                # the data modules shard for DDP themselves (evaluation without the padding
                # duplicates a DistributedSampler adds, so metrics count every image once)
                "trainer.use_distributed_sampler": False,
                # FitSummary prints the parameter counts (Lightning's table adds "FLOPs 0")
                "trainer.enable_model_summary": False,
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

    def _set_seed(self) -> None:
        # the parsed recipe (with the checkpoint's model section) is range-checked before the
        # seed is set and anything is built
        self._check_values()
        super()._set_seed()

    def _check_values(self) -> None:
        from tailgraph.io.recipes import check_recipe_values

        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        files = [
            a.split("=", 1)[1] if a.startswith("--config=") else self._given_args[i + 1]
            for i, a in enumerate(self._given_args[:-1] + [""])
            if a == "--config" or a.startswith("--config=")
        ]
        check_recipe_values(cfg.as_dict(), ", ".join(files) or "the command line")

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, Lightning replaces the ``model`` section by the checkpoint's
        hyperparameters (so ``test --config RECIPE`` rebuilds the model as it was trained, with
        the fit's overrides). Options given explicitly on this command line (``--model.…``)
        then win over the checkpoint's, so test-time switches are not silently dropped; a
        recipe component that is not the checkpoint's gets a one-line note on stderr."""
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
        given = self._given_args
        for i, a in enumerate(given[:-1]):
            # a component given whole (``--model.context X`` or ``--model.context.class_path
            # X``, rewritten by _component_overrides into a JSON --config) replaces the checkpoint's
            if a == "--config" and given[i + 1].startswith('{"model": '):
                import json

                for comp in json.loads(given[i + 1])["model"]:
                    value = copy.deepcopy(_child(before[sub]["model"], comp))
                    _set_child(self.config[sub]["model"], comp, value)
        for a in given:
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
                _set_child(dst, cand[-1], value)
                break
        # a recipe whose components are not the checkpoint's: the checkpoint's run, say so
        for comp in _COMPONENTS:
            try:
                recipe = _class_path(_child(before[sub]["model"], comp))
                used = _class_path(_child(self.config[sub]["model"], comp))
            except (KeyError, AttributeError, TypeError):
                continue
            if recipe != used:
                print(
                    f"tailgraph {sub}: note: model.{comp} is the checkpoint's "
                    f"({used or 'none'}), not the recipe's ({recipe or 'none'})",
                    file=sys.stderr,
                )

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if kwargs.get("ckpt_path") == "last":
            kwargs["ckpt_path"] = latest_checkpoint(self.trainer.default_root_dir)
            check_checkpoint(kwargs["ckpt_path"])
        return kwargs

    def _resumed_version(self, root: str) -> int | None:
        """The run folder a ``fit --ckpt_path`` resumes: the checkpoint's own ``version_N``
        when it is a run of this root (``last``: the newest run's), so a resumed run continues
        its folder (logs, checkpoints) instead of starting a new one."""
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub == "fit" else None
        if not ckpt or ckpt in ("best", "hpc"):
            return None
        if ckpt == "last":
            ckpt = latest_checkpoint(root)
        return run_version_of(ckpt, root)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> L.Trainer:
        # One run folder for every logger: <default_root_dir>/runs/version_N.
        root = config.get("default_root_dir") or os.getcwd()
        if config.get("logger") is False:  # no logs, but still the run's own folder
            config["logger"] = folder_only_logger(root, self._resumed_version(root))
        elif config.get("logger") in (None, True):
            from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

            version = self._resumed_version(root)
            csv = (
                CSVLogger(save_dir=root, name="runs")
                if version is None
                else continuing_csv_logger(root, version)
            )
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


def _recipe_beside_checkpoint(subcommand: str, argv: list[str]) -> list[str]:
    """``test`` / ``validate`` / ``predict --ckpt_path CKPT`` without ``--config``: the run's
    own resolved recipe (``runs/version_N/config.yaml``, beside ``checkpoints/``) is the
    recipe, so a checkpoint and a data root (``--data.init_args.root``) are all it needs."""
    from tailgraph.errors import DataError

    if subcommand not in ("test", "validate", "predict"):
        return argv
    if any(a in ("--config", "-c") or a.startswith("--config=") for a in argv):
        return argv
    ckpt = None
    for i, a in enumerate(argv):
        if a == "--ckpt_path" and i + 1 < len(argv):
            ckpt = argv[i + 1]
        elif a.startswith("--ckpt_path="):
            ckpt = a.split("=", 1)[1]
    if not ckpt or ckpt in ("last", "best", "hpc") or any(a in ("-h", "--help") for a in argv):
        return argv
    recipe = Path(ckpt).parent.parent / "config.yaml"
    if not recipe.is_file():
        raise DataError(
            "no --config given and no run recipe (config.yaml) beside the checkpoint's "
            "checkpoints/ folder",
            file=str(ckpt),
            field="--config",
        )
    return ["--config", str(recipe), *argv]


_COMPONENTS = (
    "context",
    "head",
    "features",
    "object_classifier",
    "detector",
    "method",
    "optimizer",
)


def _component_overrides(argv: list[str]) -> list[str]:
    """``--model.C SPEC`` (a YAML / JSON mapping with ``class_path``) and ``--model.C.class_path
    X`` for a component ``C`` of the model (a plain ``dict`` option) become an inline recipe,
    ``--config '{"model": {"C": SPEC}}'``, at the same place: the component is replaced
    whole, in the command line's order (jsonargparse's own handling of these two forms fails on
    a ``dict`` option that a recipe already set)."""
    import json

    import yaml

    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        key, eq, value = a.partition("=")
        parts = key[2:].split(".") if key.startswith("--model.") else []
        form = None
        if len(parts) == 2 and parts[1] in _COMPONENTS:
            form = "spec"
        elif len(parts) == 3 and parts[1] in _COMPONENTS and parts[2] == "class_path":
            form = "class_path"
        if form is None:
            out.append(a)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                out.append(a)
                break
            value = argv[i + 1]
            i += 1
        i += 1
        if form == "class_path":
            spec: object = {"class_path": value}
        else:
            try:
                spec = yaml.safe_load(value)
            except yaml.YAMLError:
                spec = None
            if spec is not None and not (isinstance(spec, dict) and "class_path" in spec):
                from tailgraph.errors import DataError

                raise DataError(
                    f"expected a mapping with class_path (or null), got {value[:80]!r}",
                    field=key,
                )
        out += ["--config", json.dumps({"model": {parts[1]: spec}})]
    return out


def _take_pred_format(subcommand: str, argv: list[str]) -> tuple[list[str], str | None]:
    """Strip ``--pred-format FMT`` (predict / test) from ``argv``: ``(argv, FMT or None)``."""
    from tailgraph.errors import DataError

    out, i, fmt = [], 0, None
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
            fmt = value
            continue
        out.append(a)
        i += 1
    return out, fmt


def _check_recipes(argv: list[str]) -> None:
    """Size- and alias-bound every recipe (``--config FILE``) and inline YAML value."""
    from tailgraph.errors import DataError
    from tailgraph.io.recipes import MAX_RECIPE_BYTES, check_recipe_file, check_recipe_text

    for i, a in enumerate(argv):
        if a in ("--config", "-c") and i + 1 < len(argv):
            check_recipe_file(argv[i + 1])
        elif a.startswith("--config="):
            check_recipe_file(a.split("=", 1)[1])
        else:
            if len(a) > MAX_RECIPE_BYTES:
                raise DataError(f"an argument of {len(a)} characters is over the bound")
            value = a.split("=", 1)[-1] if a.startswith("--") else a
            check_recipe_text(value, "the command line")


def _run(subcommand: str, argv: list[str]) -> int:
    from tailgraph.engine.quiet import quiet_libraries
    from tailgraph.errors import DataError

    quiet_libraries()
    given = list(argv)
    argv, pred_format = _take_pred_format(subcommand, argv)
    argv = _recipe_beside_checkpoint(subcommand, argv)
    _check_recipes(argv)  # before any inline value is read as YAML (alias bombs)
    argv = _component_overrides(argv)
    _check_recipes(argv)
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
            pred_format=pred_format,
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
        line = output_error_line(exc) if isinstance(exc, OSError) else None
        if line is not None:  # a checkpoint, log or prediction file that could not be written
            print(f"tailgraph {subcommand}: {line}", file=sys.stderr)
        elif isinstance(exc, DataError):  # the input's fault, named: no traceback to look at
            print(f"tailgraph {subcommand}: {msg}", file=sys.stderr)
        else:
            print(
                f"tailgraph {subcommand}: {type(exc).__name__}: {msg}"
                " (--debug shows the traceback)",
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
