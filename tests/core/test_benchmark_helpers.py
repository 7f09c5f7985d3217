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


def test_dll_score_diagnostics_follow_the_scores(tmp_path):
    """``bench_dll.score_diagnostics`` on a model that scores every ground-truth predicate of a
    pair above the rest (all targets win; the non-target mass is what the model gives) and on
    its inverse (no target wins)."""
    import torch
    from bench_dll import score_diagnostics

    from tests.helpers import tiny_vrd_tracklets

    dm = tiny_vrd_tracklets(tmp_path / "vrd", 12, 16, 64, tracklets="gt")
    dm.setup("fit")

    class Scores:
        def __init__(self, sign):
            self.sign = sign

        def eval(self):
            return self

        def model(self, batch):
            return {"refined_logits": self.sign * (batch.targets * 10.0 - 5.0)}

    good = score_diagnostics(Scores(1.0), dm)
    thirds = [t for t in ("head", "body", "tail") if f"{t}_target_top1" in good]
    assert "head" in thirds and len(thirds) >= 2
    assert all(good[f"{t}_target_top1"] == 1.0 for t in thirds)
    assert good["head_target_p"] == pytest.approx(float(torch.sigmoid(torch.tensor(5.0))))
    assert good["nontarget_p"] == pytest.approx(float(torch.sigmoid(torch.tensor(-5.0))))
    assert good["background_top_p"] == pytest.approx(good["nontarget_p"])
    assert good["head_lost_to_header"] != good["head_lost_to_header"]  # nothing lost: NaN
    bad = score_diagnostics(Scores(-1.0), dm)
    assert all(bad[f"{t}_target_top1"] == 0.0 for t in thirds)
    assert all(0.0 <= bad[f"{t}_lost_to_header"] <= 1.0 for t in thirds)
