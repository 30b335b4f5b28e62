"""Bias/variance diagnosis of a finished run, from its history and summary alone (SPEC §5.7).

`diagnose(history, summary, config)` compares the clean training error, the validation
error and the target error, reads the learning curve (where validation bottomed out,
whether it rose afterwards, whether training was still improving, how noisy validation
is), and returns a verdict, the evidence, recommendations that each turn ONE knob to a
concrete value computed from the config, and warnings for the classic regularization
traps. `render_markdown` turns the result into diagnosis.md.

Pure numpy/pandas: no TensorFlow or Keras import, so `regcli diagnose` stays instant.
The early-stopping replay lives in `regcli.replay`.

Example:

>>> result = diagnose(history, summary, config)  # doctest: +SKIP
>>> result["verdict"], result["recommendations"][0]["text"]  # doctest: +SKIP
('high_variance', 'raise model.dropout from 0.2 to 0.3 ...')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from regcli.errors import BadInputError
from regcli.replay import resolve_mode
from regcli.rundir import jsonable

VERDICTS = ("high_bias", "high_variance", "high_bias_and_variance", "good_fit", "diverged", "not_learning")

# Defaults of the `diagnosis:` keys. Each is read with `.get(key, default)`, so a config
# without the newer keys still diagnoses.
DEFAULTS: dict[str, float] = {
    "target_error": 0.0,  # null in the spec: no human-level/Bayes estimate, so all training error counts as avoidable
    "bias_tolerance": 0.05,  # SPEC §2: 5 points of avoidable error (accuracy) or 0.05 target std (mae) is high bias
    "gap_tolerance": 0.02,  # SPEC §2: val error 2 points (or 0.02 std) above the clean train error is high variance
    "not_learning_margin": 0.01,  # val error within 1 point of the majority-class / mean predictor: nothing learned
    "max_penalty_share": 0.5,  # penalty above half the loss: the optimizer mostly shrinks weights instead of fitting
    "curve_window": 10,  # last 10 epochs for slopes and noise: enough points to average, recent enough to mean "now"
}

# Fixed curve-reading constants (not spec keys).
IMPROVING_REL_DROP = 0.01  # train loss fell > 1% over the window: training is still improving
VAL_RISE_REL = 0.02  # val rose > 2% above its minimum (and by more than its own noise): a rise, not a wobble
EARLY_BEST_EPOCHS = 2  # best within 2 epochs of the first monitored one: stopped on warm-up noise
BN_MIN_BATCH = 16  # SPEC §5.4: BatchNorm batch statistics from < 16 rows are too noisy
HEAVY_DROPOUT = 0.5  # dropout >= 0.5 on top of BN and L2 usually underfits an MLP
REG_STEP = 10.0  # one decade per step: L1/L2 strengths act on a log scale
L2_START = 1e-4  # first L2 to try from 0: the usual starting point for Adam-trained MLPs
L1_START = 1e-5  # first L1 to try from 0: L1 bites harder than L2 at the same factor
REG_FLOOR = 1e-6  # lowering below this is the same as 0 for these models: suggest 0 instead
DROPOUT_START = 0.2  # first dropout rate to try
DROPOUT_STEP = 0.1  # raise dropout in steps of 0.1 ...
DROPOUT_MAX = 0.5  # ... up to 0.5; beyond that an MLP mostly underfits
MIN_STEP = 1e-12  # guards divisions by a loss or a min_delta of 0
EPS = 1e-9  # float noise at a threshold: 0.07 - 0.05 = 0.020000000000000004 is not above a 0.02 tolerance


def diagnose(
    history: pd.DataFrame | None,
    summary: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    *,
    run_dir: str | None = None,
) -> dict[str, Any]:
    """Diagnoses one run: verdict, evidence, recommendations and warnings.

    The verdict is `diverged` when the run's state is diverged or a loss is NaN/inf;
    `not_learning` when the validation error is no better than `baseline_val_error`
    (the majority-class or mean predictor) within `not_learning_margin`; otherwise
    `high_bias` when avoidable bias (clean train error − target error) exceeds
    `bias_tolerance`, `high_variance` when the gap (val error − clean train error)
    exceeds `gap_tolerance`, both → `high_bias_and_variance`, neither → `good_fit`.

    Args:
        history: One row per epoch (history.csv). Clean columns may be missing; values may be NaN.
        summary: summary.json plus `task`, `state`, `baseline_val_error`, `n_classes`.
        config: The fully resolved experiment spec as a plain dict.
        run_dir: Named in the "ship it" recommendation. Defaults to `None` ("RUN_DIR").

    Returns:
        A JSON-able dict with `verdict`, `headline`, `evidence`, `recommendations` (dicts with
        `knob`, `from`, `to`, `text`) and `warnings` (dicts with `code`, `text`).
    """
    run = _Run.build(history, summary, config, run_dir)
    ev = _evidence(run)
    verdict = _verdict(run, ev)
    ev["verdict_reason"] = _verdict_reason(verdict, ev)
    return jsonable(
        {
            "verdict": verdict,
            "headline": f"{verdict.replace('_', ' ').capitalize()} — {ev['verdict_reason']}",
            "evidence": ev,
            "recommendations": _recommendations(run, ev, verdict),
            "warnings": run.warnings + _warnings(run, ev, verdict),
        }
    )


# --------------------------------------------------------------------------- inputs


def _get(mapping: Mapping[str, Any] | None, dotted: str, default: Any = None) -> Any:
    """`mapping["a"]["b"]` for "a.b", or `default` when a part is missing or None."""
    node: Any = mapping or {}
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or node.get(part) is None:
            return default
        node = node[part]
    return node


def _num(value: Any) -> float | None:
    """A finite float, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class _Run:
    """The inputs, normalized once: thresholds resolved, task metric chosen, model shape read."""

    history: pd.DataFrame
    summary: Mapping[str, Any]
    config: Mapping[str, Any]
    th: dict[str, float]
    task: str
    metric: str  # "accuracy" or "mae"
    run_dir: str
    warnings: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def build(cls, history, summary, config, run_dir) -> _Run:
        history = pd.DataFrame() if history is None else history.reset_index(drop=True)
        if "epoch" not in history.columns:
            history = history.assign(epoch=np.arange(1, len(history) + 1))
        summary = summary or {}
        config = config or {}
        section = _get(config, "diagnosis", {}) or {}
        th = {
            key: (_num(section.get(key)) if _num(section.get(key)) is not None else default)
            for key, default in DEFAULTS.items()
        }
        th["curve_window"] = max(2, int(th["curve_window"]))
        task = summary.get("task") or _get(config, "model.task")
        if task not in ("binary", "multiclass", "regression"):
            train = _get(summary, "metrics.train", {}) or {}
            regression = "mae" in train or ("mae" in history.columns and "accuracy" not in history.columns)
            task = "regression" if regression else "classification"
        metric = "mae" if task == "regression" else "accuracy"
        return cls(history, summary, config, th, task, metric, run_dir or "RUN_DIR")

    # ---- config, read defensively (the spec module validated it; old runs may lack keys)
    def cfg(self, dotted: str, default: Any = None) -> Any:
        return _get(self.config, dotted, default)

    @property
    def layers(self) -> list[Mapping[str, Any]] | None:
        layers = self.cfg("model.layers")
        return [layer for layer in layers if isinstance(layer, Mapping)] if layers else None

    @property
    def hidden(self) -> list[int]:
        return [int(u) for u in (self.cfg("model.hidden") or [])]

    def kernel_l2(self) -> float:
        """The largest kernel L2 factor anywhere in the model."""
        if self.layers is not None:
            return max([_num(_get(la, "kernel_regularizer.l2")) or 0.0 for la in self.layers], default=0.0)
        return _num(self.cfg("model.l2")) or 0.0

    def kernel_l1(self) -> float:
        if self.layers is not None:
            return max([_num(_get(la, "kernel_regularizer.l1")) or 0.0 for la in self.layers], default=0.0)
        return _num(self.cfg("model.l1")) or 0.0

    def has_penalty(self) -> bool:
        if self.kernel_l1() > 0 or self.kernel_l2() > 0:
            return True
        if self.layers is not None:
            keys = (
                "bias_regularizer.l1",
                "bias_regularizer.l2",
                "activity_regularizer.l1",
                "activity_regularizer.l2",
            )
            return any((_num(_get(la, k)) or 0.0) > 0 for la in self.layers for k in keys)
        return any((_num(self.cfg(k)) or 0.0) > 0 for k in ("model.bias_l2", "model.activity_l2"))

    def dropout_rates(self) -> list[float]:
        if self.layers is not None:
            kinds = ("dropout", "spatial_dropout2d")
            return [_num(la.get("rate")) or 0.0 for la in self.layers if la.get("type") in kinds]
        rate = _num(self.cfg("model.dropout")) or 0.0
        return [rate] if self.hidden and rate > 0 else []

    def uses_batchnorm(self) -> bool:
        if self.layers is not None:
            return any(la.get("type") == "batchnorm" for la in self.layers)
        return bool(self.cfg("model.batchnorm", False)) and bool(self.hidden)

    def l2_before_batchnorm(self) -> bool:
        """Whether some L2-penalized kernel feeds a BatchNormalization (dropout/noise in between ignored)."""
        if self.layers is None:
            return self.uses_batchnorm() and self.kernel_l2() > 0
        transparent = ("dropout", "spatial_dropout2d", "gaussian_noise")
        for i, layer in enumerate(self.layers):
            if (_num(_get(layer, "kernel_regularizer.l2")) or 0.0) <= 0:
                continue
            for nxt in self.layers[i + 1 :]:
                if nxt.get("type") in transparent:
                    continue
                if nxt.get("type") == "batchnorm":
                    return True
                break
        return False

    def es(self, key: str, default: Any = None) -> Any:
        return self.cfg(f"training.early_stopping.{key}", default)


# --------------------------------------------------------------------------- evidence


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


def _split_error(run: _Run, split: str, row: int | None) -> tuple[float | None, str | None]:
    """Error of `split` ("train"/"val") at the shipped epoch and where it came from."""
    metrics = _get(run.summary, f"metrics.{split}", {}) or {}
    if _num(metrics.get("error")) is not None:
        return _num(metrics["error"]), f"summary.metrics.{split}.error"
    if _num(metrics.get(run.metric)) is not None:
        return _to_error(run.metric, _num(metrics[run.metric])), f"summary.metrics.{split}.{run.metric}"
    if row is None:
        return None, None
    names = [f"clean_{run.metric}", run.metric] if split == "train" else [f"val_{run.metric}"]
    for name in names:
        values = _col(run.history, name)
        if values is not None and math.isfinite(values[row]):
            return _to_error(run.metric, float(values[row])), f"history.{name}"
    return None, None


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


def _evidence(run: _Run) -> dict[str, Any]:
    h, s, th = run.history, run.summary, run.th
    n = len(h)
    epochs = pd.to_numeric(h["epoch"], errors="coerce").to_numpy(dtype=float) if n else np.array([])
    last_epoch = int(epochs[-1]) if n else None
    shipped = s.get("shipped_epoch") or s.get("best_epoch") or last_epoch
    row = _row_index(h, shipped)

    train_error, train_source = _split_error(run, "train", row)
    val_error, val_source = _split_error(run, "val", row)
    target = th["target_error"]
    bias = None if train_error is None else train_error - target
    gap = None if train_error is None or val_error is None else val_error - train_error

    monitor = s.get("monitor") or run.es("monitor") or "val_loss"
    mode = _resolve_mode(run.es("mode") or "auto", monitor)
    min_delta = abs(_num(run.es("min_delta")) or 0.0)
    epochs_run = s.get("epochs_run") or n
    best_epoch = s.get("best_epoch")

    ev: dict[str, Any] = {
        "task": run.task,
        "metric": run.metric,
        "state": s.get("state"),
        "train_error": train_error,
        "train_error_source": train_source,
        "val_error": val_error,
        "val_error_source": val_source,
        "target_error": target,
        "avoidable_bias": bias,
        "gap": gap,
        "bias_tolerance": th["bias_tolerance"],
        "gap_tolerance": th["gap_tolerance"],
        "baseline_val_error": _num(s.get("baseline_val_error")),
        "shipped_epoch": shipped,
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "max_epochs": run.cfg("training.epochs"),
        "stopped_early": s.get("stopped_early"),
        "restored_best_weights": s.get("restored_best_weights"),
        "monitor": monitor,
        "mode": mode,
        "min_delta": min_delta,
        "patience": run.es("patience"),
        "n_train": s.get("n_train"),
        "n_val": s.get("n_val"),
        "metric_granularity": (1.0 / s["n_val"]) if run.metric == "accuracy" and s.get("n_val") else None,
        "penalty": _num(s.get("penalty")),
        "penalty_share": _num(s.get("penalty_share")),
        "first_nonfinite_epoch": None,
    }
    window = int(th["curve_window"])
    ev["curve_window"] = window

    # Divergence: the first epoch whose loss or val_loss is NaN/inf.
    for name in ("loss", "val_loss"):
        if name in h.columns and n:
            bad = ~np.isfinite(pd.to_numeric(h[name], errors="coerce").to_numpy(dtype=float))
            if bad.any():
                epoch = int(epochs[int(np.argmax(bad))])
                current = ev["first_nonfinite_epoch"]
                ev["first_nonfinite_epoch"] = epoch if current is None else min(current, epoch)

    # Validation curve: penalty-free when recorded, so runs with different L1/L2 read alike.
    val_name, val = _first_col(h, ["val_data_loss", "val_loss"])
    ev["val_curve"] = val_name
    val_best_epoch = val_rise = val_rise_rel = None
    val_rose = False
    if val is not None:
        i_best = int(np.nanargmin(np.where(np.isfinite(val), val, np.nan)))
        finite_idx = np.flatnonzero(np.isfinite(val))
        i_last = int(finite_idx[-1])
        val_best_epoch = int(epochs[i_best])
        val_rise = float(val[i_last] - val[i_best])
        val_rise_rel = val_rise / max(abs(float(val[i_best])), MIN_STEP)
        val_noise, _ = _window_stats(val, window, -1.0)
        val_rose = val_rise_rel > VAL_RISE_REL and val_rise > (val_noise or 0.0)
        ev.update(val_curve_best=float(val[i_best]), val_curve_last=float(val[i_last]))
    ev.update(
        val_curve_best_epoch=val_best_epoch,
        val_rise_after_best=val_rise,
        val_rise_after_best_rel=val_rise_rel,
        val_rose_after_best=val_rose,
    )

    # Is training still improving? Least-squares slope of the clean (else as-trained) loss.
    train_name, train = _first_col(h, ["clean_data_loss", "clean_loss", "data_loss", "loss"])
    ev["train_curve"] = train_name
    slope = rel_drop = None
    if train is not None:
        mask = np.isfinite(train)
        x, y = epochs[mask][-window:], train[mask][-window:]
        if len(y) >= 2:
            slope = float(np.polyfit(x, y, 1)[0])
            rel_drop = -slope * (x[-1] - x[0]) / max(abs(float(np.mean(y))), MIN_STEP)
    ev.update(train_slope_per_epoch=slope, train_rel_drop_window=rel_drop)
    ev["still_improving"] = None if rel_drop is None else rel_drop > IMPROVING_REL_DROP
    # "Best" is the validation curve's best epoch. Only a restored run's best_epoch is that
    # (Keras's rule); otherwise the shipped epoch is simply the last and says nothing.
    if best_epoch is not None and epochs_run and s.get("restored_best_weights"):
        ev["best_is_last"] = int(best_epoch) == int(epochs_run)
    else:
        ev["best_is_last"] = None if val_best_epoch is None else val_best_epoch == last_epoch
    ev["ran_out_of_epochs"] = (
        bool(epochs_run) and ev["max_epochs"] is not None and int(epochs_run) >= int(ev["max_epochs"])
    ) or (bool(epochs_run) and s.get("stopped_early") is False)

    # Noise of the monitored curve vs the improvements early stopping reacts to.
    mon_values = _col(h, monitor)
    if mon_values is None:
        mon_values = val
    noise, mean_impr = _window_stats(mon_values, window, -1.0 if mode == "min" else 1.0)
    ev.update(
        val_noise=noise,
        recent_mean_improvement=mean_impr,
        noise_to_min_delta=None if noise is None or min_delta <= 0 else noise / min_delta,
        noise_to_improvement=None if noise is None or not mean_impr else noise / abs(mean_impr),
    )

    # Where the gap opened: val bottomed out while the training loss kept falling.
    gap_open = None
    if val_rose and train is not None and val_best_epoch is not None:
        i_best = _row_index(h, val_best_epoch)
        after = train[i_best:][np.isfinite(train[i_best:])]
        if math.isfinite(train[i_best]) and len(after) > 1:
            fell = (train[i_best] - after.min()) / max(abs(float(train[i_best])), MIN_STEP)
            gap_open = val_best_epoch if fell > IMPROVING_REL_DROP else None
    ev["gap_open_epoch"] = gap_open
    ev["gap_over_tolerance_since"] = _gap_over_tolerance_since(run, epochs, th["gap_tolerance"])
    ev["curve_reading"] = _curve_reading(ev, n, last_epoch)
    return ev


def _gap_over_tolerance_since(run: _Run, epochs: np.ndarray, tolerance: float) -> int | None:
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


def _curve_reading(ev: dict[str, Any], n: int, last_epoch: int | None) -> str:
    """The tuning playbook's reading of best vs last epoch, in one sentence."""
    if n == 0:
        return "No epoch was recorded: there is no learning curve to read."
    if n == 1:
        return "Only one epoch was recorded: the learning curve cannot be read yet."
    curve = ev["val_curve"] or "validation"
    if ev["first_nonfinite_epoch"] is not None:
        return f"The loss became NaN/inf at epoch {ev['first_nonfinite_epoch']}: training diverged."
    if ev["best_is_last"]:
        return (
            f"The best epoch is the last one ({last_epoch}): validation was still improving when training "
            "ended, so the run is compute-bound or underfit; training longer should help."
        )
    if ev["gap_open_epoch"] is not None:
        return (
            f"{curve} bottomed out at epoch {ev['gap_open_epoch']} and rose "
            f"{ev['val_rise_after_best_rel']:.0%} by epoch {last_epoch} while the training loss kept falling: "
            f"problematic overfitting; the gap started to open at epoch {ev['gap_open_epoch']}."
        )
    if ev["val_rose_after_best"]:
        return (
            f"{curve} bottomed out at epoch {ev['val_curve_best_epoch']} and rose "
            f"{ev['val_rise_after_best_rel']:.0%} by epoch {last_epoch}, but the training loss did not keep "
            "falling either: the run has plateaued rather than overfit."
        )
    if ev["val_curve_best_epoch"] is not None:
        return (
            f"{curve} flattened around epoch {ev['val_curve_best_epoch']} and stayed within its noise "
            "afterwards: no sign of overfitting in the curve."
        )
    return "No validation loss was recorded: the curve cannot be read."


# --------------------------------------------------------------------------- verdict


def _verdict(run: _Run, ev: dict[str, Any]) -> str:
    losses = [_num(_get(run.summary, f"metrics.{s}.loss")) for s in ("train", "val")]
    summary_nan = any(
        _get(run.summary, f"metrics.{s}.loss") is not None and loss is None
        for s, loss in zip(("train", "val"), losses, strict=True)
    )
    if ev["state"] == "diverged" or ev["first_nonfinite_epoch"] is not None or summary_nan:
        return "diverged"
    val, baseline = ev["val_error"], ev["baseline_val_error"]
    if val is None:
        return "not_learning"  # no validation error at all: nothing measurable was learned
    if baseline is not None and val >= baseline - run.th["not_learning_margin"] - EPS:
        return "not_learning"
    bias = ev["avoidable_bias"] is not None and ev["avoidable_bias"] > run.th["bias_tolerance"] + EPS
    variance = ev["gap"] is not None and ev["gap"] > run.th["gap_tolerance"] + EPS
    if bias and variance:
        return "high_bias_and_variance"
    if bias:
        return "high_bias"
    if variance:
        return "high_variance"
    return "good_fit"


def _verdict_reason(verdict: str, ev: dict[str, Any]) -> str:
    f = _fmt
    if verdict == "diverged":
        where = f" at epoch {ev['first_nonfinite_epoch']}" if ev["first_nonfinite_epoch"] else ""
        return f"the loss became NaN/inf{where}; the run's numbers are meaningless."
    if verdict == "not_learning":
        if ev["val_error"] is None:
            return "no validation error was recorded."
        return (
            f"val error {f(ev['val_error'])} is no better than the "
            f"{'mean' if ev['metric'] == 'mae' else 'majority-class'} predictor's {f(ev['baseline_val_error'])}."
        )
    bias_part = (
        f"avoidable bias {f(ev['avoidable_bias'])} (clean train error {f(ev['train_error'])} − target "
        f"{f(ev['target_error'])}) vs tolerance {f(ev['bias_tolerance'])}"
    )
    gap_part = (
        f"gap {f(ev['gap'])} (val error {f(ev['val_error'])} − train) vs tolerance {f(ev['gap_tolerance'])}"
    )
    return {
        "high_bias": f"the model underfits: {bias_part}.",
        "high_variance": f"the model overfits: {gap_part}.",
        "high_bias_and_variance": f"both errors are high: {bias_part}; {gap_part}.",
        "good_fit": f"{bias_part}; {gap_part}: both within tolerance.",
    }[verdict]


# --------------------------------------------------------------------------- recommendations


def _rec(knob: str | None, old: Any, new: Any, text: str) -> dict[str, Any]:
    return {"knob": knob, "from": old, "to": new, "text": text}


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def _step_up(x: float, start: float) -> float:
    return start if x <= 0 else _round(x * REG_STEP)


def _step_down(x: float) -> float:
    y = x / REG_STEP
    return 0.0 if y < REG_FLOOR else _round(y)


def _widest_dense(run: _Run) -> tuple[int | None, int | None]:
    """(index, units) of the widest dense layer in model.layers."""
    best = (None, None)
    for i, layer in enumerate(run.layers or []):
        units = layer.get("units")
        if layer.get("type") == "dense" and units and (best[1] is None or units > best[1]):
            best = (i, int(units))
    return best


def _raise_l2(run: _Run) -> dict[str, Any] | None:
    if run.layers is not None:
        cur = run.kernel_l2()
        new = _step_up(cur, L2_START)
        return _rec(
            "model.layers",
            cur,
            new,
            f"raise kernel_regularizer.l2 of the dense/conv layers in model.layers from {_fmt(cur)} to {_fmt(new)}",
        )
    l1, l2 = run.kernel_l1(), run.kernel_l2()
    if l2 == 0 and l1 > 0:  # an L1-only model: strengthen the penalty it already uses
        new = _step_up(l1, L1_START)
        return _rec("model.l1", l1, new, f"raise model.l1 from {_fmt(l1)} to {_fmt(new)}")
    new = _step_up(l2, L2_START)
    verb = "add L2: set" if l2 == 0 else "raise"
    return _rec("model.l2", l2, new, f"{verb} model.l2 from {_fmt(l2)} to {_fmt(new)}")


def _lower_penalty(run: _Run) -> dict[str, Any] | None:
    l1, l2 = run.kernel_l1(), run.kernel_l2()
    if run.layers is not None:
        if l2 <= 0:
            return None
        new = _step_down(l2)
        return _rec(
            "model.layers",
            l2,
            new,
            f"lower kernel_regularizer.l2 of the layers in model.layers from {_fmt(l2)} to {_fmt(new)}",
        )
    if l2 > 0:
        new = _step_down(l2)
        return _rec("model.l2", l2, new, f"lower model.l2 from {_fmt(l2)} to {_fmt(new)}")
    if l1 > 0:
        new = _step_down(l1)
        return _rec("model.l1", l1, new, f"lower model.l1 from {_fmt(l1)} to {_fmt(new)}")
    return None


def _raise_dropout(run: _Run) -> dict[str, Any] | None:
    if run.layers is not None:
        rates = [
            (i, _num(la.get("rate")) or 0.0)
            for i, la in enumerate(run.layers)
            if la.get("type") in ("dropout", "spatial_dropout2d")
        ]
        if not rates:
            idx, units = _widest_dense(run)
            where = (
                f"the {units}-unit dense layer (model.layers[{idx}])"
                if idx is not None
                else "the widest layer"
            )
            return _rec(
                "model.layers",
                0.0,
                DROPOUT_START,
                f"add dropout {DROPOUT_START} after {where}: {{type: dropout, rate: {DROPOUT_START}}}",
            )
        i, rate = min(rates, key=lambda r: r[1])
        if rate >= DROPOUT_MAX:
            return None
        new = _round(min(DROPOUT_MAX, rate + DROPOUT_STEP))
        return _rec(
            "model.layers",
            rate,
            new,
            f"raise the dropout rate of model.layers[{i}] from {_fmt(rate)} to {_fmt(new)}",
        )
    if not run.hidden:
        return None
    rate = _num(run.cfg("model.dropout")) or 0.0
    if rate >= DROPOUT_MAX:
        return None
    if rate == 0:
        return _rec(
            "model.dropout",
            0.0,
            DROPOUT_START,
            f"add dropout {DROPOUT_START} to the hidden blocks (model.dropout from 0 to {DROPOUT_START}; "
            f"the {max(run.hidden)}-unit block is the widest)",
        )
    new = _round(min(DROPOUT_MAX, rate + DROPOUT_STEP))
    return _rec("model.dropout", rate, new, f"raise model.dropout from {_fmt(rate)} to {_fmt(new)}")


def _lower_dropout(run: _Run) -> dict[str, Any] | None:
    rates = run.dropout_rates()
    if not rates or max(rates) <= 0:
        return None
    rate = max(rates)
    new = (
        math.floor(round(rate * 10, 6) / 2) / 10
    )  # roughly halve, on the 0.1 grid: 0.5 -> 0.2, 0.2 -> 0.1, 0.1 -> 0
    if run.layers is not None:
        i = next(i for i, la in enumerate(run.layers) if (_num(la.get("rate")) or 0.0) == rate)
        return _rec(
            "model.layers",
            rate,
            new,
            f"lower the dropout rate of model.layers[{i}] from {_fmt(rate)} to {_fmt(new)}",
        )
    return _rec("model.dropout", rate, new, f"lower model.dropout from {_fmt(rate)} to {_fmt(new)}")


def _widen(run: _Run) -> dict[str, Any] | None:
    if run.layers is not None:
        idx, units = _widest_dense(run)
        if idx is None:
            return None
        return _rec(
            "model.layers",
            units,
            2 * units,
            f"widen the dense layers in model.layers: double their units (the widest from {units} to {2 * units})",
        )
    hidden = run.hidden
    if not hidden:
        return _rec("model.hidden", [], [64], "add a hidden block: set model.hidden from [] to [64]")
    new = [2 * u for u in hidden]
    return _rec("model.hidden", hidden, new, f"widen model.hidden from {hidden} to {new}")


def _train_longer(run: _Run, ev: dict[str, Any]) -> dict[str, Any] | None:
    """Best = last (or the training loss still falling) when the epochs ran out: train longer."""
    if not (ev["best_is_last"] or ev["still_improving"]) or not ev["epochs_run"]:
        return None
    epochs = int(ev["max_epochs"] or ev["epochs_run"])
    if ev["ran_out_of_epochs"]:
        why = "validation still improving" if ev["best_is_last"] else "training loss still falling"
        return _rec(
            "training.epochs",
            epochs,
            2 * epochs,
            f"train longer: {why} at epoch {ev['epochs_run']} — raise training.epochs from {epochs} to {2 * epochs}",
        )
    patience = int(run.es("patience", 0) or 0)
    if ev["stopped_early"] and ev["still_improving"] and run.es("enabled", True):
        new = max(2 * patience, 5)
        return _rec(
            "training.early_stopping.patience",
            patience,
            new,
            f"early stopping fired at epoch {ev['epochs_run']} while the training loss was still falling: "
            f"raise training.early_stopping.patience from {patience} to {new}",
        )
    return None


def _early_stopping_hygiene(run: _Run, ev: dict[str, Any]) -> dict[str, Any] | None:
    """When validation rose after its best, make sure the best epoch is the one shipped."""
    if not ev["val_rose_after_best"] or ev["val_curve_best_epoch"] is None:
        return None
    best, shipped = ev["val_curve_best_epoch"], ev["shipped_epoch"]
    if run.es("enabled", True) is False and shipped != best:
        return _rec(
            "training.early_stopping.enabled",
            False,
            True,
            f"enable early stopping: {ev['val_curve']} was best at epoch {best} but epoch {shipped} was shipped",
        )
    if run.es("restore_best_weights", True) is False and shipped != best:
        return _rec(
            "training.early_stopping.restore_best_weights",
            False,
            True,
            f"set training.early_stopping.restore_best_weights to true: {ev['val_curve']} was best at epoch "
            f"{best} but the last epoch ({shipped}) was shipped",
        )
    return None


def _lower_patience(run: _Run, ev: dict[str, Any]) -> dict[str, Any] | None:
    patience = int(run.es("patience", 0) or 0)
    if not run.es("enabled", True) or ev["stopped_early"] or not ev["val_rose_after_best"] or patience <= 2:
        return None
    new = max(2, min(patience // 2, 10))
    return _rec(
        "training.early_stopping.patience",
        patience,
        new,
        f"rely on early stopping: {ev['val_curve']} stopped improving at epoch {ev['val_curve_best_epoch']} "
        f"and early stopping never fired — lower training.early_stopping.patience from {patience} to {new}",
    )


def _more_data(run: _Run, ev: dict[str, Any]) -> dict[str, Any]:
    fraction = _num(run.cfg("data.train_fraction")) or 1.0
    if fraction < 1.0:
        return _rec(
            "data.train_fraction",
            fraction,
            1.0,
            f"use all the training data: raise data.train_fraction from {_fmt(fraction)} to 1.0",
        )
    n = f" (n_train = {ev['n_train']})" if ev["n_train"] else ""
    return _rec(None, None, None, f"get more training data{n}: the gap shrinks as the training set grows")


def _learning_rate(run: _Run, direction: str, why: str) -> dict[str, Any] | None:
    lr = _num(run.cfg("training.learning_rate"))
    if lr is None:
        return None
    new = _round(lr / 10) if direction == "down" else _round(lr * 10)
    verb = "lower" if direction == "down" else "raise"
    return _rec(
        "training.learning_rate",
        lr,
        new,
        f"{verb} training.learning_rate from {_fmt(lr)} to {_fmt(new)}: {why}",
    )


def _recommendations(run: _Run, ev: dict[str, Any], verdict: str) -> list[dict[str, Any]]:
    recs: list[dict[str, Any] | None]
    if verdict == "good_fit":
        recs = [_rec(None, None, None, f"ship it; run `regcli test {run.run_dir}` once for the final exam")]
        if ev["best_is_last"] and ev["ran_out_of_epochs"]:
            recs.append(_train_longer(run, ev))
    elif verdict == "high_variance":
        regularize = (
            [_raise_dropout(run), _raise_l2(run)]
            if run.l2_before_batchnorm()
            else [_raise_l2(run), _raise_dropout(run)]
        )
        recs = [_early_stopping_hygiene(run, ev), *regularize, _more_data(run, ev), _lower_patience(run, ev)]
    elif verdict in ("high_bias", "high_bias_and_variance"):
        recs = []
        if verdict == "high_bias_and_variance":
            recs.append(
                _rec(
                    None,
                    None,
                    None,
                    f"don't add regularization: both errors are high (avoidable bias {_fmt(ev['avoidable_bias'])}, "
                    f"gap {_fmt(ev['gap'])}) — fix bias first",
                )
            )
        penalty_first = (ev["penalty_share"] or 0.0) > run.th["max_penalty_share"] or run.kernel_l2() >= 1e-3
        less_reg = (
            [_lower_penalty(run), _lower_dropout(run)]
            if penalty_first
            else [_lower_dropout(run), _lower_penalty(run)]
        )
        recs += [_train_longer(run, ev), *less_reg, _widen(run)]
    elif verdict == "diverged":
        where = f" at epoch {ev['first_nonfinite_epoch']}" if ev["first_nonfinite_epoch"] else ""
        recs = [_learning_rate(run, "down", f"the loss became NaN/inf{where}")]
        if run.cfg("data.standardize", True) is False:
            recs.append(
                _rec(
                    "data.standardize",
                    False,
                    True,
                    "set data.standardize to true: unscaled features make the loss explode",
                )
            )
        recs.append(
            _rec(None, None, None, "check the data for NaN/inf values and extreme feature or target scales")
        )
    else:  # not_learning
        recs = []
        if (ev["penalty_share"] or 0.0) > run.th["max_penalty_share"]:
            recs.append(_lower_penalty(run))
        moved = ev["train_rel_drop_window"] is not None and ev["train_rel_drop_window"] > IMPROVING_REL_DROP
        lr = _num(run.cfg("training.learning_rate")) or 1e-3
        if not moved and lr < 1e-3:
            recs.append(_learning_rate(run, "up", "the training loss barely moved"))
        elif not moved:
            recs.append(
                _learning_rate(run, "down", "a learning rate this high can bounce around without learning")
            )
        recs.append(_widen(run))
        noise = _num(run.cfg("data.label_noise")) or 0.0
        if noise > 0:
            recs.append(
                _rec(
                    "data.label_noise",
                    noise,
                    0.0,
                    f"lower data.label_noise from {_fmt(noise)} to 0: that share of training labels is flipped",
                )
            )
        base = "mean" if run.metric == "mae" else "majority-class"
        recs.append(
            _rec(
                None,
                None,
                None,
                f"check the labels and features (data.target, data.source): val error {_fmt(ev['val_error'])} "
                f"is no better than the {base} predictor's {_fmt(ev['baseline_val_error'])}",
            )
        )
    return [r for r in recs if r is not None]


# --------------------------------------------------------------------------- warnings


def _warn(code: str, text: str) -> dict[str, str]:
    return {"code": code, "text": text}


def _warnings(run: _Run, ev: dict[str, Any], verdict: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    th = run.th
    if ev["epochs_run"] == 0 or len(run.history) == 0:
        out.append(
            _warn("no_epochs", "history.csv has no epochs: the diagnosis rests on summary.json alone.")
        )
    if ev["train_error_source"] == f"history.{run.metric}":
        out.append(
            _warn(
                "clean_metrics_missing",
                f"No clean (inference-mode) training metric was recorded; train error comes from {run.metric} as "
                "trained, with dropout active and BatchNorm batch statistics, which overstates it.",
            )
        )
    share = ev["penalty_share"]
    if share is not None and share > th["max_penalty_share"]:
        out.append(
            _warn(
                "penalty_dominates",
                f"The regularization penalty is {share:.0%} of the loss (> {th['max_penalty_share']:.0%}): the optimizer "
                "mostly shrinks weights instead of fitting the data. Lower model.l1/model.l2.",
            )
        )
    if str(ev["monitor"]).removeprefix("val_") == "loss" and run.has_penalty():
        out.append(
            _warn(
                "val_loss_includes_penalty",
                f"Early stopping monitors {ev['monitor']}, which includes the L1/L2 penalty: it is not comparable "
                "across penalty strengths. val_loss includes the penalty; rank runs on val_data_loss.",
            )
        )
    epochs = run.cfg("training.epochs")
    patience = run.es("patience")
    start = int(run.es("start_from_epoch", 0) or 0)
    if run.es("enabled", True) and epochs is not None and patience is not None:
        if start + max(int(patience), 1) >= int(epochs):
            out.append(
                _warn(
                    "patience_never_fires",
                    f"training.early_stopping.patience ({patience}) + start_from_epoch ({start}) >= training.epochs "
                    f"({epochs}): early stopping can never fire. Lower patience or raise epochs.",
                )
            )
    batch = run.cfg("training.batch_size")
    if run.uses_batchnorm() and batch is not None and int(batch) < BN_MIN_BATCH:
        out.append(
            _warn(
                "batchnorm_small_batch",
                f"BatchNorm with training.batch_size {batch} (< {BN_MIN_BATCH}): batch statistics are too noisy, and "
                "training and inference disagree. Raise the batch size or drop BatchNorm.",
            )
        )
    rates = run.dropout_rates()
    if rates and max(rates) >= HEAVY_DROPOUT and run.uses_batchnorm() and run.kernel_l2() > 0:
        out.append(
            _warn(
                "dropout_bn_l2_stack",
                f"Dropout {_fmt(max(rates))} stacked on BatchNorm and L2: three regularizers at once usually underfit, "
                "and dropout before BatchNorm shifts its statistics between training and inference.",
            )
        )
    if run.l2_before_batchnorm():
        out.append(
            _warn(
                "l2_before_batchnorm",
                "L2 on kernels that feed BatchNormalization barely regularizes: BN makes the output scale-invariant "
                "in those weights, so L2 mostly acts as a learning-rate increase. Dropout or the output layer's "
                "penalty regularize; compare runs on val_data_loss.",
            )
        )
    out += _validation_noise_warnings(run, ev)
    best = ev["best_epoch"]
    if ev["stopped_early"] and best is not None and int(best) <= start + EARLY_BEST_EPOCHS:
        out.append(
            _warn(
                "early_stop_fired_early",
                f"Early stopping fired with the best epoch at {best}: validation never improved after the first "
                "epochs. The learning rate may be too high or the validation curve too noisy; raise patience or "
                "start_from_epoch to rule out warm-up noise.",
            )
        )
    if verdict == "not_learning" and ev["baseline_val_error"] is not None and ev["val_error"] is not None:
        base = "mean" if run.metric == "mae" else "majority-class"
        out.append(
            _warn(
                "not_learning",
                f"val error {_fmt(ev['val_error'])} is no better than the {base} predictor's "
                f"{_fmt(ev['baseline_val_error'])}: the model has learned nothing usable.",
            )
        )
    noise = _num(run.cfg("data.label_noise")) or 0.0
    if noise > 0:
        out.append(
            _warn(
                "label_noise",
                f"data.label_noise = {_fmt(noise)}: that share of TRAINING labels was flipped on purpose. Val labels "
                "are clean; train error is inflated by design (by up to the flipped share), so avoidable bias is "
                f"overstated — set diagnosis.target_error to about {_fmt(noise)} to discount it.",
            )
        )
    return out


def _validation_noise_warnings(run: _Run, ev: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    grain, min_delta = ev["metric_granularity"], ev["min_delta"]
    accuracy_monitor = "acc" in str(ev["monitor"])
    if grain is not None and ((accuracy_monitor and grain > min_delta) or grain > ev["gap_tolerance"]):
        parts = []
        if accuracy_monitor and grain > min_delta:
            parts.append(
                f"early stopping on {ev['monitor']} counts a single flipped sample as an improvement "
                f"(min_delta {_fmt(min_delta)}); set min_delta to at least {_fmt(grain)}"
            )
        if grain > ev["gap_tolerance"]:
            parts.append(f"the gap test (gap_tolerance {_fmt(ev['gap_tolerance'])}) is decided by one sample")
        out.append(
            _warn(
                "val_set_too_small",
                f"With n_val = {ev['n_val']}, one validation sample moves the accuracy by {_fmt(grain)}: "
                + "; ".join(parts)
                + ". Raise data.val_fraction.",
            )
        )
    noise, improvement = ev["val_noise"], ev["recent_mean_improvement"]
    if noise is not None and noise > min_delta and (not improvement or noise > abs(improvement)):
        out.append(
            _warn(
                "noisy_validation",
                f"{ev['monitor']} jitters by {_fmt(noise)} epoch to epoch over the last {ev['curve_window']} epochs, "
                f"more than min_delta ({_fmt(min_delta)}) and than its mean improvement "
                f"({_fmt(improvement)}): early stopping reacts to noise. Set min_delta near {_fmt(noise)} or "
                "enlarge the validation set.",
            )
        )
    return out


# --------------------------------------------------------------------------- output


def _resolve_mode(mode: str, monitor: str) -> str:
    """The replay's rule for "auto"; an undecidable name reads as loss-like, so diagnosis goes on."""
    try:
        return resolve_mode(mode, monitor)
    except BadInputError:
        return "min"


def _fmt(x: Any) -> str:
    """Numbers as people write them: 1e-4, 0.2, 0.0351; None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float, np.number)):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x != 0 and abs(x) < 1e-2:
        mantissa, exponent = f"{x:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:.3g}"


_TABLE = (
    ("train_error", "clean train error (shipped epoch)"),
    ("val_error", "validation error (shipped epoch)"),
    ("target_error", "target error"),
    ("avoidable_bias", "avoidable bias = train − target"),
    ("gap", "variance = val − train"),
    ("baseline_val_error", "majority-class / mean predictor val error"),
    ("shipped_epoch", "shipped epoch"),
    ("best_epoch", "best epoch"),
    ("epochs_run", "epochs run"),
    ("val_curve_best_epoch", "validation curve minimum at epoch"),
    ("val_rise_after_best", "validation rise after its minimum"),
    ("val_rise_after_best_rel", "… relative"),
    ("gap_open_epoch", "gap started to open at epoch"),
    ("gap_over_tolerance_since", "gap above tolerance since epoch"),
    ("still_improving", "training loss still improving at the end"),
    ("val_noise", "validation noise (std of epoch-to-epoch change)"),
    ("recent_mean_improvement", "recent mean improvement per epoch"),
    ("min_delta", "early stopping min_delta"),
    ("n_val", "validation rows"),
    ("metric_granularity", "one validation sample moves accuracy by"),
    ("penalty_share", "penalty share of the loss"),
)


def render_markdown(diagnosis: Mapping[str, Any], summary: Mapping[str, Any] | None = None) -> str:
    """diagnosis.md: verdict headline, evidence table, numbered recommendations, warnings."""
    ev = diagnosis.get("evidence", {}) or {}
    verdict = diagnosis.get("verdict", "unknown")
    lines = [f"# Diagnosis: {verdict.replace('_', ' ')}", ""]
    if ev.get("verdict_reason"):
        lines += [ev["verdict_reason"][0].upper() + ev["verdict_reason"][1:], ""]
    if summary:
        bits = [f"monitor `{summary.get('monitor')}`"] if summary.get("monitor") else []
        if summary.get("best_epoch") is not None:
            bits.append(f"best epoch {summary['best_epoch']} of {summary.get('epochs_run', '?')}")
        if summary.get("stopped_early") is not None:
            bits.append("stopped early" if summary["stopped_early"] else "ran all epochs")
        if bits:
            lines += ["Run: " + ", ".join(bits) + ".", ""]
    if ev.get("curve_reading"):
        lines += [f"**Learning curve.** {ev['curve_reading']}", ""]
    lines += ["## Evidence", "", "| quantity | value |", "|---|---|"]
    for key, label in _TABLE:
        if key in ev and ev[key] is not None:
            value = f"{ev[key]:.1%}" if key == "val_rise_after_best_rel" else _fmt(ev[key])
            lines.append(f"| {label} | {value} |")
    lines += ["", "## Recommendations", ""]
    recs = diagnosis.get("recommendations") or []
    for i, rec in enumerate(recs, 1):
        knob = (
            f" (`{rec['knob']}`: {_fmt(rec.get('from'))} → {_fmt(rec.get('to'))})" if rec.get("knob") else ""
        )
        lines.append(f"{i}. {rec['text']}{knob}")
    if not recs:
        lines.append("None.")
    warnings = diagnosis.get("warnings") or []
    if warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"- **{w['code']}**: {w['text']}" for w in warnings]
    return "\n".join(lines) + "\n"
