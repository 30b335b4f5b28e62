"""A diagnosis from learning curves alone (a Keras CSVLogger file), honest about what they cannot tell.

A run directory records what a CSVLogger file does not, and each gap changes what can be said:

- **No clean training curve.** `accuracy`/`mae` and `loss` are the epoch's running mean as trained:
  dropout active, BatchNorm on batch statistics, the weights still moving. They overstate the
  training error the model has in inference mode (regcli measured 0.22 vs 0.10 loss on the same
  data), so avoidable bias is overstated and the gap understated: a high gap stands, a high bias
  or a good fit may be dropout's doing. The caveat says which, for this verdict.
- **No penalty split.** `loss` and `val_loss` include any L1/L2 penalty and there is no
  `data_loss`: the penalty's share, hence over-regularization, cannot be read.
- **No sample sizes.** Without `n_train`/`n_val` no error has a standard error, and the verdict
  ignores sampling noise; given, each side is held to two standard errors as for a run directory.
- **No shipped epoch, no config.** The epoch diagnosed is the one with the lowest val_loss (what
  `EarlyStopping(restore_best_weights=True)` keeps); the model's dropout rate, L2 factor and widths
  are unknown, so each recommendation names one knob and the step to take, not its current value.
- **No majority-class baseline**, so `not_learning` is not called from the baseline.

`diagnose_curves(history, ...)` runs the one diagnosis (`regcli.diagnosis.diagnose`) on the curves,
then adds these caveats as the first warnings, lists what is unknown in the evidence, and replaces
the config-based recommendations by curves-only ones. Pure: no disk, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from regcli.diagnosis import diagnose
from regcli.diagnosis.reading import worth_training_longer
from regcli.diagnosis.recommend import DROPOUT_MAX, DROPOUT_START, DROPOUT_STEP, L2_START, MAX_RECOMMENDATIONS
from regcli.diagnosis.render import fmt

SOURCE = "keras.callbacks.CSVLogger"
PATIENCE = 5  # the EarlyStopping patience suggested: regcli's default, enough to ride out a noisy epoch or two
# What a CSVLogger file does not record, by the name a run directory gives it.
UNKNOWN = ("clean_train_error", "data_loss", "penalty_share", "shipped_epoch", "config", "baseline_val_error")

Rec = dict[str, Any]


def diagnose_curves(
    history: pd.DataFrame,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    thresholds: Mapping[str, Any] | None = None,
    name: str | None = None,
    column: str | None = None,
    epochs_without_validation: int = 0,
) -> dict[str, Any]:
    """The diagnosis of a CSVLogger file's curves: verdict, headline, caveats first, curves-only advice.

    Args:
        history: `epoch` (1-based), `loss`, `val_loss` and `accuracy`/`val_accuracy` or `mae`/`val_mae`.
        n_train: Training rows, for the training error's standard error. Defaults to `None` (unknown).
        n_val: Validation rows, for the validation error's. Defaults to `None` (unknown).
        thresholds: `diagnosis:` keys (target_error, bias_tolerance, gap_tolerance, ...); the rest keep
            `DiagnosisSpec`'s defaults. Defaults to `None`.
        name: The file, as the diagnosis names it. Defaults to `None`.
        column: The metric's name in the file (`binary_accuracy`), for the caveats. Defaults to the
            regcli name (`accuracy` or `mae`).
        epochs_without_validation: Rows left out because they ran no validation. Defaults to `0`.

    Returns:
        The same JSON-able dict as `diagnose`, its `evidence` adding `history_source`, `diagnosed_epoch`,
        `diagnosed_epoch_rule`, `epoch_numbering` and `unknown` (what the file does not record).
    """
    metric = "mae" if "mae" in history.columns else "accuracy"
    best = _lowest_val_loss_epoch(history)
    summary = {
        "task": "regression" if metric == "mae" else None,  # None: "classification", read from the columns
        "best_epoch": best,
        "shipped_epoch": best,
        "epochs_run": len(history),
        "monitor": "val_loss",
        "n_train": n_train,
        "n_val": n_val,
        "history_source": SOURCE,
    }
    result = diagnose(history, summary, {"diagnosis": dict(thresholds or {})}, run_dir=name)
    verdict, ev = result["verdict"], result["evidence"]
    ev["shipped_epoch"] = None  # unknown: the epoch diagnosed is `diagnosed_epoch`
    ev.update(_unknowns(ev, n_train, n_val, epochs_without_validation))
    others = [w for w in result["warnings"] if w["code"] != "clean_metrics_missing"]  # the first caveat says it
    tolerances_set = bool({"bias_tolerance", "gap_tolerance"} & set(thresholds or {}))
    result["warnings"] = caveats(ev, verdict, column or metric, tolerances_set=tolerances_set) + others
    result["recommendations"] = curves_recommendations(ev, verdict)
    return result


def _lowest_val_loss_epoch(history: pd.DataFrame) -> int | None:
    """The first epoch with the lowest finite val_loss (Keras's EarlyStopping keeps the first best)."""
    val = pd.to_numeric(history["val_loss"], errors="coerce").to_numpy(dtype=float)
    finite = np.flatnonzero(np.isfinite(val))
    if len(finite) == 0:
        return None
    return int(history["epoch"].iloc[finite[np.argmin(val[finite])]])


def _unknowns(ev: dict[str, Any], n_train: Any, n_val: Any, skipped: int) -> dict[str, Any]:
    """The evidence that says what the curves cannot tell, and how this diagnosis stood in for it."""
    found: dict[str, Any] = {
        "diagnosed_epoch": ev.get("best_epoch") or ev.get("last_epoch"),
        "diagnosed_epoch_rule": (
            "the epoch with the lowest val_loss, whose weights EarlyStopping(restore_best_weights=True) keeps; "
            "the file does not record which epoch's weights the model holds"
        ),
        "epoch_numbering": "1-based: CSVLogger's epoch 0 is epoch 1",
        "unknown": [*UNKNOWN, *(key for key, n in (("n_train", n_train), ("n_val", n_val)) if n is None)],
    }
    if ev.get("gap_se") is None and ev.get("avoidable_bias_se") is None:
        found["uncertainty_method"] = "none: no sample sizes (--n-train, --n-val), so the verdict ignores sampling noise"
    if skipped:
        found["epochs_without_validation"] = skipped
    return found


# --------------------------------------------------------------------------- caveats: what the curves cannot tell


def caveats(
    ev: Mapping[str, Any], verdict: str, column: str, *, tolerances_set: bool = False
) -> list[dict[str, str]]:
    """The warnings a curves-only diagnosis opens with; none for a diverged run (its numbers mean nothing).

    `tolerances_set`: the user passed bias_tolerance or gap_tolerance, so a regression's tolerances
    are taken to be in the target's units.
    """
    if verdict == "diverged":
        return []
    found = [_as_trained(ev, verdict, column), _no_penalty_split(ev, verdict, column)]
    if ev.get("gap_se") is None:
        found.append(_sampling_noise(ev))
    if ev.get("metric") == "mae" and not tolerances_set:
        found.append(_target_units(ev, column))
    return found


def _bias_first(ev: Mapping[str, Any], verdict: str) -> bool:
    return verdict == "high_bias" or (verdict == "high_bias_and_variance" and ev.get("focus") != "variance")


def _as_trained(ev: Mapping[str, Any], verdict: str, column: str) -> dict[str, str]:
    if _bias_first(ev, verdict):
        reading = (
            f"part of the avoidable bias {fmt(ev['avoidable_bias'])} may be dropout's and the running mean's, "
            "not underfitting."
        )
    elif verdict == "good_fit":
        reading = "a gap smaller than that overstatement reads as a good fit."
    else:
        reading = "the gap is over its tolerance even so, and the verdict stands."
    return {
        "code": "as_trained_train_curve",
        "text": (
            f"There is no clean training curve: the file's {column} and loss are each epoch's running mean as "
            "trained (dropout active, BatchNorm on batch statistics, the weights still moving), which overstates "
            f"the training error the model has in inference mode. Avoidable bias is overstated and the gap "
            f"understated: {reading} model.evaluate(x_train, y_train) on the weights you keep gives the clean "
            "training error."
        ),
    }


def _no_penalty_split(ev: Mapping[str, Any], verdict: str, column: str) -> dict[str, str]:
    if _bias_first(ev, verdict):
        reading = "if the model has an L1/L2 kernel_regularizer, this high bias may be over-regularization."
    else:
        reading = (
            f"compare runs with different L1/L2 strengths on val_{column}, not on val_loss, which carries "
            "each run's own penalty."
        )
    return {
        "code": "no_penalty_split",
        "text": (
            "There is no penalty split: loss and val_loss include any L1/L2 penalty and the file has no "
            f"data_loss, so the penalty's share of the loss, and over-regularization, cannot be read from it: {reading}"
        ),
    }


def _sampling_noise(ev: Mapping[str, Any]) -> dict[str, str]:
    missing = [flag for flag, key in (("--n-train", "n_train"), ("--n-val", "n_val")) if ev.get(key) is None]
    gap = f"a gap over gap_tolerance {fmt(ev['gap_tolerance'])}"
    sides = gap if ev.get("avoidable_bias_se") is not None else (
        f"avoidable bias over bias_tolerance {fmt(ev['bias_tolerance'])}, or {gap},"
    )
    return {
        "code": "sampling_noise_ignored",
        "text": (
            f"The file records no sample sizes, so the verdict ignores sampling noise: {sides} counts as high "
            f"however few rows measured it. Pass {' and '.join(missing)} (the rows of each split) to call a side "
            "high only when it is clear of two standard errors, as for a run directory."
        ),
    }


def _target_units(ev: Mapping[str, Any], column: str) -> dict[str, str]:
    return {
        "code": "target_units_unknown",
        "text": (
            f"The file's {column} is in the target's own units, and bias_tolerance {fmt(ev['bias_tolerance'])} and "
            f"gap_tolerance {fmt(ev['gap_tolerance'])} are fractions of a standardized target's std (regcli "
            "standardizes targets): unless yours was standardized, pass them in its units, e.g. --set "
            "diagnosis.gap_tolerance=X with X about 2% of the target's std (and bias_tolerance about 5%)."
        ),
    }


# --------------------------------------------------------------------------- advice: one knob each, value unknown


def curves_recommendations(ev: Mapping[str, Any], verdict: str) -> list[Rec]:
    """The verdict's plan, in Keras terms: the knob (its regcli name), the step, never a current value."""
    plan = PLANS.get(verdict, _not_learning)
    return [rec for rec in plan(ev) if rec is not None][:MAX_RECOMMENDATIONS]


def _rec(knob: str | None, to: Any, text: str) -> Rec:
    """A recommendation whose `from` is unknown: the file does not record the model's settings."""
    return {"knob": knob, "from": None, "to": to, "text": text}


def _keep_best(ev: Mapping[str, Any]) -> Rec | None:
    best, last = ev.get("val_curve_best_epoch"), ev.get("last_epoch")
    if not ev.get("val_rose_after_best") or best is None or best == last:
        return None
    return _rec(
        "training.early_stopping.restore_best_weights",
        True,
        f"keep the epoch-{best} weights: val_loss was lowest there and rose {ev['val_rise_after_best_rel']:.0%} "
        f"by epoch {last}; keras.callbacks.EarlyStopping(monitor=\"val_loss\", patience={PATIENCE}, "
        "restore_best_weights=True) keeps them (the file does not say whether yours did)",
    )


def _add_dropout() -> Rec:
    return _rec(
        "model.dropout",
        DROPOUT_START,
        f"add dropout: keras.layers.Dropout({DROPOUT_START}) after each hidden Dense layer, or raise the rate "
        f"the model has by {DROPOUT_STEP} (up to {DROPOUT_MAX})",
    )


def _add_l2() -> Rec:
    return _rec(
        "model.l2",
        L2_START,
        f"add L2: kernel_regularizer=keras.regularizers.L2({fmt(L2_START)}) on the hidden Dense layers, or raise "
        "the factor the model has tenfold",
    )


def _train_longer(ev: Mapping[str, Any]) -> Rec | None:
    n = ev.get("n_epochs_recorded")
    if not (ev.get("best_is_last") and worth_training_longer(ev) and n):
        return None
    return _rec(
        "training.epochs",
        2 * n,
        f"train longer: val_loss was still falling at the last epoch ({ev['last_epoch']}); doubling the epochs "
        f"from {n} to {2 * n} is projected to lower it by {ev['doubling_epochs_gain_rel']:.0%}",
    )


def _overfits(ev: Mapping[str, Any]) -> list[Rec | None]:
    """Dropout before L2: on the overfit scenario dropout 0.2 gained beyond seed noise, a first L2 of 1e-4 did not."""
    more_data = _rec(None, None, "get more training data: the gap shrinks as the training set grows")
    return [_keep_best(ev), _add_dropout(), _add_l2(), more_data]


def _underfits(ev: Mapping[str, Any]) -> list[Rec | None]:
    """Less of what holds the fit back (and inflates the as-trained error), then capacity."""
    return [
        _train_longer(ev),
        _rec(
            "model.dropout",
            None,
            "if the model has dropout, halve its rate (0.4 to 0.2, say): dropout holds the fit back and inflates "
            "the as-trained training error this verdict reads",
        ),
        _rec("model.hidden", None, "add capacity: double the units of each hidden Dense layer, or add a layer"),
        _rec(
            "model.l2",
            None,
            "if the model has an L1/L2 kernel_regularizer, divide its factor by 10: with no data_loss in the file, "
            "a penalty that dominates the loss cannot be ruled out",
        ),
    ]


def _both(ev: Mapping[str, Any]) -> list[Rec | None]:
    if ev.get("focus") == "variance":  # the gap is clearly the larger: close it first
        return _overfits(ev)
    bias_first = _rec(
        None,
        None,
        f"don't add regularization: both errors are high (avoidable bias {fmt(ev['avoidable_bias'])}, "
        f"gap {fmt(ev['gap'])}) — fix bias first",
    )
    return [bias_first, *_underfits(ev)]


def _good_fit(ev: Mapping[str, Any]) -> list[Rec | None]:
    epoch = ev.get("val_curve_best_epoch")
    ship = _rec(None, None, f"nothing to change on these curves: evaluate the epoch-{epoch} weights once on your test set")
    return [_keep_best(ev), ship, _train_longer(ev)]


def _diverged(ev: Mapping[str, Any]) -> list[Rec | None]:
    where = f" at epoch {ev['first_nonfinite_epoch']}" if ev.get("first_nonfinite_epoch") else ""
    return [
        _rec(
            "data.standardize",
            True,
            "if the features (or a regression's targets) are not standardized, standardize them, the scaler fit "
            "on the training split: unscaled inputs make the loss explode",
        ),
        _rec("training.learning_rate", None, f"lower the learning rate tenfold: the loss became NaN/inf{where}"),
        _rec(None, None, "check the data for NaN/inf values and extreme feature or target scales"),
    ]


def _not_learning(ev: Mapping[str, Any]) -> list[Rec | None]:
    return [_rec(None, None, "check the labels and features: no validation error was measured")]


PLANS: dict[str, Callable[[Mapping[str, Any]], list[Rec | None]]] = {
    "good_fit": _good_fit,
    "high_variance": _overfits,
    "high_bias": _underfits,
    "high_bias_and_variance": _both,
    "diverged": _diverged,
    "not_learning": _not_learning,
}
