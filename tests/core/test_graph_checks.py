"""Ground truth read as numpy arrays (what ``tailgraph evaluate`` reads, without torch) is
checked exactly as :class:`SceneGraph` checks it: the same values for a good file, the same
one-line error for a bad one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tailgraph.errors import DataError
from tailgraph.io.interchange import FORMAT, read_ground_truth

GOOD = {
    "image_id": "a",
    "width": 100,
    "height": 80,
    "boxes": [[0, 0, 10, 10], [5, 5, 20.5, 30]],
    "labels": [1, 2],
    "relations": [[0, 1, 1], [1, 0, 2]],
}

BAD = [
    ("labels", [1.6, 2]),
    ("labels", [True, 2]),
    ("labels", [[1, 2]]),
    ("labels", [1, 9]),
    ("labels", [0, 1]),
    ("labels", [1]),
    ("boxes", [[0, 0, 10, 10], [5, 5, float("nan"), 30]]),
    ("boxes", [[0, 0, 10, 10], [25, 5, 20, 30]]),
    ("boxes", [[0, 0, 10, 10], [5, 5, 1e12, 30]]),
    ("boxes", [[0, 0, 10], [5, 5, 20, 30]]),
    ("boxes", [[0, 0, 10, 10], [5, 5, 20, "x"]]),
    ("relations", [[0, 1, 0]]),
    ("relations", [[0, 2, 1]]),
    ("relations", [[0, 1, 7]]),
    ("relations", [[0, 1, -1]]),
    ("relations", [[0, 1]]),
    ("relations", [[0, 1, 1.5]]),
    ("width", 100.0),
    ("width", True),
    ("height", 0),
]


def _write(tmp_path, image):
    path = tmp_path / "gt.json"
    doc = {
        "format": FORMAT,
        "protocol": "vg",
        "object_classes": ["__background__", "cat", "dog"],
        "predicates": ["__background__", "on", "near"],
        "images": [image],
    }
    path.write_text(json.dumps(doc))
    return path


def test_a_good_file_reads_the_same_values_as_arrays_and_as_scene_graphs(tmp_path):
    path = _write(tmp_path, {**GOOD, "video_id": "v", "frame_id": "000001"})
    graphs, vocab, protocol = read_ground_truth(path)
    dicts, vocab2, protocol2 = read_ground_truth(path, arrays=True)
    g, d = graphs[0], dicts[0]
    assert protocol == protocol2 == "vg" and vocab.predicates == vocab2.predicates
    assert d["boxes"].dtype == np.float32 and d["labels"].dtype == d["relations"].dtype == np.int64
    assert np.array_equal(d["boxes"], g.boxes.numpy())
    assert np.array_equal(d["labels"], g.labels.numpy())
    assert np.array_equal(d["relations"], g.relations.numpy())
    assert (d["width"], d["height"], d["video_id"]) == (g.width, g.height, g.extras["video_id"])


@pytest.mark.parametrize("field,value", BAD, ids=[f"{f}={v!r}" for f, v in BAD])
def test_a_bad_image_is_the_same_error_in_both_readers(tmp_path, field, value):
    path = _write(tmp_path, {**GOOD, field: value})
    with pytest.raises(DataError) as as_graphs:
        read_ground_truth(path)
    with pytest.raises(DataError) as as_arrays:
        read_ground_truth(path, arrays=True)
    assert str(as_arrays.value) == str(as_graphs.value)
    assert as_arrays.value.file == str(path) and as_arrays.value.sample == "a"
