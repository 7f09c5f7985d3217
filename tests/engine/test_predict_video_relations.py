"""`tailgraph predict --ckpt CKPT --input FRAMES` with a VidVRD-II checkpoint: relation
instances of folders of frames, from the user's tracklets (equal to `tailgraph test` with the
same tracklets) or from per-frame detections linked by the IoU tracker; bad input in one line."""

import json
import shutil

import pytest
import torch
import yaml

from tailgraph.cli import main as tailgraph_main
from tests.engine.test_recipes import tiny_recipe


@pytest.fixture(scope="module")
def vrd_case(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict_vrd")
    recipe = tiny_recipe("vrd_vidvrd2", base)
    cfg = yaml.safe_load(recipe.read_text())
    cfg["data"]["init_args"]["tracklets"] = "gt"  # the annotated trajectories, as the file below
    recipe.write_text(yaml.safe_dump(cfg))
    assert tailgraph_main(["fit", "--config", str(recipe)]) == 0
    run = base / "out" / "runs" / "version_0"
    ckpt = run / "checkpoints" / "last.ckpt"
    args = ["test", "--config", str(recipe), "--ckpt_path", str(ckpt), "--pred-format", "json"]
    assert tailgraph_main(args) == 0
    engine = json.loads(next((base / "out" / "runs").glob("*/test_predictions.json")).read_text())
    data = base / "data"
    frames, tracklets, boxes = base / "frames", {}, {}
    for ann in sorted((data / "test").glob("*.json")):
        doc = json.loads(ann.read_text())
        vid = doc["video_id"]
        shutil.copytree(data / "frames" / vid, frames / vid)
        tracklets[vid] = {"trajectories": doc["trajectories"]}
        names = sorted(p.name for p in (frames / vid).iterdir())
        cats = {o["tid"]: o["category"] for o in doc["subject/objects"]}
        for name, per_frame in zip(names, doc["trajectories"]):
            boxes[f"{vid}/{name}"] = [
                {"box": [b["bbox"][k] for k in ("xmin", "ymin", "xmax", "ymax")],
                 "label": cats[b["tid"]]}
                for b in per_frame
            ]  # fmt: skip
    (base / "tracklets.json").write_text(json.dumps(tracklets))
    (base / "boxes.json").write_text(json.dumps(boxes))
    return base, ckpt, engine, frames


def _predict(base, ckpt, frames, out, *extra):
    return tailgraph_main(
        ["predict", "--ckpt", str(ckpt), "--input", str(frames), "--out", str(out), *extra]
    )


def test_predict_with_the_test_tracklets_equals_tailgraph_test(vrd_case, capsys):
    base, ckpt, engine, frames = vrd_case
    out = base / "pred_tracklets"
    assert _predict(base, ckpt, frames, out, "--tracklets", str(base / "tracklets.json")) == 0
    assert "relation instances" in capsys.readouterr().out
    got = json.loads((out / "relations.json").read_text())["results"]
    want = engine["results"]
    assert sorted(got) == sorted(want) and sum(map(len, want.values())) > 0
    for vid, insts in want.items():
        assert len(got[vid]) == len(insts)
        for a, b in zip(got[vid], insts):
            assert a["triplet"] == b["triplet"] and a["duration"] == b["duration"]
            assert a["score"] == pytest.approx(b["score"], rel=1e-4, abs=1e-7)
    # what evaluate reads, against the data set's ground truth
    res = base / "eval.json"
    args = ["evaluate", "--protocol", "vidvrd", "--format", "vidvrd", "--gt", str(base / "data")]
    args += ["--pred"]
    assert tailgraph_main([*args, str(out / "relations.json"), "--json", str(res)]) == 0
    assert 0.0 <= json.loads(res.read_text())["RelDet_mAP"] <= 1.0
    kept = json.loads((out / "tracklets.json").read_text())
    assert sorted(kept) == sorted(want)


def test_predict_links_per_frame_detections_into_tracklets(vrd_case):
    base, ckpt, engine, frames = vrd_case
    out = base / "pred_boxes"
    assert _predict(base, ckpt, frames, out, "--boxes", str(base / "boxes.json")) == 0
    got = json.loads((out / "relations.json").read_text())["results"]
    tracks = json.loads((out / "tracklets.json").read_text())
    assert sorted(got) == sorted(engine["results"])
    assert any(len(v) for v in got.values())
    given = json.loads((base / "boxes.json").read_text())
    classes_of: dict = {}
    for vid, doc in tracks.items():  # one list per frame, every linked track with its boxes
        names = sorted(p.name for p in (frames / vid).iterdir())
        assert len(doc["trajectories"]) == len(names)
        assert any(doc["trajectories"])
        for name, per_frame in zip(names, doc["trajectories"]):
            for b in per_frame:
                box = [b["bbox"][k] for k in ("xmin", "ymin", "xmax", "ymax")]
                near = min(
                    given[f"{vid}/{name}"],
                    key=lambda d: sum(abs(x - y) for x, y in zip(d["box"], box)),
                )
                if sum(abs(x - y) for x, y in zip(near["box"], box)) < 1e-3:  # not a held box
                    classes_of.setdefault((vid, b["tid"]), set()).add(near["label"])
    # the tracker links only boxes of one class (the checkpoint's default tracker settings)
    assert classes_of and all(len(c) == 1 for c in classes_of.values())
    info = torch.load(ckpt, map_location="cpu", weights_only=True)["tailgraph"]
    seg = info["tracklet_segments"]
    assert (seg["tracker_matching"], seg["tracker_by_class"]) == ("optimal", True)


def test_predict_video_relations_bad_input_is_one_line(vrd_case, tmp_path, capsys):
    base, ckpt, _, frames = vrd_case
    assert _predict(base, ckpt, frames, tmp_path / "a") == 2
    assert "exactly one of --tracklets" in capsys.readouterr().err
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"SV99999": {"trajectories": []}}))
    assert _predict(base, ckpt, frames, tmp_path / "b", "--tracklets", str(bad)) == 2
    err = capsys.readouterr().err
    assert "SV99999" in err and str(bad) in err and len(err.strip().splitlines()) == 1
    vid = sorted(p.name for p in frames.iterdir())[0]
    far = {vid: {"trajectories": [[{"tid": 0, "bbox": {"xmin": 0, "ymin": 0, "xmax": 5000,
                                                        "ymax": 10}}]]}}  # fmt: skip
    bad.write_text(json.dumps(far))
    assert _predict(base, ckpt, frames, tmp_path / "c", "--tracklets", str(bad)) == 2
    assert "outside" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
