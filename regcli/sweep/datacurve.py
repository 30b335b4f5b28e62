"""Data-size learning curves: a sweep over `data.train_fraction` -> error vs training rows, and its reading.

Andrew Ng's learning-curve analysis asks what more data would buy. Plot the clean training
error (inference mode, penalty-free: the shipped model on its own training rows) and the
validation error against the number of training rows `n`, then read the right end:

- the gap closes and validation still falls: more data helps;
- both curves are high and close: high bias, which more data will not fix (add capacity or
  reduce regularization);
- a large gap that persists while validation stays flat: high variance (much more data, or
  more regularization);
- validation flat, gap small, both low: the model has converged in data.

The thresholds are the diagnosis's own (`diagnosis.target_error`, `bias_tolerance`,
`gap_tolerance`, defaults in `regcli.diagnosis.DEFAULTS`), so a run's verdict and the
curve's reading speak the same units: error = 1 - accuracy for classification, mae for
regression.

Pure pandas: `curve_line(results, ...) -> rows`, `curve_table(rows) -> table`,
`read_curve(table) -> reading`. `regcli.sweep.aggregate` does the I/O.

Example:

>>> table = pd.DataFrame({"n_train": [34, 136, 341], "train_error_mean": [0.0, 0.02, 0.03],
...                       "val_error_mean": [0.12, 0.07, 0.04]})
>>> read_curve(table)["verdict"]
'more_data_helps'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from regcli.diagnosis import DEFAULTS
from regcli.sweep.expand import FRACTION_KNOB, format_value, parse_cell, same_value
from regcli.values import is_finite

VERDICTS = ("more_data_helps", "high_variance", "high_bias", "high_bias_and_variance", "converged", "too_few_sizes")
CURVE_METRICS = ("train_error", "val_error", "gap", "train_data_loss", "val_data_loss")
CSV_NAME = "learning_curve.csv"
PNG_NAME = "learning_curve.png"

MIN_SIZES = 2  # two training-set sizes are the least that show a direction
# A validation error that falls by less than 1 point (0.01 of mae in target std) per doubling
# of the training rows is flat: the next doubling costs twice the labels for under a point, and
# one validation row of breast_cancer's 114 is already 0.009. Scaled by log2 of the last step.
FALL_PER_DOUBLING = 0.01
# The gap "closes" or "widens" only when it moves by more than 1 point end to end; less is
# within what one or two validation rows change.
GAP_MOVE = 0.01
# A last step of 0.6 to 1.6 doublings (1.5x to 3x the rows) reads as "the last doubling".
DOUBLING = (math.log2(1.5), math.log2(3.0))
EPS = 1e-9  # float noise at a threshold (0.07 - 0.05 is 0.020000000000000004)


# --------------------------------------------------------------------------------------
# Which trials form the curve
# --------------------------------------------------------------------------------------
def is_data_size_study(trials: Sequence[Any]) -> bool:
    """True when the trials train at two or more values of `data.train_fraction`."""
    values: list[Any] = []
    for trial in trials:
        value = trial.params.get(FRACTION_KNOB)
        if value is not None and not any(same_value(value, v) for v in values):
            values.append(value)
    return len(values) >= MIN_SIZES


def curve_line(
    results: pd.DataFrame, knobs: Sequence[str], winner_params: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The completed trials that form the one curve, and the other knobs' values it is drawn at.

    With other knobs swept too, the curve is drawn at the winner's values of them (the
    configuration one would ship, picked on validation). Where the winner's values were
    trained at fewer than two sizes (one_at_a_time: the winner moved another knob), it is
    drawn at the combination trained at the most sizes, the first such in sweep order
    (one_at_a_time: the base).
    """
    others = [k for k in knobs if k != FRACTION_KNOB]
    done = results[results["status"] == "completed"] if "status" in results else results
    done = done[[is_finite(v) for v in done["n_train"]]] if "n_train" in done else done.iloc[:0]

    def matching(fixed: Mapping[str, Any]) -> pd.DataFrame:
        keep = [all(same_value(parse_cell(row[k]), fixed[k]) for k in others) for _, row in done.iterrows()]
        return done[keep] if len(done) else done

    def n_sizes(rows: pd.DataFrame) -> int:
        return len({int(n) for n in rows["n_train"]}) if len(rows) else 0

    fixed = {k: winner_params[k] for k in others if k in winner_params}
    rows = matching(fixed)
    if others and n_sizes(rows) < MIN_SIZES:
        combos: list[dict[str, Any]] = []
        for _, row in done.iterrows():
            combo = {k: parse_cell(row[k]) for k in others}
            if not any(all(same_value(combo[k], c[k]) for k in others) for c in combos):
                combos.append(combo)
        best = max(combos, key=lambda c: n_sizes(matching(c)), default=None)  # max keeps the first of ties
        if best is not None and n_sizes(matching(best)) > n_sizes(rows):
            fixed, rows = best, matching(best)
    return rows, fixed


def curve_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per training-set size (`n_train`, the rows each trial really trained on): the
    fraction(s) that gave it, the number of trials, and mean / std (over seeds, ddof 1) of the
    clean train error, validation error, gap and the penalty-free data losses."""
    records = []
    for n, group in rows.groupby(rows["n_train"].astype(int), sort=True):
        record: dict[str, Any] = {"n_train": int(n)}
        fractions = sorted({float(parse_cell(f)) for f in group[FRACTION_KNOB]}) if FRACTION_KNOB in group else []
        record["train_fraction"] = fractions[0] if len(fractions) == 1 else "|".join(format_value(f) for f in fractions)
        record["n_trials"] = len(group)
        for metric in CURVE_METRICS:
            if metric == "gap" and "gap" not in group:
                values = pd.to_numeric(group["val_error"], errors="coerce") - pd.to_numeric(group["train_error"], errors="coerce")
            elif metric in group:
                values = pd.to_numeric(group[metric], errors="coerce")
            else:
                values = pd.Series(dtype=float)
            values = values.dropna()
            record[f"{metric}_mean"] = float(values.mean()) if len(values) else None
            record[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        records.append(record)
    return pd.DataFrame(records, columns=_columns())


def _columns() -> list[str]:
    return ["n_train", "train_fraction", "n_trials"] + [f"{m}_{s}" for m in CURVE_METRICS for s in ("mean", "std")]


# --------------------------------------------------------------------------------------
# Reading the curve
# --------------------------------------------------------------------------------------
def read_curve(
    table: pd.DataFrame,
    *,
    target_error: float | None = None,
    bias_tolerance: float = DEFAULTS["bias_tolerance"],
    gap_tolerance: float = DEFAULTS["gap_tolerance"],
) -> dict[str, Any]:
    """What more data would buy, read from the right end of the curve.

    At the largest size: avoidable bias = train error - target error; gap = val error - train
    error. Over the last doubling (from the earlier size closest to half the last, on a log
    scale) the validation error "still falls" when it drops by more than `FALL_PER_DOUBLING` x
    log2(last / that size) and by more than its seed spread. Then, in this order:

    - `too_few_sizes`: fewer than 2 distinct sizes;
    - `high_bias_and_variance`: avoidable bias > `bias_tolerance` and gap > `gap_tolerance`;
    - `high_bias`: avoidable bias > `bias_tolerance` (both curves high and close);
    - `more_data_helps`: validation still falls (whatever the gap);
    - `high_variance`: gap > `gap_tolerance` with validation flat;
    - `converged`: validation flat, gap small, both low.

    Args:
        table: `curve_table`'s output (`n_train`, `train_error_mean`, `val_error_mean`, optional `*_std`).
        target_error: human-level / Bayes error estimate. Defaults to `None` (0).
        bias_tolerance: avoidable bias above this is high bias. Defaults to `0.05`.
        gap_tolerance: a gap above this is high variance. Defaults to `0.02`.

    Returns:
        `{"verdict", "sentence", "evidence"}`; `sentence` gives the numbers and what to do.
    """
    target = float(target_error or 0.0)
    points = _measured_points(table)
    sizes = [int(n) for n in points["n_train"]]
    if len(set(sizes)) < MIN_SIZES:
        return _too_few_sizes(sizes)
    end = _CurveEnd.read(points, sizes, _Thresholds(target, bias_tolerance, gap_tolerance))
    verdict = end.verdict()
    return {"verdict": verdict, "sentence": _SENTENCES[verdict](end), "evidence": end.evidence()}


def _measured_points(table: pd.DataFrame) -> pd.DataFrame:
    """The sizes with both a finite train and a finite validation error, smallest first."""
    points = table.sort_values("n_train").reset_index(drop=True)
    measured = zip(points["train_error_mean"], points["val_error_mean"], strict=True)
    points = points[[is_finite(t) and is_finite(v) for t, v in measured]]
    return points.reset_index(drop=True)


def _too_few_sizes(sizes: list[int]) -> dict[str, Any]:
    shown = f"n={sizes[0]}" if sizes else "none completed"
    return {
        "verdict": "too_few_sizes",
        "sentence": (
            f"the sweep trained at {len(set(sizes))} training-set size(s) ({shown}); a learning curve needs at least "
            f"{MIN_SIZES}. Sweep data.train_fraction over several values, e.g. [0.1, 0.2, 0.4, 0.7, 1.0]."
        ),
        "evidence": {"sizes": sizes},
    }


@dataclass(frozen=True)
class _Thresholds:
    target: float  # target error (human-level / Bayes estimate)
    bias_tolerance: float
    gap_tolerance: float


@dataclass(frozen=True)
class _CurveEnd:
    """The right end of a curve: the points, the reference size about half the last, and what they show."""

    sizes: list[int]
    train: list[float]
    val: list[float]
    gap: list[float]
    ref: int  # index of the earlier size closest to half the last, on a log scale
    steps: float  # doublings from the reference size to the last
    noise: float  # mean seed spread of validation error at the two sizes
    needed: float  # how far validation must fall over those steps to "still fall"
    th: _Thresholds

    @classmethod
    def read(cls, points: pd.DataFrame, sizes: list[int], th: _Thresholds) -> _CurveEnd:
        train = [float(v) for v in points["train_error_mean"]]
        val = [float(v) for v in points["val_error_mean"]]
        val_std = [float(v) if is_finite(v) else 0.0 for v in points.get("val_error_std", [None] * len(points))]
        gap = [v - t for t, v in zip(train, val, strict=True)]
        last = len(points) - 1
        # the earlier size closest to half the last, on a log scale: 0.4 for fractions 0.1 ... 0.7, 1.0
        ref = min(range(last), key=lambda i: (abs(math.log2(2 * sizes[i] / sizes[last])), -i))
        steps = math.log2(sizes[last] / sizes[ref])
        noise = (val_std[ref] + val_std[last]) / 2
        return cls(sizes, train, val, gap, ref, steps, noise, max(FALL_PER_DOUBLING * steps, noise), th)

    @property
    def last(self) -> int:
        return len(self.sizes) - 1

    @property
    def n(self) -> int:
        return self.sizes[self.last]

    @property
    def fall(self) -> float:
        return self.val[self.ref] - self.val[self.last]

    @property
    def falls(self) -> bool:
        """Validation error still falls: by more than the steps call for and more than its seed spread."""
        return self.fall > self.needed + EPS

    @property
    def bias(self) -> float:
        return self.train[self.last] - self.th.target

    @property
    def high_bias(self) -> bool:
        return self.bias > self.th.bias_tolerance + EPS

    @property
    def high_gap(self) -> bool:
        return self.gap[self.last] > self.th.gap_tolerance + EPS

    def verdict(self) -> str:
        if self.high_bias and self.high_gap:
            return "high_bias_and_variance"
        if self.high_bias:
            return "high_bias"
        if self.falls:
            return "more_data_helps"
        if self.high_gap:
            return "high_variance"
        return "converged"

    def val_move(self) -> str:
        """`0.12 → 0.07 over the last doubling, n=136 → 341`."""
        doubling = DOUBLING[0] <= self.steps <= DOUBLING[1]
        span = f"n={self.sizes[self.ref]} → {self.n}"
        where = f"over the last doubling, {span}" if doubling else f"over the last step, {span}"
        return f"{_f(self.val[self.ref])} → {_f(self.val[self.last])} {where}"

    def gap_move(self) -> str:
        """`is closing (0.12 → 0.01)`, `is widening (...)` or `holds at 0.03 (0.02 at n=34)`."""
        first, last = self.gap[0], self.gap[self.last]
        if last < first - GAP_MOVE - EPS:
            return f"is closing ({_f(first)} → {_f(last)})"
        if last > first + GAP_MOVE + EPS:
            return f"is widening ({_f(first)} → {_f(last)})"
        return f"holds at {_f(last)} ({_f(first)} at n={self.sizes[0]})"

    def evidence(self) -> dict[str, Any]:
        last = self.last
        return {
            "sizes": self.sizes,
            "n_last": self.n,
            "train_error_last": self.train[last],
            "val_error_last": self.val[last],
            "gap_first": self.gap[0],
            "gap_last": self.gap[last],
            "avoidable_bias": self.bias,
            "n_ref": self.sizes[self.ref],
            "val_error_ref": self.val[self.ref],
            "val_fall": self.fall,
            "val_fall_needed": self.needed,
            "val_seed_spread": self.noise,
            "target_error": self.th.target,
            "bias_tolerance": self.th.bias_tolerance,
            "gap_tolerance": self.th.gap_tolerance,
        }


def _high_bias_and_variance(c: _CurveEnd) -> str:
    last = c.last
    return (
        f"training error is high (train {_f(c.train[last])}, val {_f(c.val[last])} at n={c.n}; avoidable bias "
        f"{_f(c.bias)} > {_f(c.th.bias_tolerance)}) and so is the gap ({_f(c.gap[last])} > {_f(c.th.gap_tolerance)}): "
        f"fix bias first — add capacity or reduce regularization; more data only narrows the gap."
    )


def _high_bias(c: _CurveEnd) -> str:
    last = c.last
    shape = "high and close together" if c.falls else "flat and high"
    return (
        f"both curves are {shape} (train {_f(c.train[last])}, val {_f(c.val[last])} at n={c.n}; avoidable bias "
        f"{_f(c.bias)} > {_f(c.th.bias_tolerance)}, gap {_f(c.gap[last])}): more data will not fix bias — add "
        f"capacity or reduce regularization."
    )


def _more_data_helps(c: _CurveEnd) -> str:
    gap_move = c.gap_move()
    gap_part = (
        f"the gap between train and validation error {gap_move}"
        if c.high_gap or gap_move.startswith("is closing")
        else f"the gap is small ({_f(c.gap[c.last])})"
    )
    return f"{gap_part} and validation error still falls ({c.val_move()}): more data helps."


def _high_variance(c: _CurveEnd) -> str:
    return (
        f"a large gap persists between train and validation error ({_f(c.gap[0])} at n={c.sizes[0]} → "
        f"{_f(c.gap[c.last])} at n={c.n}, above {_f(c.th.gap_tolerance)}) while validation error is flat "
        f"({c.val_move()}): high variance — much more data, or more regularization."
    )


def _converged(c: _CurveEnd) -> str:
    last = c.last
    return (
        f"validation error is flat ({c.val_move()}), the gap is small ({_f(c.gap[last])}) and both are low (train "
        f"{_f(c.train[last])}, val {_f(c.val[last])} at n={c.n}): the model has converged in data — more data "
        f"gives little."
    )


_SENTENCES: dict[str, Callable[[_CurveEnd], str]] = {
    "high_bias_and_variance": _high_bias_and_variance,
    "high_bias": _high_bias,
    "more_data_helps": _more_data_helps,
    "high_variance": _high_variance,
    "converged": _converged,
}


def error_label(classification: bool) -> str:
    """How the axis and the notes name the error."""
    return "error = 1 - accuracy" if classification else "error = mae"


def _f(value: float) -> str:
    """Errors as the notes show them: 2 decimals, 3 below 0.1 (a gap of 0.004 is not 0.00)."""
    value = 0.0 if abs(value) < 5e-4 else value
    return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3f}"
