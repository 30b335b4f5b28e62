"""`regcli diagnose history.csv`: a Keras CSVLogger file diagnosed from its curves alone.

One real `model.fit` (300 rows, 8 features, 5 epochs) writes a CSVLogger file for the wiring; the
verdicts and the advice are checked on hand-written files whose curves clearly overfit or underfit,
and every bad file on its full message. Nothing may be written next to a user's file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import flat
from typer.testing import CliRunner

from regcli.cli import app
from regcli.commands.csvlog import read_csv_log
from regcli.diagnosis import VERDICTS

CAVEATS = ["as_trained_train_curve", "no_penalty_split", "sampling_noise_ignored"]
# Train accuracy climbs to 1 while validation stalls at 0.86: val_loss is lowest at epoch 3 (0-based) and rises 47%.
OVERFIT = """epoch,accuracy,loss,val_accuracy,val_loss
0,0.80,0.45,0.80,0.46
1,0.88,0.30,0.84,0.38
2,0.93,0.20,0.85,0.35
3,0.96,0.13,0.86,0.34
4,0.98,0.08,0.86,0.36
5,0.99,0.05,0.85,0.40
6,1.00,0.03,0.85,0.45
7,1.00,0.02,0.85,0.50
"""
HEADER = "epoch,accuracy,loss,val_accuracy,val_loss\n"
# Both curves flat at 0.7 accuracy from epoch 1 on: nothing overfits, everything underfits.
UNDERFIT = HEADER + "0,0.70,0.62,0.69,0.63\n" + "".join(f"{epoch},0.71,0.61,0.70,0.62\n" for epoch in range(1, 6))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def diagnosis_of(path: Path, *args) -> dict:
    """`diagnose PATH --json ARGS`'s diagnosis, the command having succeeded."""
    result = invoke("diagnose", path, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["diagnosis"]


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """The CSVLogger file of a real model.fit: 225 training and 75 validation rows, 5 epochs."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(300, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("float32")
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    path = tmp_path_factory.mktemp("fitted") / "history.csv"
    # 5 epochs: this checks that CSVLogger's own file reads, not convergence
    model.fit(x, y, epochs=5, validation_split=0.25, verbose=0, callbacks=[keras.callbacks.CSVLogger(str(path))])
    return path


# --- a real CSVLogger file -------------------------------------------------------------------------------------


def test_a_real_csvlogger_file_gets_a_verdict_and_its_caveats_and_nothing_is_written(fitted):
    before = listing(fitted.parent)
    result = invoke("diagnose", fitted)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    verdict = lines[0].removeprefix(f"{fitted}: ")
    assert verdict in VERDICTS
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert [w.split(":")[1].strip() for w in warnings[:3]] == [
        "There is no clean training curve",
        "There is no penalty split",
        "The file records no sample sizes, so the verdict ignores sampling noise",
    ]
    assert listing(fitted.parent) == before  # no diagnosis.json/.md next to the user's file


def test_json_is_the_diagnosis_with_the_file_and_what_it_cannot_know(fitted):
    result = invoke("diagnose", fitted, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == ["csv_log", "diagnosis"] and out["csv_log"] == str(fitted)
    diagnosis = out["diagnosis"]
    assert list(diagnosis) == ["verdict", "headline", "evidence", "recommendations", "warnings"]
    assert [w["code"] for w in diagnosis["warnings"]][:3] == CAVEATS
    ev = diagnosis["evidence"]
    assert ev["history_source"] == "keras.callbacks.CSVLogger" and ev["train_error_source"] == "history.accuracy"
    assert ev["n_epochs_recorded"] == 5 and ev["last_epoch"] == 5  # CSVLogger's epochs 0-4, 1-based
    assert ev["diagnosed_epoch"] == ev["best_epoch"] and ev["shipped_epoch"] is None
    assert ev["unknown"] == ["clean_train_error", "data_loss", "penalty_share", "shipped_epoch", "config",
                             "baseline_val_error", "n_train", "n_val"]
    assert ev["gap_se"] is None and ev["uncertainty_method"].startswith("none: no sample sizes")
    assert diagnosis["recommendations"] and all(
        list(rec) == ["knob", "from", "to", "text"] and rec["from"] is None for rec in diagnosis["recommendations"]
    )


def test_sample_sizes_give_each_error_its_standard_error(fitted):
    diagnosis = diagnosis_of(fitted, "--n-train", 225, "--n-val", 75)
    ev = diagnosis["evidence"]
    assert (ev["n_train"], ev["n_val"]) == (225, 75) and ev["gap_se"] > 0
    assert ev["uncertainty_method"] == "binomial (Agresti-Coull): se = sqrt(p(1-p)/n)"
    assert ev["unknown"][-1] == "baseline_val_error"
    assert "sampling_noise_ignored" not in [w["code"] for w in diagnosis["warnings"]]


def test_diagnosing_a_csv_file_imports_no_tensorflow_or_keras(fitted):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "regcli", "diagnose", str(fitted)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pandas" in names and not {"tensorflow", "keras", "jax"} & names


# --- hand-written curves: the verdict and the advice -----------------------------------------------------------


def test_a_file_that_overfits_is_high_variance_with_regularization_first(tmp_path):
    diagnosis = diagnosis_of(write(tmp_path, "overfit.csv", OVERFIT))
    assert diagnosis["verdict"] == "high_variance"
    assert diagnosis["headline"] == (
        "High variance — the model overfits: gap 0.1 is over its tolerance 0.02 "
        "(as-trained train error 0.04, val error 0.14)."
    )
    assert [(r["knob"], r["to"]) for r in diagnosis["recommendations"]] == [
        ("training.early_stopping.restore_best_weights", True), ("model.dropout", 0.2), ("model.l2", 1e-4),
    ]
    assert diagnosis["recommendations"][0]["text"].startswith(
        "keep the epoch-4 weights: val_loss was lowest there and rose 47% by epoch 8;"
    )
    assert diagnosis["evidence"]["curve_reading"] == (
        "val_loss bottomed out at epoch 4 and rose 47% by epoch 8 while the training loss kept falling: "
        "overfitting from epoch 4 on; the diagnosed epoch 4 precedes it, yet its gap is above tolerance."
    )
    assert [w["code"] for w in diagnosis["warnings"]] == CAVEATS
    assert "the gap is over its tolerance even so, and the verdict stands" in diagnosis["warnings"][0]["text"]


def test_a_file_that_underfits_is_high_bias_and_says_the_bias_may_be_dropouts(tmp_path):
    diagnosis = diagnosis_of(write(tmp_path, "underfit.csv", UNDERFIT))
    assert diagnosis["verdict"] == "high_bias"
    assert [r["knob"] for r in diagnosis["recommendations"]] == ["model.dropout", "model.hidden", "model.l2"]
    caveat, penalty = (w["text"] for w in diagnosis["warnings"][:2])
    assert "part of the avoidable bias 0.29 may be dropout's and the running mean's, not underfitting." in caveat
    assert penalty.endswith("if the model has an L1/L2 kernel_regularizer, this high bias may be over-regularization.")


def test_fail_on_verbose_set_and_sizes_work_as_for_run_directories(tmp_path):
    path = write(tmp_path, "overfit.csv", OVERFIT)
    gate = invoke("diagnose", path, "--fail-on", "high_variance")
    assert gate.exit_code == 1 and gate.stdout.splitlines()[0] == f"{path}: high_variance"
    verbose = invoke("diagnose", path, "--verbose").stdout.splitlines()
    assert "evidence:" in verbose and "  diagnosed_epoch: 4" in verbose and "  history_source: keras.callbacks.CSVLogger" in verbose
    assert diagnosis_of(path, "--set", "diagnosis.gap_tolerance=0.2")["verdict"] == "good_fit"
    # 20 validation rows: the gap 0.1 is within its noise (2 SE = 0.16)
    noisy = diagnosis_of(path, "--n-train", 60, "--n-val", 20)
    assert noisy["verdict"] == "good_fit" and "gap_within_noise" in [w["code"] for w in noisy["warnings"]]


def test_a_regression_log_in_another_separator_reads_its_mae_and_warns_about_units(tmp_path):
    path = write(tmp_path, "regression.csv", "epoch;loss;mae;val_loss;val_mae\n0;0.6;0.5;0.7;0.6\n1;0.5;0.4;0.6;0.55\n")
    diagnosis = diagnosis_of(path)
    assert (diagnosis["evidence"]["metric"], diagnosis["evidence"]["val_error"]) == ("mae", 0.55)
    assert [w["code"] for w in diagnosis["warnings"]] == [*CAVEATS, "target_units_unknown"]
    given = diagnosis_of(path, "--set", "diagnosis.gap_tolerance=0.2")
    assert "target_units_unknown" not in [w["code"] for w in given["warnings"]]


def test_epochs_without_validation_are_left_out_and_counted(tmp_path):
    text = HEADER + "0,0.5,0.6,NA,NA\n1,0.6,0.5,0.6,0.55\n2,0.7,0.45,NA,NA\n3,0.75,0.4,0.7,0.5\n"
    log = read_csv_log(write(tmp_path, "freq.csv", text))  # validation_freq=2
    assert log.history["epoch"].tolist() == [2, 4] and log.epochs_without_validation == 2


def test_a_nan_loss_is_a_diverged_training_not_bad_input(tmp_path):
    path = write(tmp_path, "diverged.csv", HEADER + "0,0.5,0.6,0.5,0.7\n1,0.5,nan,0.5,nan\n")
    result = invoke("diagnose", path, "--fail-on", "diverged")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[:2] == [
        f"{path}: diverged", "Diverged — the loss became NaN/inf at epoch 2; the run's numbers are meaningless.",
    ]


# --- bad input: exit 2, one paragraph naming the file and the column ------------------------------------------

BAD = {
    "empty": (
        "",
        "{p} is empty: CSVLogger writes its header and first row when the first epoch ends, so no epoch of this "
        "training finished. Pass the file of a training that ran at least one epoch.",
    ),
    "header_only": (HEADER, "{p} has a header but no epochs: no row follows the column names. Pass the file of a "
                    "training that ran at least one epoch."),
    "not_csv": (
        "data: {source: iris}\n",
        "{p} is not a Keras CSVLogger file: its first line ('data: {source: iris}') has no epoch column. Pass the "
        "file keras.callbacks.CSVLogger(filename) wrote during model.fit, or a run directory.",
    ),
    "binary": (
        b"\x89PNG\r\n\x1a\n\x00\xff",
        "{p} is not a text file, so it is not a Keras CSVLogger file. Pass the file "
        "keras.callbacks.CSVLogger(filename) wrote during model.fit, or a run directory.",
    ),
    "no_val_loss": (
        "epoch,accuracy,loss\n0,0.5,0.6\n",
        "{p} has no val_loss column (columns: epoch, accuracy, loss), so there is no validation curve to diagnose. "
        "Pass validation_data=(x_val, y_val) or validation_split=0.2 to model.fit, and CSVLogger records val_loss.",
    ),
    "no_validation": (
        HEADER + "0,0.5,0.6,NA,NA\n",
        "{p} has val_loss NA on every line: model.fit ran without validation data, so there is no validation curve "
        "to diagnose. Pass validation_data=(x_val, y_val) or validation_split=0.2 to model.fit.",
    ),
    "no_metric": (
        "epoch,loss,val_loss\n0,0.6,0.7\n",
        '{p} records no accuracy or mae column (columns: epoch, loss, val_loss), so the diagnosis has no error to '
        'compare: it reads 1 - accuracy or the mae, not the loss. Add metrics=["accuracy"] (classification) or '
        'metrics=["mae"] (regression) to model.compile and train again.',
    ),
    "ambiguous": (
        "epoch,accuracy,loss,mae,val_accuracy,val_loss,val_mae\n0,0.5,0.6,0.3,0.5,0.7,0.3\n",
        "{p} records both accuracy and mae, so the task is ambiguous. Pass --task classification "
        "(error = 1 - accuracy) or --task regression (error = mae).",
    ),
    "non_numeric": (
        HEADER + "0,0.5,0.6,0.5,0.7\n1,0.6,0.5,high,0.6\n",
        "{p} line 3, column val_accuracy: 'high' is not a number. A CSVLogger file holds one number per cell; "
        "fix or remove that line.",
    ),
    "nan_metric": (
        HEADER + "0,0.5,0.6,nan,0.7\n",
        "{p} line 2, column val_accuracy: nan while loss and val_loss are finite there. model.fit logs a finite "
        "val_accuracy wherever the loss is finite, so the line was edited or corrupted; fix or remove it.",
    ),
    "duplicate_epoch": (
        HEADER + "0,0.5,0.6,0.5,0.7\n1,0.6,0.5,0.6,0.6\n0,0.5,0.6,0.5,0.7\n",
        "{p} has epoch 0 twice (lines 2 and 4): CSVLogger(append=True) appended a second training to the same "
        "file. Keep one training per file: delete the other training's lines, or log each training to a file of "
        "its own.",
    ),
    "truncated": (
        HEADER + "0,0.5,0.6,0.5,0.7\n1,0.6,0.5\n",
        "{p} line 3 has 3 cells where the header has 5: the file is truncated, or a training with other metrics "
        "was appended to it (CSVLogger(append=True)). Keep one training per file.",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_exits_2_with_one_paragraph_naming_it(tmp_path, case):
    text, message = BAD[case]
    path = write(tmp_path, f"{case}.csv", text)
    result = invoke("diagnose", path)
    assert result.exit_code == 2, result.output
    assert flat(result.stderr) == flat("error: " + message.replace("{p}", str(path)))
    assert "Traceback" not in result.output and result.stdout == ""


def test_a_missing_csv_path_and_a_runs_own_history_are_named(tmp_path):
    missing = tmp_path / "histroy.csv"
    result = invoke("diagnose", missing)
    assert result.exit_code == 2 and flat(result.stderr) == (
        f"error: {missing} does not exist. Pass the file keras.callbacks.CSVLogger(filename) wrote, or a run "
        "directory."
    )
    (tmp_path / "status.json").write_text('{"state": "completed"}')
    history = write(tmp_path, "history.csv", OVERFIT)
    result = invoke("diagnose", history)
    assert result.exit_code == 2 and flat(result.stderr).startswith(
        f"error: {history} is the history.csv of the regcli run directory {tmp_path}: diagnose the directory instead"
    )


def test_csv_only_options_and_replay_say_where_they_apply(tmp_path):
    path = write(tmp_path, "overfit.csv", OVERFIT)
    result = invoke("diagnose", path, "--replay", "patience=2")
    assert result.exit_code == 2 and flat(result.stderr) == (
        f"error: --replay replays early stopping against a run's own settings and shipped epoch, which the "
        f"CSVLogger file {path} does not record. Leave out --replay, or pass the CSVLogger files to a diagnose "
        "command of their own."
    )
    result = invoke("diagnose", tmp_path / "runs" / "some-run", "--n-val", 30)
    assert result.exit_code == 2 and flat(result.stderr) == (
        "error: --n-val describes a Keras CSVLogger file, and none was passed: a run directory records its task, "
        "split sizes and diagnosis thresholds itself (summary.json, config.yaml). Leave it out."
    )
    result = invoke("diagnose", path, "--set", "model.l2=1e-3")
    assert result.exit_code == 2 and flat(result.stderr).startswith(
        "error: diagnose --set takes the diagnosis thresholds of a CSVLogger file: diagnosis.target_error,"
    )
    result = invoke("diagnose", path, "--task", "regression")
    assert result.exit_code == 2 and flat(result.stderr) == (
        f"error: --task regression needs an mae column, and {path} has none (columns: epoch, accuracy, loss, "
        'val_accuracy, val_loss). Add metrics=["mae"] to model.compile, or pass --task classification.'
    )


# --- a run directory and a CSV file in one command -------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real regcli run: breast_cancer, hidden [8], 2 epochs (wiring, not convergence)."""
    base = tmp_path_factory.mktemp("mixed")
    spec = base / "tiny.yaml"
    spec.write_text(yaml.safe_dump({
        "seed": 0, "data": {"source": "breast_cancer"}, "model": {"hidden": [8], "batchnorm": False},
        "training": {"epochs": 2, "early_stopping": {"enabled": False}},
    }))
    result = invoke("train", spec, "--out", base / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    return Path(result.stdout.splitlines()[0])


def test_a_run_directory_and_a_csv_file_are_diagnosed_together(run_dir, tmp_path):
    path = write(tmp_path, "overfit.csv", OVERFIT)
    (run_dir / "diagnosis.md").unlink(missing_ok=True)
    result = invoke("diagnose", run_dir, path, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [list(r)[0] for r in out] == ["run_dir", "csv_log"]
    assert out[1]["diagnosis"]["verdict"] == "high_variance" and out[0]["not_written"] is None
    assert (run_dir / "diagnosis.md").is_file() and listing(tmp_path) == {"overfit.csv": OVERFIT.encode()}


def test_a_bad_csv_file_among_run_directories_leaves_every_run_as_it_was(run_dir, tmp_path):
    bad = write(tmp_path, "bad.csv", "epoch,loss,val_loss\n0,0.6,0.7\n")
    (run_dir / "diagnosis.md").unlink(missing_ok=True)
    result = invoke("diagnose", run_dir, bad)
    assert result.exit_code == 2 and result.stdout == ""
    assert flat(result.stderr).startswith(f"error: {bad} records no accuracy or mae column")
    assert not (run_dir / "diagnosis.md").exists()  # read first, written only when every path read
