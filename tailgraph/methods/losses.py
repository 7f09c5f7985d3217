"""The loss building blocks under the methods' import path.

The functions live in the core (:mod:`tailgraph.losses`), where the model layer may use them
too; this module names them where a user of the methods looks for them.
"""

from tailgraph.losses import (
    ClassBalancedCE,
    FocalLoss,
    binary_cross_entropy,
    class_balanced_weights,
    cross_entropy,
    euclidean_contrastive_loss,
    focal_loss,
)

__all__ = [
    "cross_entropy",
    "binary_cross_entropy",
    "focal_loss",
    "class_balanced_weights",
    "ClassBalancedCE",
    "FocalLoss",
    "euclidean_contrastive_loss",
]
