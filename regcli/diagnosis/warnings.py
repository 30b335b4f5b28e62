"""Warnings for the classic regularization traps, each a small named check.

`traps(run, ev, verdict)` runs `CHECKS` in order; each returns a warning dict (`code`,
`text`) or None. The order is the order of diagnosis.json's `warnings`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regcli.diagnosis.inputs import Run
from regcli.diagnosis.render import fmt
from regcli.values import finite_float

EARLY_BEST_EPOCHS = 2  # best within 2 epochs of the first monitored one: stopped on warm-up noise
BN_MIN_BATCH = 16  # SPEC §5.4: BatchNorm batch statistics from < 16 rows are too noisy
HEAVY_DROPOUT = 0.5  # dropout >= 0.5 on top of BN and L2 usually underfits an MLP

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


def _penalty_dominates(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    share, most = ev["penalty_share"], run.th["max_penalty_share"]
    if share is None or share <= most:
        return None
    return _warn(
        "penalty_dominates",
        f"The regularization penalty is {share:.0%} of the loss (> {most:.0%}): the optimizer "
        "mostly shrinks weights instead of fitting the data. Lower model.l1/model.l2.",
    )


def _val_loss_includes_penalty(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    if str(ev["monitor"]).removeprefix("val_") != "loss" or not run.has_penalty():
        return None
    return _warn(
        "val_loss_includes_penalty",
        f"Early stopping monitors {ev['monitor']}, which includes the L1/L2 penalty: it is not comparable "
        "across penalty strengths. val_loss includes the penalty; rank runs on val_data_loss.",
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


def _dropout_bn_l2_stack(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    rates = run.dropout_rates()
    if not (rates and max(rates) >= HEAVY_DROPOUT and run.uses_batchnorm() and run.kernel_l2() > 0):
        return None
    return _warn(
        "dropout_bn_l2_stack",
        f"Dropout {fmt(max(rates))} stacked on BatchNorm and L2: three regularizers at once usually underfit, "
        "and dropout before BatchNorm shifts its statistics between training and inference.",
    )


def _l2_before_batchnorm(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    if not run.l2_before_batchnorm():
        return None
    return _warn(
        "l2_before_batchnorm",
        "L2 on kernels that feed BatchNormalization barely regularizes: BN makes the output scale-invariant "
        "in those weights, so L2 mostly acts as a learning-rate increase. Dropout or the output layer's "
        "penalty regularize; compare runs on val_data_loss.",
    )


def _val_set_too_small(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    """One validation sample moves accuracy by more than min_delta (on an accuracy monitor) or the gap tolerance."""
    grain, min_delta = ev["metric_granularity"], ev["min_delta"]
    if grain is None:
        return None
    parts = []
    if "acc" in str(ev["monitor"]) and grain > min_delta:
        parts.append(
            f"early stopping on {ev['monitor']} counts a single flipped sample as an improvement "
            f"(min_delta {fmt(min_delta)}); set min_delta to at least {fmt(grain)}"
        )
    if grain > ev["gap_tolerance"]:
        parts.append(f"the gap test (gap_tolerance {fmt(ev['gap_tolerance'])}) is decided by one sample")
    if not parts:
        return None
    return _warn(
        "val_set_too_small",
        f"With n_val = {ev['n_val']}, one validation sample moves the accuracy by {fmt(grain)}: "
        + "; ".join(parts)
        + ". Raise data.val_fraction.",
    )


def _noisy_validation(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    noise, improvement, min_delta = ev["val_noise"], ev["recent_mean_improvement"], ev["min_delta"]
    if noise is None or noise <= min_delta or (improvement and noise <= abs(improvement)):
        return None
    return _warn(
        "noisy_validation",
        f"{ev['monitor']} jitters by {fmt(noise)} epoch to epoch over the last {ev['curve_window']} epochs, "
        f"more than min_delta ({fmt(min_delta)}) and than its mean improvement "
        f"({fmt(improvement)}): early stopping reacts to noise. Set min_delta near {fmt(noise)} or "
        "enlarge the validation set.",
    )


def _early_stop_fired_early(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    best = ev["best_epoch"]
    if not (
        ev["stopped_early"] and best is not None and int(best) <= _start_from_epoch(run) + EARLY_BEST_EPOCHS
    ):
        return None
    return _warn(
        "early_stop_fired_early",
        f"Early stopping fired with the best epoch at {best}: validation never improved after the first "
        "epochs. The learning rate may be too high or the validation curve too noisy; raise patience or "
        "start_from_epoch to rule out warm-up noise.",
    )


def _not_learning(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    if verdict != "not_learning" or ev["baseline_val_error"] is None or ev["val_error"] is None:
        return None
    base = "mean" if run.metric == "mae" else "majority-class"
    return _warn(
        "not_learning",
        f"val error {fmt(ev['val_error'])} is no better than the {base} predictor's "
        f"{fmt(ev['baseline_val_error'])}: the model has learned nothing usable.",
    )


def _label_noise(run: Run, ev: dict[str, Any], verdict: str) -> WarningEntry | None:
    noise = finite_float(run.cfg("data.label_noise")) or 0.0
    if noise <= 0:
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
    _penalty_dominates,
    _val_loss_includes_penalty,
    _patience_never_fires,
    _batchnorm_small_batch,
    _dropout_bn_l2_stack,
    _l2_before_batchnorm,
    _val_set_too_small,
    _noisy_validation,
    _early_stop_fired_early,
    _not_learning,
    _label_noise,
)
