"""The pure helpers of the benchmark scripts that their published tables rest on."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))


def test_thirds_split_predicates_by_training_count():
    from bench_video_methods import thirds

    counts = {"a": 90, "b": 50, "c": 40, "d": 10, "e": 5, "f": 1}
    recall = {"a": 1.0, "b": 0.8, "c": 0.6, "d": 0.4, "e": 0.2, "f": 0.0}
    assert thirds(recall, counts) == pytest.approx({"head": 0.9, "body": 0.5, "tail": 0.1})
    # a list is in the vocabulary order of ``counts``; unknown names are left out
    assert thirds(list(recall.values()), counts) == thirds(recall, counts)
    assert thirds({"zz": 1.0}, counts) == {}


def test_hostile_trials_are_classified_by_exit_code_lines_and_leftovers(tmp_path):
    from bench_hostile_inputs import classify, verdict

    t = {"expect": "error", "output": "out.json"}
    assert classify(t, 2, "tailgraph x: file f: bad\n", tmp_path) == "clean"
    assert classify(t, 2, "a warning\ntailgraph x: bad\n", tmp_path).startswith("error, not one")
    assert classify(t, 1, "Traceback (most recent call last):\n ...", tmp_path) == "crash"
    assert classify(t, -11, "", tmp_path) == "crash"  # a signal (segfault)
    (tmp_path / "out.json").write_text("{")
    assert classify(t, 2, "tailgraph x: bad\n", tmp_path) != "clean"  # a partial output left
    assert classify(
        {**t, "expect": "interrupted"}, 130, "tailgraph x: interrupted\n", tmp_path
    ) == ("interrupted, output left")
    assert verdict(t, "clean") and not verdict(t, "read")
    assert verdict({"expect": "ok"}, "read") and not verdict({"expect": "ok"}, "clean")
    assert verdict({"expect": "any"}, "read") and not verdict({"expect": "any"}, "crash")
