"""`data.path`: a .csv or .parquet table (one column is `data.target`) or an .npz archive (X, y).

The spec has checked the path's suffix, that it existed when the spec loaded, and that
`data.target` is given for a table and absent for an .npz. What only the file itself can show
is checked here: that it is readable, the target column, missing values, feature types, shapes.

A missing feature value is an error that names its column and row count unless `data.impute`
asks to fill it: a string column then gets a "missing" level of its own here, and a numeric
column keeps its NaN for `impute`, which fills it from the training split once that exists.
A missing target and an infinite feature value are always refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regcli.data.raw import Raw
from regcli.errors import DataError
from regcli.values import did_you_mean

# A text column with more distinct values than this (or than half the rows) is free text or an id.
MAX_CATEGORIES = 50
MISSING_LEVEL = "missing"  # the category a missing string value becomes when data.impute is not none
IMPUTE_HINT = (
    "Set data.impute: median (or mean, most_frequent) to fill numeric columns with that statistic of the "
    'training split and give string columns a "missing" level, or drop or fill those rows before training.'
)


def load_file(path: Path, target: str | None, impute: str = "none") -> Raw:
    """The data set in `path`; `target` names the label column of a .csv/.parquet file.

    `impute` is `data.impute`: "none" refuses missing feature values; any other mode lets them
    through (numeric NaNs stay in `x`, string columns get the "missing" level). Defaults to `"none"`.
    """
    where = f"data.path '{path}'"
    if not path.is_file():  # removed since the spec loaded, or not a regular file (a FIFO would hang)
        raise DataError(f"{where} does not exist or is not a file. Check data.path.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, where, impute)
    frame = _read_table(path, suffix, where)
    frame.columns = [str(c) for c in frame.columns]
    y = _targets(frame, _target_column(frame, target, where), where)
    columns = _feature_columns(frame, target, where, impute)
    return Raw(
        x=np.concatenate([column.block for column in columns.values()], axis=1),
        y=y,
        feature_names=[name for column in columns.values() for name in column.names],
        where=where,
        origin={"source": None, "path": str(path), "target": target},
        one_hot={name: column.levels for name, column in columns.items() if column.levels},
        missing_level={
            name: column.missing_rows for name, column in columns.items() if column.missing_rows is not None
        },
    )


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


# --- tables ------------------------------------------------------------------------------------


def _read_table(path: Path, suffix: str, where: str) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many types for one unreadable file
        raise DataError(
            f"{where} could not be read as a {suffix[1:]} file ({type(exc).__name__}: {exc}). "
            "Check that the file is complete and in that format."
        ) from None


def _target_column(frame: Any, target: str | None, where: str) -> str:
    """`target`, checked to be a column of a table with rows."""
    columns = list(frame.columns)
    if target not in columns:
        raise DataError(
            f"data.target column '{target}' is not in {where}.{did_you_mean(str(target), columns)} "
            f"Columns: {', '.join(columns)}. Set data.target to one of them."
        )
    if len(frame) == 0:
        raise DataError(f"{where} has a header but no rows. Add data rows.")
    return str(target)


def _targets(frame: Any, target: str, where: str) -> np.ndarray:
    """The target column: float64 numbers, or str labels; a missing or infinite value is refused."""
    import pandas as pd

    y_col = frame[target]
    bad = int(y_col.isna().sum())
    is_number = pd.api.types.is_numeric_dtype(y_col) and not pd.api.types.is_bool_dtype(y_col)
    if is_number:
        bad = int((~np.isfinite(y_col.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
    if bad:
        raise DataError(
            f"data.target column '{target}' of {where} has {bad} of {len(frame)} rows with a missing (NaN) or "
            "infinite value. data.impute fills features only, never targets: drop those rows from the file."
        )
    return (
        y_col.to_numpy(dtype=np.float64) if is_number else np.asarray(y_col.astype(str).to_list(), dtype=str)
    )


@dataclass
class _Column:
    """One feature column as matrix columns, and what reading it found."""

    block: np.ndarray  # (rows, 1) for a number, (rows, levels) one-hot for a category
    names: list[str]
    missing: int = 0  # missing values: NaN left for `impute`, or rows of the "missing" level
    infinite: int = 0
    levels: int = 0  # one-hot levels; 0 for a numeric column
    missing_rows: np.ndarray | None = None  # a category's rows given the "missing" level


def _feature_columns(frame: Any, target: str, where: str, impute: str) -> dict[str, _Column]:
    """Every column but the target: numbers as they are, categories one-hot encoded."""
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{where} has only the target column '{target}'. Add feature columns.")
    columns = {name: _feature_column(features[name], name, len(frame), where, impute) for name in features.columns}
    infinite = [f"'{name}' ({_rows(c.infinite)})" for name, c in columns.items() if c.infinite]
    if infinite:
        raise DataError(
            f"Feature columns of {where} have infinite values: {', '.join(infinite)}. data.impute fills missing "
            "(NaN) values only: replace or drop those rows before training."
        )
    missing = [f"'{name}' ({_rows(c.missing)})" for name, c in columns.items() if c.missing]
    if missing and impute == "none":
        raise DataError(f"Feature columns of {where} have missing (NaN) values: {', '.join(missing)}. {IMPUTE_HINT}")
    return columns


def _feature_column(col: Any, name: str, n_rows: int, where: str, impute: str) -> _Column:
    """One feature column, encoded; with data.impute, a string column's missing values become a level."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):  # bool included: True/False -> 1.0/0.0
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return _Column(values[:, None], [name], int(np.isnan(values).sum()), int(np.isinf(values).sum()))
    if not (
        isinstance(col.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(col)
        or pd.api.types.is_string_dtype(col)
    ):
        raise DataError(
            f"Column '{name}' of {where} has dtype {col.dtype}, which regcli cannot use as a feature. "
            "Convert it to numbers (e.g. a timestamp to seconds) or drop it."
        )
    absent = col.isna().to_numpy()
    n_missing = int(absent.sum())
    if n_missing and impute == "none":
        return _Column(np.empty((n_rows, 0)), [], missing=n_missing)
    text = col.astype(object).where(~absent, MISSING_LEVEL).astype(str)
    n_distinct = int(text.nunique())
    if n_distinct > MAX_CATEGORIES or n_distinct > n_rows / 2:
        raise DataError(
            f"Column '{name}' of {where} is non-numeric with {n_distinct} distinct values in {n_rows} rows, "
            f"too many to one-hot encode as a category (at most {MAX_CATEGORIES} and at most half the rows): "
            "it looks like free text or an id. Drop it or encode it as numbers before training."
        )
    dummies = pd.get_dummies(text, prefix=name, dtype=float)
    return _Column(
        dummies.to_numpy(dtype=np.float64),
        [str(c) for c in dummies.columns],
        levels=dummies.shape[1],
        missing_rows=np.flatnonzero(absent) if n_missing else None,
    )


# --- .npz archives -----------------------------------------------------------------------------


def _load_npz(path: Path, where: str, impute: str) -> Raw:
    x, y = _read_npz(path, where)
    x, y, image_shape = _check_shapes(x, y, where)
    x = _finite_features(x, where, impute)
    y = _npz_targets(y, where)
    return Raw(
        x=x,
        y=y,
        feature_names=[f"x{i}" for i in range(x.shape[1])],
        where=where,
        origin={"source": None, "path": str(path)},
        image_shape=image_shape,
    )


def _read_npz(path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Arrays X and y of the archive, without unpickling anything."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # a .npz that is not a zip, a pickle, a truncated file: all unreadable
        raise DataError(
            f"{where} could not be read as an .npz archive ({type(exc).__name__}: {exc}). "
            "Write it with np.savez(path, X=X, y=y)."
        ) from None
    if not hasattr(archive, "files"):
        raise DataError(
            f"{where} holds a single .npy array, not an .npz archive. Write it with np.savez(path, X=X, y=y)."
        )
    with archive:
        missing = [key for key in ("X", "y") if key not in archive.files]
        if missing:
            raise DataError(
                f"{where} lacks the array(s) {', '.join(repr(k) for k in missing)}. It holds: "
                f"{', '.join(repr(k) for k in archive.files) or 'nothing'}. Write it with np.savez(path, X=X, y=y)."
            )
        x, y = (_npz_array(archive, key, where) for key in ("X", "y"))
    return x, y


def _npz_array(archive: Any, key: str, where: str) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "bject arrays" in str(exc):
            raise DataError(
                f"Array '{key}' of {where} is an object array (dtype=object), which regcli refuses to load: "
                "unpickling can run arbitrary code. Save plain arrays instead, e.g. "
                "np.savez(path, X=X.astype('float32'), y=y.astype(str) or y.astype('int64'))."
            ) from None
        raise DataError(
            f"Array '{key}' of {where} could not be read ({exc}). Rewrite the file with np.savez."
        ) from None
    except Exception as exc:  # a damaged zip member
        raise DataError(
            f"Array '{key}' of {where} could not be read ({type(exc).__name__}: {exc}). Rewrite the file with np.savez."
        ) from None


def _check_shapes(
    x: np.ndarray, y: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...] | None]:
    """(X flattened to (rows, features), y as 1-D, the per-row image shape or None)."""
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"Array 'X' of {where} must be numeric. Received dtype {x.dtype}. Encode the features as numbers."
        )
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(
            f"Array 'X' of {where} must have shape (rows, features) or images (rows, H, W[, C]). "
            f"Received shape {x.shape}.{' Use X[:, None] for one feature.' if x.ndim == 1 else ''}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"Array 'y' of {where} must be 1-D (one label or value per row). Received shape {y.shape}. "
            "For one-hot labels save y.argmax(axis=1)."
        )
    if len(x) != len(y):
        raise DataError(
            f"Arrays 'X' and 'y' of {where} must have the same number of rows. Received {len(x)} and {len(y)}."
        )
    if len(x) == 0:
        raise DataError(f"{where} has no rows. Save a non-empty X and y.")
    image_shape = None
    if x.ndim > 2:
        image_shape = tuple(int(d) for d in x.shape[1:]) + ((1,) if x.ndim == 3 else ())
        x = x.reshape(len(x), -1)
    return x, y, image_shape


def _finite_features(x: np.ndarray, where: str, impute: str) -> np.ndarray:
    """X as float64: infinite values refused, NaN refused unless data.impute will fill it."""
    x = x.astype(np.float64)
    for bad, what, fix in (
        (np.isinf(x), "infinite", "data.impute fills missing (NaN) values only: replace or drop those rows before saving."),
        (np.isnan(x) if impute == "none" else None, "missing (NaN)", IMPUTE_HINT),
    ):
        if bad is None or not bad.any():
            continue
        bad_cols = np.flatnonzero(bad.any(axis=0))
        raise DataError(
            f"Array 'X' of {where} has {what} values in {_rows(int(bad.any(axis=1).sum()))} (feature "
            f"columns {', '.join(f'x{i}' for i in bad_cols[:10])}{' ...' if len(bad_cols) > 10 else ''}). {fix}"
        )
    return x


def _npz_targets(y: np.ndarray, where: str) -> np.ndarray:
    if y.dtype.kind in "iuf":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise DataError(
                f"Array 'y' of {where} has {int((~np.isfinite(y)).sum())} missing (NaN) or infinite values. "
                "Drop those rows before saving."
            )
        return y
    if y.dtype.kind in "bUS":
        return y.astype(str)
    raise DataError(f"Array 'y' of {where} must hold numbers or strings. Received dtype {y.dtype}.")
