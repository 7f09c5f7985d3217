"""Peak memory and time of SGDet-scale inference: 8 images × 80 boxes (6,320 ordered pairs
each, 50,560 in the batch), pixel model (ResNet-18 to layer2 at 192 px, object + union RoI
features, pairwise MLP, linear head over 51 predicates), with and without pair chunking.
Each setting runs in a fresh process; peak = the process's maximum resident set size.

    .venv/bin/python benchmarks/bench_sgdet_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from tailgraph.modeling.context.pairwise import PairwiseMLPContext
from tailgraph.modeling.heads.linear import LinearHead
from tailgraph.modeling.relation_model import GraphBatch, RelationModel
from tailgraph.modeling.roi import PixelFeatures
from tailgraph.structures import SceneGraph, Task
torch.set_num_threads(2)
chunk = None if sys.argv[1] == "none" else int(sys.argv[1])
rng = np.random.default_rng(0)
names = ["__background__"] + [f"c{i}" for i in range(150)]
graphs = []
for i in range(8):
    xy = rng.uniform(0, 150, (80, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (80, 2))], 1).clip(0, 191)
    graphs.append(SceneGraph(i, 192, 192, boxes, rng.integers(1, 151, 80), []))
ctx = PairwiseMLPContext(names, obj_feat_dim=256, union_feat_dim=256, hidden_dim=256)
feats = PixelFeatures(last_stage="layer2", out_dim=256)
model = RelationModel(ctx, LinearHead(256, 51), 151, features=feats, task=Task.PREDCLS,
                      pair_chunk_size=chunk).eval()
batch = GraphBatch(graphs, torch.randn(8, 3, 192, 192), torch.ones(8))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
with torch.no_grad():
    out = model(batch)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"pairs": int(out.pairs.shape[0]), "seconds": dt, "peak_mb": peak / 1024,
                  "before_mb": base / 1024}))
"""


def main() -> int:
    rows = []
    for chunk in ("none", "4096", "1024"):
        res = subprocess.run(
            [sys.executable, "-c", CHILD, chunk],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        if res.returncode != 0:
            print(res.stderr[-2000:])
            return 1
        d = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append((chunk, d))
        print(chunk, d, flush=True)
    lines = [
        "## SGDet-scale inference memory (8 images × 80 boxes)",
        "",
        "Command: `.venv/bin/python benchmarks/bench_sgdet_memory.py`",
        "",
        f"{rows[0][1]['pairs']} candidate pairs; pixel model at 192 px (ResNet-18 to layer2, "
        f"256-d object and union RoI "
        "features, pairwise MLP, 51 predicates); CPU, no gradients; each row a fresh process.",
        "",
        "| pair chunk | peak resident memory (MB) | of which before the forward pass (MB) | "
        "seconds |",
        "|---|---|---|---|",
    ]
    for chunk, d in rows:
        lines.append(
            f"| {'all pairs at once' if chunk == 'none' else chunk} | {d['peak_mb']:.0f} | "
            f"{d['before_mb']:.0f} | {d['seconds']:.1f} |"
        )
    out = Path(__file__).resolve().parent / "results" / "sgdet_memory.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
