"""Recipes are bounded before they are parsed.

A recipe (YAML) is read by jsonargparse, whose YAML loader expands aliases: a 1 KB file of
nested aliases ("billion laughs") expands without bound. :func:`check_recipe_file` refuses, before
the real parse, a file over :data:`MAX_RECIPE_BYTES` and one whose aliases expand it to more
than :data:`MAX_EXPANSION` times its own nodes (composed, not constructed: composing shares an
alias's node, so the check itself is linear in the file).
"""

from __future__ import annotations

import os
from pathlib import Path

from tailgraph.errors import DataError

__all__ = ["MAX_RECIPE_BYTES", "MAX_EXPANSION", "check_recipe_file", "check_recipe_text"]

MAX_RECIPE_BYTES = 1 << 20  # 1 MiB: the largest shipped recipe is ~3 KB
MAX_EXPANSION = 10  # nodes after alias expansion / nodes written; 1 without aliases
_FREE_NODES = 1000  # expansions below this many nodes are always fine


def check_recipe_text(text: str, where: str) -> None:
    """Refuse YAML ``text`` whose alias expansion exceeds the bound (``where`` names it)."""
    if "*" not in text:  # no alias, nothing expands
        return
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # not YAML: the recipe parser reports it
    if root is None:
        return
    distinct: set[int] = set()
    expanded: dict[int, int] = {}  # node id -> nodes of its expansion
    order, stack = [], [root]
    while stack:  # iterative post-order: a deep document cannot exhaust the stack
        node = stack.pop()
        if id(node) in distinct:
            continue
        distinct.add(id(node))
        order.append(node)
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for kv in node.value for v in kv)
    for node in reversed(order):
        children = (
            node.value
            if isinstance(node, yaml.SequenceNode)
            else [v for kv in node.value for v in kv]
            if isinstance(node, yaml.MappingNode)
            else []
        )
        expanded[id(node)] = 1 + sum(expanded.get(id(c), 1) for c in children)
    total, own = expanded[id(root)], len(distinct)
    if total > max(_FREE_NODES, MAX_EXPANSION * own):
        raise DataError(
            f"YAML aliases expand {own} nodes to {total} (more than {MAX_EXPANSION}x): refused",
            file=where,
        )


def check_recipe_file(path: str | os.PathLike) -> None:
    """Refuse a recipe file that is too large or whose aliases expand beyond the bound."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        return  # missing / unreadable: the recipe parser names it
    if not p.is_file():
        return
    if size > MAX_RECIPE_BYTES:
        raise DataError(
            f"recipe of {size} bytes is over the {MAX_RECIPE_BYTES}-byte bound", file=str(p)
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the recipe: {exc}", file=str(p)) from None
    check_recipe_text(text, str(p))
