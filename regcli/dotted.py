"""Dotted keys (`model.l2`, `training.early_stopping.patience`): the one way regcli reads and
flattens nested specs, summaries and configs. Pure; no imports beyond the standard library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def get(mapping: Mapping[str, Any] | None, key: str, default: Any = None) -> Any:
    """`mapping["a"]["b"]` for `"a.b"` (list items by index: `"model.layers.0.units"`).

    Returns `default` where the path stops: a missing part, a `None` on the way or at the end.
    """
    node: Any = mapping or {}
    for part in key.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return default
        if node is None:
            return default
    return node


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: `{"model": {"l2": 0.001}}` -> `{"model.l2": 0.001}`.

    Lists of mappings (explicit `model.layers`) are indexed (`model.layers.0.units`);
    lists of plain values (`model.hidden`) stay one value; an empty mapping stays `{}`.
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    flat.update(flatten(item, f"{dotted}.{i}."))
                else:
                    flat[f"{dotted}.{i}"] = item
        else:
            flat[dotted] = value
    return flat
