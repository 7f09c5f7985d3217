"""Open Images exhaustive-pair protocol: AP / mAP / mAP* / mAP_FG by hand."""

import numpy as np
import pytest

from tailgraph.errors import DataError
from tailgraph.evaluation.openimages import average_precision, evaluate_oi

PREDS = ["__background__", "on", "under", "holds"]


def test_average_precision_hand_computed():
    # ranked labels: 1, 0, 1, 0 -> precision 1, .5, .667, .5 ; recall .5, .5, 1, 1
    ap = average_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0], bool))
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # a positive never scored halves the reachable recall
    assert average_precision(np.array([0.9]), np.array([True]), num_positives=2) == pytest.approx(
        0.5
    )
    assert np.isnan(average_precision(np.array([0.5]), np.array([False])))


def test_map_variants_by_hand():
    gt = {
        "image_id": 1,
        "boxes": [[0, 0, 1, 1]] * 3,
        "labels": [1, 2, 3],
        "relations": [[0, 1, 1], [1, 2, 2], [2, 0, 3]],
    }
    pairs = [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    s = np.array(
        [
            [0.1, 0.8, 0.05, 0.05],  # (0,1) on: positive on
            [0.1, 0.9, 0.0, 0.0],  # (0,2) background, scores 'on' highest -> FP ranked first for on
            [0.7, 0.1, 0.1, 0.1],  # (1,0) background
            [0.1, 0.2, 0.6, 0.1],  # (1,2) under: positive under
            [0.1, 0.1, 0.1, 0.7],  # (2,0) holds: positive holds
            [0.5, 0.1, 0.3, 0.1],  # (2,1) background
        ]
    )
    pred = {
        "image_id": 1,
        "boxes": gt["boxes"],
        "labels": gt["labels"],
        "label_scores": [1, 1, 1],
        "pairs": pairs,
        "predicate_scores": s,
    }
    m = evaluate_oi([gt], [pred], PREDS)
    # on: ranking .9 (bg), .8 (pos) -> AP = .5 ; under: .6 pos first -> 1 ; holds: .7 first -> 1
    assert m["per_predicate_AP"] == {"on": 0.5, "under": 1.0, "holds": 1.0}
    assert m["mAP"] == pytest.approx(2.5 / 3)
    assert m["mAP*"] == pytest.approx(0.75)  # without 'under'
    # FG only: pairs (0,1), (1,2), (2,0): 'on' ranks its positive first -> 1
    assert m["per_predicate_AP_FG"]["on"] == 1.0 and m["mAP_FG"] == 1.0 and m["mAP*_FG"] == 1.0
    assert m["num_pairs"] == 6 and m["num_positive_pairs"] == 3


def test_missing_pair_and_bad_input():
    gt = {
        "image_id": 1,
        "boxes": [[0, 0, 1, 1]] * 2,
        "labels": [1, 2],
        "relations": [[0, 1, 1], [1, 0, 3]],
    }
    pred = {
        "image_id": 1,
        "boxes": gt["boxes"],
        "labels": [1, 2],
        "label_scores": [1, 1],
        "pairs": [[0, 1]],
        "predicate_scores": [[0.1, 0.9, 0.0, 0.0]],
    }
    m = evaluate_oi([gt], [pred], PREDS)
    assert m["per_predicate_AP"]["holds"] == 0.0  # its pair was never scored
    assert m["per_predicate_AP"]["under"] is None  # no positive: not in the mean
    assert m["mAP"] == pytest.approx(0.5)
    with pytest.raises(DataError, match="scored twice"):
        evaluate_oi(
            [gt],
            [{**pred, "pairs": [[0, 1], [0, 1]], "predicate_scores": [[0.1, 0.9, 0, 0]] * 2}],
            PREDS,
        )
    with pytest.raises(DataError, match="NaN"):
        evaluate_oi([gt], [{**pred, "predicate_scores": [[np.nan, 0.9, 0, 0]]}], PREDS)


def test_evaluate_command_oi(tmp_path):
    import json

    from tailgraph.cli.evaluate import main as evaluate_main
    from tailgraph.io.interchange import write_ground_truth, write_predictions
    from tailgraph.structures import Predictions, SceneGraph
    from tailgraph.vocab import Vocabulary

    vocab = Vocabulary(["__background__", "a", "b"], PREDS)
    g = SceneGraph(1, 10, 10, [[0, 0, 1, 1], [2, 2, 3, 3]], [1, 2], [[0, 1, 1]])
    write_ground_truth(tmp_path / "gt.json", [g], vocab, protocol="oi")
    write_predictions(
        tmp_path / "p.json",
        [
            Predictions(
                1,
                g.boxes,
                g.labels,
                [1, 1],
                [[0, 1], [1, 0]],
                [[0, 0.9, 0, 0.1], [0.5, 0.4, 0, 0.1]],
            )
        ],
    )
    assert (
        evaluate_main(
            [
                "--protocol",
                "oi",
                "--gt",
                str(tmp_path / "gt.json"),
                "--pred",
                str(tmp_path / "p.json"),
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["mAP"] == 1.0 and out["per_predicate_AP"]["under"] is None
    argv = ["--protocol", "oi", "--gt", str(tmp_path / "gt.json"), "--pred"]
    argv += [str(tmp_path / "p.json"), "--json", str(tmp_path / "o2.json")]
    assert evaluate_main(argv + ["--ignore", "undr"]) == 2  # a typo is not silently ignored
    assert not (tmp_path / "o2.json").exists()
    assert evaluate_main(argv + ["--ignore", "under", "on"]) == 0
