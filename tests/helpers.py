"""Helpers shared by the tests."""

import hashlib
from pathlib import Path


def tree_digest(root: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``root`` (sorted)."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def pair_targets(graphs, pairs, num_predicates=None):
    """VG-style targets of candidate pairs: ``(labels [P] with 0 = background,
    multi_hot [P, R])``."""
    from tailgraph.protocols import pair_relation_targets

    if num_predicates is None:
        num_predicates = 1 + max(
            [int(g.relations[:, 2].max()) for g in graphs if g.num_relations] or [0]
        )
    multi, last = pair_relation_targets(graphs, pairs, num_predicates)
    multi[:, 0] = (multi[:, 1:].sum(1) == 0).float()
    return last.clamp_min(0), multi


def ag_vocab(class_names):
    """An Action Genome vocabulary (the 26 predicates with their relation types) over
    ``class_names``."""
    from tailgraph.data.action_genome import AG_PREDICATES, ATTENTION, CONTACTING, SPATIAL
    from tailgraph.vocab import Vocabulary

    types = (
        ["attention"] * len(ATTENTION)
        + ["spatial"] * len(SPATIAL)
        + ["contacting"] * len(CONTACTING)
    )
    return Vocabulary(
        list(class_names),
        list(AG_PREDICATES),
        relation_type=types,
        single_label_types=["attention"],
        predicate_background=False,
        name="ag-test",
    )


def tiny_sttran_model(lr: float | None = None) -> dict:
    """A PredCls STTran small enough for a test: pixel features (layer 1, 16 channels), a
    one-layer temporal decoder, the typed head."""
    model = {
        "task": "predcls",
        "features": {
            "class_path": "tailgraph.modeling.roi.PixelFeatures",
            "init_args": {"last_stage": "layer1", "out_dim": 16},
        },
        "context": {
            "class_path": "tailgraph.modeling.context.sttran.STTranContext",
            "init_args": {
                "proj_dim": 16,
                "embed_dim": 8,
                "num_heads": 2,
                "ff_dim": 32,
                "temporal_layers": 1,
            },
        },
        "head": {"class_path": "tailgraph.modeling.heads.typed.TypedHead"},
    }
    if lr is not None:
        model["lr"] = lr
    return model


def tiny_ag_recipe(
    tmp_path: Path, model: dict, epochs: int = 2, num_train: int = 4, **trainer
) -> Path:
    """A recipe file for a tiny synth-ag run (generated into ``tmp_path / "ag"``, 64 px, no
    validation) with the given ``model`` section; returns its path."""
    import yaml

    from tailgraph.data.synthetic.ag import generate_synth_ag

    root = tmp_path / "ag"
    generate_synth_ag(root, num_train=num_train, num_test=2, image_size=64)
    cfg = tmp_path / "tiny_ag.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "model": model,
                "data": {
                    "class_path": "tailgraph.datamodules.ag.AGDataModule",
                    "init_args": {"root": str(root), "max_size": 64, "val_fraction": 0.0},
                },
                "trainer": {
                    "max_epochs": epochs,
                    "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "default_root_dir": str(tmp_path),
                    "num_sanity_val_steps": 0,
                    "limit_val_batches": 0,
                    **trainer,
                },
            }
        )
    )
    return cfg


def tiny_vg_recipe(
    path: Path,
    root: Path,
    out: Path | None = None,
    *,
    seed: int = 0,
    epochs: int = 1,
    num_test: int = 12,
    model: dict | None = None,
    data: dict | None = None,
    trainer: dict | None = None,
) -> Path:
    """Write a recipe for a tiny layout-only synth-vg run (40 training images at 96 px, a
    PairwiseMLP context, no validation unless ``trainer`` asks) to ``path``; ``model`` /
    ``data`` / ``trainer`` entries override the defaults."""
    import yaml

    cfg = {
        "seed_everything": seed,
        "model": {
            "features": None,
            "context": {
                "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
                "init_args": {"hidden_dim": 16},
            },
            **(model or {}),
        },
        "data": {
            "class_path": "tailgraph.datamodules.vg.SynthVGDataModule",
            "init_args": {
                "root": str(root),
                "num_train": 40,
                "num_test": num_test,
                "image_size": 96,
                "layout_only": True,
                "batch_size": 8,
                **(data or {}),
            },
        },
        "trainer": {
            "max_epochs": epochs,
            "enable_progress_bar": False,
            "num_sanity_val_steps": 0,
            "limit_val_batches": 0,
            **({"default_root_dir": str(out)} if out else {}),
            **(trainer or {}),
        },
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_interchange_case(folder: Path, seed: int, num_images: int, mode: str) -> Path:
    """``gt.json`` and ``pred.json`` of a random evaluation case (``random_case``) in
    ``folder``; returns ``folder``."""
    import json

    import numpy as np

    from tests.evaluation.test_binformat import _gt_doc, _pred_doc
    from tests.evaluation.test_vg_metrics import random_case

    gts, preds = random_case(np.random.default_rng(seed), num_images, mode)
    (folder / "gt.json").write_text(json.dumps(_gt_doc(gts)))
    (folder / "pred.json").write_text(json.dumps(_pred_doc(preds)))
    return folder


def tiny_vrd_tracklets(root, train: int, test: int, size: int, **options):
    """A synth-vrd VidVRD data module of ``train`` / ``test`` videos at ``size`` px giving
    tracklet segments (8 frames, stride 4, features from the frames, no validation split);
    ``options`` override or add data-module arguments. Not set up."""
    from tailgraph.datamodules.vidvrd import VidVRDDataModule

    args = dict(
        root=str(root),
        synth_train=train,
        synth_test=test,
        synth_size=size,
        layout_only=False,
        output="tracklets",
        segment_length=8,
        segment_stride=4,
        max_size=size,
        val_fraction=0.0,
    )
    return VidVRDDataModule(**{**args, **options})
