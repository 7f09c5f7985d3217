"""What a damaged byte in a tailgraph HDF5 file does to the reader, by HDF5 file layout.

A binary ground-truth file (``tailgraph-bin/1``, the synthetic generator's scene graphs) is
written in two layouts: HDF5's oldest (``libver="earliest"``: version-0 superblock and
version-1 object headers, no checksums) and the 1.8 layout (``libver="v108"``: version-2
superblock and object headers, each with a checksum). For each layout, ``--trials`` copies get
one byte replaced by a random other value at a random offset — ``--trials`` offsets in the
datasets' raw data (contiguous, memory-mapped, checked by neither layout; tailgraph's writer
records a CRC-32 per array in ``meta``, which the reader checks) and as many in
everything else (superblock, object headers, heaps, B-trees: the metadata) — and each copy is
read with :func:`tailgraph.io.binformat.read_ground_truth_binary` (which walks the file in a
probe child first, ``TAILGRAPH_H5_PROBE_S`` seconds) in a child process. Outcomes:

* ``same``: the read equals the undamaged file's (the byte was padding or unused);
* ``error``: tailgraph's one-line error (``DataError``);
* ``changed``: a read that succeeds with different values — silent damage;
* ``traceback``: any other exception;
* ``crash`` / ``hang``: the child died of a signal / outlived ``--timeout``.

    .venv/bin/python benchmarks/bench_h5_corruption.py --trials 400 --json OUT
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tailgraph.errors import DataError  # noqa: E402
from tailgraph.io import outputs  # noqa: E402
from tailgraph.io.binformat import (  # noqa: E402
    ground_truth_arrays,
    read_ground_truth_binary,
    write_binary,
)

OUTCOMES = ("same", "error", "changed", "traceback", "crash", "hang")


def ground_truth(images: int, seed: int) -> tuple[dict, dict]:
    """Arrays and meta of a ground truth shaped like synth-vg's test split."""
    rng = np.random.default_rng(seed)
    graphs = []
    for i in range(images):
        n = int(rng.integers(2, 12))
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(8, 200, (n, 2))
        m = int(rng.integers(1, 2 * n))
        rels = np.stack([rng.integers(0, n, m), rng.integers(0, n, m), rng.integers(1, 51, m)], 1)
        rels = rels[rels[:, 0] != rels[:, 1]]
        graphs.append(
            {
                "image_id": i,
                "width": 640,
                "height": 640,
                "boxes": np.concatenate([xy, xy + wh], 1).astype(np.float32),
                "labels": rng.integers(1, 151, n),
                "relations": rels,
            }
        )
    meta = {
        "object_classes": ["__background__", *[f"c{i}" for i in range(1, 151)]],
        "predicates": ["__background__", *[f"p{i}" for i in range(1, 51)]],
    }
    return ground_truth_arrays(graphs), meta


def data_regions(path: Path) -> list[tuple[int, int]]:
    import h5py

    regions = []
    with h5py.File(path, "r") as f:
        for name in f:
            d = f[name]
            off = d.id.get_offset()
            if off is not None:
                regions.append((off, off + d.id.get_storage_size()))
    return regions


def canonical(path: Path) -> bytes:
    graphs, meta = read_ground_truth_binary(path)
    rows = [
        (
            g["image_id"],
            g["width"],
            g["height"],
            *(np.asarray(g[k]).tolist() for k in ("boxes", "labels", "relations")),
        )
        for g in graphs
    ]
    return pickle.dumps((rows, meta))


def read_in_child(path: Path, reference: bytes, timeout: float) -> str:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            out = "same" if canonical(path) == reference else "changed"
        except DataError:
            out = "error"
        except BaseException:
            out = "traceback"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(r)
            return "hang"
        time.sleep(0.005)
    got = os.read(r, 64).decode()
    os.close(r)
    if os.WIFSIGNALED(status):
        return "crash"
    return got or "crash"


def run(layouts: list[str], trials: int, images: int, seed: int, timeout: float) -> dict:
    arrays, meta = ground_truth(images, seed)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for libver in layouts:
            outputs.H5_LIBVER = libver
            clean = Path(tmp, f"clean-{libver}.h5")
            write_binary(clean, "ground_truth", arrays, meta)
            reference = canonical(clean)
            raw = clean.read_bytes()
            regions = data_regions(clean)
            in_data = np.zeros(len(raw), bool)
            for a, b in regions:
                in_data[a:b] = True
            offsets = {
                "metadata": np.flatnonzero(~in_data).tolist(),
                "data": np.flatnonzero(in_data).tolist(),
            }
            rng = random.Random(seed)
            counts = {part: dict.fromkeys(OUTCOMES, 0) for part in offsets}
            t0 = time.perf_counter()
            path = Path(tmp, "damaged.h5")
            for part, where in offsets.items():
                for _ in range(trials):
                    at = rng.choice(where)
                    damaged = bytearray(raw)
                    damaged[at] = (damaged[at] + rng.randrange(1, 256)) % 256
                    path.write_bytes(bytes(damaged))
                    counts[part][read_in_child(path, reference, timeout)] += 1
            data_bytes = sum(b - a for a, b in regions)
            results[libver] = {
                "file_bytes": len(raw),
                "metadata_bytes": len(raw) - data_bytes,
                "counts": counts,
                "seconds": time.perf_counter() - t0,
            }
            print(libver, json.dumps(results[libver]), flush=True)
    return results


def table(results: dict) -> str:
    lines = [
        "| layout | bytes (metadata) | damaged byte in | " + " | ".join(OUTCOMES) + " |",
        "|---|---|---|" + "---|" * len(OUTCOMES),
    ]
    for libver, r in results.items():
        for part, c in r["counts"].items():
            lines.append(
                f"| `{libver}` | {r['file_bytes']} ({r['metadata_bytes']}) | {part} | "
                + " | ".join(str(c[o]) for o in OUTCOMES)
                + " |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layouts", nargs="+", default=["earliest", "v108"])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per read")
    ap.add_argument("--probe-s", type=float, default=5.0, help="TAILGRAPH_H5_PROBE_S")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    os.environ["TAILGRAPH_H5_PROBE_S"] = str(a.probe_s)
    results = run(a.layouts, a.trials, a.images, a.seed, a.timeout)
    Path(a.json).write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
