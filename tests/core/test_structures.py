import numpy as np
import pytest
import torch

from tailgraph.errors import DataError
from tailgraph.structures import Predictions, SceneGraph, Task, VideoSceneGraph
from tailgraph.vocab import Vocabulary


def graph(**kw):
    args = dict(
        image_id="img7",
        width=100,
        height=80,
        boxes=[[0, 0, 10, 10], [5, 5, 50, 60]],
        labels=[1, 2],
        relations=[[0, 1, 3]],
    )
    args.update(kw)
    return SceneGraph(**args)


def test_scene_graph_converts_types_and_shapes():
    g = graph(relations=[])
    assert g.boxes.dtype == torch.float32 and g.boxes.shape == (2, 4)
    assert g.labels.dtype == torch.int64
    assert g.relations.shape == (0, 3)
    assert g.num_boxes == 2 and g.num_relations == 0
    assert g.to_dict()["boxes"][1] == [5.0, 5.0, 50.0, 60.0]


@pytest.mark.parametrize(
    "kw, field, text",
    [
        (dict(boxes=[[0, 0, 10, 10], [50, 5, 40, 60]]), "boxes", "x2<x1"),
        (dict(boxes=[[0, 0, 10, 10], [5, 5, float("nan"), 60]]), "boxes", "not finite"),
        (dict(boxes=[[0, 0, 10], [5, 5, 50]]), "boxes", "shape"),
        (dict(labels=[1, -2]), "labels", "negative"),
        (dict(labels=[1]), "labels", "shape"),
        (dict(relations=[[0, 2, 1]]), "relations", "outside"),
        (dict(relations=[[0, 1, -1]]), "relations", "negative"),
        (dict(relations=[[0, 1]]), "relations", "shape"),
        (dict(width=0), "width/height", "positive"),
        (dict(boxes=[["a", "b", "c", "d"]], labels=[1]), "boxes", "numeric"),
    ],
)
def test_scene_graph_rejects_bad_input_naming_sample_and_field(kw, field, text):
    with pytest.raises(DataError) as err:
        graph(**kw)
    assert err.value.field == field
    assert err.value.sample == "img7"
    assert "img7" in str(err.value) and text in str(err.value)


def test_validate_ranges_against_vocabulary():
    g = graph()
    g.validate(num_classes=3, num_predicates=4)
    with pytest.raises(DataError, match="out of range"):
        g.validate(num_classes=2)
    with pytest.raises(DataError, match="predicate 3 out of range"):
        g.validate(num_predicates=3)


def test_predictions_validation():
    p = Predictions(
        "a",
        [[0, 0, 1, 1], [0, 0, 2, 2]],
        [1, 2],
        [1.0, 0.5],
        [[0, 1], [1, 0]],
        np.full((2, 4), 0.25),
    )
    assert p.predicate_scores.shape == (2, 4)
    with pytest.raises(DataError, match="NaN") as err:
        Predictions(
            "a", [[0, 0, 1, 1], [0, 0, 2, 2]], [1, 2], [1.0, 0.5], [[0, 1]], [[0.1, float("nan")]]
        )
    assert err.value.field == "predicate_scores"
    with pytest.raises(DataError, match="outside"):
        Predictions("a", [[0, 0, 1, 1]], [1], [1.0], [[0, 1]], [[0.5, 0.5]])
    with pytest.raises(DataError, match="one score row per pair"):
        Predictions(
            "a", [[0, 0, 1, 1], [0, 0, 2, 2]], [1, 2], [1.0, 0.5], [[0, 1], [1, 0]], [[0.5, 0.5]]
        )
    empty = Predictions("e", [], [], [], [], [])
    assert empty.pairs.shape == (0, 2) and empty.boxes.shape == (0, 4)


def test_task_enum():
    assert Task.parse("SGCls") is Task.SGCLS
    assert Task.PREDCLS.uses_gt_labels and not Task.SGCLS.uses_gt_labels
    assert Task.SGCLS.uses_gt_boxes and not Task.SGDET.uses_gt_boxes
    with pytest.raises(DataError, match="unknown task"):
        Task.parse("detect")


def test_video_scene_graph_frame_ids():
    v = VideoSceneGraph("v1", [graph(), graph()])
    assert v.frame_ids == [0, 1] and len(v) == 2
    with pytest.raises(DataError, match="frame ids"):
        VideoSceneGraph("v1", [graph()], frame_ids=["a", "b"])


def test_vocabulary_roundtrip_and_metadata_checks():
    v = Vocabulary(
        ["__background__", "cat", "dog"],
        ["__background__", "on", "parked on"],
        predicate_counts=[0, 30, 10],
        coarse_parent=[-1, -1, 1],
        name="t",
    )
    assert v.num_classes == 3 and v.num_predicates == 3
    assert v.foreground_predicates == [1, 2]
    assert v.predicate_frequency() == [0.0, 0.75, 0.25]
    assert v.predicate_index("parked on") == 2
    again = Vocabulary.from_dict(v.to_dict())
    assert again == v
    with pytest.raises(DataError, match="entries for 3 predicates"):
        Vocabulary(["a"], ["x", "y", "z"], predicate_counts=[1, 2])
    with pytest.raises(DataError, match="parent"):
        Vocabulary(["a"], ["x", "y"], coarse_parent=[-1, 5])
    with pytest.raises(DataError, match="unknown predicate"):
        v.predicate_index("flying")


@pytest.mark.parametrize(
    "change, field, text",
    [
        ({"labels": [1, 2.7]}, "labels", "expected integers, got 2.7"),
        ({"labels": [True, 1]}, "labels", "booleans"),
        ({"labels": [[1, 2]]}, "labels", "flat list"),
        ({"relations": [[0, 1.6, 1]]}, "relations", "expected integers, got 1.6"),
        ({"boxes": [[0, 0, 1j, 1], [0, 0, 2, 2]]}, "boxes", "complex"),
        ({"boxes": [[0, 0, "1", 1], [0, 0, 2, 2]]}, "boxes", "numeric"),
        ({"width": True}, "width/height", "integers"),
    ],
)
def test_scene_graph_coerces_nothing(change, field, text):
    """Integers are integers (1.0 may pass, 1.6 may not), booleans and complex numbers are not
    numbers, labels are a flat list."""
    from tailgraph.errors import DataError
    from tailgraph.structures import SceneGraph

    args = {
        "image_id": "x",
        "width": 10,
        "height": 10,
        "boxes": [[0, 0, 5, 5], [1, 1, 6, 6]],
        "labels": [1, 2],
        "relations": [[0, 1, 1]],
    }
    args.update(change)
    with pytest.raises(DataError, match=text) as err:
        SceneGraph(**args)
    assert err.value.field == field
    ok = SceneGraph("y", 10, 10, [[0, 0, 5, 5]], [1.0], [[0, 0, 2.0]])
    assert ok.labels.dtype == torch.int64 and ok.relations.tolist() == [[0, 0, 2]]


def test_predictions_coerce_nothing():
    from tailgraph.errors import DataError
    from tailgraph.structures import Predictions

    base = dict(
        image_id=1,
        boxes=[[0, 0, 5, 5], [1, 1, 6, 6]],
        labels=[1, 2],
        label_scores=[1.0, 1.0],
        pairs=[[0, 1]],
        predicate_scores=[[0.1, 0.9]],
    )
    for change, text in (
        ({"pairs": [[0, 1.6]]}, "integers"),
        ({"labels": [1.5, 2]}, "integers"),
        ({"predicate_scores": [[]]}, "no column"),
        ({"label_scores": [[1.0, 1.0]]}, "flat list"),
    ):
        with pytest.raises(DataError, match=text):
            Predictions(**{**base, **change})
