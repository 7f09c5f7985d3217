"""Action Genome reader on files written here in AG's layout; restricted unpickler."""

import os
import pickle

import numpy as np
import pytest

from tailgraph.data.action_genome import AG_PREDICATES, load_ag, stats
from tailgraph.errors import DataError
from tailgraph.io.safe_pickle import safe_load, safe_loads

CLASSES = [
    "person",
    "bag",
    "bed",
    "blanket",
    "book",
    "box",
    "broom",
    "chair",
    "closetcabinet",
    "clothes",
    "cupglassbottle",
    "dish",
    "door",
    "doorknob",
    "doorway",
    "floor",
    "food",
    "groceries",
    "laptop",
    "light",
    "medicine",
    "mirror",
    "papernotebook",
    "phonecamera",
    "picture",
    "pillow",
    "refrigerator",
    "sandwich",
    "shelf",
    "shoe",
    "sofacouch",
    "table",
    "television",
    "towel",
    "vacuum",
    "window",
]
RAW_PREDICATES = [
    "lookingat",
    "notlookingat",
    "unsure",
    "above",
    "beneath",
    "infrontof",
    "behind",
    "onthesideof",
    "in",
    "carrying",
    "coveredby",
    "drinkingfrom",
    "eating",
    "haveitonthe back",
    "holding",
    "leaningon",
    "lyingon",
    "notcontacting",
    "otherrelationship",
    "sittingon",
    "standingon",
    "touching",
    "twisting",
    "wearing",
    "wiping",
    "writingon",
]


def obj(cls, bbox, att, spa, con, split, key, visible=True):
    return {
        "class": cls,
        "bbox": bbox,
        "attention_relationship": att,
        "spatial_relationship": spa,
        "contacting_relationship": con,
        "visible": visible,
        "metadata": {"tag": key, "set": split},
    }


def write_ag(root, n_frames=(3, 2, 4)):
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "object_classes.txt").write_text("\n".join(CLASSES) + "\n")
    (ann / "relationship_classes.txt").write_text("\n".join(RAW_PREDICATES) + "\n")
    objects, persons = {}, {}
    for v, n in enumerate(n_frames):
        split = "test" if v == 2 else "train"
        for f in range(n):
            key = f"V{v}.mp4/{f:06d}.png"
            objects[key] = [
                obj(
                    "cup/glass/bottle",
                    (10, 20, 30, 40),
                    ["looking_at"],
                    ["in_front_of", "beneath"],
                    ["holding"],
                    split,
                    key,
                ),
                obj(
                    "table",
                    (0, 50, 100, 40),
                    ["not_looking_at"],
                    ["behind"],
                    ["not_contacting"],
                    split,
                    key,
                ),
                obj("book", None, [], [], [], split, key, visible=False),
            ]
            persons[key] = {
                "bbox": np.array([[5.0, 5.0, 60.0, 95.0]], dtype=np.float32),
                "bbox_size": (120, 100),
            }
    # a train frame without a person box (dropped by the default filter)
    objects["V0.mp4/000099.png"] = [
        obj("table", (0, 0, 5, 5), ["unsure"], ["in"], ["touching"], "train", "x")
    ]
    persons["V0.mp4/000099.png"] = {"bbox": np.zeros((0, 4)), "bbox_size": (120, 100)}
    with open(ann / "object_bbox_and_relationship.pkl", "wb") as fh:
        pickle.dump(objects, fh)
    with open(ann / "person_bbox.pkl", "wb") as fh:
        pickle.dump(persons, fh)
    return root


def test_reads_frames_as_the_reference_evaluator_lays_them_out(tmp_path):
    root = write_ag(tmp_path)
    train, vocab = load_ag(root, "train")
    assert (
        vocab.num_classes == 37
        and vocab.object_classes[11] == "cup/glass/bottle"
        and vocab.object_classes[1] == "person"
    )
    assert vocab.predicates == AG_PREDICATES and vocab.relation_type[3] == "spatial"
    # video V1 has 2 frames -> dropped (reference keeps videos with > 2 frames)
    assert [v.video_id for v in train] == ["V0.mp4"] and len(train[0]) == 3
    f = train[0].frames[0]
    assert f.image_id == "V0.mp4/000000.png" and (f.width, f.height) == (120, 100)
    assert f.boxes.tolist() == [
        [5, 5, 60, 95],
        [10, 20, 40, 60],
        [0, 50, 100, 90],
    ]  # person, then xywh -> xyxy
    assert f.labels.tolist() == [1, 11, vocab.class_index("table")]
    rels = sorted(map(tuple, f.relations.tolist()))
    expected = sorted(
        [(0, 1, 0), (1, 0, 5), (1, 0, 4), (0, 1, 9 + 5), (0, 2, 1), (2, 0, 6), (0, 2, 9 + 8)]
    )
    assert rels == expected
    assert f.extras["groups"][0] == {"attention": [0], "spatial": [2, 1], "contacting": [5]}
    assert sum(vocab.predicate_counts) == 7 * 3
    test, _ = load_ag(root, "test")
    assert [v.video_id for v in test] == ["V2.mp4"] and len(test[0]) == 4
    s = stats(root)
    train_split = dict(s["filtered"]["splits"]["train"])
    per_predicate = train_split.pop("predicate_counts")
    assert train_split == {"videos": 1, "frames": 3, "boxes": 6, "relations": 21}
    expected_counts = dict.fromkeys(AG_PREDICATES, 0)
    for p in (0, 5, 4, 9 + 5, 1, 6, 9 + 8):  # the 7 relations of each of the 3 frames
        expected_counts[AG_PREDICATES[p]] += 3
    assert per_predicate == expected_counts
    assert s["splits"]["train"]["frames"] == 3 + 2 + 1
    assert (
        sum(s["splits"]["train"]["predicate_counts"].values()) == s["splits"]["train"]["relations"]
    )


def test_bad_input_is_reported(tmp_path):
    root = write_ag(tmp_path)
    ann = root / "annotations"
    with open(ann / "object_bbox_and_relationship.pkl", "rb") as fh:
        objects = pickle.load(fh)
    objects["V0.mp4/000000.png"][0]["spatial_relationship"] = ["inside_of"]
    with open(ann / "object_bbox_and_relationship.pkl", "wb") as fh:
        pickle.dump(objects, fh)
    with pytest.raises(DataError, match="unknown spatial predicate 'inside_of'") as err:
        load_ag(root, "train")
    assert (
        err.value.sample == "V0.mp4/000000.png object 0"
        and err.value.field == "spatial_relationship"
    )
    (ann / "person_bbox.pkl").write_bytes(b"\x80\x04\x95truncated")
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_ag(root, "train")
    (ann / "relationship_classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="expected 26 lines"):
        load_ag(root, "train")


@pytest.mark.parametrize(
    "edit, text, field",
    [
        (lambda o, p: o[0].update(bbox=(1e12, 10.0, 5.0, 5.0)), "image size outside", "bbox"),
        (lambda o, p: o[0].update(bbox=(-130.0, 10.0, 5.0, 5.0)), "image size outside", "bbox"),
        (
            lambda o, p: p.update(bbox=np.array([[5.0, -150.0, 60.0, 95.0]], dtype=np.float32)),
            "image size outside",
            "bbox",
        ),
        (lambda o, p: p.update(bbox_size=(120.5, 100)), "whole pixels", "bbox_size"),
    ],
)
def test_boxes_far_outside_the_frame_and_fractional_sizes_are_errors(tmp_path, edit, text, field):
    """An object or person box more than one frame size outside the ``bbox_size`` frame is a
    corrupt coordinate; the frame size is whole pixels (120.5 is not rounded)."""
    root = write_ag(tmp_path)
    ann = root / "annotations"
    with open(ann / "object_bbox_and_relationship.pkl", "rb") as fh:
        objects = pickle.load(fh)
    with open(ann / "person_bbox.pkl", "rb") as fh:
        persons = pickle.load(fh)
    key = "V0.mp4/000000.png"
    edit(objects[key], persons[key])
    with open(ann / "object_bbox_and_relationship.pkl", "wb") as fh:
        pickle.dump(objects, fh)
    with open(ann / "person_bbox.pkl", "wb") as fh:
        pickle.dump(persons, fh)
    with pytest.raises(DataError, match=text) as err:
        load_ag(root, "train")
    assert err.value.field == field and err.value.sample.startswith(key) and err.value.file


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/tailgraph_pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    data = pickle.dumps({"key": [_Evil()]})
    with pytest.raises(DataError, match="refused to load posix.system|refused to load os.system"):
        safe_loads(data, "evil.pkl")
    assert not os.path.exists("/tmp/tailgraph_pwned")
    evil = tmp_path / "person_bbox.pkl"
    evil.write_bytes(pickle.dumps(eval))
    with pytest.raises(DataError, match="builtins.eval") as err:
        safe_load(evil)
    assert str(evil) in str(err.value)
    ok = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": (1, 2.5, "x", None, np.float64(3.0)),
    }
    for proto in (2, 4, 5):
        back = safe_loads(pickle.dumps(ok, protocol=proto))
        assert np.array_equal(back["a"], ok["a"]) and back["b"][:4] == (1, 2.5, "x", None)


def test_stats_and_evaluate_commands_on_an_ag_folder(tmp_path, capsys):
    import json

    from tailgraph.cli import main as tailgraph_main
    from tailgraph.io.interchange import write_predictions
    from tailgraph.structures import Predictions

    root = write_ag(tmp_path / "ag")
    assert tailgraph_main(["stats", "--format", "ag", "--root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["filtered"]["splits"]["test"]["frames"] == 4
    videos, _ = load_ag(root, "test")
    preds = []
    for f in (fr for v in videos for fr in v.frames):
        # small non-zero scores everywhere, as a real model outputs: the reference's semi
        # constraint recognises spatial / contacting rows by their first two columns being > 0
        scores = np.full((2, 26), 0.01)
        for i, grp in enumerate(f.extras["groups"]):
            scores[i, grp["attention"]] = 1.0
            scores[i, [3 + s for s in grp["spatial"]]] = 0.95
            scores[i, [9 + c for c in grp["contacting"]]] = 0.95
        preds.append(
            Predictions(f.image_id, f.boxes, f.labels, [1.0] * 3, [[0, 1], [0, 2]], scores)
        )
    write_predictions(tmp_path / "pred.json", preds)
    assert (
        tailgraph_main(
            [
                "evaluate",
                "--protocol",
                "ag",
                "--gt",
                str(root),
                "--format",
                "ag",
                "--pred",
                str(tmp_path / "pred.json"),
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "o.json").read_text())
    # semi constraint takes every spatial / contacting score > 0.9: all 7 GT relations per frame
    assert out["semi"]["R@10"] == 1.0 and out["semi"]["num_frames"] == 4
    # with constraint: one spatial prediction per pair, object 1 has two spatial labels -> 6 of 7
    assert out["with"]["R@10"] == pytest.approx(6 / 7)


def test_hostile_pickles_are_bounded_and_refused():
    """A few bytes asking for gigabytes (a huge memo index, ``bytearray(<size>)``) end in the
    project's error (under the address-space bound, not an out-of-memory kill); Python 2 era
    ``__builtin__`` names still load."""
    import pickle
    import struct

    import numpy as np

    from tailgraph.errors import DataError
    from tailgraph.io.safe_pickle import safe_loads

    bombs = [
        b"\x80\x04K\x01r" + struct.pack("<I", 0xFFFFFFF0) + b".",  # memo index 2^32
        b"\x80\x04K\x01r" + struct.pack("<I", 1 << 28) + b".",  # a 4 GB memo table
        # 10**11 bytes
        b"\x80\x04\x8c\x08builtins\x8c\tbytearray\x93\x8a\x05\x00\xe8\x76\x48\x17\x85R.",
        b"\x80\x04\x8c\x08builtins\x8c\x05bytes\x93\x8a\x05\x00\xe8\x76\x48\x17\x85R.",
    ]
    for b in bombs:
        with pytest.raises(DataError, match="file bomb"):
            safe_loads(b, "bomb")
    x = {"a": np.arange(5, dtype=np.float32), "b": [1, 2.5, "x", b"yy", bytearray(b"zz")]}
    for proto in (2, 4, 5):
        y = safe_loads(pickle.dumps(x, protocol=proto))
        assert np.array_equal(y["a"], x["a"]) and y["b"] == x["b"]


def test_datasize_mini_and_filtersmall_through_the_data_module(tmp_path):
    """``datasize: mini`` keeps the first frames of person_bbox.pkl in its stored order (the
    reference's ``-datasize mini``); ``filter_small_box`` reads the filtersmall annotations."""
    from tailgraph.datamodules.ag import AGDataModule

    root = write_ag(tmp_path)
    ann = root / "annotations"
    persons = safe_load(ann / "person_bbox.pkl")
    # stored order: V0's 3 frames, V1's 2, V2's 4, then V0's person-less frame
    assert list(persons)[:3] == [f"V0.mp4/{f:06d}.png" for f in range(3)]
    mini, _ = load_ag(root, "train", datasize="mini", mini_frames=3)
    assert [v.video_id for v in mini] == ["V0.mp4"] and len(mini[0]) == 3
    mini, _ = load_ag(root, "train", datasize="mini", mini_frames=2)
    assert mini == []  # V0 keeps 2 frames (< 3): dropped
    with pytest.raises(DataError, match="datasize"):
        load_ag(root, "train", datasize="tiny")
    with pytest.raises(DataError, match="mini_frames"):
        load_ag(root, "train", datasize="mini", mini_frames=0)
    # filtersmall: a copy where V0's cup is gone
    objects = safe_load(ann / "object_bbox_and_relationship.pkl")
    small = {
        k: [o for o in v if not (k.startswith("V0") and o["class"] == "cup/glass/bottle")]
        for k, v in objects.items()
    }
    with open(ann / "object_bbox_and_relationship_filtersmall.pkl", "wb") as fh:
        pickle.dump(small, fh)
    for flag, n_boxes in ((False, 3), (True, 2)):
        dm = AGDataModule(str(root), layout_only=True, filter_small_box=flag, val_fraction=0.0)
        dm.setup("fit")
        assert [len(f.boxes) for f in dm.splits["train"][0].frames] == [n_boxes] * 3
    dm = AGDataModule(str(root), layout_only=True, datasize="mini", val_fraction=0.0)
    dm.setup("fit")
    assert len(dm.splits["train"][0]) == 3


def test_contact_single_label_trains_the_contacting_type_as_one_softmax(tmp_path):
    from tailgraph.protocols import build_protocol

    root = write_ag(tmp_path)
    train, plain = load_ag(root, "train")
    _, single = load_ag(root, "train", contact_single_label=True)
    groups = {g.name: g.single_label for g in build_protocol("ag", plain).groups}
    assert groups == {"attention": True, "spatial": False, "contacting": False}
    protocol = build_protocol("ag", single)
    assert {g.name: g.single_label for g in protocol.groups} == {
        "attention": True,
        "spatial": False,
        "contacting": True,
    }
    frame = train[0].frames[0]
    pairs = protocol.candidate_pairs([frame])[0]
    t = protocol.targets([frame], pairs)
    contact = next(g for g in protocol.groups if g.name == "contacting")
    lab = t.labels["contacting"]
    # each pair's label is one of its annotated contact columns (-100: none annotated)
    for row, y in enumerate(lab.tolist()):
        annotated = [j for j, c in enumerate(contact.columns) if t.multi_hot[row, c] > 0]
        assert (y in annotated) if annotated else y == -100
    with pytest.raises(DataError, match="contact_single_label"):
        load_ag(root, "train", contact_single_label="yes")
