"""Open Images VRD reader on CSVs written here in the challenge layout."""

import csv

import pytest

from tailgraph.data.openimages import COLUMNS, load_oi, stats
from tailgraph.errors import DataError


def write_oi(root, rows, split="train"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "class-descriptions.csv").write_text("/m/man,Man\n/m/guitar,Guitar\n/m/table,Table\n")
    (root / "image-sizes.csv").write_text("ImageID,width,height\nimg1,200,100\nimg2,50,50\n")
    with open(root / f"{split}-annotations-vrd.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return root


ROWS = [
    ["img1", "/m/man", "/m/guitar", 0.1, 0.5, 0.0, 1.0, 0.3, 0.6, 0.5, 0.9, "plays"],
    ["img1", "/m/man", "/m/table", 0.1, 0.5, 0.0, 1.0, 0.5, 1.0, 0.6, 1.0, "at"],
    ["img1", "/m/guitar", "/m/attr_wooden", 0.3, 0.6, 0.5, 0.9, 0.3, 0.6, 0.5, 0.9, "is"],
    ["img2", "/m/table", "/m/man", 0.0, 1.0, 0.0, 0.5, 0.2, 0.4, 0.5, 1.0, "under"],
]


def test_reader_objects_relations_attributes(tmp_path):
    root = write_oi(tmp_path, ROWS)
    graphs, vocab = load_oi(root, "train")
    assert vocab.object_classes == ["__background__", "Man", "Guitar", "Table"]
    assert vocab.predicates[0] == "__background__" and len(vocab.predicates) == 10
    g1 = {g.image_id: g for g in graphs}["img1"]
    assert g1.num_boxes == 3  # man (shared by two rows), guitar, table
    assert g1.boxes[0].tolist() == pytest.approx([20, 0, 100, 100])
    assert g1.labels.tolist() == [1, 2, 3]
    assert g1.relations.tolist() == [
        [0, 1, vocab.predicate_index("plays")],
        [0, 2, vocab.predicate_index("at")],
    ]
    assert g1.extras["attributes"] == [
        (1, "/m/attr_wooden")
    ]  # 'is' rows are attributes, not relations
    assert vocab.predicate_counts[vocab.predicate_index("under")] == 1
    s = stats(root)
    assert (
        s["splits"]["train"]["relations"] == 4
        and s["filtered"]["splits"]["train"]["relations"] == 3
    )
    assert s["predicate_counts"]["is"] == 1 and "is" not in s["filtered"]["predicate_counts"]


@pytest.mark.parametrize(
    "row, text, field",
    [
        (
            ["img1", "/m/man", "/m/guitar", 0.5, 0.1, 0.0, 1.0, 0.3, 0.6, 0.5, 0.9, "plays"],
            "min <= max",
            "XMin1/XMax1",
        ),
        (
            ["img1", "/m/cat", "/m/guitar", 0.1, 0.5, 0.0, 1.0, 0.3, 0.6, 0.5, 0.9, "plays"],
            "unknown class MID",
            "LabelName1",
        ),
        (
            ["img1", "/m/man", "/m/guitar", 0.1, 0.5, 0.0, 1.0, 0.3, 0.6, 0.5, 0.9, "eats"],
            "unknown relationship",
            "RelationshipLabel",
        ),
        (
            ["img9", "/m/man", "/m/guitar", 0.1, 0.5, 0.0, 1.0, 0.3, 0.6, 0.5, 0.9, "plays"],
            "image size unknown",
            "width/height",
        ),
    ],
)
def test_bad_rows(tmp_path, row, text, field):
    root = write_oi(tmp_path, [row])
    with pytest.raises(DataError, match=text) as err:
        load_oi(root, "train")
    assert err.value.field == field


def test_missing_columns(tmp_path):
    root = write_oi(tmp_path, [])
    (root / "train-annotations-vrd.csv").write_text("ImageID,LabelName1\nimg1,/m/man\n")
    with pytest.raises(DataError, match="expected columns"):
        load_oi(root, "train")


def test_image_sizes_from_images_that_do_not_decode_name_the_file(tmp_path):
    """Without an image-sizes.csv entry the size is read from the image; one that does not
    decode is an error naming it and its sample (was PIL's traceback)."""
    from PIL import Image

    root = write_oi(tmp_path, ROWS)
    (root / "image-sizes.csv").unlink()
    (root / "images").mkdir()
    Image.new("RGB", (200, 100)).save(root / "images" / "img1.jpg")
    (root / "images" / "img2.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as err:
        load_oi(root, "train")
    assert "img2.jpg" in str(err.value) and "'img2'" in str(err.value)
    Image.new("RGB", (50, 50)).save(root / "images" / "img2.jpg")
    graphs, _ = load_oi(root, "train")
    assert sorted((g.width, g.height) for g in graphs) == [(50, 50), (200, 100)]


def test_stats_never_leaves_a_split_out(tmp_path):
    """A split that is there and cannot be read is an error naming its file; a missing root
    or a root without any split is an error (no empty statistics)."""
    root = write_oi(tmp_path, ROWS)
    assert set(stats(root)["splits"]) == {"train"}
    csv_path = next(root.glob("train-annotations-vrd.csv"))
    text = csv_path.read_text()
    for broken in (text[: len(text) // 2].rsplit(",", 1)[0], "", "\xff\xfe bad"):
        csv_path.write_bytes(broken.encode("latin-1", "replace"))
        with pytest.raises(DataError, match="train-annotations-vrd.csv"):
            stats(root)
    csv_path.unlink()
    csv_path.mkdir()
    with pytest.raises(DataError, match="not a readable file"):
        stats(root)
    csv_path.rmdir()
    csv_path.symlink_to(csv_path)  # a link loop
    with pytest.raises(DataError, match="not a readable file"):
        stats(root)
    csv_path.unlink()
    with pytest.raises(DataError, match="no split found"):
        stats(root)
    with pytest.raises(DataError, match="not found"):
        stats(tmp_path / "nowhere")
