"""`data.impute`: missing feature values filled from the training split only.

A numeric column's missing values get the mean, median or most frequent value of that column
over the training rows (after `train_fraction`); validation and test rows get the same value,
so nothing is learned from held-out rows. A string column's missing values already became a
"missing" level of their own when the file was read (`files`), whatever the mode; they are
only reported here. With `none` no NaN gets this far: `files` refused it.

Use it when a few values are missing at random; when missingness carries signal, add an
indicator column to the file yourself.

Example:
    >>> x, imputed = impute(raw, rows, "median")
    >>> imputed["age"]
    {'strategy': 'median', 'value': 41.0, 'train': 3, 'val': 1, 'test': 0}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from regcli.data.files import MISSING_LEVEL
from regcli.data.raw import Raw
from regcli.data.split import Rows
from regcli.errors import DataError


def impute(raw: Raw, rows: Rows, mode: str) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Return (`raw.x` with every NaN filled by its training statistic, what was imputed).

    Args:
        raw: the loaded rows; NaN only in numeric columns that `data.impute` lets through.
        rows: the split; the statistics are fitted on `rows.train` alone.
        mode: `data.impute`: none, mean, median or most_frequent.

    Returns:
        The filled matrix (`raw.x` itself when nothing is missing) and, per imputed column, its
        strategy, the value filled in and how many values were filled in each split.

    Raises:
        DataError: a numeric column has no value at all in the training rows to fit on.
    """
    if mode == "none":
        return raw.x, {}
    imputed: dict[str, dict[str, Any]] = {}
    missing_columns = np.flatnonzero(np.isnan(raw.x).any(axis=0))
    x = raw.x.copy() if len(missing_columns) else raw.x
    for j in missing_columns:
        name = raw.feature_names[j]
        absent = np.isnan(x[:, j])
        value = _statistic(x[rows.train, j], mode)
        if value is None:
            raise DataError(
                f"Column '{name}' of {raw.where} has no value in any of its {len(rows.train)} training rows, so "
                f"data.impute: {mode} has nothing to fit its {int(absent.sum())} missing values on. Drop the "
                "column or fill it before training."
            )
        x[absent, j] = value
        imputed[name] = {"strategy": mode, "value": value, **_counts(np.flatnonzero(absent), rows)}
    for name, missing_rows in raw.missing_level.items():
        imputed[name] = {"strategy": "missing_level", "value": MISSING_LEVEL, **_counts(missing_rows, rows)}
    return x, imputed


def _statistic(values: np.ndarray, mode: str) -> float | None:
    """mean, median or most_frequent (the smallest of equally frequent values) of the non-NaN values."""
    seen = values[~np.isnan(values)]
    if not len(seen):
        return None
    if mode == "mean":
        return float(seen.mean())
    if mode == "median":
        return float(np.median(seen))
    uniques, counts = np.unique(seen, return_counts=True)
    return float(uniques[int(np.argmax(counts))])


def _counts(missing_rows: np.ndarray, rows: Rows) -> dict[str, int]:
    """How many of `missing_rows` each split holds (training rows left out by train_fraction are not counted)."""
    return {
        split: int(np.isin(getattr(rows, split), missing_rows).sum()) for split in ("train", "val", "test")
    }
