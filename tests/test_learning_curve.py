"""Data-size learning curves: the reading on hand-written curves (exact verdicts and sentences),
the curve table, bad input, and one real `regcli sweep` over data.train_fraction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from helpers import write_sweep
from typer.testing import CliRunner

from regcli.cli import app
from regcli.data import load_dataset
from regcli.errors import DataError
from regcli.spec import validate_experiment
from regcli.sweep.datacurve import curve_line, curve_table, is_data_size_study, read_curve

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    # 2 epochs: the end-to-end test checks wiring, not the shape of the curve
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}


def curve(n, train, val, val_std=None):
    """A curve table as curve_table writes it (only the columns read_curve reads)."""
    table = {"n_train": n, "train_error_mean": train, "val_error_mean": val}
    if val_std is not None:
        table["val_error_std"] = val_std
    return pd.DataFrame(table)




# --------------------------------------------------------------------------------------
# The reading: one hand-written curve per verdict
# --------------------------------------------------------------------------------------
def test_gap_closing_and_validation_still_falling_means_more_data_helps():
    reading = read_curve(curve([100, 200, 400], [0.0, 0.02, 0.03], [0.15, 0.10, 0.07]))
    assert reading["verdict"] == "more_data_helps"
    assert reading["sentence"] == (
        "the gap between train and validation error is closing (0.15 → 0.040) and validation error still falls "
        "(0.10 → 0.070 over the last doubling, n=200 → 400): more data helps."
    )


def test_a_small_gap_with_validation_still_falling_still_means_more_data_helps():
    reading = read_curve(curve([100, 200, 400], [0.01, 0.01, 0.02], [0.03, 0.06, 0.035]))
    assert reading["verdict"] == "more_data_helps"
    assert reading["sentence"] == (
        "the gap is small (0.015) and validation error still falls (0.060 → 0.035 over the last doubling, "
        "n=200 → 400): more data helps."
    )


def test_both_curves_flat_and_high_is_high_bias_that_data_will_not_fix():
    reading = read_curve(curve([100, 200, 400], [0.28, 0.29, 0.30], [0.36, 0.33, 0.32]))
    assert reading["verdict"] == "high_bias"
    assert reading["sentence"] == (
        "both curves are flat and high (train 0.30, val 0.32 at n=400; avoidable bias 0.30 > 0.050, gap 0.020): "
        "more data will not fix bias — add capacity or reduce regularization."
    )


def test_target_error_is_subtracted_before_calling_the_training_error_high():
    table = curve([100, 200, 400], [0.28, 0.29, 0.30], [0.36, 0.33, 0.32])
    assert read_curve(table, target_error=0.28)["verdict"] == "converged"


def test_high_train_error_and_a_large_gap_fix_bias_first():
    reading = read_curve(curve([100, 200, 400], [0.15, 0.18, 0.20], [0.40, 0.36, 0.35]))
    assert reading["verdict"] == "high_bias_and_variance"
    assert reading["sentence"] == (
        "training error is high (train 0.20, val 0.35 at n=400; avoidable bias 0.20 > 0.050) and so is the gap "
        "(0.15 > 0.020): fix bias first — add capacity or reduce regularization; more data only narrows the gap."
    )


def test_a_large_gap_that_persists_while_validation_is_flat_is_high_variance():
    reading = read_curve(curve([100, 200, 400], [0.0, 0.0, 0.0], [0.20, 0.152, 0.15]))
    assert reading["verdict"] == "high_variance"
    assert reading["sentence"] == (
        "a large gap persists between train and validation error (0.20 at n=100 → 0.15 at n=400, above 0.020) "
        "while validation error is flat (0.15 → 0.15 over the last doubling, n=200 → 400): high variance — much "
        "more data, or more regularization."
    )


def test_validation_flat_gap_small_both_low_has_converged_in_data():
    reading = read_curve(curve([100, 200, 400], [0.0, 0.01, 0.02], [0.10, 0.04, 0.035]))
    assert reading["verdict"] == "converged"
    assert reading["sentence"] == (
        "validation error is flat (0.040 → 0.035 over the last doubling, n=200 → 400), the gap is small (0.015) "
        "and both are low (train 0.020, val 0.035 at n=400): the model has converged in data — more data gives little."
    )


def test_a_fall_within_the_seed_spread_is_flat_and_a_short_last_step_is_named_so():
    falling = curve([100, 700, 1000], [0.0, 0.0, 0.0], [0.2, 0.10, 0.08])
    assert read_curve(falling)["verdict"] == "more_data_helps"  # 0.02 > 0.01 x log2(1000/700) = 0.005
    assert "(0.10 → 0.080 over the last step, n=700 → 1000)" in read_curve(falling)["sentence"]
    noisy = curve([100, 700, 1000], [0.0, 0.0, 0.0], [0.2, 0.10, 0.08], val_std=[0.01, 0.03, 0.03])
    reading = read_curve(noisy)
    assert reading["verdict"] == "high_variance" and reading["evidence"]["val_fall_needed"] == pytest.approx(0.03)


def test_one_training_set_size_is_not_a_curve():
    reading = read_curve(curve([256, 256], [0.0, 0.0], [0.1, 0.1]))
    assert reading["verdict"] == "too_few_sizes"
    assert reading["sentence"] == (
        "the sweep trained at 1 training-set size(s) (n=256); a learning curve needs at least 2. Sweep "
        "data.train_fraction over several values, e.g. [0.1, 0.2, 0.4, 0.7, 1.0]."
    )


# --------------------------------------------------------------------------------------
# Which trials form the curve, and the table
# --------------------------------------------------------------------------------------
def results(rows):
    columns = ["config", "data.train_fraction", "model.l2", "seed", "status", "n_train", "train_error", "val_error"]
    return pd.DataFrame([dict(zip(columns, r, strict=True)) for r in rows])


def test_the_curve_is_drawn_at_the_winners_other_knob_values_with_mean_and_std_over_seeds():
    frame = results(
        [
            ("a", 0.5, 0.0, 0, "completed", 100, 0.0, 0.20),
            ("a", 0.5, 0.0, 1, "completed", 100, 0.0, 0.10),
            ("b", 0.5, 1e-3, 0, "completed", 100, 0.05, 0.30),
            ("c", 1.0, 0.0, 0, "completed", 200, 0.0, 0.08),
            ("c", 1.0, 0.0, 1, "failed", None, None, None),
            ("d", 1.0, 1e-3, 0, "completed", 200, 0.04, 0.05),
        ]
    )
    rows, fixed = curve_line(frame, ["data.train_fraction", "model.l2"], {"data.train_fraction": 1.0, "model.l2": 1e-3})
    assert fixed == {"model.l2": 1e-3} and list(rows["config"]) == ["b", "d"]
    rows, fixed = curve_line(frame, ["data.train_fraction", "model.l2"], {"data.train_fraction": 1.0, "model.l2": 0.0})
    table = curve_table(rows)
    assert list(table["n_train"]) == [100, 200] and list(table["n_trials"]) == [2, 1]
    assert table["val_error_mean"].tolist() == pytest.approx([0.15, 0.08])
    assert table["val_error_std"][0] == pytest.approx(0.0707107) and pd.isna(table["val_error_std"][1])
    assert table["gap_mean"].tolist() == pytest.approx([0.15, 0.08])


def test_fractions_that_train_on_the_same_rows_share_one_point():
    # --smoke caps training at 256 rows: fractions 0.8 and 1.0 of 341 rows both train on 256
    frame = results([("a", 0.8, 0.0, 0, "completed", 256, 0.0, 0.1), ("b", 1.0, 0.0, 0, "completed", 256, 0.0, 0.1)])
    table = curve_table(curve_line(frame, ["data.train_fraction"], {"data.train_fraction": 1.0})[0])
    assert table[["n_train", "train_fraction", "n_trials"]].values.tolist() == [[256, "0.8|1", 2]]


def test_a_sweep_is_a_data_size_study_when_it_trains_two_fractions():
    def trials(*values):
        return [SimpleNamespace(params={"data.train_fraction": v} if v is not None else {}) for v in values]

    assert is_data_size_study(trials(0.5, 1.0, 1.0))
    assert not is_data_size_study(trials(1.0, 1.0)) and not is_data_size_study(trials(None, None))


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
def test_train_fractions_outside_0_1_in_a_sweep_grid_exit_2_naming_the_key(tmp_path):
    path = write_sweep(tmp_path, {"params": {"data.train_fraction": [0.0, 0.5, 1.5]}, "seeds": [0]}, base=BASE)
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "params.data.train_fraction, value 0.0: data.train_fraction: must be a number in (0, 1]." in result.output
    assert "params.data.train_fraction, value 1.5:" in result.output and not (tmp_path / "runs").exists()


def test_a_fraction_leaving_fewer_training_rows_than_classes_exits_2_before_training(tmp_path):
    path = write_sweep(tmp_path, {"params": {"data.train_fraction": [0.001, 0.5]}, "seeds": [0]}, base=BASE)
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert (
        "params.data.train_fraction, value 0.001: data.train_fraction: 0.001 keeps 1 of the 341 training rows of "
        "data.source 'breast_cancer', fewer than its 2 classes, so some class would have no training example. "
        "Use data.train_fraction >= 0.006." in " ".join(result.output.split())
    )
    assert not (tmp_path / "runs").exists()
    spec = validate_experiment({**BASE, "data": {"source": "digits", "train_fraction": 0.008}}, tmp_path)
    with pytest.raises(DataError, match=r"keeps 9 of the 1079 training rows .* fewer than its 10 classes.*>= 0\.01\.$"):
        load_dataset(spec.data, seed=0)


# --------------------------------------------------------------------------------------
# One real sweep: 3 fractions x 1 seed, 2 epochs of an 8-unit MLP (about 25 s on 2 idle cores: 1 worker)
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_train_fraction_sweep_writes_the_learning_curve_and_reads_it(tmp_path):
    path = write_sweep(tmp_path, {"params": {"data.train_fraction": [0.2, 0.5, 1.0]}, "seeds": [0]}, base=BASE)
    proc = subprocess.run(
        [sys.executable, "-m", "regcli", "sweep", str(path), "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = Path(proc.stdout.splitlines()[0])
    png, csv = sweep_dir / "learning_curve.png", sweep_dir / "learning_curve.csv"
    assert png.is_file() and png.stat().st_size > 5000
    table = pd.read_csv(csv)
    assert list(table["train_fraction"]) == [0.2, 0.5, 1.0] and list(table["n_train"]) == [68, 170, 341]
    summaries = [json.loads(p.read_text()) for p in sorted((sweep_dir / "trials").glob("*/summary.json"))]
    assert [s["n_train"] for s in summaries] == [68, 170, 341]  # the rows each trial really trained on
    assert table["val_error_mean"].notna().all() and table["train_error_mean"].notna().all()

    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["params"]["data.train_fraction"] in (0.2, 0.5, 1.0)  # still the validation pick
    reading = best["learning_curve"]
    assert reading["verdict"] in ("more_data_helps", "high_variance", "high_bias", "high_bias_and_variance", "converged")
    note = f"Learning curve (error = 1 - accuracy vs training rows, 1 seed(s)): {reading['sentence']}"
    assert note in best["notes"] and best["notes"][0].startswith("This sweep is a data-size study")
    stderr = " ".join(proc.stderr.split())
    assert "note: This sweep is a data-size study" in stderr and "note: Learning curve (" in stderr
    assert "a data-size study: more rows are expected to win" in " ".join(proc.stdout.split())
