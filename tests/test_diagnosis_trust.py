"""The rules that make a diagnosis trustworthy (issue 16), on hand-written curves and summaries.

Uncertainty-aware verdicts, over-regularization seen in what the penalty did, the larger of
two problems first, and one story: at most three recommendations, warnings that never
contradict the verdict, a curve reading that agrees with it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_diagnosis import codes, knobs, make_config, make_history, make_summary, plateau, run

from regcli.diagnosis.uncertainty import Side, clearly_larger, error_se, rows_to_resolve

# --------------------------------------------------------------------------- sampling uncertainty


def test_error_se_is_agresti_coull_for_error_rates():
    # 0.2 on 100 rows: p~ = (20 + 1.92) / 103.84 = 0.2111, se = sqrt(0.2111 * 0.7889 / 103.84) = 0.04005
    assert error_se("accuracy", 0.2, 100) == pytest.approx(0.04005, abs=1e-5)
    # an error of 0 is not "exactly 0 ± 0": p~ = 1.92 / 344.84 = 0.00557, se = 0.00401 on 341 rows
    assert error_se("accuracy", 0.0, 341) == pytest.approx(0.00401, abs=1e-5)
    assert error_se("accuracy", 0.2, None) is None and error_se("accuracy", None, 100) is None


def test_error_se_of_a_mean_absolute_error_assumes_normal_residuals():
    # std(|e|) = sqrt(pi/2 - 1) * mean(|e|): 0.7555 * 0.5 / sqrt(25) = 0.07555
    assert error_se("mae", 0.5, 25) == pytest.approx(math.sqrt(math.pi / 2 - 1) * 0.1)


def test_a_side_is_high_only_clear_of_its_noise():
    # the 150-row overfit demo: avoidable bias 0.0533 vs 0.05, one training sample is 0.0067
    bias = Side(0.0533, 0.05, error_se("accuracy", 0.0533, 150))
    assert bias.over and not bias.high and bias.within_noise
    assert Side(0.0533, 0.05, error_se("accuracy", 0.0533, 150_000)).high
    assert not Side(0.04, 0.05, 0.001).over
    assert clearly_larger(0.19, 0.05, 0.03) and not clearly_larger(0.13, 0.12, 0.03)


def test_rows_to_resolve_a_tolerance():
    # 2 * sqrt(0.1 * 0.9 / n) <= 0.02  <=>  n >= 4 * 0.09 / 0.0004 = 900
    assert rows_to_resolve("accuracy", 0.1, 0.02) == 900
    assert rows_to_resolve("accuracy", None, 0.02) is None


# --------------------------------------------------------------------------- verdicts that do not flip on noise


def test_the_150_row_demo_is_high_variance_with_the_bias_noted_as_within_noise():
    summary = make_summary(0.0533, 0.2467, n_train=150, n_val=150)
    result = run(summary=summary, config=make_config(**{"model.l2": 0.0, "model.dropout": 0.0}))
    assert result["verdict"] == "high_variance"
    assert result["headline"] == (
        "High variance — the model overfits: gap 0.193 ± 0.0805 is over its tolerance 0.02 (clean train error "
        "0.0533, val error 0.247) (avoidable bias 0.0533 is over 0.05 only within noise)."
    )
    assert "within its noise" in result["evidence"]["verdict_reason"]
    # no penalty yet: dropout first (an L2 of 1e-4 from 0 changed nothing on the overfit scenario)
    assert result["recommendations"][0]["knob"] == "model.dropout"


def test_the_same_errors_on_many_rows_are_both_high():
    summary = make_summary(0.0533, 0.2467, n_train=150_000, n_val=150_000)
    assert run(summary=summary)["verdict"] == "high_bias_and_variance"


def test_both_high_works_on_the_clearly_larger_gap_first():
    # avoidable bias 0.08 (clear on 5000 rows), gap 0.30: variance first, regularization allowed
    summary = make_summary(0.08, 0.38, n_train=5000, n_val=5000, baseline_val_error=0.9)
    result = run(summary=summary)
    assert result["verdict"] == "high_bias_and_variance" and result["evidence"]["focus"] == "variance"
    assert knobs(result)[0] == "model.l2" and result["recommendations"][0]["to"] > result["recommendations"][0]["from"]


def test_both_high_and_close_fixes_bias_first():
    summary = make_summary(0.12, 0.25, n_train=5000, n_val=5000)
    result = run(summary=summary)
    assert result["evidence"]["focus"] == "bias"
    assert result["recommendations"][0]["text"].endswith("fix bias first")


def test_a_tolerance_finer_than_the_validation_set_resolves_is_said_with_what_to_do():
    small = run(summary=make_summary(0.02, 0.03, n_val=40))["evidence"]
    assert small["resolution_note"].startswith("With n_val = 40, the gap is known only to ± ")
    assert "Raise data.val_fraction (about 291 validation rows" in small["resolution_note"]  # 4 * 0.0291 / 0.0004
    assert run(summary=make_summary(0.02, 0.03, n_train=50_000, n_val=50_000))["evidence"]["resolution_note"] is None


def test_a_gap_over_tolerance_but_within_noise_is_a_warning_not_a_verdict():
    result = run(summary=make_summary(0.02, 0.07, n_val=60))
    assert result["verdict"] == "good_fit"
    warning = next(w for w in result["warnings"] if w["code"] == "gap_within_noise")
    assert "the verdict does not count it as high variance" in warning["text"]
    assert "gap_within_noise" not in codes(run(summary=make_summary(0.02, 0.03, n_val=60)))


# --------------------------------------------------------------------------- over-regularization


def _collapsing_history(n=40):
    """L2 1.0 crushing the weights: the penalty is 88% of the loss at epoch 1 and ~0 at the end."""
    penalty = 17.0 * np.exp(-np.arange(n) / 2.0) + 1e-3
    data = np.full(n, 2.29)
    h = make_history(np.full(n, 2.30), train=data, penalty=0.0, val_err=np.full(n, 0.9), train_err=np.full(n, 0.9))
    h["clean_loss"] = data + penalty
    h["loss"] = data * 1.1 + penalty
    return h


def test_a_penalty_that_has_won_is_seen_in_its_peak_share_not_its_final_one():
    config = make_config(**{"model.l2": 1.0, "model.hidden": [8]})
    summary = make_summary(0.9, 0.9, penalty_share=4e-4, baseline_val_error=0.9)
    result = run(history=_collapsing_history(), summary=summary, config=config)
    assert result["verdict"] == "not_learning"
    assert result["evidence"]["penalty_share_peak"] == pytest.approx(17.001 / 19.291, rel=1e-3)
    assert result["evidence"]["penalty_share_peak_epoch"] == 1
    first = result["recommendations"][0]
    assert (first["knob"], first["from"], first["to"]) == ("model.l2", 1.0, 0.1)
    assert "over-regularized" in result["headline"] and "88% of the loss at epoch 1" in result["headline"]


def test_collapsed_weights_name_the_penalty_and_the_layer():
    stats = {
        "block1_dense": {"l1_norm": 2.8, "l2_norm": 0.17, "near_zero_fraction": 0.2, "n_weights": 512},
        "output": {"l1_norm": 3.1, "l2_norm": 4.4, "near_zero_fraction": 0.0, "n_weights": 80},
    }
    summary = make_summary(0.19, 0.2, weight_stats=stats)
    result = run(summary=summary, config=make_config(**{"model.l2": 1.0, "model.hidden": [8]}))
    assert result["evidence"]["collapsed_layers"] == ["block1_dense"]  # RMS 0.17 / sqrt(512) = 0.0075
    assert result["verdict"] == "high_bias" and knobs(result)[0] == "model.l2"
    # without a penalty the same tiny weights are not the penalty's doing
    unpenalized = run(summary=summary, config=make_config(**{"model.l2": 0.0, "model.hidden": [8]}))
    assert unpenalized["evidence"]["over_regularized"] is False


def test_small_weights_of_a_model_that_fits_are_not_over_regularization():
    stats = {"block1_dense": {"l1_norm": 1.0, "l2_norm": 0.1, "near_zero_fraction": 0.5, "n_weights": 512}}
    result = run(summary=make_summary(0.02, 0.03, weight_stats=stats), config=make_config(**{"model.l2": 1.0}))
    assert result["verdict"] == "good_fit" and result["evidence"]["over_regularized"] is False


# --------------------------------------------------------------------------- one story


def test_at_most_three_recommendations():
    config = make_config(**{"data.train_fraction": 0.5, "training.early_stopping.patience": 8})
    val = [0.5, 0.4, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]
    summary = make_summary(0.01, 0.1, best_epoch=3, shipped_epoch=3, epochs_run=10, stopped_early=False)
    result = run(history=make_history(val, np.linspace(0.5, 0.05, 10)), summary=summary, config=config)
    assert len(result["recommendations"]) == 3


def test_the_curve_reading_agrees_with_a_good_fit():
    val = [0.5, 0.4, 0.32, 0.28, 0.26, 0.25, 0.27, 0.3, 0.34, 0.38, 0.42, 0.46]
    summary = make_summary(0.02, 0.03, best_epoch=6, shipped_epoch=6, epochs_run=12, stopped_early=True)
    result = run(history=make_history(val, np.linspace(0.5, 0.05, 12)), summary=summary)
    assert result["verdict"] == "good_fit"
    assert "which the shipped epoch 6 precedes" in result["evidence"]["curve_reading"]
    assert "problematic" not in result["evidence"]["curve_reading"]


def test_the_curve_reading_agrees_with_high_variance_on_a_flat_curve():
    result = run(summary=make_summary(0.01, 0.1))
    assert result["verdict"] == "high_variance"
    assert result["evidence"]["curve_reading"].endswith("the gap was there from the early epochs rather than opening late.")


def test_a_still_improving_curve_under_high_variance_is_not_told_to_train_longer():
    n = 100
    history = make_history(np.linspace(0.6, 0.3, n), train=np.linspace(0.7, 0.05, n))
    summary = make_summary(0.01, 0.1, best_epoch=n, shipped_epoch=n, epochs_run=n, stopped_early=False)
    result = run(history=history, summary=summary)
    assert result["verdict"] == "high_variance"
    assert "more epochs will not close it" in result["evidence"]["curve_reading"]
    assert "training.epochs" not in knobs(result)


@pytest.mark.parametrize(
    ("summary", "config"),
    [
        (make_summary(0.0, 0.0175, n_val=114, n_train=341, penalty_share=0.62), {"model.batchnorm": True}),
        (make_summary(0.02, 0.03, penalty_share=0.7), {"model.batchnorm": True, "model.dropout": 0.5}),
        (make_summary(0.02, 0.03), {"data.label_noise": 0.1}),
    ],
)
def test_a_good_fit_carries_no_warning_against_its_own_settings(summary, config):
    """Measured on the quickstart: good_fit with four warnings (lower L2, penalized monitor, L2
    before BatchNorm, jitter). A good fit's warnings may only qualify how sure it is."""
    result = run(history=make_history(plateau()), summary=summary, config=make_config(**config))
    assert result["verdict"] == "good_fit"
    assert set(codes(result)) <= {"gap_within_noise", "clean_metrics_missing"}
    assert result["recommendations"][0]["text"].startswith("ship it")

