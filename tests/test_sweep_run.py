"""Sweeps that really train (tiny: breast_cancer, one hidden layer of 8, a few epochs).

Each test checks wiring end to end through the real command or library: worker
processes, the sweep-directory files, failure isolation, SIGKILL + --resume, Ctrl-C and
a real local Ray cluster. They check plumbing, not convergence.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import helpers
import pandas as pd
import pytest
import yaml
from helpers import wait_for

from regcli import rundir
from regcli.sweep import store
from regcli.sweep.aggregate import FINAL_TEST_SKIPPED_SMOKE
from regcli.sweep.run import prepare_sweep, run_sweep

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    # 3 epochs: these tests check wiring, not convergence
    "training": {"epochs": 3, "early_stopping": {"enabled": False}},
}


write_sweep = partial(helpers.write_sweep, base=BASE)


def cli_env(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def regcli(*args, timeout=300, env=None):
    """`python -m regcli ARGS` to completion (text)."""
    return subprocess.run(
        [sys.executable, "-m", "regcli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env or cli_env(), check=False,
    )


def start_regcli(*args, log, env=None):
    """`python -m regcli ARGS` in the background, in its own process group (so that it and
    its worker processes can be signalled together, as a terminal does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "regcli", *map(str, args)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env or cli_env(), start_new_session=True,
    )


def states(sweep_dir):
    trials = sweep_dir / store.TRIALS
    if not trials.is_dir():
        return {}
    return {p.name: store.trial_state(sweep_dir, p.name) for p in sorted(trials.iterdir())}


def only_sweep_dir(out):
    dirs = [p for p in Path(out).iterdir() if p.is_dir()] if Path(out).is_dir() else []
    return dirs[0] if len(dirs) == 1 else None


def epochs(run):
    return list(pd.read_csv(run / rundir.HISTORY)["epoch"])


# --------------------------------------------------------------------------------------
def test_grid_of_2x2_configurations_over_2_seeds_with_2_jobs(tmp_path):
    path = write_sweep(
        tmp_path,
        {"params": {"model.l2": [0.0, 1.0e-3], "model.dropout": [0.0, 0.3]}, "seeds": [0, 1]},
    )
    proc = regcli("sweep", path, "--jobs", 2, "--out", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = Path(proc.stdout.splitlines()[0])
    assert sweep_dir.parent == tmp_path / "runs" and sweep_dir.name.startswith("sweep-")

    results = pd.read_csv(sweep_dir / store.RESULTS)
    assert len(results) == 8 and set(results["status"]) == {"completed"}
    assert sorted(zip(results["model.l2"], results["model.dropout"], results["seed"], strict=True)) == sorted(
        (l2, d, s) for l2 in (0.0, 1e-3) for d in (0.0, 0.3) for s in (0, 1)
    )
    for column in ("best_epoch", "train_error", "val_error", "val_data_loss", "gap"):
        assert results[column].notna().all(), column
    assert not any("test" in c for c in results.columns)  # selection never sees the test split
    for run in results["run_dir"]:
        for name in rundir.RUN_FILES:
            assert (sweep_dir / run / name).is_file(), (run, name)
    executions = json.loads((sweep_dir / store.MANIFEST).read_text())["executions"]
    assert executions[0]["executor"] == "local, 2 worker(s) x 1 thread(s)"

    board = pd.read_csv(sweep_dir / store.LEADERBOARD)
    assert len(board) == 4 and list(board["rank"]) == [1, 2, 3, 4]
    assert {"val_data_loss_mean", "val_data_loss_std", "gap_mean", "gap_std"} <= set(board.columns)
    means = results.groupby("config")["val_data_loss"].agg(["mean", "std"])
    assert list(board["val_data_loss_mean"]) == pytest.approx(sorted(means["mean"]))
    assert board.set_index("config")["val_data_loss_std"].to_dict() == pytest.approx(means["std"].to_dict())

    best = json.loads((sweep_dir / store.BEST).read_text())
    assert best["config"] == means["mean"].idxmin() == board["config"][0]  # validation only
    assert best["metric"] == "val_data_loss" and best["mode"] == "min" and best["n_completed"] == 2
    assert best["runs"] == [f"trials/{best['config']}-s0", f"trials/{best['config']}-s1"]
    assert best["runner_up"]["config"] == board["config"][1] and best["within_noise"] in (True, False)
    assert best["final_test"] is None and not (tmp_path / "runs" / "test_ledger.jsonl").exists()
    for knob in ("model.l2", "model.dropout"):
        for kind in ("val", "gap"):
            png = sweep_dir / f"{kind}_vs_{knob}.png"
            assert png.is_file() and png.stat().st_size > 5000, png
    assert best["config"] in proc.stdout and "winner:" in proc.stdout


def test_a_failing_trial_is_recorded_and_the_others_complete(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    frame.to_csv(tmp_path / "good.csv", index=False)
    frame.to_csv(tmp_path / "doomed.csv", index=False)
    base = {**BASE, "data": {"path": "good.csv", "target": "label"}}
    path = write_sweep(tmp_path, {"params": {"data.path": ["good.csv", "doomed.csv"]}, "final_test": True}, base=base)
    plan = prepare_sweep(path, out=tmp_path / "runs", jobs=1)  # every trial spec is valid here...
    (tmp_path / "doomed.csv").unlink()  # ...and then a data file disappears
    result = run_sweep(plan)

    assert result.states == {"t000-path_good-s0": "completed", "t001-path_doomed-s0": "failed"}
    assert result.failed == ["t001-path_doomed-s0"]
    failed = result.sweep_dir / "trials" / "t001-path_doomed-s0"
    status = json.loads((failed / rundir.STATUS).read_text())
    assert status["state"] == "failed" and "doomed.csv" in status["error"] and status["ended"]
    assert (failed / rundir.CONFIG).is_file()  # what was attempted stays visible
    results = pd.read_csv(result.sweep_dir / store.RESULTS)
    assert list(results["status"]) == ["completed", "failed"]
    assert "doomed.csv" in results["error"][1]
    best = json.loads((result.sweep_dir / store.BEST).read_text())
    assert best["config"] == "t000-path_good"
    assert any(n.startswith("1 trial(s) failed: t001-path_doomed-s0 (") for n in best["notes"])
    # final_test: the winner only, once, through `regcli test`'s code path (its ledger and summary.json)
    assert best["final_test"]["run"] == best["shipped_run"] == "trials/t000-path_good-s0"
    assert 0 <= best["final_test"]["metrics"]["error"] <= 1 and best["final_test"]["consulted_before"] == 0
    ledger = [json.loads(line) for line in (tmp_path / "runs" / "test_ledger.jsonl").read_text().splitlines()]
    assert [e["run_name"] for e in ledger] == ["t000-path_good-s0"]
    summary = json.loads((result.sweep_dir / best["shipped_run"] / rundir.SUMMARY).read_text())
    assert summary["metrics"]["test"] == best["final_test"]["metrics"]


def test_a_smoke_sweep_skips_its_final_test_and_leaves_the_ledger_alone(tmp_path):
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1.0e-3, 1.0e-2]}, "final_test": True})
    proc = regcli("sweep", path, "--smoke", "--out", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = Path(proc.stdout.splitlines()[0])
    assert states(sweep_dir) == {"t000-l2_0-s0": "completed", "t001-l2_0.001-s0": "completed"}  # --smoke: 2 trials
    best = json.loads((sweep_dir / store.BEST).read_text())
    assert best["final_test"] is None and best["smoke"] is True
    assert best["final_test_skipped"] == FINAL_TEST_SKIPPED_SMOKE
    assert f"final_test skipped: {FINAL_TEST_SKIPPED_SMOKE}." in best["notes"]
    assert "note: final_test skipped: this is a --smoke sweep" in " ".join(proc.stderr.split())
    assert not (tmp_path / "runs" / "test_ledger.jsonl").exists()  # the test split was never consulted
    for trial in states(sweep_dir):
        assert "test" not in json.loads((sweep_dir / "trials" / trial / rundir.SUMMARY).read_text())["metrics"]
    # ... and `regcli test` refuses the smoke sweep's winner too.
    tested = regcli("test", sweep_dir / best["shipped_run"])
    assert tested.returncode == 2 and "was a --smoke run (2 epoch(s), 256 training rows)" in " ".join(tested.stderr.split())
    assert not (tmp_path / "runs" / "test_ledger.jsonl").exists()


def test_sigkill_then_resume_runs_every_trial_exactly_once(tmp_path):
    base = {**BASE, "training": {"epochs": 6, "early_stopping": {"enabled": False}}}
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}, "seeds": [0, 1]}, base=base)
    out = tmp_path / "runs"
    with open(tmp_path / "first.log", "w") as log:
        proc = start_regcli("sweep", path, "--jobs", 2, "--out", out, "--quiet", log=log)
        try:
            sweep_dir = wait_for(lambda: only_sweep_dir(out), 60, "the sweep directory")

            def mid_sweep():
                now = states(sweep_dir)
                done = [t for t, s in now.items() if s == "completed"]
                running = [t for t, s in now.items() if s == "running"]
                return now if done and running else None

            wait_for(mid_sweep, 240, "a completed trial while another runs")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, at once
            proc.wait()
    before = states(sweep_dir)
    completed = sorted(t for t, s in before.items() if s == "completed")
    snapshot = {
        t: {name: (sweep_dir / "trials" / t / name).read_bytes() for name in (rundir.HISTORY, rundir.STATUS, rundir.SUMMARY)}
        for t in completed
    }
    assert "running" in before.values()
    stale = json.loads((sweep_dir / store.LOCK).read_text())
    assert stale["pid"] == proc.pid  # the killed sweep's lock is still there

    other = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-2]}, "seeds": [0, 1]}, base=base, name="other.yaml")
    refused = regcli("sweep", other, "--resume", sweep_dir)
    assert refused.returncode == 2, refused.stderr
    assert "is not the sweep stored there (they differ in params.model.l2[1])" in " ".join(refused.stderr.split())

    lock_text = (sweep_dir / store.LOCK).read_text()
    with store.sweep_lock(sweep_dir):  # a live sweep holds the directory
        refused = regcli("sweep", "--resume", sweep_dir)
    (sweep_dir / store.LOCK).write_text(lock_text)  # the dead sweep's lock, as the kill left it
    assert refused.returncode == 2 and f"in use by another regcli sweep (pid {os.getpid()}" in " ".join(refused.stderr.split())

    resumed = regcli("sweep", "--resume", sweep_dir, "--jobs", 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"took over the stale lock of pid {proc.pid}" in " ".join(resumed.stderr.split())
    after = states(sweep_dir)
    assert len(after) == 4 and set(after.values()) == {"completed"}
    for t in completed:  # completed before the kill: untouched, byte for byte
        for name, data in snapshot[t].items():
            assert (sweep_dir / "trials" / t / name).read_bytes() == data, (t, name)
    executions = json.loads((sweep_dir / store.MANIFEST).read_text())["executions"]
    assert len(executions) == 2 and executions[1]["resume"] is True
    rerun = executions[1]["trials"]
    assert sorted(rerun + completed) == sorted(after)  # every trial exactly once: before the kill or after
    for t in after:
        assert epochs(sweep_dir / "trials" / t) == list(range(1, 7)), t  # no leftovers of a killed attempt
    assert len(pd.read_csv(sweep_dir / store.RESULTS)) == 4 and not (sweep_dir / store.LOCK).exists()


def test_ctrl_c_exits_130_and_leaves_the_sweep_consistent(tmp_path):
    base = {**BASE, "training": {"epochs": 200, "early_stopping": {"enabled": False}}}
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}}, base=base)
    out = tmp_path / "runs"
    with open(tmp_path / "log", "w") as log:
        proc = start_regcli("sweep", path, "--jobs", 2, "--out", out, log=log)
        try:
            sweep_dir = wait_for(lambda: only_sweep_dir(out), 60, "the sweep directory")
            wait_for(lambda: list(states(sweep_dir).values()) == ["running", "running"], 120, "both trials running")
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole process group
            assert proc.wait(timeout=60) == 130
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    output = (tmp_path / "log").read_text()
    assert set(states(sweep_dir).values()) == {"interrupted"}, output[-2000:]
    for trial in states(sweep_dir):
        status = json.loads((sweep_dir / "trials" / trial / rundir.STATUS).read_text())
        assert status["ended"] and "Ctrl-C" in status["error"]
    assert list(pd.read_csv(sweep_dir / store.RESULTS)["status"]) == ["interrupted", "interrupted"]
    assert f"regclisweep--resume{sweep_dir}" in "".join(output.split())  # (rich wraps long paths)
    assert "Traceback" not in output and not (sweep_dir / store.LOCK).exists()


def test_sweep_on_a_local_ray_cluster(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    home = tmp_path / "home"
    home.mkdir()
    # Ray's unix sockets live under its temp dir and must stay under ~107 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="regcli-ray-", dir="/tmp"))
    monkeypatch.setenv("HOME", str(home))  # Ray 2.60 writes its auth token to ~/.ray
    auth_mode = os.environ.get("RAY_AUTH_MODE")  # ray.init sets it to "token" for this process
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3, 1e-2]}, "seeds": [0, 1]})
    try:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(ray_tmp), log_to_driver=False)
        address = ray.get_runtime_context().gcs_address
        proc = regcli(
            "sweep", path, "--executor", "ray", "--address", address, "--smoke", "--out", tmp_path / "runs",
            env=cli_env(HOME=str(home)),
        )
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = Path(proc.stdout.splitlines()[0])
    assert states(sweep_dir) == {"t000-l2_0-s0": "completed", "t001-l2_0.001-s0": "completed"}  # --smoke: 2 trials
    for trial in states(sweep_dir):
        summary = json.loads((sweep_dir / "trials" / trial / rundir.SUMMARY).read_text())
        assert summary["epochs_run"] <= 2 and summary["n_train"] <= 256 and summary["smoke"] is True
    executions = json.loads((sweep_dir / store.MANIFEST).read_text())["executions"]
    assert executions[0]["executor"] == f"Ray cluster {address}, 1 CPU(s) per trial"
    assert json.loads((sweep_dir / store.BEST).read_text())["config"] in ("t000-l2_0", "t001-l2_0.001")
    assert (home / ".ray" / "auth_token").is_file()  # token auth was on, in our temporary home


def session_processes(sid):
    """{pid: name} of the live processes of session `sid`: a process started with `start_new_session`
    and everything it started, Ray's GCS, raylet and workers included (Linux /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            head, rest = stat.read_text().rsplit(")", 1)
            state, _ppid, _pgrp, session = rest.split()[:4]
            if int(session) == sid and state != "Z":
                found[int(stat.parent.name)] = head.split("(", 1)[1]
    return found


def tcp_endpoints(processes):
    """(name, state, local IP) of each listening or connected TCP socket that `processes` hold (Linux /proc)."""
    owners = {}
    for pid, name in processes.items():
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    owners[os.readlink(fd)] = name
    endpoints = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            state = {"0A": "LISTEN", "01": "ESTABLISHED"}.get(fields[3])
            if state and f"socket:[{fields[9]}]" in owners:
                raw = bytes.fromhex(fields[1].split(":")[0])  # 32-bit words in host (little-endian) order
                ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
                endpoints.append((owners[f"socket:[{fields[9]}]"], state, getattr(ip, "ipv4_mapped", None) or ip))
    return endpoints


def stop_session(proc):
    """SIGKILL `proc` (a session leader) if it still runs, then whatever is left of its session: no Ray left behind."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    for pid in session_processes(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ray_env(**extra):
    """The environment of a process that starts or reaches Ray in these tests, without the caller's Ray settings."""
    ours = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    return {k: v for k, v in cli_env(**extra).items() if k not in ours or k in extra}


def test_a_local_ray_sweep_listens_on_and_talks_to_127_0_0_1_only(tmp_path):
    pytest.importorskip("ray")
    # 100 epochs: the trials must still be running when the test looks at the sockets
    base = {**BASE, "training": {"epochs": 100, "early_stopping": {"enabled": False}}}
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}}, base=base)
    home = tmp_path / "home"
    home.mkdir()
    # Ray's unix sockets live under its temp dir and must stay under ~107 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="regcli-ray-", dir="/tmp"))
    env = ray_env(HOME=str(home), RAY_TMPDIR=str(ray_tmp))
    del env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]  # conftest's: regcli must keep its Ray on loopback by itself
    out = tmp_path / "runs"
    with open(tmp_path / "log", "w") as log:
        proc = start_regcli("sweep", path, "--executor", "ray", "--out", out, log=log, env=env)
        try:
            sweep_dir = wait_for(lambda: only_sweep_dir(out), 120, "the sweep directory")
            wait_for(lambda: "running" in states(sweep_dir).values(), 240, "a trial running on the local Ray")
            processes = session_processes(proc.pid)
            endpoints = tcp_endpoints(processes)
            assert proc.wait(timeout=300) == 0, (tmp_path / "log").read_text()[-3000:]
            wait_for(lambda: not session_processes(proc.pid), 60, "the sweep's Ray processes to exit")
        finally:
            stop_session(proc)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    assert {"gcs_server", "raylet"} <= set(processes.values()), processes
    gcs = [ip for name, state, ip in endpoints if name == "gcs_server" and state == "LISTEN"]
    assert gcs and all(str(ip) == "127.0.0.1" for ip in gcs), gcs  # the GCS address is 127.0.0.1:PORT
    assert all(ip.is_loopback for _, _, ip in endpoints), [e for e in endpoints if not e[2].is_loopback]
    assert set(states(sweep_dir).values()) == {"completed"}


RAY_HEAD = """
import os, sys, ray
ray.init(num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[1], log_to_driver=False)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(ray.get_runtime_context().gcs_address)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
sys.stdin.read()  # the cluster lives until the test closes our stdin
ray.shutdown()
"""


def test_tune_on_a_ray_cluster_trains_every_batch_there(tmp_path):
    """`regcli tune --executor ray --address`: the base and the step's candidates are Ray tasks on that
    cluster (the tune stays connected from its first batch to its last), then the one final test."""
    pytest.importorskip("ray")
    # 3 epochs of 8 units: high bias, so the base is followed by one step of two candidates (3 trials).
    spec = {"name": "tiny", "data": {"source": "breast_cancer"},
            "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
            "training": {"epochs": 3, "early_stopping": {"enabled": False}}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    ray_tmp = Path(tempfile.mkdtemp(prefix="regcli-ray-", dir="/tmp"))  # unix sockets: short paths
    address_file = tmp_path / "address"
    # One home, token auth on both sides: regcli sends the token the head wrote there.
    env = ray_env(HOME=str(tmp_path / "home"), RAY_AUTH_MODE="token", RAY_TMPDIR=str(ray_tmp))
    with open(tmp_path / "head.log", "w") as log:
        head = subprocess.Popen([sys.executable, "-c", RAY_HEAD, str(ray_tmp), str(address_file)], stdin=subprocess.PIPE,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

        def head_address():
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            return address_file.exists() and address_file.read_text()

        try:
            address = wait_for(head_address, 120, "the Ray head's address")
            proc = regcli("tune", tmp_path / "tiny.yaml", "--executor", "ray", "--address", address, "--seeds", "0",
                          "--budget", "3", "--out", tmp_path / "runs", env=env)
            # Ray names each worker's log file after its pid: worker-<worker id>-<job id>-<pid>.out
            ray_workers = {int(p.stem.rsplit("-", 1)[1]) for p in ray_tmp.glob("session_*/logs/worker-*.out")}
            head.stdin.close()
            head.wait(timeout=60)
        finally:
            stop_session(head)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tune_dir = Path(proc.stdout.splitlines()[0].split()[-1])
    trials = sorted(p.name for p in (tune_dir / "trials").iterdir())
    assert len(trials) == 3 and trials[0].startswith("s0-base") and all(t.startswith("s1-") for t in trials[1:])
    assert {store.trial_state(tune_dir, t) for t in trials} == {"completed"}
    writers = {json.loads((tune_dir / "trials" / t / rundir.STATUS).read_text())["pid"] for t in trials}
    assert writers <= ray_workers, (writers, ray_workers)  # Ray's workers trained every batch, not regcli's
    best = json.loads((tune_dir / "best.json").read_text())
    assert best["trials_used"] == 3 and best["final_test"]["run"] == best["shipped_run"]


def test_a_ray_cluster_that_refuses_our_token_is_named_with_the_token_path(tmp_path):
    pytest.importorskip("ray")
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}})
    for who in ("head", "regcli"):  # two clusters' tokens: a stale one left in regcli's home
        (tmp_path / who / ".ray").mkdir(parents=True)
        (tmp_path / who / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    ray_tmp = Path(tempfile.mkdtemp(prefix="regcli-ray-", dir="/tmp"))
    address_file = tmp_path / "address"
    with open(tmp_path / "head.log", "w") as log:
        head = subprocess.Popen(
            [sys.executable, "-c", RAY_HEAD, str(ray_tmp), str(address_file)], stdin=subprocess.PIPE,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=ray_env(HOME=str(tmp_path / "head"), RAY_AUTH_MODE="token", RAY_TMPDIR=str(ray_tmp)),
        )

        def head_address():
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            return address_file.exists() and address_file.read_text()

        try:
            address = wait_for(head_address, 120, "the Ray head's address")
            proc = regcli(
                "sweep", path, "--executor", "ray", "--address", address, "--out", tmp_path / "runs",
                env=ray_env(HOME=str(tmp_path / "regcli"), RAY_AUTH_MODE="token", RAY_TMPDIR=str(ray_tmp)),
            )
            head.stdin.close()
            head.wait(timeout=60)
        finally:
            stop_session(head)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    assert address.startswith("127.0.0.1:"), address
    assert proc.returncode == 2, proc.stderr[-3000:]
    token = tmp_path / "regcli" / ".ray" / "auth_token"
    expected = (
        f"--address {address}: the Ray cluster there refused regcli's authentication token, read from {token} "
        f"(a token left there by another cluster is refused). Put this cluster's token in {token} "
        f"(`ray get-auth-token` on its head node prints it), or set RAY_AUTH_TOKEN_PATH to a file that holds it."
    )
    assert "".join(expected.split()) in "".join(proc.stderr.split()), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
