import json

import pytest

from tailgraph.engine.report import main, results_table, write_report
from tailgraph.errors import DataError


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
