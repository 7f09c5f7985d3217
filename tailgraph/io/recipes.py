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

__all__ = [
    "MAX_RECIPE_BYTES",
    "MAX_EXPANSION",
    "RECIPE_RANGES",
    "check_recipe_file",
    "check_recipe_text",
    "check_recipe_values",
]

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


# Ranges of the recipe's size-like options, checked on the parsed recipe before anything is
# built: (exact dotted key, or ``*.name`` for that option anywhere below ``model`` / ``data``)
# -> (lo, hi, integer?). ``None`` passes (an unset option); so does Lightning's ``-1`` (no
# limit) for the options of :data:`UNLIMITED`. Component options given on the command line
# arrive as text (read as YAML, as :func:`tailgraph.components.build_component` does).
RECIPE_RANGES: dict[str, tuple[float, float, bool]] = {
    "trainer.max_epochs": (1, 100_000, True),
    "trainer.min_epochs": (0, 100_000, True),
    "trainer.max_steps": (1, 10**9, True),
    "trainer.accumulate_grad_batches": (1, 10_000, True),
    "trainer.log_every_n_steps": (1, 10**6, True),
    "trainer.check_val_every_n_epoch": (1, 100_000, True),
    "trainer.num_sanity_val_steps": (0, 10**6, True),
    "trainer.gradient_clip_val": (0, 1e9, False),
    "*.synth_train": (0, 200_000, True),
    "*.synth_test": (0, 200_000, True),
    "*.synth_size": (32, 4096, True),
    "*.synth_seed": (0, 2**32 - 1, True),
    "*.max_size": (32, 8192, True),
    "*.batch_size": (1, 1024, True),
    "*.num_workers": (0, 256, True),
    "*.lr": (0, 10, False),
    "*.weight_decay": (0, 10, False),
    "*.num_heads": (1, 256, True),
    "*.num_samples": (1, 1024, True),
    "*.num_components": (1, 1024, True),
    "*.window": (1, 4096, True),
    "*.layers": (0, 64, True),
    "*_layers": (0, 64, True),
    "*_dim": (1, 65_536, True),
}


UNLIMITED = frozenset({"trainer.max_epochs", "trainer.max_steps", "trainer.num_sanity_val_steps"})


def _range_for(path: str) -> tuple[float, float, bool] | None:
    if path in RECIPE_RANGES:
        return RECIPE_RANGES[path]
    top, _, rest = path.partition(".")
    if top not in ("model", "data") or not rest:
        return None
    name = path.rsplit(".", 1)[-1]
    if f"*.{name}" in RECIPE_RANGES:
        return RECIPE_RANGES[f"*.{name}"]
    for suffix in ("_layers", "_dim"):
        if name.endswith(suffix):
            return RECIPE_RANGES[f"*{suffix}"]
    return None


def _walk(value: object, path: str):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif hasattr(value, "__dict__") and type(value).__name__ == "Namespace":
        yield from _walk(vars(value), path)
    else:
        yield path, value


def check_recipe_values(config: object, where: str = "recipe") -> None:
    """Refuse a parsed recipe (``dict`` / jsonargparse ``Namespace``) whose size-like options
    (:data:`RECIPE_RANGES`) are out of range, of the wrong type (a boolean, ``1.6`` for an
    integer) or not finite: one :class:`DataError` naming the option."""
    import math

    for path, value in _walk(config, ""):
        key = path.replace(".init_args.", ".")
        bound = _range_for(key)
        if bound is None or value is None:
            continue
        lo, hi, integer = bound
        if isinstance(value, str):
            import yaml

            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                pass
        if key in UNLIMITED and value == -1 and not isinstance(value, bool):
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            ok = False
        if ok and integer and value != int(value):
            ok = False
        if not ok:
            kind = "an integer" if integer else "a finite number"
            raise DataError(
                f"expected {kind} in [{lo:g}, {hi:g}], got {value!r}", file=where, field=key
            )
        if not lo <= value <= hi:
            raise DataError(f"{value!r} is outside [{lo:g}, {hi:g}]", file=where, field=key)
