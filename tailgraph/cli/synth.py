"""``tailgraph synth``: generate a synthetic long-tailed benchmark in a real data set's format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tailgraph.data.synthetic import SynthInfo
from tailgraph.io.args import int_in
from tailgraph.protocols import DATA_KINDS

__all__ = ["main", "print_vg_stats", "MAX_ITEMS", "MIN_SIZE", "MAX_SIZE"]

MAX_ITEMS = 200_000  # images / videos per split
MIN_SIZE, MAX_SIZE = 32, 4096  # canvas side in pixels


def print_vg_stats(info: Any, out: Path) -> Path:
    """Print predicate counts, coarse/fine share and relations per image; plot the histogram."""
    from tailgraph.viz.histogram import plot_predicate_histogram

    vocab = info.vocab
    fg = vocab.foreground_predicates
    names = [vocab.predicates[i] for i in fg]
    counts = [vocab.predicate_counts[i] for i in fg]
    fine = [vocab.coarse_parent[i] > 0 for i in fg]
    train = info.splits["train"]
    rels = np.array([g.num_relations for g in train])
    total = max(1, sum(counts))
    nz = [c for c in counts if c > 0]
    print(
        f"training images: {len(train)}, relations: {int(rels.sum())}, per image: mean "
        f"{rels.mean():.2f}, max {rels.max()}"
    )
    print(
        f"head/tail ratio (most / least frequent seen predicate): {max(nz) / min(nz):.0f}; "
        f"unseen predicates: {counts.count(0)}"
    )
    print(
        "fine-predicate share of annotations: "
        f"{sum(c for c, f in zip(counts, fine) if f) / total:.3f}"
    )
    clean = (
        np.concatenate([g.extras["fine_relations"][:, 2] for g in train])
        if train
        else np.zeros(0, int)
    )
    print(f"true relations (before coarse labelling and missing labels): {clean.shape[0]}")
    print(f"{'predicate':<26}{'count':>8}  parent")
    for i in np.argsort(-np.asarray(counts), kind="stable"):
        parent = vocab.coarse_parent[fg[i]]
        print(f"{names[i]:<26}{counts[i]:>8}  {vocab.predicates[parent] if parent > 0 else ''}")
    return plot_predicate_histogram(
        names,
        counts,
        out / "predicate_histogram.png",
        fine,
        title=f"{vocab.name}: training predicates",
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph synth", description="Generate a synthetic long-tailed SGG benchmark."
    )
    variants = {k.synthetic: k for k in DATA_KINDS.values()}
    p.add_argument("--variant", default="synth-vg", choices=sorted(variants))
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--train",
        type=int_in(0, MAX_ITEMS),
        default=2000,
        help=f"training images / videos (0-{MAX_ITEMS})",
    )
    p.add_argument(
        "--test",
        type=int_in(0, MAX_ITEMS),
        default=400,
        help=f"test images / videos (0-{MAX_ITEMS})",
    )
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="0-2^32-1")
    p.add_argument(
        "--size",
        type=int_in(MIN_SIZE, MAX_SIZE),
        default=192,
        help=f"canvas size in pixels ({MIN_SIZE}-{MAX_SIZE})",
    )
    p.add_argument("--stats", action="store_true", help="print and plot the predicate statistics")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    a = p.parse_args(argv)
    if a.train + a.test == 0:
        p.error("--train and --test are both 0: nothing to generate")
    from tailgraph.io.outputs import build_folder_atomically

    def build(tmp: Path):
        return variants[a.variant].generate(
            str(tmp), num_train=a.train, num_test=a.test, seed=a.seed, image_size=a.size
        )

    # generated into a temporary folder, renamed into place when complete
    info = build_folder_atomically(a.out, build, overwrite=a.overwrite)
    print(f"{a.variant}: wrote {a.train} train + {a.test} test to {a.out} in {info.seconds:.1f} s")
    if a.stats:
        if isinstance(info, SynthInfo):  # synth-vg: granularity, missing labels, histogram
            path = print_vg_stats(info, Path(a.out))
            print(f"histogram: {path}")
        else:
            stats = variants[a.variant].stats(a.out)
            for split, st in stats["filtered"]["splits"].items():
                print(f"{split}: {st}")
            for name, c in sorted(
                stats["filtered"]["predicate_counts"].items(), key=lambda kv: -kv[1]
            ):
                print(f"{name:<24}{c:>8}")
    return 0
