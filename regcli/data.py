"""Data sets -> seeded splits, scaling, label noise and drift (the `data:` block of SPEC §2).

`load_dataset(spec.data, seed=spec.seed, task=spec.model.task)` turns the `data:` block into a
`Dataset`: float32 feature matrices and int32 class indices (classification) or float32 targets
(regression) for the train, validation and test splits, plus a JSON-able `info` dict that the run
directory records. The pipeline, in this order:

1. load: a scikit-learn bundled set, a seeded scikit-learn generator, or a .csv/.parquet/.npz file;
2. task: inferred from the targets (`task="auto"`) or checked against `model.task`;
3. split: test first, then validation, both fractions of the WHOLE data set, stratified for
   classification;
4. `train_fraction`: a (stratified) subset of the training split; validation and test are unchanged;
5. `label_noise`: corrupts that share of TRAINING labels only;
6. `standardize`: feature (and regression target) mean/std fitted on the training split only;
7. `drift`: `x * scale + shift` on validation and test features only.

Every random choice (generator, split, subset, label noise) derives from the split seed
(`data.split_seed`, or the experiment seed when it is null), so `split_seed` holds the data fixed
while `seed` varies initialization and dropout. Nothing here touches the network, TensorFlow or
Keras; pandas and scikit-learn are imported inside the functions that need them.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from regcli.errors import DataError
from regcli.spec import BUILTIN_SOURCES  # one list of built-in sources, validated in the spec

FILE_SUFFIXES = (".csv", ".parquet", ".npz")
TASKS = ("auto", "binary", "multiclass", "regression")

# Defaults of the generated sources; 1000 rows keep a CPU epoch well under a second.
GENERATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "moons": {"n_samples": 1000, "noise": 0.25},
    "synthetic_classification": {"n_samples": 1000, "n_features": 20, "n_informative": 10, "n_classes": 2},
    "synthetic_regression": {"n_samples": 1000, "n_features": 20, "noise": 10.0},
}
# The scikit-learn arguments `data.params` may set. `random_state` is not one: the split seed sets it.
GENERATOR_PARAMS: dict[str, tuple[str, ...]] = {
    "moons": ("n_samples", "noise"),
    "synthetic_classification": (
        "n_samples",
        "n_features",
        "n_informative",
        "n_redundant",
        "n_classes",
        "n_clusters_per_class",
        "weights",
        "flip_y",
        "class_sep",
    ),
    "synthetic_regression": (
        "n_samples",
        "n_features",
        "n_informative",
        "noise",
        "bias",
        "effective_rank",
        "tail_strength",
    ),
}

MAX_NUMERIC_CLASSES = 20  # an integer-valued numeric target with at most 20 distinct values is a class label
# A text column with more distinct values than this (or than half the rows) is free text or an id.
MAX_CATEGORIES = 50
_NOISE_STREAM = 1  # label noise draws from SeedSequence([split_seed, 1]), apart from the split itself


@dataclass(frozen=True, eq=False)
class Dataset:
    """The three splits of one data set, ready for `model.fit`, and what was done to them.

    `x_*` are float32 arrays of shape (rows, n_features); `y_*` are int32 class indices 0..K-1
    for classification and float32 targets for regression (standardized with the training
    split's `target_mean`/`target_std` when `data.standardize` is true, so an MAE is in units of
    the target's standard deviation). An empty split (fraction 0) has shape (0, n_features).
    `image_shape` is the per-row shape to reshape the flat features into for conv layers
    ((8, 8, 1) for digits), None for tabular data. `info` is JSON-able and goes to the run directory.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int
    class_names: list[str]
    feature_names: list[str]
    image_shape: tuple[int, ...] | None = None
    target_mean: float | None = None
    target_std: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


@dataclass
class _Raw:
    """A loaded data set before task resolution and splitting."""

    x: np.ndarray  # float64, (rows, features)
    y: np.ndarray  # (rows,): numbers, or str labels
    feature_names: list[str]
    where: str  # how messages name the data: "data.source 'iris'" or "data.path '/x/y.csv'"
    origin: dict[str, Any]  # source/path/target/params, recorded in info
    kind: str | None = None  # "classification" | "regression" when the source fixes it
    class_names: list[str] | None = None  # names of y's integer codes when the source fixes them
    image_shape: tuple[int, ...] | None = None


def load_dataset(data: Any, *, seed: int, task: str = "auto") -> Dataset:
    """Load, split and transform the data set that a `data:` spec block describes.

    Args:
        data: the `data:` block (a `DataSpec`, or any object with the same attributes).
        seed: the experiment seed; it seeds everything here when `data.split_seed` is null.
        task: `model.task`: "auto" infers it from the targets, "binary", "multiclass" and
            "regression" are checked against them. Defaults to `"auto"`.

    Returns:
        A `Dataset`; the same spec and seed give byte-identical arrays.

    Raises:
        DataError: the data cannot be loaded or split as asked (exit code 2).

    Example:
        >>> ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)  # data.source: iris
        >>> ds.x_train.shape, ds.task, ds.n_classes, ds.class_names
        ((90, 4), 'multiclass', 3, ['setosa', 'versicolor', 'virginica'])
    """
    try:
        return _build_dataset(data, seed, task)
    except MemoryError as exc:  # numpy's _ArrayMemoryError too: bad input for this machine, not a crash
        raise DataError(
            f"data: loading and splitting {_name_data(data.source, data.path)} ran out of memory ({exc}). "
            f"{_memory_note()}Lower data.params.n_samples or n_features, or use a smaller data file."
        ) from None


def _memory_note() -> str:
    """What memory there is, read without heavy imports: MemAvailable, and `ulimit -v` when set."""
    notes = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
        notes.append(f"this machine has {kib / 1024**2:.1f} GiB of memory available")
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            notes.append(f"this process may use at most {limit / 1024**3:.1f} GiB (ulimit -v)")
    except (ImportError, OSError, ValueError):
        pass
    text = "; ".join(notes)
    return f"{text[:1].upper()}{text[1:]}. " if notes else ""


def _build_dataset(data: Any, seed: int, task: str) -> Dataset:
    split_seed = _split_seed(data, seed)
    raw = _load_raw(data, split_seed)
    task, y, class_names = _resolve_task(raw, task)
    classification = task != "regression"
    n_classes = len(class_names) if classification else 1

    strat_labels = y if classification and bool(data.stratify) else None
    train_idx, val_idx, test_idx = _split(
        len(y),
        float(data.val_fraction),
        float(data.test_fraction),
        strat_labels,
        class_names,
        split_seed,
        raw.where,
    )
    n_train_split = len(train_idx)
    keep = _share(float(data.train_fraction), n_train_split, minimum=1)
    if classification and keep < n_classes:
        fewest = min(1.0, -(-1000 * n_classes // n_train_split) / 1000)  # rounded up to 3 decimals
        raise DataError(
            f"data.train_fraction: {data.train_fraction} keeps {keep} of the {n_train_split} training rows of "
            f"{raw.where}, fewer than its {n_classes} classes, so some class would have no training example. "
            f"Use data.train_fraction >= {fewest:g}."
        )
    train_idx, fraction_stratified = _subset(train_idx, keep, strat_labels, split_seed)

    x_train, x_val, x_test = raw.x[train_idx], raw.x[val_idx], raw.x[test_idx]
    y_train, y_val, y_test = y[train_idx], y[val_idx], y[test_idx]
    y_train, flipped = _corrupt_labels(
        y_train, float(data.label_noise), n_classes if classification else 0, split_seed
    )
    test_fingerprint = _fingerprint(x_test, y_test)

    target_mean = target_std = None
    if data.standardize:
        mean, std = _mean_std(x_train)
        x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))
    if not classification:
        target_mean, target_std = 0.0, 1.0  # identity unless standardized: y_original = y * std + mean
        if data.standardize:
            mu, sd = _mean_std(y_train[:, None])
            target_mean, target_std = float(mu[0]), float(sd[0])
            y_train, y_val, y_test = ((v - target_mean) / target_std for v in (y_train, y_val, y_test))
    drift = _drift(data.drift)
    if drift is not None:
        x_val = x_val * drift["scale"] + drift["shift"]
        x_test = x_test * drift["scale"] + drift["shift"]

    y_dtype = np.int32 if classification else np.float32
    ds = Dataset(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=np.ascontiguousarray(y_train, dtype=y_dtype),
        x_val=np.ascontiguousarray(x_val, dtype=np.float32),
        y_val=np.ascontiguousarray(y_val, dtype=y_dtype),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=np.ascontiguousarray(y_test, dtype=y_dtype),
        task=task,
        n_classes=n_classes,
        class_names=class_names,
        feature_names=raw.feature_names,
        image_shape=raw.image_shape,
        target_mean=target_mean,
        target_std=target_std,
    )
    info = {
        **raw.origin,
        "task": task,
        "n_classes": n_classes,
        "class_names": class_names,
        "n_rows": len(y),
        "n_features": ds.n_features,
        "image_shape": list(raw.image_shape) if raw.image_shape else None,
        "split_seed": split_seed,
        "val_fraction": float(data.val_fraction),
        "test_fraction": float(data.test_fraction),
        "stratify": strat_labels is not None,
        "standardize": bool(data.standardize),
        "train_fraction": float(data.train_fraction),
        "train_rows_before_fraction": n_train_split,
        "train_rows_kept": len(train_idx),
        "train_fraction_stratified": fraction_stratified,
        "label_noise": float(data.label_noise),
        "label_noise_flipped": flipped,
        "drift": drift,
        "target_mean": target_mean,
        "target_std": target_std,
        "test_fingerprint": test_fingerprint,
        "data_fingerprint": _fingerprint(raw.x, y),
    }
    return replace(ds, info={**info, **_split_stats(ds)})


def smoke_limit(ds: Dataset, max_train_rows: int = 256) -> Dataset:
    """Return `ds` with at most `max_train_rows` training rows, for the CI `--smoke` mode.

    The subset is seeded by the data set's split seed and stratified for classification where
    every class has at least 2 rows; validation, test and the standardization statistics
    (fitted on the full training split) are unchanged. Defaults to 256 rows (SPEC §1).
    """
    n_train = len(ds.y_train)
    if n_train <= max_train_rows:
        return ds
    labels = ds.y_train if ds.task != "regression" and ds.info.get("stratify", True) else None
    keep, _ = _subset(np.arange(n_train), max_train_rows, labels, int(ds.info.get("split_seed", 0)))
    smaller = replace(ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep])
    info = {**ds.info, "smoke_train_rows": len(keep), "smoke_train_rows_before": n_train}
    return replace(smaller, info={**info, **_split_stats(smaller)})


# --- loading -----------------------------------------------------------------------------


def _split_seed(data: Any, seed: int) -> int:
    key, value = ("data.split_seed", data.split_seed) if data.split_seed is not None else ("seed", seed)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < 2**32:
        raise DataError(
            f"{key} must be an integer in [0, 2**32 - 1] to seed the data split. Received: {value!r}."
        )
    return int(value)


def _load_raw(data: Any, split_seed: int) -> _Raw:
    source, path = data.source, data.path
    if (source is None) == (path is None):
        raise DataError(
            "data must name exactly one of data.source (a built-in data set) or data.path (a .csv, .parquet "
            f"or .npz file). Received: source={source!r}, path={path!r}. Set one and remove the other."
        )
    params = dict(data.params or {})
    if params and source not in GENERATOR_PARAMS:
        raise DataError(
            f"data.params applies only to the generated sources ({', '.join(GENERATOR_PARAMS)}). "
            f"Received: params={params!r} with {_name_data(source, path)}. Remove data.params."
        )
    if source is not None:
        if data.target is not None:
            raise DataError(
                f"data.target names the target column of a .csv/.parquet file; built-in data.source "
                f"'{source}' has its own targets. Received: target={data.target!r}. Remove data.target."
            )
        if source in GENERATOR_PARAMS:
            return _generate(source, params, split_seed)
        return _load_bundled(source)
    return _load_file(Path(path), data.target)


def _name_data(source: str | None, path: str | None) -> str:
    return f"data.source '{source}'" if source is not None else f"data.path '{path}'"


def _load_bundled(source: str) -> _Raw:
    from sklearn import datasets

    loaders = {
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
        "diabetes": datasets.load_diabetes,
    }
    if source not in loaders:
        raise DataError(
            f"data.source must be one of {', '.join(BUILTIN_SOURCES)}. Received: {source!r}."
            f"{_did_you_mean(str(source), BUILTIN_SOURCES)} For your own data, set data.path to a .csv, .parquet or .npz file."
        )
    bunch = loaders[source]()  # scikit-learn's bundled copy: no network
    regression = source == "diabetes"
    return _Raw(
        x=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target, dtype=np.float64 if regression else np.int64),
        feature_names=[str(name) for name in bunch.feature_names],
        where=f"data.source '{source}'",
        origin={"source": source, "path": None},
        kind="regression" if regression else "classification",
        class_names=None if regression else [str(name) for name in bunch.target_names],
        image_shape=(8, 8, 1) if source == "digits" else None,
    )


def _generate(source: str, params: dict[str, Any], seed: int) -> _Raw:
    from sklearn import datasets

    allowed = GENERATOR_PARAMS[source]
    for key in params:
        if key not in allowed:
            hint = (
                " The generator's random_state is the split seed: set data.split_seed instead."
                if key == "random_state"
                else ""
            )
            raise DataError(
                f"data.params.{key} is not an argument of the '{source}' generator. Allowed: "
                f"{', '.join(allowed)}.{_did_you_mean(str(key), allowed)}{hint}"
            )
    args = {**GENERATOR_DEFAULTS[source], **params}
    if source == "synthetic_classification":
        # Shrinking n_features alone should just work: keep informative + redundant <= n_features.
        n_features = args["n_features"]
        if "n_informative" not in params and isinstance(n_features, int):
            args["n_informative"] = min(args["n_informative"], n_features)
        if (
            "n_redundant" not in params
            and isinstance(n_features, int)
            and isinstance(args["n_informative"], int)
        ):
            args["n_redundant"] = max(0, min(2, n_features - args["n_informative"]))
    generator = {
        "moons": datasets.make_moons,
        "synthetic_classification": datasets.make_classification,
        "synthetic_regression": datasets.make_regression,
    }[source]
    try:
        x, y = generator(**args, random_state=seed)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"data.params for the '{source}' generator were rejected by scikit-learn's {generator.__name__}: "
            f"{exc} Received: {args!r}. Fix the values under data.params."
        ) from None
    regression = source == "synthetic_regression"
    return _Raw(
        x=np.asarray(x, dtype=np.float64),
        y=np.asarray(y, dtype=np.float64 if regression else np.int64),
        feature_names=[f"x{i}" for i in range(x.shape[1])],
        where=f"data.source '{source}'",
        origin={"source": source, "path": None, "params": _jsonable(args)},
        kind="regression" if regression else "classification",
        class_names=None
        if regression
        else [str(c) for c in range(2 if source == "moons" else args["n_classes"])],
    )


def _load_file(path: Path, target: str | None) -> _Raw:
    where = f"data.path '{path}'"
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"{where} must be a {', '.join(FILE_SUFFIXES)} file. Received a '{suffix or 'no'}' suffix. "
            "Convert the data to one of those formats."
        )
    if not path.is_file():
        raise DataError(f"{where} does not exist or is not a file. Check data.path.")
    if suffix == ".npz":
        if target is not None:
            raise DataError(
                f"data.target names a column of a .csv/.parquet file; {where} is an .npz archive whose targets "
                f"are its array 'y'. Received: target={target!r}. Remove data.target."
            )
        return _load_npz(path, where)
    frame = _read_table(path, suffix, where)
    return _frame_to_raw(frame, target, path, where)


def _read_table(path: Path, suffix: str, where: str) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many types for one unreadable file
        raise DataError(
            f"{where} could not be read as a {suffix[1:]} file ({type(exc).__name__}: {exc}). "
            "Check that the file is complete and in that format."
        ) from None


def _frame_to_raw(frame: Any, target: str | None, path: Path, where: str) -> _Raw:
    import pandas as pd

    frame.columns = [str(c) for c in frame.columns]
    columns = list(frame.columns)
    if target is None:
        raise DataError(
            f"data.target is required for {where}: name the column that holds the labels or values to "
            f"predict. Columns: {', '.join(columns)}."
        )
    if target not in columns:
        raise DataError(
            f"data.target column '{target}' is not in {where}.{_did_you_mean(target, columns)} "
            f"Columns: {', '.join(columns)}. Set data.target to one of them."
        )
    if len(frame) == 0:
        raise DataError(f"{where} has a header but no rows. Add data rows.")
    y_col = frame[target]
    bad = int(y_col.isna().sum())
    is_number = pd.api.types.is_numeric_dtype(y_col) and not pd.api.types.is_bool_dtype(y_col)
    if is_number:
        bad = int((~np.isfinite(y_col.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
    if bad:
        raise DataError(
            f"data.target column '{target}' of {where} has {bad} of {len(frame)} rows with a missing (NaN) or "
            "infinite value. regcli does not impute targets: drop those rows from the file."
        )
    y = y_col.to_numpy(dtype=np.float64) if is_number else np.asarray(y_col.astype(str).to_list(), dtype=str)

    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{where} has only the target column '{target}'. Add feature columns.")
    blocks: list[np.ndarray] = []
    names: list[str] = []
    not_finite: list[str] = []
    for name in features.columns:
        col = features[name]
        if pd.api.types.is_numeric_dtype(col):  # bool included: True/False -> 1.0/0.0
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = int((~np.isfinite(values)).sum())
            if bad:
                not_finite.append(f"'{name}' ({_rows(bad)})")
            blocks.append(values[:, None])
            names.append(name)
        elif (
            isinstance(col.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(col)
            or pd.api.types.is_string_dtype(col)
        ):
            bad = int(col.isna().sum())
            if bad:
                not_finite.append(f"'{name}' ({_rows(bad)})")
                continue
            n_distinct = int(col.nunique())
            if n_distinct > MAX_CATEGORIES or n_distinct > len(frame) / 2:
                raise DataError(
                    f"Column '{name}' of {where} is non-numeric with {n_distinct} distinct values in {len(frame)} rows, "
                    f"too many to one-hot encode as a category (at most {MAX_CATEGORIES} and at most half the rows): "
                    "it looks like free text or an id. Drop it or encode it as numbers before training."
                )
            dummies = pd.get_dummies(col.astype(str), prefix=name, dtype=float)
            blocks.append(dummies.to_numpy(dtype=np.float64))
            names.extend(str(c) for c in dummies.columns)
        else:
            raise DataError(
                f"Column '{name}' of {where} has dtype {col.dtype}, which regcli cannot use as a feature. "
                "Convert it to numbers (e.g. a timestamp to seconds) or drop it."
            )
    if not_finite:
        raise DataError(
            f"Feature columns of {where} have missing (NaN) or infinite values: {', '.join(not_finite)}. "
            "regcli does not impute features: drop or fill those rows (e.g. pandas dropna/fillna) before training."
        )
    return _Raw(
        x=np.concatenate(blocks, axis=1),
        y=y,
        feature_names=names,
        where=where,
        origin={"source": None, "path": str(path), "target": target},
    )


def _load_npz(path: Path, where: str) -> _Raw:
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
    x = x.astype(np.float64)
    bad_rows = ~np.isfinite(x).all(axis=1)
    if bad_rows.any():
        bad_cols = np.flatnonzero(~np.isfinite(x).all(axis=0))
        raise DataError(
            f"Array 'X' of {where} has missing (NaN) or infinite values in {_rows(int(bad_rows.sum()))} (feature "
            f"columns {', '.join(f'x{i}' for i in bad_cols[:10])}{' ...' if len(bad_cols) > 10 else ''}). "
            "regcli does not impute: drop or fill those rows before saving."
        )
    if y.dtype.kind in "iuf":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise DataError(
                f"Array 'y' of {where} has {int((~np.isfinite(y)).sum())} missing (NaN) or infinite values. "
                "Drop those rows before saving."
            )
    elif y.dtype.kind in "bUS":
        y = y.astype(str)
    else:
        raise DataError(f"Array 'y' of {where} must hold numbers or strings. Received dtype {y.dtype}.")
    return _Raw(
        x=x,
        y=y,
        feature_names=[f"x{i}" for i in range(x.shape[1])],
        where=where,
        origin={"source": None, "path": str(path)},
        image_shape=image_shape,
    )


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


# --- task --------------------------------------------------------------------------------


def _resolve_task(raw: _Raw, requested: str) -> tuple[str, np.ndarray, list[str]]:
    """Return (task, targets, class_names): int64 class codes or float64 values."""
    if requested not in TASKS:
        raise DataError(f"model.task must be one of {', '.join(TASKS)}. Received: {requested!r}.")
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
    raw: _Raw, requested: str, codes: np.ndarray, names: list[str]
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


# --- splitting and transforms ----------------------------------------------------------------


def _share(fraction: float, n: int, minimum: int = 0) -> int:
    """`round(fraction * n)` rows (Python's round); at least one when the fraction is positive."""
    if fraction <= 0:
        return minimum
    return max(1, minimum, round(fraction * n))


def _split(
    n: int,
    val_fraction: float,
    test_fraction: float,
    labels: np.ndarray | None,
    class_names: list[str],
    seed: int,
    where: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, val, test) row indices: test first, then validation, both shares of all `n` rows."""
    n_test, n_val = _share(test_fraction, n), _share(val_fraction, n)
    n_train = n - n_test - n_val
    if n_train < 2:
        raise DataError(
            f"{where} has {n} rows: data.test_fraction={test_fraction} takes {n_test} and data.val_fraction="
            f"{val_fraction} takes {n_val}, leaving {n_train} for training; at least 2 are needed. Use more rows "
            "(data.params.n_samples for generated sources) or smaller fractions."
        )
    rest = np.arange(n)
    rest, test_idx = _take(rest, n_test, labels, class_names, seed, "data.test_fraction", where)
    train_idx, val_idx = _take(rest, n_val, labels, class_names, seed, "data.val_fraction", where)
    return train_idx, val_idx, test_idx


def _take(
    pool: np.ndarray,
    size: int,
    labels: np.ndarray | None,
    class_names: list[str],
    seed: int,
    key: str,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Split `pool` into (rest, taken) with `size` rows taken; stratified when `labels` is given."""
    if size == 0:
        return pool, pool[:0]
    from sklearn.model_selection import train_test_split

    strata = None
    if labels is not None:
        strata = labels[pool]
        classes, counts = np.unique(strata, return_counts=True)
        rare = int(np.argmin(counts))
        if counts[rare] < 2:
            raise DataError(
                f"data.stratify: class '{class_names[classes[rare]]}' of {where} has only {counts[rare]} row among the "
                f"{len(pool)} rows split by {key}; a stratified split needs at least 2 rows of every class. "
                "Set data.stratify: false, or drop or merge that class."
            )
        if min(size, len(pool) - size) < len(classes):
            raise DataError(
                f"data.stratify: {key} splits {len(pool)} rows of {where} into {size} and {len(pool) - size}, but a "
                f"stratified split needs at least one row of each of the {len(classes)} classes on both sides. "
                f"Raise {key}, or set data.stratify: false."
            )
    rest, taken = train_test_split(pool, test_size=size, random_state=seed, shuffle=True, stratify=strata)
    return rest, taken


def _subset(rows: np.ndarray, keep: int, labels: np.ndarray | None, seed: int) -> tuple[np.ndarray, bool]:
    """Seeded subset of `keep` of `rows`, stratified where every class allows it; (rows, stratified)."""
    if keep >= len(rows):
        return rows, False
    from sklearn.model_selection import train_test_split

    strata = None
    if labels is not None:
        strata = labels[rows]
        _, counts = np.unique(strata, return_counts=True)
        if counts.min() < 2 or min(keep, len(rows) - keep) < len(counts):
            strata = None  # too few rows to keep every class on both sides: a plain random subset
    kept, _ = train_test_split(rows, train_size=keep, random_state=seed, shuffle=True, stratify=strata)
    return kept, strata is not None


def _corrupt_labels(y: np.ndarray, share: float, n_classes: int, seed: int) -> tuple[np.ndarray, int]:
    """Corrupt `round(share * len(y))` labels; (noisy labels, number corrupted).

    Classification (`n_classes` >= 2): each chosen label becomes a different class, drawn uniformly.
    Regression (`n_classes` 0): each chosen target is replaced by the target of another, randomly
    drawn training row, so noisy values stay on the target's own scale and distribution.
    """
    n_flip = round(share * len(y)) if share > 0 else 0
    if n_flip == 0 or len(y) < 2:
        return y, 0
    rng = np.random.default_rng([seed, _NOISE_STREAM])
    rows = rng.choice(len(y), size=n_flip, replace=False)
    noisy = y.copy()
    if n_classes:
        noisy[rows] = (y[rows] + rng.integers(1, n_classes, size=n_flip)) % n_classes
    else:
        noisy[rows] = y[(rows + rng.integers(1, len(y), size=n_flip)) % len(y)]
    return noisy, n_flip


def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std; a constant column (std ~ 0) gets std 1 so it maps to 0, not NaN."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)


def _drift(drift: Any) -> dict[str, float] | None:
    if drift is None:
        return None
    get = drift.get if isinstance(drift, dict) else lambda key, default: getattr(drift, key, default)
    return {"shift": float(get("shift", 0.0)), "scale": float(get("scale", 1.0))}


# --- bookkeeping -------------------------------------------------------------------------------


def _split_stats(ds: Dataset) -> dict[str, Any]:
    """The info entries that depend on the final arrays: sizes, class counts, the trivial baseline."""
    splits = {"train": ds.y_train, "val": ds.y_val, "test": ds.y_test}
    counts = None
    baseline = None
    if ds.task != "regression":
        counts = {
            split: dict(zip(ds.class_names, np.bincount(y, minlength=ds.n_classes).tolist(), strict=True))
            for split, y in splits.items()
        }
        if len(ds.y_val):
            majority = int(np.argmax(np.bincount(ds.y_train, minlength=ds.n_classes)))
            baseline = float(np.mean(ds.y_val != majority))
    elif len(ds.y_val):
        baseline = float(np.mean(np.abs(ds.y_val.astype(np.float64) - ds.y_train.astype(np.float64).mean())))
    return {
        "n_train": len(ds.y_train),
        "n_val": len(ds.y_val),
        "n_test": len(ds.y_test),
        "class_counts": counts,
        "baseline_val_error": baseline,
    }


def _fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 of the shapes, dtypes and bytes of (x, y): equal arrays give equal hex digests."""
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _did_you_mean(word: str, options: Any) -> str:
    options = [str(o) for o in options]
    lowered = {o.lower(): o for o in options}
    match = lowered.get(word.lower()) or next(
        iter(difflib.get_close_matches(word, options, n=1, cutoff=0.6)), None
    )
    return f" Did you mean '{match}'?" if match else ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
