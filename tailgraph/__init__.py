"""tailgraph: long-tailed (unbiased) scene graph generation for images and videos."""

from tailgraph.errors import DataError
from tailgraph.structures import Predictions, SceneGraph, Task, VideoSceneGraph
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
