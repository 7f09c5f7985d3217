"""Resume: ``fit`` killed with SIGKILL mid-training and resumed with ``--ckpt_path last`` ends
with the same weights, method state and test metrics as an uninterrupted run (deterministic
mode)."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from tests.engine.test_recipes import tiny_recipe


def _recipe(tmp_path: Path, name: str, out: Path) -> Path:
    path = tiny_recipe(name, tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["trainer"].update(
        max_epochs=4, limit_train_batches=4, deterministic=True, default_root_dir=str(out)
    )
    cfg["data"]["init_args"]["root"] = str(tmp_path / "data")
    cfg["model"]["method"] = (
        {
            "class_path": "tailgraph.methods.hml.HML",
            "init_args": {"stage_epochs": [2, 2], "split": "fixed"},
        }
        if name.startswith("vg_")
        else cfg["model"].get("method")
    )
    if cfg["model"]["method"] is None:
        cfg["model"].pop("method")
    out_path = tmp_path / f"{name}-{out.name}.yaml"
    out_path.write_text(yaml.safe_dump(cfg))
    return out_path


def _cmd(*args):
    return [sys.executable, "-m", "tailgraph.cli", *args]


def _final(out: Path, version: int):
    run = out / "runs" / f"version_{version}"
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    # generate the data once, so both runs read the same files
    straight = _recipe(tmp_path, "vg_predcls_motifs", tmp_path / "straight")
    subprocess.run(
        _cmd("fit", "--config", str(straight)),
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=600,
    )
    ref = _final(tmp_path / "straight", 0)

    killed = _recipe(tmp_path, "vg_predcls_motifs", tmp_path / "killed")
    proc = subprocess.Popen(
        _cmd("fit", "--config", str(killed)),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = tmp_path / "killed" / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))  # a random step of the remaining epochs
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert first.exists()  # killed after at least one epoch's checkpoint, at any later step

    res = subprocess.run(
        _cmd("fit", "--config", str(killed), "--ckpt_path", "last"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # the resumed run continues its own folder: one run, its log from the first epoch on
    runs = sorted(p.name for p in (tmp_path / "killed" / "runs").iterdir())
    assert runs == ["version_0"], runs
    killed_log = (tmp_path / "killed" / "runs" / "version_0" / "metrics.csv").read_text()
    straight_log = (tmp_path / "straight" / "runs" / "version_0" / "metrics.csv").read_text()
    epochs = {line.split(",", 1)[0] for line in killed_log.splitlines()[1:]}
    assert epochs == {line.split(",", 1)[0] for line in straight_log.splitlines()[1:]}
    assert killed_log.splitlines()[0] == straight_log.splitlines()[0]
    resumed = _final(tmp_path / "killed", 0)
    assert resumed["epoch"] == ref["epoch"] and resumed["global_step"] == ref["global_step"]
    assert ref["state_dict"].keys() == resumed["state_dict"].keys()
    assert any(
        k.startswith("method.") for k in ref["state_dict"]
    )  # the method's state is part of it
    for k, v in ref["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k

    metrics = []
    for out, version in ((tmp_path / "straight", 0), (tmp_path / "killed", 0)):
        ckpt = out / "runs" / f"version_{version}" / "checkpoints" / "last.ckpt"
        recipe = straight if out.name == "straight" else killed
        subprocess.run(
            _cmd("test", "--config", str(recipe), "--ckpt_path", str(ckpt)),
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=600,
        )
        metrics.append(
            json.loads((out / "runs" / f"version_{version + 1}" / "metrics.json").read_text())[
                "models"
            ]["model"]
        )
    assert metrics[0] == metrics[1]


def test_ckpt_path_last_without_a_run_is_a_clean_error(tmp_path):
    recipe = _recipe(tmp_path, "vrd_frames_pairwise", tmp_path / "empty")
    res = subprocess.run(
        _cmd("fit", "--config", str(recipe), "--ckpt_path", "last"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("tailgraph fit:")]
    assert len(errors) == 1 and "last.ckpt" in errors[0] and "Traceback" not in res.stderr
