"""The learning curve read in one sentence that agrees with the verdict.

The curve and the verdict look at one run from two sides: the verdict at the shipped epoch's
errors, the curve at how validation moved. A reading that says "problematic overfitting" under
a `good_fit` verdict tells two stories, so the reading is written knowing the verdict: a rise
after the shipped epoch is overfitting that early stopping caught, a still-falling curve under
a variance verdict is not a reason to train longer.
"""

from __future__ import annotations

from typing import Any

from regcli.diagnosis.evidence import GAIN_CAP

OVERFIT_VERDICTS = ("high_variance", "high_bias_and_variance")
# Doubling the epochs would lower the best validation loss by at least 5% (extrapolated).
WORTH_LONGER_REL = 0.05


def curve_reading(ev: dict[str, Any], verdict: str) -> str:
    """The tuning playbook's reading of best vs last epoch, in one sentence, consistent with `verdict`."""
    n, last = ev.get("n_epochs_recorded", 0), ev.get("last_epoch")
    if n == 0:
        return "No epoch was recorded: there is no learning curve to read."
    if n == 1:
        return "Only one epoch was recorded: the learning curve cannot be read yet."
    if ev["first_nonfinite_epoch"] is not None:
        return f"The loss became NaN/inf at epoch {ev['first_nonfinite_epoch']}: training diverged."
    if ev["best_is_last"]:
        return _still_improving(ev, verdict, last)
    curve = ev["val_curve"] or "validation"
    if ev["gap_open_epoch"] is not None:
        return _gap_opened(ev, verdict, curve, last)
    if ev["val_rose_after_best"]:
        return (
            f"{curve} bottomed out at epoch {ev['val_curve_best_epoch']} and rose "
            f"{ev['val_rise_after_best_rel']:.0%} by epoch {last}, but the training loss did not keep "
            "falling either: the run has plateaued rather than overfit."
        )
    if ev["val_curve_best_epoch"] is not None:
        tail = (
            ": the gap was there from the early epochs rather than opening late."
            if verdict in OVERFIT_VERDICTS
            else ": no sign of overfitting in the curve."
        )
        return (
            f"{curve} flattened around epoch {ev['val_curve_best_epoch']} and stayed within its noise afterwards"
            + tail
        )
    return "No validation loss was recorded: the curve cannot be read."


def worth_training_longer(ev: dict[str, Any]) -> bool:
    """Whether doubling the epochs is projected to lower the best validation loss by 5% or more."""
    rel = ev.get("doubling_epochs_gain_rel")
    return rel is not None and rel >= WORTH_LONGER_REL


def _still_improving(ev: dict[str, Any], verdict: str, last: Any) -> str:
    start = f"The best epoch is the last one ({last}): validation was still improving when training ended"
    rel = ev.get("doubling_epochs_gain_rel")
    more = " or more" if rel is not None and rel >= GAIN_CAP - 1e-9 else ""
    projected = f" (doubling the epochs is projected to lower it by {rel:.0%}{more})" if rel is not None else ""
    if verdict in OVERFIT_VERDICTS:
        return f"{start}{projected}, but the gap is already above tolerance: more epochs will not close it."
    if worth_training_longer(ev):
        return f"{start}{projected}: the run is compute-bound; training longer should help."
    return f"{start}, but slowly{projected}: more epochs would gain little."


def _gap_opened(ev: dict[str, Any], verdict: str, curve: str, last: Any) -> str:
    opened, shipped = ev["gap_open_epoch"], ev.get("shipped_epoch")
    # a CSVLogger file does not say which epoch's weights were kept: the one diagnosed is not "shipped"
    kept = "diagnosed epoch" if ev.get("history_source") else "shipped epoch"
    rise = (
        f"{curve} bottomed out at epoch {opened} and rose {ev['val_rise_after_best_rel']:.0%} by epoch "
        f"{last} while the training loss kept falling"
    )
    caught = shipped is not None and shipped <= opened
    if verdict in OVERFIT_VERDICTS:
        where = f"; the {kept} {shipped} precedes it, yet its gap is above tolerance" if caught else ""
        return f"{rise}: overfitting from epoch {opened} on{where}."
    if caught:
        return f"{rise}: overfitting after epoch {opened}, which the {kept} {shipped} precedes."
    return f"{rise}; the {kept} {shipped} is past that, but its gap is still within tolerance."
