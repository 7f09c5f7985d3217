"""Training-step throughput of the demo's pixel model by ResNet-18 cut and input size
(forward + backward, batch 16, synthetic scenes with 3-10 objects), to choose the CPU demo's
setting.

    .venv/bin/python benchmarks/bench_pixel_model.py
"""

from __future__ import annotations

import sys
import time

import torch

from tailgraph.data.synthetic import SynthVGConfig, build_world, sample_scene, scene_seed
from tailgraph.engine.module import SGGModule
from tailgraph.structures import GraphBatch


def main() -> int:
    torch.manual_seed(0)
    rows = [
        "## Pixel model training throughput (CPU, 2 threads)",
        "",
        "Command: `.venv/bin/python benchmarks/bench_pixel_model.py`",
        "",
        "| input px | last ResNet-18 stage | images / s (fwd + bwd, batch 16) |",
        "|---|---|---|",
    ]
    for size in (128, 192):
        world = build_world(0, SynthVGConfig(image_size=size))
        graphs = [sample_scene(world, scene_seed(0, i), i)[1] for i in range(16)]
        images = torch.randn(16, 3, size, size)
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            m = SGGModule(
                features={
                    "class_path": "tailgraph.modeling.roi.PixelFeatures",
                    "init_args": {"last_stage": stage, "out_dim": 256},
                }
            )
            m.build(world.vocab, "vg")
            opt = torch.optim.AdamW(m.parameters(), 1e-3)
            batch = GraphBatch(graphs, images, torch.ones(16))
            times = []
            for it in range(4):
                t0 = time.perf_counter()
                b = m.train_batch(batch)
                loss = m.method.training_step(m.model, b)["loss_predicate"]
                opt.zero_grad()
                loss.backward()
                opt.step()
                if it:
                    times.append(time.perf_counter() - t0)
            rows.append(f"| {size} | {stage} | {16 / (sum(times) / len(times)):.0f} |")
    print("\n".join(rows))
    from pathlib import Path

    (Path(__file__).resolve().parent / "results" / "pixel_model.md").write_text(
        "\n".join(rows) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
