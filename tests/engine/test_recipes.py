"""Every synthetic recipe fits and tests through the command line, in a tiny configuration
(small data, narrow models, one epoch); the real-data twins parse and name a placeholder."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from tailgraph.cli import main as tailgraph_main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SYNTHETIC = sorted(p.stem for p in (CONFIGS / "synthetic").glob("*.yaml"))
REQUIRED = {
    "vg_predcls_motifs",
    "vg_sgcls_motifs",
    "vg_sgdet_motifs",
    "vg_predcls_vctree",
    "vg_predcls_transformer",
    "ag_predcls_sttran",
    "ag_sgdet_sttran",
    "oi_negmine",
    "vrd_frames_pairwise",
    "vrd_vidvrd2",
    "dll_vrd",
    "bmp_ag_predcls",
    "bmp_ag_predcls_balanced_softmax",
    "fremure_bayes_ag_predcls",
    "fremure_gmmplus_ag_predcls",
}

# data sizes per data module: tiny, and small images
TINY_DATA = {
    "SynthVGDataModule": {
        "num_train": 24,
        "num_test": 6,
        "image_size": 64,
        "max_size": 64,
        "batch_size": 6,
    },
    "AGDataModule": {"synth_train": 5, "synth_test": 2, "synth_size": 64, "max_size": 64},
    "VidVRDDataModule": {"synth_train": 4, "synth_test": 2, "synth_size": 64},
    "OIDataModule": {
        "synth_train": 20,
        "synth_test": 6,
        "synth_size": 64,
        "shorter": 64,
        "longer_max": 128,
        "batch_size": 8,
        "max_relations": 40,
    },
}
TINY_SIZES = {
    "hidden_dim": 32,
    "proj_dim": 16,
    "embed_dim": 8,
    "num_heads": 4,
    "ff_dim": 32,
    "temporal_layers": 1,
    "out_dim": 32,
    "visual_dim": 16,
    "stage3_channels": 16,
    "roi_size": 2,
}


def _shrink(spec):
    if not isinstance(spec, dict):
        return spec
    args = spec.get("init_args") or {}
    for k in list(args):
        if k in TINY_SIZES:
            args[k] = TINY_SIZES[k]
        elif k == "last_stage":
            args[k] = "layer1"
    return spec


def tiny_recipe(name: str, tmp_path: Path) -> Path:
    cfg = yaml.safe_load((CONFIGS / "synthetic" / f"{name}.yaml").read_text())
    for part in ("features", "context", "head"):
        _shrink(cfg["model"].get(part))
    data = cfg["data"]
    kind = data["class_path"].rsplit(".", 1)[1]
    data["init_args"].update(TINY_DATA[kind], root=str(tmp_path / "data"))
    cfg["trainer"] = {
        **cfg.get("trainer", {}),
        "max_epochs": 1,
        "limit_train_batches": 3,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path / "out"),
        "log_every_n_steps": 1,
    }
    cfg["model"].pop("max_epochs_hint", None)
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def test_required_recipes_exist(capsys):
    assert REQUIRED <= set(SYNTHETIC), REQUIRED - set(SYNTHETIC)
    for sub, kinds in (
        (
            "vg150",
            {
                "vg_predcls_motifs",
                "vg_sgcls_motifs",
                "vg_sgdet_motifs",
                "vg_predcls_vctree",
                "vg_predcls_transformer",
            },
        ),
        (
            "ag",
            {"ag_predcls_sttran", "ag_sgdet_sttran"}
            | {
                f"{m}_{t}"
                for t in ("predcls", "sgcls", "sgdet")
                for m in ("tempura", "bmp", "fremure_bayes", "fremure_gmmplus")
            },
        ),
        ("oi", {"oi_negmine"}),
        ("vidvrd", {"vidvrd2", "dll_vidvrd2"}),
    ):
        names = {p.stem for p in (CONFIGS / sub).glob("*.yaml")}
        assert kinds <= names, (sub, kinds - names)
        for p in (CONFIGS / sub).glob("*.yaml"):
            text = p.read_text()
            assert "/path/to/" in text, f"{p} must name its data path placeholder"
            yaml.safe_load(text)
            if p.stem.startswith("bmp_"):  # BMP starts from its TEMPURA recipe's run
                assert yaml.safe_load(text)["model"]["init_from"].endswith(
                    "tempura_ag_" + p.stem.split("_", 1)[1]
                )
            # the recipe's classes and options resolve (nothing is instantiated)
            assert tailgraph_main(["fit", "--config", str(p), "--print_config"]) == 0, p
            capsys.readouterr()


def test_every_synthetic_recipe_resolves_and_bmp_recipes_name_a_tempura_start(capsys):
    for name in SYNTHETIC:
        path = CONFIGS / "synthetic" / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        start = doc["model"].get("init_from")
        if name.startswith("bmp_"):  # the run folder of a TEMPURA recipe here
            assert start in SYNTHETIC and start.startswith("tempura_"), (name, start)
            upstream = yaml.safe_load((CONFIGS / "synthetic" / f"{start}.yaml").read_text())
            assert upstream["trainer"]["default_root_dir"] == start
            for key in ("contact_single_label",):  # the start read its data the same way
                assert doc["data"]["init_args"].get(key) == upstream["data"]["init_args"].get(key)
        assert tailgraph_main(["fit", "--config", str(path), "--print_config"]) == 0, name
        capsys.readouterr()


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_synthetic_recipe_fits_and_tests(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recipe = tiny_recipe(name, tmp_path)
    overrides = (
        ["--model.context.init_args.hidden_dim", "24"] if name == "vg_predcls_motifs" else []
    )
    upstream = yaml.safe_load(recipe.read_text())["model"].get("init_from")
    if upstream:  # BMP starts from its TEMPURA recipe's run folder: train that one first
        up = yaml.safe_load(tiny_recipe(upstream, tmp_path).read_text())
        up["trainer"]["default_root_dir"] = str(tmp_path / upstream)
        (tmp_path / "upstream.yaml").write_text(yaml.safe_dump(up))
        assert tailgraph_main(["fit", "--config", str(tmp_path / "upstream.yaml")]) == 0
        overrides = ["--model.init_from", str(tmp_path / upstream)]
    assert tailgraph_main(["fit", "--config", str(recipe), *overrides]) == 0
    run = tmp_path / "out" / "runs" / "version_0"
    if name == "vg_predcls_motifs":  # a dotted override inside a component spec reaches it
        saved = yaml.safe_load((run / "config.yaml").read_text())["model"]["context"]
        assert str(saved.get("hidden_dim", saved["init_args"].get("hidden_dim"))) == "24"
        state = torch.load(
            run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
        )["state_dict"]
        assert (
            state["model.context.edge_ctx.weight_hh_l0"].shape[1] == 12
        )  # bidirectional: hidden_dim // 2
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "config.yaml").is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 0 and "torch" in info["versions"]
    capsys.readouterr()
    assert (
        tailgraph_main(
            [
                "test",
                "--config",
                str(recipe),
                "--ckpt_path",
                str(ckpt),
                "--trainer.limit_test_batches",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    metrics_path = tmp_path / "out" / "runs" / "version_1" / "metrics.json"
    assert f"metrics: {metrics_path}" in printed
    doc = json.loads(metrics_path.read_text())
    m = doc["models"]["model"]
    if name.startswith("ag_") or "_ag_" in name:
        assert set(m) >= {"with", "semi", "no"} and {
            "R@10",
            "R@20",
            "R@50",
            "R@100",
            "mR@20",
        } <= set(m["with"])
    elif name.startswith(("vrd_", "dll_vrd")):
        assert {"RelDet_mAP", "RelDet_R@50", "RelDet_R@100", "RelTag_P@5", "mR@50", "Mean"} <= set(
            m
        ) and m["num_videos"] > 0
    elif name.startswith("oi_"):
        assert {"mAP", "mAP*", "mAP_FG", "mAP*_FG"} <= set(m)
    else:
        assert {"R@20", "R@50", "R@100", "mR@50", "ngR@50", "zR@50", "A@50", "Mean@50"} <= set(m)
        assert m["Mean@50"] == (m["R@50"] + m["mR@50"]) / 2
    if name == "vg_predcls_motifs":  # the checkpoint alone: its run's recipe is found beside it
        argv = ["test", "--ckpt_path", str(ckpt), "--trainer.limit_test_batches", "2"]
        assert tailgraph_main(argv) == 0
        again = tmp_path / "out" / "runs" / "version_2" / "metrics.json"
        assert json.loads(again.read_text())["models"]["model"] == m
        (run / "config.yaml").rename(run / "moved.yaml")
        capsys.readouterr()
        assert tailgraph_main(argv) == 2
        assert "config.yaml" in capsys.readouterr().err


def test_hml_synthetic_recipe_fits_and_tests(tmp_path, monkeypatch):
    """configs/synthetic/hml_motifs_vg.yaml in a tiny configuration: both stages run."""
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load((CONFIGS / "synthetic" / "hml_motifs_vg.yaml").read_text())
    cfg["data"]["init_args"].update(
        root=str(tmp_path / "data"), num_train=40, num_test=8, num_val_im=4, image_size=64
    )
    _shrink(cfg["model"]["context"])
    cfg["model"]["method"]["init_args"]["stage_epochs"] = [1, 1]
    cfg["trainer"].update(
        max_epochs=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path / "out"),
    )
    recipe = tmp_path / "hml.yaml"
    recipe.write_text(yaml.safe_dump(cfg))
    assert tailgraph_main(["fit", "--config", str(recipe)]) == 0
    run = tmp_path / "out" / "runs" / "version_0"
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    assert int(state["method.current_stage"]) == 1 and any(
        k.startswith("method.teacher.") for k in state
    )
    assert (
        tailgraph_main(
            ["test", "--config", str(recipe), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]
        )
        == 0
    )
    m = json.loads((tmp_path / "out" / "runs" / "version_1" / "metrics.json").read_text())[
        "models"
    ]["model"]
    assert {"R@50", "mR@50", "Mean@50"} <= set(m)


def test_console_has_no_library_tips_or_deprecation_noise(tmp_path):
    """fit and test through the real command: none of the library noise reaches the console."""
    import subprocess
    import sys

    from tailgraph.engine.quiet import NOISE

    recipe = tiny_recipe("vrd_frames_pairwise", tmp_path)
    bars = [
        "--trainer.enable_progress_bar",
        "true",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_val_batches",
        "2",
    ]
    out = []
    for cmd in (
        ["fit", "--config", str(recipe), *bars],
        [
            "test",
            "--config",
            str(recipe),
            "--trainer.enable_progress_bar",
            "true",
            "--ckpt_path",
            str(tmp_path / "out" / "runs" / "version_0" / "checkpoints" / "last.ckpt"),
        ],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "tailgraph.cli", *cmd],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out.append(proc.stdout + proc.stderr)
    text = "\n".join(out)
    assert "metrics:" in text
    for fragment in NOISE + ("Tip:", "DeprecationWarning", "is deprecated"):
        assert fragment not in text, fragment
    # one bar per phase: fit's runs over both epochs (6 steps), its validation and the sanity
    # check have none; test has its own
    fit_out = out[0].replace("\r", "\n")
    assert "fit · epoch 2/2" in fit_out and "6/6" in fit_out
    for other in ("Sanity Checking", "Validation", "Epoch 0", "Epoch 1"):
        assert other not in fit_out, other
    assert "test:" in out[1].replace("\r", "\n") and "Testing" not in out[1]
    # the closing tables: fit's summary, test's main metrics (not Lightning's list)
    assert "fit summary" in out[0] and "epochs" in out[0] and "checkpoints" in out[0]
    assert "test (" in out[1] and "RelDet_mAP" in out[1] and "Test metric" not in out[1]


def test_vg150_hml_recipes_use_the_authors_fixed_split():
    """The GloVe-50d tree at T_SS 0.7 leaves has / in / of / with out of stage 1; the authors
    ran the fixed split, and so do the VG150 recipes."""
    from tailgraph.methods.hml import CODE_VG_STAGE1

    recipes = sorted((CONFIGS / "vg150").glob("hml_*.yaml"))
    assert len(recipes) == 9
    for path in recipes:
        method = yaml.safe_load(path.read_text())["model"]["method"]
        assert method["class_path"] == "tailgraph.methods.hml.HML"
        assert method["init_args"]["split"] == "fixed", path.name
    assert {"has", "in", "of", "with"} <= set(CODE_VG_STAGE1)


def test_a_run_without_logger_still_writes_into_its_own_run_folder(tmp_path, monkeypatch):
    """``trainer.logger: false``: no metrics.csv and no TensorBoard events, but the checkpoint,
    recipe and run.json go to ``runs/version_N`` (never ``checkpoints/`` and ``run.json`` in
    the working directory), and ``--ckpt_path last`` continues that folder."""
    monkeypatch.chdir(tmp_path)
    recipe = tiny_recipe("vg_predcls_motifs", tmp_path)
    cfg = yaml.safe_load(recipe.read_text())
    cfg["trainer"].pop("default_root_dir")
    cfg["trainer"]["logger"] = False
    recipe.write_text(yaml.safe_dump(cfg))
    assert tailgraph_main(["fit", "--config", str(recipe)]) == 0
    run = tmp_path / "runs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file() and (run / "run.json").is_file()
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "run.json").exists()
    assert not list(run.glob("metrics.csv")) and not list(run.glob("events.out.tfevents*"))
    again = ["fit", "--config", str(recipe), "--ckpt_path", "last", "--trainer.max_epochs", "2"]
    assert tailgraph_main(again) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["version_0"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1
