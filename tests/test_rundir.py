"""regcli.rundir: atomic writes, the one run-directory reader (RunFiles), run_state, --out checks, the lock.

Real files in tmp_path, exact messages; no training.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from regcli import rundir
from regcli.errors import RunDirError
from regcli.rundir import RunFiles

HISTORY = "epoch,loss,val_loss\n1,0.5,0.6\n2,0.4,0.55\n"


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_run(tmp_path: Path, status: dict | None = None) -> Path:
    run = tmp_path / "bc-20260101T000000Z-abcdef"
    run.mkdir()
    (run / rundir.STATUS).write_text(json.dumps(status or {"state": "completed", "pid": 1}))
    return run


# --- atomic writes --------------------------------------------------------------------------


def test_atomic_write_bytes_replaces_the_file_with_the_usual_permissions_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")
    rundir.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and files_in(tmp_path) == ["summary.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        rundir.atomic_write_bytes(path, "not bytes")  # fails after the temp file was created
    assert path.read_text() == "old" and files_in(tmp_path) == ["summary.json"]


def test_atomic_write_files_changes_all_files_or_none(tmp_path):
    first, second = tmp_path / "diagnosis.json", tmp_path / "diagnosis.md"
    first.write_text("old json")
    with pytest.raises(FileNotFoundError):
        rundir.atomic_write_files({first: b"new json", tmp_path / "absent" / "x.md": b"new md"})
    assert first.read_text() == "old json" and files_in(tmp_path) == ["diagnosis.json"]
    rundir.atomic_write_files({first: b"new json", second: b"new md"})
    assert (first.read_text(), second.read_text()) == ("new json", "new md")
    assert files_in(tmp_path) == ["diagnosis.json", "diagnosis.md"]


def test_atomic_write_json_writes_plain_json_with_nan_and_inf_as_null(tmp_path):
    path = tmp_path / "summary.json"
    rundir.atomic_write_json(path, {"a": math.nan, "b": (1, math.inf), "c": Path("runs/x"), "d": 0.5})
    assert path.read_text() == '{\n  "a": null,\n  "b": [\n    1,\n    null\n  ],\n  "c": "runs/x",\n  "d": 0.5\n}\n'


def test_write_csv_leaves_missing_values_empty_and_keeps_floats_at_full_precision(tmp_path):
    path = tmp_path / "history.csv"
    rundir.write_csv(path, [{"epoch": 1, "loss": 0.1 + 0.2, "val_loss": None, "extra": 1}], ["epoch", "loss", "val_loss"])
    assert path.read_text() == "epoch,loss,val_loss\n1,0.30000000000000004,\n"


def test_remove_temp_files_deletes_what_a_crash_left_and_keeps_the_rest(tmp_path):
    for name in (".summary.json.x1.tmp", ".model.tmp.keras", "summary.json"):
        (tmp_path / name).write_text("x")
    assert sorted(rundir.remove_temp_files(tmp_path)) == [".model.tmp.keras", ".summary.json.x1.tmp"]
    assert files_in(tmp_path) == ["summary.json"]


def test_format_cell_shows_four_significant_digits_and_a_dash_for_missing():
    assert [rundir.format_cell(v) for v in (None, 0.0123456, 2, "good_fit", 1e-7)] == ["-", "0.01235", "2", "good_fit", "1e-07"]


# --- RunFiles: the one reader -----------------------------------------------------------------


def test_run_files_open_refuses_what_is_not_a_run_directory(tmp_path):
    with pytest.raises(RunDirError) as err:
        RunFiles.open(tmp_path / "absent")
    assert str(err.value) == f"{tmp_path / 'absent'} is not a directory. Pass a run directory such as runs/<name>-<time>-<id>."
    with pytest.raises(RunDirError) as err:
        RunFiles.open(tmp_path)
    assert str(err.value) == f"{tmp_path} is not a regcli run directory: it has no status.json or config.yaml."


def test_run_files_name_a_missing_truncated_or_foreign_json_file(tmp_path):
    run = make_run(tmp_path)
    files = RunFiles.open(run)
    with pytest.raises(RunDirError) as err:
        _ = files.summary
    assert str(err.value) == f"{run / 'summary.json'} is missing: the run summary has not been written (was the run interrupted?)."
    (run / rundir.SUMMARY).write_text('{"best_epoch": 2, "metr')
    with pytest.raises(RunDirError) as err:
        _ = files.summary
    assert str(err.value).startswith(f"{run / 'summary.json'} is not valid JSON (")
    assert str(err.value).endswith("): the file is truncated or corrupt.")
    (run / rundir.SUMMARY).write_text("[1, 2]")
    with pytest.raises(RunDirError) as err:
        _ = files.summary
    assert str(err.value) == f"{run / 'summary.json'} must hold a JSON object. Received: list."
    (run / rundir.SUMMARY).write_bytes(b"\xff\xfe{}")
    with pytest.raises(RunDirError) as err:
        _ = files.summary
    assert str(err.value) == f"{run / 'summary.json'} is not text: the file is corrupt."


def test_run_files_read_each_file_once(tmp_path):
    run = make_run(tmp_path)
    files = RunFiles.open(run)
    assert files.status["state"] == "completed"
    (run / rundir.STATUS).write_text(json.dumps({"state": "failed"}))
    assert files.status["state"] == "completed" and files.require_finished("diagnosed") == "completed"
    assert RunFiles(run).status["state"] == "failed"  # a new RunFiles reads the file again


@pytest.mark.parametrize(
    "text, problem",
    [
        (None, "is missing: no epoch of this run has been recorded."),
        ("", "is empty: no epoch of this run has been recorded."),
        ("epoch,loss,val_loss\n1,0.5", "ends in a partial line: the file is truncated."),
        ("epoch,accuracy\n1,0.5\n", "lacks the column(s) loss, val_loss: it is not a regcli history."),
    ],
)
def test_run_files_history_names_what_is_wrong_with_history_csv(tmp_path, text, problem):
    run = make_run(tmp_path)
    if text is not None:
        (run / rundir.HISTORY).write_text(text)
    with pytest.raises(RunDirError) as err:
        _ = RunFiles(run).history
    assert str(err.value) == f"{run / 'history.csv'} {problem}"


def test_run_files_history_is_a_dataframe_of_the_epochs(tmp_path):
    run = make_run(tmp_path)
    (run / rundir.HISTORY).write_text(HISTORY)
    history = RunFiles(run).history
    assert list(history.columns) == ["epoch", "loss", "val_loss"] and list(history["val_loss"]) == [0.6, 0.55]


def test_run_files_config_is_the_resolved_spec_as_a_mapping(tmp_path):
    run = make_run(tmp_path)
    with pytest.raises(RunDirError) as err:
        _ = RunFiles(run).config
    assert str(err.value) == f"{run / 'config.yaml'} is missing: this run directory has no resolved spec."
    (run / rundir.CONFIG).write_text("- a list\n")
    with pytest.raises(RunDirError) as err:
        _ = RunFiles(run).config
    assert str(err.value) == (
        f"{run / 'config.yaml'} cannot be read: Spec file {run / 'config.yaml'} must be a YAML mapping of keys such "
        f"as data:, model:, training:; its top level is a list."
    )
    (run / rundir.CONFIG).write_text("seed: 0\nmodel: {l2: 0.001}\n")
    assert RunFiles(run).config == {"seed": 0, "model": {"l2": 0.001}}


def test_run_files_environment_is_empty_for_a_run_without_one(tmp_path):
    run = make_run(tmp_path)
    assert RunFiles(run).environment == {}
    (run / rundir.ENVIRONMENT).write_text('{"smoke": true}')
    assert RunFiles(run).environment == {"smoke": True}


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, (None, "summary.json missing")),
        (b"  \n", (None, "summary.json empty")),
        (b'{"best_epoch": 2, "metr', (None, "summary.json truncated")),
        (b'{"best_epoch": 2,, "x": 1}', (None, "summary.json corrupt")),
        (b"\xff\xfe{}", (None, "summary.json corrupt (not text)")),
        (b"[1]", (None, "summary.json corrupt (not a JSON object)")),
        (b'{"best_epoch": 2}', ({"best_epoch": 2}, None)),
    ],
)
def test_run_files_probe_says_what_is_wrong_without_raising(tmp_path, content, expected):
    run = make_run(tmp_path)
    if content is not None:
        (run / rundir.SUMMARY).write_bytes(content)
    assert RunFiles(run).probe(rundir.SUMMARY) == expected


# --- run_state: the one rule -------------------------------------------------------------------


def test_run_state_of_an_ended_run_is_its_status_state(tmp_path):
    run = make_run(tmp_path, {"state": "diverged", "pid": 1})
    assert rundir.run_state(run) == ("diverged", None) == RunFiles(run).state()
    assert rundir.require_finished(run, RunFiles(run).status, "diagnosed") == "diverged"


def test_run_state_of_a_running_run_with_a_live_process_is_running(tmp_path):
    run = make_run(tmp_path, {"state": "running", "pid": os.getpid()})
    sentence = (
        f"status.json says the run is still running and its process (pid {os.getpid()}) is alive: it is "
        f"still training. Wait for it to finish."
    )
    assert rundir.run_state(run) == ("running", sentence)
    with pytest.raises(RunDirError) as err:
        RunFiles(run).require_finished("reported")
    assert str(err.value) == f"{run} cannot be reported: {sentence}"


@pytest.mark.parametrize("pid", ["dead", None, True, -3])
def test_run_state_of_a_running_run_whose_process_is_gone_is_killed(tmp_path, pid):
    pid = dead_pid() if pid == "dead" else pid
    run = make_run(tmp_path, {"state": "running", "pid": pid})
    sentence = (
        f"status.json says the run is still running, but its process (pid {pid}) is gone: it was killed. "
        f"Resume it with `regcli train --resume {run}`."
    )
    assert rundir.run_state(run) == (rundir.KILLED, sentence)
    with pytest.raises(RunDirError) as err:
        rundir.require_finished(run, RunFiles(run).status, "tested")
    assert str(err.value) == f"{run} cannot be tested: {sentence}"


# --- check_out_dir and run_lock -------------------------------------------------------------------


def test_check_out_dir_accepts_a_missing_directory_under_a_writable_one_and_creates_nothing(tmp_path):
    out = tmp_path / "runs" / "deep"
    assert rundir.check_out_dir(out) == out and files_in(tmp_path) == []


def test_check_out_dir_refuses_a_file_or_a_broken_link_on_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError) as err:
        rundir.check_out_dir(tmp_path / "file" / "runs")
    assert str(err.value) == (
        f"--out {tmp_path / 'file' / 'runs'}: {tmp_path / 'file'} is not a directory, so no run directory can be "
        f"made under it."
    )
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(RunDirError) as err:
        rundir.check_out_dir(tmp_path / "link" / "runs")
    assert str(err.value) == (
        f"--out {tmp_path / 'link' / 'runs'}: {tmp_path / 'link'} is a broken symbolic link. Choose another --out."
    )


def test_run_lock_refuses_a_second_holder_until_the_first_lets_go_and_writes_no_file(tmp_path):
    run = make_run(tmp_path)
    with rundir.run_lock(run):
        with pytest.raises(RunDirError) as err, rundir.run_lock(run):
            pass
        assert str(err.value) == (
            f"--resume {run}: another regcli process is training this run right now (it holds the run "
            f"directory's lock). Wait for it to finish, or stop it and resume again."
        )
    with rundir.run_lock(run):  # released on exit
        pass
    assert files_in(run) == ["status.json"]
