"""`regcli train --resume`: a killed or interrupted run continues exactly where it stopped.

Real processes and signals: the run is SIGKILLed (or SIGINTed) mid-training, resumed,
and compared with an uninterrupted run of the same spec and seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

# 6000 rows, batch 32: about 190 steps per epoch, so an epoch takes long enough (~0.3-1 s)
# for the test to kill the process between epochs; BN and dropout exercise every state
# that must be restored (moving statistics, dropout RNG, Adam slots, early stopping).
SPEC = {
    "seed": 1,
    "data": {"source": "synthetic_classification", "params": {"n_samples": 10000, "n_features": 20}},
    "model": {"hidden": [32], "batchnorm": True, "dropout": 0.3, "l2": 1e-3},
    "training": {"epochs": 40, "learning_rate": 3e-3, "early_stopping": {"patience": 3, "min_delta": 1e-3}},
}


def regcli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "regcli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=ENV, check=False,
    )


def start(spec_path, out):
    return subprocess.Popen(
        [sys.executable, "-m", "regcli", "train", str(spec_path), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV,
    )


def wait_for_epochs(out, n, proc, timeout=300, checkpoint=False):
    """The run directory once history.csv has `n` epochs (and, with `checkpoint`, checkpoint.npz exists).

    States, not times: on a busy machine an epoch can take seconds, and the checkpoint is
    written after the first epoch, then at most every `CHECKPOINT_SECONDS`.
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        for history in out.glob("*/history.csv") if out.exists() else []:
            enough = len(history.read_text().splitlines()) >= n + 1
            if enough and (not checkpoint or (history.parent / "checkpoint.npz").is_file()):
                return history.parent
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    raise AssertionError(f"training never reached epoch {n}{' with a checkpoint' if checkpoint else ''} within {timeout} s")


def same_run(a: Path, b: Path):
    ha, hb = pd.read_csv(a / "history.csv"), pd.read_csv(b / "history.csv")
    cols = [c for c in ha.columns if c != "seconds"]
    pd.testing.assert_frame_equal(ha[cols], hb[cols], check_exact=True)
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    for key in ("best_epoch", "epochs_run", "stopped_early", "best_value"):
        assert sa[key] == sb[key], key
    assert sa["metrics"]["val"] == sb["metrics"]["val"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = tmp / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    proc = regcli("train", spec, "--out", tmp / "runs", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(proc.stdout.splitlines()[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] >= 6, "the reference must run long enough to be interrupted"
    return spec, run


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_or_interrupted_run_resumes_to_the_same_result(tmp_path, reference, sig):
    spec, ref = reference
    out = tmp_path / "runs"
    proc = start(spec, out)
    run = wait_for_epochs(out, 2, proc, checkpoint=True)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == ("running" if sig == signal.SIGKILL else "interrupted")
    assert (run / "checkpoint.npz").is_file()

    resumed = regcli("train", "--resume", run, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    assert not (run / "checkpoint.npz").exists()
    same_run(ref, run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_epoch"] >= 1  # the first epoch's checkpoint at least
    assert not list(run.glob(".*.tmp*"))


def test_resume_refuses_a_completed_run_a_live_one_and_extra_arguments(tmp_path, reference):
    spec, ref = reference
    proc = regcli("train", "--resume", ref)
    assert proc.returncode == 2 and "already completed" in proc.stderr
    proc = regcli("train", spec, "--resume", ref)
    assert proc.returncode == 2 and "CONFIG" in proc.stderr
    live = tmp_path / "live"
    live.mkdir()
    (live / "config.yaml").write_text((ref / "config.yaml").read_text())
    (live / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid()}))
    proc = regcli("train", "--resume", live)
    assert proc.returncode == 2 and "still running" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_with_a_corrupt_checkpoint_and_status_restarts_cleanly(tmp_path, reference):
    spec, ref = reference
    out = tmp_path / "runs"
    proc = start(spec, out)
    run = wait_for_epochs(out, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    (run / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    (run / "status.json").write_text('{"state": "runn')
    (run / ".history.csv.abc.tmp").write_text("partial")
    resumed = regcli("train", "--resume", run, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "unreadable" in resumed.stderr and "restarting the run from epoch 1" in resumed.stderr
    same_run(ref, run)
    assert not (run / ".history.csv.abc.tmp").exists()
