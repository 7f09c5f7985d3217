"""FReMuRe (seed 003 + authors' code; methods.md §2): the frequency correction of Eq. 1–2.

:func:`frequency_correction` mixes a feature with its parameter-free layer-normalised version
under a frequency gate; :class:`FrequencyGate` computes Eq. 2's gate
``g(f) = σ(W · log(1/f + ε) + b)`` from the training split's relation frequencies (the
released code also counts the test split; not reproduced). The dual-branch embedding
generator, the decoupled per-type branches and the method itself build on these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["frequency_correction", "FrequencyGate", "relation_frequencies"]


def frequency_correction(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``gate ⊙ LN(x) + (1 − gate) ⊙ x`` (Eq. 1), with a parameter-free LayerNorm over the
    last dimension (eps 1e-5); ``gate`` broadcasts to ``x``."""
    return gate * F.layer_norm(x, x.shape[-1:], eps=1e-5) + (1 - gate) * x


def relation_frequencies(counts: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``f_r = n_r / Σ n`` from training counts (all zeros stay zeros)."""
    n = torch.as_tensor(counts, dtype=torch.float32)
    total = n.sum()
    return n / total if total > 0 else n


class FrequencyGate(nn.Module):
    """Eq. 2: ``g(f) = σ(W · log(1/f + ε) + b)`` over the relation frequencies ``f``.

    Args:
        predicate_counts: training counts per relation class (injected); ``f`` is their
            normalisation, kept as a buffer.
        dim: size of the gate (the feature it corrects).
        eps: ``ε`` inside the log.

    Shapes:
        ``forward() -> [dim]`` (the gate for the data set's frequency profile) and
        ``forward(f [..., R]) -> [..., dim]`` for other frequency vectors.
    """

    def __init__(self, predicate_counts: Sequence[float], dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.register_buffer("frequencies", relation_frequencies(predicate_counts))
        self.eps = eps
        self.linear = nn.Linear(self.frequencies.numel(), dim)

    def forward(self, f: torch.Tensor | None = None) -> torch.Tensor:
        f = self.frequencies if f is None else f
        return torch.sigmoid(self.linear(torch.log(1.0 / (f + self.eps) + self.eps)))
