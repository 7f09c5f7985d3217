"""Building model parts from ``class_path`` + ``init_args`` specs, with vocabulary injection.

A recipe names real classes (``tailgraph.modeling.context.pairwise.PairwiseMLPContext``);
arguments that depend on the data set (class names, counts, feature sizes) are injected here
when the class's constructor accepts them and the recipe did not set them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from tailgraph.errors import DataError

__all__ = ["build_component", "import_class"]


def import_class(path: str, kind: type | tuple[type, ...] | None = None) -> type:
    """Import ``package.module.Class``; raise a clear error naming the path otherwise.

    Args:
        path: dotted path of a class.
        kind: the base class(es) the class must derive from; anything else (a function such
            as ``os.system``, a class of another kind) is refused before it is called.
    """
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise DataError(
            f"class_path {path!r} must be a dotted path 'package.module.Class'", field="class_path"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DataError(
            f"cannot import module {module_name!r} ({exc})", field="class_path"
        ) from None
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise DataError(
            f"module {module_name!r} has no class {name!r}", field="class_path"
        ) from None
    if not isinstance(obj, type):
        raise DataError(f"{path!r} is not a class", field="class_path")
    if kind is not None and not issubclass(obj, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(f"{path!r} is not a {names}", field="class_path")
    return obj


def build_component(
    spec: Mapping[str, Any] | None,
    injected: Mapping[str, Any] | None = None,
    kind: type | tuple[type, ...] | None = nn.Module,
) -> Any:
    """Instantiate ``spec = {"class_path": ..., "init_args": {...}}``.

    Args:
        spec: the component spec, or ``None`` (returns ``None``).
        injected: values offered to the constructor for parameters it accepts and the spec
            did not set (e.g. ``class_names``, ``num_predicates``, ``in_dim``).
        kind: the base class the component must derive from (default ``nn.Module``).
    Returns:
        The instance.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise DataError(f"a component spec needs a 'class_path' (got {spec!r})", field="class_path")
    cls = import_class(str(spec["class_path"]), kind)
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise DataError(
            f"init_args of {spec['class_path']} must be a mapping, got {type(init_args).__name__}",
            field="init_args",
        )
    args = dict(init_args)
    # A command-line override such as --model.context.init_args.hidden_dim 64 reaches the spec
    # as a top-level key next to init_args (jsonargparse's form): it overrides init_args.
    # Their values arrive as text ("64", "fixed", "[2, 2]"): read them as YAML.
    for key, value in spec.items():
        if key in ("class_path", "init_args", "dict_kwargs"):
            continue
        if isinstance(value, str):
            import yaml

            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise DataError(
                    f"cannot read the value {value!r} of {key}", field=f"init_args.{key}"
                ) from None
        args[key] = value
    params = inspect.signature(cls).parameters
    accepts_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in (injected or {}).items():
        if key in args:
            continue
        if key in params:
            args[key] = value
    unknown = [k for k in args if k not in params and not accepts_kwargs]
    if unknown:
        raise DataError(f"{spec['class_path']} has no option(s) {unknown}", field="init_args")
    return cls(**args)
