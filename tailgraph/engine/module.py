"""The LightningModule: one engine for every data kind and every method.

:class:`SGGModule` holds no modelling logic of its own. Once the vocabulary is known (from the
data module in ``setup``, or from a checkpoint) it builds

* the **protocol** the data module names (:mod:`tailgraph.protocols`: targets, candidate
  pairs, metric),
* the **model** from the recipe's specs (:func:`tailgraph.modeling.builder.build_model`),
* the **method** (:class:`tailgraph.methods.base.Method`, default ``Supervised``), which owns
  the training step's losses and schedules,

and then only wires them: SGDet detection and training-pair choice before the method's
``training_step``, the method's epoch / optimiser-step hooks, and the protocol's metric at
validation and test.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from tailgraph.components import build_component
from tailgraph.datamodules.base import SGGDataModule
from tailgraph.methods.base import Method
from tailgraph.modeling.builder import DEFAULT_CONTEXT, DEFAULT_FEATURES, DEFAULT_HEAD, build_model
from tailgraph.modeling.relation_model import RelationOutput
from tailgraph.protocols import Protocol, build_protocol
from tailgraph.stats import TrainStats
from tailgraph.structures import Batch, GraphBatch, Task
from tailgraph.vocab import Vocabulary

__all__ = [
    "SGGModule",
    "DEFAULT_CONTEXT",
    "DEFAULT_HEAD",
    "DEFAULT_FEATURES",
    "DEFAULT_METHOD",
    "library_versions",
]

DEFAULT_METHOD = {"class_path": "tailgraph.methods.base.Supervised"}
SCHEDULES = ("auto", "constant", "onecycle", "plateau")


COMPILE_KEYS = ("backend", "mode", "dynamic", "fullgraph", "options")


def compile_options(spec: Any) -> dict | None:
    """``model.compile`` as ``torch.compile`` keyword arguments (``None`` = eager)."""
    from tailgraph.errors import DataError

    if spec is None or spec is False:
        return None
    if spec is True:
        return {"dynamic": True}
    if not isinstance(spec, dict):
        raise DataError(
            f"must be true, false or a mapping of torch.compile options, got {spec!r}",
            field="model.compile",
        )
    unknown = sorted(set(spec) - set(COMPILE_KEYS))
    if unknown:
        raise DataError(
            f"unknown torch.compile option {unknown[0]!r} (known: {', '.join(COMPILE_KEYS)})",
            field="model.compile",
        )
    for key in ("dynamic", "fullgraph"):
        if key in spec and not isinstance(spec[key], bool | None):
            raise DataError(f"must be a boolean, got {spec[key]!r}", field=f"model.compile.{key}")
    for key in ("backend", "mode"):
        if key in spec and not isinstance(spec[key], str | None):
            raise DataError(f"must be a string, got {spec[key]!r}", field=f"model.compile.{key}")
    if "options" in spec and not isinstance(spec["options"], dict | None):
        raise DataError("must be a mapping", field="model.compile.options")
    if spec.get("mode") is not None and spec.get("options") is not None:
        raise DataError("give mode or options, not both", field="model.compile")
    return {"dynamic": True, **spec}


def library_versions() -> dict[str, str]:
    """Versions of tailgraph and the libraries a run depends on."""
    import lightning
    import torchvision

    from tailgraph import __version__

    return {
        "tailgraph": str(__version__),
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "lightning": str(lightning.__version__),
        "python": platform.python_version(),
    }


class SGGModule(L.LightningModule):
    """Scene graph generation training / evaluation for any data kind.

    Args:
        context: context-model spec (``class_path`` + ``init_args``); data-set-dependent
            arguments are injected (:func:`tailgraph.modeling.builder.vocab_injection`).
        head: predicate-head spec (``in_dim`` and sizes injected), or ``None`` for a context
            model that outputs ``freq_logits`` (FREQ). Per relation type:
            :class:`tailgraph.modeling.heads.typed.TypedHead`.
        features: pixel-feature spec, or ``None`` for a layout-only model.
        object_classifier: SGCls object-classifier spec.
        detector: SGDet detector spec (the synthetic detector, or Faster R-CNN with user
            weights); required for ``task: sgdet``.
        method: the training method's spec (default :class:`tailgraph.methods.base.Supervised`).
        task: ``predcls`` | ``sgcls`` | ``sgdet``.
        optimizer: optimiser spec (``torch.optim`` class; ``lr`` / ``weight_decay`` are injected
            from the options below). Default AdamW.
        lr, weight_decay: optimiser settings.
        lr_schedule: ``auto`` (one-cycle cosine over ``max_epochs_hint`` epochs when it is set,
            else constant), ``constant``, ``onecycle`` or ``plateau`` (ReduceLROnPlateau on the
            protocol's validation metric, e.g. AG's ``with/mR@20``).
        plateau_factor, plateau_patience, plateau_min_lr: ReduceLROnPlateau settings.
        max_epochs_hint: length of the one-cycle schedule in epochs.
        bg_per_image: training uses every annotated pair of an image plus at most this many
            random unannotated pairs (``None`` = all); ignored when the data chose the pairs
            (negative-mining batches) and for protocols with fixed candidates (AG).
        eval_ks: K values of the metric (``None`` = the protocol's default).
        pair_chunk_size: pairs scored at a time at inference (SGDet).
        protocol: protocol name override (default: the data module's ``protocol``).
        protocol_options: extra protocol options (AG ``semi_threshold``, OI ``ignore``).
        vocab: vocabulary dict (set from the data module or the checkpoint; rarely given).
        init_from: a trained tailgraph checkpoint whose model weights start this run (BMP from
            a TEMPURA run): the vocabulary must equal this run's, every model tensor must
            match by name and shape, the method's own state and the optimiser start fresh.
            Ignored when this module is itself restored from a checkpoint (resume, test,
            predict), whose weights replace the model's anyway.
        compile: ``true`` runs the relation model through ``torch.compile`` (in place, with
            ``nn.Module.compile``: checkpoint keys stay those of the eager model, so a
            compiled run's checkpoints load into an eager one and back); a mapping passes
            ``torch.compile`` options (``backend``, ``mode``, ``dynamic``, ``fullgraph``,
            ``options``). Shapes change from batch to batch, so the default is
            ``dynamic: true``.
    """

    def __init__(
        self,
        context: dict | None = DEFAULT_CONTEXT,
        head: dict | None = DEFAULT_HEAD,
        features: dict | None = None,
        object_classifier: dict | None = None,
        detector: dict | None = None,
        method: dict | None = DEFAULT_METHOD,
        task: str = "predcls",
        optimizer: dict | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        lr_schedule: str = "auto",
        plateau_factor: float = 0.5,
        plateau_patience: int = 1,
        plateau_min_lr: float = 0.0,
        max_epochs_hint: int = 0,
        bg_per_image: int | None = 16,
        eval_ks: Sequence[int] | None = None,
        pair_chunk_size: int | None = None,
        protocol: str | None = None,
        protocol_options: dict | None = None,
        vocab: dict | None = None,
        init_from: str | None = None,
        compile: bool | dict | None = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["vocab"])
        if lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
        self.specs = {
            "context": context,
            "head": head,
            "features": features,
            "object_classifier": object_classifier,
            "detector": detector,
        }
        self.method_spec = method or DEFAULT_METHOD
        self.optimizer_spec = optimizer
        self.task = Task.parse(task)
        self.lr, self.weight_decay = lr, weight_decay
        self.lr_schedule, self.plateau_factor, self.plateau_patience = (
            lr_schedule,
            plateau_factor,
            plateau_patience,
        )
        self.plateau_min_lr = plateau_min_lr
        self.max_epochs_hint = max_epochs_hint
        self.bg_per_image = bg_per_image
        self.eval_ks = tuple(int(k) for k in eval_ks) if eval_ks else None
        self.pair_chunk_size = pair_chunk_size
        self.protocol_name = protocol
        self.protocol_options = dict(protocol_options or {})
        self.init_from = init_from
        self.compile_options = compile_options(compile)
        # set by build() (from the data module's vocabulary in setup, or from a checkpoint)
        self.vocab: Vocabulary | None = None
        self.protocol: Protocol = None  # type: ignore[assignment]
        self.model: Any = None  # a RelationModel, or a SegmentRelationModel (VidVRD-II)
        self.method: Method = None  # type: ignore[assignment]
        self.train_stats: TrainStats | None = None
        self.metric: Any = None
        self.last_metrics: dict[str, Any] = {}
        self._pair_generator = torch.Generator().manual_seed(0)
        if vocab:
            self.build(Vocabulary.from_dict(vocab), protocol or "vg")

    # ------------------------------------------------------------------ construction
    def build(
        self,
        vocab: Vocabulary,
        protocol: str,
        train_stats: TrainStats | None = None,
        *,
        initialise: bool = True,
    ) -> None:
        """Build protocol, model and method for ``vocab`` (idempotent); with ``initialise``,
        the model starts from ``init_from`` when it is set."""
        if self.model is not None:
            return
        self.vocab = vocab
        self.protocol_name = self.protocol_name or protocol
        self.protocol = build_protocol(
            self.protocol_name, vocab, self.task, self.eval_ks, **self.protocol_options
        )
        self.train_stats = train_stats
        self.model = build_model(
            vocab,
            task=self.task,
            train_stats=train_stats,
            groups=[(g.name, g.columns, g.single_label) for g in self.protocol.groups],
            pair_chunk_size=self.pair_chunk_size,
            **self.specs,  # type: ignore[arg-type]
        )
        if initialise and self.init_from:
            from tailgraph.engine.checkpoints import load_model_weights

            load_model_weights(self.model, self.init_from, vocab)
        if self.compile_options is not None:
            self.model.compile(**self.compile_options)
        self.method = build_component(self.method_spec, {}, kind=Method)
        self.method.setup(self.model, vocab, train_stats, protocol=self.protocol)

    def setup(self, stage: str) -> None:
        trainer = self.trainer if self._trainer is not None else None
        if (
            trainer is not None
            and trainer.world_size > 1
            and getattr(trainer._accelerator_connector, "use_distributed_sampler", False)
        ):
            from tailgraph.errors import DataError

            raise DataError(
                "tailgraph's data modules shard for DDP themselves: build the Trainer with "
                "use_distributed_sampler=False (the command line does), or evaluation would "
                "count padded duplicates",
                field="trainer.use_distributed_sampler",
            )
        dm = self._datamodule()
        if dm is not None and dm.vocab is None:
            dm.setup(stage)
        if stage == "fit" and dm is not None and dm.vocab is not None:
            _check_trainable(dm)
        if self.model is not None:
            if self.train_stats is None and dm is not None and dm.vocab is not None:
                self.train_stats = TrainStats.from_graphs(dm.train_graphs(), dm.vocab)
            return
        if dm is None or dm.vocab is None:
            raise RuntimeError(
                "SGGModule needs a data module with a vocabulary (or a checkpoint that embeds one)"
            )
        protocol = self.protocol_name or dm.protocol
        if not protocol:
            raise RuntimeError(
                f"{type(dm).__name__} names no protocol (set its 'protocol' attribute or the "
                "module's 'protocol')"
            )
        self.build(dm.vocab, protocol, TrainStats.from_graphs(dm.train_graphs(), dm.vocab))

    def _datamodule(self) -> SGGDataModule | None:
        """The trainer's data module (``None`` outside a trainer or without one)."""
        trainer: Any = self._trainer  # Lightning types the data module loosely
        dm = trainer.datamodule if trainer is not None else None
        if dm is not None and not isinstance(dm, SGGDataModule):
            from tailgraph.errors import DataError

            raise DataError(
                f"{type(dm).__name__} is not a tailgraph data module (derive it from "
                "tailgraph.datamodules.base.SGGDataModule)",
                field="data",
            )
        return dm

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        import random

        import numpy as np

        st = self.train_stats
        # random states, so a run resumed from this checkpoint continues exactly
        # (deterministic mode)
        np_state: Any = np.random.get_state()
        checkpoint["tailgraph_rng"] = {
            "torch": torch.get_rng_state(),
            "pairs": self._pair_generator.get_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype("int64")), *np_state[2:]],
            "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0],
            "python_gauss": random.getstate()[2],
        }
        dm = self._datamodule()
        max_size = dm.max_size if dm is not None else None
        checkpoint["tailgraph"] = {
            "vocab": self.vocab.to_dict() if self.vocab else None,
            # the longer image side the network saw (``tailgraph predict`` resizes to it)
            "image_max_size": int(max_size) if isinstance(max_size, int) else None,
            "protocol": self.protocol_name,
            "versions": library_versions(),
            "train_stats": None if st is None else st.to_dict(),
        }
        settings = getattr(dm, "predict_settings", None) if dm is not None else None
        segments = settings() if callable(settings) else None
        if segments is not None:  # a segment model: what predict needs to build new videos'
            checkpoint["tailgraph"]["tracklet_segments"] = segments
        from tailgraph.engine.checkpoints import CRC_KEY, tensor_crc32

        # last: covers every tensor the checkpoint holds, this hook's random states included
        checkpoint["tailgraph"][CRC_KEY] = tensor_crc32(checkpoint)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``; a mismatch is a :class:`DataError` naming the file,
        the first missing / unexpected / mis-shaped key and the first recipe setting in which
        the checkpoint's training differs from this model."""
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as exc:
            if "Error(s) in loading state_dict" not in str(exc):
                raise
            from tailgraph.errors import DataError

            trainer: Any = self._trainer
            path = getattr(trainer, "ckpt_path", None) if trainer is not None else None
            raise DataError(
                state_dict_mismatch(self.state_dict(), state_dict, strict)
                + hparams_difference(getattr(self, "_loaded_hparams", None), dict(self.hparams)),
                file=str(path) if path else None,
                field="state_dict",
            ) from None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._loaded_hparams = checkpoint.get("hyper_parameters")
        rng = checkpoint.get("tailgraph_rng")
        if rng is not None:
            import random

            import numpy as np

            torch.set_rng_state(rng["torch"])
            self._pair_generator.set_state(rng["pairs"])
            n = rng["numpy"]
            np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
            random.setstate((rng["python_version"], tuple(rng["python"]), rng["python_gauss"]))
        info = checkpoint.get("tailgraph") or {}
        if self.model is None and info.get("vocab"):
            st = info.get("train_stats")
            stats = TrainStats.from_dict(st) if st else None
            self.build(
                Vocabulary.from_dict(info["vocab"]),
                info.get("protocol") or "vg",
                stats,
                initialise=False,
            )

    # ------------------------------------------------------------------ batches
    def _check_built(self) -> None:
        if self.model is None:
            raise RuntimeError("call build() or setup() first")

    def detect(self, batch: GraphBatch) -> GraphBatch:
        """SGDet: the batch of detected graphs; other tasks: the batch unchanged."""
        return self.model.detect(batch)

    def eval_batch(self, batch: Batch) -> Batch:
        """The batch evaluated: detections (SGDet) with the protocol's candidate pairs."""
        return self.protocol.eval_batch(self.model, batch)

    def train_batch(self, batch: Batch) -> Batch:
        """The batch the method trains on (:meth:`Protocol.train_batch`: SGDet detections
        carrying the ground truth's relations, the protocol's training pairs)."""
        return self.protocol.train_batch(self.model, batch, self.bg_per_image, self._pair_generator)

    def predictions(self, batch: Batch) -> list:
        """The model's predictions of one evaluation batch (what ``test_step`` and
        ``predict_step`` return, and the metric and the prediction writer receive)."""
        return self.model.predict(self.eval_batch(batch))

    def forward(self, batch: GraphBatch) -> RelationOutput:
        self._check_built()
        return self.model(batch)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self._check_built()
        losses = self.method.training_step(self.model, self.train_batch(batch))
        if not losses:
            raise RuntimeError(f"{type(self.method).__name__}.training_step returned no loss")
        total = torch.stack([v for v in losses.values()]).sum()
        n = len(batch)
        for k, v in losses.items():
            self.log(f"train/{k}", v.detach(), batch_size=n)
        self.log("train/loss", total.detach(), batch_size=n, prog_bar=True)
        return total

    def on_fit_start(self) -> None:
        # The run's first batch is fetched before its first epoch starts (and before a resumed
        # run's epoch is restored): it always carries pixels; from then on the method decides.
        self._tell_pixels(True)

    def _tell_pixels(self, needed: bool) -> None:
        dm = self._datamodule()
        if dm is not None:
            dm.set_train_pixels(needed)

    def on_train_epoch_start(self) -> None:
        self._tell_pixels(self.method.uses_pixels(self.current_epoch))
        self.method.on_train_epoch_start(self.model, self.current_epoch)
        if self.method.reset_optimizer() and self.trainer is not None:
            for opt in self.trainer.optimizers:
                opt.state.clear()

    def on_train_epoch_end(self) -> None:
        self.method.on_train_epoch_end(self.model, self.current_epoch)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.method.on_after_optimizer_step(self.model, self.trainer.global_step)

    # ------------------------------------------------------------------ evaluation
    def _eval_start(self, split: str) -> None:
        dm = self._datamodule()
        graphs = dm.eval_graphs(split) if dm is not None else None
        triplets = self.train_stats.triplets if self.train_stats is not None else None
        self.metric = self.protocol.make_metric(triplets, graphs, self.model).to(self.device)
        self.metric.reset()
        self.metric.prime()  # DDP: a rank without images still joins the gather

    def _eval_step(self, batch: Batch) -> list:
        preds = self.predictions(batch)
        self.protocol.update_metric(self.metric, batch, preds)
        return preds

    def _eval_end(self, prefix: str) -> None:
        metrics = self.protocol.finalize(self.metric.compute())
        self.metric.reset()
        self.last_metrics = metrics
        flat = self.protocol.flat(metrics)
        shown = {self.protocol.monitor}
        for k, v in flat.items():
            self.log(f"{prefix}/{k}", v, prog_bar=k in shown, sync_dist=False)

    def on_validation_epoch_start(self) -> None:
        self._eval_start("val")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start("test")

    def test_step(self, batch: Batch, batch_idx: int) -> list:  # type: ignore[override]
        return self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list:
        return self.predictions(batch)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        spec = self.optimizer_spec or {"class_path": "torch.optim.AdamW"}
        opt = self._optimizer(spec, params)
        schedule = self.lr_schedule
        if schedule == "auto":
            schedule = "onecycle" if self.max_epochs_hint else "constant"
        if (
            schedule == "onecycle"
            and self.trainer is not None
            and self.trainer.estimated_stepping_batches
        ):
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=self.lr,
                total_steps=int(self.trainer.estimated_stepping_batches),
                pct_start=0.1,
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt,
                mode="max",
                factor=self.plateau_factor,
                patience=self.plateau_patience,
                min_lr=self.plateau_min_lr,
            )
            return {
                "optimizer": opt,
                "lr_scheduler": {
                    "scheduler": sched,
                    "monitor": f"val/{self.protocol.monitor}",
                    "interval": "epoch",
                    "strict": False,
                },
            }
        return opt

    def _optimizer(self, spec: dict, params: list) -> torch.optim.Optimizer:
        from tailgraph.components import import_class

        cls = import_class(str(spec.get("class_path")), torch.optim.Optimizer)
        args = {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            **dict(spec.get("init_args") or {}),
        }
        return cls(params, **args)


def _check_trainable(dm: SGGDataModule) -> None:
    """A training split with no sample or no relation is an error, not "0 epochs"."""
    from tailgraph.errors import DataError

    graphs = dm.train_graphs()
    where = str(getattr(dm, "root", type(dm).__name__))
    if not graphs:
        raise DataError("the training split has no samples", file=where, field="train")
    if not any(g.num_relations for g in graphs):
        raise DataError(
            f"the training split's {len(graphs)} samples hold no relation: nothing to learn",
            file=where,
            field="train",
        )


def state_dict_mismatch(own: dict, loaded: dict, strict: bool = True) -> str:
    """The first missing, unexpected and mis-shaped key of ``loaded`` against ``own``."""
    missing = [k for k in own if k not in loaded] if strict else []
    unexpected = [k for k in loaded if k not in own] if strict else []
    shaped = [
        k
        for k in own
        if k in loaded
        and hasattr(loaded[k], "shape")
        and tuple(loaded[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if shaped:
        k = shaped[0]
        parts.append(
            f"{len(shaped)} weights of another shape, first {k!r}: "
            f"{list(loaded[k].shape)} in the checkpoint, {list(own[k].shape)} in this model"
        )
    if missing:
        parts.append(f"{len(missing)} missing, first {missing[0]!r}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, first {unexpected[0]!r}")
    return "the checkpoint does not fit this model: " + ("; ".join(parts) or "state mismatch")


def _leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flat ``a.b.c -> value`` of nested settings; a component's ``init_args`` level is merged
    into it, an explicit key beside ``init_args`` (a command-line override) winning."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        if isinstance(obj.get("init_args"), dict):
            out.update(_leaves(obj["init_args"], prefix))
        for k, v in obj.items():
            if k != "init_args":
                out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def hparams_difference(trained: Any, now: dict) -> str:
    """``"; trained with X=a (here b)"`` for the first differing model setting, or ``""``."""
    if not isinstance(trained, dict):
        return ""
    a, b = _leaves(trained), _leaves(now)
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            return (
                f"; the checkpoint was trained with model.{key}={a.get(key, '<unset>')}"
                f" (here {b.get(key, '<unset>')})"
            )
    return ""
