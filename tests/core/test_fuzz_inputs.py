"""Property-based hostile inputs: hypothesis mutates one file of each data-set reader (VG,
Action Genome, VidVRD, Open Images) and the interchange files (JSON and binary, ground truth and
predictions) — truncation, overwritten bytes, inserted bytes, deleted ranges — and the command
line must end either in a correct read (exit 0) or in the project's one-line error naming the
file (exit 2). Any other exception fails the test. Each property is bounded in examples and
time."""

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tailgraph.cli import main as tailgraph_main

from ..helpers import write_interchange_case

# TAILGRAPH_FUZZ_EXAMPLES raises the bound for a longer campaign (the suite keeps 100, derandomized:
# the same examples every run, so a slow input found by a campaign cannot make CI flaky)
FUZZ = settings(
    max_examples=int(os.environ.get("TAILGRAPH_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)


@st.composite
def mutations(draw):
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "delete", "nonutf8"]))
    pos = draw(st.floats(0, 1, exclude_max=True))
    data = draw(st.binary(min_size=1, max_size=8))
    length = draw(st.integers(1, 64))
    return kind, pos, data, length


def mutate(raw: bytes, m) -> bytes:
    kind, pos, data, length = m
    i = int(pos * max(len(raw), 1))
    if kind == "truncate":
        return raw[:i]
    if kind == "overwrite":
        return raw[:i] + data + raw[i + len(data) :]
    if kind == "insert":
        return raw[:i] + data + raw[i:]
    if kind == "delete":
        return raw[:i] + raw[i + length :]
    return raw[:i] + b"\xff\xfe" + raw[i:]  # a non-UTF-8 byte sequence


READ, ERROR = "read (exit 0)", "clean error (exit 2)"


def check_outcome(rc: int, err: str, path: Path, tally: Counter | None = None) -> None:
    assert rc in (0, 2), rc
    # hypothesis' own statistics do not see a property defined inside a test: the outcome is
    # also counted in ``tally``, which the test records and checks (see ``outcomes``)
    event(READ if rc == 0 else ERROR)
    if tally is not None:
        tally[READ if rc == 0 else ERROR] += 1
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, err
        assert "Traceback" not in err
        assert path.name in lines[0] or str(path.parent.name) in lines[0], lines[0]


def outcomes(tally: Counter, record_property) -> None:
    """Record the campaign's outcome counts on the test (JUnit ``property``; pytest ``-rA``
    prints them) and require that the inputs reached the error path: a campaign whose every
    input still reads would test nothing."""
    record_property("fuzz_outcomes", dict(tally))
    print(f"fuzz outcomes: {dict(tally)}")
    assert tally[ERROR] > 0, f"no input was refused: {dict(tally)}"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from tailgraph.data.synthetic import generate_synth_vg
    from tailgraph.data.synthetic.ag import generate_synth_ag
    from tailgraph.data.synthetic.oi import generate_synth_oi
    from tailgraph.data.synthetic.vrd import generate_synth_vrd

    root = tmp_path_factory.mktemp("fuzz")
    generate_synth_vg(root / "vg", num_train=6, num_test=3, image_size=48, write_images=False)
    generate_synth_ag(
        root / "ag", num_train=2, num_test=1, image_size=32, min_frames=2, max_frames=3
    )
    generate_synth_vrd(
        root / "vidvrd",
        num_train=2,
        num_test=1,
        image_size=32,
        min_frames=4,
        max_frames=6,
        write_frames=False,
    )
    generate_synth_oi(root / "oi", num_train=4, num_test=2, image_size=32)
    return root


def _files(root: Path, fmt: str) -> list[Path]:
    keep = {".json", ".h5", ".pkl", ".csv", ".txt"}
    return sorted(p for p in (root / fmt).rglob("*") if p.is_file() and p.suffix in keep)


@pytest.mark.parametrize("fmt", ["vg", "ag", "vidvrd", "oi"])
def test_mutated_dataset_files_read_or_fail_cleanly(
    fmt, datasets, tmp_path_factory, capsys, record_property
):
    files = _files(datasets, fmt)
    assert files, fmt
    assert (
        tailgraph_main(["stats", "--format", fmt, "--root", str(datasets / fmt)]) == 0
    )  # the control reads

    tally: Counter = Counter()

    @FUZZ
    @given(which=st.integers(0, len(files) - 1), m=mutations())
    def prop(which, m):
        work = tmp_path_factory.mktemp(fmt)
        shutil.copytree(datasets / fmt, work / fmt, dirs_exist_ok=True)
        target = work / fmt / files[which].relative_to(datasets / fmt)
        target.write_bytes(mutate(files[which].read_bytes(), m))
        capsys.readouterr()
        rc = tailgraph_main(["stats", "--format", fmt, "--root", str(work / fmt)])
        check_outcome(rc, capsys.readouterr().err, target, tally)
        shutil.rmtree(work)

    prop()
    outcomes(tally, record_property)


@pytest.fixture(scope="module")
def interchange(tmp_path_factory):
    root = write_interchange_case(tmp_path_factory.mktemp("interchange"), 0, 6, "sgdet")
    for name in ("gt", "pred"):
        for ext in (".h5", ".npz"):
            assert (
                tailgraph_main(["convert", str(root / f"{name}.json"), str(root / f"{name}{ext}")])
                == 0
            )
    return root


def _evaluate_rc(folder: Path, name: str) -> int:
    suffix = "".join(Path(name).suffixes)
    gt = folder / ("gt" + suffix if name.startswith("gt") else "gt.json")
    pred = folder / ("pred" + suffix if name.startswith("pred") else "pred.json")
    return tailgraph_main(
        ["evaluate", "--protocol", "vg", "--mode", "sgdet", "--gt", str(gt), "--pred", str(pred)]
    )


@pytest.mark.parametrize("name", ["gt.json", "pred.json", "gt.h5", "pred.h5", "gt.npz", "pred.npz"])
def test_mutated_interchange_files_evaluate_or_fail_cleanly(
    name, interchange, tmp_path_factory, capsys, record_property
):
    raw = (interchange / name).read_bytes()
    assert _evaluate_rc(interchange, name) == 0  # the control reads

    tally: Counter = Counter()

    @FUZZ
    @given(m=mutations())
    def prop(m):
        work = tmp_path_factory.mktemp("ix")
        for f in interchange.iterdir():
            shutil.copy(f, work / f.name)
        target = work / name
        target.write_bytes(mutate(raw, m))
        gt = work / ("gt" + Path(name).suffix if name.startswith("gt") else "gt.json")
        pred = work / ("pred" + Path(name).suffix if name.startswith("pred") else "pred.json")
        capsys.readouterr()
        rc = tailgraph_main(
            [
                "evaluate",
                "--protocol",
                "vg",
                "--mode",
                "sgdet",
                "--gt",
                str(gt),
                "--pred",
                str(pred),
                "--json",
                str(work / "out.json"),
            ]
        )
        check_outcome(rc, capsys.readouterr().err, target, tally)
        if rc == 0:
            out = json.loads((work / "out.json").read_text())
            assert 0 <= out["R@50"] <= 1
        else:
            assert not (work / "out.json").exists()  # nothing partial
        shutil.rmtree(work)

    prop()
    outcomes(tally, record_property)


# --------------------------------------------------------------------- structural mutations
ODD_VALUES = [
    None,
    "x",
    -1,
    0,
    1.5,
    float("nan"),
    float("inf"),
    [],
    {},
    [1, 2],
    [[1, 2, 3, 4]],
    10**12,
    True,
    "1",
]


def _paths(obj, prefix=(), out=None, limit=4000):
    """Every container slot of a JSON / pickle tree (dict keys, list indices), up to ``limit``."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    items = (
        obj.items()
        if isinstance(obj, dict)
        else enumerate(obj)
        if isinstance(obj, (list, tuple))
        else ()
    )
    for k, v in items:
        out.append(prefix + (k,))
        _paths(v, prefix + (k,), out, limit)
    return out


def _replace(obj, path, value):
    import copy

    obj = copy.deepcopy(obj)
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    if isinstance(cur, tuple):
        return obj  # tuples are left alone
    cur[path[-1]] = value
    return obj


def _load(path: Path):
    if path.suffix == ".pkl":
        import pickle

        return pickle.loads(path.read_bytes())
    return json.loads(path.read_text())


def _dump(path: Path, obj) -> None:
    if path.suffix == ".pkl":
        import pickle

        path.write_bytes(pickle.dumps(obj))
    else:
        path.write_text(json.dumps(obj))


@pytest.mark.parametrize("fmt", ["vg", "ag", "vidvrd"])
def test_dataset_fields_of_the_wrong_type_or_range_fail_cleanly(
    fmt, datasets, tmp_path_factory, capsys, record_property
):
    files = [p for p in _files(datasets, fmt) if p.suffix in (".json", ".pkl")]
    trees = [_load(p) for p in files]
    paths = [_paths(t) for t in trees]
    assert (
        tailgraph_main(["stats", "--format", fmt, "--root", str(datasets / fmt)]) == 0
    )  # the control reads

    tally: Counter = Counter()

    @FUZZ
    @given(
        which=st.integers(0, len(files) - 1),
        pick=st.floats(0, 1, exclude_max=True),
        value=st.sampled_from(ODD_VALUES),
    )
    def prop(which, pick, value):
        if not paths[which]:
            return
        work = tmp_path_factory.mktemp(fmt)
        shutil.copytree(datasets / fmt, work / fmt, dirs_exist_ok=True)
        target = work / fmt / files[which].relative_to(datasets / fmt)
        path = paths[which][int(pick * len(paths[which]))]
        _dump(target, _replace(trees[which], path, value))
        capsys.readouterr()
        rc = tailgraph_main(["stats", "--format", fmt, "--root", str(work / fmt)])
        check_outcome(rc, capsys.readouterr().err, target, tally)
        shutil.rmtree(work)

    prop()
    outcomes(tally, record_property)


@pytest.mark.parametrize("name", ["gt.json", "pred.json"])
def test_interchange_fields_of_the_wrong_type_or_range_fail_cleanly(
    name, interchange, tmp_path_factory, capsys, record_property
):
    tree = json.loads((interchange / name).read_text())
    paths = _paths(tree)
    assert _evaluate_rc(interchange, name) == 0  # the control reads

    tally: Counter = Counter()

    @FUZZ
    @given(pick=st.floats(0, 1, exclude_max=True), value=st.sampled_from(ODD_VALUES))
    def prop(pick, value):
        work = tmp_path_factory.mktemp("ixs")
        for f in interchange.iterdir():
            shutil.copy(f, work / f.name)
        target = work / name
        doc = _replace(tree, paths[int(pick * len(paths))], value)
        target.write_text(json.dumps(doc))
        capsys.readouterr()
        rc = tailgraph_main(
            [
                "evaluate",
                "--protocol",
                "vg",
                "--mode",
                "sgdet",
                "--gt",
                str(work / "gt.json"),
                "--pred",
                str(work / "pred.json"),
                "--json",
                str(work / "out.json"),
            ]
        )
        check_outcome(rc, capsys.readouterr().err, target, tally)
        if rc == 2:
            assert not (work / "out.json").exists()
        shutil.rmtree(work)

    prop()
    outcomes(tally, record_property)


@pytest.fixture(scope="module")
def results_doc(interchange):
    """A real results document: the evaluator's metrics of the interchange case, with its
    predicates and training counts (what ``tailgraph report`` reads)."""
    out = interchange.parent / "report_metrics.json"
    argv = ["evaluate", "--protocol", "vg", "--mode", "sgdet", "--gt", str(interchange / "gt.json")]
    assert (
        tailgraph_main([*argv, "--pred", str(interchange / "pred.json"), "--json", str(out)]) == 0
    )
    metrics = json.loads(out.read_text())
    n = len(metrics["per_predicate_R@50"])
    return {
        "predicates": [f"p{i}" for i in range(n)],
        "train_counts": [100 // (i + 1) for i in range(n)],
        "models": {"a": metrics, "b": dict(metrics)},
    }


def _is_fraction_slot(path) -> bool:
    from tailgraph.viz.report import _FRACTION_KEY

    return any(isinstance(k, str) and _FRACTION_KEY.search(k) for k in path[1:])


def test_report_inputs_of_the_wrong_type_or_range_fail_cleanly(
    results_doc, tmp_path_factory, capsys, record_property
):
    """Any slot of a results document replaced by an odd value: the report is written, or the
    one-line error naming the file; a fraction metric made a string, NaN, ±inf or a number
    outside [0, 1] is always the error (never drawn, never dropped)."""
    paths = [p for p in _paths(results_doc) if p[0] in ("models", "predicates", "train_counts")]

    tally: Counter = Counter()

    @FUZZ
    @given(pick=st.floats(0, 1, exclude_max=True), value=st.sampled_from(ODD_VALUES))
    def prop(pick, value):
        work = tmp_path_factory.mktemp("rep")
        target = work / "metrics.json"
        path = paths[int(pick * len(paths))]
        target.write_text(json.dumps(_replace(results_doc, path, value)))
        capsys.readouterr()
        rc = tailgraph_main(["report", str(target), "--out", str(work / "out"), "-k", "50"])
        check_outcome(rc, capsys.readouterr().err, target, tally)
        scalar_bad = not (value is None or isinstance(value, (list, dict))) and (
            isinstance(value, (str, bool)) or not 0 <= value <= 1
        )
        if path[0] == "models" and _is_fraction_slot(path) and scalar_bad:
            assert rc == 2, (path, value)
        if rc == 2:
            assert not (work / "out").exists()
        shutil.rmtree(work)

    prop()
    outcomes(tally, record_property)
