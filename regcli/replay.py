"""Replays `keras.callbacks.EarlyStopping` on a recorded curve, without Keras.

`regcli diagnose RUN_DIR --replay patience=3` answers "what would early stopping
have done with other settings" from history.csv alone. Early stopping never changes
the weight trajectory before it stops, so within the recorded epochs the replay is
exact: `replay_early_stopping` mirrors Keras 3.15's callback step by step, including
its quirks (see the docstring), and tests/test_diagnosis.py drives the real callback
with the same values to prove it.

Pure numpy/pandas: no TensorFlow or Keras import, so `diagnose` stays instant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from regcli.errors import BadInputError
from regcli.rundir import jsonable

REPLAY_KEYS = (
    "patience",
    "min_delta",
    "start_from_epoch",
    "baseline",
    "restore_best_weights",
    "mode",
    "monitor",
)

# Name fragments that tell `mode: auto` which way a monitored quantity improves. Keras
# itself reads "loss" from the name and every other direction from the compiled metric;
# these cover the metrics regcli logs (accuracy, mae, data_loss, ...).
_MAX_FRAGMENTS = ("accuracy", "acc", "auc", "precision", "recall", "f1")
_MIN_FRAGMENTS = ("loss", "error", "mae", "mse", "crossentropy", "hinge", "rmse")


def resolve_mode(mode: str, monitor: str) -> str:
    """Returns "min" or "max" for an early-stopping `mode`, resolving "auto" from `monitor`'s name.

    Args:
        mode: One of "auto", "min", "max".
        monitor: The monitored quantity, e.g. "val_loss" or "val_accuracy".
    """
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise BadInputError(
            f"training.early_stopping.mode must be one of auto, min, max. Received: {mode!r}."
        )
    name = monitor.removeprefix("val_").removeprefix("clean_").lower()
    if (
        name == "loss"
        or name.endswith("loss")
        or any(name == f or name.endswith("_" + f) for f in _MIN_FRAGMENTS)
    ):
        return "min"
    if any(name == f or name.endswith("_" + f) for f in _MAX_FRAGMENTS):
        return "max"
    raise BadInputError(
        f"Cannot tell whether the monitored quantity {monitor!r} should be minimized or maximized. "
        "Set training.early_stopping.mode (or mode= in --replay) to min or max."
    )


def _f32(x: float) -> np.float32:
    # Keras compares with ops.less/ops.greater, which turn Python floats into float32
    # tensors (TensorFlow, JAX and torch backends alike): values closer than float32
    # precision compare equal, so they do not count as an improvement.
    with np.errstate(over="ignore"):
        return np.float32(x)


def replay_early_stopping(
    values: Sequence[float | None],
    *,
    mode: str = "min",
    patience: int = 0,
    min_delta: float = 0.0,
    start_from_epoch: int = 0,
    baseline: float | None = None,
    restore_best_weights: bool = True,
    monitor: str = "val_loss",
) -> dict[str, Any]:
    """Replays `keras.callbacks.EarlyStopping` (Keras 3.15) on one recorded value per epoch.

    Mirrors the callback exactly, quirks included:

    - `min_delta` is used as `abs(min_delta)`; an epoch improves on the reference when
      `current + min_delta < best` (mode min) or `current - min_delta > best` (mode max),
      compared in float32 as Keras's `ops.less` does.
    - `baseline` is *not* the initial best: the first monitored epoch always becomes the
      best. The baseline only decides whether an improvement resets the patience counter,
      so with a baseline that is never beaten training stops `patience` epochs after the
      first monitored epoch, and the best of those epochs is still shipped.
    - Epochs with 0-based index `< start_from_epoch` are skipped entirely, as are `None`
      values (a missing metric).
    - The wait counter increments before the comparison, so `patience=0` and `patience=1`
      both stop at the first epoch without improvement.
    - NaN is never an improvement over a number, but a NaN on the first monitored epoch
      becomes the best, and nothing improves on it afterwards.
    - With `restore_best_weights`, the best epoch's weights are restored at the end also
      when training ran out of epochs without stopping early.

    Args:
        values: The monitored quantity after each epoch, epoch 1 first.
        mode: "min", "max" or "auto" (resolved from `monitor`'s name). Defaults to `"min"`.
        patience: Epochs without improvement before stopping. Defaults to `0`.
        min_delta: Smallest change that counts as an improvement. Defaults to `0.0`.
        start_from_epoch: Number of warm-up epochs that are not monitored. Defaults to `0`.
        baseline: Value an improvement must also beat to reset patience. Defaults to `None`.
        restore_best_weights: Whether the best epoch's weights are shipped. Defaults to `True`.
        monitor: Name of the quantity, used only to resolve `mode="auto"`. Defaults to `"val_loss"`.

    Returns:
        A dict with `best_epoch` (1-based, None when no epoch was monitored), `stopped_epoch`
        (1-based epoch after which training stops, None when it runs out of values),
        `epochs_run`, `shipped_epoch` (the best epoch when restoring and one exists, else the
        last epoch run; None for an empty list), `best_value` and `shipped_value`.

    Example:

    >>> replay_early_stopping([0.2, 0.15, 0.1, 0.11, 0.12], patience=2)["shipped_epoch"]
    3
    """
    values = list(values)
    sign = -1.0 if resolve_mode(mode, monitor) == "min" else 1.0
    delta = sign * abs(float(min_delta))

    def is_improvement(current: float, reference: float | None) -> bool:
        if reference is None:
            return True
        diff, ref = _f32(current - delta), _f32(reference)
        return bool(diff < ref) if sign < 0 else bool(diff > ref)

    best: float | None = None
    best_epoch0: int | None = None
    wait = 0
    stopped0: int | None = None
    epochs_run = 0
    for epoch0, raw in enumerate(values):
        epochs_run = epoch0 + 1
        if raw is None or epoch0 < start_from_epoch:
            continue
        current = float(raw)
        if restore_best_weights and best_epoch0 is None:
            best_epoch0 = epoch0
        wait += 1
        if is_improvement(current, best):
            best, best_epoch0 = current, epoch0
            if baseline is None or is_improvement(current, float(baseline)):
                wait = 0
            continue
        if wait >= patience and epoch0 > 0:
            stopped0 = epoch0
            break

    best_epoch = None if best_epoch0 is None else best_epoch0 + 1
    if epochs_run == 0:
        shipped = None
    elif restore_best_weights and best_epoch is not None:
        shipped = best_epoch
    else:
        shipped = epochs_run
    return {
        "best_epoch": best_epoch,
        "stopped_epoch": None if stopped0 is None else stopped0 + 1,
        "epochs_run": epochs_run,
        "shipped_epoch": shipped,
        "best_value": _num(values[best_epoch - 1]) if best_epoch else None,
        "shipped_value": _num(values[shipped - 1]) if shipped else None,
    }


def _num(value: Any) -> float | None:
    """A plain float, or None for a missing or non-finite value (JSON has no NaN)."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def parse_replay_arg(text: str) -> dict[str, Any]:
    """Parses `--replay patience=3,min_delta=0.001,start_from_epoch=2` into typed overrides.

    Allowed keys: patience and start_from_epoch (integers >= 0), min_delta (a float >= 0),
    baseline (a float, or none), restore_best_weights (true/false), mode (auto, min, max)
    and monitor (a history column such as val_data_loss).

    Raises:
        BadInputError: naming the offending item and the allowed keys.
    """
    allowed = ", ".join(REPLAY_KEYS)
    overrides: dict[str, Any] = {}
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if not items:
        raise BadInputError(
            f"--replay expects KEY=VALUE items separated by commas, e.g. patience=3,min_delta=0.001. "
            f"Received: {text!r}. Allowed keys: {allowed}."
        )
    for item in items:
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or key not in REPLAY_KEYS:
            raise BadInputError(
                f"--replay item {item!r} is not KEY=VALUE with a known key. Allowed keys: {allowed}."
            )
        overrides[key] = _parse_value(key, raw, item)
    return overrides


def _parse_value(key: str, raw: str, item: str) -> Any:
    low = raw.lower()
    try:
        if key in ("patience", "start_from_epoch"):
            value = int(raw)
            if value < 0:
                raise ValueError
            return value
        if key == "min_delta":
            value = float(raw)
            if not math.isfinite(value) or value < 0:
                raise ValueError
            return value
        if key == "baseline":
            if low in ("none", "null", ""):
                return None
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        if key == "restore_best_weights":
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if key == "mode":
            if low not in ("auto", "min", "max"):
                raise ValueError
            return low
        if not raw:  # monitor
            raise ValueError
        return raw
    except ValueError:
        expected = {
            "patience": "an integer >= 0",
            "start_from_epoch": "an integer >= 0",
            "min_delta": "a float >= 0",
            "baseline": "a float or none",
            "restore_best_weights": "true or false",
            "mode": "one of auto, min, max",
            "monitor": "a history column such as val_loss or val_data_loss",
        }[key]
        raise BadInputError(
            f"--replay item {item!r}: {key} must be {expected}. Received: {raw!r}. "
            f"Allowed keys: {', '.join(REPLAY_KEYS)}."
        ) from None


def _dig(mapping: Mapping[str, Any] | None, dotted: str, default: Any = None) -> Any:
    node: Any = mapping or {}
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or node.get(part) is None:
            return default
        node = node[part]
    return node


def _val_error_at(history: pd.DataFrame, epoch: int | None) -> float | None:
    if epoch is None:
        return None
    rows = history.loc[history["epoch"] == epoch]
    if rows.empty:
        return None
    row = rows.iloc[0]
    if "val_accuracy" in history.columns:
        acc = _num(row["val_accuracy"])
        return None if acc is None else 1.0 - acc
    if "val_mae" in history.columns:
        return _num(row["val_mae"])
    return None


def replay_report(
    history: pd.DataFrame,
    summary: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Replays the run's early stopping with `overrides` applied and compares it with the run.

    The settings are the run's `training.early_stopping` block updated by `overrides`
    (see `parse_replay_arg`); a run trained without early stopping is replayed as if it
    had been enabled. The replay reads the monitored column of `history`, so it cannot
    see beyond the last recorded epoch: when the new settings would have trained longer
    than the run did, the report says so instead of guessing.

    Returns:
        A JSON-able dict: `settings`, `monitor`, `mode`, `actual` and `replay` (each with
        `shipped_epoch`, `stopped_epoch`, `epochs_run`, `monitored_value` and `val_error`
        at the shipped epoch), `delta` (replay minus actual), `beyond_recorded`,
        `consistent_with_run` (whether replaying the run's own settings reproduces its
        recorded best and stop) and `text`, one sentence per finding.
    """
    summary = summary or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(REPLAY_KEYS))
    if unknown:
        raise BadInputError(f"Unknown replay keys {unknown}. Allowed keys: {', '.join(REPLAY_KEYS)}.")
    history = _with_epoch(history)
    es = dict(_dig(config, "training.early_stopping", {}) or {})
    run_settings = {
        "monitor": es.get("monitor") or summary.get("monitor") or "val_loss",
        "mode": es.get("mode") or "auto",
        "patience": int(es.get("patience", 0) or 0),
        "min_delta": float(es.get("min_delta", 0.0) or 0.0),
        "start_from_epoch": int(es.get("start_from_epoch", 0) or 0),
        "baseline": es.get("baseline"),
        "restore_best_weights": bool(es.get("restore_best_weights", True)),
    }
    settings = {**run_settings, **overrides}
    monitor = settings["monitor"]
    if monitor not in history.columns:
        columns = ", ".join(c for c in history.columns if c not in ("epoch", "lr", "seconds"))
        raise BadInputError(
            f"Cannot replay early stopping on {monitor!r}: history.csv has no such column. "
            f"Available: {columns}. Pass monitor=COLUMN in --replay."
        )
    mode = resolve_mode(settings["mode"], monitor)
    # pandas reads an empty cell as NaN too; Keras saw a NaN there, so NaN stays NaN.
    values = pd.to_numeric(history[monitor], errors="coerce").astype(float).tolist()
    n = len(values)
    epochs = history["epoch"].tolist()
    knobs = ("patience", "min_delta", "start_from_epoch", "baseline", "restore_best_weights")
    result = replay_early_stopping(values, mode=mode, monitor=monitor, **{k: settings[k] for k in knobs})

    def to_epoch(i: int | None) -> int | None:  # replay positions are 1-based row numbers
        return None if i is None else int(epochs[i - 1])

    replay = {
        "shipped_epoch": to_epoch(result["shipped_epoch"]),
        "stopped_epoch": to_epoch(result["stopped_epoch"]),
        "best_epoch": to_epoch(result["best_epoch"]),
        "epochs_run": result["epochs_run"],
        "monitored_value": result["shipped_value"],
    }
    replay["val_error"] = _val_error_at(history, replay["shipped_epoch"])

    actual_shipped = (
        summary.get("shipped_epoch") or summary.get("best_epoch") or (int(epochs[-1]) if n else None)
    )
    actual_shipped = None if actual_shipped is None else int(actual_shipped)
    shipped_rows = history.loc[history["epoch"] == actual_shipped, monitor] if actual_shipped else []
    actual = {
        "shipped_epoch": actual_shipped,
        "stopped_epoch": (summary.get("epochs_run") or n) if summary.get("stopped_early") else None,
        "epochs_run": summary.get("epochs_run") or n,
        "monitored_value": _num(shipped_rows.iloc[0]) if len(shipped_rows) else None,
        "val_error": _val_error_at(history, actual_shipped),
    }

    delta = {
        key: (replay[key] - actual[key] if replay[key] is not None and actual[key] is not None else None)
        for key in ("monitored_value", "val_error")
    }
    delta["shipped_epoch"] = (
        replay["shipped_epoch"] - actual_shipped if replay["shipped_epoch"] and actual_shipped else None
    )

    max_epochs = _dig(config, "training.epochs")
    ran_short = bool(summary.get("stopped_early")) or (max_epochs is not None and n < int(max_epochs))
    beyond = result["stopped_epoch"] is None and ran_short
    text = _replay_text(settings, run_settings, es, replay, actual, delta, n, beyond, mode)

    consistent = None
    own_monitor = run_settings["monitor"]
    checkable = summary.get("state", "completed") == "completed" and summary.get("best_epoch") is not None
    if own_monitor in history.columns and es.get("enabled", True) and checkable:
        own = replay_early_stopping(
            pd.to_numeric(history[own_monitor], errors="coerce").astype(float).tolist(),
            mode=resolve_mode(run_settings["mode"], own_monitor),
            monitor=own_monitor,
            **{k: run_settings[k] for k in knobs},
        )
        same_best = to_epoch(own["best_epoch"]) == int(summary["best_epoch"]) or (
            summary.get("shipped_epoch") is not None
            and to_epoch(own["shipped_epoch"]) == int(summary["shipped_epoch"])
        )
        consistent = same_best and bool(own["stopped_epoch"]) == bool(summary.get("stopped_early"))
        if not consistent:
            text.append(
                "Replaying the run's own settings does not reproduce its recorded best epoch "
                f"({summary['best_epoch']}) or stop: the run may have been resumed, or history.csv "
                f"does not hold the values early stopping saw for {run_settings['monitor']}."
            )
    return jsonable(
        {
            "settings": settings,
            "monitor": monitor,
            "mode": mode,
            "actual": actual,
            "replay": replay,
            "delta": delta,
            "beyond_recorded": beyond,
            "recorded_epochs": n,
            "consistent_with_run": consistent,
            "text": text,
        }
    )


def _replay_text(settings, run_settings, es, replay, actual, delta, n, beyond, mode) -> list[str]:
    changed = {k: v for k, v in settings.items() if run_settings.get(k) != v}
    what = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the run's own settings"
    text = [f"Replaying early stopping on {settings['monitor']} ({mode}) with {what}."]
    if es.get("enabled") is False:
        text.append("Early stopping was disabled in this run; the replay treats it as enabled.")
    if replay["stopped_epoch"] is not None:
        text.append(
            f"It would have stopped after epoch {replay['stopped_epoch']} (the run ran {actual['epochs_run']})."
        )
    elif beyond:
        text.append(
            f"It would not have stopped within the {n} recorded epochs: the run stopped earlier than these "
            "settings would have, so what happens after epoch "
            f"{n} is unknown and the shipped epoch below is the best among the recorded ones only."
        )
    else:
        text.append(f"It would not have stopped early: all {n} recorded epochs run, as in the run.")
    shipped = replay["shipped_epoch"]
    if shipped is None:
        text.append("No epoch was monitored (start_from_epoch is past the recorded epochs).")
        return text
    line = f"It would ship epoch {shipped} (the run shipped {actual['shipped_epoch']})"
    if delta["monitored_value"] is not None:
        line += f"; {settings['monitor']} there: {_fmt(replay['monitored_value'])} ({delta['monitored_value']:+.4g})"
    if delta["val_error"] is not None:
        line += f"; val error {_fmt(replay['val_error'])} ({delta['val_error']:+.4g})"
    text.append(line + ".")
    return text


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _with_epoch(history: pd.DataFrame | None) -> pd.DataFrame:
    history = pd.DataFrame() if history is None else history.reset_index(drop=True)
    if "epoch" not in history.columns:
        history = history.assign(epoch=np.arange(1, len(history) + 1))
    return history
