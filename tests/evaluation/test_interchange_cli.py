import json

import numpy as np
import pytest

from tailgraph.cli.evaluate import main as evaluate_main
from tailgraph.errors import DataError
from tailgraph.evaluation.vg import evaluate_vg
from tailgraph.io.interchange import (
    read_ground_truth,
    read_predictions,
    write_ground_truth,
    write_predictions,
)
from tailgraph.structures import Predictions, SceneGraph
from tailgraph.vocab import Vocabulary

VOCAB = Vocabulary(["__background__", "a", "b", "c"], ["__background__", "on", "has", "near"])


def data():
    g = SceneGraph(
        "x1",
        100,
        100,
        [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 90, 90]],
        [1, 2, 3],
        [[0, 1, 1], [1, 2, 2]],
    )
    p = Predictions(
        "x1",
        g.boxes,
        g.labels,
        [1, 1, 1],
        [[0, 1], [1, 2], [2, 0]],
        [[0.1, 0.7, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.0, 0.0, 0.0, 1.0]],
    )
    return g, p


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_round_trip(tmp_path, suffix):
    g, p = data()
    write_ground_truth(tmp_path / f"gt{suffix}", [g], VOCAB)
    write_predictions(tmp_path / f"pred{suffix}", [p])
    graphs, vocab, protocol = read_ground_truth(tmp_path / f"gt{suffix}")
    preds = read_predictions(tmp_path / f"pred{suffix}")
    assert protocol == "vg" and vocab.predicates == VOCAB.predicates
    assert graphs[0].relations.tolist() == g.relations.tolist()
    assert np.allclose(preds[0].predicate_scores.numpy(), p.predicate_scores.numpy())


def test_bad_files_name_file_image_and_field(tmp_path):
    g, p = data()
    d = p.to_dict()
    d["predicate_scores"][1][2] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps({"format": "tailgraph-sg/1", "images": [d]}))
    with pytest.raises(DataError) as err:
        read_predictions(tmp_path / "nan.json")
    assert (
        "nan.json" in str(err.value)
        and err.value.sample == "x1"
        and err.value.field == "predicate_scores"
    )
    (tmp_path / "trunc.json").write_text('{"format": "tailgraph-sg/1", "images": [')
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_predictions(tmp_path / "trunc.json")
    (tmp_path / "nokey.json").write_text(
        json.dumps({"format": "tailgraph-sg/1", "images": [{"image_id": "x1"}]})
    )
    with pytest.raises(DataError, match="missing key 'boxes'"):
        read_predictions(tmp_path / "nokey.json")
    gd = g.to_dict()
    gd["labels"] = [1, 2, 9]
    (tmp_path / "gt.json").write_text(
        json.dumps(
            {
                "format": "tailgraph-sg/1",
                "protocol": "vg",
                "object_classes": VOCAB.object_classes,
                "predicates": VOCAB.predicates,
                "images": [gd],
            }
        )
    )
    with pytest.raises(DataError, match="out of range") as err:
        read_ground_truth(tmp_path / "gt.json")
    assert err.value.field == "labels" and "gt.json" in str(err.value)
    (tmp_path / "old.json").write_text(json.dumps({"format": "other", "images": []}))
    with pytest.raises(DataError, match="format"):
        read_predictions(tmp_path / "old.json")


def test_evaluate_command(tmp_path, capsys):
    g, p = data()
    write_ground_truth(tmp_path / "gt.json", [g], VOCAB)
    write_predictions(tmp_path / "pred.json", [p])
    (tmp_path / "zs.json").write_text("[[2, 3, 2]]")
    rc = evaluate_main(
        [
            "--protocol",
            "vg",
            "--mode",
            "predcls",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "pred.json"),
            "--zeroshot",
            str(tmp_path / "zs.json"),
            "--json",
            str(tmp_path / "out.json"),
            "-k",
            "1",
            "2",
        ]
    )
    assert rc == 0
    out = json.loads((tmp_path / "out.json").read_text())
    # ranking: (2,0) near 1.0, (0,1) on .7 (hit), (1,2) on .6 (GT has: miss)
    assert out["R@1"] == 0.0 and out["R@2"] == 0.5
    direct = evaluate_vg([g], [p], ks=(1, 2), zeroshot_triplets=[[2, 3, 2]], num_predicates=4)
    assert out.keys() == direct.keys()
    assert all(out[k] == direct[k] for k in out)
    assert "R " in capsys.readouterr().out
    write_predictions(
        tmp_path / "other.json",
        [Predictions("zz", p.boxes, p.labels, p.label_scores, p.pairs, p.predicate_scores)],
    )
    rc = evaluate_main(
        [
            "--protocol",
            "vg",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "other.json"),
        ]
    )
    assert rc == 2
    assert "no prediction" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option", [["--ignore", "no_such_predicate"], ["--ignore"], ["--attention-softmax"]]
)
def test_an_option_of_another_protocol_is_an_error(tmp_path, capsys, option):
    """``--ignore`` (oi) or ``--attention-softmax`` (ag) given to ``--protocol vg`` would have no
    effect: one line naming the option, exit 2, no metrics file."""
    g, p = data()
    write_ground_truth(tmp_path / "gt.json", [g], VOCAB)
    write_predictions(tmp_path / "pred.json", [p])
    argv = ["--protocol", "vg", "--gt", str(tmp_path / "gt.json"), "--pred",
            str(tmp_path / "pred.json"), "--json", str(tmp_path / "out.json")]  # fmt: skip
    assert evaluate_main(argv + option) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option[0] in err[0], err
    assert not (tmp_path / "out.json").exists()


def test_evaluate_command_on_a_data_set_folder(tmp_path):
    from tailgraph.data.vg import write_vg

    g, p = data()
    write_vg(tmp_path / "ds", {"train": [g], "test": [g]}, VOCAB)
    write_predictions(
        tmp_path / "pred.json",
        [Predictions(1, p.boxes, p.labels, p.label_scores, p.pairs, p.predicate_scores)],
    )
    # image ids of a written VG set are those of the graphs ("x1"); a mismatch is reported
    assert (
        evaluate_main(
            [
                "--protocol",
                "vg",
                "--gt",
                str(tmp_path / "ds"),
                "--format",
                "vg",
                "--pred",
                str(tmp_path / "pred.json"),
            ]
        )
        == 2
    )
    write_predictions(tmp_path / "pred.json", [p])
    assert (
        evaluate_main(
            [
                "--protocol",
                "vg",
                "--gt",
                str(tmp_path / "ds"),
                "--format",
                "vg",
                "--pred",
                str(tmp_path / "pred.json"),
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "o.json").read_text())["R@50"] == 0.5


def test_evaluate_command_action_genome(tmp_path, capsys):
    from tailgraph.evaluation.ag import evaluate_ag

    from .test_ag_metrics import frame, pred, scores_for

    preds_list = [
        "looking_at",
        "not_looking_at",
        "unsure",
        "above",
        "beneath",
        "in_front_of",
        "behind",
        "on_the_side_of",
        "in",
    ]
    preds_list += [f"c{i}" for i in range(17)]
    vocab = Vocabulary(
        ["__background__", "person"] + [f"o{i}" for i in range(2, 8)],
        preds_list,
        predicate_background=False,
    )
    gt = frame()
    g = SceneGraph(gt["image_id"], 100, 100, gt["boxes"], gt["labels"], gt["relations"])
    write_ground_truth(tmp_path / "gt.json", [g], vocab, protocol="ag")
    p = pred("v/1", scores_for(True))
    write_predictions(
        tmp_path / "pred.json",
        [
            Predictions(
                p["image_id"],
                p["boxes"],
                p["labels"],
                p["label_scores"],
                p["pairs"],
                p["predicate_scores"],
            )
        ],
    )
    assert (
        evaluate_main(
            [
                "--protocol",
                "ag",
                "--gt",
                str(tmp_path / "gt.json"),
                "--pred",
                str(tmp_path / "pred.json"),
                "--json",
                str(tmp_path / "o.json"),
                "-k",
                "1",
                "3",
                "6",
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "o.json").read_text())
    assert set(out) == {"with", "semi", "no"}
    assert (
        out["with"]["R@3"]
        == pytest.approx(evaluate_ag([gt], [p], ks=(1, 3, 6))["with"]["R@3"])
        == pytest.approx(3 / 7)
    )
    assert "semi" in capsys.readouterr().out
    # a vg ground truth is refused for the ag protocol
    write_ground_truth(tmp_path / "vg.json", [g], vocab, protocol="vg")
    assert (
        evaluate_main(
            [
                "--protocol",
                "ag",
                "--gt",
                str(tmp_path / "vg.json"),
                "--pred",
                str(tmp_path / "pred.json"),
            ]
        )
        == 2
    )


@pytest.mark.parametrize("kind", ["vg", "ag", "oi", "vidvrd"])
def test_convert_writes_a_data_sets_ground_truth(tmp_path, kind, capsys):
    """``tailgraph convert --format K --root DIR --split test OUT.{json,h5}``: the split as
    ``evaluate --gt DIR --format K`` reads it, in either format."""
    import torch

    from tailgraph.cli import main as tailgraph_main
    from tailgraph.data.vidvrd import to_groundtruth
    from tailgraph.io.binformat import read_vidvrd_binary
    from tailgraph.protocols import DATA_KINDS
    from tailgraph.protocols.base import load_ground_truth

    row = DATA_KINDS[kind]
    root = tmp_path / kind
    row.generate(root, num_train=2, num_test=2, seed=0, image_size=64)
    for ext in ("json", "h5"):
        out = tmp_path / f"gt.{ext}"
        argv = ["convert", "--format", kind, "--root", str(root), "--split", "test", str(out)]
        assert tailgraph_main(argv) == 0, capsys.readouterr().err
        if kind == "vidvrd":
            videos, vocab = row.reader(str(root), "test", layout_only=True)
            want = to_groundtruth(videos)
            if ext == "json":
                doc = json.loads(out.read_text())
                got, preds = doc["videos"], doc["predicates"]
            else:
                got, meta = read_vidvrd_binary(str(out), "vidvrd_ground_truth")
                preds = meta["predicates"]
            assert preds == vocab.predicates[1:] and sorted(got) == sorted(want)
            for vid in want:
                assert [list(r["triplet"]) for r in got[vid]] == [
                    list(r["triplet"]) for r in want[vid]
                ]
                assert [list(r["duration"]) for r in got[vid]] == [
                    list(r["duration"]) for r in want[vid]
                ]
            continue
        want, vocab = load_ground_truth(root, row.interchange, row.reader, "test")
        got, gvocab = load_ground_truth(out, row.interchange)
        assert gvocab.object_classes == vocab.object_classes
        assert gvocab.predicates == vocab.predicates

        def field(g, name):
            v = g[name] if isinstance(g, dict) else getattr(g, name)
            return v if name == "image_id" else torch.as_tensor(v)

        assert [str(field(g, "image_id")) for g in got] == [
            str(field(g, "image_id")) for g in want
        ] and want
        for a, b in zip(got, want):
            assert torch.allclose(field(a, "boxes").float(), field(b, "boxes").float())
            for name in ("labels", "relations"):
                assert torch.equal(field(a, name).long(), field(b, name).long())
    capsys.readouterr()
    assert (
        tailgraph_main(["convert", "--format", kind, "--root", str(tmp_path / "no"), "x.json"]) == 2
    )
    assert "--root" in capsys.readouterr().err
    assert tailgraph_main(["convert", "--root", str(root), str(tmp_path / "y.json")]) == 2
    assert "--format" in capsys.readouterr().err


def test_ground_truth_is_foreground_named_and_not_empty(tmp_path):
    g, _ = data()
    write_ground_truth(tmp_path / "gt.json", [g], VOCAB)
    good = json.loads((tmp_path / "gt.json").read_text())

    def bad(edit, text, field):
        doc = json.loads(json.dumps(good))
        edit(doc)
        (tmp_path / "b.json").write_text(json.dumps(doc))
        with pytest.raises(DataError, match=text) as err:
            read_ground_truth(tmp_path / "b.json")
        assert err.value.field == field and "b.json" in str(err.value)

    bad(lambda d: d["images"][0]["labels"].__setitem__(1, 0), "labelled background", "labels")
    bad(lambda d: d["images"][0]["boxes"][2].__setitem__(2, 1e12), "far outside", "boxes")
    bad(lambda d: d["images"][0]["boxes"][0].__setitem__(0, -250), "far outside", "boxes")
    bad(lambda d: d["images"][0]["relations"][0].__setitem__(2, 0), "background predicate",
        "relations")  # fmt: skip
    bad(lambda d: d["images"][0]["relations"][0].__setitem__(1, 1.6), "integers", "relations")
    bad(lambda d: d["images"][0].__setitem__("width", True), "integers", "width/height")
    bad(lambda d: d.__setitem__("predicates", "on has"), "list of names", "predicates")
    bad(lambda d: d.__setitem__("predicates", ["__background__", 3]), "strings", "predicates")
    bad(lambda d: d.__setitem__("images", []), "no image", "images")
