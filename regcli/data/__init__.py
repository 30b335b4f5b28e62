"""Data sets -> seeded splits, scaling, label noise and drift (the `data:` block of SPEC §2).

`load_dataset(spec.data, seed=spec.seed, task=spec.model.task)` turns the `data:` block into a
`Dataset`: float32 feature matrices and int32 class indices (classification) or float32 targets
(regression) for the train, validation and test splits, plus a JSON-able `info` dict that the run
directory records. The pipeline, in this order:

1. load: a scikit-learn bundled set, a seeded scikit-learn generator, a .csv/.parquet/.npz file
   (string columns one-hot encoded, with a "missing" level when `data.impute` is not none), or an
   image folder (one subfolder per class; pixels scaled to [0, 1], one flat row per image);
2. task: inferred from the targets (`task="auto"`) or checked against `model.task`;
3. split: test first, then validation, both fractions of the WHOLE data set, stratified for
   classification;
4. `train_fraction`: a (stratified) subset of the training split; validation and test are unchanged;
5. `impute`: missing numeric values filled with a statistic of the training split only;
6. `label_noise`: corrupts that share of TRAINING labels only;
7. `standardize`: feature (and regression target) mean/std fitted on the training split only;
   per color channel instead of per feature for an image folder;
8. `drift`: `x * scale + shift` on validation and test features only.

Every random choice (generator, split, subset, label noise) derives from the split seed
(`data.split_seed`, or the experiment seed when it is null), so `split_seed` holds the data fixed
while `seed` varies initialization and dropout. Nothing here touches the network, TensorFlow or
Keras; pandas and scikit-learn are imported inside the functions that need them.

The `data:` block arrives validated (`regcli.spec`): exactly one of source and path, a known
source, generator parameters by name and range (`spec.SOURCE_PARAMS`, the one table of them),
a path with a known suffix, `data.target` where a table needs it, fractions and seeds in range.
This package only checks what the data itself can show. Its modules, in pipeline order:
`sources` (built-in and generated), `files` (.csv/.parquet/.npz), `images` (image folders), `raw`
(the loaded data and its task), `split` (splits, train_fraction, label noise, standardization,
drift), `impute` (missing values), `memory` (what memory there is), and `check` (what
`regcli validate` says about the data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from regcli.data.files import load_file
from regcli.data.images import load_image_folder
from regcli.data.impute import impute
from regcli.data.memory import memory_note
from regcli.data.raw import Raw, resolve_task
from regcli.data.sources import generate, load_bundled
from regcli.data.split import Rows, Splits, split_rows, subset, transform
from regcli.errors import DataError
from regcli.spec import SOURCE_PARAMS  # the generated sources and their parameters, validated in the spec

__all__ = ["Dataset", "load_dataset", "smoke_limit"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """The three splits of one data set, ready for `model.fit`, and what was done to them.

    `x_*` are float32 arrays of shape (rows, n_features); `y_*` are int32 class indices 0..K-1
    for classification and float32 targets for regression (standardized with the training
    split's `target_mean`/`target_std` when `data.standardize` is true, so an MAE is in units of
    the target's standard deviation). An empty split (fraction 0) has shape (0, n_features).
    `image_shape` is the per-row shape to reshape the flat features into for conv layers
    ((8, 8, 1) for digits, (H, W, C) for an image folder), None for tabular data. `info` is
    JSON-able and goes to the run directory.
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
            f"{memory_note()}Lower data.params.n_samples or n_features, or use a smaller data file."
        ) from None


def _build_dataset(data: Any, seed: int, task: str) -> Dataset:
    # The spec checked both seeds: integers in [0, 2**32 - 1].
    split_seed = int(data.split_seed if data.split_seed is not None else seed)
    raw = _load_raw(data, split_seed)
    task, y, class_names = resolve_task(raw, task)
    classification = task != "regression"
    labels = y if classification and bool(data.stratify) else None
    rows = split_rows(len(y), data, labels, class_names, split_seed, raw.where)
    x, imputed = impute(raw, rows, data.impute)
    channels = raw.image_shape[-1] if raw.per_channel and raw.image_shape else 0
    splits = transform(x, y, rows, data, len(class_names), split_seed, channels)
    y_dtype = np.int32 if classification else np.float32
    ds = Dataset(
        x_train=np.ascontiguousarray(splits.x_train, dtype=np.float32),
        y_train=np.ascontiguousarray(splits.y_train, dtype=y_dtype),
        x_val=np.ascontiguousarray(splits.x_val, dtype=np.float32),
        y_val=np.ascontiguousarray(splits.y_val, dtype=y_dtype),
        x_test=np.ascontiguousarray(splits.x_test, dtype=np.float32),
        y_test=np.ascontiguousarray(splits.y_test, dtype=y_dtype),
        task=task,
        n_classes=len(class_names) if classification else 1,
        class_names=class_names,
        feature_names=raw.feature_names,
        image_shape=raw.image_shape,
        target_mean=splits.target_mean,
        target_std=splits.target_std,
    )
    info = _info(data, raw, y, rows=rows, splits=splits, ds=ds, imputed=imputed)
    return replace(ds, info={**info, **_split_stats(ds)})


def _info(
    data: Any, raw: Raw, y: np.ndarray, *, rows: Rows, splits: Splits, ds: Dataset, imputed: dict[str, Any]
) -> dict[str, Any]:
    """What `info` records of the loading and transforms (the split sizes come from `_split_stats`)."""
    return {
        **raw.origin,
        "task": ds.task,
        "n_classes": ds.n_classes,
        "class_names": ds.class_names,
        "n_rows": len(y),
        "n_features": ds.n_features,
        "one_hot": dict(raw.one_hot),  # string column -> its levels (one feature each)
        "impute": str(data.impute),
        "imputed": imputed,  # column -> strategy, value filled in, values filled per split
        "image_shape": list(raw.image_shape) if raw.image_shape else None,
        "split_seed": rows.seed,
        "val_fraction": float(data.val_fraction),
        "test_fraction": float(data.test_fraction),
        "stratify": ds.task != "regression" and bool(data.stratify),
        "standardize": bool(data.standardize),
        "train_fraction": float(data.train_fraction),
        "train_rows_before_fraction": rows.n_train_split,
        "train_rows_kept": len(rows.train),
        "train_fraction_stratified": rows.subset_stratified,
        "label_noise": float(data.label_noise),
        "label_noise_flipped": splits.flipped,
        "drift": splits.drift,
        "target_mean": splits.target_mean,
        "target_std": splits.target_std,
        **(splits.channel_stats or {}),  # image folders: what standardize subtracted and divided by
        # The held-out rows as loaded (label noise touches training labels only), before any transform.
        "test_fingerprint": fingerprint(raw.x[rows.test], y[rows.test]),
        "data_fingerprint": fingerprint(raw.x, y),
    }


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
    keep, _ = subset(np.arange(n_train), max_train_rows, labels, int(ds.info.get("split_seed", 0)))
    smaller = replace(ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep])
    info = {**ds.info, "smoke_train_rows": len(keep), "smoke_train_rows_before": n_train}
    return replace(smaller, info={**info, **_split_stats(smaller)})


def _load_raw(data: Any, split_seed: int) -> Raw:
    """The rows of `data.source` or `data.path`: the spec guarantees exactly one of them."""
    if data.source in SOURCE_PARAMS:
        return generate(data.source, dict(data.params or {}), split_seed)
    if data.source is not None:
        return load_bundled(data.source)
    image_size = getattr(data, "image_size", None)  # the spec requires it exactly for an image folder
    if image_size is not None:
        return load_image_folder(Path(data.path), tuple(image_size), data.color_mode or "rgb")
    return load_file(Path(data.path), data.target, data.impute)


def _name_data(source: str | None, path: str | None) -> str:
    return f"data.source '{source}'" if source is not None else f"data.path '{path}'"


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


def fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 of the shapes, dtypes and bytes of (x, y): equal arrays give equal hex digests."""
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
