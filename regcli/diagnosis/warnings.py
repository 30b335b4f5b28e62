"""Warnings for the classic regularization traps, each a small named check.

`traps(run, ev, verdict)` runs `CHECKS` in order; each returns a warning dict (`code`,
`text`) or None. The order is the order of diagnosis.json's `warnings`.

One story: a warning appears only when it would change this run's decision (which epoch
ships, which knob to turn, whether the verdict can be trusted), says how, and never
contradicts the verdict. What the verdict itself says (over-regularization, not learning)
is in the headline and the recommendations, not repeated here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from regcli.diagnosis.inputs import Run
from regcli.diagnosis.render import fmt, more_validation
from regcli.values import finite_float

EARLY_BEST_EPOCHS = 2  # best within 2 epochs of the first monitored one: stopped on warm-up noise
BN_MIN_BATCH = 16  # SPEC §5.4: BatchNorm batch statistics from < 16 rows are too noisy
HEAVY_DROPOUT = 0.5  # dropout >= 0.5 on top of BN and L2 usually underfits an MLP
# The penalized val_loss picked an epoch whose val_data_loss is more than 2% above the lowest.
PENALTY_PICK_TOLERANCE = 0.02
# A slope after the best epoch more than 2 standard errors the wrong way is a real rise, not jitter.
TREND_T = 2.0

WarningEntry = dict[str, str]


def traps(run: Run, ev: dict[str, Any], verdict: str) -> list[WarningEntry]:
    """Every check's warning, in `CHECKS` order."""
    found = (check(run, ev, verdict) for check in CHECKS)
    return [warning for warning in found if warning is not None]


def _warn(code: str, text: str) -> WarningEntry:
    return {"code": code, "text": text}


def _start_from_epoch(run: Run) -> int:
    return int(run.es("start_from_epoch", 0) or 0)


def _no_epochs(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    if ev["epochs_run"] == 0 or len(run.history) == 0:
        return _warn("no_epochs", "history.csv has no epochs: the diagnosis rests on summary.json alone.")
    return None


def _clean_metrics_missing(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    if ev["train_error_source"] != f"history.{run.metric}":
        return None
    return _warn(
        "clean_metrics_missing",
        f"No clean (inference-mode) training metric was recorded; train error comes from {run.metric} as "
        "trained, with dropout active and BatchNorm batch statistics, which overstates it.",
    )


def _val_loss_includes_penalty(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """Early stopping on the penalized val_loss shipped an epoch the penalty-free curve does not pick.

    Within one run the penalty strength is fixed, so val_loss is a fair stopping signal
    unless the penalty's own movement (weights shrinking or growing) chose the epoch.
    """
    if str(ev["monitor"]) != "val_loss" or not run.has_penalty() or ev["val_curve"] != "val_data_loss":
        return None
    best, data_best = ev["best_epoch"], ev["val_curve_best_epoch"]
    at_best = run.value_at("val_data_loss", best)
    lowest = ev["val_curve_best"]
    if best is None or data_best is None or best == data_best or at_best is None or lowest is None:
        return None
    if at_best - lowest <= PENALTY_PICK_TOLERANCE * abs(lowest):
        return None
    return _warn(
        "val_loss_includes_penalty",
        f"Early stopping monitors val_loss, which includes the L1/L2 penalty, and it picked epoch {best} "
        f"(val_data_loss {fmt(at_best)}) although val_data_loss was lowest at epoch {data_best} "
        f"({fmt(lowest)}): the penalty's movement chose the epoch. Monitor val_data_loss to select on the data alone.",
    )


def _patience_never_fires(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    start = _start_from_epoch(run)
    epochs, patience = run.cfg("training.epochs"), run.es("patience")
    if not run.es("enabled", True) or epochs is None or patience is None:
        return None
    if start + max(int(patience), 1) < int(epochs):
        return None
    return _warn(
        "patience_never_fires",
        f"training.early_stopping.patience ({patience}) + start_from_epoch ({start}) >= training.epochs "
        f"({epochs}): early stopping can never fire. Lower patience or raise epochs.",
    )


def _batchnorm_small_batch(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    batch = run.cfg("training.batch_size")
    if not (run.uses_batchnorm() and batch is not None and int(batch) < BN_MIN_BATCH):
        return None
    return _warn(
        "batchnorm_small_batch",
        f"BatchNorm with training.batch_size {batch} (< {BN_MIN_BATCH}): batch statistics are too noisy, and "
        "training and inference disagree. Raise the batch size or drop BatchNorm.",
    )


def _underfits(ev: dict[str, Any], verdict: str) -> bool:
    return verdict == "not_learning" or ev.get("focus") == "bias"


def _dropout_bn_l2_stack(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """Said when the model underfits: three regularizers at once are then a likely cause."""
    rates = run.dropout_rates()
    if not _underfits(ev, verdict) or not (rates and max(rates) >= HEAVY_DROPOUT and run.uses_batchnorm() and run.kernel_l2() > 0):
        return None
    return _warn(
        "dropout_bn_l2_stack",
        f"Dropout {fmt(max(rates))} stacked on BatchNorm and L2: three regularizers at once usually underfit, "
        "and dropout before BatchNorm shifts its statistics between training and inference.",
    )


def _l2_before_batchnorm(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """Said when the run overfits, where one would reach for L2: before BN it barely helps."""
    if verdict not in ("high_variance", "high_bias_and_variance") or not run.l2_before_batchnorm():
        return None
    return _warn(
        "l2_before_batchnorm",
        "L2 on kernels that feed BatchNormalization barely regularizes: BN makes the output scale-invariant "
        "in those weights, so L2 mostly acts as a learning-rate increase. Dropout or the output layer's "
        "penalty regularize; compare runs on val_data_loss.",
    )


def _val_set_too_small(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """On an accuracy monitor, one validation sample moves accuracy by more than min_delta."""
    grain, min_delta = ev["metric_granularity"], ev["min_delta"]
    if grain is None or "acc" not in str(ev["monitor"]) or grain <= min_delta:
        return None
    return _warn(
        "val_set_too_small",
        f"With n_val = {ev['n_val']}, one validation sample moves the accuracy by {fmt(grain)}: early stopping "
        f"on {ev['monitor']} counts a single flipped sample as an improvement (min_delta {fmt(min_delta)}). "
        f"Set min_delta to at least {fmt(grain)}, or raise data.val_fraction.",
    )


def _gap_within_noise(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """The gap is over its tolerance, but the validation set is too small to say it clearly is."""
    gap, tol, se = ev["gap"], ev["gap_tolerance"], ev.get("gap_se")
    if verdict not in ("good_fit", "high_bias") or gap is None or se is None or gap <= tol:
        return None
    need = ev.get("n_val_to_resolve_gap_tolerance")
    rows = f" (about {need:,} rows would resolve {fmt(tol)})" if need else ""
    more, fixed = more_validation(ev)
    return _warn(
        "gap_within_noise",
        f"The gap {fmt(gap)} is over gap_tolerance {fmt(tol)}, but with n_val = {ev['n_val']} it is known only to "
        f"± {fmt(2 * se)}, so the verdict does not count it as high variance. Before trusting that, raise "
        f"{more}{rows} or compare over several seeds with {fixed}.",
    )


def _noisy_validation(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """Early stopping fired on a rise no larger than the curve's own jitter: it may have stopped on noise.

    A jittery curve matters only where it decides something: a run that stopped after a
    real rise (`_rises_after_best`), that stopped once the gap had opened and shipped the
    epoch before (`_overfit_when_stopped`), or that never stopped, was not misled.
    """
    noise, improvement, min_delta = ev["val_noise"], ev["recent_mean_improvement"], ev["min_delta"]
    if verdict == "good_fit":  # stopped on noise or not, the best epoch seen fits: nothing to change
        return None
    if noise is None or noise <= min_delta or (improvement and noise <= abs(improvement)):
        return None
    if not ev["stopped_early"] or _rises_after_best(run, ev) or _overfit_when_stopped(ev):
        return None
    return _warn(
        "noisy_validation",
        f"{ev['monitor']} jitters by {fmt(noise)} epoch to epoch over the last {ev['curve_window']} epochs, "
        f"more than min_delta ({fmt(min_delta)}) and than its mean improvement ({fmt(improvement)}), and "
        f"early stopping fired on a rise within that jitter: it may have stopped on noise. Set min_delta "
        f"near {fmt(noise)}, raise patience, or enlarge the validation set.",
    )


def _overfit_when_stopped(ev: dict[str, Any]) -> bool:
    """Validation bottomed out while the clean training loss kept falling, and the shipped epoch
    is that bottom: more epochs would have widened the gap, so stopping was right, noise or not."""
    opened, shipped = ev["gap_open_epoch"], ev["shipped_epoch"]
    return opened is not None and shipped is not None and shipped <= opened


def _rises_after_best(run: Run, ev: dict[str, Any]) -> bool:
    """Whether the monitored curve trends the wrong way after the best epoch, beyond its scatter.

    The epochs after the best one (the best itself excluded: it is the noisy minimum, and
    anything after it regresses to the mean) get a least-squares slope; a slope more than
    TREND_T standard errors the wrong way is a real rise, not jitter.
    """
    values = pd.to_numeric(run.history.get(str(ev["monitor"])), errors="coerce")
    best = ev["best_epoch"]
    if values is None or best is None:
        return False
    epochs = pd.to_numeric(run.history["epoch"], errors="coerce")
    after = values[(epochs > int(best)) & np.isfinite(values)]
    if len(after) < 3:
        return False
    x = epochs[after.index].to_numpy(dtype=float)
    y = after.to_numpy(dtype=float) * (-1.0 if ev["mode"] == "max" else 1.0)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    se = np.sqrt((residual**2).sum() / (len(x) - 2) / ((x - x.mean()) ** 2).sum())
    return bool(slope > TREND_T * se)


def _early_stop_fired_early(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """Said when the run has a problem to fix; a good fit at epoch 2 needs no warm-up doubt."""
    best = ev["best_epoch"]
    if verdict == "good_fit" or not (
        ev["stopped_early"] and best is not None and int(best) <= _start_from_epoch(run) + EARLY_BEST_EPOCHS
    ):
        return None
    return _warn(
        "early_stop_fired_early",
        f"Early stopping fired with the best epoch at {best}: validation never improved after the first "
        "epochs. The learning rate may be too high or the validation curve too noisy; raise patience or "
        "start_from_epoch to rule out warm-up noise.",
    )


def _label_noise(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """Said when the bias side decides: flipped training labels inflate the training error."""
    noise = finite_float(run.cfg("data.label_noise")) or 0.0
    target = finite_float(ev.get("target_error")) or 0.0
    if noise <= 0 or target >= noise or (ev["avoidable_bias"] or 0.0) <= ev["bias_tolerance"]:
        return None
    return _warn(
        "label_noise",
        f"data.label_noise = {fmt(noise)}: that share of TRAINING labels was flipped on purpose. Val labels "
        "are clean; train error is inflated by design (by up to the flipped share), so avoidable bias is "
        f"overstated — set diagnosis.target_error to about {fmt(noise)} to discount it.",
    )


CHECKS: tuple[Callable[[Run, dict[str, Any], str], WarningEntry | None], ...] = (
    _no_epochs,
    _clean_metrics_missing,
    _val_loss_includes_penalty,
    _patience_never_fires,
    _batchnorm_small_batch,
    _dropout_bn_l2_stack,
    _l2_before_batchnorm,
    _val_set_too_small,
    _gap_within_noise,
    _noisy_validation,
    _early_stop_fired_early,
    _label_noise,
)
