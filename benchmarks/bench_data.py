"""Reader throughput per data set format and feature-cache build / read speed.

    .venv/bin/python benchmarks/bench_data.py

Synthetic sets are generated into a temporary folder first (not timed); RS-VG is the real
third-party VG-format set in ../shared/data/rs-vg.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    torch.set_num_threads(2)
    from tailgraph.data.action_genome import load_ag
    from tailgraph.data.images import GraphImageDataset, collate_graph_batch
    from tailgraph.data.openimages import load_oi
    from tailgraph.data.synthetic import generate_synth_vg
    from tailgraph.data.synthetic.ag import generate_synth_ag
    from tailgraph.data.synthetic.oi import generate_synth_oi
    from tailgraph.data.synthetic.vrd import generate_synth_vrd
    from tailgraph.data.vg import load_vg
    from tailgraph.data.vidvrd import load_vidvrd
    from tailgraph.datamodules.feature_cache import CachedFeatures, build_cache, extractor_checksum
    from tailgraph.modeling.roi import PixelFeatures

    rows = []
    rs = HERE.parent.parent / "shared" / "data" / "rs-vg"
    (graphs, _), dt = timed(lambda: load_vg(rs, "train", count_split=None))
    rows.append(
        ("VG150 format: RS-VG train split (real files, layout-only)", len(graphs), "images", dt)
    )
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        generate_synth_vg(d / "vg", num_train=1000, num_test=10, image_size=128)
        (graphs, _), dt = timed(
            lambda: load_vg(d / "vg", "train", layout_only=False, count_split=None)
        )
        rows.append(
            ("VG150 format: synth-vg (1,000 images, paths checked)", len(graphs), "images", dt)
        )
        generate_synth_ag(d / "ag", num_train=100, num_test=2, image_size=64)
        (videos, _), dt = timed(lambda: load_ag(d / "ag", "train"))
        rows.append(
            (
                "Action Genome: synth-ag (pickles, restricted unpickler)",
                sum(len(v) for v in videos),
                "frames",
                dt,
            )
        )
        generate_synth_vrd(d / "vrd", num_train=100, num_test=2, image_size=64, write_frames=False)
        (videos, _), dt = timed(lambda: load_vidvrd(d / "vrd", "train"))
        rows.append(
            ("VidVRD: synth-vrd (per-video JSON)", sum(len(v) for v in videos), "frames", dt)
        )
        generate_synth_oi(d / "oi", num_train=1000, num_test=2, image_size=64)
        (graphs_oi, _), dt = timed(lambda: load_oi(d / "oi", "train"))
        rows.append(("Open Images VRD: synth-oi (CSV)", len(graphs_oi), "images", dt))

        # feature cache: frozen ResNet-18 to layer3 + RoIAlign object features at 128 px
        vg_graphs, _ = load_vg(d / "vg", "train", layout_only=False, count_split=None)
        vg_graphs = vg_graphs[:300]
        fx = PixelFeatures(
            last_stage="layer3", out_dim=256, frozen_trunk=True, union_features=False
        )
        ds = GraphImageDataset(vg_graphs, max_size=128)
        loader = torch.utils.data.DataLoader(ds, batch_size=16, collate_fn=collate_graph_batch)
        _, build_s = timed(lambda: build_cache(d / "cache.h5", fx, loader, {"max_size": 128}))
        cache = CachedFeatures(d / "cache.h5", extractor_checksum(fx, {"max_size": 128}))
        _, read_s = timed(lambda: [cache.features(g) for g in vg_graphs])
        cache.close()
        n_boxes = sum(g.num_boxes for g in vg_graphs)
    lines = [
        "## Reader throughput and feature cache",
        "",
        "Command: `.venv/bin/python benchmarks/bench_data.py`",
        "",
        "| reader | samples | seconds | samples / s |",
        "|---|---|---|---|",
    ]
    for name, n, unit, dt in rows:
        lines.append(f"| {name} | {n} {unit} | {dt:.2f} | {n / dt:,.0f} |")
    lines += [
        "",
        f"Feature cache (frozen ResNet-18 to layer3, 128 px, 256-d object features, "
        f"{len(vg_graphs)} images / {n_boxes} boxes): "
        f"build {build_s:.1f} s ({len(vg_graphs) / build_s:.0f} images/s, including image "
        f"decoding and the trunk), "
        f"read {read_s:.2f} s ({len(vg_graphs) / read_s:,.0f} images/s).",
    ]
    (HERE / "results" / "data.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
