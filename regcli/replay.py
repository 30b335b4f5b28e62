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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from regcli import dotted
from regcli.errors import BadInputError
from regcli.rundir import jsonable
from regcli.values import finite_float, is_finite

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
    stopper = _EarlyStopping(sign, sign * abs(float(min_delta)), patience, baseline, restore_best_weights)
    stopper.run(values, start_from_epoch)
    return stopper.outcome(values)


@dataclass
class _EarlyStopping:
    """The callback's state between epochs: the best value and its epoch, and the wait counter."""

    sign: float  # -1.0: lower is better (mode min); +1.0: higher is better
    delta: float  # sign * abs(min_delta)
    patience: int
    baseline: float | None
    restore_best_weights: bool
    best: float | None = None
    best_epoch0: int | None = None
    wait: int = 0
    stopped0: int | None = None  # 0-based epoch after which training stopped
    epochs_run: int = 0

    def run(self, values: list[Any], start_from_epoch: int) -> None:
        """Every epoch in turn until the callback stops training or the values run out."""
        for epoch0, raw in enumerate(values):
            self.epochs_run = epoch0 + 1
            if raw is None or epoch0 < start_from_epoch:
                continue
            if self.stops_after(epoch0, float(raw)):
                self.stopped0 = epoch0
                return

    def improves(self, current: float, reference: float | None) -> bool:
        if reference is None:
            return True
        diff, ref = _f32(current - self.delta), _f32(reference)
        return bool(diff < ref) if self.sign < 0 else bool(diff > ref)

    def stops_after(self, epoch0: int, current: float) -> bool:
        """One monitored epoch (0-based), as Keras's `on_epoch_end`: True when training stops here."""
        if self.restore_best_weights and self.best_epoch0 is None:
            self.best_epoch0 = epoch0
        self.wait += 1
        if self.improves(current, self.best):
            self.best, self.best_epoch0 = current, epoch0
            if self.baseline is None or self.improves(current, float(self.baseline)):
                self.wait = 0
            return False
        return self.wait >= self.patience and epoch0 > 0

    def outcome(self, values: list[Any]) -> dict[str, Any]:
        """replay_early_stopping's answer: 1-based epochs, and the values at the best and shipped ones."""
        best_epoch = None if self.best_epoch0 is None else self.best_epoch0 + 1
        if self.epochs_run == 0:
            shipped = None
        elif self.restore_best_weights and best_epoch is not None:
            shipped = best_epoch
        else:
            shipped = self.epochs_run
        return {
            "best_epoch": best_epoch,
            "stopped_epoch": None if self.stopped0 is None else self.stopped0 + 1,
            "epochs_run": self.epochs_run,
            "shipped_epoch": shipped,
            "best_value": finite_float(values[best_epoch - 1]) if best_epoch else None,
            "shipped_value": finite_float(values[shipped - 1]) if shipped else None,
        }


# --------------------------------------------------------------------------- --replay KEY=VALUE,...

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
    try:
        return _PARSERS[key](raw)
    except ValueError:
        raise BadInputError(
            f"--replay item {item!r}: {key} must be {_EXPECTED[key]}. Received: {raw!r}. "
            f"Allowed keys: {', '.join(REPLAY_KEYS)}."
        ) from None


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value


def _min_delta(raw: str) -> float:
    value = float(raw)
    if not is_finite(value) or value < 0:
        raise ValueError
    return value


def _baseline(raw: str) -> float | None:
    if raw.lower() in ("none", "null", ""):
        return None
    value = float(raw)
    if not is_finite(value):
        raise ValueError
    return value


def _flag(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError


def _mode(raw: str) -> str:
    if raw.lower() not in ("auto", "min", "max"):
        raise ValueError
    return raw.lower()


def _monitor(raw: str) -> str:
    if not raw:
        raise ValueError
    return raw


# Each parser raises ValueError for a value it refuses; _EXPECTED says what it wanted.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "patience": _count,
    "min_delta": _min_delta,
    "start_from_epoch": _count,
    "baseline": _baseline,
    "restore_best_weights": _flag,
    "mode": _mode,
    "monitor": _monitor,
}
_EXPECTED = {
    "patience": "an integer >= 0",
    "start_from_epoch": "an integer >= 0",
    "min_delta": "a float >= 0",
    "baseline": "a float or none",
    "restore_best_weights": "true or false",
    "mode": "one of auto, min, max",
    "monitor": "a history column such as val_loss or val_data_loss",
}


# --------------------------------------------------------------------------- the replay of one run

# The settings replay_early_stopping takes besides mode and monitor.
_KNOBS = ("patience", "min_delta", "start_from_epoch", "baseline", "restore_best_weights")


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
    overrides = _known_overrides(overrides)
    history = with_epoch_column(history)
    es = dict(dotted.get(config, "training.early_stopping", {}) or {})
    run_settings = _run_settings(es, summary)
    settings = {**run_settings, **overrides}
    monitor = settings["monitor"]
    values = _monitored_values(history, monitor)
    mode = resolve_mode(settings["mode"], monitor)
    result = replay_early_stopping(values, mode=mode, monitor=monitor, **{k: settings[k] for k in _KNOBS})
    replay, actual = _replay_outcome(history, result), _actual_outcome(history, summary, monitor)
    delta = _delta(replay, actual)
    n = len(values)
    ran_short = _ran_short(summary, config, n)
    beyond = result["stopped_epoch"] is None and ran_short
    text = _replay_text(
        _Comparison(
            settings, run_settings, es.get("enabled") is False, replay, actual, delta, n, beyond, mode
        )
    )
    consistent, mismatch = _consistency(history, summary, es, run_settings)
    if mismatch:
        text.append(mismatch)
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


def _known_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(REPLAY_KEYS))
    if unknown:
        raise BadInputError(f"Unknown replay keys {unknown}. Allowed keys: {', '.join(REPLAY_KEYS)}.")
    return overrides


def _ran_short(summary: Mapping[str, Any], config: Mapping[str, Any] | None, recorded: int) -> bool:
    """Whether the run stopped before its epochs ran out: a replay that never stops can't see what came next."""
    max_epochs = dotted.get(config, "training.epochs")
    return bool(summary.get("stopped_early")) or (max_epochs is not None and recorded < int(max_epochs))


def _run_settings(es: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The run's own early-stopping settings, with Keras's defaults where the config has none."""
    return {
        "monitor": es.get("monitor") or summary.get("monitor") or "val_loss",
        "mode": es.get("mode") or "auto",
        "patience": int(es.get("patience", 0) or 0),
        "min_delta": float(es.get("min_delta", 0.0) or 0.0),
        "start_from_epoch": int(es.get("start_from_epoch", 0) or 0),
        "baseline": es.get("baseline"),
        "restore_best_weights": bool(es.get("restore_best_weights", True)),
    }


def _column_values(history: pd.DataFrame, name: str) -> list[float]:
    # pandas reads an empty cell as NaN too; Keras saw a NaN there, so NaN stays NaN.
    return pd.to_numeric(history[name], errors="coerce").astype(float).tolist()


def _monitored_values(history: pd.DataFrame, monitor: str) -> list[float]:
    if monitor not in history.columns:
        columns = ", ".join(c for c in history.columns if c not in ("epoch", "lr", "seconds"))
        raise BadInputError(
            f"Cannot replay early stopping on {monitor!r}: history.csv has no such column. "
            f"Available: {columns}. Pass monitor=COLUMN in --replay."
        )
    return _column_values(history, monitor)


def _to_epoch(history: pd.DataFrame, position: int | None) -> int | None:
    """The epoch of a replay position (a 1-based row number)."""
    return None if position is None else int(history["epoch"].iloc[position - 1])


def _replay_outcome(history: pd.DataFrame, result: Mapping[str, Any]) -> dict[str, Any]:
    shipped = _to_epoch(history, result["shipped_epoch"])
    return {
        "shipped_epoch": shipped,
        "stopped_epoch": _to_epoch(history, result["stopped_epoch"]),
        "best_epoch": _to_epoch(history, result["best_epoch"]),
        "epochs_run": result["epochs_run"],
        "monitored_value": result["shipped_value"],
        "val_error": _val_error_at(history, shipped),
    }


def _actual_outcome(history: pd.DataFrame, summary: Mapping[str, Any], monitor: str) -> dict[str, Any]:
    """What the run itself did, from summary.json (the last recorded epoch where it says nothing)."""
    n = len(history)
    last = int(history["epoch"].iloc[-1]) if n else None
    shipped = summary.get("shipped_epoch") or summary.get("best_epoch") or last
    shipped = None if shipped is None else int(shipped)
    shipped_rows = history.loc[history["epoch"] == shipped, monitor] if shipped else []
    return {
        "shipped_epoch": shipped,
        "stopped_epoch": (summary.get("epochs_run") or n) if summary.get("stopped_early") else None,
        "epochs_run": summary.get("epochs_run") or n,
        "monitored_value": finite_float(shipped_rows.iloc[0]) if len(shipped_rows) else None,
        "val_error": _val_error_at(history, shipped),
    }


def _delta(replay: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any]:
    """Replay minus actual, where both are known."""
    delta = {
        key: (replay[key] - actual[key] if replay[key] is not None and actual[key] is not None else None)
        for key in ("monitored_value", "val_error")
    }
    both = replay["shipped_epoch"] and actual["shipped_epoch"]
    delta["shipped_epoch"] = replay["shipped_epoch"] - actual["shipped_epoch"] if both else None
    return delta


def _val_error_at(history: pd.DataFrame, epoch: int | None) -> float | None:
    if epoch is None:
        return None
    rows = history.loc[history["epoch"] == epoch]
    if rows.empty:
        return None
    row = rows.iloc[0]
    if "val_accuracy" in history.columns:
        acc = finite_float(row["val_accuracy"])
        return None if acc is None else 1.0 - acc
    if "val_mae" in history.columns:
        return finite_float(row["val_mae"])
    return None


def _consistency(
    history: pd.DataFrame, summary: Mapping[str, Any], es: Mapping[str, Any], run_settings: Mapping[str, Any]
) -> tuple[bool | None, str | None]:
    """Whether replaying the run's own settings reproduces its recorded best and stop, and the
    sentence saying so when it does not. None where it cannot be checked (a run that did not
    complete, records no best epoch, trained without early stopping or lacks the monitored column)."""
    monitor = run_settings["monitor"]
    checkable = summary.get("state", "completed") == "completed" and summary.get("best_epoch") is not None
    if monitor not in history.columns or not es.get("enabled", True) or not checkable:
        return None, None
    own = replay_early_stopping(
        _column_values(history, monitor),
        mode=resolve_mode(run_settings["mode"], monitor),
        monitor=monitor,
        **{k: run_settings[k] for k in _KNOBS},
    )
    same_best = _to_epoch(history, own["best_epoch"]) == int(summary["best_epoch"]) or (
        summary.get("shipped_epoch") is not None
        and _to_epoch(history, own["shipped_epoch"]) == int(summary["shipped_epoch"])
    )
    consistent = same_best and bool(own["stopped_epoch"]) == bool(summary.get("stopped_early"))
    if consistent:
        return consistent, None
    return consistent, (
        "Replaying the run's own settings does not reproduce its recorded best epoch "
        f"({summary['best_epoch']}) or stop: the run may have been resumed, or history.csv "
        f"does not hold the values early stopping saw for {monitor}."
    )


@dataclass(frozen=True)
class _Comparison:
    """What the report's sentences compare: the settings replayed against the run's own, and both outcomes."""

    settings: Mapping[str, Any]
    run_settings: Mapping[str, Any]
    was_disabled: bool  # the run trained with early stopping off
    replay: Mapping[str, Any]
    actual: Mapping[str, Any]
    delta: Mapping[str, Any]
    recorded: int  # epochs in history.csv
    beyond: bool  # the replay would have trained past the recorded epochs
    mode: str


def _replay_text(c: _Comparison) -> list[str]:
    changed = {k: v for k, v in c.settings.items() if c.run_settings.get(k) != v}
    what = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the run's own settings"
    text = [f"Replaying early stopping on {c.settings['monitor']} ({c.mode}) with {what}."]
    if c.was_disabled:
        text.append("Early stopping was disabled in this run; the replay treats it as enabled.")
    text.append(_stop_sentence(c))
    shipped = c.replay["shipped_epoch"]
    if shipped is None:
        text.append("No epoch was monitored (start_from_epoch is past the recorded epochs).")
        return text
    line = f"It would ship epoch {shipped} (the run shipped {c.actual['shipped_epoch']})"
    if c.delta["monitored_value"] is not None:
        line += f"; {c.settings['monitor']} there: {_fmt(c.replay['monitored_value'])} ({c.delta['monitored_value']:+.4g})"
    if c.delta["val_error"] is not None:
        line += f"; val error {_fmt(c.replay['val_error'])} ({c.delta['val_error']:+.4g})"
    text.append(line + ".")
    return text


def _stop_sentence(c: _Comparison) -> str:
    n = c.recorded
    if c.replay["stopped_epoch"] is not None:
        return f"It would have stopped after epoch {c.replay['stopped_epoch']} (the run ran {c.actual['epochs_run']})."
    if c.beyond:
        return (
            f"It would not have stopped within the {n} recorded epochs: the run stopped earlier than these "
            "settings would have, so what happens after epoch "
            f"{n} is unknown and the shipped epoch below is the best among the recorded ones only."
        )
    return f"It would not have stopped early: all {n} recorded epochs run, as in the run."


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def with_epoch_column(history: pd.DataFrame | None) -> pd.DataFrame:
    """`history` with a fresh 0..n-1 index and an `epoch` column (1, 2, ... where it had none).

    The one normalization of a history both the replay and `regcli.diagnosis` read.
    """
    history = pd.DataFrame() if history is None else history.reset_index(drop=True)
    if "epoch" not in history.columns:
        history = history.assign(epoch=np.arange(1, len(history) + 1))
    return history
