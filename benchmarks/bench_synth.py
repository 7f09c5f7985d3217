"""synth-vg generation speed (one process, one core), files included.

.venv/bin/python benchmarks/bench_synth.py [--n 1000] [--size 192]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from tailgraph.data.synthetic import (
    SynthVGConfig,
    build_world,
    generate_synth_vg,
    sample_scene,
    scene_seed,
)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=192)
    a = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    world = build_world(0, SynthVGConfig(image_size=a.size))
    t0 = time.perf_counter()
    for i in range(a.n):
        sample_scene(world, scene_seed(0, i))
    draw_rate = a.n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        generate_synth_vg(d, num_train=a.n, num_test=0, image_size=a.size)
        file_rate = a.n / (time.perf_counter() - t0)
    print(
        f"synth-vg {a.size}px, one core: {draw_rate:.0f} scenes/s drawn in memory, "
        f"{file_rate:.0f} images/s written as VG150 files (JPEG + h5 + JSON)"
    )
    from tailgraph.data.synthetic.ag import generate_synth_ag

    with tempfile.TemporaryDirectory() as d:
        info = generate_synth_ag(d, num_train=max(1, a.n // 10), num_test=0, image_size=a.size)
        frames = sum(len(v) for v in info.videos["train"])
    print(
        f"synth-ag {a.size}px, one core: {frames / info.seconds:.0f} frames/s written as Action "
        f"Genome files "
        f"({max(1, a.n // 10)} videos, {frames} frames; JPEG + pickles)"
    )
    from tailgraph.data.synthetic.oi import generate_synth_oi

    with tempfile.TemporaryDirectory() as d:
        info = generate_synth_oi(d, num_train=a.n, num_test=0, image_size=a.size)
    print(
        f"synth-oi {a.size}px, one core: {a.n / info.seconds:.0f} images/s written as Open Images "
        f"VRD files (JPEG + CSV)"
    )
    from tailgraph.data.synthetic.vrd import generate_synth_vrd

    with tempfile.TemporaryDirectory() as d:
        info = generate_synth_vrd(d, num_train=max(1, a.n // 25), num_test=0, image_size=a.size)
        frames = sum(doc["frame_count"] for doc in info.docs["train"])
    print(
        f"synth-vrd {a.size}px, one core: {frames / info.seconds:.0f} frames/s written as VidVRD "
        f"files "
        f"({max(1, a.n // 25)} videos, {frames} frames; JPEG + JSON)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
