"""A loaded data set before splitting (`Raw`), and the task its targets pose (`resolve_task`).

Every loader (`sources`, `files`) returns a `Raw`; `resolve_task` turns its targets into int64
class codes or float64 values and checks them against `model.task`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from regcli.errors import DataError

MAX_NUMERIC_CLASSES = 20  # an integer-valued numeric target with at most 20 distinct values is a class label


@dataclass
class Raw:
    """A loaded data set before task resolution and splitting.

    `x` holds NaN only where `data.impute` asked to fill numeric values: the fill is fitted on
    the training split later (`impute`), never here.
    """

    x: np.ndarray  # float64, (rows, features)
    y: np.ndarray  # (rows,): numbers, or str labels
    feature_names: list[str]
    where: str  # how messages name the data: "data.source 'iris'" or "data.path '/x/y.csv'"
    origin: dict[str, Any]  # source/path/target/params, recorded in info
    kind: str | None = None  # "classification" | "regression" when the source fixes it
    class_names: list[str] | None = None  # names of y's integer codes when the source fixes them
    image_shape: tuple[int, ...] | None = None
    per_channel: bool = False  # standardize per color channel (an image folder), not per feature
    one_hot: dict[str, int] = field(default_factory=dict)  # string column -> its levels, one column each
    # String column -> its rows whose missing value became the "missing" level (data.impute != none).
    missing_level: dict[str, np.ndarray] = field(default_factory=dict)


def resolve_task(raw: Raw, requested: str) -> tuple[str, np.ndarray, list[str]]:
    """Return (task, targets, class_names): int64 class codes or float64 values.

    `requested` is `model.task`, one of auto, binary, multiclass and regression (the spec checked it).
    """
    y = raw.y
    if raw.kind == "classification" or y.dtype.kind in "US":
        if raw.kind == "classification":
            codes, names = y.astype(np.int64), list(raw.class_names or [])
        else:
            uniques, codes = np.unique(y, return_inverse=True)  # class names sorted
            names = [str(u) for u in uniques]
        if requested == "regression":
            raise DataError(
                f"model.task is 'regression' but the targets of {raw.where} are class labels ({_list_classes(names)}). "
                "Use model.task: auto, binary or multiclass, or point the data at a numeric target."
            )
        return _classification(raw, requested, codes, names)
    if raw.kind == "regression" or requested == "regression":
        if requested in ("binary", "multiclass"):
            raise DataError(
                f"model.task is '{requested}' but {raw.where} is a regression data set (continuous targets). "
                "Use model.task: regression (or auto)."
            )
        return "regression", y.astype(np.float64), []
    integral = bool(np.all(y == np.round(y)))
    uniques = np.unique(y)
    if requested in ("binary", "multiclass"):
        if not integral:
            example = y[y != np.round(y)][0]
            raise DataError(
                f"model.task is '{requested}' but the targets of {raw.where} have non-integer values (e.g. {example:g}): "
                "that is a regression target. Use model.task: regression (or auto)."
            )
    elif not integral or len(uniques) > MAX_NUMERIC_CLASSES:
        return "regression", y.astype(np.float64), []
    codes = np.searchsorted(uniques, y).astype(np.int64)
    return _classification(raw, requested, codes, [str(int(u)) for u in uniques])


def _classification(
    raw: Raw, requested: str, codes: np.ndarray, names: list[str]
) -> tuple[str, np.ndarray, list[str]]:
    if len(names) < 2:
        raise DataError(
            f"The targets of {raw.where} hold a single class ({_list_classes(names)}); classification needs at least 2. "
            "Check data.target, or use a data set with more than one class."
        )
    if requested == "binary" and len(names) != 2:
        raise DataError(
            f"model.task is 'binary' but the targets of {raw.where} have {len(names)} classes ({_list_classes(names)}). "
            "Use model.task: multiclass (or auto)."
        )
    task = (
        requested
        if requested in ("binary", "multiclass")
        else ("binary" if len(names) == 2 else "multiclass")
    )
    return task, codes, names


def _list_classes(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:8])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
