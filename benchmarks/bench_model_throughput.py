"""Training throughput of each image context model from pixels and on cached features
(2 CPU threads; batch 16 synth-vg scenes at 128 px; ResNet-18 to layer2; 256-d features).

    .venv/bin/python benchmarks/bench_model_throughput.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_context_models import MODELS  # noqa: E402  (the same four image context models)


def main() -> int:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    from tailgraph.data.synthetic import SynthVGConfig, build_world, sample_scene, scene_seed
    from tailgraph.datamodules.feature_cache import CachedFeatures, build_cache
    from tailgraph.engine.module import SGGModule
    from tailgraph.modeling.roi import PixelFeatures
    from tailgraph.structures import GraphBatch

    world = build_world(0, SynthVGConfig(image_size=128))
    graphs = [sample_scene(world, scene_seed(0, i), i)[1] for i in range(16)]
    images = torch.randn(16, 3, 128, 128)
    batch = GraphBatch(graphs, images, torch.ones(16))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        fx = PixelFeatures(
            last_stage="layer2", out_dim=256, frozen_trunk=True, union_features=False
        )
        build_cache(Path(d) / "c.h5", fx, [batch])
        cache = CachedFeatures(Path(d) / "c.h5")
        for name, path in MODELS.items():
            for mode in ("pixels", "cached"):
                feats = {
                    "class_path": "tailgraph.modeling.roi.PixelFeatures",
                    "init_args": {"last_stage": "layer2", "out_dim": 256},
                }
                m = SGGModule(
                    context={"class_path": path, "init_args": {"hidden_dim": 256}},
                    features=feats if mode == "pixels" else None,
                )
                m.build(world.vocab, "vg")
                if mode == "cached":
                    # frozen backbone: object features from the cache, no union features
                    from tailgraph.components import build_component

                    ctx = build_component(
                        {"class_path": path, "init_args": {"hidden_dim": 256}},
                        {
                            "class_names": world.vocab.object_classes,
                            "num_predicates": world.vocab.num_predicates,
                            "obj_feat_dim": 256,
                            "union_feat_dim": 0,
                        },
                    )
                    m.model.context = ctx
                    m.model.head = build_component(
                        {"class_path": "tailgraph.modeling.heads.linear.LinearHead"},
                        {"in_dim": ctx.out_dim, "num_predicates": world.vocab.num_predicates},
                    )
                    m.model.feature_cache = cache
                opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], 1e-3)
                times, npairs = [], 0
                for it in range(4):
                    t0 = time.perf_counter()
                    b = m.train_batch(batch)
                    loss = sum(m.method.training_step(m.model, b).values())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if it:
                        times.append(time.perf_counter() - t0)
                        npairs += sum(p.shape[0] for p in b.pairs)
                t = sum(times)
                rows.append((name, mode, 16 * len(times) / t, npairs / t))
                print(rows[-1], flush=True)
        cache.close()
    # the negative-mining network (all three inputs) and the VidVRD-II tracklet-pair model
    from tailgraph.modeling.context.vidvrd_ii import TrackletPairModel
    from tailgraph.modeling.negmining import NegativeMiningNet

    net = NegativeMiningNet(world.vocab.num_classes, 10)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    boxes = torch.cat([g.boxes for g in graphs])
    owner = torch.repeat_interleave(torch.arange(16), torch.tensor([g.num_boxes for g in graphs]))
    offsets = torch.tensor([0] + [g.num_boxes for g in graphs[:-1]]).cumsum(0)
    pairs = torch.cat(
        [
            torch.stack([torch.arange(g.num_boxes - 1), torch.arange(1, g.num_boxes)], 1)
            + offsets[i]
            for i, g in enumerate(graphs)
        ]
    )
    labels = torch.cat([g.labels for g in graphs])
    times = []
    for it in range(4):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(
            net(images, torch.ones(16), boxes, owner, labels, pairs),
            torch.zeros(len(pairs), dtype=torch.long),
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it:
            times.append(time.perf_counter() - t0)
    rows.append(
        (
            "negative-mining net",
            "pixels",
            16 * len(times) / sum(times),
            len(pairs) * len(times) / sum(times),
        )
    )
    tp = TrackletPairModel(256, world.vocab.num_classes, 40)
    opt = torch.optim.AdamW(tp.parameters(), 1e-3)
    tracks = torch.randn(64, 256)
    tpairs = torch.randint(0, 64, (64 * 4, 2))
    pos = torch.randn(len(tpairs), 12)
    times = []
    for it in range(4):
        t0 = time.perf_counter()
        out = tp(tracks, tpairs, pos)
        loss = torch.nn.functional.binary_cross_entropy(
            out["pred_probs"], torch.zeros_like(out["pred_probs"])
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it:
            times.append(time.perf_counter() - t0)
    rows.append(
        (
            "VidVRD-II tracklet pairs",
            "tracklet features",
            float("nan"),
            len(tpairs) * len(times) / sum(times),
        )
    )
    lines = [
        "## Context-model training throughput (pixels vs cached features)",
        "",
        "Command: `.venv/bin/python benchmarks/bench_model_throughput.py`",
        "",
        "Batch of 16 synth-vg scenes at 128 px (3–10 objects; every annotated pair + ≤ 16 "
        "background pairs per image), "
        "forward + backward + AdamW step, 2 CPU threads; `pixels` trains the ResNet-18 trunk (to "
        "layer2) and RoI heads "
        "with object and union features, `cached` reads frozen 256-d object features from the "
        "HDF5 cache.",
        "",
        "| model | features | images / s | pairs / s |",
        "|---|---|---|---|",
    ]
    for name, mode, ips, pps in rows:
        lines.append(f"| {name} | {mode} | {'–' if ips != ips else f'{ips:.0f}'} | {pps:.0f} |")
    out = Path(__file__).resolve().parent / "results" / "model_throughput.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
