"""VidVRD reader on per-video JSON files written here in the VidVRD layout."""

import json

import pytest

from tailgraph.data.vidvrd import (
    load_vidvrd,
    predicate_patterns,
    split_segments,
    stats,
    to_groundtruth,
)
from tailgraph.errors import DataError


def box(x, y, w=10, h=10):
    return {"xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h}


def write_video(folder, vid, n=40, rels=None):
    doc = {
        "video_id": vid,
        "width": 200,
        "height": 100,
        "fps": 30,
        "subject/objects": [{"tid": 0, "category": "dog"}, {"tid": 1, "category": "ball"}],
        "trajectories": [
            [{"tid": 0, "bbox": box(f, 10)}] + ([{"tid": 1, "bbox": box(50, 50)}] if f >= 5 else [])
            for f in range(n)
        ],
        "relation_instances": rels
        if rels is not None
        else [
            {
                "subject_tid": 0,
                "object_tid": 1,
                "predicate": "chase",
                "begin_fid": 5,
                "end_fid": 35,
            },
            {
                "subject_tid": 1,
                "object_tid": 0,
                "predicate": "move_left",
                "begin_fid": 10,
                "end_fid": 20,
            },
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{vid}.json").write_text(json.dumps(doc))
    return doc


def test_reader_frames_instances_vocabulary(tmp_path):
    write_video(tmp_path / "train", "v1")
    write_video(
        tmp_path / "test",
        "v2",
        rels=[
            {
                "subject_tid": 0,
                "object_tid": 1,
                "predicate": "next_to",
                "begin_fid": 6,
                "end_fid": 8,
            }
        ],
    )
    videos, vocab = load_vidvrd(tmp_path, "train")
    assert vocab.object_classes == ["__background__", "ball", "dog"]
    assert vocab.predicates == ["__background__", "chase", "move_left", "next_to"]
    assert vocab.action_pattern[1:] == ["chase", "move", None] and vocab.spatial_pattern[1:] == [
        None,
        "left",
        "next_to",
    ]
    assert vocab.predicate_counts == [0, 1, 1, 0]
    v = videos[0]
    assert len(v) == 40 and v.frames[0].num_boxes == 1 and v.frames[10].num_boxes == 2
    f = v.frames[12]
    assert f.track_ids.tolist() == [0, 1] and f.labels.tolist() == [2, 1]
    assert sorted(f.relations.tolist()) == [[0, 1, 1], [1, 0, 2]]
    assert v.frames[25].relations.tolist() == [[0, 1, 1]] and v.frames[36].num_relations == 0
    assert f.boxes[0].tolist() == [12, 10, 22, 20]
    gt = to_groundtruth(videos)["v1"]
    assert (
        gt[0]["triplet"] == ["dog", "chase", "ball"]
        and gt[0]["duration"] == [5, 35]
        and len(gt[0]["sub_traj"]) == 30
    )
    assert gt[0]["sub_traj"][0] == [5, 10, 15, 20]
    s = stats(tmp_path)
    train_split = dict(s["splits"]["train"])
    per_predicate = train_split.pop("predicate_counts")
    assert train_split == {"videos": 1, "frames": 40, "boxes": 40 + 35, "relations": 2}
    assert {k: c for k, c in per_predicate.items() if c} == {"chase": 1, "move_left": 1}
    assert set(per_predicate) == set(vocab.predicates[1:])


def test_segments_of_30_frames_with_15_overlap(tmp_path):
    write_video(tmp_path / "train", "v1", n=70)
    v = load_vidvrd(tmp_path, "train")[0][0]
    segs = split_segments(v, 30, 15)
    assert [(s["begin"], s["end"]) for s in segs] == [(0, 30), (15, 45), (30, 60), (40, 70)]
    first = segs[0]["relation_instances"]
    assert [(r["predicate"], r["begin_fid"], r["end_fid"]) for r in first] == [
        ("chase", 5, 30),
        ("move_left", 10, 20),
    ]
    assert [
        (r["predicate"], r["begin_fid"], r["end_fid"]) for r in segs[2]["relation_instances"]
    ] == [("chase", 30, 35)]


def test_patterns_of_the_vidvrd_vocabulary():
    assert predicate_patterns("fly_next_to") == ("fly", "next_to")
    assert predicate_patterns("taller") == ("taller", None)
    assert predicate_patterns("past") == (None, "past")


@pytest.mark.parametrize(
    "rels, text, field",
    [
        (
            [
                {
                    "subject_tid": 0,
                    "object_tid": 7,
                    "predicate": "chase",
                    "begin_fid": 5,
                    "end_fid": 9,
                }
            ],
            "tid 7",
            "relation_instances",
        ),
        (
            [
                {
                    "subject_tid": 0,
                    "object_tid": 1,
                    "predicate": "chase",
                    "begin_fid": 5,
                    "end_fid": 99,
                }
            ],
            "frame range",
            "begin_fid/end_fid",
        ),
        (
            [
                {
                    "subject_tid": 0,
                    "object_tid": 1,
                    "predicate": "chase",
                    "begin_fid": 2,
                    "end_fid": 8,
                }
            ],
            "no box in frame 2",
            "trajectories",
        ),
        (
            [{"subject_tid": 0, "object_tid": 1, "begin_fid": 5, "end_fid": 9}],
            "relation needs",
            "relation_instances",
        ),
    ],
)
def test_bad_files(tmp_path, rels, text, field):
    write_video(tmp_path / "train", "bad", rels=rels)
    with pytest.raises(DataError, match=text) as err:
        load_vidvrd(tmp_path, "train")
    assert (
        err.value.field == field
        and "bad.json" in str(err.value)
        and "bad relation 0" == err.value.sample
    )


def test_evaluate_vidvrd_on_a_folder(tmp_path):
    from tailgraph.cli.evaluate import main as evaluate_main

    write_video(tmp_path / "test", "v1")
    gt = to_groundtruth(load_vidvrd(tmp_path, "test")[0])
    pred = {
        "version": "VERSION 1.0",
        "results": {"v1": [{**r, "score": 0.9 - 0.1 * i} for i, r in enumerate(gt["v1"])]},
    }
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    assert (
        evaluate_main(
            [
                "--protocol",
                "vidvrd",
                "--gt",
                str(tmp_path),
                "--format",
                "vidvrd",
                "--pred",
                str(tmp_path / "pred.json"),
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "o.json").read_text())["RelDet_mAP"] == 1.0


def test_stats_refuses_a_missing_root_or_split(tmp_path):
    import pytest

    from tailgraph.data.vidvrd import stats
    from tailgraph.errors import DataError

    with pytest.raises(DataError, match="not found"):
        stats(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no split found"):
        stats(tmp_path / "empty")
    (tmp_path / "empty" / "train").write_text("not a folder")
    with pytest.raises(DataError, match="not a readable folder"):
        stats(tmp_path / "empty")


def test_duplicate_tracks_boxes_and_videos_are_errors(tmp_path):
    """Each would be counted twice: a tid listed twice, two boxes of one tid in a frame, a
    video id in two files."""
    split = tmp_path / "train"
    split.mkdir()
    doc = write_video(split, "v1")
    path = split / "v1.json"
    good = json.dumps(doc)
    doc["subject/objects"].append({"tid": 0, "category": "ball"})
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="tid 0 listed twice"):
        load_vidvrd(tmp_path, "train")
    doc = json.loads(good)
    doc["trajectories"][3].append({"tid": 0, "bbox": box(3, 10)})
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="two boxes") as err:
        load_vidvrd(tmp_path, "train")
    assert "v1 frame 3" in str(err.value)
    path.write_text(good)
    (split / "copy.json").write_text(good)
    with pytest.raises(DataError, match="also in") as err:
        load_vidvrd(tmp_path, "train")
    assert err.value.field == "video_id"


@pytest.mark.parametrize(
    "edit, text, field",
    [
        (lambda d: d["trajectories"][4][0]["bbox"].update(xmax=1e12), "frame size outside", "bbox"),
        (lambda d: d["trajectories"][4][0]["bbox"].update(xmin=-250), "frame size outside", "bbox"),
        (lambda d: d.update(width=200.5), "expected an integer", "width"),
    ],
)
def test_boxes_far_outside_the_frame_and_fractional_sizes_are_errors(tmp_path, edit, text, field):
    """A box more than one frame size outside its ``width x height`` frame is a corrupt
    coordinate; a frame size is whole pixels (200.5 is not truncated to 200)."""
    doc = write_video(tmp_path / "train", "v1")
    edit(doc)
    (tmp_path / "train" / "v1.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=text) as err:
        load_vidvrd(tmp_path, "train")
    assert err.value.field == field and "v1.json" in str(err.value)


def test_boxes_a_little_outside_the_frame_are_read(tmp_path):
    doc = write_video(tmp_path / "train", "v1")
    doc["trajectories"][4][0]["bbox"] = {"xmin": -20, "ymin": 5, "xmax": 230, "ymax": 120}
    (tmp_path / "train" / "v1.json").write_text(json.dumps(doc))
    videos, _ = load_vidvrd(tmp_path, "train")
    assert videos[0].frames[4].boxes[0].tolist() == [-20, 5, 230, 120]
