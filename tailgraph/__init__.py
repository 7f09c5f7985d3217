"""tailgraph: long-tailed (unbiased) scene graph generation for images and videos.

The structures (which need torch) are imported on first use, so tools that only read files
and score them (``tailgraph evaluate`` on binary files, ``tailgraph convert``) start fast.
"""

from tailgraph.errors import DataError
from tailgraph.vocab import Vocabulary

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Predictions",
    "SceneGraph",
    "Task",
    "VideoSceneGraph",
    "Vocabulary",
    "__version__",
]

_LAZY = ("Predictions", "SceneGraph", "Task", "VideoSceneGraph")


def __getattr__(name: str):
    if name in _LAZY:
        from tailgraph import structures

        return getattr(structures, name)
    raise AttributeError(f"module 'tailgraph' has no attribute {name!r}")
