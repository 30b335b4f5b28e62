"""`regcli test` and `ls` as users run them, and what every read command shares: real tiny runs,
real subprocesses (`regcli compare` on hand-written run directories: tests/test_compare.py).

Two runs are trained once per module (breast_cancer, hidden [8], 2 epochs, no early
stopping: these tests check wiring, not convergence) and copied into each test's tmp_path,
so no test sees another's ledger or rewritten summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from helpers import flat

from regcli import rundir
from regcli.commands.final_test import consultation_warning
from regcli.commands.ledger import LEDGER, default_ledger, read_ledger
from regcli.commands.listing import best_cell, list_runs
from regcli.experiment import run_experiment
from regcli.modelfile import allowed_module
from regcli.spec import load_experiment_spec

TINY = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def regcli(*args, cwd, timeout=120, importtime=False):
    """Runs `python -m regcli ARGS` and returns the CompletedProcess (text)."""
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, "-m", "regcli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV, check=False,
    )


def spawn(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "regcli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=ENV,
    )


def imported(stderr: str) -> set[str]:
    """Module names from `-X importtime` output."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:") and "|" in line}



def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def summary_of(run: Path) -> dict:
    return json.loads((run / rundir.SUMMARY).read_text())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two completed runs that differ only in model.l2, and a --smoke run of the first spec."""
    base = tmp_path_factory.mktemp("trained")
    runs = []
    for l2, smoke in ((0.0, False), (1e-3, False), (0.0, True)):
        spec_path = base / f"spec-{l2}.yaml"
        spec_path.write_text(yaml.safe_dump({**TINY, "model": {**TINY["model"], "l2": l2}}))
        runs.append(run_experiment(load_experiment_spec(spec_path), out=base / "runs", smoke=smoke).run_dir)
    return SimpleNamespace(a=runs[0], b=runs[1], smoke=runs[2])


def copy_run(run: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(run, out / run.name))


# --- regcli test -----------------------------------------------------------------------


def test_test_adds_metrics_test_appends_the_ledger_and_warns_on_later_looks(trained, tmp_path):
    run = copy_run(trained.a, tmp_path / "runs")
    ledger = tmp_path / "runs" / LEDGER
    before = summary_of(run)
    assert before["n_test"] == 114 and before["smoke"] is False

    # Two looks at once (2 processes: cheaper than one after another, and it checks the lock):
    # both are recorded, counted 0 and 1, and the later look warns.
    procs = [spawn("test", run, cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0], results
    (first,) = [(out, err) for _, out, err in results if "looked at 0 time(s) before" in out]
    (second,) = [(out, err) for _, out, err in results if "looked at 1 time(s) before" in out]
    assert "warning" not in first[1] and f"recorded in {ledger}" in first[0] and f"recorded in {ledger}" in second[0]
    assert (
        f"warning: this test split (fingerprint {before['data']['test_fingerprint'][:12]}) was consulted 1 time(s) "
        f"before, by {run.name}. Each look that informs a choice makes the test error an optimistic estimate: "
        f"keep the test set for the end and select on validation only."
    ) in flat(second[1])

    after = summary_of(run)
    test = after["metrics"].pop("test")
    assert after == before  # every other key kept as it was
    assert set(test) == {"loss", "data_loss", "accuracy", "error"}
    assert test["error"] == pytest.approx(1 - test["accuracy"])
    entries = read_ledger(ledger)
    assert sorted(e["consulted_before"] for e in entries) == [0, 1]
    for entry in entries:
        assert entry["test_fingerprint"] == before["data"]["test_fingerprint"]
        assert entry["run"] == str(run.absolute()) and entry["run_name"] == run.name
        assert entry["data"] == {"source": "breast_cancer", "path": None}
        assert entry["n_test"] == before["n_test"] == 114 and entry["time"].endswith("Z")
        assert entry["metrics"] == test  # inference mode: the same numbers every time


def test_test_refuses_a_smoke_run_before_keras_and_the_test_split_are_touched(trained, tmp_path):
    run = copy_run(trained.smoke, tmp_path / "runs")
    summary = summary_of(run)
    assert summary["smoke"] is True and summary["epochs_run"] == 2 and summary["n_train"] == 256
    before = snapshot(tmp_path)
    proc = regcli("test", run, cwd=tmp_path, importtime=True)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert flat(" ".join(errors)) == (
        f"error: {run} was a --smoke run (2 epoch(s), 256 training rows): its test result would mean nothing "
        f"and would spend the test split. Train it for real (the same spec without --smoke) and test that run; "
        f"the test split is not looked at."
    )
    assert proc.stdout == "" and not {"tensorflow", "keras"} & imported(proc.stderr)
    assert snapshot(tmp_path) == before and not (tmp_path / "runs" / LEDGER).exists()
    # environment.json alone says so too (a summary.json written before summary recorded `smoke`)
    (run / rundir.SUMMARY).write_text(json.dumps({k: v for k, v in summary.items() if k != "smoke"}))
    proc = regcli("test", run, cwd=tmp_path)
    assert proc.returncode == 2 and "was a --smoke run" in flat(proc.stderr), proc.stderr
    assert not (tmp_path / "runs" / LEDGER).exists()


def test_consultation_warning_names_each_earlier_run_once_with_its_count():
    result = {"consulted_before": 3, "previous_runs": ["a", "b", "a"], "test_fingerprint": "0123456789abcdef"}
    assert consultation_warning(result).startswith(
        "this test split (fingerprint 0123456789ab) was consulted 3 time(s) before, by a (2x), b. "
    )
    assert consultation_warning({**result, "consulted_before": 0, "previous_runs": []}) is None


def test_the_ledger_lives_beside_the_runs_and_a_sweep_trial_shares_its_sweeps(tmp_path):
    assert default_ledger(tmp_path / "runs" / "bc-x") == (tmp_path / "runs" / LEDGER).absolute()
    sweep = tmp_path / "runs" / "l2-sweep"
    (sweep / "trials" / "t0").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text("base: x.yaml\n")
    assert default_ledger(sweep / "trials" / "t0") == (tmp_path / "runs" / LEDGER).absolute()


def _make_running(run: Path, pid: int) -> None:
    status = json.loads((run / rundir.STATUS).read_text())
    (run / rundir.STATUS).write_text(json.dumps({**status, "state": "running", "ended": None, "pid": pid}))


def _edit_summary(run: Path, **changes) -> None:
    summary = summary_of(run)
    data = {**summary.get("data", {}), **changes.pop("data", {})}
    (run / rundir.SUMMARY).write_text(json.dumps({**summary, **changes, "data": data}))


BROKEN = {
    # case: (how to break a copy of a completed run, text the one-paragraph error must contain)
    "still running": (lambda run: _make_running(run, os.getpid()), "still training"),
    "killed while running": (lambda run: _make_running(run, dead_pid()), "regcli train --resume"),
    "failed": (lambda run: (run / rundir.STATUS).write_text(json.dumps({"state": "failed", "error": "boom"})), "state failed (boom)"),
    "zero-byte model": (lambda run: (run / rundir.MODEL).write_bytes(b""), "model.keras is empty (0 bytes)"),
    "corrupt model": (lambda run: (run / rundir.MODEL).write_bytes(b"not a zip archive"), "not a .keras archive"),
    "truncated summary": (lambda run: (run / rundir.SUMMARY).write_text('{"best_epoch": 2, "metr'), "not valid JSON"),
    "data changed": (lambda run: _edit_summary(run, data={"test_fingerprint": "0" * 64}), "has changed since the run was trained"),
    "no test split": (lambda run: _edit_summary(run, n_test=0), "has no test split (n_test 0"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_test_refuses_a_bad_run_with_exit_2_and_writes_nothing(trained, tmp_path, case):
    break_it, message = BROKEN[case]
    run = copy_run(trained.a, tmp_path / "runs")
    break_it(run)
    before = snapshot(tmp_path / "runs")
    proc = regcli("test", run, cwd=tmp_path)
    assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
    assert message in flat(proc.stderr), (case, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert snapshot(tmp_path / "runs") == before  # no ledger, no rewritten summary


def test_test_of_a_missing_run_dir_exits_2(tmp_path):
    proc = regcli("test", tmp_path / "runs" / "nothing-here", cwd=tmp_path)
    assert proc.returncode == 2 and "is not a directory" in flat(proc.stderr)
    assert "Traceback" not in proc.stderr


_APPEND = """
import sys, time
from pathlib import Path
from regcli.commands.ledger import append_entry
while time.time() < float(sys.argv[2]):  # start together: the lock, not luck, must keep lines whole
    time.sleep(0.001)
append_entry(Path(sys.argv[1]), {"test_fingerprint": "f" * 64, "run": sys.argv[3], "metrics": {"error": 0.1}})
"""


def test_ledger_appends_from_8_processes_are_all_kept_whole_and_counted_in_order(tmp_path):
    ledger = tmp_path / LEDGER
    old = [{"test_fingerprint": "f" * 64, "run": "old-1"}, {"test_fingerprint": "e" * 64, "run": "other"}]
    # ... and a torn last line without its newline, as a crash mid-write would leave it.
    ledger.write_text("".join(json.dumps(e) + "\n" for e in old) + '{"test_fingerprint": "ffff')
    start = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", _APPEND, str(ledger), str(start), f"run-{i}"], env=ENV)
        for i in range(8)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 8
    lines = ledger.read_text().splitlines()
    assert len(lines) == 3 + 8 and lines[2] == '{"test_fingerprint": "ffff'
    new = [json.loads(line) for line in lines[3:]]  # every appended line is whole, valid JSON
    assert sorted(e["run"] for e in new) == [f"run-{i}" for i in range(8)]
    assert [e["consulted_before"] for e in new] == list(range(1, 9))  # counted under the lock, in order


# --- regcli ls -------------------------------------------------------------------------


def test_ls_lists_runs_and_sweeps_marks_damaged_ones_and_does_not_import_tensorflow(trained, tmp_path):
    out = tmp_path / "runs"
    a, b = copy_run(trained.a, out), copy_run(trained.b, out)
    corrupt = Path(shutil.copytree(a, out / "corrupt-20260101T000000Z-aaaaaa"))
    text = (a / rundir.SUMMARY).read_text()
    (corrupt / rundir.SUMMARY).write_text(text[: len(text) // 2])
    stale = Path(shutil.copytree(b, out / "stale-20260102T000000Z-bbbbbb"))
    _make_running(stale, dead_pid())
    sweep = out / "l2-sweep-20260103T000000Z-cccccc"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text("base: x.yaml\nparams: {model.l2: [0.0]}\n")
    shutil.copytree(a, sweep / "trials" / "t0000")
    (out / LEDGER).write_text("")  # files beside the runs are not runs

    proc = regcli("ls", out, "--json", cwd=tmp_path, importtime=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "typer" in imported(proc.stderr) and not {"tensorflow", "keras"} & imported(proc.stderr)
    listing = json.loads(proc.stdout)
    entries = {e["name"]: e for e in listing}
    assert set(entries) == {a.name, b.name, corrupt.name, stale.name, sweep.name}
    started = [e["started"] for e in listing]
    assert started == sorted(started) and list(entries).index(a.name) < list(entries).index(b.name)
    for run in (a, b):
        verdict = json.loads((run / rundir.DIAGNOSIS_JSON).read_text())["verdict"]
        history = pd.read_csv(run / rundir.HISTORY)
        lowest = history.loc[history["val_data_loss"].idxmin()]
        assert entries[run.name] | {"path": None} == {
            "kind": "run", "name": run.name, "path": None, "state": "completed",
            "started": json.loads((run / rundir.STATUS).read_text())["started"], "best_epoch": 2,
            "monitor": "val_loss", "best_value": summary_of(run)["best_value"],
            "best_validation": {"metric": "val_data_loss", "value": pytest.approx(lowest["val_data_loss"]),
                                "epoch": int(lowest["epoch"])},
            "verdict": verdict, "test_error": None, "problems": [],
        }
    assert entries[corrupt.name]["problems"] == ["summary.json truncated"]
    assert entries[corrupt.name]["state"] == "completed" and entries[corrupt.name]["verdict"] == entries[a.name]["verdict"]
    assert entries[stale.name]["state"] == "killed"
    assert entries[stale.name]["problems"] == [rundir.run_state(stale)[1]]
    assert entries[sweep.name]["kind"] == "sweep" and entries[sweep.name]["n_trials"] == 1
    assert entries[sweep.name]["trial_states"] == {"completed": 1}

    proc = regcli("ls", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in ("completed", "killed", "summary.json truncated", "1 trial(s): 1 completed", "shipped",
                 "best val_data_loss"):
        assert text in proc.stdout, text
    assert "val_loss" not in proc.stdout  # the penalized loss is not what "best validation" ranks on

    assert [e["name"] for e in list_runs(a)] == [a.name]  # a run directory lists itself
    assert [e["name"] for e in list_runs(sweep)] == ["t0000"]  # a sweep directory lists its trials

    proc = regcli("ls", cwd=tmp_path)  # default runs/ under the current directory
    assert proc.returncode == 0 and a.name in proc.stdout
    proc = regcli("ls", tmp_path / "absent", cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in flat(proc.stderr) and "Traceback" not in proc.stderr


def _hand_written_run(run: Path, val_loss: list[float], val_data_loss: list[float], shipped: int) -> Path:
    """A completed run directory from hand-written numbers: the files `ls` reads, nothing trained."""
    run.mkdir(parents=True)
    (run / rundir.STATUS).write_text(json.dumps({"state": "completed", "started": "2026-01-01T00:00:00Z"}))
    summary = {"best_epoch": shipped, "shipped_epoch": shipped, "monitor": "val_loss", "best_value": val_loss[shipped - 1],
               "metrics": {"train": {}, "val": {"loss": val_loss[shipped - 1], "data_loss": val_data_loss[shipped - 1]}}}
    (run / rundir.SUMMARY).write_text(json.dumps(summary))
    (run / rundir.DIAGNOSIS_JSON).write_text(json.dumps({"verdict": "high_variance"}))
    rows = [f"{e},{v + 0.1},{v},{d}" for e, (v, d) in enumerate(zip(val_loss, val_data_loss, strict=True), start=1)]
    (run / rundir.HISTORY).write_text("epoch,loss,val_loss,val_data_loss\n" + "\n".join(rows) + "\n")
    for name in (rundir.CONFIG, rundir.MODEL):
        (run / name).write_text("not read by ls\n")
    return run


def test_ls_shows_the_lowest_val_data_loss_and_its_epoch_not_the_shipped_val_loss(tmp_path):
    # Ranked on val_loss (penalty included), epoch 6 was shipped at 1.131; penalty-free, epoch 4 was best.
    out = tmp_path / "runs"
    run = _hand_written_run(out / "l2-20260101T000000Z-aaaaaa", [1.4, 1.3, 1.2, 1.15, 1.14, 1.131],
                            [0.61, 0.52, 0.49, 0.4736, 0.48, 0.55], shipped=6)
    (entry,) = list_runs(out)
    assert entry["best_epoch"] == 6 and entry["best_value"] == 1.131
    assert entry["best_validation"] == {"metric": "val_data_loss", "value": 0.4736, "epoch": 4}
    # Without a readable history.csv: summary.json's val data_loss at the shipped epoch.
    (run / rundir.HISTORY).write_text("epoch,loss,val_loss\n1,0.5,0.6\n")
    assert list_runs(out)[0]["best_validation"] == {"metric": "val_data_loss", "value": 0.55, "epoch": 6}
    (run / rundir.HISTORY).unlink()
    _hand_written_run(run.with_name("l2-20260101T000001Z-bbbbbb"), [1.0, 0.9], [0.5, 0.3], shipped=2)
    sweep = out / "l2-sweep-20260102T000000Z-cccccc"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text("base: x.yaml\n")
    (sweep / "best.json").write_text(json.dumps({"metric": "val_data_loss", "mode": "min", "config": "t001-l2_0.001",
                                                 "mean": 0.4123, "std": 0.01}))

    proc = regcli("ls", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "best val_data_loss" in line)  # a 2-line header
    assert "shipped" in lines[at] and "(epoch)" in lines[at + 1] and "best validation" not in proc.stdout
    rows = {line.split()[1]: line for line in proc.stdout.splitlines() if "-2026" in line}
    assert "0.55 (6)" in rows[run.name] and "0.3 (2)" in rows["l2-20260101T000001Z-bbbbbb"]
    assert "0.4123 (winner)" in rows[sweep.name]
    assert "1.131" not in proc.stdout
    listing = json.loads(regcli("ls", out, "--json", cwd=tmp_path).stdout)
    assert listing[-1]["best_validation"] == {"metric": "val_data_loss", "value": 0.4123, "epoch": None,
                                              "config": "t001-l2_0.001"}


def test_ls_names_the_metric_in_each_cell_when_a_sweep_selects_on_another():
    entries = [
        {"metric": "val_data_loss", "value": 0.4736, "epoch": 4},
        {"metric": "val_error", "value": 0.05, "epoch": None, "config": "t000"},
    ]
    assert [best_cell(e, None) for e in entries] == ["val_data_loss=0.4736 (4)", "val_error=0.05 (winner)"]
    assert best_cell(entries[0], "val_data_loss") == "0.4736 (4)" and best_cell(None, "val_data_loss") == "-"


# --- several run directories: diagnose RUN_DIR..., report DIR... ----------------------------


def test_diagnose_of_several_runs_prints_each_under_its_run_dir_and_json_is_a_list(trained, tmp_path):
    out = tmp_path / "runs"
    a, b = copy_run(trained.a, out), copy_run(trained.b, out)
    one = regcli("diagnose", a, "--json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    single = json.loads(one.stdout)
    assert isinstance(single, dict) and single["run_dir"] == str(a)  # one run: the object, as before
    for run in (a, b):
        (run / rundir.DIAGNOSIS_MD).unlink()

    proc = regcli("diagnose", a, b, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    both = json.loads(proc.stdout)
    assert [r["run_dir"] for r in both] == [str(a), str(b)] and both[0] == single
    assert both[1]["diagnosis"] == json.loads((b / rundir.DIAGNOSIS_JSON).read_text())
    assert all((run / rundir.DIAGNOSIS_MD).is_file() for run in (a, b))  # each run's files rewritten

    text = regcli("diagnose", a, b, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    heads = [f"{r['run_dir']}: {r['diagnosis']['verdict']}" for r in both]  # each block opens with run and verdict
    assert lines[0] == heads[0] and heads[1] in lines and lines.index(heads[1]) > 2
    assert lines[lines.index(heads[1]) - 1] == ""  # blocks separated by one blank line
    verdicts = {r["diagnosis"]["verdict"] for r in both}
    gate = regcli("diagnose", a, b, "--fail-on", both[1]["diagnosis"]["verdict"], cwd=tmp_path)
    assert gate.returncode == 1 and heads[1] in gate.stdout  # every run printed, then the gate's answer
    others = ",".join(v for v in ("high_bias", "diverged", "not_learning") if v not in verdicts)
    assert regcli("diagnose", a, b, "--fail-on", others, cwd=tmp_path).returncode == 0


def test_diagnose_or_report_of_several_runs_with_a_bad_one_writes_nothing(trained, tmp_path):
    out = tmp_path / "runs"
    a, b = copy_run(trained.a, out), copy_run(trained.b, out)
    (a / rundir.DIAGNOSIS_MD).unlink()
    (b / rundir.SUMMARY).write_text('{"best_epoch": 2, "metr')
    missing = out / "nothing-here"
    before = snapshot(out)
    proc = regcli("diagnose", a, missing, b, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    message = flat(proc.stderr)
    assert message.startswith(f"error: {missing} is not a directory.") and "Traceback" not in proc.stderr
    assert message.endswith(
        f"1 more of them cannot be diagnosed either: {b}. None of the 3 directories was diagnosed: fix or leave "
        f"out each bad one and run the command again."
    )
    report = regcli("report", a, missing, cwd=tmp_path)
    assert report.returncode == 2 and report.stdout == "", report.stderr
    assert flat(report.stderr).endswith(
        f"None of the 2 directories was reported: fix or leave out {missing} and run the command again."
    )
    assert snapshot(out) == before  # no diagnosis.md, no report.html

    (b / rundir.SUMMARY).write_bytes((trained.b / rundir.SUMMARY).read_bytes())
    proc = regcli("report", a, b, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(a / "report.html"), str(b / "report.html")]
    assert all((run / "report.html").read_text().startswith("<!DOCTYPE html>") for run in (a, b))


# --- read-only run directories -----------------------------------------------------------


@contextlib.contextmanager
def read_only(directory: Path):
    """`directory` bind-mounted read-only onto itself (root only); the test is skipped where no mount can be made."""
    made = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount {directory} (needs root): {made.stderr.strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], capture_output=True, text=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount {directory} read-only: {ro.stderr.strip()}")
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_diagnose_of_a_read_only_run_prints_the_diagnosis_then_exits_2_naming_the_file(trained, tmp_path):
    run = copy_run(trained.a, tmp_path / "runs")
    expected = json.loads(regcli("diagnose", run, "--json", cwd=tmp_path).stdout)["diagnosis"]
    before = snapshot(tmp_path / "runs")
    with read_only(run):
        proc = regcli("diagnose", run, "--json", cwd=tmp_path)
        text = regcli("diagnose", run, cwd=tmp_path)
        report = regcli("report", run, cwd=tmp_path)
        final = regcli("test", run, cwd=tmp_path)
    # The diagnosis is computed from the files, so it is printed; the files it could not refresh are named.
    assert proc.returncode == 2 and json.loads(proc.stdout)["diagnosis"] == expected
    assert text.returncode == 2 and expected["headline"] in text.stdout  # the printed answer, recommendations included
    assert all(f"{i}. {rec['text']}" in text.stdout for i, rec in enumerate(expected["recommendations"], start=1))
    for p in (proc, text):
        assert flat(p.stderr) == (
            f"error: {run / rundir.DIAGNOSIS_JSON} could not be rewritten: Read-only file system (errno 30, "
            f"EROFS). diagnosis.json and diagnosis.md were left as they were, so they may hold an older "
            f"diagnosis than the one above. Make {run} writable and run regcli diagnose again to refresh them."
        )
    assert report.returncode == 2 and f"{run / 'report.html'} could not be written: Read-only file system" in flat(report.stderr)
    assert final.returncode == 2 and f"{run} (the run directory) is not writable" in flat(final.stderr)
    for p in (proc, text, report, final):
        assert "Traceback" not in p.stdout + p.stderr
    assert snapshot(tmp_path / "runs") == before  # no ledger, no report, diagnosis files untouched


# --- one wording for a killed run ----------------------------------------------------------


def test_a_run_killed_by_sigkill_is_named_killed_the_same_way_by_every_command(trained, tmp_path):
    spec = tmp_path / "long.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "training": {**TINY["training"], "epochs": 100_000}}))
    out = tmp_path / "runs"
    proc = spawn("train", spec, "--out", out, "--quiet", cwd=tmp_path)
    try:
        deadline = time.time() + 120  # states, not times: wait until an epoch is on disk
        while not any(len(h.read_text().splitlines()) >= 2 for h in out.glob("*/history.csv")):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (run,) = [d for d in out.iterdir() if d.is_dir()]
    status = json.loads((run / rundir.STATUS).read_text())
    assert status["state"] == "running" and status["pid"] == proc.pid
    state, sentence = rundir.run_state(run)
    assert state == "killed" and sentence == (
        f"status.json says the run is still running, but its process (pid {proc.pid}) is gone: it was killed. "
        f"Resume it with `regcli train --resume {run}`."
    )
    before = snapshot(out)
    for args, doing in ((["diagnose", run], "diagnosed"), (["report", run], "reported"), (["test", run], "tested"),
                        (["compare", trained.a, run], "compared")):
        result = regcli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert flat(result.stderr) == f"error: {run} cannot be {doing}: {sentence}", args
    listing = regcli("ls", out, "--json", cwd=tmp_path)
    (entry,) = json.loads(listing.stdout)
    assert entry["state"] == "killed" and entry["problems"] == [sentence]
    table = regcli("ls", out, cwd=tmp_path).stdout
    squashed = "".join(c for c in table if not c.isspace() and c != "│")  # the problems column folds the sentence
    assert " killed " in table and "".join(sentence.split()) in squashed
    assert snapshot(out) == before


# --- model files regcli refuses ---------------------------------------------------------


def _crafted(run: Path, edit_config=None, extra: dict | None = None) -> None:
    """Rewrites run/model.keras with its config.json edited and extra archive members added."""
    path = run / rundir.MODEL
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    if edit_config:
        edit_config(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {**members, **(extra or {})}.items():
            archive.writestr(name, data)


def _initializer(module: str, class_name: str, config: dict):
    def edit(model_config):
        model_config["config"]["layers"][1]["config"]["kernel_initializer"] = {
            "module": module, "class_name": class_name, "config": config, "registered_name": None,
        }
    return edit


HOSTILE = {
    # case: (how to craft model.keras, what the one-paragraph refusal must say)
    "keras.utils.get_file": (
        lambda run: _crafted(run, _initializer("keras.utils", "get_file", {"origin": "http://203.0.113.1/x", "fname": "x"})),
        "refers to 'get_file' from module 'keras.utils' at config.layers.1.config.kernel_initializer of its "
        "config.json, which is not part of a Keras model",
    ),
    "module keras_evil": (
        lambda run: _crafted(run, _initializer("keras_evil", "GlorotUniform", {"seed": None})),
        "refers to 'GlorotUniform' from module 'keras_evil' at config.layers.1.config.kernel_initializer",
    ),
    "../ member": (
        lambda run: _crafted(run, extra={"../evil.txt": b"written outside"}),
        "holds the archive member '../evil.txt', whose name has a '..' component",
    ),
    "absolute member": (
        lambda run: _crafted(run, extra={"/tmp/evil.txt": b"written outside"}),
        "holds the archive member '/tmp/evil.txt', whose name is an absolute path",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_test_refuses_a_hostile_model_file_in_one_paragraph_before_keras_reads_it(trained, tmp_path, case):
    craft, message = HOSTILE[case]
    run = copy_run(trained.a, tmp_path / "runs")
    craft(run)
    before = snapshot(tmp_path)
    proc = regcli("test", run, cwd=tmp_path, importtime=True)
    assert proc.returncode == 2, (case, proc.stdout, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {run / rundir.MODEL} "), errors  # one paragraph
    assert message in errors[0] and "efusing to load it" in errors[0], errors[0]
    assert len(errors[0]) < 700 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert not {"tensorflow", "keras"} & imported(proc.stderr)  # refused before Keras is imported
    assert snapshot(tmp_path) == before and not (tmp_path / "evil.txt").exists()


def test_only_keras_and_its_model_packages_pass_the_module_allow_list():
    passing = ["keras", "keras.layers", "keras.regularizers", "keras.src.models.functional", "keras.optimizers.schedules"]
    refused = ["keras_evil", "keras_evil.layers", "kerasx", "keras.utils", "keras.src.utils", "keras.saving", "os"]
    assert [m for m in passing + refused if allowed_module(m)] == passing


def test_init_from_a_run_of_another_shape_is_refused_in_one_paragraph(trained, tmp_path):
    spec = tmp_path / "finetune.yaml"
    model = {**TINY["model"], "hidden": [16], "init_from": str(trained.a)}
    spec.write_text(yaml.safe_dump({**TINY, "model": model}))
    proc = regcli("train", spec, "--out", tmp_path / "runs", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(  # no Keras UserWarning, no weight tensors
        f"error: model.init_from: the weights in {trained.a / rundir.MODEL} do not fit the model this spec builds: "
    ), lines
    assert "(30, 8) in the file but (30, 16) here" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run directory left
