"""Label decks for the video variants: a long tail with a floor.

A split's labels are not drawn independently per sample (with a few hundred videos, a Zipf tail
then leaves the rarest predicates with a handful of relations, too few to learn or to measure).
Instead each split gets a *deck*: a shuffled list with exactly ``counts[k]`` copies of label
``k``, where every label has at least ``floor_share`` of its uniform share ``N / P`` and the
rest follows a Zipf law whose exponent is solved so that the most frequent label is
``head_tail_ratio`` times the least frequent one. The deck is dealt to the split's samples in
order, so the label counts per split are known in advance and the same seed gives the same deck.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tail_counts", "deal_deck"]


def _zipf(n: int, a: float) -> np.ndarray:
    z = np.arange(1, n + 1, dtype=np.float64) ** -a
    return z / z.sum()


def tail_counts(
    total: int,
    n_labels: int,
    *,
    floor_share: float,
    head_tail_ratio: float,
    min_floor: int = 0,
) -> np.ndarray:
    """Counts per rank (rank 0 = head) summing to ``total``.

    Each rank gets ``floor = floor_share * total / n_labels`` (rounded down, and at least
    ``min_floor`` while the deck has room for it) plus a Zipf share of
    the remainder; the exponent is found by bisection so that ``counts[0] / counts[-1]`` is
    ``head_tail_ratio`` as closely as integer counts allow (a uniform remainder when the ratio
    cannot be reached with a decreasing law).
    """
    if n_labels < 1 or total < 0:
        raise ValueError(f"tail_counts: need n_labels >= 1 and total >= 0, got {n_labels}, {total}")
    if not 0.0 <= floor_share < 1.0 or head_tail_ratio < 1.0:
        raise ValueError(
            f"tail_counts: floor_share in [0, 1) and head_tail_ratio >= 1, got "
            f"{floor_share}, {head_tail_ratio}"
        )
    floor = max(int(floor_share * total / n_labels), min(min_floor, total // n_labels))
    rest = total - floor * n_labels

    def counts_for(a: float) -> np.ndarray:
        share = rest * _zipf(n_labels, a)
        c = np.floor(share).astype(np.int64)
        # largest remainders first, so the counts sum to ``rest`` exactly
        left = rest - int(c.sum())
        if left:
            c[np.argsort(-(share - c), kind="stable")[:left]] += 1
        return c + floor

    lo, hi = 0.0, 8.0
    for _ in range(60):
        mid = (lo + hi) / 2
        c = counts_for(mid)
        if c[0] / max(int(c[-1]), 1) < head_tail_ratio:
            lo = mid
        else:
            hi = mid
    return counts_for(hi)


def deal_deck(
    rng: np.random.Generator,
    total: int,
    order: list[int],
    *,
    floor_share: float,
    head_tail_ratio: float,
    min_floor: int = 0,
) -> list[int]:
    """A shuffled list of ``total`` labels: label ``order[r]`` appears ``tail_counts(...)[r]``
    times (``order`` ranks the labels from head to tail)."""
    counts = tail_counts(
        total,
        len(order),
        floor_share=floor_share,
        head_tail_ratio=head_tail_ratio,
        min_floor=min_floor,
    )
    deck = np.repeat(np.asarray(order, dtype=np.int64), counts)
    return [int(x) for x in rng.permutation(deck)]
