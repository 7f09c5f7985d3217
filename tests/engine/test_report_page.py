"""`tailgraph report RUN_DIR RUN_DIR --out DIR` on two real fit + test runs: every section is
there, and the page opened in headless Chromium decodes every image with a clean console."""

import json
import os
import re
import shutil
import subprocess

import pytest

from tailgraph.cli import main as tailgraph_main
from tailgraph.datamodules.vg import SynthVGDataModule
from tailgraph.viz.report import coarse_fine_confusion, head_body_tail, read_training_log
from tests.helpers import tiny_vg_recipe


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    root = base / "synth-vg"
    SynthVGDataModule(
        root=str(root), num_train=40, num_test=12, image_size=96, layout_only=True
    ).prepare_data()
    runs = []
    for seed in (0, 1):
        out = base / f"seed{seed}"
        cfg = tiny_vg_recipe(
            base / f"recipe{seed}.yaml",
            root,
            out,
            seed=seed,
            epochs=2,
            model={"lr": 0.01},
            data={"num_val_im": 8},
            trainer={"log_every_n_steps": 1, "limit_val_batches": 1.0},
        )
        assert tailgraph_main(["fit", "--config", str(cfg)]) == 0
        ckpt = next(out.glob("runs/version_*/checkpoints/last.ckpt"))
        assert tailgraph_main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt)]) == 0
        runs.append(max(out.glob("runs/version_*/metrics.json")).parent)
    return base, runs


def test_report_of_two_runs_has_every_section(two_runs, capsys):
    base, runs = two_runs
    doc = json.loads((runs[0] / "metrics.json").read_text())
    assert doc["coarse_parent"] and any(p is not None for p in doc["coarse_parent"])
    conf = doc["models"]["model"]["predicate_confusion"]
    assert len(conf) == len(doc["predicates"]) + 1
    # the confusion counts every GT relation of the test split once
    dm = SynthVGDataModule(
        root=str(base / "synth-vg"), num_train=40, num_test=12, image_size=96, layout_only=True
    )
    dm.setup("test")
    assert sum(map(sum, conf)) == sum(g.num_relations for g in dm.eval_graphs("test"))
    assert doc["logs"]["model"].endswith("metrics.csv")
    curves = read_training_log(doc["logs"]["model"])
    assert "train/loss" in curves and any(k.startswith("val/mR@") for k in curves)

    out = base / "page"
    assert tailgraph_main(["report", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    for section in (
        "Metrics",
        "Head / body / tail recall@50",
        "The long tail",
        "Training curves",
        "Coarse / fine confusion",
        "Per-predicate recall@50",
    ):
        assert section in page, section
    assert page.count("data:image/png;base64,") == 4  # self-contained: every plot inlined
    assert "<img" in page and "src='per_" not in page
    # both runs are rows of the metric table and series of the plots
    labels = [f"seed{s}/runs/{r.name}" for s, r in enumerate(runs)]
    for label in labels:
        assert f"<td>{label}</td>" in page
    md = (out / "report.md").read_text()
    assert "| model | head | body | tail |" in md
    for name in (
        "long_tail.png",
        "training_curves.png",
        "coarse_fine_confusion.png",
        "per_predicate_recall.png",
    ):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # head / body / tail rows are the thirds' means of the per-predicate vector
    hbt = head_body_tail(doc["models"]["model"]["per_predicate_R@50"], doc["train_counts"])
    row = re.search(rf"\| {re.escape(labels[0])} \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", md)
    assert row and [float(x) for x in row.groups()] == [
        round(100 * hbt[g], 2) for g in ("head", "body", "tail")
    ]


def test_head_body_tail_and_confusion_by_hand():
    g = head_body_tail([1.0, 0.5, 0.0, 0.25, 0.75], [10, 50, 1, 3, 50])
    # sorted by count: idx 1 (50), 4 (50), 0 (10) | 3 (3) | 2 (1)  -> thirds [1, 4] [0, 3] [2]
    assert g == {"head": 0.625, "body": 0.625, "tail": 0.0}
    preds, parents = ["on", "sitting on", "standing on", "has"], [None, "on", "on", None]
    conf = [[0] * 5 for _ in range(5)]
    conf[2] = [1, 2, 4, 3, 0]  # GT "sitting on": 1 unscored, 2 on (parent), 4 fine, 3 sibling
    rows = coarse_fine_confusion(conf, preds, parents)
    assert rows == [
        {
            "predicate": "sitting on",
            "parent": "on",
            "count": 10,
            "fine": 0.4,
            "coarse": 0.2,
            "sibling": 0.3,
            "other": 0.0,
            "unscored": 0.1,
        }
    ]


CHECKER = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(
  'error: ' + String(e.message || e.target.src || e.type).slice(0, 200)), true);
const origError = console.error;
console.error = (...a) => {
  window.__errors.push('console.error: ' + a.join(' ')); origError(...a); };
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0))
    .map(i => i.alt);
  const pre = document.createElement('pre');
  pre.id = '__result';
  pre.textContent = JSON.stringify({images: imgs.length, bad: bad, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true: chromium not installed (make test installs Debian's chromium)")
    pytest.skip("chromium not installed (make test installs Debian's chromium where apt-get can)")


def test_report_opens_in_headless_chromium(two_runs, tmp_path):
    browser = _chromium()
    base, runs = two_runs
    out = base / "chromium"
    assert tailgraph_main(["report", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    # the checker runs before anything of the page (first in <head>)
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + CHECKER, 1))
    profile = tmp_path / "profile"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__result">(.*?)</pre>', proc.stdout, re.S)
    assert m, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] == 4
    assert result["bad"] == []  # every image loaded and decoded to a non-empty bitmap
    assert result["errors"] == []
    # the page's own console (Chromium logs it as CONSOLE lines) holds no error either
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "rror" in line], console


def test_report_labels_runs_and_shows_what_each_run_is(two_runs, capsys):
    base, runs = two_runs
    out = base / "labelled"
    argv = ["report", str(runs[0]), str(runs[1]), "--out", str(out)]
    assert tailgraph_main([*argv, "--label", "first", "--label", "second"]) == 0
    md = (out / "report.md").read_text()
    runs_table = md.split("## Runs", 1)[1].split("\n\n", 2)[1].splitlines()
    header = [c.strip() for c in runs_table[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in runs_table[2:]]
    assert [r[0] for r in rows] == ["first", "second"]
    card = dict(zip(header, rows[1]))
    assert card["seed"] == "1" and card["epochs"] == "2"  # the recipes' seed and epochs
    assert card["method"] == "Supervised" and card["model"].startswith("PairwiseMLPContext")
    assert card["data"].endswith(str(base / "synth-vg")) and card["checkpoint"].endswith(".ckpt")
    assert "tailgraph" in card["versions"] and "torch" in card["versions"]
    assert "| first |" in md.split("## Runs", 1)[1].split("##", 1)[1]  # the metric rows too
    capsys.readouterr()
    assert tailgraph_main([*argv, "--overwrite", "--label", "only-one"]) == 2
    assert "2 runs" in capsys.readouterr().err
