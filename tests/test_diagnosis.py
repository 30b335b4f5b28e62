"""Diagnosis and early-stopping replay, on hand-written histories (no training)."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regcli.diagnosis import diagnose, render_markdown
from regcli.errors import BadInputError
from regcli.replay import parse_replay_arg, replay_early_stopping, replay_report

# --------------------------------------------------------------------------- helpers

BASE_CONFIG = {
    "seed": 0,
    "data": {"source": "breast_cancer", "label_noise": 0.0, "train_fraction": 1.0, "standardize": True},
    "model": {
        "task": "auto",
        "hidden": [256, 128],
        "layers": None,
        "batchnorm": False,
        "dropout": 0.2,
        "l1": 0.0,
        "l2": 1e-4,
        "bias_l2": 0.0,
        "activity_l2": 0.0,
    },
    "training": {
        "epochs": 100,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "early_stopping": {
            "enabled": True,
            "monitor": "val_loss",
            "mode": "auto",
            "min_delta": 0.0,
            "patience": 5,
            "restore_best_weights": True,
            "start_from_epoch": 0,
            "baseline": None,
        },
    },
    "diagnosis": {"target_error": None, "bias_tolerance": 0.05, "gap_tolerance": 0.02},
}


def make_config(**dotted):
    """BASE_CONFIG with dotted overrides: make_config(**{"model.l2": 1e-3})."""
    cfg = copy.deepcopy(BASE_CONFIG)
    for key, value in dotted.items():
        node = cfg
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return cfg


def make_history(val, train=None, *, task="binary", clean=True, penalty=0.01, val_err=None, train_err=None):
    """One row per epoch from a validation loss curve (and a training one, default: falling).

    Errors default to loss / 4 so accuracy columns move with the losses.
    """
    val = np.asarray(val, dtype=float)
    n = len(val)
    train = np.linspace(0.6, 0.2, n) if train is None else np.asarray(train, dtype=float)
    val_err = val / 4 if val_err is None else np.asarray(val_err, dtype=float)
    train_err = train / 4 if train_err is None else np.asarray(train_err, dtype=float)
    metric = "mae" if task == "regression" else "accuracy"

    def to_metric(err):
        return err if metric == "mae" else 1.0 - err

    h = pd.DataFrame(
        {
            "epoch": np.arange(1, n + 1),
            "loss": train * 1.1 + penalty,
            "val_loss": val + penalty,
            "data_loss": train * 1.1,
            "val_data_loss": val,
            metric: to_metric(train_err * 1.1),
            f"val_{metric}": to_metric(val_err),
            "lr": 1e-3,
            "seconds": 0.1,
        }
    )
    if clean:
        h["clean_loss"] = train + penalty
        h["clean_data_loss"] = train
        h[f"clean_{metric}"] = to_metric(train_err)
    return h


def make_summary(train_error=0.02, val_error=0.03, *, task="binary", **extra):
    metric = "mae" if task == "regression" else "accuracy"

    def split(err):
        return {"loss": 0.1, "data_loss": 0.09, metric: err if metric == "mae" else 1 - err, "error": err}

    summary = {
        "best_epoch": 20,
        "shipped_epoch": 20,
        "best_value": 0.1,
        "monitor": "val_loss",
        "epochs_run": 25,
        "stopped_early": True,
        "restored_best_weights": True,
        "metrics": {"train": split(train_error), "val": split(val_error)},
        "penalty": 0.01,
        "penalty_share": 0.05,
        "weight_stats": {},
        "n_train": 340,
        "n_val": 500,
        "n_test": 114,
        "seed": 0,
        "backend": "tensorflow",
        "task": task,
        "state": "completed",
        "baseline_val_error": 0.37,
        "n_classes": 2 if task == "binary" else None,
    }
    summary.update(extra)
    return summary


def plateau(n=25, best=20, low=0.1):
    """A validation curve that falls to `low` at epoch `best` and then stays flat (no overfitting)."""
    return [
        max(low, 0.5 - (0.5 - low) * e / best) + (0.0 if e <= best else 0.0005 * ((e - best) % 2))
        for e in range(1, n + 1)
    ]


def codes(result):
    return [w["code"] for w in result["warnings"]]


def knobs(result):
    return [r["knob"] for r in result["recommendations"]]


def run(history=None, summary=None, config=None, **kw):
    history = make_history(plateau()) if history is None else history
    result = diagnose(history, summary or make_summary(), config or make_config(), **kw)
    json.dumps(result, allow_nan=False)  # JSON-able, NaN already None
    return result


# --------------------------------------------------------------------------- verdicts


def test_good_fit_says_ship_it_with_the_run_dir():
    result = run(run_dir="runs/bc-1")
    assert result["verdict"] == "good_fit"
    assert (
        result["recommendations"][0]["text"] == "ship it; run `regcli test runs/bc-1` once for the final exam"
    )
    assert result["recommendations"][0]["knob"] is None
    ev = result["evidence"]
    assert ev["train_error"] == pytest.approx(0.02) and ev["val_error"] == pytest.approx(0.03)
    assert ev["avoidable_bias"] == pytest.approx(0.02) and ev["gap"] == pytest.approx(0.01)


def test_high_bias_lowers_regularization_and_adds_capacity():
    config = make_config(**{"model.l2": 1e-3, "model.dropout": 0.5, "model.hidden": [64]})
    result = run(summary=make_summary(0.15, 0.16), config=config)
    assert result["verdict"] == "high_bias"
    recs = {r["knob"]: r for r in result["recommendations"]}
    assert recs["model.l2"]["text"] == "lower model.l2 from 1e-3 to 1e-4"
    assert (recs["model.l2"]["from"], recs["model.l2"]["to"]) == (1e-3, 1e-4)
    assert recs["model.dropout"]["text"] == "lower model.dropout from 0.5 to 0.2"
    assert recs["model.hidden"]["text"] == "widen model.hidden from [64] to [128]"
    assert recs["model.hidden"]["to"] == [128]
    assert knobs(result).index("model.l2") < knobs(result).index("model.hidden")


def test_high_variance_raises_regularization_one_knob_each():
    result = run(summary=make_summary(0.01, 0.08))
    assert result["verdict"] == "high_variance"
    recs = {r["knob"]: r for r in result["recommendations"]}
    assert recs["model.l2"]["text"] == "raise model.l2 from 1e-4 to 1e-3"
    assert recs["model.l2"]["to"] == pytest.approx(1e-3)
    assert recs["model.dropout"]["text"] == "raise model.dropout from 0.2 to 0.3"
    assert None in knobs(result)  # "get more training data"
    assert knobs(result).index("model.l2") < knobs(result).index("model.dropout")  # no BN: L2 first


def test_high_variance_from_zero_l2_and_zero_dropout():
    config = make_config(**{"model.l2": 0.0, "model.dropout": 0.0})
    result = run(summary=make_summary(0.01, 0.08), config=config)
    recs = {r["knob"]: r for r in result["recommendations"]}
    assert recs["model.l2"]["text"] == "add L2: set model.l2 from 0 to 1e-4"
    assert recs["model.dropout"]["to"] == 0.2
    assert "256-unit" in recs["model.dropout"]["text"]


def test_high_variance_with_batchnorm_tries_dropout_before_l2():
    config = make_config(**{"model.batchnorm": True})
    result = run(summary=make_summary(0.01, 0.08), config=config)
    assert knobs(result).index("model.dropout") < knobs(result).index("model.l2")


def test_high_variance_with_l1_only_raises_l1():
    config = make_config(**{"model.l2": 0.0, "model.l1": 1e-5})
    result = run(summary=make_summary(0.01, 0.08), config=config)
    recs = {r["knob"]: r for r in result["recommendations"]}
    assert recs["model.l1"]["text"] == "raise model.l1 from 1e-5 to 1e-4"
    assert "model.l2" not in recs


def test_high_variance_suggests_the_unused_training_data():
    config = make_config(**{"data.train_fraction": 0.5})
    result = run(summary=make_summary(0.01, 0.08), config=config)
    rec = next(r for r in result["recommendations"] if r["knob"] == "data.train_fraction")
    assert (rec["from"], rec["to"]) == (0.5, 1.0)


def test_high_bias_and_variance_fixes_bias_first_and_adds_no_regularization():
    config = make_config(**{"model.l2": 1e-3})
    result = run(summary=make_summary(0.12, 0.25), config=config)
    assert result["verdict"] == "high_bias_and_variance"
    first = result["recommendations"][0]
    assert first["knob"] is None
    assert first["text"].startswith("don't add regularization: both errors are high")
    assert first["text"].endswith("fix bias first")
    assert not any(
        r["text"].startswith(("raise model.l2", "raise model.dropout", "add"))
        for r in result["recommendations"]
    )
    assert "lower model.l2 from 1e-3 to 1e-4" in [r["text"] for r in result["recommendations"]]


def test_diverged_from_state_lowers_the_learning_rate_ten_fold():
    result = run(summary=make_summary(state="diverged"))
    assert result["verdict"] == "diverged"
    rec = result["recommendations"][0]
    assert (rec["knob"], rec["from"], rec["to"]) == ("training.learning_rate", 1e-3, 1e-4)


def test_diverged_from_nan_loss_even_when_state_says_completed():
    history = make_history(plateau())
    history.loc[9:, ["loss", "val_loss"]] = np.nan
    result = run(history=history)
    assert result["verdict"] == "diverged"
    assert result["evidence"]["first_nonfinite_epoch"] == 10
    assert "epoch 10" in result["recommendations"][0]["text"]


def test_diverged_with_unscaled_data_suggests_standardize():
    result = run(summary=make_summary(state="diverged"), config=make_config(**{"data.standardize": False}))
    assert "data.standardize" in knobs(result)


def test_not_learning_is_checked_before_bias_and_variance():
    # train error 0 and gap 0.37 would read as high variance; the majority-class baseline wins.
    result = run(summary=make_summary(0.0, 0.37))
    assert result["verdict"] == "not_learning"
    assert "not_learning" not in codes(result)  # the verdict and headline say it; no warning repeats it
    assert "no better than the majority-class predictor's 0.37" in result["headline"]
    assert any("majority-class predictor" in r["text"] for r in result["recommendations"])


def test_not_learning_with_flat_training_and_low_lr_raises_the_learning_rate():
    history = make_history([0.69] * 10, train=[0.69] * 10)
    config = make_config(**{"training.learning_rate": 1e-5, "data.label_noise": 0.3})
    result = run(history=history, summary=make_summary(0.37, 0.375), config=config)
    assert result["verdict"] == "not_learning"
    recs = {r["knob"]: r for r in result["recommendations"]}
    assert (recs["training.learning_rate"]["from"], recs["training.learning_rate"]["to"]) == (1e-5, 1e-4)
    assert (recs["data.label_noise"]["from"], recs["data.label_noise"]["to"]) == (0.3, 0.0)
    assert "model.hidden" in recs


def test_thresholds_come_from_the_config():
    summary = make_summary(0.01, 0.08)
    assert (
        run(summary=summary, config=make_config(**{"diagnosis.gap_tolerance": 0.1}))["verdict"] == "good_fit"
    )
    biased = run(summary=make_summary(0.15, 0.16), config=make_config(**{"diagnosis.target_error": 0.12}))
    assert biased["verdict"] == "good_fit"
    assert biased["evidence"]["avoidable_bias"] == pytest.approx(0.03)


# --------------------------------------------------------------------------- curve reading


def test_best_equals_last_means_train_longer():
    n = 100
    history = make_history(np.linspace(0.6, 0.3, n), train=np.linspace(0.7, 0.35, n))
    summary = make_summary(0.15, 0.16, best_epoch=n, shipped_epoch=n, epochs_run=n, stopped_early=False)
    result = run(history=history, summary=summary)
    assert result["verdict"] == "high_bias"
    assert result["evidence"]["best_is_last"] is True
    assert result["evidence"]["still_improving"] is True
    first = result["recommendations"][0]
    assert first["knob"] == "training.epochs" and (first["from"], first["to"]) == (100, 200)
    assert "still improving at epoch 100" in first["text"] and "200" in first["text"]
    assert "compute-bound; training longer should help" in result["evidence"]["curve_reading"]
    assert "lower it by 50% or more" in result["evidence"]["curve_reading"]  # the second half gained 0.15 of 0.3


def test_early_stop_while_training_still_falls_raises_patience():
    # early stopping fired (a min_delta larger than the per-epoch gain, say) while both curves still fall
    history = make_history(np.linspace(0.6, 0.3, 25), train=np.linspace(0.7, 0.35, 25))
    result = run(history=history, summary=make_summary(0.15, 0.16))
    rec = result["recommendations"][0]
    assert (rec["knob"], rec["from"], rec["to"]) == ("training.early_stopping.patience", 5, 10)


def test_an_underfit_model_whose_validation_has_flattened_is_widened_before_training_longer():
    """Measured: hidden [2] on 4 classes, "train longer" gained 0.04 in val_data_loss, widening 0.16."""
    history = make_history(plateau(25, 20), train=np.linspace(0.7, 0.35, 25))
    result = run(history=history, summary=make_summary(0.15, 0.16), config=make_config(**{"model.hidden": [2]}))
    assert result["evidence"]["doubling_epochs_gain"] == pytest.approx(0.0, abs=1e-3)
    assert knobs(result)[0] == "model.hidden"
    assert "training.early_stopping.patience" not in knobs(result)


def test_gap_opening_epoch_is_where_validation_bottoms_out_while_train_falls():
    val = [0.5, 0.4, 0.32, 0.28, 0.26, 0.25, 0.27, 0.3, 0.34, 0.38, 0.42, 0.46]
    train = np.linspace(0.5, 0.05, 12)
    val_err = [0.2, 0.15, 0.1, 0.08, 0.07, 0.06, 0.07, 0.08, 0.09, 0.1, 0.1, 0.11]
    train_err = [0.2, 0.15, 0.1, 0.07, 0.05, 0.04, 0.03, 0.02, 0.01, 0.0, 0.0, 0.0]
    history = make_history(val, train, val_err=val_err, train_err=train_err)
    summary = make_summary(0.04, 0.10, best_epoch=6, shipped_epoch=6, epochs_run=12, stopped_early=False)
    result = run(history=history, summary=summary, config=make_config(**{"training.epochs": 12}))
    ev = result["evidence"]
    assert ev["gap_open_epoch"] == 6
    assert ev["val_curve_best_epoch"] == 6
    assert ev["val_rise_after_best"] == pytest.approx(0.21)
    assert ev["val_rise_after_best_rel"] == pytest.approx(0.84)
    assert ev["gap_over_tolerance_since"] == 7  # 0.07 − 0.03 = 0.04 > 0.02 from epoch 7 on
    assert result["verdict"] == "high_variance"
    assert ev["curve_reading"].endswith(
        "overfitting from epoch 6 on; the shipped epoch 6 precedes it, yet its gap is above tolerance."
    )


def test_overfit_without_restored_best_weights_restores_them_first():
    val = [0.5, 0.4, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55]
    history = make_history(val, np.linspace(0.5, 0.05, 8))
    config = make_config(**{"training.early_stopping.restore_best_weights": False, "training.epochs": 8})
    summary = make_summary(0.01, 0.1, best_epoch=3, shipped_epoch=8, epochs_run=8, stopped_early=False)
    result = run(history=history, summary=summary, config=config)
    first = result["recommendations"][0]
    assert first["knob"] == "training.early_stopping.restore_best_weights"
    assert "best at epoch 3" in first["text"]


def test_overfit_without_early_stopping_enables_it_first():
    val = [0.5, 0.4, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55]
    history = make_history(val, np.linspace(0.5, 0.05, 8))
    config = make_config(**{"training.early_stopping.enabled": False, "training.epochs": 8})
    summary = make_summary(0.01, 0.1, best_epoch=8, shipped_epoch=8, epochs_run=8, stopped_early=False)
    result = run(history=history, summary=summary, config=config)
    assert result["recommendations"][0]["knob"] == "training.early_stopping.enabled"


# --------------------------------------------------------------------------- edge cases


def test_one_epoch():
    result = run(
        history=make_history([0.4]), summary=make_summary(best_epoch=1, shipped_epoch=1, epochs_run=1)
    )
    assert result["verdict"] == "good_fit"
    assert result["evidence"]["curve_reading"].startswith("Only one epoch")
    assert result["evidence"]["val_noise"] is None


def test_nan_in_a_clean_column_is_not_divergence():
    history = make_history(plateau())
    history.loc[3, "clean_data_loss"] = np.nan
    result = run(history=history)
    assert result["verdict"] == "good_fit"


def test_missing_clean_columns_fall_back_to_as_trained_metric_with_a_warning():
    history = make_history(plateau(), clean=False, train_err=np.full(25, 0.03))
    summary = make_summary()
    del summary["metrics"]
    result = run(history=history, summary=summary)
    ev = result["evidence"]
    assert ev["train_error_source"] == "history.accuracy"
    assert ev["train_error"] == pytest.approx(0.033)
    assert ev["val_error_source"] == "history.val_accuracy"
    assert ev["train_curve"] == "data_loss"
    assert "clean_metrics_missing" in codes(result)


def test_history_row_at_the_shipped_epoch_is_used_without_summary_metrics():
    train_err = np.linspace(0.3, 0.0, 25)
    history = make_history(plateau(), train_err=train_err, val_err=np.linspace(0.3, 0.05, 25))
    summary = make_summary(shipped_epoch=11, best_epoch=11)
    del summary["metrics"]
    ev = run(history=history, summary=summary)["evidence"]
    assert ev["train_error_source"] == "history.clean_accuracy"
    assert ev["train_error"] == pytest.approx(train_err[10])


def test_empty_history_and_no_metrics_is_not_learning():
    summary = make_summary()
    del summary["metrics"]
    result = run(history=pd.DataFrame(), summary=summary)
    assert result["verdict"] == "not_learning"
    assert "no_epochs" in codes(result)


def test_regression_task_uses_mae_in_target_std_units():
    history = make_history(plateau(), task="regression")
    summary = make_summary(0.3, 0.45, task="regression", baseline_val_error=0.8, monitor="val_loss")
    result = run(history=history, summary=summary)
    assert result["verdict"] == "high_bias_and_variance"
    ev = result["evidence"]
    assert ev["metric"] == "mae" and ev["metric_granularity"] is None
    assert ev["train_error"] == pytest.approx(0.3)
    mean_baseline = run(
        history=history, summary=make_summary(0.3, 0.795, task="regression", baseline_val_error=0.8)
    )
    assert mean_baseline["verdict"] == "not_learning"
    assert "mean predictor" in mean_baseline["evidence"]["verdict_reason"]


def test_accuracy_monitor_is_read_in_max_mode():
    history = make_history(plateau())
    history["val_accuracy"] = np.linspace(0.8, 0.95, 25)
    config = make_config(
        **{"training.early_stopping.monitor": "val_accuracy", "training.early_stopping.min_delta": 0.01}
    )
    ev = run(history=history, summary=make_summary(monitor="val_accuracy"), config=config)["evidence"]
    assert ev["mode"] == "max"
    assert ev["recent_mean_improvement"] == pytest.approx(0.15 / 24)  # rising accuracy counts as improvement


# --------------------------------------------------------------------------- warnings


def test_penalty_dominating_the_loss_of_a_model_that_does_not_fit_its_training_data():
    result = run(summary=make_summary(0.2, 0.22, penalty_share=0.7))
    assert result["evidence"]["over_regularized"] is True
    assert result["headline"].startswith("High bias (over-regularized) — the penalty is 70% of the loss")
    assert (result["recommendations"][0]["knob"], result["recommendations"][0]["to"]) == ("model.l2", 1e-5)
    assert run(summary=make_summary(0.2, 0.22, penalty_share=0.3))["evidence"]["over_regularized"] is False
    # A model that fits (train error 0.02 within the 0.05 bias tolerance) has a small data loss,
    # so any penalty is a large share of it: that is not the penalty winning.
    assert run(summary=make_summary(0.02, 0.03, penalty_share=0.7))["evidence"]["over_regularized"] is False

def test_val_loss_monitor_with_a_penalty_that_chose_another_epoch_than_the_data_loss():
    val = np.concatenate([np.linspace(0.5, 0.2, 15), np.linspace(0.21, 0.26, 10)])  # lowest at epoch 15
    history = make_history(val)
    result = run(history=history)  # shipped epoch 20 (by val_loss), val_data_loss 0.232 there
    warning = next(w for w in result["warnings"] if w["code"] == "val_loss_includes_penalty")
    assert warning["text"] == (
        "Early stopping monitors val_loss, which includes the L1/L2 penalty, and it picked epoch 20 (val_data_loss "
        "0.232) although val_data_loss was lowest at epoch 15 (0.2): the penalty's movement chose the epoch. "
        "Monitor val_data_loss to select on the data alone."
    )
    # The same epoch by both curves, or no penalty: nothing to say.
    assert "val_loss_includes_penalty" not in codes(run(history=history, summary=make_summary(best_epoch=15)))
    no_penalty = make_config(**{"model.l2": 0.0})
    assert "val_loss_includes_penalty" not in codes(run(history=history, config=no_penalty))
    data_monitor = make_config(**{"training.early_stopping.monitor": "val_data_loss"})
    assert "val_loss_includes_penalty" not in codes(
        run(config=data_monitor, summary=make_summary(monitor="val_data_loss"))
    )


def test_patience_that_can_never_fire():
    assert "patience_never_fires" in codes(
        run(config=make_config(**{"training.early_stopping.patience": 100}))
    )
    warmup = make_config(
        **{"training.early_stopping.patience": 60, "training.early_stopping.start_from_epoch": 40}
    )
    assert "patience_never_fires" in codes(run(config=warmup))
    assert "patience_never_fires" not in codes(
        run(config=make_config(**{"training.early_stopping.patience": 98}))
    )


def test_batchnorm_with_a_small_batch():
    config = make_config(**{"model.batchnorm": True, "training.batch_size": 8})
    assert "batchnorm_small_batch" in codes(run(config=config))
    assert "batchnorm_small_batch" not in codes(run(config=make_config(**{"training.batch_size": 8})))
    assert "batchnorm_small_batch" not in codes(
        run(config=make_config(**{"model.batchnorm": True, "training.batch_size": 16}))
    )


def test_heavy_dropout_on_batchnorm_and_l2():
    config = make_config(**{"model.batchnorm": True, "model.dropout": 0.5})
    underfit = make_summary(0.15, 0.16)
    assert "dropout_bn_l2_stack" in codes(run(config=config, summary=underfit))
    assert "dropout_bn_l2_stack" not in codes(run(config=config))  # a good fit: the stack did no harm
    assert "dropout_bn_l2_stack" not in codes(
        run(config=make_config(**{"model.batchnorm": True, "model.dropout": 0.3}), summary=underfit)
    )


def test_l2_before_batchnorm_shorthand_and_explicit_layers_said_when_the_run_overfits():
    overfits = make_summary(0.01, 0.1)
    assert "l2_before_batchnorm" in codes(run(config=make_config(**{"model.batchnorm": True}), summary=overfits))
    assert "l2_before_batchnorm" not in codes(run(config=make_config(**{"model.batchnorm": True})))  # a good fit
    assert "l2_before_batchnorm" not in codes(
        run(config=make_config(**{"model.batchnorm": True, "model.l2": 0.0}), summary=overfits)
    )
    layers = [
        {"type": "dense", "units": 64, "use_bias": False, "kernel_regularizer": {"l2": 1e-4}},
        {"type": "batchnorm"},
        {"type": "activation", "activation": "relu"},
        {"type": "dense", "units": 1, "kernel_regularizer": {"l2": 1e-4}},
    ]
    explicit = make_config(**{"model.hidden": None, "model.layers": layers})
    assert "l2_before_batchnorm" in codes(run(config=explicit, summary=overfits))
    no_bn = make_config(**{"model.hidden": None, "model.layers": [layers[0], layers[2], layers[3]]})
    assert "l2_before_batchnorm" not in codes(run(config=no_bn, summary=overfits))


def test_validation_set_too_small_for_the_accuracy_monitor():
    config = make_config(**{"training.early_stopping.monitor": "val_accuracy"})
    result = run(config=config, summary=make_summary(monitor="val_accuracy", n_val=40))
    warning = next(w for w in result["warnings"] if w["code"] == "val_set_too_small")
    assert "0.025" in warning["text"] and "min_delta to at least 0.025" in warning["text"]
    assert result["evidence"]["metric_granularity"] == pytest.approx(0.025)
    fine = make_config(
        **{"training.early_stopping.monitor": "val_accuracy", "training.early_stopping.min_delta": 0.01}
    )
    assert "val_set_too_small" not in codes(
        run(config=fine, summary=make_summary(monitor="val_accuracy", n_val=500))
    )


def test_noisy_validation_curve_that_early_stopping_fired_on():
    rng = np.random.default_rng(0)
    noisy = 0.3 + rng.normal(0, 0.02, 25)
    underfit = make_summary(0.15, 0.16)  # stopping on noise matters where more epochs could help
    assert "noisy_validation" in codes(run(history=make_history(noisy), summary=underfit))
    assert "noisy_validation" not in codes(run(history=make_history(noisy)))  # a good fit: nothing to change
    smooth = np.linspace(0.5, 0.2, 25)
    assert "noisy_validation" not in codes(run(history=make_history(smooth), summary=underfit))
    tolerant = make_config(**{"training.early_stopping.min_delta": 0.2})
    assert "noisy_validation" not in codes(run(history=make_history(noisy), config=tolerant, summary=underfit))
    # The same jitter on a run that did not stop early decided nothing.
    ran_out = make_summary(0.15, 0.16, stopped_early=False)
    assert "noisy_validation" not in codes(run(history=make_history(noisy), summary=ran_out))
    # Nor on one that stopped after a real rise (a steady climb after the best epoch, 20).
    risen = np.concatenate([noisy[:19], [0.2], [0.31, 0.33, 0.35, 0.37, 0.39]])
    assert "noisy_validation" not in codes(run(history=make_history(risen), summary=underfit))


def test_early_stopping_that_fired_in_the_first_epochs():
    history = make_history([0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36])
    summary = make_summary(0.01, 0.08, best_epoch=1, shipped_epoch=1, epochs_run=7, stopped_early=True)
    assert "early_stop_fired_early" in codes(run(history=history, summary=summary))
    later = make_summary(0.01, 0.08, best_epoch=5)
    assert "early_stop_fired_early" not in codes(run(history=history, summary=later))
    good_fit = make_summary(best_epoch=1, shipped_epoch=1, epochs_run=7, stopped_early=True)
    assert "early_stop_fired_early" not in codes(run(history=history, summary=good_fit))


def test_label_noise_is_said_where_it_inflates_the_bias_that_decides():
    noisy = make_config(**{"data.label_noise": 0.2})
    result = run(config=noisy, summary=make_summary(0.15, 0.16))
    warning = next(w for w in result["warnings"] if w["code"] == "label_noise")
    assert "val labels are clean; train error is inflated by design" in warning["text"].lower()
    assert "label_noise" not in codes(run())
    assert "label_noise" not in codes(run(config=noisy))  # a good fit: nothing to discount


def test_explicit_layers_recommendations():
    layers = [
        {"type": "dense", "units": 32, "kernel_regularizer": {"l2": 1e-4}},
        {"type": "dense", "units": 256, "kernel_regularizer": {"l2": 1e-4}},
        {"type": "dense", "units": 1},
    ]
    config = make_config(**{"model.hidden": None, "model.layers": layers})
    result = run(summary=make_summary(0.01, 0.08), config=config)
    texts = [r["text"] for r in result["recommendations"]]
    assert any("from 1e-4 to 1e-3" in t and "kernel_regularizer.l2" in t for t in texts)
    assert any("add dropout 0.2 after the 256-unit dense layer (model.layers[1])" in t for t in texts)


# --------------------------------------------------------------------------- markdown, purity


def test_render_markdown_has_headline_table_recommendations_and_warnings():
    summary = make_summary(0.01, 0.08)
    result = run(summary=summary, config=make_config(**{"training.batch_size": 8, "model.batchnorm": True}))
    md = render_markdown(result, summary)
    assert md.startswith("# Diagnosis: high variance\n")
    assert result["headline"] in md
    assert "| variance = val − train | 0.07 |" in md
    assert "\n1. raise model.dropout from 0.2 to 0.3" in md
    assert "## Warnings" in md and "**batchnorm_small_batch**" in md
    # the answer first: recommendations and warnings before the evidence table
    assert md.index("## Recommendations") < md.index("## Warnings") < md.index("## Evidence")


def test_diagnosis_and_replay_do_not_import_a_backend():
    code = (
        "import sys, regcli.diagnosis, regcli.replay; "
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- replay


def test_replay_style_example():
    values = [0.2, 0.15, 0.1, 0.11, 0.12]
    result = replay_early_stopping(values, patience=2)
    assert result == {
        "best_epoch": 3,
        "stopped_epoch": 5,
        "epochs_run": 5,
        "shipped_epoch": 3,
        "best_value": 0.1,
        "shipped_value": 0.1,
    }
    # Without restoring, the last epoch is shipped; with more patience it never stops.
    assert replay_early_stopping(values, patience=2, restore_best_weights=False)["shipped_epoch"] == 5
    assert replay_early_stopping(values, patience=3)["stopped_epoch"] is None
    assert replay_early_stopping(values, patience=3)["shipped_epoch"] == 3


def test_replay_quirks():
    # patience 0 and 1 both stop at the first epoch without improvement (wait counts first).
    assert replay_early_stopping([0.3, 0.4, 0.2], patience=0)["stopped_epoch"] == 2
    assert replay_early_stopping([0.3, 0.4, 0.2], patience=1)["stopped_epoch"] == 2
    # min_delta: 0.3 -> 0.295 is not an improvement of at least 0.01.
    assert replay_early_stopping([0.3, 0.295, 0.29], patience=1, min_delta=0.01)["stopped_epoch"] == 2
    # max mode.
    assert replay_early_stopping([0.8, 0.9, 0.85, 0.84], mode="max", patience=2)["shipped_epoch"] == 2
    assert replay_early_stopping([0.8, 0.9], mode="auto", monitor="val_accuracy")["best_epoch"] == 2
    # start_from_epoch skips 0-based epochs < 2 entirely: the best cannot be epoch 1.
    assert replay_early_stopping([0.1, 0.5, 0.6, 0.7], start_from_epoch=2, patience=1)["best_epoch"] == 3
    assert replay_early_stopping([0.1, 0.2], start_from_epoch=5)["best_epoch"] is None
    # baseline is not the initial best: never beaten, it stops `patience` epochs in, shipping the best seen.
    result = replay_early_stopping([0.5, 0.4, 0.45, 0.3], baseline=0.2, patience=2)
    assert (result["stopped_epoch"], result["shipped_epoch"]) == (3, 2)
    # NaN is never an improvement; a NaN first value becomes the best forever.
    assert replay_early_stopping([0.3, float("nan"), 0.2], patience=1)["stopped_epoch"] == 2
    assert replay_early_stopping([float("nan"), 0.2, 0.1], patience=5)["best_epoch"] == 1
    # float32: a difference below float32 precision is not an improvement.
    assert replay_early_stopping([0.1, 0.1 - 1e-12], patience=1)["stopped_epoch"] == 2


def test_parse_replay_arg():
    assert parse_replay_arg("patience=3,min_delta=0.001,start_from_epoch=2") == {
        "patience": 3,
        "min_delta": 0.001,
        "start_from_epoch": 2,
    }
    assert parse_replay_arg(" baseline=none , restore_best_weights=false,mode=max,monitor=val_data_loss") == {
        "baseline": None,
        "restore_best_weights": False,
        "mode": "max",
        "monitor": "val_data_loss",
    }
    with pytest.raises(BadInputError, match=r"'pateince=3'.*Allowed keys: patience, min_delta"):
        parse_replay_arg("pateince=3")
    with pytest.raises(
        BadInputError, match=r"'patience=-1': patience must be an integer >= 0. Received: '-1'"
    ):
        parse_replay_arg("patience=-1")
    with pytest.raises(BadInputError, match=r"min_delta must be a float >= 0"):
        parse_replay_arg("min_delta=abc")
    with pytest.raises(BadInputError, match="KEY=VALUE"):
        parse_replay_arg("patience")
    with pytest.raises(BadInputError, match="KEY=VALUE"):
        parse_replay_arg("")


def test_replay_report_compares_with_the_run():
    val = [0.5, 0.4, 0.3, 0.29, 0.31, 0.28, 0.33, 0.35, 0.36, 0.37]
    history = make_history(val, val_err=np.array(val) / 2)
    summary = make_summary(best_epoch=6, shipped_epoch=6, epochs_run=9, stopped_early=True)
    history = history.iloc[:9]
    config = make_config(**{"training.early_stopping.patience": 3, "model.l2": 0.0})
    report = replay_report(history, summary, config, {"patience": 1})
    assert report["consistent_with_run"] is True
    assert report["replay"]["stopped_epoch"] == 5 and report["replay"]["shipped_epoch"] == 4
    assert report["actual"]["shipped_epoch"] == 6
    assert report["delta"]["monitored_value"] == pytest.approx(0.29 - 0.28)
    assert report["delta"]["val_error"] == pytest.approx((0.29 - 0.28) / 2)
    assert report["delta"]["shipped_epoch"] == -2
    assert any("stopped after epoch 5" in t for t in report["text"])
    json.dumps(report, allow_nan=False)

    longer = replay_report(history, summary, config, {"patience": 10})
    assert longer["beyond_recorded"] is True and longer["replay"]["stopped_epoch"] is None
    assert any("would not have stopped within the 9 recorded epochs" in t for t in longer["text"])

    with pytest.raises(BadInputError, match="no such column"):
        replay_report(history, summary, config, {"monitor": "val_auc"})


def test_replay_report_flags_a_history_that_does_not_match_the_run():
    history = make_history([0.5, 0.4, 0.3, 0.2])
    summary = make_summary(best_epoch=2, shipped_epoch=2, epochs_run=4, stopped_early=False)
    report = replay_report(history, summary, make_config(**{"model.l2": 0.0}), {})
    assert report["consistent_with_run"] is False


# ---- agreement with the real keras.callbacks.EarlyStopping


@pytest.fixture(scope="module")
def keras_model():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() == "numpy":  # compares in float64; the real backends compare in float32
        pytest.skip("the numpy backend compares in float64")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    return keras, model


def keras_early_stopping(keras_model, values, **kwargs):
    """Drives the real callback; each epoch's kernel holds its epoch number, so restoring is observable."""
    keras, model = keras_model
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", **kwargs)
    callback.set_model(model)
    model.stop_training = False
    epochs_run = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "metric not available" for None values; backend deprecations
        callback.on_train_begin()
        for epoch, value in enumerate(values):
            epochs_run = epoch + 1
            model.set_weights([np.full((1, 1), epochs_run, dtype="float32")])
            callback.on_epoch_end(epoch, {"val_loss": value} if value is not None else {})
            if model.stop_training:
                break
        callback.on_train_end()
        shipped = int(model.get_weights()[0][0, 0]) if epochs_run else None
    monitored = callback.best is not None or callback.best_weights is not None
    return {
        "best_epoch": callback.best_epoch + 1 if monitored else None,
        "stopped_epoch": callback.stopped_epoch + 1 if model.stop_training else None,
        "epochs_run": epochs_run,
        "shipped_epoch": shipped,
    }


def assert_same_as_keras(keras_model, values, **kwargs):
    ours = replay_early_stopping(values, **kwargs)
    theirs = keras_early_stopping(keras_model, values, **kwargs)
    assert {k: ours[k] for k in theirs} == theirs, (values, kwargs)


CASES = [
    [0.2, 0.15, 0.1, 0.11, 0.12],
    [0.5, 0.4, 0.3, 0.3, 0.3, 0.3],
    [0.3, 0.4, 0.2, 0.5, 0.1],
    [float("nan"), 0.2, 0.1],
    [0.3, float("nan"), float("nan"), 0.2],
    [0.1, 0.1 - 1e-12, 0.1 - 1e-6, 0.1 - 1e-3],
    [0.9, None, 0.8, 0.85, 0.86],
    [1.0],
    [0.5, 0.49, 0.48, 0.47, 0.46, 0.45, 0.44],
]


@pytest.mark.parametrize("values", CASES)
@pytest.mark.parametrize("mode", ["min", "max", "auto"])
@pytest.mark.parametrize("patience", [0, 1, 2])
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"min_delta": 0.01},
        {"start_from_epoch": 2},
        {"baseline": 0.25},
        {"restore_best_weights": False},
        {"min_delta": -0.005, "baseline": 0.45, "start_from_epoch": 1},
    ],
)
def test_replay_matches_keras_on_hand_written_curves(keras_model, values, mode, patience, extra):
    kwargs = {"mode": mode, "patience": patience, "restore_best_weights": True, **extra}
    assert_same_as_keras(keras_model, values, **kwargs)


GRID = [0.1, 0.11, 0.12, 0.2, 0.25, 0.5, 0.1 + 1e-9, 0.1 - 1e-7]
value_strategy = st.one_of(
    st.sampled_from(GRID),
    st.floats(0.0, 1.0, width=32),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.just(float("nan")),
    st.just(float("inf")),
    st.none(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(value_strategy, min_size=0, max_size=20),
    mode=st.sampled_from(["min", "max", "auto"]),
    patience=st.integers(0, 6),
    min_delta=st.one_of(st.sampled_from([0.0, 1e-9, 0.005, 0.01, 0.1]), st.floats(0.0, 0.2)),
    start_from_epoch=st.integers(0, 6),
    baseline=st.one_of(st.none(), st.sampled_from(GRID), st.floats(-1.0, 1.0)),
    restore_best_weights=st.booleans(),
)
def test_replay_matches_keras_on_generated_curves(
    keras_model, values, mode, patience, min_delta, start_from_epoch, baseline, restore_best_weights
):
    assert_same_as_keras(
        keras_model,
        values,
        mode=mode,
        patience=patience,
        min_delta=min_delta,
        start_from_epoch=start_from_epoch,
        baseline=baseline,
        restore_best_weights=restore_best_weights,
    )


def test_replay_values_are_json_able():
    result = replay_early_stopping([float("nan"), float("inf")], patience=5)
    assert result["best_value"] is None and result["shipped_value"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in result.values())


def test_good_fit_still_improving_at_the_last_epoch_offers_more_epochs():
    n = 100
    history = make_history(np.linspace(0.6, 0.3, n), train=np.linspace(0.7, 0.35, n))
    summary = make_summary(best_epoch=n, shipped_epoch=n, epochs_run=n, stopped_early=False)
    result = run(history=history, summary=summary)
    assert result["verdict"] == "good_fit"
    assert knobs(result) == [None, "training.epochs"]


def test_overfit_run_whose_early_stopping_never_fired_regularizes_first():
    val = [0.5, 0.4, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]
    history = make_history(val, np.linspace(0.5, 0.05, 10))
    config = make_config(**{"training.early_stopping.patience": 8, "training.epochs": 10})
    summary = make_summary(0.01, 0.1, best_epoch=3, shipped_epoch=3, epochs_run=10, stopped_early=False)
    result = run(history=history, summary=summary, config=config)
    # the best epoch was shipped anyway (restore_best_weights): lowering patience only saves epochs,
    # so regularization comes first and the patience tweak is not among the three recommendations
    assert knobs(result)[:2] == ["model.l2", "model.dropout"]
    assert "training.early_stopping.patience" not in knobs(result)

def test_replay_mode_auto_needs_a_known_direction():
    with pytest.raises(BadInputError, match="Set training.early_stopping.mode"):
        replay_early_stopping([0.1], mode="auto", monitor="val_custom")


def test_the_quickstarts_own_curve_reads_cleanly():
    """configs/quickstart.yaml's run: validation bottoms out at epoch 29 and jitters up while training
    keeps falling; early stopping shipped epoch 29. Nothing in that is a trap (issue: the first hour)."""
    val = np.concatenate([np.linspace(0.3, 0.083, 28), [0.0579, 0.0677, 0.0680, 0.0768, 0.0786, 0.0710]])
    history = make_history(val, np.linspace(0.3, 0.0098, 34), val_err=np.full(34, 0.0175), train_err=np.zeros(34))
    summary = make_summary(0.0, 0.0175, best_epoch=29, shipped_epoch=29, epochs_run=34, penalty_share=0.62, n_val=114)
    config = make_config(**{"model.batchnorm": True})
    result = run(history=history, summary=summary, config=config)
    assert result["verdict"] == "good_fit"
    assert result["warnings"] == []
    assert result["evidence"]["curve_reading"].endswith("overfitting after epoch 29, which the shipped epoch 29 precedes.")
