"""Faults and hostile input lose nothing: real processes, real limits, real files.

Each test injects one fault from docs/reliability.md and checks what regcli did and
that nothing finished was lost or half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TINY = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0},
    "training": {"epochs": 3, "early_stopping": {"enabled": False}},
}


def regcli(*args, timeout=240, shell_prefix=None):
    cmd = [sys.executable, "-m", "regcli", *map(str, args)]
    if shell_prefix:
        cmd = ["bash", "-c", f"{shell_prefix}; exec \"$@\"", "regcli", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=ENV, check=False)


def spec_file(tmp_path, raw=None):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw or TINY))
    return path


def assert_no_half_written_files(run: Path):
    """Every JSON parses, every CSV ends with a full line, no temp file is left behind."""
    assert not list(run.glob(".*.tmp*")), list(run.glob(".*"))
    for path in run.glob("*.json"):
        json.loads(path.read_text())
    for path in run.glob("*.csv"):
        text = path.read_text()
        assert text.endswith("\n")
        widths = {len(line.split(",")) for line in text.splitlines()}
        assert len(widths) == 1


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    proc = regcli("train", spec_file(tmp), "--out", tmp / "runs", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.splitlines()[0])


def test_file_size_limit_fails_cleanly_and_resume_repairs_it(tmp_path):
    out = tmp_path / "runs"
    # 40 KiB: history, JSON files and the model fit, the learning-curve PNG does not.
    proc = regcli("train", spec_file(tmp_path), "--out", out, "--quiet", shell_prefix="ulimit -f 40")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
    (run,) = out.iterdir()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "File too large" in status["error"]
    assert_no_half_written_files(run)
    assert len((run / "history.csv").read_text().splitlines()) == 4  # every epoch kept
    # Once space is back, --resume finishes the run from its checkpoint without retraining.
    resumed = regcli("train", "--resume", run, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    assert (run / "learning_curves.png").stat().st_size > 0
    assert json.loads((run / "summary.json").read_text())["resumed_from_epoch"] == 3


def test_unwritable_out_is_bad_input(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = regcli("train", spec_file(tmp_path), "--out", blocker / "runs", "--quiet")
    assert proc.returncode == 2 and "--out" in proc.stderr and "Traceback" not in proc.stderr
    proc = regcli("train", spec_file(tmp_path), "--out", "/proc/regcli-cannot-write-here", "--quiet")
    assert proc.returncode == 2 and "--out" in proc.stderr and "Traceback" not in proc.stderr


def test_two_trainings_into_the_same_out_never_collide(tmp_path):
    out = tmp_path / "runs"
    spec = spec_file(tmp_path)
    cmd = [sys.executable, "-m", "regcli", "train", str(spec), "--out", str(out), "--name", "same", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV) for _ in range(2)]
    results = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-1000:] for r in results]
    runs = sorted(out.iterdir())
    assert len(runs) == 2 and runs[0] != runs[1]
    for run in runs:
        assert json.loads((run / "status.json").read_text())["state"] == "completed"
        assert_no_half_written_files(run)


def _hostile_model(path: Path, kind: str) -> None:
    """Writes a real .keras file regcli must refuse: a Lambda layer, or a layer regcli never builds."""
    code = f"""
import os
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
inp = keras.Input((30,))
if "{kind}" == "lambda":
    out = keras.layers.Dense(1)(keras.layers.Lambda(lambda x: x * 2)(inp))
else:
    out = keras.layers.Dense(1)(keras.layers.LayerNormalization()(inp))
keras.Model(inp, out).save("{path}")
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=ENV, timeout=120)


@pytest.mark.parametrize("kind", ["lambda", "foreign"])
def test_hostile_model_files_are_refused_by_test_and_init_from(tmp_path, finished_run, kind):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _hostile_model(run / "model.keras", kind)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    proc = regcli("test", run)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert ("Lambda" if kind == "lambda" else "LayerNormalization") in proc.stderr
    assert "refusing" in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    raw = {**TINY, "model": {**TINY["model"], "init_from": str(run)}}
    out = tmp_path / "runs"
    proc = regcli("train", spec_file(tmp_path, raw), "--out", out, "--quiet")
    assert proc.returncode == 2 and "refusing" in proc.stderr and "Traceback" not in proc.stderr


def test_zero_byte_and_truncated_models_are_named(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "model.keras").write_bytes(b"")
    proc = regcli("test", run)
    assert proc.returncode == 2 and "model.keras" in proc.stderr and "Traceback" not in proc.stderr
    data = (finished_run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])
    proc = regcli("test", run)
    assert proc.returncode == 2 and "model.keras" in proc.stderr and "Traceback" not in proc.stderr


def test_diagnose_and_ls_name_a_truncated_history(tmp_path, finished_run):
    run = tmp_path / "runs" / finished_run.name
    shutil.copytree(finished_run, run)
    text = (run / "history.csv").read_text()
    (run / "history.csv").write_text(text[:-7])  # a crash mid-line
    proc = regcli("diagnose", run)
    assert proc.returncode == 2 and "history.csv" in proc.stderr and "truncated" in proc.stderr
    assert (run / "history.csv").read_text() == text[:-7]  # inputs are never rewritten
    proc = regcli("ls", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    assert finished_run.name[:20] in proc.stdout


# --------------------------------------------------------------------------------------
# Faults found by hand (issue "eleven faults"): each ends in exit 2/1/130, one paragraph,
# nothing half-written, status.json the truth.
# --------------------------------------------------------------------------------------
def one_paragraph(stderr: str) -> str:
    """The error paragraph of a failed command: no traceback, no Keras warnings, no blank line inside."""
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr[-3000:]
    text = stderr.strip()
    assert text.startswith("error:") and "\n\n" not in text, text[-3000:]
    return " ".join(text.split())


@pytest.mark.parametrize("case", ["freeze", "conv2d", "random_bytes", "lambda", "architecture"])
def test_model_errors_are_found_before_the_run_directory_exists(tmp_path, finished_run, case):
    model = dict(TINY["model"])
    if case == "freeze":
        model["freeze"] = [0, 1, 2, 3, 4, 5, 6]  # the 8-unit MLP has 3 layers
    elif case == "conv2d":
        model = {"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3}]}
    else:
        source = tmp_path / "source"
        shutil.copytree(finished_run, source)
        if case == "random_bytes":
            (source / "model.keras").write_bytes(os.urandom(2048))
        elif case == "lambda":
            _hostile_model(source / "model.keras", "lambda")
        else:
            model["hidden"] = [16]  # the source run has [8]
        model["init_from"] = str(source)
    out = tmp_path / "runs"
    proc = regcli("train", spec_file(tmp_path, {**TINY, "model": model}), "--out", out, "--quiet")
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = one_paragraph(proc.stderr)
    expected = {
        "freeze": "model.freeze.3 must be a layer index",
        "conv2d": "model.layers.0 is conv2d, which needs image-shaped data",
        "random_bytes": "is not a .keras archive",
        "lambda": "refusing",
        "architecture": "block1_dense/kernel has shape (30, 8) in the file but (30, 16) here",
    }[case]
    assert expected in message, message
    assert len(proc.stderr) < 1000, proc.stderr  # one paragraph, not the weight tensors
    assert not out.exists()  # exit 2 creates nothing, not even an empty --out


@pytest.fixture()
def tmpfs(tmp_path):
    """A real 8 KiB tmpfs (as root): the disk is full as soon as a run writes its first files."""
    mount = tmp_path / "full"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_at_the_start_of_a_run_leaves_nothing(tmp_path, tmpfs):
    proc = regcli("train", spec_file(tmp_path), "--out", tmpfs / "runs", "--quiet")
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = one_paragraph(proc.stderr)
    assert f"{tmpfs / 'runs'}: cannot write the run directory's first files (No space left on device" in message
    assert "nothing was kept" in message
    assert list((tmpfs / "runs").iterdir()) == []  # no run directory, no status.json saying `running`


def _killed_run(tmp_path) -> Path:
    """A run SIGKILLed after its first checkpoint: state `running`, its process gone."""
    raw = {**TINY, "data": {"source": "synthetic_classification", "params": {"n_samples": 4000, "n_features": 20}},
           "training": {"epochs": 40, "early_stopping": {"enabled": False}}}
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "regcli", "train", str(spec_file(tmp_path, raw)), "--out", str(out),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=ENV)
    deadline = time.monotonic() + 300
    try:
        while not list(out.glob("*/checkpoint.npz")):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    run = next(out.iterdir())
    assert json.loads((run / "status.json").read_text())["state"] == "running"
    return run


@pytest.fixture()
def read_only(tmp_path):
    """Bind-mounts a directory read-only (a real EROFS file system, as root)."""
    mounts = []

    def make(source: Path) -> Path:
        target = tmp_path / f"ro{len(mounts)}"
        target.mkdir()
        for cmd in (["mount", "--bind", str(source), str(target)], ["mount", "-o", "remount,ro,bind", str(target)]):
            made = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if made.returncode != 0:
                subprocess.run(["umount", str(target)], check=False)
                pytest.skip(f"cannot make a read-only bind mount here (needs root): {made.stderr.strip()}")
        mounts.append(target)
        return target

    try:
        yield make
    finally:
        for target in mounts:
            subprocess.run(["umount", "-l", str(target)], check=False)


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def test_resume_of_a_read_only_run_is_bad_input_and_changes_nothing(tmp_path, read_only):
    run = _killed_run(tmp_path)
    mounted = read_only(run.parent) / run.name
    before = _files(run)
    proc = regcli("train", "--resume", mounted, "--quiet")
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = one_paragraph(proc.stderr)
    assert f"--resume {mounted}: the run directory is not writable (a read-only file system)" in message
    assert _files(run) == before


def test_two_resumes_of_one_run_never_both_train(tmp_path):
    run = _killed_run(tmp_path)
    from regcli import rundir

    with rundir.run_lock(run):  # a resume in progress elsewhere holds the run directory's lock
        proc = regcli("train", "--resume", run, "--quiet")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "another regcli process is training this run right now" in one_paragraph(proc.stderr)
    assert json.loads((run / "status.json").read_text())["state"] == "running"  # untouched
    # Two started at the same moment: exactly one trains, the other is refused (by the lock,
    # or, should the first already have finished, because the run is completed).
    procs = [subprocess.Popen([sys.executable, "-m", "regcli", "train", "--resume", str(run), "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
             for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.communicate()[1]) for p in procs)
    assert [rc for rc, _ in results] == [0, 2], results
    refusal = one_paragraph(results[1][1])
    assert "another regcli process is training this run" in refusal or "already completed" in refusal
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    epochs = [line.split(",")[0] for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 41)]


@pytest.mark.parametrize("after", [0.5, 2.0, 4.0])
def test_ctrl_c_at_any_moment_of_a_train_exits_130_without_a_traceback(tmp_path, after):
    """Wherever Ctrl-C lands (interpreter start, the TensorFlow import, the data, training),
    regcli exits 130 with no traceback, and either created nothing or left state `interrupted`.
    The moments are spread out, not assumed: every outcome is checked whatever phase it hit."""
    raw = {**TINY, "training": {"epochs": 100000, "early_stopping": {"enabled": False}}}
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "regcli", "train", str(spec_file(tmp_path, raw)), "--out", str(out),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    runs = list(out.iterdir()) if out.exists() else []
    for run in runs:
        assert json.loads((run / "status.json").read_text())["state"] == "interrupted"
        assert_no_half_written_files(run)


@pytest.mark.parametrize("moment", ["workers starting", "trials running"])
def test_ctrl_c_of_a_sweep_while_its_workers_import_or_train_prints_no_traceback(tmp_path, moment):
    """The terminal's Ctrl-C reaches the sweep and every worker; one that is importing TensorFlow
    must not print `SystemError: ... __import__ returned a result with an exception set`."""
    from helpers import write_sweep

    base = {**TINY, "training": {"epochs": 100000, "early_stopping": {"enabled": False}}}
    sweep = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}}, base=base)
    out = tmp_path / "runs"
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "regcli", "sweep", str(sweep), "--jobs", "2", "--out", str(out)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV, start_new_session=True)
        deadline = time.monotonic() + 300
        try:
            def ready():
                statuses = list(out.glob("*/trials/*/status.json")) if moment == "trials running" else []
                return list(out.glob("*/sweep.yaml")) if moment == "workers starting" else len(statuses) == 2

            while not ready():
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()[-2000:]
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=120) == 130, (tmp_path / "log").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    output = (tmp_path / "log").read_text()
    assert "Traceback" not in output and "Exception ignored" not in output and "SystemError" not in output, output
    (sweep_dir,) = out.iterdir()
    for status in sweep_dir.glob("trials/*/status.json"):
        assert json.loads(status.read_text())["state"] == "interrupted", output
    assert not (sweep_dir / "sweep.lock").exists()
