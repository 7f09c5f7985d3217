"""Candidate pairs for SGDet: all ordered pairs of detected boxes, scored in chunks.

With 80 boxes an image has 6,320 ordered pairs; at batch size 8 that is 50,560 pairs, whose
union-box RoI features alone would need gigabytes. :func:`score_pairs_in_chunks` runs any
pair-scoring function over chunks of pairs and concatenates the (small) score rows, so peak
memory is set by the chunk size, not by the number of pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

__all__ = ["all_pairs", "ordered_pairs", "iter_pair_chunks", "score_pairs_in_chunks"]


def all_pairs(
    num_objs: list[int], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered pairs of distinct objects within each image.

    Returns:
        ``(pairs [P, 2] global rows, pair_to_img [P])``; images are concatenated in order.
    """
    pairs, owners = [], []
    offset = 0
    for i, n in enumerate(num_objs):
        if n > 1:
            idx = torch.arange(n, device=device)
            s, o = torch.meshgrid(idx, idx, indexing="ij")
            keep = s != o
            p = torch.stack([s[keep], o[keep]], dim=1) + offset
            pairs.append(p)
            owners.append(torch.full((p.shape[0],), i, dtype=torch.int64, device=device))
        offset += n
    if not pairs:
        return torch.zeros((0, 2), dtype=torch.int64, device=device), torch.zeros(
            0, dtype=torch.int64, device=device
        )
    return torch.cat(pairs), torch.cat(owners)


def ordered_pairs(
    num_objs: list[int], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered pairs of distinct objects per image (global rows) and their image index
    (an alias of :func:`all_pairs`)."""
    return all_pairs(num_objs, device=device)


def iter_pair_chunks(pairs: torch.Tensor, chunk_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, pairs[start:start + chunk_size])``."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    for start in range(0, pairs.shape[0], chunk_size):
        yield start, pairs[start : start + chunk_size]


def score_pairs_in_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor], pairs: torch.Tensor, chunk_size: int = 4096
) -> torch.Tensor:
    """``torch.cat([fn(chunk) for chunk in pairs])`` without holding every chunk's intermediates.

    Args:
        fn: maps ``[p, 2]`` pairs to ``[p, R]`` scores (e.g. union RoI features → head).
        pairs: ``[P, 2]``.
        chunk_size: pairs per call.
    Returns:
        ``[P, R]`` scores, identical to scoring all pairs at once.
    """
    outs = [fn(chunk) for _, chunk in iter_pair_chunks(pairs, chunk_size)]
    if not outs:
        return fn(pairs[:0])
    return torch.cat(outs)
