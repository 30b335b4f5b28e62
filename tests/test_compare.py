"""`regcli compare` (regcli.commands.compare): hand-written run directories, exact numbers.

compare reads files only (no TensorFlow), so these run directories are written by hand:
two breast_cancer runs that differ in model.l2 (and a third in model.hidden), 3 epochs each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import flat
from typer.testing import CliRunner

from regcli import rundir
from regcli.cli import app
from regcli.commands.compare import (
    RESULTS,
    compare_runs,
    default_out,
    differing_keys,
    load_run,
    run_labels,
)
from regcli.errors import BadInputError, RunDirError

PNG = b"\x89PNG\r\n\x1a\n"
CONFIG = {
    "seed": 0,
    "data": {"source": "breast_cancer", "val_fraction": 0.2},
    "model": {"hidden": [8], "l2": 0.0, "dropout": 0.0},
    "training": {"epochs": 3, "early_stopping": {"enabled": False, "patience": 5}},
}



def write_run(parent: Path, name: str, *, model: dict | None = None, val_error: float = 0.05,
              train_error: float = 0.02, verdict: str | None = "good_fit", test_error: float | None = None) -> Path:
    """A completed run directory as regcli writes it: config, status, summary, history, diagnosis."""
    run = parent / name
    run.mkdir(parents=True)
    config = {**CONFIG, "model": {**CONFIG["model"], **(model or {})}}
    (run / rundir.CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    status = {"state": "completed", "started": "2026-01-01T00:00:00Z", "ended": "2026-01-01T00:00:09Z",
              "error": None, "pid": 1}
    (run / rundir.STATUS).write_text(json.dumps(status))
    metrics = {
        "train": {"loss": 0.09, "data_loss": 0.08, "accuracy": 1 - train_error, "error": train_error},
        "val": {"loss": 0.12, "data_loss": 0.11, "accuracy": 1 - val_error, "error": val_error},
    }
    if test_error is not None:
        metrics["test"] = {"error": test_error}
    summary = {"best_epoch": 2, "epochs_run": 3, "metrics": metrics, "penalty_share": 0.125}
    (run / rundir.SUMMARY).write_text(json.dumps(summary))
    (run / rundir.HISTORY).write_text(
        "epoch,loss,val_loss,val_data_loss,val_accuracy\n"
        "1,0.5,0.4,0.39,0.9\n2,0.2,0.12,0.11,0.95\n3,0.1,0.13,0.12,0.94\n"
    )
    if verdict is not None:
        (run / rundir.DIAGNOSIS_JSON).write_text(json.dumps({"verdict": verdict}))
    return run


# --- differing_keys and run_labels (pure) ---------------------------------------------------


def test_differing_keys_are_the_dotted_keys_whose_values_differ_with_none_where_a_config_lacks_one():
    a = {"model": {"l2": 0.0, "hidden": [8]}, "seed": 0}
    b = {"model": {"l2": 1e-3, "hidden": [8]}, "seed": 0, "data": {"path": "x.csv"}}
    assert differing_keys([a, b]) == {"model.l2": [0.0, 1e-3], "data.path": [None, "x.csv"]}
    assert differing_keys([a, a, a]) == {}


def test_differing_keys_index_explicit_layers_and_keep_plain_lists_whole():
    a = {"model": {"layers": [{"type": "dense", "units": 8}, {"type": "dropout", "rate": 0.1}], "hidden": [8, 4]}}
    b = {"model": {"layers": [{"type": "dense", "units": 16}, {"type": "dropout", "rate": 0.1}], "hidden": [8, 2]}}
    assert differing_keys([a, b]) == {"model.layers.0.units": [8, 16], "model.hidden": [[8, 4], [8, 2]]}


def test_run_labels_name_each_run_and_its_first_differing_knobs():
    knobs = {"model.l2": [0.0, 0.001234567], "model.dropout": [0.1, 0.2], "seed": [0, 1], "data.path": [None, "x"]}
    assert run_labels(["a", "b"], knobs) == [
        "#1 a (model.l2=0, model.dropout=0.1, seed=0)",
        "#2 b (model.l2=0.001235, model.dropout=0.2, seed=1)",
    ]
    assert run_labels(["a", "b"], knobs, max_knobs=1) == ["#1 a (model.l2=0)", "#2 b (model.l2=0.001235)"]
    assert run_labels(["a", "b"], {}) == ["#1 a", "#2 b"]


def test_default_out_is_the_runs_common_parent(tmp_path):
    assert default_out([tmp_path / "runs" / "a", tmp_path / "runs" / "b"]) == (tmp_path / "runs").absolute()
    assert default_out([tmp_path / "x" / "a", tmp_path / "y" / "b"]) == tmp_path.absolute()


# --- load_run and compare_runs ------------------------------------------------------------


def test_load_run_reads_the_results_that_matter_for_regularization(tmp_path):
    run = write_run(tmp_path, "a", val_error=0.05, train_error=0.02, test_error=0.04)
    loaded = load_run(run)
    assert {key: loaded[key] for key, _ in RESULTS} == {
        "best_epoch": 2, "epochs_run": 3, "val_data_loss": 0.11, "val_error": 0.05, "train_error": 0.02,
        "gap": pytest.approx(0.03), "penalty_share": 0.125, "verdict": "good_fit", "test_error": 0.04,
    }
    assert loaded["state"] == "completed" and loaded["name"] == "a" and loaded["config"]["model"]["l2"] == 0.0
    assert list(loaded["history"]["epoch"]) == [1, 2, 3]


def test_load_run_without_or_with_a_corrupt_diagnosis_names_it_in_the_verdict_row(tmp_path):
    assert load_run(write_run(tmp_path, "none", verdict=None))["verdict"] is None
    corrupt = write_run(tmp_path, "corrupt")
    (corrupt / rundir.DIAGNOSIS_JSON).write_text('{"verdict": "goo')
    assert load_run(corrupt)["verdict"] == "diagnosis.json corrupt"


def test_load_run_refuses_a_summary_without_train_and_val_metrics(tmp_path):
    run = write_run(tmp_path, "a")
    (run / rundir.SUMMARY).write_text(json.dumps({"best_epoch": 2, "metrics": {"val": {}}}))
    with pytest.raises(RunDirError) as err:
        load_run(run)
    assert str(err.value) == f"{run / rundir.SUMMARY} lacks metrics.train / metrics.val: it is corrupt. Retrain the run."


def test_compare_runs_finds_the_differing_knobs_and_writes_one_overlay_plot(tmp_path):
    a = write_run(tmp_path / "runs", "a", val_error=0.05, train_error=0.02)
    b = write_run(tmp_path / "runs", "b", model={"l2": 1e-3}, val_error=0.04, train_error=0.035, verdict="high_bias")
    result = compare_runs([a, b])
    assert result["runs"] == ["a", "b"] and result["run_dirs"] == [str(a), str(b)]
    assert result["knobs"] == {"model.l2": [0.0, 1e-3]}
    assert result["results"]["verdict"] == ["good_fit", "high_bias"]
    assert result["results"]["gap"] == [pytest.approx(0.03), pytest.approx(0.005)]
    assert result["results"]["test_error"] == [None, None]
    plot = Path(result["plot"])
    assert plot.parent == (tmp_path / "runs").absolute() and plot.name.startswith("compare-")
    assert plot.read_bytes().startswith(PNG) and plot.stat().st_size > 10_000


@pytest.mark.parametrize(
    "runs, message",
    [
        (["a"], "regcli compare needs at least 2 run directories. Received: 1."),
        (["a", "a"], "{a} was given twice: pass each run directory once."),
        (["a", "b/../a"], "{a2} was given twice (also as {a}): pass each run directory once."),
    ],
)
def test_compare_runs_needs_two_distinct_run_directories(tmp_path, runs, message):
    a = write_run(tmp_path, "a")
    write_run(tmp_path, "b")
    with pytest.raises(BadInputError) as err:
        compare_runs([tmp_path / r for r in runs], out=tmp_path / "plots")
    assert str(err.value) == message.format(a=a, a2=tmp_path / "b/../a")
    assert not (tmp_path / "plots").exists()


def test_compare_refuses_a_killed_run_in_the_shared_wording(tmp_path):
    a, b = write_run(tmp_path, "a"), write_run(tmp_path, "b")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (b / rundir.STATUS).write_text(json.dumps({"state": "running", "started": "2026-01-01T00:00:00Z", "pid": dead.pid}))
    with pytest.raises(RunDirError) as err:
        compare_runs([a, b])
    assert str(err.value) == f"{b} cannot be compared: {rundir.run_state(b)[1]}"


# --- the command ------------------------------------------------------------------------


def test_regcli_compare_json_reads_files_only_and_never_imports_tensorflow(tmp_path):
    a = write_run(tmp_path / "runs", "a")
    b = write_run(tmp_path / "runs", "b", model={"l2": 1e-3})
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "regcli", "compare", str(a), str(b), "--out", str(tmp_path / "plots"),
         "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "typer" in imported and not {"tensorflow", "keras"} & imported
    result = json.loads(proc.stdout)
    assert result["knobs"] == {"model.l2": [0.0, 0.001]} and Path(result["plot"]).parent == tmp_path / "plots"


def test_regcli_compare_table_shows_only_differing_knobs_and_skips_an_untested_test_row(tmp_path):
    a = write_run(tmp_path, "a")
    b = write_run(tmp_path, "b", model={"hidden": [16]})
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "model.hidden" in result.stdout and "val error" in result.stdout and "plot: " in result.stdout
    assert "model.l2" not in result.stdout and "data.source" not in result.stdout
    labels = [line.strip("│ ").split("  ")[0] for line in result.stdout.splitlines()]
    assert "val error" in labels and "test error" not in labels  # no run was tested: no row of dashes


def test_regcli_compare_of_a_missing_run_exits_2_in_one_line(tmp_path):
    a = write_run(tmp_path, "a")
    result = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "absent")])
    assert result.exit_code == 2, result.output
    assert flat(result.stderr) == (
        f"error: {tmp_path / 'absent'} is not a directory. Pass a run directory such as runs/<name>-<time>-<id>."
    )
    assert "Traceback" not in result.output
