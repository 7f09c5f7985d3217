"""The built-in long-tailed benchmark (specs/synthetic.md), written in the real formats."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from tailgraph.data.synthetic.vg_scenes import (
    SynthVGConfig,
    SynthVGWorld,
    build_world,
    sample_scene,
)
from tailgraph.structures import SceneGraph
from tailgraph.vocab import Vocabulary

__all__ = [
    "generate_synth_vg",
    "SynthInfo",
    "SynthVGConfig",
    "SynthVGWorld",
    "build_world",
    "sample_scene",
    "scene_seed",
]


@dataclass
class SynthInfo:
    """What :func:`generate_synth_vg` wrote."""

    root: Path
    vocab: Vocabulary
    splits: dict[str, list[SceneGraph]]
    seconds: float


def scene_seed(seed: int, index: int) -> tuple[int, int, int]:
    """The RNG seed of scene ``index`` of a set generated with ``seed`` (independent streams)."""
    return (int(seed), 104729, int(index))


def generate_synth_vg(
    out_dir: str | os.PathLike,
    *,
    num_train: int,
    num_test: int,
    seed: int = 0,
    image_size: int = 192,
    num_classes: int = 40,
    num_predicates: int = 50,
    p_coarse: float = 0.4,
    p_missing: float = 0.2,
    head_tail_ratio: float = 1000.0,
    max_units: int = 4,
    max_objects: int = 10,
    jpeg_quality: int = 92,
    write_images: bool = True,
) -> SynthInfo:
    """Generate synth-vg into ``out_dir`` in the VG150 file format.

    Writes ``VG-SGG-with-attri.h5``, ``VG-SGG-dicts.json``, ``image_data.json``,
    ``tailgraph-vocab.json`` (predicate metadata) and ``images/<image_id>.jpg``. The same
    arguments give byte-identical files. ``max_units`` bounds the true relations per scene
    (uniform in 1 … ``max_units``), ``max_objects`` the boxes; ``head_tail_ratio`` is the
    ratio of the most to the least likely predicate before coarse labelling. Image ids are 1..N
    (train first, then test).

    Returns:
        :class:`SynthInfo` with the in-memory truth (annotated relations; the clean fine
        relations in ``graph.extras["fine_relations"]``) and the vocabulary whose
        ``predicate_counts`` are the annotated training counts.
    """
    from tailgraph.data.vg import write_vg

    t0 = time.perf_counter()
    cfg = SynthVGConfig(
        image_size=image_size,
        num_classes=num_classes,
        num_predicates=num_predicates,
        p_coarse=p_coarse,
        p_missing=p_missing,
        head_tail_ratio=head_tail_ratio,
        max_units=max_units,
        max_objects=max_objects,
    )
    world = build_world(seed, cfg)
    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[SceneGraph]] = {"train": [], "test": []}
    index = 0
    from tailgraph.progress import track

    steps = track(range(num_train + num_test), "generate synth-vg", unit="img")
    for split, n in (("train", num_train), ("test", num_test)):
        for _ in range(n):
            next(steps)
            image, graph = sample_scene(world, scene_seed(seed, index), image_id=index + 1)
            if write_images:
                tmp = img_dir / f"{index + 1}.jpg.tmp"
                image.save(tmp, format="JPEG", quality=jpeg_quality)
                os.replace(tmp, img_dir / f"{index + 1}.jpg")
                graph.image_path = str(img_dir / f"{index + 1}.jpg")
            splits[split].append(graph)
            index += 1
    for _ in steps:  # the bar's last step, and closed
        pass
    import numpy as np

    pc = np.zeros(world.vocab.num_predicates, dtype=np.int64)
    oc = np.zeros(world.vocab.num_classes, dtype=np.int64)
    for g in splits["train"]:
        pc += np.bincount(g.relations[:, 2].numpy(), minlength=len(pc))
        oc += np.bincount(g.labels.numpy(), minlength=len(oc))
    vocab = world.vocab.with_counts(pc.tolist(), oc.tolist())
    write_vg(out, splits, vocab)
    return SynthInfo(out, vocab, splits, time.perf_counter() - t0)


def generate_into(root: str | os.PathLike, marker: str, generate) -> None:
    """Generate a synthetic data set for a data module's first use: ``generate(folder)`` writes
    into a temporary folder that is renamed to ``root`` when complete, so an interrupted
    generation never leaves a partial data set behind. A non-empty ``root`` without the data
    set's ``marker`` is refused (it is not ours to replace)."""
    from tailgraph.errors import DataError
    from tailgraph.io.outputs import build_folder_atomically

    root = Path(root)
    if root.is_dir() and any(root.iterdir()):
        raise DataError(
            f"exists but holds no generated data set (no {marker}): remove it or choose "
            "another root",
            file=str(root),
            field="root",
        )
    build_folder_atomically(root, generate, overwrite=True)
