"""`tailgraph predict` throughput with a VidVRD-II checkpoint on folders of frames: from the
user's tracklets (`--tracklets`) and from per-frame detections linked by the IoU tracker
(`--boxes`), measured side by side in one run on synth-vrd, with `tailgraph test` on the same
test videos as the reference.

    .venv/bin/python benchmarks/bench_predict_video.py [--train 40] [--test 30] \\
        [--out benchmarks/results/predict_video.json]

Whole-command times include process start, imports and loading the checkpoint; the loop time is
what `predict` prints (reading frames, trunk features, segments, network, association, writing).
The model is trained one epoch (its accuracy is not what is measured). Video predictions are not
drawn, so there is no with/without-drawings pair as for images.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TG = [sys.executable, "-m", "tailgraph.cli"]


def run(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(TG + args, cwd=REPO, capture_output=True, text=True, env=os.environ)
    if proc.returncode != 0:
        raise SystemExit(f"tailgraph {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc.stdout


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=40)
    p.add_argument("--test", type=int, default=30)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "predict_video.json"))
    a = p.parse_args()
    res: dict = {"train_videos": a.train, "test_videos": a.test}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cfg = yaml.safe_load((REPO / "configs" / "synthetic" / "vrd_vidvrd2.yaml").read_text())
        cfg["data"]["init_args"].update(
            root=str(base / "data"), synth_train=a.train, synth_test=a.test, tracklets="gt"
        )
        cfg["trainer"].update(
            max_epochs=1,
            default_root_dir=str(base / "out"),
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        recipe = base / "vidvrd2.yaml"
        recipe.write_text(yaml.safe_dump(cfg))
        res["fit_1_epoch_s"], _ = run(["fit", "--config", str(recipe)])
        ckpt = next((base / "out").glob("runs/version_*/checkpoints/last.ckpt"))
        res["test_s"], _ = run(["test", "--config", str(recipe), "--ckpt_path", str(ckpt)])

        frames, tracklets, boxes = base / "frames", {}, {}
        for ann in sorted((base / "data" / "test").glob("*.json")):
            doc = json.loads(ann.read_text())
            vid = doc["video_id"]
            shutil.copytree(base / "data" / "frames" / vid, frames / vid)
            tracklets[vid] = {"trajectories": doc["trajectories"]}
            names = sorted(q.name for q in (frames / vid).iterdir())
            cats = {o["tid"]: o["category"] for o in doc["subject/objects"]}
            for name, per_frame in zip(names, doc["trajectories"]):
                boxes[f"{vid}/{name}"] = [
                    {
                        "box": [b["bbox"][k] for k in ("xmin", "ymin", "xmax", "ymax")],
                        "label": cats[b["tid"]],
                    }
                    for b in per_frame
                ]
        (base / "tracklets.json").write_text(json.dumps(tracklets))
        (base / "boxes.json").write_text(json.dumps(boxes))
        n_frames = sum(1 for _ in frames.rglob("*") if _.is_file())
        res["frames"] = n_frames
        for name, flag, src in (
            ("tracklets", "--tracklets", "tracklets.json"),
            ("boxes_tracker", "--boxes", "boxes.json"),
        ):
            args = ["predict", "--ckpt", str(ckpt), "--input", str(frames)]
            args += [flag, str(base / src), "--out", str(base / f"pred_{name}")]
            t, out = run(args)
            inner = re.search(r"frames, (\d+) tracklets in ([\d.]+) s", out)
            loop = float(inner.group(2)) if inner else float("nan")
            res[f"predict_{name}"] = {
                "seconds": t,
                "frames_per_s": n_frames / t,
                "videos_per_s": a.test / t,
                "loop_seconds": loop,
                "loop_frames_per_s": n_frames / loop,
                "tracklets": int(inner.group(1)) if inner else None,
            }
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
