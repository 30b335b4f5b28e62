"""The verdict, read from the evidence, and the one sentence that says why.

`diverged` when the run's state is diverged or a loss is NaN/inf; `not_learning` when the
validation error is no better than `baseline_val_error` (the majority-class or mean
predictor) within `not_learning_margin`. Otherwise each side is judged with its sampling
uncertainty (`uncertainty.Side`): high bias when avoidable bias exceeds `bias_tolerance` by
more than two standard errors, high variance when the gap exceeds `gap_tolerance` likewise;
both -> `high_bias_and_variance`, neither -> `good_fit`. A side over its tolerance but within
its noise is not acted on; the reason says so.
"""

from __future__ import annotations

from typing import Any

from regcli import dotted
from regcli.diagnosis.evidence import EPS
from regcli.diagnosis.inputs import Run
from regcli.diagnosis.render import fmt, more_validation, train_error_label
from regcli.diagnosis.uncertainty import Side, clearly_larger
from regcli.values import finite_float

VERDICTS = ("high_bias", "high_variance", "high_bias_and_variance", "good_fit", "diverged", "not_learning")


def sides(ev: dict[str, Any]) -> tuple[Side, Side]:
    """(avoidable bias, gap), each with its tolerance and standard error."""
    return (
        Side(ev["avoidable_bias"], ev["bias_tolerance"], ev.get("avoidable_bias_se"), EPS),
        Side(ev["gap"], ev["gap_tolerance"], ev.get("gap_se"), EPS),
    )


def read_verdict(run: Run, ev: dict[str, Any]) -> str:
    """One of `VERDICTS`, from the evidence and the run's thresholds."""
    if ev["state"] == "diverged" or ev["first_nonfinite_epoch"] is not None or _summary_loss_nonfinite(run):
        return "diverged"
    val, baseline = ev["val_error"], ev["baseline_val_error"]
    if val is None:
        return "not_learning"  # no validation error at all: nothing measurable was learned
    if baseline is not None and val >= baseline - run.th["not_learning_margin"] - EPS:
        return "not_learning"
    bias, gap = sides(ev)
    if bias.high and gap.high:
        return "high_bias_and_variance"
    if bias.high:
        return "high_bias"
    if gap.high:
        return "high_variance"
    return "good_fit"


def focus(ev: dict[str, Any], verdict: str) -> str | None:
    """Which side to work on first: "bias" or "variance" (None when neither is high).

    Both high: the larger first (Ng's comparison of avoidable bias with variance), and the
    seed's "both bad -> fix bias first" unless the gap is clearly the larger of the two.
    """
    if verdict == "high_bias":
        return "bias"
    if verdict == "high_variance":
        return "variance"
    if verdict != "high_bias_and_variance":
        return None
    return "variance" if clearly_larger(ev["gap"], ev["avoidable_bias"], ev.get("gap_se")) else "bias"


def _summary_loss_nonfinite(run: Run) -> bool:
    """Whether summary.json records a train or val loss that is not a finite number (NaN, inf)."""
    recorded = (dotted.get(run.summary, f"metrics.{split}.loss") for split in ("train", "val"))
    return any(loss is not None and finite_float(loss) is None for loss in recorded)


def _pm(value: Any, se: Any) -> str:
    return f"{fmt(value)} ± {fmt(2 * se)}" if se is not None else fmt(value)


def verdict_reason(verdict: str, ev: dict[str, Any]) -> str:
    """Why: the numbers behind the verdict against their tolerances, as one clause."""
    if verdict == "diverged":
        where = f" at epoch {ev['first_nonfinite_epoch']}" if ev["first_nonfinite_epoch"] else ""
        return f"the loss became NaN/inf{where}; the run's numbers are meaningless."
    if verdict == "not_learning":
        if ev["val_error"] is None:
            return "no validation error was recorded."
        return (
            f"val error {fmt(ev['val_error'])} is no better than the "
            f"{'mean' if ev['metric'] == 'mae' else 'majority-class'} predictor's {fmt(ev['baseline_val_error'])}."
        )
    bias, gap = sides(ev)
    bias_part = (
        f"avoidable bias {_pm(ev['avoidable_bias'], ev.get('avoidable_bias_se'))} ({train_error_label(ev)} "
        f"{fmt(ev['train_error'])} − target {fmt(ev['target_error'])}) vs tolerance {fmt(ev['bias_tolerance'])}"
    )
    gap_part = (
        f"gap {_pm(ev['gap'], ev.get('gap_se'))} (val error {fmt(ev['val_error'])} − train) "
        f"vs tolerance {fmt(ev['gap_tolerance'])}"
    )
    reason = {
        "high_bias": f"the model underfits: {bias_part}.",
        "high_variance": f"the model overfits: {gap_part}.",
        "high_bias_and_variance": f"both errors are high: {bias_part}; {gap_part}.",
        "good_fit": f"{bias_part}; {gap_part}: both within tolerance.",
    }[verdict]
    return reason + "".join(_noise_notes(verdict, bias, gap))


def _noise_notes(verdict: str, bias: Side, gap: Side) -> list[str]:
    """The sides over tolerance only by noise, said so the verdict's silence about them is explained."""
    notes = []
    if bias.within_noise:
        notes.append(
            f" Avoidable bias is {fmt(bias.excess)} over its tolerance, within its noise (± {fmt(bias.resolution)}): "
            "not acted on."
        )
    if gap.within_noise:
        notes.append(
            f" The gap is {fmt(gap.excess)} over its tolerance, within its noise (± {fmt(gap.resolution)}): "
            "not acted on."
        )
    return notes


def resolution_note(ev: dict[str, Any]) -> str | None:
    """When the validation set cannot resolve `gap_tolerance`: how coarse it is, and what to do."""
    _, gap = sides(ev)
    if gap.resolution is None or gap.resolution <= ev["gap_tolerance"] + EPS:
        return None
    need = ev.get("n_val_to_resolve_gap_tolerance")
    rows = f" (about {need:,} validation rows would resolve it)" if need else ""
    more, fixed = more_validation(ev)
    return (
        f"With n_val = {ev.get('n_val')}, the gap is known only to ± {fmt(gap.resolution)}, coarser than "
        f"gap_tolerance {fmt(ev['gap_tolerance'])}: a gap that small cannot be told from noise. Raise "
        f"{more}{rows}, or compare configurations over several seeds with {fixed}."
    )

