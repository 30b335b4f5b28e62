"""`--set KEY=VALUE` overrides: a dotted key and a YAML value, applied to the raw mapping before validation.

Parsed in one place (as spaCy does for `--training.batch_size 128`): `model.l2=1e-3` sets
0.001 the way the YAML file would, `model.layers.2.rate=0.3` indexes a list, and a malformed
override is one `SpecError` naming it. Unknown keys are left for validation to report.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regcli.errors import SpecError
from regcli.spec.fields import PATH_KEYS, URI_SCHEME_RE, expand_user, show
from regcli.spec.yaml_io import YamlFailure, kind_of, parse_yaml

_KEY_PART_RE = re.compile(r"[A-Za-z0-9_-]+")


def parse_override(text: str) -> tuple[str, Any]:
    """Split `model.l2=1e-3` into ("model.l2", 0.001); the value is parsed as YAML.

    Raises:
        SpecError: no `=`, an empty or malformed key, or a value that is not valid YAML.
    """
    key, sep, value_text = str(text).partition("=")
    key = key.strip()
    example = "Write KEY=VALUE, e.g. --set model.l2=1e-3."
    if not sep:
        raise SpecError(f"Invalid --set {text!r}: expected KEY=VALUE with a dotted key. {example}")
    if not key or not all(_KEY_PART_RE.fullmatch(part) for part in key.split(".")):
        raise SpecError(
            f"Invalid --set {text!r}: the key must be a dotted path of letters, digits, '_' or '-' "
            f"such as model.l2. {example}"
        )
    if not value_text.strip():
        raise SpecError(f"Invalid --set {text!r}: the value is empty. Write {key}=null to set it to null.")
    try:
        value = parse_yaml(value_text)
    except YamlFailure as exc:
        raise SpecError(
            f"Invalid --set {text!r}: the value is not valid YAML ({exc.problem.rstrip('.')}). "
            "Quote strings that contain ': ', '#' or start with '[', '{', '&', '*' or '!'."
        ) from None
    return key, value


def set_dotted(raw: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with the dotted `key` set to `value` (for overrides and sweeps).

    Missing or null intermediate mappings are created; a list is indexed by a number
    (`model.layers.2.rate`).

    Raises:
        SpecError: the path runs through a value that is neither a mapping nor a list.
    """
    result = copy.deepcopy(dict(raw))
    node: Any = result
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the top level"
        if isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, list):
            raise SpecError(
                f"Cannot set {key}: {where} is a list of {len(node)} entries and '{part}' is not an index into it."
            )
        else:
            raise SpecError(f"Cannot set {key}: {where} is {kind_of(node)} ({show(node)}), not a mapping.")
    return result


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `raw` with every `KEY=VALUE` override applied in order.

    Unknown keys introduced by overrides are left for validation to report.

    Raises:
        SpecError: a malformed override, or one that runs through a non-mapping.
    """
    result = copy.deepcopy(dict(raw))
    for text in overrides:
        key, value = parse_override(text)
        result = set_dotted(result, key, value)
    return result


def absolute_from_cwd(key: str, value: Any) -> Any:
    """A `--set` path (data.path, model.init_from, a local tracking.mlflow.uri) made absolute.

    The user typed it relative to the current directory, not to the spec file's directory
    that paths written in the file are resolved against; other values are returned unchanged.
    """
    local_uri = key == "tracking.mlflow.uri" and isinstance(value, str) and not URI_SCHEME_RE.match(value)
    if (key in PATH_KEYS or local_uri) and isinstance(value, str) and value.strip():
        candidate = expand_user(value)
        return str(candidate if candidate.is_absolute() else Path.cwd() / candidate)
    return value
