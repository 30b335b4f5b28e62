"""Pydantic's validation errors as one `SpecError`: one line per problem, naming the dotted key and the fix.

pydantic reports `('model', 'layers', 2, 'dense', 'units')` and "Input should be a valid
integer"; a user wrote `model.layers.2.units` and needs to read what was expected, what was
received and how to fix it, on one line (SPEC.md §1: exit 2 and a one-paragraph message).
Unknown keys get the nearest allowed spelling, or the section where the key belongs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from regcli.errors import SpecError
from regcli.spec.fields import LAYER_TYPES, UNSET, Problem, Verbatim, show, type_hint
from regcli.spec.models import (
    DataSpec,
    DiagnosisSpec,
    DriftSpec,
    EarlyStoppingSpec,
    ExperimentSpec,
    MlflowSpec,
    ModelSpec,
    TrackingSpec,
    TrainingSpec,
)
from regcli.values import closest

_TYPE_ERRORS = {
    "int_type": ("must be an integer.", "integer"),
    "float_type": ("must be a number.", "number"),
    "bool_type": ("must be true or false.", "bool"),
    "string_type": ("must be a string.", "string"),
    "list_type": ("must be a list.", "list"),
    "dict_type": ("must be a mapping.", "mapping"),
    "model_type": ("must be a mapping.", "mapping"),
    "model_attributes_type": ("must be a mapping.", "mapping"),
}


_MISSING_FIXES = {
    "tracking.mlflow.uri": "Name the tracking store, e.g. uri: mlruns (a directory), sqlite:///mlflow.db or "
    "http://localhost:5000.",
    "data": "Add for example 'data: {source: breast_cancer}', or data.path: with your own .csv/.parquet/.npz file.",
}


def _clean_location(loc: tuple[Any, ...], raw: Any) -> tuple[list[str], Any]:
    """Dotted-path parts of a pydantic location, without discriminator tags; and the raw node there."""
    parts: list[str] = []
    node = raw
    previous_was_index = False
    for segment in loc:
        if previous_was_index and isinstance(node, dict) and node.get("type") == segment:
            previous_was_index = False  # the discriminated union's tag, not a key
            continue
        parts.append(str(segment))
        previous_was_index = isinstance(segment, int)
        if isinstance(node, dict):
            node = node.get(segment, UNSET)
        elif isinstance(node, list) and isinstance(segment, int) and -len(node) <= segment < len(node):
            node = node[segment]
        else:
            node = UNSET
    return parts, node


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _model_for(parts: Sequence[str], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at dotted `parts` of `raw`, if any."""
    tp: Any = ExperimentSpec
    node = raw
    for part in [*parts, None]:
        tp = _strip_annotated(tp)
        if get_origin(tp) in (Union, type(int | None)):
            members = [_strip_annotated(a) for a in get_args(tp) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            tagged = [
                m
                for m in models
                if isinstance(node, dict)
                and "type" in m.model_fields
                and node.get("type") in get_args(m.model_fields["type"].annotation)
            ]
            tp = (
                tagged[0]
                if tagged
                else models[0]
                if len(models) == 1
                else members[0]
                if len(members) == 1
                else None
            )
        if part is None:
            break
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
            node = node.get(part) if isinstance(node, dict) else None
        elif get_origin(tp) is list and part.lstrip("-").isdigit():
            tp = get_args(tp)[0]
            index = int(part)
            node = node[index] if isinstance(node, list) and -len(node) <= index < len(node) else None
        else:
            return None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _sections() -> dict[str, type[BaseModel]]:
    """Every fixed mapping of the spec by dotted path (layers excluded)."""
    return {
        "": ExperimentSpec,
        "data": DataSpec,
        "data.drift": DriftSpec,
        "model": ModelSpec,
        "training": TrainingSpec,
        "training.early_stopping": EarlyStoppingSpec,
        "diagnosis": DiagnosisSpec,
        "tracking": TrackingSpec,
        "tracking.mlflow": MlflowSpec,
    }


# Shorthand knobs written inside one explicit layer: where that layer's own setting lives.
_LAYER_KEY_FIXES = {
    "l1": "A layer's penalties go in kernel_regularizer: {l1: 1.0e-5} (bias_regularizer, activity_regularizer likewise).",
    "l2": "A layer's penalties go in kernel_regularizer: {l2: 1.0e-4} (bias_regularizer, activity_regularizer likewise).",
    "bias_l2": "A layer's bias penalty is bias_regularizer: {l2: 1.0e-4}.",
    "activity_l2": "A layer's activity penalty is activity_regularizer: {l2: 1.0e-5}.",
    "dropout": "Dropout is a layer of its own: add {type: dropout, rate: 0.2} after this one.",
    "batchnorm": "BatchNorm is a layer of its own: add {type: batchnorm} after this one (and use_bias: false here).",
}


def _unknown_key_line(parent: str, key: str, allowed: Sequence[str]) -> str:
    full = f"{parent}.{key}" if parent else key
    full = f"'{full}'" if full.isprintable() and len(full) <= 100 else show(full)
    if re.fullmatch(r"model\.layers\.\d+", parent) and key in _LAYER_KEY_FIXES:
        return f"Unknown key {full}. {_LAYER_KEY_FIXES[key]}"
    close = [match] if (match := closest(key, allowed)) else []
    if close:
        suggestion = f"{parent}.{close[0]}" if parent else close[0]
        return f"Unknown key {full}. Did you mean '{suggestion}'?"
    elsewhere = [
        f"{path}.{key}" if path else key
        for path, model in _sections().items()
        if key in model.model_fields and path != parent
    ]
    if elsewhere:
        return f"Unknown key {full}. Did you mean '{elsewhere[0]}'? '{key}' belongs under {elsewhere[0].rpartition('.')[0] or 'the top level'}."
    return f"Unknown key {full}. Allowed keys here: {', '.join(allowed)}."


def _format_problem(prefix: list[str], problem: Problem) -> str:
    """`  key: message Received: value. Fix` for a problem raised at dotted `prefix`."""
    parts = [*prefix, *([problem.key] if problem.key else [])]
    key = ".".join(parts)
    if problem.unknown_among is not None:
        return "  " + _unknown_key_line(".".join(prefix), problem.key, problem.unknown_among)
    line = f"  {key}: {problem.message}" if key else f"  {problem.message}"
    if problem.received is not UNSET:
        shown = problem.received.text if isinstance(problem.received, Verbatim) else show(problem.received)
        line += f" Received: {shown}."
    if problem.fix:
        line += f" {problem.fix}"
    return line


def _literal_choices(ctx: Mapping[str, Any]) -> list[str]:
    return re.findall(r"'([^']*)'", str(ctx.get("expected", "")))


def _lines_for(error: Mapping[str, Any], raw: Any) -> list[str]:
    """The message lines for one pydantic error dict."""
    parts, _ = _clean_location(tuple(error["loc"]), raw)
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "regcli":
        return [_format_problem(parts, p) for p in ctx["problems"]]
    if kind in ("extra_forbidden", "invalid_key"):
        model = _model_for(parts[:-1], raw)
        allowed = tuple(model.model_fields) if model else ()
        return ["  " + _unknown_key_line(".".join(parts[:-1]), parts[-1], allowed)]
    if kind == "missing":
        return [
            _format_problem(parts, Problem("", "is required.", fix=_MISSING_FIXES.get(".".join(parts), "")))
        ]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        message = f"must be one of {', '.join(LAYER_TYPES)}."
        fix = "Only these layer types can be built."
        if kind == "union_tag_not_found":
            return [_format_problem([*parts, "type"], Problem("", "is required: " + message, fix=fix))]
        received = value.get("type") if isinstance(value, dict) else value
        return [_format_problem([*parts, "type"], Problem("", message, received, fix))]
    if kind == "literal_error":
        choices = _literal_choices(ctx)
        close = closest(value, choices) if isinstance(value, str) else None
        fix = f"Did you mean '{close}'?" if close else type_hint(value, "string")
        return [_format_problem(parts, Problem("", f"must be one of {', '.join(choices)}.", value, fix))]
    if kind in _TYPE_ERRORS:
        message, wanted = _TYPE_ERRORS[kind]
        fix = type_hint(value, wanted)
        if wanted == "mapping" and parts[-2:-1] == ["layers"]:
            fix = "Each layer is a mapping such as {type: dense, units: 64}."
        elif wanted == "mapping" and parts == ["data"]:
            fix = _MISSING_FIXES["data"]
        elif wanted == "mapping" and parts[-1:] == ["early_stopping"]:
            fix = "To turn early stopping off write early_stopping: {enabled: false}."
        elif wanted == "mapping" and value is None:
            fix = "Remove the empty key to use the defaults, or give it keys."
        return [_format_problem(parts, Problem("", message, value, fix))]
    return [_format_problem(parts, Problem("", f"{error.get('msg', 'is invalid')}.", value))]


def translate(exc: ValidationError, raw: Any, source: str) -> SpecError:
    """One `SpecError` for all of `exc`: `Invalid spec <source>:`, then each distinct line once."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        for line in _lines_for(error, raw):
            if line not in lines:
                lines.append(line)
    return SpecError("\n".join([f"Invalid spec {source}:", *lines]))
