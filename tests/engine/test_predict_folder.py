"""`tailgraph predict --ckpt CKPT --input DIR --out OUT` on folders of images and video frames:
the checkpoint alone suffices, the scene graphs equal the engine's own predictions on the same
images, every picture decodes, and bad input ends in one line."""

import json
import shutil

import pytest
import torch
from PIL import Image

from tailgraph.cli import main as tailgraph_main
from tailgraph.datamodules.vg import SynthVGDataModule
from tailgraph.io.interchange import read_predictions, write_ground_truth
from tailgraph.structures import SceneGraph
from tests.helpers import tiny_vg_recipe


@pytest.fixture(scope="module")
def vg_case(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    root = base / "synth-vg"
    cfg = tiny_vg_recipe(base / "recipe.yaml", root, base, num_test=6)
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = next(base.glob("runs/version_*/checkpoints/last.ckpt"))
    assert (
        tailgraph_main(
            ["test", "--config", str(cfg), "--ckpt_path", str(ckpt), "--pred-format", "json"]
        )
        == 0
    )
    engine = {
        str(p.image_id): p
        for p in read_predictions(max(base.glob("runs/version_*/test_predictions.json")))
    }
    dm = SynthVGDataModule(
        root=str(root), num_train=40, num_test=6, image_size=96
    )  # with image paths
    dm.setup("test")
    graphs = dm.eval_graphs("test")
    # the user's folder: JPEGs, one PNG, one image enlarged 3x (its boxes scaled with it)
    images = base / "images"
    images.mkdir()
    boxes = []
    for n, g in enumerate(graphs):
        iid = f"img{n}"
        with Image.open(g.image_path) as im:
            im = im.convert("RGB")
            if n == 1:
                im.save(images / f"{iid}.png")
            elif n == 2:
                im = im.resize((im.size[0] * 3, im.size[1] * 3))
                im.save(images / f"{iid}.jpg")
            else:
                im.save(images / f"{iid}.jpg")
        f = 3 if n == 2 else 1
        boxes.append(SceneGraph(iid, g.width * f, g.height * f, g.boxes * f, g.labels, g.relations))
    write_ground_truth(base / "boxes.json", boxes, dm.vocab, "vg")
    return base, ckpt, graphs, engine


def test_predict_folder_matches_the_engine_and_draws(vg_case, capsys):
    base, ckpt, graphs, engine = vg_case
    out = base / "out"
    assert (
        tailgraph_main(
            [
                "predict",
                "--ckpt",
                str(ckpt),
                "--input",
                str(base / "images"),
                "--boxes",
                str(base / "boxes.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "images/s" in capsys.readouterr().out
    preds = {p.image_id: p for p in read_predictions(out / "scene_graphs.json")}
    assert sorted(preds) == sorted(f"img{n}" for n in range(len(graphs)))
    for n, g in enumerate(graphs):
        p, e = preds[f"img{n}"], engine[str(g.image_id)]
        f = 3 if n == 2 else 1
        assert torch.allclose(p.boxes, g.boxes * f)
        assert torch.equal(p.labels, g.labels)  # PredCls: the given labels
        assert torch.equal(p.pairs, e.pairs)
        # the same image scores as in `tailgraph test`; the enlarged one nearly so (the layout
        # features are normalised by the image size, up to pixel-rounded terms)
        atol = 5e-3 if n == 2 else 1e-5
        assert torch.allclose(p.predicate_scores, e.predicate_scores, atol=atol)
        for kind in ("boxes", "graph"):
            with Image.open(out / f"img{n}.{kind}.png") as im:
                im.verify()
        with Image.open(out / f"img{n}.boxes.png") as im:
            assert im.size[0] >= 420 and im.size[1] > 100
    assert not list(base.glob(".out.tmp-*"))


def test_predict_binary_format_and_no_drawings(vg_case):
    base, ckpt, graphs, _ = vg_case
    out = base / "out_npz"
    assert (
        tailgraph_main(
            [
                "predict",
                "--ckpt",
                str(ckpt),
                "--input",
                str(base / "images"),
                "--boxes",
                str(base / "boxes.json"),
                "--out",
                str(out),
                "--pred-format",
                "npz",
                "--no-draw",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["scene_graphs.npz", "triplets.json"]
    doc = json.loads((out / "triplets.json").read_text())
    assert len(doc["images"]) == len(graphs) and all(e["triplets"] for e in doc["images"])


def _simple_and_coco(base, graphs, vocab_names):
    """The user's boxes of the fixture's images in the simple and the COCO form."""
    simple, coco = {}, {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": 100 + i, "name": n} for i, n in enumerate(vocab_names) if i]
    for n, g in enumerate(graphs):
        f = 3 if n == 2 else 1
        name = f"img{n}.png" if n == 1 else f"img{n}.jpg"
        boxes = (g.boxes * f).tolist()
        labels = [vocab_names[int(c)] for c in g.labels]
        simple[name] = [{"box": b, "label": lab} for b, lab in zip(boxes, labels)]
        coco["images"].append({"id": n, "file_name": name})
        for b, c in zip(boxes, g.labels.tolist()):
            coco["annotations"].append(
                {
                    "image_id": n,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "category_id": 100 + c,
                }
            )
    (base / "simple.json").write_text(json.dumps(simple))
    (base / "coco.json").write_text(json.dumps(coco))
    return simple, coco


def test_predict_takes_simple_and_coco_box_files_and_names_ranked_triplets(vg_case):
    """``--boxes`` in the simple ``{IMAGE_FILE: [{box, label}]}`` form and the COCO form give
    the interchange file's scene graphs; every entry carries its top triplets, named, ranked."""
    from tailgraph.engine.predict import load_checkpoint_module

    base, ckpt, graphs, _ = vg_case
    vocab = load_checkpoint_module(ckpt)[0].vocab
    _simple_and_coco(base, graphs, list(vocab.object_classes))
    outs = {}
    for kind in ("boxes", "simple", "coco"):
        out = base / f"out_{kind}"
        argv = ["predict", "--ckpt", str(ckpt), "--input", str(base / "images")]
        argv += ["--boxes", str(base / f"{kind}.json"), "--out", str(out), "--no-draw"]
        assert tailgraph_main(argv + ["--triplets", "7"]) == 0
        outs[kind] = json.loads((out / "scene_graphs.json").read_text())["images"]
    ref = {e["image_id"]: e for e in outs["boxes"]}
    for kind in ("simple", "coco"):
        for e in outs[kind]:
            r = ref[e["image_id"]]
            assert e["labels"] == r["labels"] and e["pairs"] == r["pairs"]
            assert torch.allclose(torch.tensor(e["boxes"]), torch.tensor(r["boxes"]), atol=1e-3)
            assert torch.allclose(
                torch.tensor(e["predicate_scores"]), torch.tensor(r["predicate_scores"]), atol=1e-5
            )
    for e in outs["simple"]:
        trip = e["triplets"]
        assert 0 < len(trip) <= 7
        scores = [t["score"] for t in trip]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
        for t in trip:
            assert t["predicate"] in vocab.predicates and t["predicate"] != vocab.predicates[0]
            for side in ("subject", "object"):
                o = t[side]
                assert o["label"] == vocab.object_classes[e["labels"][o["index"]]]
                assert o["box"] == pytest.approx(e["boxes"][o["index"]], abs=0.01)


def test_predict_box_file_errors_name_file_sample_and_field(vg_case, tmp_path, capsys):
    from tailgraph.engine.predict import load_checkpoint_module

    base, ckpt, graphs, _ = vg_case
    names = list(load_checkpoint_module(ckpt)[0].vocab.object_classes)
    simple, coco = _simple_and_coco(tmp_path, graphs, names)

    def fails(doc, *words):
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(doc))
        capsys.readouterr()
        argv = ["predict", "--ckpt", str(ckpt), "--input", str(base / "images"), "--boxes"]
        assert tailgraph_main(argv + [str(f), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        for w in ("bad.json",) + words:
            assert w in err, (w, err)
        assert not (tmp_path / "o").exists()

    def edited(path, value):
        doc = json.loads(json.dumps(simple))
        doc["img0.jpg"][0][path] = value
        return doc

    fails(edited("label", "unicorn"), "img0.jpg[0]", "label", "unicorn", names[1])
    fails(edited("label", names[0]), "label")  # the background class is not an object
    b = simple["img0.jpg"][0]["box"]
    fails(edited("box", [b[2], b[1], b[0], b[3]]), "x1 < x2", "box")
    fails(edited("box", [True, 1, 5, 5]), "four numbers")
    fails(edited("box", [b[0], b[1], 1e6, b[3]]), "outside", "img0")
    fails(edited("box", [b[0], b[1], float("nan"), b[3]]), "box")
    fails([{"image_id": 0, "bbox": [1, 2, 3, 4], "category_id": 1, "score": 0.9}], "file names")
    dup = json.loads(json.dumps(coco))
    dup["images"].append({"id": 99, "file_name": "img0.jpg"})
    fails(dup, "twice")
    bad_cat = json.loads(json.dumps(coco))
    bad_cat["annotations"][0]["category_id"] = 7
    fails(bad_cat, "annotations[0]", "category_id")
    wh = json.loads(json.dumps(coco))
    wh["annotations"][0]["bbox"][2] = -3
    fails(wh, "w > 0")


def test_predict_folder_bad_input(vg_case, tmp_path, capsys):
    base, ckpt, _, _ = vg_case
    args = [
        "predict",
        "--ckpt",
        str(ckpt),
        "--input",
        str(base / "images"),
        "--out",
        str(tmp_path / "o"),
    ]

    def one_line_error(argv, *names):
        capsys.readouterr()
        assert tailgraph_main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        for name in names:
            assert name in err, (name, err)
        assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.tmp-*"))

    one_line_error(args, "--boxes")  # a PredCls model needs the boxes
    broken = tmp_path / "broken"
    shutil.copytree(base / "images", broken)
    (broken / "img0.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    one_line_error(
        [
            "predict",
            "--ckpt",
            str(ckpt),
            "--input",
            str(broken),
            "--boxes",
            str(base / "boxes.json"),
            "--out",
            str(tmp_path / "o"),
        ],
        "img0.jpg",
        "image",
    )
    extra = tmp_path / "extra"
    shutil.copytree(base / "images", extra)
    shutil.copy(extra / "img0.jpg", extra / "unknown.jpg")
    one_line_error(
        [
            "predict",
            "--ckpt",
            str(ckpt),
            "--input",
            str(extra),
            "--boxes",
            str(base / "boxes.json"),
            "--out",
            str(tmp_path / "o"),
        ],
        "unknown",
        "image_id",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(
        [
            "predict",
            "--ckpt",
            str(ckpt),
            "--input",
            str(empty),
            "--boxes",
            str(base / "boxes.json"),
            "--out",
            str(tmp_path / "o"),
        ],
        "no image",
    )
    not_ckpt = tmp_path / "x.ckpt"
    not_ckpt.write_bytes(b"PK\x03\x04 truncated")
    one_line_error(
        [
            "predict",
            "--ckpt",
            str(not_ckpt),
            "--input",
            str(base / "images"),
            "--out",
            str(tmp_path / "o"),
        ],
        "x.ckpt",
    )
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("keep")
    capsys.readouterr()
    assert tailgraph_main(args + ["--boxes", str(base / "boxes.json")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "o" / "mine.txt").read_text() == "keep"


def test_predict_video_frames_strip_and_timeline(tmp_path, monkeypatch):
    from tests.helpers import tiny_ag_recipe, tiny_sttran_model

    monkeypatch.chdir(tmp_path)
    cfg = tiny_ag_recipe(
        tmp_path,
        tiny_sttran_model(lr=0.001),
        epochs=1,
        num_train=4,
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["tailgraph"]["image_max_size"] == 64
    assert tailgraph_main(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt)]) == 0
    engine = json.loads(
        max(
            (tmp_path / "runs").glob("version_*/predictions.json"),
            key=lambda p: int(p.parent.name.split("_")[1]),
        ).read_text()
    )["images"]
    from tailgraph.datamodules.ag import AGDataModule

    dm = AGDataModule(root=str(tmp_path / "ag"), max_size=64, val_fraction=0.0)
    dm.setup("test")
    frames_in = tmp_path / "frames"
    gts, ids = [], {}
    for v in dm.splits["test"]:
        for n, f in enumerate(v.frames):
            fid = f"{v.video_id}/{n:04d}"
            (frames_in / str(v.video_id)).mkdir(parents=True, exist_ok=True)
            shutil.copy(f.image_path, frames_in / str(v.video_id) / f"{n:04d}.png")
            gts.append(SceneGraph(fid, f.width, f.height, f.boxes, f.labels, f.relations))
            ids[fid] = f.image_id
    write_ground_truth(tmp_path / "boxes.json", gts, dm.vocab, "ag")
    out = tmp_path / "out"
    assert (
        tailgraph_main(
            [
                "predict",
                "--ckpt",
                str(ckpt),
                "--input",
                str(frames_in),
                "--boxes",
                str(tmp_path / "boxes.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    preds = {p.image_id: p for p in read_predictions(out / "scene_graphs.json")}
    by_engine = {e["image_id"]: e for e in engine}
    assert sorted(preds) == sorted(ids)
    for fid, p in preds.items():
        e = by_engine[ids[fid]]
        assert p.pairs.tolist() == e["pairs"]
        assert torch.allclose(p.predicate_scores, torch.tensor(e["predicate_scores"]), atol=1e-4)
    for v in dm.splits["test"]:
        for kind in ("strip", "timeline"):
            with Image.open(out / f"{v.video_id}.{kind}.png") as im:
                im.verify()


def test_predict_sgdet_with_the_synthetic_detector(vg_case, tmp_path):
    """SGDet on synthetic data: the recipe's synthetic detector simulates detection from the
    --boxes annotations; pixels (PixelFeatures) are read at the checkpoint's image size."""
    base, _, graphs, _ = vg_case
    cfg = tiny_vg_recipe(
        tmp_path / "sgdet.yaml",
        base / "synth-vg",
        tmp_path,
        num_test=6,
        model={
            "task": "sgdet",
            "features": {
                "class_path": "tailgraph.modeling.roi.PixelFeatures",
                "init_args": {"last_stage": "layer1", "out_dim": 16},
            },
            "detector": {
                "class_path": "tailgraph.modeling.detector.SyntheticDetector",
                "init_args": {"seed": 0},
            },
        },
        data={"layout_only": False, "max_size": 96},
    )
    assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
    ckpt = next(tmp_path.glob("runs/version_*/checkpoints/last.ckpt"))
    out = tmp_path / "out"
    assert (
        tailgraph_main(
            [
                "predict",
                "--ckpt",
                str(ckpt),
                "--input",
                str(base / "images"),
                "--boxes",
                str(base / "boxes.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    preds = {p.image_id: p for p in read_predictions(out / "scene_graphs.json")}
    assert len(preds) == len(graphs)
    # detections, not the given boxes: the synthetic detector jitters, drops and duplicates
    assert any(
        p.boxes.shape != g.boxes.shape
        or not torch.allclose(p.boxes, g.boxes * (3 if n == 2 else 1))
        for n, (g, p) in enumerate(zip(graphs, (preds[f"img{n}"] for n in range(len(graphs)))))
    )
    assert all((out / f"img{n}.graph.png").is_file() for n in range(len(graphs)))


def test_predict_sgdet_with_a_pixel_detector_needs_no_boxes(vg_case, tmp_path):
    """A Faster R-CNN SGDet model (random weights standing in for the user's) finds the boxes
    itself on images of any size; the checkpoint is built by hand, as any tailgraph checkpoint."""
    from tailgraph.engine.module import SGGModule
    from tailgraph.vocab import Vocabulary

    base, ckpt_vg, graphs, _ = vg_case
    vocab = Vocabulary.from_dict(torch.load(ckpt_vg, weights_only=True)["tailgraph"]["vocab"])
    hp = dict(
        task="sgdet",
        features=None,
        bg_per_image=4,
        context={
            "class_path": "tailgraph.modeling.context.pairwise.PairwiseMLPContext",
            "init_args": {"hidden_dim": 16},
        },
        detector={
            "class_path": "tailgraph.modeling.detector.FasterRCNNDetector",
            "init_args": {
                "score_thresh": 0.0,
                "detections_per_img": 6,
                "min_size": 64,
                "max_size": 96,
            },
        },
    )
    torch.manual_seed(0)
    module = SGGModule(**hp)
    module.build(vocab, "vg")
    ck = {"state_dict": module.state_dict(), "hyper_parameters": hp}
    module.on_save_checkpoint(ck)
    torch.save(ck, tmp_path / "frcnn.ckpt")
    out = tmp_path / "out"
    assert (
        tailgraph_main(
            [
                "predict",
                "--ckpt",
                str(tmp_path / "frcnn.ckpt"),
                "--input",
                str(base / "images"),
                "--out",
                str(out),
                "--top",
                "3",
            ]
        )
        == 0
    )
    preds = {p.image_id: p for p in read_predictions(out / "scene_graphs.json")}
    assert len(preds) == len(graphs)
    for n in range(len(graphs)):
        p = preds[f"img{n}"]
        with Image.open(next((base / "images").glob(f"img{n}.*"))) as im:
            w, h = im.size
        assert 0 < p.boxes.shape[0] <= 6
        assert float(p.boxes[:, 2].max()) <= w + 1e-3 and float(p.boxes[:, 3].max()) <= h + 1e-3
        assert (out / f"img{n}.boxes.png").is_file()


def test_predict_help_and_dispatch(capsys, tmp_path):
    """`tailgraph predict --help` shows the folder form; its options send a command there (one
    line for a missing option), LightningCLI keeps --config."""
    assert tailgraph_main(["predict", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--ckpt" in out and "--input" in out and "--config RECIPE" in out
    assert tailgraph_main(["predict", "--ckpt", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--input" in err and len(err.splitlines()) == 1
    assert (
        tailgraph_main(
            [
                "predict",
                "--ckpt",
                str(tmp_path / "x.ckpt"),
                "--input",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "'--ckpt'" in err and "checkpoint not found" in err
