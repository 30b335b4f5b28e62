"""The verdict, read from the evidence, and the one sentence that says why.

`diverged` when the run's state is diverged or a loss is NaN/inf; `not_learning` when the
validation error is no better than `baseline_val_error` (the majority-class or mean
predictor) within `not_learning_margin`; otherwise `high_bias` when avoidable bias exceeds
`bias_tolerance`, `high_variance` when the gap exceeds `gap_tolerance`, both ->
`high_bias_and_variance`, neither -> `good_fit`.
"""

from __future__ import annotations

from typing import Any

from regcli import dotted
from regcli.diagnosis.evidence import EPS
from regcli.diagnosis.inputs import Run
from regcli.diagnosis.render import fmt
from regcli.values import finite_float

VERDICTS = ("high_bias", "high_variance", "high_bias_and_variance", "good_fit", "diverged", "not_learning")


def read_verdict(run: Run, ev: dict[str, Any]) -> str:
    """One of `VERDICTS`, from the evidence and the run's thresholds."""
    if ev["state"] == "diverged" or ev["first_nonfinite_epoch"] is not None or _summary_loss_nonfinite(run):
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


def _summary_loss_nonfinite(run: Run) -> bool:
    """Whether summary.json records a train or val loss that is not a finite number (NaN, inf)."""
    recorded = (dotted.get(run.summary, f"metrics.{split}.loss") for split in ("train", "val"))
    return any(loss is not None and finite_float(loss) is None for loss in recorded)


def verdict_reason(verdict: str, ev: dict[str, Any]) -> str:
    """Why: the numbers behind the verdict against their tolerances, as one clause."""
    f = fmt
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
