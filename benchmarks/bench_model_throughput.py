"""Training throughput of each context model from pixels and on cached features
(2 CPU threads; image models: batch 16 synth-vg scenes at 128 px, ResNet-18 to layer2, 256-d
features; STTran: the synth-ag recipe on 6 generated videos, the recipe's pixel path and
``CachedTrunkFeatures``), all rows in one run. ``--compile`` adds each cached-feature row
again with ``model.compile: true`` (inductor; compilation is outside the timed steps),
``--bf16`` with ``bf16-mixed`` (CPU bfloat16 autocast).

    .venv/bin/python benchmarks/bench_model_throughput.py [--compile] [--bf16] [--json OUT]

``OUT``: ``{"rows": [{"model", "features", "compiled", "precision", "images_per_s",
"pairs_per_s"}]}``
(``model`` among pairwise, motifs, transformer, vctree, sttran, negmining, vidvrd_ii; for
STTran an image is a frame).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_context_models import MODELS  # noqa: E402  (the same four image context models)

KEYS = {
    "pairwise MLP": "pairwise",
    "MOTIFS": "motifs",
    "Transformer": "transformer",
    "VCTree": "vctree",
}
ROOT = Path(__file__).resolve().parents[1]


def timed_steps(
    m, batches, iters: int, warm: int, precision: str = "32"
) -> tuple[float, float, int]:
    """Seconds, images and pairs of ``iters`` training steps of module ``m`` over
    ``batches`` (cycled), after ``warm`` untimed steps; ``precision`` ``bf16-mixed`` runs the
    forward and the losses under CPU bfloat16 autocast (what Lightning's ``bf16-mixed`` does)."""
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], 1e-3)
    seconds, images, npairs = 0.0, 0, 0
    for it in range(warm + iters):
        batch = batches[it % len(batches)]
        t0 = time.perf_counter()
        b = m.train_batch(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = sum(m.method.training_step(m.model, b).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it >= warm:
            seconds += time.perf_counter() - t0
            images += len(batch)
            npairs += sum(p.shape[0] for p in b.pairs)
    return seconds, images, npairs


def sttran_rows(compile_: bool, bf16: bool, tmp: Path) -> list[tuple]:
    """STTran (the synth-ag recipe) from pixels and from ``CachedTrunkFeatures``."""
    import yaml

    from tailgraph.data.synthetic.ag import generate_synth_ag
    from tailgraph.datamodules.ag import AGDataModule
    from tailgraph.engine.module import SGGModule
    from tailgraph.stats import TrainStats

    cfg = yaml.safe_load((ROOT / "configs" / "synthetic" / "ag_predcls_sttran.yaml").read_text())
    init = cfg["data"]["init_args"]
    generate_synth_ag(tmp / "ag", num_train=6, num_test=1, image_size=init["synth_size"])
    dm = AGDataModule(**dict(init, root=str(tmp / "ag"), val_fraction=0.0))
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    stats = TrainStats.from_graphs(dm.train_graphs(), dm.vocab)
    feats = cfg["model"]["features"]
    cached = {
        "class_path": "tailgraph.modeling.roi.CachedTrunkFeatures",
        "init_args": dict(feats["init_args"]),
    }
    variants = [("pixels", feats, False, "32"), ("cached", cached, False, "32")]
    if compile_:
        variants.append(("cached", cached, True, "32"))
    if bf16:
        variants.append(("cached", cached, False, "bf16-mixed"))
    rows = []
    for mode, spec, comp, prec in variants:
        torch.manual_seed(0)
        torch._dynamo.reset()
        m = SGGModule(**dict(cfg["model"], features=spec, compile=comp))
        m.build(dm.vocab, dm.protocol, stats)
        m.train()
        if mode == "cached":  # fill the cache first: the timed steps read it
            with torch.no_grad():
                for b in batches:
                    m.model.features.feature_map(b.images)
        sec, images, npairs = timed_steps(m, batches, 2 * len(batches), len(batches), prec)
        rows.append(("STTran", "sttran", mode, comp, prec, images / sec, npairs / sec))
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compile", action="store_true", help="also time model.compile: true")
    ap.add_argument("--bf16", action="store_true", help="also time bf16-mixed (CPU autocast)")
    ap.add_argument("--json", help="write the rows as JSON here")
    a = ap.parse_args()
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
        variants = [("pixels", False, "32"), ("cached", False, "32")]
        variants += [("cached", True, "32")] * a.compile
        variants += [("cached", False, "bf16-mixed")] * a.bf16
        for name, path in MODELS.items():
            for mode, comp, prec in variants:
                feats = {
                    "class_path": "tailgraph.modeling.roi.PixelFeatures",
                    "init_args": {"last_stage": "layer2", "out_dim": 256},
                }
                torch.manual_seed(0)
                torch._dynamo.reset()  # a fresh compile cache per compiled model
                m = SGGModule(
                    context={"class_path": path, "init_args": {"hidden_dim": 256}},
                    features=feats if mode == "pixels" else None,
                    compile=comp,
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
                sec, n_img, npairs = timed_steps(m, [batch], 5, 3 if comp else 1, prec)
                rows.append((name, KEYS[name], mode, comp, prec, n_img / sec, npairs / sec))
                print(rows[-1], flush=True)
        cache.close()
        rows += sttran_rows(a.compile, a.bf16, Path(d))
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
            "negmining",
            "pixels",
            False,
            "32",
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
            "vidvrd_ii",
            "tracklet features",
            False,
            "32",
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
        "HDF5 cache. STTran: the synth-ag recipe on 6 generated videos (an image is a frame), "
        "`pixels` its trainable trunk, `cached` `CachedTrunkFeatures` filled before the timed "
        "steps. `compiled`: `model.compile: true` (inductor), compilation not timed.",
        "",
        "| model | features | compiled | precision | images / s | pairs / s |",
        "|---|---|---|---|---|---|",
    ]
    for name, _, mode, comp, prec, ips, pps in rows:
        ips_s = "–" if ips != ips else f"{ips:.0f}"
        yes = "yes" if comp else "no"
        lines.append(f"| {name} | {mode} | {yes} | {prec} | {ips_s} | {pps:.0f} |")
    out = Path(__file__).resolve().parent / "results" / "model_throughput.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if a.json:
        doc = {
            "rows": [
                {
                    "model": key,
                    "features": mode,
                    "compiled": comp,
                    "precision": prec,
                    "images_per_s": None if ips != ips else round(ips, 2),
                    "pairs_per_s": round(pps, 1),
                }
                for _, key, mode, comp, prec, ips, pps in rows
            ]
        }
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
