import json

import numpy as np
import pytest

from tailgraph.cli import main as tailgraph_main
from tailgraph.cli.report import main
from tailgraph.errors import DataError
from tailgraph.viz.report import results_table, write_report


def doc():
    return {
        "task": "predcls",
        "predicates": ["on", "has", "riding"],
        "train_counts": [100, 10, 1],
        "models": {
            "FREQ": {"R@50": 0.5, "mR@50": 0.25, "per_predicate_R@50": [0.75, 0.0, 0.0]},
            "pixel": {"R@50": 0.625, "mR@50": 0.5, "per_predicate_R@50": [0.75, 0.5, 0.25]},
        },
        "timings": {"fit": 12.5},
    }


def test_results_table_formats_percentages():
    header, rows = results_table(doc()["models"])
    assert header == ["model", "R@50", "mR@50"]
    assert rows == [["FREQ", "50.00", "25.00"], ["pixel", "62.50", "50.00"]]


def test_write_report_files(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(doc()))
    files = write_report(path)
    md = files["markdown"].read_text()
    assert "| pixel | 62.50 | 50.00 |" in md
    # per-predicate table sorted by training count, values in percent
    assert md.index("| on | 100 |") < md.index("| riding | 1 |")
    assert "| riding | 1 | 0.0 | 25.0 |" in md
    assert files["plot"].stat().st_size > 1000
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in files["html"].read_text()


def test_report_bad_input(tmp_path, capsys):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        write_report(bad)
    bad.write_text(json.dumps({"task": "x"}))
    assert main([str(bad)]) == 2
    assert "models" in capsys.readouterr().err


@pytest.mark.parametrize("n", [2, 4])
def test_a_per_predicate_list_of_another_length_is_an_error(tmp_path, capsys, n):
    """A per-predicate list that does not match ``predicates`` (here nested as AG's ``with``)
    cannot be aligned: an error naming the model and the field, not a page without it."""
    d = doc()
    d["models"]["pixel"] = {"with": {"R@50": 0.5, "per_predicate_R@50": [0.5] * n}}
    f = tmp_path / "metrics.json"
    f.write_text(json.dumps(d))
    assert main([str(f), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'pixel'" in err[0] and "with.per_predicate_R@50" in err[0], err
    assert f"{n} values for the 3 predicates" in err[0]
    assert not (tmp_path / "o").exists()


def test_report_rows_for_nested_and_ap_protocols(tmp_path):
    ag = {
        "with": {"R@20": 0.5, "mR@20": 0.25, "per_predicate_R@50": [0.5, 0.5]},
        "semi": {"R@20": 0.4, "mR@20": 0.2},
        "num_frames": 3,
    }
    oi = {"mAP": 0.5, "mAP*": 0.6, "mAP_FG": 0.7, "mAP*_FG": 0.8, "per_predicate_AP": {"at": 0.5}}
    doc = {
        "task": "predcls",
        "models": {"STTran": ag, "negmine": oi},
        "predicates": ["a", "b"],
        "train_counts": [3, 1],
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(doc))
    files = write_report(path)
    md = files["markdown"].read_text()
    assert "| STTran (with) | –" not in md and "STTran (with)" in md and "STTran (semi)" in md
    assert "| negmine |" in md and "50.00 | 60.00 | 70.00 | 80.00" in md


def test_report_bad_runs_are_one_line_errors(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    d = doc()
    d["logs"] = {"FREQ": "metrics.csv"}
    (good / "metrics.json").write_text(json.dumps(d))
    (good / "metrics.csv").write_text("epoch,step,train/loss\n0,1,0.5\n0,2,oops\n")
    missing = tmp_path / "missing"
    missing.mkdir()
    bad_counts = tmp_path / "bad_counts"
    bad_counts.mkdir()
    (bad_counts / "metrics.json").write_text(json.dumps({**doc(), "train_counts": [1, -2, 3]}))
    bad_parent = tmp_path / "bad_parent"
    bad_parent.mkdir()
    (bad_parent / "metrics.json").write_text(
        json.dumps({**doc(), "coarse_parent": ["nope", None, None]})
    )
    for args, names in (
        ([str(good), "--out", str(tmp_path / "o")], ["metrics.csv", "line 3", "train/loss"]),
        ([str(good), str(missing), "--out", str(tmp_path / "o")], ["missing", "not found"]),
        ([str(bad_counts), "--out", str(tmp_path / "o")], ["train_counts"]),
        ([str(bad_parent), "--out", str(tmp_path / "o")], ["coarse_parent"]),
    ):
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        for n in names:
            assert n in err, (n, err)
        assert not (tmp_path / "o").exists()
    # K is range-checked by the command line (1-10000) before anything is read
    with pytest.raises(SystemExit) as exit_:
        tailgraph_main(["report", str(good), "-k", "0", "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "-k" in err and "[1, 10000]" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "value,needle",
    [
        ("0.5", "expected a number"),
        (float("nan"), "not finite"),
        (float("inf"), "not finite"),
        (-3.0, "not a fraction"),
        (5.0, "not a fraction"),
        (True, "expected a number"),
    ],
)
def test_report_refuses_metric_values_that_are_not_fractions(value, needle, tmp_path, capsys):
    for where in ("R@50", "per_predicate_R@50"):
        m = {"R@50": 0.5, "mR@50": 0.2, "per_predicate_R@50": [0.1, 0.2]}
        if where == "R@50":
            m["R@50"] = value
        else:
            m["per_predicate_R@50"] = [0.1, value]
        doc = {"predicates": ["a", "b"], "train_counts": [5, 1], "models": {"m": m}}
        f = tmp_path / "metrics.json"
        f.write_text(json.dumps(doc))
        assert main([str(f), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err and where in err, err
        assert str(f) in err and "sample 'm'" in err, err
        assert not (tmp_path / "o").exists()


def test_report_refuses_to_compare_runs_of_different_predicate_lists(tmp_path, capsys):
    runs = []
    for name, preds in (("a", ["x", "y"]), ("b", ["x", "y", "z"])):
        d = tmp_path / name
        d.mkdir()
        m = {"R@50": 0.5, "per_predicate_R@50": [0.5] * len(preds)}
        doc = {"predicates": preds, "train_counts": [3] * len(preds), "models": {"m": m}}
        (d / "metrics.json").write_text(json.dumps(doc))
        runs.append(str(d))
    assert main([*runs, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "predicates differ" in err, err
    assert not (tmp_path / "o").exists()


def test_report_of_20000_predicates_draws_a_bounded_chart(tmp_path):
    """Linear in the predicates: the chart draws at most MAX_DRAWN_PREDICATES bars a model."""
    from PIL import Image

    from tailgraph.viz.plots import MAX_DRAWN_PREDICATES

    n = 20000
    rng = np.random.default_rng(0)
    doc = {
        "predicates": [f"p{i}" for i in range(n)],
        "train_counts": rng.integers(0, 1000, n).tolist(),
        "models": {"m": {"R@50": 0.5, "per_predicate_R@50": rng.random(n).round(3).tolist()}},
    }
    f = tmp_path / "metrics.json"
    f.write_text(json.dumps(doc))
    files = write_report(f, tmp_path / "o")
    width = Image.open(files["plot"]).size[0]
    assert width <= 110 * (0.28 * MAX_DRAWN_PREDICATES + 2) + 1, width


def test_curves_of_many_runs_have_one_distinct_entry_per_run_and_metric(tmp_path, monkeypatch):
    from tailgraph.viz import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: figures.append(fig) or out)
    curves = {
        f"run{r}": {
            "train/loss": [(0, 1.0), (10, 0.5)],
            "val/R@50": [(0, 0.2), (1, 0.3)],
            "val/mR@50": [(0, 0.1), (1, 0.2)],
        }
        for r in range(12)
    }
    plots.plot_training_curves(curves, tmp_path / "c.png")
    ax_loss, ax_val = figures[0].axes
    for ax, n in ((ax_loss, 12), (ax_val, 24)):
        lines = ax.get_lines()
        assert len(lines) == n and len(ax.get_legend().get_texts()) == n
        looks = {(str(ln.get_color()), ln.get_linestyle(), ln.get_marker()) for ln in lines}
        assert len(looks) == n  # no two entries look alike
    # one colour per run: a run's R@50 and mR@50 share it
    colours = {ln.get_label(): str(ln.get_color()) for ln in ax_val.get_lines()}
    assert colours["run3: R@50"] == colours["run3: mR@50"] != colours["run4: R@50"]


def test_confusion_maps_are_one_per_row_with_groups_outlined(tmp_path, monkeypatch):
    from tailgraph.viz import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: figures.append(fig) or out)
    preds = ["on", "sitting_on", "lying_on", "has", "wearing"]
    parents = [None, "on", "on", None, "has"]
    m = np.eye(6).tolist()
    plots.plot_hierarchy_confusion([("A", m), ("B", m), ("C", m)], preds, parents, tmp_path / "x")
    fig = figures[0]
    maps = [ax for ax in fig.axes if ax.get_images()]
    assert len(maps) == 3
    assert len({round(ax.get_position().x0, 3) for ax in maps}) == 1  # stacked, not side by side
    assert fig.get_figwidth() <= 11.0
    assert [(p.get_x(), p.get_width()) for p in maps[0].patches] == [(-0.5, 3), (2.5, 2)]


def test_html_per_predicate_table_is_sortable(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(doc()))
    page = write_report(path)["html"].read_text()
    assert "<table class='sortable'>" in page and "table.sortable th" in page
    assert page.count("<script>") == 1
