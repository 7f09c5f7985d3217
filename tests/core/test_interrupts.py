"""Disk full, file-size limits, read-only outputs and interrupts end a command with one line,
exit 2 / 130 / 143, and leave no output and no temporary behind; a temporary of a killed run is
removed by the next run into that output.

Each case runs ``tailgraph`` in a subprocess: the file-size limit is a real ``RLIMIT_FSIZE``,
and the interrupt a real signal sent by the process to itself at the worst moment — after the
temporary is complete, before it is renamed into place (the first ``os.replace``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailgraph.io.outputs import remove_stale_temporaries, temporary_name

from ..helpers import write_interchange_case

# runs `tailgraph ARGV`, first limiting output files to LIMIT bytes (0: no limit) and, when
# SIGNAL is set, sending it to itself on the first os.replace (a temporary about to be renamed);
# an errno name instead of a signal makes that os.replace fail with the error
RUNNER = """
import os, resource, signal, sys
limit, sig = int(sys.argv[1]), sys.argv[2]
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if sig.startswith("E"):  # an I/O error (errno name) when the finished temporary is renamed
    import errno
    def replace(src, dst, *a, **k):
        code = getattr(errno, sig)
        raise OSError(code, os.strerror(code), str(dst))
    os.replace = replace
elif sig:
    real = os.replace
    def replace(src, dst, *a, **k):
        os.kill(os.getpid(), getattr(signal, sig))
        return real(src, dst, *a, **k)
    os.replace = replace
from tailgraph.cli import main
sys.exit(main(sys.argv[3:]))
"""


def run(argv: list[str], limit: int = 0, sig: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(limit), sig, *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return write_interchange_case(tmp_path_factory.mktemp("io"), 3, 40, "predcls")


def commands(case: Path, out: Path) -> dict[str, tuple[list[str], Path]]:
    """Output-writing commands that finish in seconds, and the output each writes."""
    gt, pred = str(case / "gt.json"), str(case / "pred.json")
    evaluate = ["evaluate", "--protocol", "vg", "--mode", "predcls", "--gt", gt, "--pred", pred]
    return {
        "convert h5": (["convert", pred, str(out / "p.h5")], out / "p.h5"),
        "convert npz": (["convert", pred, str(out / "p.npz")], out / "p.npz"),
        "convert json": (["convert", str(case / "p.h5"), str(out / "p.json")], out / "p.json"),
        "evaluate --json": ([*evaluate, "--json", str(out / "m.json")], out / "m.json"),
        "synth": (
            ["synth", "--train", "30", "--test", "5", "--size", "64", "--out", str(out / "d")],
            out / "d",
        ),
        "report": (
            ["report", str(case / "metrics.json"), "--out", str(out / "r")],
            out / "r",
        ),
    }


@pytest.fixture(scope="module")
def binary(case):
    r = run(["convert", str(case / "pred.json"), str(case / "p.h5")])
    assert r.returncode == 0, r.stderr
    evaluate = ["evaluate", "--protocol", "vg", "--mode", "predcls", "--gt", str(case / "gt.json")]
    r = run([*evaluate, "--pred", str(case / "pred.json"), "--json", str(case / "m.json")])
    assert r.returncode == 0, r.stderr
    metrics = json.loads((case / "m.json").read_text())
    (case / "metrics.json").write_text(json.dumps({"models": {"model": metrics}}))


@pytest.mark.parametrize(
    "name", ["convert h5", "convert npz", "convert json", "evaluate --json", "synth", "report"]
)
def test_a_file_size_limit_is_one_line_naming_the_output(case, binary, tmp_path, name):
    argv, target = commands(case, tmp_path)[name]
    r = run(argv, limit=512)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "file too large" in lines[0], r.stderr
    # the output is named, not its temporary (synth: the file inside it that hit the limit)
    assert str(target) in lines[0] and ".tmp-" not in lines[0], lines[0]
    assert not target.exists() and hidden(tmp_path) == [], hidden(tmp_path)


@pytest.mark.parametrize(
    "name,error",
    [
        *((n, "ENOSPC") for n in ("convert h5", "convert npz", "evaluate --json", "report")),
        ("convert json", "EACCES"),
        ("synth", "EACCES"),
        ("synth", "EROFS"),
    ],
)
def test_an_io_error_on_the_output_is_one_line_naming_it(case, binary, tmp_path, name, error):
    """Disk full, permission denied, read-only file system: one line naming the output, exit 2,
    no output and no temporary left."""
    import errno

    from tailgraph.io.outputs import OUTPUT_ERRNOS

    argv, target = commands(case, tmp_path)[name]
    r = run(argv, sig=error)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert OUTPUT_ERRNOS[getattr(errno, error)] in lines[0], lines[0]
    assert str(target) in lines[0] and ".tmp-" not in lines[0], lines[0]
    assert not target.exists() and hidden(tmp_path) == [], hidden(tmp_path)


@pytest.mark.parametrize(
    "name", ["convert h5", "convert npz", "convert json", "evaluate --json", "synth", "report"]
)
@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupt_is_one_line_and_leaves_nothing(case, binary, tmp_path, name, sig, code):
    argv, target = commands(case, tmp_path)[name]
    r = run(argv, sig=sig)
    assert r.returncode == code, r.stderr
    assert r.stderr.strip().splitlines() == [f"tailgraph {argv[0]}: interrupted"] or (
        sig == "SIGTERM" and r.stderr.strip().endswith("interrupted (SIGTERM)")
    ), r.stderr
    assert "Traceback" not in r.stderr
    assert not target.exists() and hidden(tmp_path) == [], hidden(tmp_path)


def test_the_commands_write_their_outputs_when_left_alone(case, binary, tmp_path):
    """The control of the two tests above: the same commands, unlimited and uninterrupted."""
    for name, (argv, target) in commands(case, tmp_path).items():
        r = run(argv)
        assert r.returncode == 0, (name, r.stderr)
        assert target.exists() and hidden(tmp_path) == [], (name, hidden(tmp_path))


def test_a_killed_runs_temporary_is_removed_by_the_next_run(case, tmp_path):
    out = tmp_path / "d"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = out.with_name(f".d.tmp-{child.pid}")
        alive.mkdir()  # the temporary of a process that still runs: left alone
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
        stale = out.with_name(f".d.tmp-{dead}")
        stale.mkdir()
        (stale / "half.jpg").write_bytes(b"\xff\xd8")
        # a file temporary of a gone process (another output's is not touched)
        stale_file = tmp_path / f".m.json.tmp-{dead}"
        stale_file.write_text("{")
        r = run(["synth", "--train", "5", "--test", "2", "--size", "64", "--out", str(out)])
        assert r.returncode == 0, r.stderr
        assert not stale.exists() and alive.exists() and stale_file.exists()
        assert remove_stale_temporaries(tmp_path / "m.json") == [stale_file]
    finally:
        child.kill()
        child.wait()


def test_a_reused_pid_does_not_keep_an_old_temporary(tmp_path):
    """A temporary older than the live process that now has its pid is stale."""
    target = tmp_path / "x.json"
    tmp = target.with_name(f".x.json.tmp-{os.getppid()}")
    tmp.write_text("{")
    os.utime(tmp, (time.time() - 10 * 365 * 86400,) * 2)  # made long before our parent started
    assert remove_stale_temporaries(target) == [tmp]
    mine = temporary_name(target)
    mine.write_text("{")
    assert remove_stale_temporaries(target) == [] and mine.exists()


@pytest.mark.parametrize(
    "name", ["convert h5", "convert npz", "convert json", "evaluate --json", "synth", "report"]
)
def test_an_output_under_a_regular_file_is_one_line(case, binary, tmp_path, name):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv, target = commands(case, blocker)[name]
    r = run(argv)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr and str(blocker) in err[0], err
    assert blocker.read_text() == "x"


# the feature caches written during `fit`: under a file-size limit each write is an OSError
# naming the cache file (EFBIG), never a crash inside HDF5 / torch's writer, and nothing is left
CACHE_WRITER = """
import errno, resource, signal, sys
import numpy as np, torch
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from pathlib import Path
out = Path(sys.argv[1])
kind = sys.argv[2]
try:
    if kind == "shards":
        from tailgraph.io.feature_shards import FeatureShards
        shards = FeatureShards(out / "shards", flush_every=1000)
        for i in range(8):
            shards.put(f"k{i}", np.random.rand(64, 64).astype(np.float32))
        shards.flush()
    elif kind == "segments":
        from tailgraph.datamodules.tracklet_segments import save_segments
        from tailgraph.structures import Segment, Tracklet
        t = Tracklet(0, np.tile(np.array([[0, 0, 5, 5]], dtype=np.float32), (4, 1)), "1")
        seg = Segment("v", 0, 4, [t], torch.rand(1, 5000), torch.zeros(1, dtype=torch.int64),
                      torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0, 3),
                      torch.zeros(0, dtype=torch.bool), torch.zeros(1))
        save_segments(out / "seg.pt", [seg])
    else:
        from tailgraph.datamodules.feature_cache import build_cache
        from tailgraph.modeling.roi import PixelFeatures
        from tailgraph.structures import GraphBatch, SceneGraph
        gs = [SceneGraph(f"im{i}", 64, 48, [[0, 0, 20, 20]], [1], []) for i in range(40)]
        fx = PixelFeatures(last_stage="layer1", out_dim=64, frozen_trunk=True,
                           union_features=False)
        b = [GraphBatch(gs[i : i + 8], torch.randn(8, 3, 48, 64), torch.ones(8))
             for i in range(0, 40, 8)]
        build_cache(out / "cache.h5", fx, b)
except OSError as exc:
    print(exc.errno == errno.EFBIG, exc.filename)
    sys.exit(3)
"""


@pytest.mark.parametrize("kind", ["shards", "segments", "object_cache"])
def test_a_feature_cache_that_cannot_be_written_is_an_error_naming_it(tmp_path, kind):
    r = subprocess.run(
        [sys.executable, "-c", CACHE_WRITER, str(tmp_path), kind],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 3, r.stderr[-2000:]
    efbig, name = r.stdout.split()
    assert efbig == "True"
    target = {"shards": "shards/shard_00000.h5", "segments": "seg.pt"}.get(kind, "cache.h5")
    assert name == str(tmp_path / target)
    assert "HDF5" not in r.stderr and "Traceback" not in r.stderr
    left = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert left == [], left


def test_a_running_process_is_not_taken_for_a_reused_pid_when_looked_up_late(tmp_path):
    # /proc/PID's own timestamps are those of its (possibly repeated, after dentry eviction)
    # lookup: the start time comes from /proc/PID/stat, and a process looked up seconds after
    # its temporary was made still counts as older than the temporary
    from tailgraph.io.outputs import _is_stale, _process_start_time

    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    after = time.time()
    try:
        start = _process_start_time(child.pid)
        assert start is not None and before - 1.5 <= start <= after + 1.5  # btime: whole seconds
        temp = tmp_path / f".d.tmp-{child.pid}"
        temp.mkdir()
        time.sleep(1.6)
        assert not _is_stale(child.pid, temp.stat().st_mtime)
    finally:
        child.kill()
        child.wait()


def test_a_checkpoint_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    # a tiny run's checkpoint is ~5 MB and its other files a few kB: under a 1 MB file-size
    # limit Lightning's checkpoint write fails, and `fit` ends with one line naming the .ckpt
    from ..engine.test_recipes import tiny_recipe

    recipe = tiny_recipe("vg_predcls_motifs", tmp_path)
    first = run(["fit", "--config", str(recipe)])  # writes the data set and a normal run
    assert first.returncode == 0, first.stderr[-2000:]
    assert list((tmp_path / "out").rglob("*.ckpt"))
    root = tmp_path / "limited"
    r = run(["fit", "--config", str(recipe), "--trainer.default_root_dir", str(root)], 1_000_000)
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr
    assert line.startswith("tailgraph fit: cannot write "), line
    assert line.endswith(".ckpt: file too large (a file-size limit?)"), line
    assert str(root) in line
    assert [p for p in root.rglob("*.ckpt*")] == [] and not [
        p for p in root.rglob(".*") if "tmp" in p.name
    ]


def test_fit_and_predict_end_with_one_line_on_an_interrupt(tmp_path):
    """Ctrl-C during `fit` (at a checkpoint's rename), `test` (at its metrics.json's rename)
    and `predict` (at its output folder's rename): "interrupted", exit 130; fit's run keeps
    only complete checkpoints (resumable), test and predict leave nothing. Lightning alone
    would print its own message and exit 1."""
    import torch

    from tailgraph.cli import main as tailgraph_main
    from tailgraph.datamodules.vg import SynthVGDataModule
    from tailgraph.io.interchange import write_ground_truth

    from ..helpers import tiny_vg_recipe

    recipe = tiny_vg_recipe(tmp_path / "r.yaml", tmp_path / "data", tmp_path / "ok", epochs=2)
    assert tailgraph_main(["fit", "--config", str(recipe)]) == 0  # the data set and a checkpoint
    root = tmp_path / "interrupted"
    r = run(["fit", "--config", str(recipe), "--trainer.default_root_dir", str(root)], sig="SIGINT")
    assert r.returncode == 130, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == "tailgraph fit: interrupted", r.stderr
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr
    assert hidden(root) == []
    for ck in root.rglob("*.ckpt"):  # what is there is whole
        assert "state_dict" in torch.load(ck, map_location="cpu", weights_only=True)
    ckpt = next((tmp_path / "ok").rglob("last.ckpt"))
    tested = tmp_path / "tested"  # test: interrupted at its metrics.json's rename
    argv = ["test", "--config", str(recipe), "--ckpt_path", str(ckpt)]
    r = run([*argv, "--trainer.default_root_dir", str(tested)], sig="SIGINT")
    assert r.returncode == 130, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == "tailgraph test: interrupted", r.stderr
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr
    assert not list(tested.rglob("metrics.json")) and hidden(tested) == []
    dm = SynthVGDataModule(root=str(tmp_path / "data"), num_train=40, num_test=12, image_size=96)
    dm.setup("test")
    graphs = dm.eval_graphs("test")[:3]
    images = tmp_path / "images"
    images.mkdir()
    for g in graphs:
        (images / f"{g.image_id}.jpg").write_bytes(open(g.image_path, "rb").read())
    write_ground_truth(tmp_path / "boxes.json", graphs, dm.vocab, "vg")
    out = tmp_path / "pred"
    argv = ["predict", "--ckpt", str(ckpt), "--input", str(images), "--out", str(out)]
    argv += ["--boxes", str(tmp_path / "boxes.json")]
    r = run(argv, sig="SIGINT")
    assert r.returncode == 130, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == ["tailgraph predict: interrupted"], r.stderr
    assert not out.exists() and hidden(tmp_path) == [], hidden(tmp_path)
    assert run(argv).returncode == 0 and (out / "scene_graphs.json").is_file()  # the control


def test_demo_ends_with_one_line_on_an_interrupt_and_leaves_no_empty_output(tmp_path):
    """Ctrl-C during `demo` (at the first rename: its synth-vg folder landing): "interrupted",
    exit 130, no temporary, and the --out folder the demo made is gone again."""
    out = tmp_path / "demo"
    argv = ["demo", "--train", "20", "--test", "5", "--epochs", "1", "--stage-epochs", "1", "1"]
    r = run([*argv, "--out", str(out)], sig="SIGINT")
    assert r.returncode == 130, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == "tailgraph demo: interrupted", r.stderr
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr
    assert not out.exists() and hidden(tmp_path) == [], hidden(tmp_path)
    mine = tmp_path / "kept"  # a folder the user made is left in place, its contents untouched
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    r = run([*argv, "--out", str(mine)], sig="SIGTERM")
    assert r.returncode == 143, r.stderr[-2000:]
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and hidden(tmp_path) == []
