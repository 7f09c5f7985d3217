"""VG150 reader / writer: real third-party files, SGB semantics, bad input."""

import json

import h5py
import numpy as np
import pytest

from tailgraph.data.vg import decode_boxes, encode_boxes, load_vg, write_vg
from tailgraph.data.vg import stats as vg_stats
from tailgraph.errors import DataError
from tailgraph.structures import SceneGraph
from tailgraph.vocab import Vocabulary

from ..conftest import RS_VG, needs_shared_data

VOCAB = Vocabulary(["__background__", "cat", "dog", "car"], ["__background__", "on", "near", "has"])


def tiny(tmp_path, graphs_train=None, graphs_test=None):
    a = SceneGraph(
        1,
        200,
        100,
        [[10, 10, 50, 40], [40, 20, 100, 90], [150, 5, 190, 30]],
        [1, 2, 3],
        [[0, 1, 1], [0, 1, 2], [2, 0, 3]],
    )
    b = SceneGraph(2, 100, 100, [[0, 0, 10, 10], [50, 50, 60, 60]], [2, 2], [[0, 1, 2]])
    c = SceneGraph(3, 100, 100, [[0, 0, 10, 10]], [3], [])
    write_vg(tmp_path, {"train": graphs_train or [a, b, c], "test": graphs_test or [b]}, VOCAB)
    return tmp_path


@needs_shared_data(RS_VG)
def test_real_rs_vg_files_read_as_they_are():
    stats = vg_stats(RS_VG)
    assert stats["splits"]["train"]["images"] == 5997
    assert stats["splits"]["test"]["images"] == 1309
    assert sum(s["boxes"] for s in stats["splits"].values()) == 101_156
    assert sum(stats["predicate_counts"].values()) == 110_772
    assert len(stats["predicate_counts"]) == 52
    assert max(stats["predicate_counts"].values()) == 16_788
    assert stats["predicate_counts"]["parallelly docked at"] == 16_788
    assert min(stats["predicate_counts"].values()) == 0
    # images with relations (2,891 images have none, one image per split has no boxes either)
    assert (
        stats["filtered"]["splits"]["train"]["images"]
        + stats["filtered"]["splits"]["test"]["images"]
        == 7306 - 2891
    )
    for name in ("train", "test"):  # what each filter removed accounts for every image
        raw, kept = stats["splits"][name], stats["filtered"]["splits"][name]
        removed = kept["removed"]
        assert removed["images without boxes"] == 1
        assert (
            raw["images"] - kept["images"]
            == removed["images without boxes"] + removed["images without relations"]
        )
    assert (
        stats["filtered"]["splits"]["test"]["removed"][
            "duplicate predicates of a pair (one kept, train)"
        ]
        == 0
    )
    assert (
        stats["filtered"]["splits"]["train"]["removed"][
            "duplicate predicates of a pair (one kept, train)"
        ]
        == stats["splits"]["train"]["relations"] - stats["filtered"]["splits"]["train"]["relations"]
    )
    test, vocab = load_vg(RS_VG, "test")
    assert vocab.num_classes == 31 and vocab.num_predicates == 53
    assert sum(g.num_relations for g in test) == stats["splits"]["test"]["relations"]
    assert all(g.width == 1024 and g.height == 1024 for g in test[:50])
    assert sum(vocab.predicate_counts) == stats["filtered"]["splits"]["train"]["relations"]


def test_box_encoding_matches_sgb_conversion():
    # stored (cx, cy, w, h) = (15, 25, 10, 20) -> x1 = 10, y1 = 15, x2 = 20, y2 = 35
    assert decode_boxes(np.array([[15, 25, 10, 20]])).tolist() == [[10.0, 15.0, 20.0, 35.0]]
    # a 512-px-long image: s = 2; box (10, 5)-(30, 45) -> x=20, y=10, w=40, h=80 -> centre (40, 50)
    assert encode_boxes(np.array([[10.0, 5.0, 30.0, 45.0]]), 512, 256).tolist() == [
        [40, 50, 40, 80]
    ]


def test_round_trip_and_sgb_filters(tmp_path):
    root = tiny(tmp_path)
    test, vocab = load_vg(root, "test")
    assert [g.image_id for g in test] == [2]
    # 100 px image at the 1024 scale: s = 10.24 -> boxes come back within 1/s px
    assert np.allclose(
        test[0].boxes.numpy(), [[0, 0, 10, 10], [50, 50, 60, 60]], atol=1 / 10.24 + 1e-6
    )
    train, _ = load_vg(root, "train")
    assert [g.image_id for g in train] == [1, 2]  # image 3 has no relations
    assert train[0].num_relations == 2  # duplicate (0,1) pair reduced to one predicate
    keep_dup, _ = load_vg(root, "train", filter_duplicate_rels=False)
    assert keep_dup[0].num_relations == 3
    all_imgs, _ = load_vg(root, "train", filter_empty_rels=False)
    assert len(all_imgs) == 3
    # counts come from the filtered training split: image 1 keeps one of on/near plus has, image 2
    # near
    assert sum(vocab.predicate_counts) == 3 and vocab.predicate_counts[3] == 1
    val, _ = load_vg(root, "val", num_val_im=1)
    tr, _ = load_vg(root, "train", num_val_im=1)
    assert [g.image_id for g in val] == [1] and [g.image_id for g in tr] == [2]
    non_overlap, _ = load_vg(root, "train", filter_non_overlap=True, filter_duplicate_rels=False)
    # image 1: (0,1) overlap, (2,0) does not; image 2: its only relation does not overlap -> dropped
    assert [g.image_id for g in non_overlap] == [1] and non_overlap[0].num_relations == 2


def test_layout_only_false_requires_images(tmp_path):
    root = tiny(tmp_path)
    with pytest.raises(DataError, match="image file not found") as err:
        load_vg(root, "test", layout_only=False)
    assert err.value.sample == 2 and err.value.field == "image"


def corrupt(tmp_path, key, fn):
    root = tiny(tmp_path)
    path = root / "VG-SGG-with-attri.h5"
    with h5py.File(path, "a") as f:
        data = f[key][:]
        del f[key]
        out = fn(data)
        if out is not None:
            f.create_dataset(key, data=out)
    return root


@pytest.mark.parametrize(
    "key, fn, field, text",
    [
        (
            "boxes_1024",
            lambda d: np.concatenate([d[:1], [[5, 5, -4, 10]], d[2:]]),
            "boxes_1024",
            "negative width",
        ),
        ("labels", lambda d: np.where(d == 3, 9, d), "labels", "outside 1..3"),
        (
            "relationships",
            lambda d: np.where(d == 2, 4, d),
            "relationships",
            "outside the image's rows",
        ),
        ("predicates", lambda d: np.where(d == 3, 7, d), "predicates", "outside 1..3"),
        ("split", lambda d: None, "split", "missing key"),
    ],
)
def test_bad_h5_content_names_file_image_and_field(tmp_path, key, fn, field, text):
    root = corrupt(tmp_path, key, fn)
    with pytest.raises(DataError, match=text) as err:
        load_vg(root, "train", filter_duplicate_rels=False)
    assert err.value.field == field
    assert "VG-SGG-with-attri.h5" in str(err.value)
    if key != "split":
        assert "image 0 (image_id 1)" in str(err.value)


def test_truncated_h5_and_bad_json(tmp_path):
    root = tiny(tmp_path)
    path = root / "VG-SGG-with-attri.h5"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_vg(root, "test")
    root2 = tiny(tmp_path / "b")
    (root2 / "image_data.json").write_text("[{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_vg(root2, "test")
    root3 = tiny(tmp_path / "c")
    (root3 / "image_data.json").write_text(json.dumps([{"image_id": 1}]))
    with pytest.raises(DataError, match="expected a list of 4 images"):
        load_vg(root3, "test")


@pytest.mark.parametrize(
    "key, fn, text",
    [
        ("img_to_first_box", lambda d: np.concatenate([[-1], d[1:]]), "marks an image without"),
        ("img_to_first_rel", lambda d: np.concatenate([[-1], d[1:]]), "marks an image without"),
        ("img_to_last_box", lambda d: np.concatenate([[-3], d[1:]]), "marks an image without"),
        (
            "boxes_1024",
            lambda d: np.concatenate([[[5, 5, 10, 10]], [[1e12, 5, 10, 10]], d[2:]]),
            "far outside",
        ),
    ],
)
def test_half_empty_index_ranges_and_huge_coordinates_are_errors(tmp_path, key, fn, text):
    """An image whose first index is -1 while its last is valid would lose its boxes or
    relations silently; a stored coordinate of 1e12 would be clipped into the image."""
    root = corrupt(tmp_path, key, fn)
    with pytest.raises(DataError, match=text) as err:
        load_vg(root, "train", filter_duplicate_rels=False)
    assert "VG-SGG-with-attri.h5" in str(err.value) and "image 0" in str(err.value)


def test_duplicate_image_ids_are_an_error(tmp_path):
    import json

    root = tiny(tmp_path)
    infos = json.loads((root / "image_data.json").read_text())
    infos[1]["image_id"] = infos[0]["image_id"]  # two train images
    (root / "image_data.json").write_text(json.dumps(infos))
    with pytest.raises(DataError, match="also at image 0") as err:
        load_vg(root, "train")
    assert err.value.field == "image_id" and "image_data.json" in str(err.value)


@pytest.mark.parametrize("value", [-4, 10**9])
def test_stats_validates_predicates_before_counting_them(tmp_path, value):
    """A predicate of 1e9 would size a 7.5 GiB count array; a negative one breaks bincount."""
    root = corrupt(tmp_path, "predicates", lambda d: np.where(d == 3, value, d))
    with pytest.raises(DataError, match=f"predicate {value} of relation row") as err:
        vg_stats(root)
    assert err.value.field == "predicates" and "VG-SGG-with-attri.h5" in str(err.value)


def test_a_dicts_file_that_is_not_an_object_is_an_error(tmp_path):
    root = tiny(tmp_path)
    (root / "VG-SGG-dicts.json").write_text("5")
    with pytest.raises(DataError, match="expected a JSON object, got int"):
        vg_stats(root)
