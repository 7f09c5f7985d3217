"""The engine across data kinds: protocols, the method seam, validation splits, SGDet inputs."""

import json
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tailgraph.cli import main as tailgraph_main
from tailgraph.components import build_component
from tailgraph.datamodules.ag import AGDataModule
from tailgraph.datamodules.oi import OIDataModule
from tailgraph.datamodules.vg import SynthVGDataModule
from tailgraph.engine.module import SGGModule
from tailgraph.errors import DataError
from tailgraph.methods.base import Method, Supervised, TrainStats, group_losses
from tailgraph.modeling.detector import Detections
from tailgraph.modeling.relation_model import run_detector
from tailgraph.protocols import (
    AGProtocol,
    OIProtocol,
    VGProtocol,
    VidVRDProtocol,
    assign_detections,
)
from tailgraph.structures import GraphBatch, SceneGraph
from tailgraph.vocab import Vocabulary
from tests.helpers import ag_vocab, tiny_vg_recipe

NAMES = ["__background__", "person", "cup", "table"]


def quiet_trainer(tmp_path, **kw):
    opts = dict(
        max_epochs=1,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    opts.update(kw)
    return L.Trainer(**opts)


# ---------------------------------------------------------------------------- protocols
def test_vg_targets_by_hand():
    vocab = Vocabulary(NAMES, ["__background__", "on", "has", "near"])
    p = VGProtocol(vocab)
    g1 = SceneGraph(
        0,
        50,
        50,
        [[0, 0, 5, 5], [5, 5, 9, 9], [1, 1, 3, 3]],
        [1, 2, 3],
        [[0, 1, 1], [0, 1, 2], [2, 0, 3]],
    )
    g2 = SceneGraph(1, 50, 50, [[0, 0, 5, 5], [5, 5, 9, 9]], [1, 2], [[1, 0, 2]])
    pairs = torch.tensor(
        [[0, 1], [1, 0], [2, 0], [0, 2], [3, 4], [4, 3]]
    )  # global rows; image 1 starts at row 3
    t = p.targets([g1, g2], pairs)
    assert t.multi_hot.tolist() == [
        [0, 1, 1, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 1],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 1, 0],
    ]
    assert t.labels["predicate"].tolist() == [
        2,
        0,
        3,
        0,
        0,
        2,
    ]  # last annotated row wins; 0 = background
    assert t.related.tolist() == [True, False, True, False, False, True]
    assert len(p.groups) == 1 and p.groups[0].single_label and p.monitor == "mR@50"


def test_ag_targets_by_hand_attention_zero_is_a_real_class():
    p = AGProtocol(ag_vocab(NAMES))
    # person 0; cup 1: looking_at (0), in_front_of (5, stored object -> person), holding (14)
    f = SceneGraph(
        "v/0",
        50,
        50,
        [[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]],
        [1, 2, 3],
        [[0, 1, 0], [1, 0, 5], [0, 1, 14], [0, 2, 1], [2, 0, 3], [2, 0, 7]],
    )
    pairs = p.candidate_pairs([f])[0]
    assert pairs.tolist() == [[0, 1], [0, 2]]
    t = p.targets([f], pairs)
    assert t.labels["attention"].tolist() == [0, 1]
    assert t.multi_hot[0].nonzero().flatten().tolist() == [0, 5, 14]
    assert t.multi_hot[1].nonzero().flatten().tolist() == [1, 3, 7]
    assert [(g.name, g.single_label, len(g.columns)) for g in p.groups] == [
        ("attention", True, 3),
        ("spatial", False, 6),
        ("contacting", False, 17),
    ]
    logits = torch.zeros(2, 26)
    losses = group_losses(logits, t, p)
    assert losses["loss_attention"].item() == pytest.approx(np.log(3))
    assert losses["loss_spatial"].item() == pytest.approx(np.log(2), abs=1e-6)
    # STTran's multi-label margin loss on the probabilities: at p = 0.5 everywhere each
    # (positive, negative) pair of a row costs 1 / C; a row without a positive costs 0
    from types import SimpleNamespace

    sup = Supervised(multilabel_loss="margin")
    sup.protocol = p
    out = SimpleNamespace(predicate_logits=logits, predicate_probs=torch.full((2, 26), 0.5))
    margin = sup.predicate_losses(None, out, t)
    assert margin["loss_attention"].item() == pytest.approx(np.log(3))
    assert margin["loss_spatial"].item() == pytest.approx((5 / 6 + 8 / 6) / 2)  # {5}, {3, 7}
    assert margin["loss_contacting"].item() == pytest.approx(16 / 17 / 2)
    with pytest.raises(ValueError, match="multilabel_loss"):
        Supervised(multilabel_loss="hinge")
    # per-type weights multiply the type's loss; unknown types and bad weights are refused
    weighted = Supervised(type_weights={"contacting": 17})
    weighted.protocol = p
    w = weighted.predicate_losses(None, out, t)
    assert w["loss_contacting"].item() == pytest.approx(17 * losses["loss_contacting"].item())
    assert w["loss_attention"].item() == pytest.approx(losses["loss_attention"].item())
    wrong = Supervised(type_weights={"contact": 2})
    wrong.protocol = p
    with pytest.raises(ValueError, match="unknown relation types"):
        wrong.predicate_losses(None, out, t)
    with pytest.raises(ValueError, match="type_weights.spatial"):
        Supervised(type_weights={"spatial": float("nan")})
    # the person is found by class, also when it is not box 0 (detections)
    d = SceneGraph(
        "v/0",
        50,
        50,
        [[5, 5, 20, 20], [0, 0, 10, 10]],
        [2, 1],
        [],
        extras={"label_scores": torch.tensor([0.9, 0.8])},
    )
    assert p.candidate_pairs([d])[0].tolist() == [[1, 0]]
    assert p.monitor == "with/mR@20" and p.ks == (10, 20, 50, 100)


def test_oi_and_vidvrd_targets():
    vocab = Vocabulary(NAMES, ["__background__", "at", "on"])
    g = SceneGraph(0, 50, 50, [[0, 0, 5, 5], [5, 5, 9, 9]], [1, 2], [[0, 1, 2]])
    pairs = torch.tensor([[0, 1], [1, 0]])
    t = OIProtocol(vocab).targets([g], pairs)
    assert t.labels["predicate"].tolist() == [2, 0]
    v = VidVRDProtocol(vocab)
    assert [(x.columns, x.single_label) for x in v.groups] == [((1, 2), False)]
    assert v.targets([g], pairs).multi_hot[:, 1:].tolist() == [[0, 1], [0, 0]]


def test_assign_detections_moves_relations_to_overlapping_boxes():
    gt = SceneGraph(0, 100, 100, [[0, 0, 40, 40], [50, 50, 90, 90]], [1, 2], [[0, 1, 3]])
    det = SceneGraph(
        0,
        100,
        100,
        [[1, 1, 41, 41], [52, 50, 90, 92], [0, 0, 10, 10], [2, 0, 40, 38]],
        [1, 2, 1, 1],
        [],
    )
    out = assign_detections(gt, det)
    assert sorted(out.relations.tolist()) == [[0, 1, 3], [3, 1, 3]]  # box 2 overlaps nothing enough


def test_bad_metric_ks_are_refused():
    vocab = Vocabulary(NAMES, ["__background__", "on"])
    for ks in ([0], [-5], [20, 20]):
        with pytest.raises(ValueError):
            VGProtocol(vocab, ks=ks)


# ---------------------------------------------------------------------------- components
def test_class_path_must_name_a_class_of_the_expected_kind():
    with pytest.raises(DataError, match="not a class"):
        build_component({"class_path": "os.system", "init_args": {"command": "echo hacked"}})
    with pytest.raises(DataError, match="not a Method"):
        build_component(
            {"class_path": "tailgraph.modeling.heads.linear.LinearHead"}, {}, kind=Method
        )


def test_recipe_naming_os_system_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    cfg = tmp_path / "r.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "features": None,
                    "context": {
                        "class_path": "os.system",
                        "init_args": {"command": f"touch {marker}"},
                    },
                },
                "data": {
                    "class_path": "tailgraph.datamodules.vg.SynthVGDataModule",
                    "init_args": {
                        "root": str(tmp_path / "vg"),
                        "num_train": 8,
                        "num_test": 2,
                        "image_size": 64,
                        "layout_only": True,
                    },
                },
                "trainer": {
                    "max_epochs": 1,
                    "logger": False,
                    "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path),
                },
            }
        )
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "os.system" in err[0] and "not a class" in err[0]
    assert not marker.exists()


def test_typed_head_builds_each_type_and_refuses_a_sigmoid_single_label_head():
    from tailgraph.modeling.heads.typed import TypedHead

    groups = [("attention", [0, 1, 2], True), ("spatial", [3, 4], False)]
    h = TypedHead(
        8,
        6,
        groups,
        head={"class_path": "tailgraph.modeling.heads.gmm_plus.GMMPlusHead"},
        predicate_counts=[5, 4, 3, 2, 1, 0],
    )
    assert h.heads[0].act == "softmax" and h.heads[1].act == "sigmoid"
    out = h(torch.randn(4, 8))
    assert out.logits.shape == (4, 6) and torch.allclose(
        out.probs[:, :3].sum(1), torch.ones(4), atol=1e-5
    )
    # proper softmax logits for the single-label type
    assert torch.allclose(torch.softmax(out.logits[:, :3], 1), out.probs[:, :3], atol=1e-5)
    assert h.regularizer(out) is not None and h.regularizer(out) >= 0
    with pytest.raises(ValueError, match="single-label"):
        TypedHead(
            8,
            6,
            groups,
            per_type={
                "attention": {
                    "class_path": "tailgraph.modeling.heads.gmm.GMMHead",
                    "init_args": {"act": "sigmoid"},
                }
            },
        )


# ---------------------------------------------------------------------------- method seam
class CountingMethod(Supervised):
    """Supervised plus a learnable scale and a running buffer, recording its hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.int64))
        self.epochs: list[int] = []
        self.setup_calls = 0

    def setup(self, model, vocab, train_stats, protocol=None):
        super().setup(model, vocab, train_stats, protocol)
        self.setup_calls += 1
        self.counts = list(train_stats.predicate_counts) if train_stats else None

    def training_step(self, model, batch):
        losses = super().training_step(model, batch)
        return {k: v * self.scale for k, v in losses.items()}

    def on_train_epoch_start(self, model, epoch):
        self.epochs.append(epoch)

    def on_after_optimizer_step(self, model, step):
        self.steps_seen += 1


def test_method_seam_hooks_parameters_and_checkpoint(tmp_path):
    L.seed_everything(0)
    dm = SynthVGDataModule(
        root=str(tmp_path / "vg"),
        num_train=24,
        num_test=6,
        image_size=64,
        layout_only=True,
        batch_size=8,
    )
    module = SGGModule(
        features=None,
        context={
            "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
            "init_args": {"hidden_dim": 16},
        },
        method={"class_path": "tests.engine.test_engine.CountingMethod"},
    )
    t = quiet_trainer(tmp_path, max_epochs=2, limit_val_batches=0)
    t.fit(module, datamodule=dm)
    m = module.method
    assert m.epochs == [0, 1] and int(m.steps_seen) == t.global_step > 0 and m.setup_calls == 1
    assert m.counts == module.train_stats.predicate_counts and sum(m.counts) > 0
    assert m.scale.item() != 1.0  # optimised with the model
    ckpt = tmp_path / "m.ckpt"
    t.save_checkpoint(ckpt)
    restored = SGGModule.load_from_checkpoint(ckpt)
    assert (
        int(restored.method.steps_seen) == int(m.steps_seen)
        and restored.method.scale.item() == m.scale.item()
    )
    assert (
        restored.protocol.name == "vg"
        and restored.train_stats.predicate_counts == module.train_stats.predicate_counts
    )


# ---------------------------------------------------------------------------- validation split
class RecordIds(L.Callback):
    def __init__(self) -> None:
        self.ids: list = []

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.ids += [g.image_id for g in batch.graphs]


@pytest.mark.parametrize("kind", ["vg", "ag", "oi"])
def test_no_validation_batch_comes_from_the_test_split(kind, tmp_path):
    if kind == "vg":
        dm = SynthVGDataModule(
            root=str(tmp_path / "d"),
            num_train=30,
            num_test=6,
            image_size=64,
            layout_only=True,
            batch_size=8,
        )
        module = SGGModule(
            features=None,
            context={
                "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
                "init_args": {"hidden_dim": 16},
            },
        )
    else:
        cls = AGDataModule if kind == "ag" else OIDataModule
        extra = (
            {"max_size": 64} if kind == "ag" else {"shorter": 64, "longer_max": 64, "batch_size": 4}
        )
        dm = cls(root=str(tmp_path / "d"), synth_train=10, synth_test=3, synth_size=64, **extra)
        module = SGGModule(
            features={
                "class_path": "tailgraph.modeling.roi.PixelFeatures",
                "init_args": {"last_stage": "layer1", "out_dim": 16},
            },
            context={
                "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
                "init_args": {"hidden_dim": 16},
            },
        )
    rec = RecordIds()
    quiet_trainer(tmp_path, limit_train_batches=1, callbacks=[rec]).fit(module, datamodule=dm)
    test_ids = {g.image_id for g in dm.eval_graphs("test")}
    train_ids = {g.image_id for g in dm.train_graphs()}
    assert rec.ids, "validation ran"
    assert not set(rec.ids) & test_ids and not set(rec.ids) & train_ids
    assert len(rec.ids) == len(set(rec.ids)) == len(dm.eval_graphs("val"))


# ---------------------------------------------------------------------------- AG through the CLI
def _attention_by_class_and_train_as_test(root):
    """Make a synth-ag copy in which (a) the attention label follows the object class
    (looking_at for every other class in sorted order, not_looking_at for the rest) and (b) the
    test split holds copies of the training videos, so that the test measures what the model
    learned from the training set (the drawn gaze mark is too subtle to generalise from in a
    test's budget)."""
    import copy
    import pickle
    import shutil

    ann = root / "annotations"
    docs = {}
    for name in (
        "object_bbox_and_relationship.pkl",
        "object_bbox_and_relationship_filtersmall.pkl",
        "person_bbox.pkl",
    ):
        with open(ann / name, "rb") as f:
            docs[name] = pickle.load(f)
    objects = docs["object_bbox_and_relationship.pkl"]
    classes = sorted({o["class"] for objs in objects.values() for o in objs})
    looked = set(classes[::2])
    for name in (
        "object_bbox_and_relationship.pkl",
        "object_bbox_and_relationship_filtersmall.pkl",
    ):
        doc = docs[name]
        for key in [k for k, objs in doc.items() if objs and objs[0]["metadata"]["set"] == "train"]:
            for o in doc[key]:
                if o.get("attention_relationship"):
                    o["attention_relationship"] = [
                        "looking_at" if o["class"] in looked else "not_looking_at"
                    ]
            twin = "T" + key[1:]
            doc[twin] = copy.deepcopy(doc[key])
            for o in doc[twin]:
                o["metadata"] = {"tag": twin, "set": "test"}
            if name == "object_bbox_and_relationship.pkl":
                docs["person_bbox.pkl"][twin] = copy.deepcopy(docs["person_bbox.pkl"][key])
                (root / "frames" / twin).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(root / "frames" / key, root / "frames" / twin)
        for key in [
            k
            for k, objs in doc.items()
            if objs and objs[0]["metadata"]["set"] == "test" and k.startswith("S")
        ]:
            del doc[key]
            docs["person_bbox.pkl"].pop(key, None)
    for name, doc in docs.items():
        with open(ann / name, "wb") as f:
            pickle.dump(doc, f)
    frame_list = ann / "frame_list.txt"
    if frame_list.exists():
        frame_list.write_text("".join(f"{k}\n" for k in sorted(docs["person_bbox.pkl"])))


def test_ag_through_the_cli_learns_predicate_zero(tmp_path, monkeypatch):
    from tailgraph.data.synthetic.ag import generate_synth_ag

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "ag"
    generate_synth_ag(root, num_train=12, num_test=1, image_size=64)
    _attention_by_class_and_train_as_test(root)
    cfg = tmp_path / "ag.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "model": {
                    "task": "predcls",
                    "lr": 0.0005,
                    "features": {
                        "class_path": "tailgraph.modeling.roi.PixelFeatures",
                        "init_args": {"last_stage": "layer1", "out_dim": 32},
                    },
                    "context": {
                        "class_path": "tailgraph.modeling.context.sttran.STTranContext",
                        "init_args": {
                            "proj_dim": 32,
                            "embed_dim": 16,
                            "num_heads": 4,
                            "ff_dim": 64,
                            "temporal_layers": 1,
                        },
                    },
                    "head": {"class_path": "tailgraph.modeling.heads.typed.TypedHead"},
                },
                "data": {
                    "class_path": "tailgraph.datamodules.ag.AGDataModule",
                    "init_args": {"root": str(root), "max_size": 64, "val_fraction": 0.0},
                },
                "trainer": {
                    "max_epochs": 12,
                    "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "default_root_dir": str(tmp_path),
                    "gradient_clip_val": 5.0,
                    "num_sanity_val_steps": 0,
                },
            }
        )
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    assert tailgraph_main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt)]) == 0
    doc = json.loads((tmp_path / "runs" / "version_1" / "metrics.json").read_text())
    m = doc["models"]["model"]
    assert doc["protocol"] == "ag" and doc["predicates"][0] == "looking_at"
    for c in ("with", "semi", "no"):
        assert {"R@10", "R@20", "R@50", "R@100", "mR@10", "mR@20", "mR@50", "mR@100"} <= set(m[c])
    # looking_at (index 0) is a real class: learned as well as its complement, not swallowed as
    # background
    rec = m["with"]["per_predicate_R@20"]
    assert rec[0] > 0.8 and rec[1] > 0.8, rec[:3]
    # `test --pred-format npz` also writes the predictions; evaluated from the binary file by
    # `tailgraph evaluate` they give the test metrics
    assert (
        tailgraph_main(
            ["test", "--config", str(cfg), "--ckpt_path", str(ckpt), "--pred-format", "npz"]
        )
        == 0
    )
    pred = tmp_path / "runs" / "version_2" / "test_predictions.npz"
    assert pred.is_file()
    out = tmp_path / "eval.json"
    assert (
        tailgraph_main(
            [
                "evaluate",
                "--protocol",
                "ag",
                "--format",
                "ag",
                "--gt",
                str(root),
                "--pred",
                str(pred),
                "--json",
                str(out),
                "-k",
                "10",
                "20",
                "50",
                "100",
            ]
        )
        == 0
    )
    ev = json.loads(out.read_text())
    for c in ("with", "semi", "no"):
        for k in ("R@20", "mR@20", "R@50"):
            assert ev[c][k] == pytest.approx(m[c][k], abs=1e-9), (c, k)


# ---------------------------------------------------------------------------- SGDet inputs
class RecordingDetector(torch.nn.Module):
    """Returns one box covering the whole image it is given, and records its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, images):
        self.inputs = [img.clone() for img in images]
        out = []
        for img in images:
            h, w = img.shape[1:]
            out.append(
                Detections(
                    torch.tensor([[0.0, 0.0, w, h], [w / 4, h / 4, w / 2, h / 2]]),
                    torch.tensor([1, 2]),
                    torch.tensor([0.9, 0.8]),
                    torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.0, 0.8]]),
                )
            )
        return out


def _image_batch(tmp_path, max_size=64):
    from tailgraph.data.images import GraphImageDataset, collate_graph_batch

    rng = np.random.default_rng(0)
    graphs = []
    for i, (w, h) in enumerate([(120, 80), (60, 90)]):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        p = tmp_path / f"im{i}.png"
        Image.fromarray(arr).save(p)
        graphs.append(SceneGraph(i, w, h, [[0, 0, 10, 10]], [1], [], image_path=str(p)))
    ds = GraphImageDataset(graphs, max_size=max_size)
    return collate_graph_batch([ds[0], ds[1]])


def test_pixel_detector_gets_unnormalised_unpadded_images_and_boxes_map_back(tmp_path):
    batch = _image_batch(tmp_path)
    det = RecordingDetector()
    out = run_detector(det, batch)
    for img, g, s in zip(det.inputs, batch.graphs, batch.scales.tolist()):
        h, w = round(g.height * s), round(g.width * s)
        assert img.shape == (3, h, w) and float(img.min()) >= 0.0 and float(img.max()) <= 1.0
        # the pixels are the resized original in [0, 1]
        ref = (
            np.asarray(
                Image.open(g.image_path).convert("RGB").resize((w, h), Image.BILINEAR),
                dtype=np.float32,
            )
            / 255
        )
        assert np.abs(img.permute(1, 2, 0).numpy() - ref).max() < 1e-5
    for g, d in zip(batch.graphs, out.graphs):
        assert torch.allclose(
            d.boxes[0], torch.tensor([0.0, 0.0, g.width, g.height]), atol=1e-3
        )  # original pixels
        assert torch.allclose(
            d.boxes[1],
            torch.tensor([g.width / 4, g.height / 4, g.width / 2, g.height / 2]),
            atol=1e-3,
        )


def test_faster_rcnn_wrapper_round_trip_with_random_weights(tmp_path):
    from tailgraph.modeling.detector import FasterRCNNDetector

    torch.manual_seed(0)
    batch = _image_batch(tmp_path, max_size=48)
    det = FasterRCNNDetector(
        num_classes=3, score_thresh=0.0, detections_per_img=20, min_size=48, max_size=64
    ).eval()
    out = run_detector(det, batch)
    for g, d, s in zip(batch.graphs, out.graphs, batch.scales.tolist()):
        b = d.boxes
        assert b.shape[0] > 0 and d.extras["label_dists"].shape == (b.shape[0], 3)
        assert (
            float(b[:, 0::2].max()) <= g.width + 1e-4 and float(b[:, 1::2].max()) <= g.height + 1e-4
        )
        # boxes are in original pixels: they reach beyond the resized image the detector saw
        assert float(b[:, 2].max()) > g.width * s + 1


def test_motifs_confidence_order_runs_in_sgdet(tmp_path):
    from tailgraph.modeling.builder import build_model
    from tailgraph.modeling.detector import SyntheticDetector

    dm = SynthVGDataModule(
        root=str(tmp_path / "vg"), num_train=8, num_test=2, image_size=64, layout_only=True
    )
    dm.setup("test")
    stats = TrainStats.from_graphs(dm.train_graphs(), dm.vocab)
    model = build_model(
        dm.vocab,
        task="sgdet",
        train_stats=stats,
        context={
            "class_path": "tailgraph.modeling.context.motifs.MotifsContext",
            "init_args": {"hidden_dim": 16, "order": "confidence"},
        },
        detector={"class_path": "tailgraph.modeling.detector.SyntheticDetector"},
    )
    assert isinstance(model.detector, SyntheticDetector)
    batch = run_detector(model.detector, GraphBatch(dm.eval_graphs("test")))
    out = model(batch)
    assert out.predicate_probs.shape[0] == sum(
        g.num_boxes * (g.num_boxes - 1) for g in batch.graphs
    )


def test_recipe_and_data_errors_are_one_line_on_stderr(tmp_path, capsys):
    assert tailgraph_main(["fit", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.yaml" in err[0]
    cfg = tmp_path / "r.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": {"features": None},
                "data": {
                    "class_path": "tailgraph.datamodules.vg.VGDataModule",
                    "init_args": {"root": str(tmp_path / "nowhere"), "layout_only": True},
                },
                "trainer": {
                    "max_epochs": 1,
                    "logger": False,
                    "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path),
                },
            }
        )
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[-1] and "root" in err[-1]
    assert tailgraph_main(["fit", "--config", str(cfg), "--model.lr", "abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.lr" in err[0]


def test_negative_mining_batches_reach_the_loss_unchanged(tmp_path):
    dm = OIDataModule(
        root=str(tmp_path / "oi"),
        synth_train=16,
        synth_test=4,
        synth_size=64,
        shorter=64,
        longer_max=64,
        batch_size=8,
        max_relations=30,
    )
    dm.setup("fit")
    module = SGGModule(
        features={
            "class_path": "tailgraph.modeling.negmining.NegativeMiningFeatures",
            "init_args": {"roi_size": 2, "visual_dim": 8, "stage3_channels": 8},
        },
        context={
            "class_path": "tailgraph.modeling.negmining.NegativeMiningContext",
            "init_args": {"embed_dim": 4},
        },
    )
    module.build(dm.vocab, dm.protocol, TrainStats.from_graphs(dm.train_graphs(), dm.vocab))
    assert module.protocol.name == "oi" and module.protocol.groups[0].single_label
    batch = next(iter(dm.train_dataloader()))
    prepared = module.train_batch(batch)
    assert prepared.pairs is batch.pairs  # the sampler's balanced pairs, not re-sampled
    out = module.model(prepared)
    assert out.pairs.shape[0] == sum(p.shape[0] for p in batch.pairs)
    t = module.protocol.targets(prepared.graphs, out.pairs)
    labels = t.labels["predicate"]
    assert (labels == 0).any() and (labels > 0).any()  # softmax CE over {no relation} ∪ predicates
    losses = module.method.training_step(module.model, prepared)
    assert set(losses) == {"loss_predicate"}


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """A 1 KB recipe of nested aliases (10^12 nodes expanded) is one line, exit 2, in a process
    whose address space is capped (the real parse would exhaust it)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join([*lines, "model: {lr: *a11}"]) + "\n")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    runner = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
        "from tailgraph.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for recipe, needle in ((bomb, "YAML aliases expand"), (big, "byte bound")):
        r = subprocess.run(
            [sys.executable, "-c", runner, "fit", "--config", str(recipe)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2, r.stderr[-500:]
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and str(recipe) in err[0], err
    # an inline value is bounded the same way
    inline = "{" + ", ".join(lines).replace(": ", ": ") + "}"
    r = subprocess.run(
        [sys.executable, "-c", runner, "fit", "--model.context", inline],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "YAML aliases expand" in r.stderr, r.stderr[-500:]


def test_fit_without_training_samples_or_relations_is_an_error(tmp_path, capsys):
    """Not "epochs 0 (steps 0)" with exit 0 and a checkpoint folder that never appears."""
    import h5py

    root = tmp_path / "vg"
    assert tailgraph_main(["synth", "--train", "12", "--test", "3", "--size", "64", "--out",
                           str(root)]) == 0  # fmt: skip
    with h5py.File(root / "VG-SGG-with-attri.h5", "r+") as f:
        train = f["split"][:] == 0
        for key in ("img_to_first_rel", "img_to_last_rel"):
            v = f[key][:]
            v[train] = -1
            f[key][...] = v
    cfg = tiny_vg_recipe(tmp_path / "r.yaml", root, tmp_path / "out")
    cfg.write_text(
        cfg.read_text().replace("SynthVGDataModule", "VGDataModule").replace("num_train: 40", "")
    )
    data = yaml.safe_load(cfg.read_text())
    data["data"]["init_args"] = {"root": str(root), "layout_only": True, "batch_size": 4}
    cfg.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # (the VG reader drops relation-less training images, so no sample is left)
    assert len(err) == 1 and "the training split has no" in err[0] and str(root) in err[0], err
    assert not any((tmp_path / "out").rglob("*.ckpt"))


def test_a_checkpoint_of_another_model_names_file_key_and_setting(tmp_path, capsys):
    cfg = tiny_vg_recipe(tmp_path / "r.yaml", tmp_path / "vg", tmp_path / "run")
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = next((tmp_path / "run").rglob("last.ckpt"))
    capsys.readouterr()
    argv = ["test", "--config", str(cfg), "--ckpt_path", str(ckpt)]
    assert tailgraph_main([*argv, "--model.context.init_args.hidden_dim", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in (
        str(ckpt),
        "'model.context.obj_encoder.0.weight': [16, ",
        "[32, ",
        "trained with model.context.hidden_dim=16 (here 32)",
    ):
        assert needle in err[0], (needle, err[0])
    # a component given whole on the command line wins over the checkpoint's too (it was
    # silently replaced by the checkpoint's model before)
    motifs = "tailgraph.modeling.context.motifs.MotifsContext"
    assert tailgraph_main([*argv, "--model.context.class_path", motifs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ckpt) in err[0], err
    assert f"PairwiseMLPContext (here {motifs})" in err[0], err[0]
    # another recipe's model section: the checkpoint's model runs, and a note says so
    other = tmp_path / "other.yaml"
    doc = yaml.safe_load(cfg.read_text())
    doc["model"]["context"] = {"class_path": motifs}
    other.write_text(yaml.safe_dump(doc))
    assert tailgraph_main(["test", "--config", str(other), "--ckpt_path", str(ckpt)]) == 0
    err = capsys.readouterr().err
    assert "model.context is the checkpoint's (tailgraph.modeling.context.pairwise" in err, err
    assert f"not the recipe's ({motifs})" in err, err
    from tailgraph.engine.module import state_dict_mismatch

    own = {"a": torch.zeros(2), "b": torch.zeros(1)}
    msg = state_dict_mismatch(own, {"a": torch.zeros(3), "c": torch.zeros(1)})
    assert "first 'a': [3] in the checkpoint, [2] in this model" in msg
    assert "1 missing, first 'b'" in msg and "1 unexpected, first 'c'" in msg


def _damage_tensor_bytes(ckpt, out):
    """A copy of the torch zip ``ckpt`` with one byte flipped inside its largest tensor storage
    (stored uncompressed: the zip's own CRC is not checked by ``torch.load``)."""
    import zipfile

    raw = bytearray(ckpt.read_bytes())
    with zipfile.ZipFile(ckpt) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.file_size // 2] ^= 0x40
    out.write_bytes(bytes(raw))
    return out


def test_a_damaged_checkpoint_tensor_is_refused_by_every_command(tmp_path, capsys):
    from tailgraph.engine.checkpoints import check_checkpoint, load_model_weights, tensor_crc32

    cfg = tiny_vg_recipe(tmp_path / "r.yaml", tmp_path / "vg", tmp_path / "run")
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = next((tmp_path / "run").rglob("last.ckpt"))
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    recorded = ck["tailgraph"]["tensor_crc32"]
    # every tensor: weights, optimiser moments, random states
    assert recorded == tensor_crc32(ck)
    assert any(k.startswith("state_dict/model.") for k in recorded)
    assert any(k.startswith("optimizer_states/0/state/") for k in recorded)
    assert "tailgraph_rng/torch" in recorded
    check_checkpoint(ckpt)  # the undamaged file loads

    bad = _damage_tensor_bytes(ckpt, tmp_path / "damaged.ckpt")
    # torch itself reads the flipped byte back as another value
    loaded = torch.load(bad, map_location="cpu", weights_only=True)
    assert tensor_crc32(loaded) != recorded
    capsys.readouterr()
    for argv in (
        ["test", "--config", str(cfg), "--ckpt_path", str(bad)],
        ["fit", "--config", str(cfg), "--ckpt_path", str(bad)],
        ["predict", "--ckpt", str(bad), "--input", str(tmp_path / "vg"), "--out",
         str(tmp_path / "pred")],
    ):  # fmt: skip
        assert tailgraph_main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(bad) in err[0], (argv, err)
        assert "does not match the CRC-32 recorded" in err[0], err[0]
    assert not (tmp_path / "pred").exists()
    from tailgraph.engine.predict import load_checkpoint_module

    module, _ = load_checkpoint_module(ckpt)  # model.init_from of a damaged start
    with pytest.raises(DataError, match="CRC-32") as err:
        load_model_weights(module.model, bad, module.vocab)
    assert str(bad) in str(err.value) and "model.init_from" in str(err.value)
    # an edited file that drops the record loads unverified
    loaded["tailgraph"].pop("tensor_crc32")
    torch.save(loaded, tmp_path / "edited.ckpt")
    check_checkpoint(tmp_path / "edited.ckpt")


def test_fit_names_checkpoints_by_the_epochs_shown_and_prints_its_folder_first(tmp_path, capsys):
    from tailgraph.engine.callbacks import _percent

    cfg = tiny_vg_recipe(tmp_path / "r.yaml", tmp_path / "vg", tmp_path / "run", epochs=2)
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "run" / "runs" / "version_0"
    lines = out.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("run folder: "))
    assert lines[first] == f"run folder: {folder}"
    assert first < next(i for i, ln in enumerate(lines) if ln.startswith("fit summary"))
    assert "FLOPs" not in out and "trainable" in out
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "epoch2.ckpt",
        "last.ckpt",
    ]
    assert _percent("val/mR@50", 0.1794) == "17.94%" and _percent("train/loss", 0.5) == 0.5
