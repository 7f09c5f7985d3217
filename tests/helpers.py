"""Helpers shared by the tests."""

import hashlib
from pathlib import Path


def tree_digest(root: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``root`` (sorted)."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()
