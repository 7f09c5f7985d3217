"""Nothing partial, nothing clobbered: every command-line output goes to a temporary name and is
renamed into place, an existing output is replaced only with --overwrite, and a failure leaves
nothing behind (metrics, reports, generated data sets)."""

import json
from pathlib import Path

import numpy as np
import pytest

from tailgraph.cli import main as tailgraph_main

from ..evaluation.test_binformat import _gt_doc, _pred_doc
from ..evaluation.test_vg_metrics import random_case


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def case(tmp_path):
    gts, preds = random_case(np.random.default_rng(1), 5, "predcls")
    (tmp_path / "gt.json").write_text(json.dumps(_gt_doc(gts)))
    (tmp_path / "pred.json").write_text(json.dumps(_pred_doc(preds)))
    return tmp_path


def _evaluate(case, *more):
    return tailgraph_main(
        [
            "evaluate",
            "--protocol",
            "vg",
            "--mode",
            "predcls",
            "--gt",
            str(case / "gt.json"),
            "--pred",
            str(case / "pred.json"),
            *more,
        ]
    )


def test_evaluate_json_refuses_to_clobber_and_directories(case, capsys):
    out = case / "m.json"
    assert _evaluate(case, "--json", str(out)) == 0
    first = out.read_text()
    out.write_text("keep me")
    capsys.readouterr()
    assert _evaluate(case, "--json", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists (pass --overwrite" in err[0] and "m.json" in err[0]
    assert out.read_text() == "keep me"
    assert _evaluate(case, "--json", str(out), "--overwrite") == 0
    assert out.read_text() == first
    (case / "adir").mkdir()
    assert _evaluate(case, "--json", str(case / "adir")) == 2
    assert "is a directory" in capsys.readouterr().err
    assert _leftovers(case) == []


def test_evaluate_failure_writes_no_metrics(case, capsys):
    doc = json.loads((case / "pred.json").read_text())
    doc["images"][0]["predicate_scores"][0][0] = "NaN"
    (case / "pred.json").write_text(json.dumps(doc))
    assert _evaluate(case, "--json", str(case / "m.json")) == 2
    assert not (case / "m.json").exists() and _leftovers(case) == []


def test_report_refuses_existing_files_and_stages_all_of_them(tmp_path, capsys):
    from tailgraph.viz.report import REPORT_FILES

    doc = {
        "task": "predcls",
        "predicates": ["__background__", "a", "b"],
        "train_counts": [0, 10, 1],
        "models": {"m": {"R@50": 0.5, "mR@50": 0.25, "per_predicate_R@50": [0.0, 0.5, 0.0]}},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    assert tailgraph_main(["report", str(tmp_path)]) == 0
    written = {n for n in REPORT_FILES.values() if (tmp_path / n).is_file()}
    assert written == {"report.html", "report.md", "per_predicate_recall.png", "long_tail.png"}
    before = (tmp_path / "report.html").read_text()
    (tmp_path / "report.html").write_text("mine")
    capsys.readouterr()
    assert tailgraph_main(["report", str(tmp_path)]) == 2
    assert "exists (pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "report.html").read_text() == "mine"
    assert tailgraph_main(["report", str(tmp_path), "--overwrite"]) == 0
    assert (tmp_path / "report.html").read_text() == before
    assert _leftovers(tmp_path) == []


def test_report_failure_leaves_nothing(tmp_path, monkeypatch):
    import tailgraph.viz.plots as plots

    doc = {
        "task": "predcls",
        "predicates": ["__background__", "a"],
        "train_counts": [0, 3],
        "models": {"m": {"R@50": 0.5, "per_predicate_R@50": [0.0, 0.5]}},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(doc))

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(plots, "plot_per_predicate_recall", broken)
    with pytest.raises(RuntimeError):
        tailgraph_main(["report", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def _generator_failing_half_way(out, **kwargs):
    (Path(out) / "partial.txt").write_text("half")
    raise RuntimeError("interrupted")


def test_synth_out_is_atomic_and_replaced_only_with_overwrite(tmp_path, monkeypatch, capsys):
    out = tmp_path / "synth"
    args = [
        "synth",
        "--variant",
        "synth-ag",
        "--out",
        str(out),
        "--train",
        "2",
        "--test",
        "1",
        "--size",
        "32",
    ]
    assert tailgraph_main(args) == 0
    assert (out / "annotations" / "person_bbox.pkl").is_file()
    (out / "mine.txt").write_text("x")
    capsys.readouterr()
    assert tailgraph_main(args) == 2
    assert "not empty (pass --overwrite" in capsys.readouterr().err and (out / "mine.txt").is_file()
    assert tailgraph_main([*args, "--overwrite"]) == 0
    assert not (out / "mine.txt").exists() and (out / "annotations" / "person_bbox.pkl").is_file()
    # a generator that fails half-way: the old folder stays, no temporary is left
    import dataclasses

    from tailgraph.protocols import DATA_KINDS

    half = f"{__name__}:_generator_failing_half_way"
    monkeypatch.setitem(DATA_KINDS, "ag", dataclasses.replace(DATA_KINDS["ag"], generate_ref=half))
    with pytest.raises(RuntimeError):
        tailgraph_main([*args, "--overwrite"])
    assert (out / "annotations" / "person_bbox.pkl").is_file() and not (
        out / "partial.txt"
    ).exists()
    assert _leftovers(tmp_path) == []


def test_data_module_generation_is_atomic_and_never_writes_into_foreign_folders(tmp_path):
    from tailgraph.data.synthetic import generate_into
    from tailgraph.errors import DataError

    root = tmp_path / "ag"

    def fail(out):
        (out / "annotations").mkdir()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_into(root, "annotations/person_bbox.pkl", fail)
    assert not root.exists() and _leftovers(tmp_path) == []
    root.mkdir()
    (root / "notes.txt").write_text("someone's")
    with pytest.raises(DataError, match="no annotations/person_bbox.pkl"):
        generate_into(root, "annotations/person_bbox.pkl", fail)
    assert (root / "notes.txt").read_text() == "someone's"


def test_a_generated_root_is_reused_only_with_the_settings_it_was_generated_with(tmp_path):
    from tailgraph.data.synthetic import SYNTH_RECORD
    from tailgraph.datamodules.vidvrd import VidVRDDataModule
    from tailgraph.errors import DataError

    root = tmp_path / "vrd"
    kw = {"root": str(root), "synth_train": 3, "synth_test": 2, "synth_size": 32}
    opts = {"write_frames": False, "min_frames": 4, "max_frames": 6}
    VidVRDDataModule(**kw, synth_options=opts).prepare_data()
    recorded = json.loads((root / SYNTH_RECORD).read_text())
    assert recorded == {"num_train": 3, "num_test": 2, "image_size": 32, "seed": 0, **opts}
    VidVRDDataModule(**kw, synth_options=opts).prepare_data()  # the same settings: reused
    for change, field in (
        ({"synth_train": 5}, "synth.num_train"),
        ({"synth_options": {**opts, "max_step": 0.25}}, "synth.max_step"),
        ({"synth_seed": 1}, "synth.seed"),
    ):
        with pytest.raises(DataError, match="was generated with") as err:
            VidVRDDataModule(**{**kw, "synth_options": opts, **change}).prepare_data()
        assert err.value.field == field and str(root) in str(err.value)
    # reading the folder without generating (synth_train 0) is not checked
    VidVRDDataModule(root=str(root)).prepare_data()
