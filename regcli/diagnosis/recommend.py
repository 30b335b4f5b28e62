"""Recommendations: each turns ONE knob to a concrete value computed from the config.

`recommendations(run, ev, verdict)` picks the plan for the verdict (`PLANS`), most useful first;
each step is a small function that returns a recommendation dict (`knob`, `from`, `to`,
`text`) or None when it does not apply to this model (no dropout to lower, say).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from regcli.diagnosis.evidence import IMPROVING_REL_DROP
from regcli.diagnosis.inputs import DROPOUT_LAYERS, Run
from regcli.diagnosis.reading import worth_training_longer
from regcli.diagnosis.render import fmt
from regcli.values import finite_float

REG_STEP = 10.0  # one decade per step: L1/L2 strengths act on a log scale
L2_START = 1e-4  # first L2 to try from 0: the usual starting point for Adam-trained MLPs
L1_START = 1e-5  # first L1 to try from 0: L1 bites harder than L2 at the same factor
REG_FLOOR = 1e-6  # lowering below this is the same as 0 for these models: suggest 0 instead
DROPOUT_START = 0.2  # first dropout rate to try
DROPOUT_STEP = 0.1  # raise dropout in steps of 0.1 ...
DROPOUT_MAX = 0.5  # ... up to 0.5; beyond that an MLP mostly underfits
HEAVY_L2 = 1e-3  # a kernel L2 this strong is lowered before dropout when the model underfits
HEAVY_DROPOUT_FOR_BIAS = 0.3  # an underfit model with dropout this high gets it lowered before widening

Rec = dict[str, Any]


MAX_RECOMMENDATIONS = 3  # one story: the next knob, and two fallbacks if it does not help


def recommendations(run: Run, ev: dict[str, Any], verdict: str) -> list[Rec]:
    """The verdict's plan, steps that do not apply dropped, duplicates (same knob) kept once."""
    plan = PLANS.get(verdict, _not_learning)
    recs, seen = [], set()
    for step in plan(run, ev):
        rec = _for_builder(run, step)
        if rec is None or (rec["knob"] is not None and (rec["knob"], str(rec["to"])) in seen):
            continue
        seen.add((rec["knob"], str(rec["to"])))
        recs.append(rec)
    return recs


# --------------------------------------------------------------------------- one plan per verdict


def _good_fit(run: Run, ev: dict[str, Any]) -> list[Rec | None]:
    recs = [_rec(None, None, None, f"ship it; run `regcli test {run.run_dir}` once for the final exam")]
    if ev["best_is_last"] and ev["ran_out_of_epochs"] and worth_training_longer(ev):
        recs.append(_train_longer(run, ev))
    return recs


def _high_variance(run: Run, ev: dict[str, Any]) -> list[Rec | None]:
    """Regularize, one knob.

    L2 on kernels feeding BatchNormalization barely regularizes, and a first L2 of 1e-4 from 0
    changed nothing measurable on the overfit scenario where dropout 0.2 gained beyond seed
    noise: dropout comes first there; an L2 already in use is raised a decade first.
    """
    if run.l2_before_batchnorm() or (run.kernel_l2() == 0 and run.kernel_l1() == 0):
        regularize = [_raise_dropout(run), _raise_l2(run)]
    else:
        regularize = [_raise_l2(run), _raise_dropout(run)]
    return [_early_stopping_hygiene(run, ev), *regularize, _more_data(run, ev), _lower_patience(run, ev)]


def _high_bias(run: Run, ev: dict[str, Any]) -> list[Rec | None]:
    """Less regularization where it is the fault, else capacity; more epochs only where they pay.

    Measured on a too-small model (hidden [2], 4 classes): "train longer" gained 0.04 in
    val_data_loss where widening gained 0.16, so epochs come first only when the curve's
    extrapolation promises a real gain (`worth_training_longer`).
    """
    if ev["over_regularized"]:
        return [_lower_penalty(run), _lower_dropout(run), _widen(run)]
    first: list[Rec | None] = [_train_longer(run, ev)] if worth_training_longer(ev) else []
    heavy_penalty = (ev["penalty_share"] or 0.0) > run.th["max_penalty_share"] or run.kernel_l2() >= HEAVY_L2
    if heavy_penalty:
        first.append(_lower_penalty(run))
    if max(run.dropout_rates(), default=0.0) >= HEAVY_DROPOUT_FOR_BIAS:
        first.append(_lower_dropout(run))
    return [*first, _widen(run), _lower_dropout(run), _lower_penalty(run), _train_longer(run, ev)]


def _high_bias_and_variance(run: Run, ev: dict[str, Any]) -> list[Rec | None]:
    if ev["focus"] == "variance":  # the gap is clearly the larger: close it first
        return _high_variance(run, ev)
    fix_bias_first = _rec(
        None,
        None,
        None,
        f"don't add regularization: both errors are high (avoidable bias {fmt(ev['avoidable_bias'])}, "
        f"gap {fmt(ev['gap'])}) — fix bias first",
    )
    return [fix_bias_first, *_high_bias(run, ev)]


def _diverged(run: Run, ev: dict[str, Any]) -> list[Rec | None]:
    where = f" at epoch {ev['first_nonfinite_epoch']}" if ev["first_nonfinite_epoch"] else ""
    # unscaled data first: measured on the diverged scenario, a 10x lower learning rate still gave NaN
    recs = [_standardize(run, "unscaled features and targets make the loss explode")]
    recs.append(_learning_rate(run, "down", f"the loss became NaN/inf{where}"))
    recs.append(
        _rec(None, None, None, "check the data for NaN/inf values and extreme feature or target scales")
    )
    return recs


def _not_learning(run: Run, ev: dict[str, Any]) -> list[Rec | None]:
    recs: list[Rec | None] = [_standardize(run, "unscaled features saturate or kill the units")]
    if ev["over_regularized"]:
        recs.append(_lower_penalty(run))
    recs.append(_unstick_learning_rate(run, ev))
    recs.append(_widen(run))
    noise = finite_float(run.cfg("data.label_noise")) or 0.0
    if noise > 0:
        recs.append(
            _rec(
                "data.label_noise",
                noise,
                0.0,
                f"lower data.label_noise from {fmt(noise)} to 0: that share of training labels is flipped",
            )
        )
    base = "mean" if run.metric == "mae" else "majority-class"
    recs.append(
        _rec(
            None,
            None,
            None,
            f"check the labels and features (data.target, data.source): val error {fmt(ev['val_error'])} "
            f"is no better than the {base} predictor's {fmt(ev['baseline_val_error'])}",
        )
    )
    return recs


def _standardize(run: Run, why: str) -> Rec | None:
    if run.cfg("data.standardize", True) is not False:
        return None
    return _rec("data.standardize", False, True, f"set data.standardize to true: {why}")


PLANS: dict[str, Callable[[Run, dict[str, Any]], list[Rec | None]]] = {
    "good_fit": _good_fit,
    "high_variance": _high_variance,
    "high_bias": _high_bias,
    "high_bias_and_variance": _high_bias_and_variance,
    "diverged": _diverged,
    "not_learning": _not_learning,
}


# --------------------------------------------------------------------------- one knob each


def _for_builder(run: Run, rec: Rec | None) -> Rec | None:
    """A model knob that a `model.builder` function does not take is advice for its code, not a --set."""
    knob = rec and rec["knob"]
    if not knob or run.builder is None or not knob.startswith("model."):
        return rec
    key = knob.split(".")[1]
    if key in ("builder_args", "task") or run.passes(key):
        return rec
    function = run.builder.rpartition(":")[2]
    return _rec(None, None, None, f"{rec['text']} — in your builder's code: {function}() takes no `{key}` "
                f"parameter (add one to let regcli turn it, or change the model by hand)")


def _rec(knob: str | None, old: Any, new: Any, text: str) -> Rec:
    return {"knob": knob, "from": old, "to": new, "text": text}


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def _step_up(x: float, start: float) -> float:
    return start if x <= 0 else _round(x * REG_STEP)


def _step_down(x: float) -> float:
    y = x / REG_STEP
    return 0.0 if y < REG_FLOOR else _round(y)


def _widest_dense(run: Run) -> tuple[int | None, int | None]:
    """(index, units) of the widest dense layer in model.layers."""
    best = (None, None)
    for i, layer in enumerate(run.layers or []):
        units = layer.get("units")
        if layer.get("type") == "dense" and units and (best[1] is None or units > best[1]):
            best = (i, int(units))
    return best


def _raise_l2(run: Run) -> Rec | None:
    if run.layers is not None:
        cur = run.kernel_l2()
        new = _step_up(cur, L2_START)
        return _rec(
            "model.layers",
            cur,
            new,
            f"raise kernel_regularizer.l2 of the dense/conv layers in model.layers from {fmt(cur)} to {fmt(new)}",
        )
    l1, l2 = run.kernel_l1(), run.kernel_l2()
    if l2 == 0 and l1 > 0:  # an L1-only model: strengthen the penalty it already uses
        new = _step_up(l1, L1_START)
        return _rec("model.l1", l1, new, f"raise model.l1 from {fmt(l1)} to {fmt(new)}")
    new = _step_up(l2, L2_START)
    verb = "add L2: set" if l2 == 0 else "raise"
    return _rec("model.l2", l2, new, f"{verb} model.l2 from {fmt(l2)} to {fmt(new)}")


def _lower_penalty(run: Run) -> Rec | None:
    l1, l2 = run.kernel_l1(), run.kernel_l2()
    if run.layers is not None:
        if l2 <= 0:
            return None
        new = _step_down(l2)
        return _rec(
            "model.layers",
            l2,
            new,
            f"lower kernel_regularizer.l2 of the layers in model.layers from {fmt(l2)} to {fmt(new)}",
        )
    if l2 > 0:
        new = _step_down(l2)
        return _rec("model.l2", l2, new, f"lower model.l2 from {fmt(l2)} to {fmt(new)}")
    if l1 > 0:
        new = _step_down(l1)
        return _rec("model.l1", l1, new, f"lower model.l1 from {fmt(l1)} to {fmt(new)}")
    return None


def _raise_dropout(run: Run) -> Rec | None:
    if run.layers is not None:
        return _raise_layer_dropout(run)
    if not run.hidden and run.builder is None:
        return None
    rate = finite_float(run.cfg("model.dropout")) or 0.0
    if rate >= DROPOUT_MAX:
        return None
    if rate == 0 and run.builder is not None:
        return _rec("model.dropout", 0.0, DROPOUT_START, f"add dropout: set model.dropout from 0 to {DROPOUT_START}")
    if rate == 0:
        return _rec(
            "model.dropout",
            0.0,
            DROPOUT_START,
            f"add dropout {DROPOUT_START} to the hidden blocks (model.dropout from 0 to {DROPOUT_START}; "
            f"the {max(run.hidden)}-unit block is the widest)",
        )
    new = _round(min(DROPOUT_MAX, rate + DROPOUT_STEP))
    return _rec("model.dropout", rate, new, f"raise model.dropout from {fmt(rate)} to {fmt(new)}")


def _raise_layer_dropout(run: Run) -> Rec | None:
    """In explicit model.layers: raise the lowest dropout rate, or add one after the widest dense layer."""
    layers = run.layers or []
    rates = [
        (i, finite_float(la.get("rate")) or 0.0) for i, la in enumerate(layers) if la.get("type") in DROPOUT_LAYERS
    ]
    if not rates:
        idx, units = _widest_dense(run)
        where = (
            f"the {units}-unit dense layer (model.layers[{idx}])" if idx is not None else "the widest layer"
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
        f"raise the dropout rate of model.layers[{i}] from {fmt(rate)} to {fmt(new)}",
    )


def _lower_dropout(run: Run) -> Rec | None:
    rates = run.dropout_rates()
    if not rates or max(rates) <= 0:
        return None
    rate = max(rates)
    # roughly halve, on the 0.1 grid: 0.5 -> 0.2, 0.2 -> 0.1, 0.1 -> 0
    new = math.floor(round(rate * 10, 6) / 2) / 10
    if run.layers is not None:
        i = next(i for i, la in enumerate(run.layers) if (finite_float(la.get("rate")) or 0.0) == rate)
        return _rec(
            "model.layers",
            rate,
            new,
            f"lower the dropout rate of model.layers[{i}] from {fmt(rate)} to {fmt(new)}",
        )
    return _rec("model.dropout", rate, new, f"lower model.dropout from {fmt(rate)} to {fmt(new)}")


def _widen(run: Run) -> Rec | None:
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
    if not hidden and run.builder is not None:
        return _rec("model.hidden", None, None, "give the model more capacity (wider or more layers)")
    if not hidden:
        return _rec("model.hidden", [], [64], "add a hidden block: set model.hidden from [] to [64]")
    new = [2 * u for u in hidden]
    return _rec("model.hidden", hidden, new, f"widen model.hidden from {hidden} to {new}")


def _train_longer(run: Run, ev: dict[str, Any]) -> Rec | None:
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


def _early_stopping_hygiene(run: Run, ev: dict[str, Any]) -> Rec | None:
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


def _lower_patience(run: Run, ev: dict[str, Any]) -> Rec | None:
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


def _more_data(run: Run, ev: dict[str, Any]) -> Rec:
    fraction = finite_float(run.cfg("data.train_fraction")) or 1.0
    if fraction < 1.0:
        return _rec(
            "data.train_fraction",
            fraction,
            1.0,
            f"use all the training data: raise data.train_fraction from {fmt(fraction)} to 1.0",
        )
    n = f" (n_train = {ev['n_train']})" if ev["n_train"] else ""
    return _rec(None, None, None, f"get more training data{n}: the gap shrinks as the training set grows")


def _unstick_learning_rate(run: Run, ev: dict[str, Any]) -> Rec | None:
    """A training loss that barely moved: raise a low learning rate; lower any other (it may bounce)."""
    moved = ev["train_rel_drop_window"] is not None and ev["train_rel_drop_window"] > IMPROVING_REL_DROP
    if moved:
        return None
    lr = finite_float(run.cfg("training.learning_rate")) or 1e-3
    if lr < 1e-3:
        return _learning_rate(run, "up", "the training loss barely moved")
    return _learning_rate(run, "down", "a learning rate this high can bounce around without learning")


def _learning_rate(run: Run, direction: str, why: str) -> Rec | None:
    lr = finite_float(run.cfg("training.learning_rate"))
    if lr is None:
        return None
    new = _round(lr / 10) if direction == "down" else _round(lr * 10)
    verb = "lower" if direction == "down" else "raise"
    return _rec(
        "training.learning_rate",
        lr,
        new,
        f"{verb} training.learning_rate from {fmt(lr)} to {fmt(new)}: {why}",
    )
