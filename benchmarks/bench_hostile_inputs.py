"""A hostile-input campaign through the command line: each trial is one corrupt data set, file,
argument, resource limit or signal, run as ``tailgraph ...`` in a child process, and classified:

* ``clean`` — exit 2 with one line on stderr (the project's error), no output file left;
* ``read`` — exit 0 (right only where the input is valid: trials marked ``expect ok``);
* ``interrupted`` — exit 130 / 143 with one line, no partial output (the signal trials);
* ``crash`` — anything else: a traceback, another exit code, a signal, a time-out.

Children are forked from this process after ``tailgraph`` and torch are imported, so a trial
costs its command, not an interpreter start. Peak memory is the child's maximum RSS (it includes
the resident pages it shares with this process; this process's own peak is printed as the
baseline).

    .venv/bin/python benchmarks/bench_hostile_inputs.py --json OUT [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from tailgraph.cli import main as tailgraph_main  # noqa: E402

TRIALS: list[dict] = []


def trial(category: str, name: str, expect: str = "error", timeout: float = 120.0, **kw):
    """Register ``fn(case_dir) -> argv`` as one trial."""

    def wrap(fn: Callable[[Path], list[str]]):
        TRIALS.append(
            {"category": category, "name": name, "expect": expect, "timeout": timeout,
             "fn": fn, **kw}
        )  # fmt: skip
        return fn

    return wrap


BASE: dict[str, Path] = {}  # variant -> pristine synthetic set


def copy(variant: str, case: Path) -> Path:
    dst = case / variant
    shutil.copytree(BASE[variant], dst)
    return dst


# ---------------------------------------------------------------- readers: dropped or coerced


def _oi(case: Path, edit: Callable[[Path], None]) -> list[str]:
    root = copy("synth-oi", case)
    edit(root / "train-annotations-vrd.csv")
    return ["stats", "--format", "oi", "--root", str(root)]


for _name, _edit in {
    "truncated train CSV": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "non-UTF-8 train CSV": lambda p: p.write_bytes(b"\xff\xfe" + p.read_bytes()),
    "short row": lambda p: p.write_text(p.read_text() + "00000001,/m/synth001\n"),
    "header-less train CSV": lambda p: p.write_text(p.read_text().split("\n", 1)[1]),
    "a directory as the train CSV": lambda p: (p.unlink(), p.mkdir()),
}.items():
    trial("stats oi: a split that cannot be read", _name)(
        lambda case, e=_edit: _oi(case, e)  # type: ignore[misc]
    )


@trial("stats: the root", "a root that does not exist (oi)")
def _(case):
    return ["stats", "--format", "oi", "--root", str(case / "nowhere")]


@trial("stats: the root", "a root that does not exist (vidvrd)")
def _(case):
    return ["stats", "--format", "vidvrd", "--root", str(case / "nowhere")]


@trial("stats: the root", "a symlink loop as the root (vidvrd)")
def _(case):
    os.symlink(case / "loop", case / "loop")
    return ["stats", "--format", "vidvrd", "--root", str(case / "loop")]


def _vg(case: Path, edit: Callable[[h5py.File, Path], None]) -> list[str]:
    root = copy("synth-vg", case)
    with h5py.File(root / "VG-SGG-with-attri.h5", "r+") as f:
        edit(f, root)
    return ["stats", "--format", "vg", "--root", str(root)]


def _set(f: h5py.File, key: str, index, value) -> None:
    a = f[key][...]
    a[index] = value
    f[key][...] = a


for _name, _edit in {
    "first box index -1, last valid": lambda f, r: _set(f, "img_to_first_box", 0, -1),
    "first relation index -1, last valid": lambda f, r: _set(f, "img_to_first_rel", 0, -1),
    "a negative predicate": lambda f, r: _set(f, "predicates", (0, 0), -3),
    "a predicate of 10^9": lambda f, r: _set(f, "predicates", (0, 0), 10**9),
    "a box coordinate of 1e9 (int32 store)": lambda f, r: _set(f, "boxes_1024", (0, 2), 10**9),
    "a background (0) object label": lambda f, r: _set(f, "labels", (0, 0), 0),
}.items():
    trial("VG reader", _name)(lambda case, e=_edit: _vg(case, e))  # type: ignore[misc]


@trial("VG reader", "duplicate image ids")
def _(case):
    root = copy("synth-vg", case)
    data = json.loads((root / "image_data.json").read_text())
    data[1]["image_id"] = data[0]["image_id"]
    (root / "image_data.json").write_text(json.dumps(data))
    return ["stats", "--format", "vg", "--root", str(root)]


@trial("VG reader", "image_data.json is an integer")
def _(case):
    root = copy("synth-vg", case)
    (root / "image_data.json").write_text("7")
    return ["stats", "--format", "vg", "--root", str(root)]


def _vrd(case: Path, edit: Callable[[dict], None], split: str = "train") -> list[str]:
    root = copy("synth-vrd", case)
    path = sorted((root / split).glob("*.json"))[0]
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return ["stats", "--format", "vidvrd", "--root", str(root)]


def _dup_tid(d):
    d["subject/objects"].append(dict(d["subject/objects"][0]))


def _far_box(d):
    frame = next(fr for fr in d["trajectories"] if fr)
    frame[0]["bbox"]["xmax"] = 1e12


def _inverted(d):
    frame = next(fr for fr in d["trajectories"] if fr)
    b = frame[0]["bbox"]
    b["xmin"], b["xmax"] = b["xmax"] + 5, b["xmin"]


for _name, _edit in {
    "duplicate track id": _dup_tid,
    "a box far outside the frame": _far_box,
    "an inverted box": _inverted,
    "a fractional width": lambda d: d.update(width=float(d["width"]) + 0.5),
    "a float frame number": lambda d: d["relation_instances"][0].update(begin_fid=1.6),
    "a number as the predicate": lambda d: d["relation_instances"][0].update(predicate=7),
}.items():
    trial("VidVRD reader", _name)(lambda case, e=_edit: _vrd(case, e))  # type: ignore[misc]


@trial("VidVRD reader", "a video listed twice")
def _(case):
    root = copy("synth-vrd", case)
    path = sorted((root / "train").glob("*.json"))[0]
    shutil.copy(path, root / "train" / "copy.json")
    return ["stats", "--format", "vidvrd", "--root", str(root)]


def _ag(case: Path, edit: Callable[[dict, dict], None]) -> list[str]:
    root = copy("synth-ag", case)
    ann = root / "annotations"
    objects = pickle.loads((ann / "object_bbox_and_relationship.pkl").read_bytes())
    persons = pickle.loads((ann / "person_bbox.pkl").read_bytes())
    key = sorted(k for k, v in objects.items() if any(o.get("visible") for o in v))[0]
    edit(objects[key], persons[key])
    (ann / "object_bbox_and_relationship.pkl").write_bytes(pickle.dumps(objects))
    (ann / "person_bbox.pkl").write_bytes(pickle.dumps(persons))
    return ["stats", "--format", "ag", "--root", str(root)]


def _ag_obj(objs: list) -> dict:
    return next(o for o in objs if o.get("visible"))


for _name, _edit in {
    "a box far outside the frame": lambda o, p: _ag_obj(o).update(bbox=(1e12, 1.0, 5.0, 5.0)),
    "a NaN box": lambda o, p: _ag_obj(o).update(bbox=(float("nan"), 1.0, 5.0, 5.0)),
    "an unknown predicate": lambda o, p: _ag_obj(o).update(spatial_relationship=["inside_of"]),
    "a fractional frame size": lambda o, p: p.update(bbox_size=(120.5, 100)),
    "a string as the class": lambda o, p: _ag_obj(o).update({"class": 3}),
}.items():
    trial("AG reader", _name)(lambda case, e=_edit: _ag(case, e))  # type: ignore[misc]


# ---------------------------------------------------------------- evaluate


def _eval_case(case: Path, edit: Callable[[dict, dict], None] | None) -> list[str]:
    from tests.helpers import write_interchange_case

    write_interchange_case(case, 0, 6, "predcls")
    gt, pred = (json.loads((case / n).read_text()) for n in ("gt.json", "pred.json"))
    if edit is not None:
        edit(gt, pred)
    (case / "gt.json").write_text(json.dumps(gt))
    (case / "pred.json").write_text(json.dumps(pred))
    out = case / "metrics.json"
    return ["evaluate", "--protocol", "vg", "--mode", "predcls", "--gt", str(case / "gt.json"),
            "--pred", str(case / "pred.json"), "--json", str(out)]  # fmt: skip


def _with(doc: dict, key: str) -> list:
    """``key`` of the first image whose ``key`` is not empty."""
    return next(im[key] for im in doc["images"] if len(im[key]))


trial("evaluate (vg)", "a valid case", expect="ok")(lambda case: _eval_case(case, None))

for _name, _edit in {
    "a float pair index 1.6": lambda g, p: _with(p, "pairs")[0].__setitem__(0, 1.6),
    "a float GT label 2.7": lambda g, p: g["images"][0]["labels"].__setitem__(0, 2.7),
    "a boolean width": lambda g, p: g["images"][0].update(width=True),
    "a GT box labelled background": lambda g, p: g["images"][0]["labels"].__setitem__(0, 0),
    "a GT relation labelled background": lambda g, p: _with(g, "relations")[0].__setitem__(2, 0),
    "a string as the predicate list": lambda g, p: g.update(predicates="on"),
    "a GT with no images": lambda g, p: g.update(images=[]),
    "a GT box at 1e12": lambda g, p: g["images"][0]["boxes"][0].__setitem__(2, 1e12),
    "a NaN prediction score": lambda g, p: _with(p, "predicate_scores")[0].__setitem__(
        1, float("nan")
    ),
    "duplicate GT image ids": lambda g, p: g["images"][1].update(
        image_id=g["images"][0]["image_id"]
    ),
}.items():
    trial("evaluate (vg)", _name)(lambda case, e=_edit: _eval_case(case, e))  # type: ignore[misc]


@trial("evaluate (vg)", "an unknown --ignore name")
def _(case):
    return [*_eval_case(case, None), "--ignore", "no_such_predicate"]


@trial("evaluate (vg)", "--json under a regular file")
def _(case):
    argv = _eval_case(case, None)
    (case / "file").write_text("x")
    return [*argv[:-1], str(case / "file" / "m.json")]


# ---------------------------------------------------------------- arguments and recipes


for _argv, _expect in (
    (["--train", "-1"], "error"),
    (["--size", "0"], "error"),
    (["--size", "200000"], "error"),
    (["--test", "2.5"], "error"),
    (["--test", "1e1"], "ok"),  # an integral value written as a float: 10
):
    trial("synth arguments", " ".join(_argv), expect=_expect)(
        lambda case, a=_argv: ["synth", "--variant", "synth-vg", "--out", str(case / "o"), *a]
    )


@trial("demo arguments", "--train -5")
def _(case):
    return ["demo", "--train", "-5", "--out", str(case / "o")]


@trial("recipes", "a YAML alias bomb", timeout=60)
def _(case):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 20)]
    (case / "bomb.yaml").write_text("\n".join(lines) + "\n")
    return ["fit", "--config", str(case / "bomb.yaml")]


@trial("recipes", "a recipe that is a list")
def _(case):
    (case / "r.yaml").write_text("- 1\n- 2\n")
    return ["fit", "--config", str(case / "r.yaml")]


# ---------------------------------------------------------------- report


def _report(case: Path, metrics: dict) -> list[str]:
    run = case / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    return ["report", str(run), "--out", str(case / "rep")]


_GOOD = {"R@50": 0.5, "mR@50": 0.2, "per_predicate_R@50": [0.5, 0.1, 0.0]}


def _doc(**model) -> dict:
    return {"task": "predcls", "predicates": ["on", "has", "riding"], "train_counts": [9, 3, 1],
            "models": {"m": {**_GOOD, **model}}}  # fmt: skip


trial("report inputs", "a valid run", expect="ok")(lambda case: _report(case, _doc()))
for _name, _m in {
    "a metric that is a string": _doc(**{"R@50": "high"}),
    "a NaN metric": _doc(**{"R@50": float("nan")}),
    "an infinite metric": _doc(**{"mR@50": float("inf")}),
    "a recall of 500 %": _doc(**{"R@50": 5.0}),
    "a recall of -300 %": _doc(**{"R@50": -3.0}),
    "per-predicate list longer than the predicates": _doc(**{"per_predicate_R@50": [0.1] * 4}),
}.items():
    trial("report inputs", _name)(lambda case, m=_m: _report(case, m))  # type: ignore[misc]


@trial("report inputs", "20,000 predicates (bounded time and memory)", expect="any", timeout=120)
def _(case):
    names = [f"p{i}" for i in range(20000)]
    rng = np.random.default_rng(0)
    return _report(
        case,
        {"predicates": names, "train_counts": rng.integers(0, 1000, 20000).tolist(),
         "models": {"m": {"R@50": 0.5, "per_predicate_R@50": rng.random(20000).tolist()}}},
    )  # fmt: skip


# ---------------------------------------------------------------- predict and checkpoints

CKPT: dict[str, Path] = {}  # "vg": a 1-epoch MOTIFS checkpoint on the small synth-vg


def _images(case: Path, n: int = 3) -> Path:
    folder = case / "images"
    folder.mkdir()
    for f in sorted((BASE["synth-vg"] / "images").iterdir())[:n]:
        shutil.copy(f, folder / f.name)
    return folder


def _boxes(case: Path, images: Path, box: list[float]) -> Path:
    import torch

    classes = torch.load(CKPT["vg"], map_location="cpu", weights_only=False)["tailgraph"]["vocab"][
        "object_classes"
    ]
    doc = {
        f.name: [{"box": [4, 4, 40, 40], "label": classes[1]}, {"box": box, "label": classes[2]}]
        for f in sorted(images.iterdir())
    }
    (case / "boxes.json").write_text(json.dumps(doc))
    return case / "boxes.json"


def _predict(case: Path, box: list[float], out: str = "out") -> list[str]:
    images = _images(case)
    return ["predict", "--ckpt", str(CKPT["vg"]), "--input", str(images), "--boxes",
            str(_boxes(case, images, box)), "--out", str(case / out)]  # fmt: skip


trial("predict", "valid boxes", expect="ok", needs="ckpt")(
    lambda case: _predict(case, [20, 20, 60, 60])
)
trial("predict", "a box far outside its image", needs="ckpt", output="out")(
    lambda case: _predict(case, [20, 20, 1e9, 60])
)
trial("predict", "an inverted box", needs="ckpt", output="out")(
    lambda case: _predict(case, [60, 20, 20, 60])
)


@trial("predict", "a truncated JPEG", needs="ckpt", output="out")
def _(case):
    argv = _predict(case, [20, 20, 60, 60])
    f = sorted((case / "images").iterdir())[0]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    return argv


@trial("predict", "--out under a regular file", needs="ckpt")
def _(case):
    (case / "file").write_text("x")
    return _predict(case, [20, 20, 60, 60], out="file/out")


@trial("predict", "an unknown class name", needs="ckpt", output="out")
def _(case):
    argv = _predict(case, [20, 20, 60, 60])
    doc = json.loads((case / "boxes.json").read_text())
    next(iter(doc.values()))[0]["label"] = "no such class"
    (case / "boxes.json").write_text(json.dumps(doc))
    return argv


@trial("predict", "a truncated checkpoint", needs="ckpt", output="out")
def _(case):
    argv = _predict(case, [20, 20, 60, 60])
    bad = case / "bad.ckpt"
    bad.write_bytes(CKPT["vg"].read_bytes()[:5000])
    argv[argv.index("--ckpt") + 1] = str(bad)
    return argv


@trial("checkpoints", "a MOTIFS checkpoint tested with --model.context Transformer", needs="ckpt")
def _(case):
    # an explicit --model option wins over the checkpoint's model: the weights cannot load
    recipe = Path(__file__).resolve().parents[1] / "configs/synthetic/vg_predcls_motifs.yaml"
    return ["test", "--config", str(recipe), "--data.init_args.root", str(BASE["synth-vg"]),
            "--data.init_args.num_train", "8", "--data.init_args.num_test", "4",
            "--model.context.class_path",
            "tailgraph.modeling.context.transformer.TransformerContext",
            "--ckpt_path", str(CKPT["vg"]),
            "--trainer.default_root_dir", str(case / "r")]  # fmt: skip


@trial("signals", "SIGINT during predict", expect="interrupted", signal_after=6.0, needs="ckpt",
       output="out")  # fmt: skip
def _(case):
    images = case / "images"
    images.mkdir()
    src = sorted((BASE["synth-vg"] / "images").iterdir())
    for i in range(400):  # enough images that the command is still running at the signal
        shutil.copy(src[i % len(src)], images / f"{i:04d}.jpg")
    return ["predict", "--ckpt", str(CKPT["vg"]), "--input", str(images), "--boxes",
            str(_boxes(case, images, [20, 20, 60, 60])), "--out", str(case / "out")]  # fmt: skip


# ---------------------------------------------------------------- disk full, signals


@trial("disk full (RLIMIT_FSIZE 64 KiB)", "synth", fsize=64 * 1024, output="o")
def _(case):
    return ["synth", "--variant", "synth-vg", "--train", "40", "--out", str(case / "o")]


@trial("disk full (RLIMIT_FSIZE 4 KiB)", "convert to .h5", fsize=4 * 1024, output="gt.h5")
def _(case):
    return ["convert", "--format", "vg", "--root", str(copy("synth-vg", case)), "--split",
            "train", str(case / "gt.h5")]  # fmt: skip


@trial("disk full (RLIMIT_FSIZE 4 KiB)", "convert to .npz", fsize=4 * 1024, output="gt.npz")
def _(case):
    return ["convert", "--format", "vg", "--root", str(copy("synth-vg", case)), "--split",
            "train", str(case / "gt.npz")]  # fmt: skip


@trial("disk full (RLIMIT_FSIZE 512 B)", "evaluate --json", fsize=512, output="metrics.json")
def _(case):
    return _eval_case(case, None)


@trial("signals", "SIGINT during synth", expect="interrupted", signal_after=4.0, output="o")
def _(case):
    # large enough to outlast the signal on a fast machine (3,000 images took 3.6 s)
    return ["synth", "--variant", "synth-vg", "--train", "20000", "--out", str(case / "o")]


@trial("signals", "SIGTERM during synth", expect="interrupted", sig=signal.SIGTERM,
       signal_after=4.0, output="o")  # fmt: skip
def _(case):
    return ["synth", "--variant", "synth-vrd", "--train", "3000", "--out", str(case / "o")]


# ---------------------------------------------------------------- running


def run_child(argv: list[str], case: Path, t: dict) -> tuple[int, str, float, float]:
    out, err = case / "_stdout", case / "_stderr"
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: one command, its exit status
        try:
            os.chdir(case)
            # under a file-size limit stdout goes to /dev/null (a device: not limited), so the
            # limit hits the command's own output files only
            fd_out = os.open(
                os.devnull if t.get("fsize") else out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            )
            fd_err = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            if t.get("fsize"):
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (t["fsize"], t["fsize"]))
            rc = tailgraph_main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(rc or 0))
    deadline = t0 + t["timeout"]
    sent = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        now = time.perf_counter()
        if t.get("signal_after") and not sent and now - t0 > t["signal_after"]:
            os.kill(pid, t.get("sig", signal.SIGINT))
            sent = True
        if now > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return -9, "time-out", time.perf_counter() - t0, usage.ru_maxrss / 1024
        time.sleep(0.05)
    rc = os.waitstatus_to_exitcode(status)
    return rc, err.read_text(errors="replace"), time.perf_counter() - t0, usage.ru_maxrss / 1024


def classify(t: dict, rc: int, err: str, case: Path) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    left = t.get("output") and (case / t["output"]).exists()
    if "Traceback" in err or rc not in (0, 2, 130, 143):
        return "crash"
    if rc == 2:
        return "clean" if len(lines) == 1 and not left else "error, not one line / output left"
    if rc in (130, 143):
        return "interrupted" if len(lines) == 1 and not left else "interrupted, output left"
    return "read"


def verdict(t: dict, outcome: str) -> bool:
    if t["expect"] == "any":
        return outcome in ("clean", "read")
    want = {"error": "clean", "ok": "read", "interrupted": "interrupted"}[t["expect"]]
    return outcome == want


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--work", default="/tmp/tailgraph_hostile")
    ap.add_argument("--only", default=None, help="run the trials whose category contains this")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "base").mkdir(parents=True)
    for v in ("synth-vg", "synth-ag", "synth-vrd", "synth-oi"):
        BASE[v] = work / "base" / v
        rc = tailgraph_main(
            ["synth", "--variant", v, "--train", "8", "--test", "4", "--out", str(BASE[v])]
        )
        assert rc == 0, v
    recipe = Path(__file__).resolve().parents[1] / "configs/synthetic/vg_predcls_motifs.yaml"
    # in its own process: a fork after torch's thread pools have run could deadlock a child
    import subprocess

    subprocess.run(
        [str(Path(sys.executable).with_name("tailgraph")), "fit", "--config", str(recipe),
         "--data.init_args.root", str(BASE["synth-vg"]), "--data.init_args.num_train", "8",
         "--data.init_args.num_test", "4", "--trainer.max_epochs", "1",
         "--trainer.default_root_dir", str(work / "base" / "fit")],
        check=True, capture_output=True,
    )  # fmt: skip
    CKPT["vg"] = next((work / "base" / "fit").rglob("last.ckpt"))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    for i, t in enumerate(TRIALS):
        if a.only and a.only not in t["category"]:
            continue
        case = work / f"case{i:03d}"
        case.mkdir()
        argv = t["fn"](case)
        rc, err, secs, peak = run_child(argv, case, t)
        outcome = classify(t, rc, err, case)
        ok = verdict(t, outcome)
        last = next((ln for ln in reversed(err.splitlines()) if ln.strip()), "")
        rows.append(
            {"category": t["category"], "input": t["name"], "expect": t["expect"], "rc": rc,
             "outcome": outcome, "as_expected": ok, "seconds": round(secs, 2),
             "peak_rss_mb": round(peak), "stderr_last_line": last[:240]}
        )  # fmt: skip
        print(f"{'ok ' if ok else 'BAD'} {outcome:12s} rc={rc:<4d} {secs:6.1f}s {peak:6.0f}MB "
              f"{t['category']}: {t['name']} | {last[:150]}", flush=True)  # fmt: skip
    good = sum(r["as_expected"] for r in rows)
    print(f"{good} / {len(rows)} as expected; baseline RSS {baseline:.0f} MB")
    Path(a.json).write_text(
        json.dumps({"baseline_rss_mb": round(baseline), "trials": rows}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
