"""Seeded splits and what is done to them: train/val/test rows, `train_fraction`, label noise,
standardization (fitted on the training split only) and drift (validation and test only).

Every random choice derives from the split seed; scikit-learn is imported where it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from regcli.errors import DataError

_NOISE_STREAM = 1  # label noise draws from SeedSequence([split_seed, 1]), apart from the split itself


@dataclass(frozen=True)
class Rows:
    """Row indices of the three splits; `train` is the `train_fraction` subset of the training split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    n_train_split: int  # training rows before `train_fraction`
    subset_stratified: bool  # whether the `train_fraction` subset was stratified
    seed: int  # the split seed


@dataclass(frozen=True)
class Splits:
    """The arrays of the three splits after label noise, standardization and drift."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    flipped: int  # training labels corrupted by `label_noise`
    target_mean: float | None  # regression: y_original = y * target_std + target_mean
    target_std: float | None
    drift: dict[str, float] | None
    channel_stats: dict[str, list[float]] | None = None  # image folders: the per-channel mean and std


def split_rows(
    n: int, data: Any, labels: np.ndarray | None, class_names: list[str], seed: int, where: str
) -> Rows:
    """Test rows first, then validation, both shares of all `n` rows; then the `train_fraction`
    subset of the rest. `labels` (class codes) stratify every step; None: no stratification."""
    sizes = split_sizes(n, data, len(class_names), where)
    train, val, test = _split(n, sizes, labels, class_names, seed, where)
    train, stratified = subset(train, sizes.train, labels, seed)
    return Rows(train, val, test, sizes.train_split, stratified, seed)


@dataclass(frozen=True)
class Sizes:
    """Row counts of the splits, known from `n` and the fractions alone."""

    train: int  # kept by train_fraction
    val: int
    test: int
    train_split: int  # training rows before train_fraction


def split_sizes(n: int, data: Any, n_classes: int, where: str) -> Sizes:
    """The split sizes of `n` rows, refused when too few train (the checks that need no rows).

    `n_classes` is 0 for regression. `split_rows` takes exactly these many rows; `regcli validate`
    uses them for a built-in source without generating it.
    """
    val_fraction, test_fraction = float(data.val_fraction), float(data.test_fraction)
    n_test, n_val = _share(test_fraction, n), _share(val_fraction, n)
    n_train = n - n_test - n_val
    if n_train < 2:
        raise DataError(
            f"{where} has {n} rows: data.test_fraction={test_fraction} takes {n_test} and data.val_fraction="
            f"{val_fraction} takes {n_val}, leaving {n_train} for training; at least 2 are needed. Use more rows "
            "(data.params.n_samples for generated sources) or smaller fractions."
        )
    keep = _share(float(data.train_fraction), n_train, minimum=1)
    if keep < n_classes:
        fewest = min(1.0, -(-1000 * n_classes // n_train) / 1000)  # rounded up to 3 decimals
        raise DataError(
            f"data.train_fraction: {data.train_fraction} keeps {keep} of the {n_train} training rows of "
            f"{where}, fewer than its {n_classes} classes, so some class would have no training example. "
            f"Use data.train_fraction >= {fewest:g}."
        )
    return Sizes(keep, n_val, n_test, n_train)


def transform(
    x: np.ndarray, y: np.ndarray, rows: Rows, data: Any, n_classes: int, seed: int, channels: int = 0
) -> Splits:
    """The split arrays with label noise, standardization and drift applied, in that order.

    `n_classes` is 0 for regression: its targets are standardized too, and label noise swaps them.
    `channels` > 0: the features are images of that many channels, last (H, W, C flattened), and
    are standardized per channel rather than per feature. Defaults to `0`.
    """
    x_train, x_val, x_test = x[rows.train], x[rows.val], x[rows.test]
    y_train, y_val, y_test = y[rows.train], y[rows.val], y[rows.test]
    y_train, flipped = _corrupt_labels(y_train, float(data.label_noise), n_classes, seed)
    target_mean = target_std = None
    channel_stats = None
    if data.standardize:
        mean, std = _mean_std(x_train) if not channels else _channel_mean_std(x_train, channels)
        x_train, x_val, x_test = ((v - mean) / std for v in (x_train, x_val, x_test))
        if channels:
            channel_stats = {"channel_mean": mean[:channels].tolist(), "channel_std": std[:channels].tolist()}
    if not n_classes:
        target_mean, target_std = 0.0, 1.0  # identity unless standardized: y_original = y * std + mean
        if data.standardize:
            mu, sd = _mean_std(y_train[:, None])
            target_mean, target_std = float(mu[0]), float(sd[0])
            y_train, y_val, y_test = ((v - target_mean) / target_std for v in (y_train, y_val, y_test))
    drift = _drift(data.drift)
    if drift is not None:
        x_val = x_val * drift["scale"] + drift["shift"]
        x_test = x_test * drift["scale"] + drift["shift"]
    return Splits(
        x_train, y_train, x_val, y_val, x_test, y_test, flipped, target_mean, target_std, drift, channel_stats
    )


def _share(fraction: float, n: int, minimum: int = 0) -> int:
    """`round(fraction * n)` rows (Python's round); at least one when the fraction is positive."""
    if fraction <= 0:
        return minimum
    return max(1, minimum, round(fraction * n))


def _split(
    n: int,
    sizes: Sizes,
    labels: np.ndarray | None,
    class_names: list[str],
    seed: int,
    where: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, val, test) row indices: test first, then validation, both shares of all `n` rows."""
    rest = np.arange(n)
    rest, test_idx = _take(rest, sizes.test, labels, class_names, seed, "data.test_fraction", where)
    train_idx, val_idx = _take(rest, sizes.val, labels, class_names, seed, "data.val_fraction", where)
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


def subset(rows: np.ndarray, keep: int, labels: np.ndarray | None, seed: int) -> tuple[np.ndarray, bool]:
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


def _corrupt_labels(y: np.ndarray, fraction: float, n_classes: int, seed: int) -> tuple[np.ndarray, int]:
    """Corrupt `round(fraction * len(y))` labels; (noisy labels, number corrupted).

    Classification (`n_classes` >= 2): each chosen label becomes a different class, drawn uniformly.
    Regression (`n_classes` 0): each chosen target is replaced by the target of another, randomly
    drawn training row, so noisy values stay on the target's own scale and distribution.
    """
    n_flip = round(fraction * len(y)) if fraction > 0 else 0
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


def _channel_mean_std(x: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of flattened (H, W, C) images, repeated to one entry per feature.

    Computed in float64 and returned in `x`'s dtype, so float32 images stay float32.
    """
    mean, std = _mean_std(x.reshape(-1, channels).astype(np.float64))
    repeats = x.shape[1] // channels
    return np.tile(mean, repeats).astype(x.dtype), np.tile(std, repeats).astype(x.dtype)


def _drift(drift: Any) -> dict[str, float] | None:
    if drift is None:
        return None
    get = drift.get if isinstance(drift, dict) else lambda key, default: getattr(drift, key, default)
    return {"shift": float(get("shift", 0.0)), "scale": float(get("scale", 1.0))}
