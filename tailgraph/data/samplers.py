"""Samplers and batching for long-tailed relation training, usable with a plain DataLoader and
under DDP (each rank draws its own shard: pass ``num_replicas`` / ``rank`` or let them come
from ``torch.distributed``).

* :class:`AspectBinBatchSampler` + :func:`resize_scale` + :func:`sample_relation_pairs` — the
  negative-mining paper's batches: images from one aspect bin (wide / tall), shorter side
  resized to 480 with the longer ≤ 960, zero-padded; all annotated relations positive, all
  unannotated ordered pairs of annotated boxes negative; at most 400 relations per batch with
  between 25 % and 75 % positives.
* :class:`RepeatFactorSampler` — class-aware repeat-factor sampling (LVIS style) over
  predicates: an image is repeated ``max_c max(1, sqrt(t / f_c))`` times per epoch (stochastic
  rounding), ``f_c`` = fraction of images containing predicate ``c``.
* :class:`VideoSampler` + :func:`video_collate` — one video (its frames, any length) per batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from tailgraph.structures import SceneGraph, VideoSceneGraph

__all__ = [
    "resize_scale",
    "AspectBinBatchSampler",
    "sample_relation_pairs",
    "RepeatFactorSampler",
    "VideoSampler",
    "ShardSampler",
    "video_collate",
    "repeat_factors",
]


def _dist(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    if num_replicas is None or rank is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} outside [0, {num_replicas})")
    return num_replicas, rank


def resize_scale(width: int, height: int, shorter: int = 480, longer_max: int = 960) -> float:
    """Scale that makes the shorter side ``shorter`` unless the longer would exceed
    ``longer_max``."""
    return min(shorter / min(width, height), longer_max / max(width, height))


class AspectBinBatchSampler(Sampler[list[int]]):
    """Batches of image indices drawn from one aspect bin (wide: width ≥ height, or tall).

    Args:
        sizes: ``(width, height)`` per image.
        batch_size: images per batch (paper: 40).
        shuffle, seed: reshuffle every epoch (call :meth:`set_epoch`).
        drop_last: drop each bin's incomplete last batch.
        num_replicas, rank: DDP shard (default: from ``torch.distributed``).
        pad: equal batch counts per rank (training) instead of disjoint, complete shards.
    """

    def __init__(
        self,
        sizes: Sequence[tuple[int, int]],
        batch_size: int = 40,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
        pad: bool = True,
    ) -> None:
        self.pad = pad
        self.sizes = list(sizes)
        self.batch_size, self.shuffle, self.seed, self.drop_last = (
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.num_replicas, self.rank = _dist(num_replicas, rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        bins: dict[bool, list[int]] = {True: [], False: []}
        order = (
            torch.randperm(len(self.sizes), generator=g).tolist()
            if self.shuffle
            else range(len(self.sizes))
        )
        for i in order:
            w, h = self.sizes[i]
            bins[w >= h].append(i)
        batches = []
        for members in bins.values():
            for s in range(0, len(members), self.batch_size):
                chunk = members[s : s + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        # training: every rank gets the same number of batches (DDP steps must match);
        # evaluation (pad false): disjoint shards that together hold every image once
        return iter(_shard(self._batches(), self.num_replicas, self.rank, self.pad))

    def __len__(self) -> int:
        return len(_shard(self._batches(), self.num_replicas, self.rank, self.pad))


def sample_relation_pairs(
    graphs: Sequence[SceneGraph],
    max_relations: int = 400,
    min_pos: float = 0.25,
    max_pos: float = 0.75,
    generator: torch.Generator | None = None,
    negatives: bool = True,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Choose the training pairs of a batch.

    Every annotated (subject, object) pair is a positive, every other ordered pair of distinct
    annotated boxes a negative. At most ``max_relations`` pairs are kept, and the *fraction*
    of positives among them lies in ``[min_pos, max_pos]`` whenever the batch has both kinds:
    with too few negatives some positives are dropped, with too few positives some negatives.

    Args:
        graphs: the batch's images.
        max_relations: pairs per batch.
        min_pos, max_pos: bounds on the positive fraction (``0 ≤ min_pos ≤ max_pos ≤ 1``).
        generator: randomness of the subsampling.
        negatives: ``False`` keeps positives only (GT-only training).
    Returns:
        Per image ``(pairs [p, 2] local indices, labels [p])`` with label 0 for negatives and
        one annotated predicate for positives.
    """
    if not 0.0 <= min_pos <= max_pos <= 1.0:
        raise ValueError(f"need 0 <= min_pos <= max_pos <= 1, got {min_pos}, {max_pos}")
    if max_relations <= 0:
        raise ValueError(f"max_relations must be positive, got {max_relations}")
    pos, neg = [], []
    for i, g in enumerate(graphs):
        n = g.num_boxes
        lab = torch.zeros((n, n), dtype=torch.int64)
        if g.num_relations:
            rel = g.relations.cpu()
            lab[rel[:, 0], rel[:, 1]] = rel[:, 2]
        related = lab > 0
        pos += [(i, s, o, int(lab[s, o])) for s, o in related.nonzero().tolist()]
        if negatives:
            free = ~related
            free.fill_diagonal_(False)
            neg += [(i, s, o, 0) for s, o in free.nonzero().tolist()]
    n_pos, n_neg = min(len(pos), max_relations), 0
    if negatives:
        n_pos = min(len(pos), math.floor(max_pos * max_relations))
        n_neg = min(len(neg), max_relations - n_pos)
        if n_pos and n_neg:
            # positive fraction p / (p + n) within [min_pos, max_pos]
            if min_pos > 0:
                n_neg = min(n_neg, math.floor(n_pos * (1 - min_pos) / min_pos))
            if max_pos < 1:
                n_pos = min(n_pos, math.floor(n_neg * max_pos / (1 - max_pos)))
    if n_pos < len(pos):
        idx = torch.randperm(len(pos), generator=generator)[:n_pos].tolist()
        pos = [pos[k] for k in sorted(idx)]
    if n_neg < len(neg):
        idx = torch.randperm(len(neg), generator=generator)[:n_neg].tolist()
        neg = [neg[k] for k in sorted(idx)]
    out = []
    rows_by_image: dict[int, list] = {}
    for r in pos + neg:
        rows_by_image.setdefault(r[0], []).append(r)
    for i in range(len(graphs)):
        rows = rows_by_image.get(i, [])
        pairs = torch.tensor([[s, o] for _, s, o, _ in rows], dtype=torch.int64).reshape(-1, 2)
        out.append((pairs, torch.tensor([p for *_, p in rows], dtype=torch.int64)))
    return out


def repeat_factors(
    graphs: Sequence[SceneGraph], num_predicates: int, threshold: float = 0.1
) -> torch.Tensor:
    """``[len(graphs)]`` repeat factor of each image: ``max_c max(1, sqrt(t / f_c))`` over the
    foreground predicates ``c`` it contains (1 for images without relations)."""
    n = len(graphs)
    present = torch.zeros((n, num_predicates), dtype=torch.bool)
    for i, g in enumerate(graphs):
        if g.num_relations:
            present[i, g.relations[:, 2]] = True
    present[:, 0] = False
    freq = present.float().sum(0) / max(n, 1)
    per_class = torch.where(
        freq > 0,
        torch.sqrt(threshold / freq.clamp_min(1e-12)).clamp_min(1.0),
        torch.ones_like(freq),
    )
    factors = (
        torch.where(present, per_class.expand(n, -1), torch.ones(n, num_predicates))
        .max(dim=1)
        .values
    )
    return factors


class RepeatFactorSampler(Sampler[int]):
    """Repeat-factor sampling over predicates (stochastic rounding per epoch), DDP-sharded.

    Args:
        graphs: the training graphs.
        num_predicates: predicate count incl. background.
        threshold: ``t``; predicates in fewer than a fraction ``t`` of the images are repeated.
        seed: randomness of rounding and shuffling (epoch added via :meth:`set_epoch`).
        num_replicas, rank: DDP shard (default: from ``torch.distributed``).
    """

    def __init__(
        self,
        graphs: Sequence[SceneGraph],
        num_predicates: int,
        threshold: float = 0.1,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        self.factors = repeat_factors(graphs, num_predicates, threshold)
        self.seed = seed
        self.num_replicas, self.rank = _dist(num_replicas, rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        base = self.factors.floor()
        extra = (torch.rand(len(self.factors), generator=g) < (self.factors - base)).float()
        reps = (base + extra).long()
        idx = torch.repeat_interleave(torch.arange(len(self.factors)), reps)
        idx = idx[torch.randperm(len(idx), generator=g)].tolist()  # type: ignore[assignment]
        per_rank = math.ceil(len(idx) / self.num_replicas)
        idx = idx + idx[: per_rank * self.num_replicas - len(idx)]
        return idx[self.rank :: self.num_replicas]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def _shard(idx: list, num_replicas: int, rank: int, pad: bool) -> list:
    """Rank ``rank``'s share of ``idx``: every ``num_replicas``-th item. ``pad`` repeats items
    from the start so every rank has the same count (training: DDP steps must match);
    without it the shards are disjoint and together exactly ``idx`` (evaluation: no item is
    counted twice)."""
    if pad and idx:
        per_rank = math.ceil(len(idx) / num_replicas)
        idx = idx + idx[: per_rank * num_replicas - len(idx)]
    elif 0 < len(idx) < num_replicas:
        # Lightning skips the evaluation loop of a process with no batch, while the others
        # wait for it to join the metric's gather: refuse (every process raises alike)
        from tailgraph.errors import DataError

        raise DataError(
            f"{len(idx)} evaluation item(s) for {num_replicas} DDP processes: every process "
            "needs at least one (use fewer devices, or a larger val / test split)",
            field="trainer.devices",
        )
    return idx[rank::num_replicas]


class ShardSampler(Sampler[int]):
    """Indices ``0 … n−1`` (shuffled when ``shuffle``), DDP-sharded; ``pad`` as :func:`_shard`
    (training: true; evaluation: false).

    Shuffling: with a ``seed``, the permutation of epoch ``e`` is drawn from ``seed + e``
    (call :meth:`set_epoch`; every rank draws the same one). Without a seed in a single
    process it is drawn from the global RNG exactly as ``DataLoader(shuffle=True)`` does (so
    ``seed_everything`` fixes it); under DDP a missing seed is Lightning's global seed.

    Args:
        n: dataset size.
        shuffle, seed: see above.
        pad: equal counts per rank (repeating items) instead of disjoint, complete shards.
        num_replicas, rank: DDP shard (default: from ``torch.distributed``).
        groups: ``[n]`` a group key per item (e.g. the video of each segment): without ``pad``
            the shards are made of whole groups, in order, so a metric that assembles a group
            (a video's relation instances from its segments) sees all of it in one process.
    """

    def __init__(
        self,
        n: int,
        shuffle: bool = False,
        seed: int | None = None,
        pad: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        groups: Sequence[Any] | None = None,
    ) -> None:
        if groups is not None and len(groups) != n:
            raise ValueError(f"groups has {len(groups)} keys for {n} items")
        self.groups = list(groups) if groups is not None else None
        self.n, self.shuffle, self.pad = n, shuffle, pad
        self.num_replicas, self.rank = _dist(num_replicas, rank)
        if seed is None and self.num_replicas > 1:
            import os

            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _grouped(self, idx: list[int]) -> list[int]:
        """This rank's items of whole groups (groups in their first item's order)."""
        members: dict[Any, list[int]] = {}
        for i in idx:
            members.setdefault(self.groups[i], []).append(i)  # type: ignore[index]
        keys = list(members)
        mine = _shard(keys, self.num_replicas, self.rank, False)
        return [i for k in mine for i in members[k]]

    def __iter__(self) -> Iterator[int]:
        if self.groups is not None and not self.pad:
            return iter(self._grouped(list(range(self.n))))
        if not self.shuffle:
            idx = list(range(self.n))
        else:
            g = torch.Generator()
            if self.seed is None:  # as torch's RandomSampler: a seed from the global RNG
                g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            else:
                g.manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        return iter(_shard(idx, self.num_replicas, self.rank, self.pad))

    def __len__(self) -> int:
        if self.groups is not None and not self.pad:
            return len(self._grouped(list(range(self.n))))
        return len(_shard(list(range(self.n)), self.num_replicas, self.rank, self.pad))


class VideoSampler(Sampler[int]):
    """One video per step (shuffled per epoch), DDP-sharded: with ``pad`` (training) every rank
    has the same count, without (evaluation) the shards are disjoint and complete."""

    def __init__(
        self,
        num_videos: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        pad: bool = True,
    ) -> None:
        self.n, self.shuffle, self.seed, self.pad = num_videos, shuffle, seed, pad
        self.num_replicas, self.rank = _dist(num_replicas, rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        idx = (
            torch.randperm(
                self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)
            ).tolist()
            if self.shuffle
            else list(range(self.n))
        )
        return iter(_shard(idx, self.num_replicas, self.rank, self.pad))

    def __len__(self) -> int:
        return len(_shard(list(range(self.n)), self.num_replicas, self.rank, self.pad))


def video_collate(items: list[VideoSceneGraph]) -> VideoSceneGraph:
    """A batch is one video: its frames keep their order and count (any length)."""
    if len(items) != 1:
        raise ValueError(
            f"video batches hold exactly one video (use batch_size=1), got {len(items)}"
        )
    return items[0]
