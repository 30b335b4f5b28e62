"""The evidence of a diagnosis: the run's errors at the shipped epoch and its learning curve, read.

`read_evidence(run)` compares the clean training error, the validation error and the target
error, and reads the curves: where validation bottomed out, whether it rose afterwards,
whether training was still improving, how noisy the monitored quantity is, where the gap
opened. It returns one flat JSON-able dict (diagnosis.json's `evidence`, in this key
order); the verdict, the recommendations and the warnings are all read from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from regcli import dotted
from regcli.diagnosis.inputs import Run
from regcli.diagnosis.penalty import penalty_evidence
from regcli.diagnosis.uncertainty import combined_se, error_se, rows_to_resolve
from regcli.errors import BadInputError
from regcli.replay import resolve_mode
from regcli.values import finite_float

# Fixed curve-reading constants (not spec keys).
IMPROVING_REL_DROP = 0.01  # train loss fell > 1% over the window: training is still improving
VAL_RISE_REL = 0.02  # val rose > 2% above its minimum (and by more than its own noise): a rise, not a wobble
MIN_STEP = 1e-12  # guards divisions by a loss or a min_delta of 0
EARLY_EPOCHS = 3  # the first epochs, too few steps to memorize: a gap there is the data's, not the fit's
GAIN_CAP = 0.5  # a projected gain of doubling the epochs is reported up to half the best loss
EPS = 1e-9  # float noise at a threshold: 0.07 - 0.05 = 0.020000000000000004 is not above a 0.02 tolerance

# Penalty-free curves first, so runs with different L1/L2 read alike.
VAL_CURVES = ("val_data_loss", "val_loss")
TRAIN_CURVES = ("clean_data_loss", "clean_loss", "data_loss", "loss")


@dataclass(frozen=True)
class EpochAxis:
    """The history's epoch numbers (floats, to fit slopes on), its last epoch and its length."""

    epochs: np.ndarray
    last: int | None
    n: int

    @classmethod
    def of(cls, history: pd.DataFrame) -> EpochAxis:
        n = len(history)
        epochs = pd.to_numeric(history["epoch"], errors="coerce").to_numpy(dtype=float) if n else np.array([])
        return cls(epochs, int(epochs[-1]) if n else None, n)


def read_evidence(run: Run) -> dict[str, Any]:
    """Every number the verdict, recommendations and warnings rest on, in diagnosis.json's order."""
    h = run.history
    axis = EpochAxis.of(h)
    shipped = run.summary.get("shipped_epoch") or run.summary.get("best_epoch") or axis.last
    ev: dict[str, Any] = {
        **_errors(run, _row_index(h, shipped)),
        **_stopping(run, shipped, axis.n),
        **_sizes_and_penalty(run),
        "first_nonfinite_epoch": _first_nonfinite_epoch(h, axis),
    }
    ev.update(_uncertainty(run, ev))
    ev.update(penalty_evidence(run, finite_float(dotted.get(run.summary, "metrics.train.data_loss"))))
    window = int(run.th["curve_window"])
    ev["curve_window"] = window
    val_name, val = _first_col(h, VAL_CURVES)
    ev.update(_validation_curve(val_name, val, axis, window))
    ev.update(_doubling_gain(val, axis))
    train_name, train = _first_col(h, TRAIN_CURVES)
    ev.update(_training_trend(train_name, train, axis, window))
    ev.update(_epoch_budget(run, ev, axis.last))
    ev.update(_monitor_noise(run, ev, val, window))
    ev["gap_open_epoch"] = _gap_open_epoch(h, ev, train)
    ev["gap_over_tolerance_since"] = _gap_over_tolerance_since(run, axis.epochs, run.th["gap_tolerance"])
    ev["first_epoch_gap"] = _first_epoch_gap(run)
    ev["n_epochs_recorded"], ev["last_epoch"] = axis.n, axis.last
    if run.summary.get("history_source"):  # not a run directory's history.csv: a curves-only diagnosis
        ev["history_source"] = run.summary["history_source"]
    return ev


# --------------------------------------------------------------------------- the numbers at the shipped epoch


def _errors(run: Run, row: int | None) -> dict[str, Any]:
    """Train and validation error, avoidable bias and gap, and the tolerances they are held to."""
    th, s = run.th, run.summary
    train_error, train_source = _split_error(run, "train", row)
    val_error, val_source = _split_error(run, "val", row)
    target = th["target_error"]
    return {
        "task": run.task,
        "metric": run.metric,
        "state": s.get("state"),
        "train_error": train_error,
        "train_error_source": train_source,
        "val_error": val_error,
        "val_error_source": val_source,
        "target_error": target,
        "avoidable_bias": None if train_error is None else train_error - target,
        "gap": None if train_error is None or val_error is None else val_error - train_error,
        "bias_tolerance": th["bias_tolerance"],
        "gap_tolerance": th["gap_tolerance"],
        "baseline_val_error": finite_float(s.get("baseline_val_error")),
    }


def _uncertainty(run: Run, ev: dict[str, Any]) -> dict[str, Any]:
    """Each error's standard error, and how fine a gap the validation set can resolve."""
    train_se = error_se(run.metric, ev["train_error"], run.summary.get("n_train"))
    val_se = error_se(run.metric, ev["val_error"], run.summary.get("n_val"))
    return {
        "train_error_se": train_se,
        "val_error_se": val_se,
        "avoidable_bias_se": train_se,
        "gap_se": combined_se(train_se, val_se),
        "uncertainty_method": (
            "normal-residual approximation: se = 0.755 * mae / sqrt(n)"
            if run.metric == "mae"
            else "binomial (Agresti-Coull): se = sqrt(p(1-p)/n)"
        ),
        "n_val_to_resolve_gap_tolerance": rows_to_resolve(run.metric, ev["val_error"], run.th["gap_tolerance"]),
    }


def _stopping(run: Run, shipped: Any, n: int) -> dict[str, Any]:
    """Which epoch was shipped, how many ran, and the early-stopping settings that decided it."""
    s = run.summary
    monitor = s.get("monitor") or run.es("monitor") or "val_loss"
    return {
        "shipped_epoch": shipped,
        "best_epoch": s.get("best_epoch"),
        "epochs_run": s.get("epochs_run") or n,
        "max_epochs": run.cfg("training.epochs"),
        "stopped_early": s.get("stopped_early"),
        "restored_best_weights": s.get("restored_best_weights"),
        "monitor": monitor,
        "mode": _resolve_mode(run.es("mode") or "auto", monitor),
        "min_delta": abs(finite_float(run.es("min_delta")) or 0.0),
        "patience": run.es("patience"),
    }


def _sizes_and_penalty(run: Run) -> dict[str, Any]:
    s = run.summary
    return {
        "n_train": s.get("n_train"),
        "n_val": s.get("n_val"),
        "metric_granularity": (1.0 / s["n_val"]) if run.metric == "accuracy" and s.get("n_val") else None,
        "penalty": finite_float(s.get("penalty")),
        "penalty_share": finite_float(s.get("penalty_share")),
    }


def _split_error(run: Run, split: str, row: int | None) -> tuple[float | None, str | None]:
    """Error of `split` ("train"/"val") at the shipped epoch and where it came from."""
    metrics = dotted.get(run.summary, f"metrics.{split}", {}) or {}
    if finite_float(metrics.get("error")) is not None:
        return finite_float(metrics["error"]), f"summary.metrics.{split}.error"
    if finite_float(metrics.get(run.metric)) is not None:
        return _to_error(run.metric, finite_float(metrics[run.metric])), f"summary.metrics.{split}.{run.metric}"
    if row is None:
        return None, None
    names = [f"clean_{run.metric}", run.metric] if split == "train" else [f"val_{run.metric}"]
    for name in names:
        values = _col(run.history, name)
        if values is not None and math.isfinite(values[row]):
            return _to_error(run.metric, float(values[row])), f"history.{name}"
    return None, None


def _resolve_mode(mode: str, monitor: str) -> str:
    """The replay's rule for "auto"; an undecidable name reads as loss-like, so diagnosis goes on."""
    try:
        return resolve_mode(mode, monitor)
    except BadInputError:
        return "min"


# --------------------------------------------------------------------------- the learning curve


def _first_nonfinite_epoch(h: pd.DataFrame, axis: EpochAxis) -> int | None:
    """Divergence: the first epoch whose loss or val_loss is NaN/inf."""
    first = None
    for name in ("loss", "val_loss"):
        if name in h.columns and axis.n:
            bad = ~np.isfinite(pd.to_numeric(h[name], errors="coerce").to_numpy(dtype=float))
            if bad.any():
                epoch = int(axis.epochs[int(np.argmax(bad))])
                first = epoch if first is None else min(first, epoch)
    return first


def _validation_curve(
    name: str | None, val: np.ndarray | None, axis: EpochAxis, window: int
) -> dict[str, Any]:
    """Where the validation curve bottomed out and whether it rose afterwards by more than its noise."""
    found: dict[str, Any] = {"val_curve": name}
    best_epoch = rise = rise_rel = None
    rose = False
    if val is not None:
        i_best = int(np.nanargmin(np.where(np.isfinite(val), val, np.nan)))
        i_last = int(np.flatnonzero(np.isfinite(val))[-1])
        best_epoch = int(axis.epochs[i_best])
        rise = float(val[i_last] - val[i_best])
        rise_rel = rise / max(abs(float(val[i_best])), MIN_STEP)
        noise, _ = _window_stats(val, window, -1.0)
        rose = rise_rel > VAL_RISE_REL and rise > (noise or 0.0)
        found.update(val_curve_best=float(val[i_best]), val_curve_last=float(val[i_last]))
    found.update(
        val_curve_best_epoch=best_epoch,
        val_rise_after_best=rise,
        val_rise_after_best_rel=rise_rel,
        val_rose_after_best=rose,
    )
    return found


def _doubling_gain(val: np.ndarray | None, axis: EpochAxis) -> dict[str, Any]:
    """What doubling the epochs would gain on the validation curve, estimated two ways, the smaller kept.

    (1) `_next_doubling`: what the last doubling of the epochs gained, shrunk by how much
    less it gained than the doubling before it (a curve approaching its floor gains less each
    time). (2) A curve flattening like `a − b·ln(epoch)` gains b·ln 2 = slope · t · ln 2 from t
    to 2t, the slope fitted on the last quarter of the epochs (at least 3). A curve that has
    flattened or turned up gains ~0 by (2); one in its steep early phase is held back by (1).
    """
    gain = None
    finite = np.isfinite(val) if val is not None else None
    if val is not None and axis.last and finite.sum() >= 3:
        x, y = axis.epochs[finite], val[finite]
        recent = max(3, len(y) // 4)
        slope = float(np.polyfit(x[-recent:], y[-recent:], 1)[0])
        extrapolated = -slope * float(x[-1]) * math.log(2)
        # capped at half the best loss: beyond that an extrapolation says only "a lot"
        gain = max(0.0, min(extrapolated, _next_doubling(y), GAIN_CAP * abs(float(np.min(y)))))
    best = None if val is None or not np.isfinite(val).any() else float(np.nanmin(val))
    return {
        "doubling_epochs_gain": gain,
        "doubling_epochs_gain_rel": None if gain is None or not best else gain / max(abs(best), MIN_STEP),
    }


def _next_doubling(y: np.ndarray) -> float:
    """The gain of the next doubling of epochs: the last doubling's gain x min(1, its ratio to the one before)."""
    n = len(y)
    quarter, half, now = (float(np.min(y[: max(1, n // 4)])), float(np.min(y[: max(1, n // 2)])), float(np.min(y)))
    before, last = quarter - half, half - now
    return last * min(1.0, last / before) if before > 0 else last


def _training_trend(
    name: str | None, train: np.ndarray | None, axis: EpochAxis, window: int
) -> dict[str, Any]:
    """Is training still improving? Least-squares slope of the clean (else as-trained) loss."""
    slope = rel_drop = None
    if train is not None:
        mask = np.isfinite(train)
        x, y = axis.epochs[mask][-window:], train[mask][-window:]
        if len(y) >= 2:
            slope = float(np.polyfit(x, y, 1)[0])
            rel_drop = -slope * (x[-1] - x[0]) / max(abs(float(np.mean(y))), MIN_STEP)
    return {
        "train_curve": name,
        "train_slope_per_epoch": slope,
        "train_rel_drop_window": rel_drop,
        "still_improving": None if rel_drop is None else rel_drop > IMPROVING_REL_DROP,
    }


def _epoch_budget(run: Run, ev: dict[str, Any], last_epoch: int | None) -> dict[str, Any]:
    """Whether the best epoch is the last one, and whether the run used up its epochs."""
    s, best_epoch, epochs_run = run.summary, ev["best_epoch"], ev["epochs_run"]
    # "Best" is the validation curve's best epoch. Only a restored run's best_epoch is that
    # (Keras's rule); otherwise the shipped epoch is simply the last and says nothing.
    if best_epoch is not None and epochs_run and s.get("restored_best_weights"):
        best_is_last = int(best_epoch) == int(epochs_run)
    else:
        best_is_last = (
            None if ev["val_curve_best_epoch"] is None else ev["val_curve_best_epoch"] == last_epoch
        )
    ran_out = (
        bool(epochs_run) and ev["max_epochs"] is not None and int(epochs_run) >= int(ev["max_epochs"])
    ) or (bool(epochs_run) and s.get("stopped_early") is False)
    return {"best_is_last": best_is_last, "ran_out_of_epochs": ran_out}


def _monitor_noise(run: Run, ev: dict[str, Any], val: np.ndarray | None, window: int) -> dict[str, Any]:
    """Noise of the monitored curve vs the improvements early stopping reacts to."""
    values = _col(run.history, ev["monitor"])
    if values is None:
        values = val
    noise, mean_impr = _window_stats(values, window, -1.0 if ev["mode"] == "min" else 1.0)
    min_delta = ev["min_delta"]
    return {
        "val_noise": noise,
        "recent_mean_improvement": mean_impr,
        "noise_to_min_delta": None if noise is None or min_delta <= 0 else noise / min_delta,
        "noise_to_improvement": None if noise is None or not mean_impr else noise / abs(mean_impr),
    }


def _gap_open_epoch(h: pd.DataFrame, ev: dict[str, Any], train: np.ndarray | None) -> int | None:
    """Where the gap opened: val bottomed out while the training loss kept falling."""
    best = ev["val_curve_best_epoch"]
    if not ev["val_rose_after_best"] or train is None or best is None:
        return None
    i_best = _row_index(h, best)
    after = train[i_best:][np.isfinite(train[i_best:])]
    if not math.isfinite(train[i_best]) or len(after) <= 1:
        return None
    fell = (train[i_best] - after.min()) / max(abs(float(train[i_best])), MIN_STEP)
    return best if fell > IMPROVING_REL_DROP else None


def _first_epoch_gap(run: Run) -> float | None:
    """The largest gap (val − clean train error) over the first `EARLY_EPOCHS` epochs.

    Too few steps for a model to memorize its training rows: a gap there is not overfitting.
    (Measured on the covariate-drift scenario: 0.11 after epoch 1 with the model half trained,
    0.29 after epoch 2; on the overfit scenario the gap opens only later.)
    """
    _, train = _first_col(run.history, [f"clean_{run.metric}"])
    val = _col(run.history, f"val_{run.metric}")
    if train is None or val is None:
        return None
    gaps = (val - train if run.metric == "mae" else (1.0 - val) - (1.0 - train))[:EARLY_EPOCHS]
    gaps = gaps[np.isfinite(gaps)]
    return float(gaps.max()) if len(gaps) else None


def _gap_over_tolerance_since(run: Run, epochs: np.ndarray, tolerance: float) -> int | None:
    """First epoch from which the per-epoch gap (val − train error) stays above `tolerance`."""
    _, train = _first_col(run.history, [f"clean_{run.metric}", run.metric])
    val = _col(run.history, f"val_{run.metric}")
    if train is None or val is None:
        return None
    gap = val - train if run.metric == "mae" else (1.0 - val) - (1.0 - train)
    finite = np.flatnonzero(np.isfinite(gap))
    if len(finite) == 0 or gap[finite[-1]] <= tolerance + EPS:
        return None
    since = finite[-1]
    for i in finite[::-1]:
        if gap[i] <= tolerance + EPS:
            break
        since = i
    return int(epochs[since])


# --------------------------------------------------------------------------- history columns


def _col(h: pd.DataFrame, name: str) -> np.ndarray | None:
    """A history column as floats (NaN where missing), or None when absent or all-missing."""
    if name not in h.columns:
        return None
    values = pd.to_numeric(h[name], errors="coerce").to_numpy(dtype=float)
    return values if np.isfinite(values).any() else None


def _first_col(h: pd.DataFrame, names: Sequence[str]) -> tuple[str | None, np.ndarray | None]:
    for name in names:
        values = _col(h, name)
        if values is not None:
            return name, values
    return None, None


def _to_error(metric: str, value: float | None) -> float | None:
    if value is None:
        return None
    return 1.0 - value if metric == "accuracy" else value


def _row_index(h: pd.DataFrame, epoch: int | None) -> int | None:
    if len(h) == 0:
        return None
    if epoch is not None:
        hits = np.flatnonzero(pd.to_numeric(h["epoch"], errors="coerce").to_numpy() == epoch)
        if len(hits):
            return int(hits[0])
    return len(h) - 1


def _window_stats(values: np.ndarray | None, window: int, sign: float) -> tuple[float | None, float | None]:
    """(std of epoch-to-epoch differences, mean improvement) over the last `window` differences.

    `sign` is -1 for a quantity that should fall (loss) and +1 for one that should rise.
    """
    if values is None:
        return None, None
    finite = values[np.isfinite(values)]
    diffs = np.diff(finite[-(window + 1) :])
    if len(diffs) == 0:
        return None, None
    noise = float(np.std(diffs)) if len(diffs) >= 2 else None
    return noise, float(np.mean(sign * diffs))
