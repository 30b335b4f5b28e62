"""Faults and hostile input lose nothing: real processes, real limits, real files.

Each test injects one fault from docs/reliability.md and checks what regcli did and
that nothing finished was lost or half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
