"""Sweeps pack compatible trials into one packed model: same files and results as unpacked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from regcli import rundir
from regcli.sweep import store
from regcli.sweep.console import TrialProgress
from regcli.sweep.executors import died
from regcli.sweep.run import pack_label, prepare_sweep, run_sweep, run_trials, trial_tasks
from regcli.sweep.spec import load_sweep
from regcli.training.packs import group_packs

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    # 3 epochs: this checks wiring and equality, not convergence
    "training": {"epochs": 3, "early_stopping": {"enabled": False}},
}
# 4 configurations x 1 seed, no dropout in the base: packed towers match separate runs exactly.
GRID = {"params": {"model.l2": [0.0, 1.0e-3], "model.batchnorm": [False, True]}, "seeds": [0]}


def test_group_packs_splits_by_key_size_and_workers():
    items = [(f"t{i}", "a" if i < 10 else None) for i in range(12)]
    assert [len(p) for p in group_packs(items)] == [5, 5, 1, 1]  # 10 alike: two packs of at most 8
    assert group_packs([("x", "a"), ("y", "b"), ("z", "a")]) == [["x", "z"], ["y"]]
    assert [len(p) for p in group_packs([(str(i), "a") for i in range(8)], workers=2)] == [4, 4]
    assert pack_label(["t000-l2_0-s0", "t007-l2_1-s0"]) == "pack of 2: t000..t007"
    assert group_packs([], workers=2) == []  # `sweep --resume` of a sweep whose every trial finished


def write(tmp_path, name):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "name": name, **GRID}, sort_keys=False))
    return path


class PackDies:
    """An executor whose pack tasks die (as when the OOM killer ends their worker); single trials complete."""

    def __init__(self):
        self.calls = []

    def describe(self):
        return "fake"

    def run(self, tasks, on_start, on_done):
        self.calls.append([t["trial"] for t in tasks])
        for task in tasks:
            on_start(task)
            if "pack" in task:
                on_done(died(task, "the worker process died"))
                continue
            run = Path(task["run_dir"])
            run.mkdir(parents=True, exist_ok=True)
            rundir.write_status(run, "completed")
            on_done({"trial": task["trial"], "state": "completed", "error": None, "seconds": 0.0, "pid": None})


def test_a_pack_that_fails_as_a_whole_is_retried_unpacked_once(tmp_path):
    sweep = load_sweep(write(tmp_path, "retry"))
    ids = [t.id for t in sweep.trials]
    tasks = trial_tasks(tmp_path, sweep, sweep.trials, packing=True, workers=1)
    assert [t.get("pack") for t in tasks] == [ids] and tasks[0]["trial"] == "pack of 4: t000..t003"
    executor = PackDies()
    run_trials(tmp_path, sweep, sweep.trials, tasks, executor, TrialProgress())
    assert executor.calls == [["pack of 4: t000..t003"], ids]
    assert [store.trial_state(tmp_path, t) for t in ids] == ["completed"] * 4


def run(tmp_path, name, pack):
    plan = prepare_sweep(write(tmp_path, name), out=tmp_path / "runs", jobs=1, pack=pack)
    return run_sweep(plan)


@pytest.mark.slow
def test_packed_sweep_matches_unpacked_sweep(tmp_path):
    packed, alone = run(tmp_path, "packed", True), run(tmp_path, "alone", False)
    assert packed.failed == [] and alone.failed == []
    rp = pd.read_csv(packed.sweep_dir / store.RESULTS)
    ra = pd.read_csv(alone.sweep_dir / store.RESULTS)
    assert list(rp.columns) == list(ra.columns) and list(rp["trial"]) == list(ra["trial"])
    pd.testing.assert_series_equal(rp["val_data_loss"], ra["val_data_loss"], rtol=1e-5, atol=1e-5)
    for trial in rp["trial"]:
        files = {p.name for p in (packed.sweep_dir / store.TRIALS / trial).iterdir()}
        assert files == {p.name for p in (alone.sweep_dir / store.TRIALS / trial).iterdir()}
        summary = rundir.read_json(packed.sweep_dir / store.TRIALS / trial / rundir.SUMMARY, "summary")
        assert summary["packed"]["size"] == 4
    execution = store.read_manifest(packed.sweep_dir)["executions"][-1]
    assert execution["packing"] == "auto" and execution["packs"] == [list(rp["trial"])]
    assert store.read_manifest(alone.sweep_dir)["executions"][-1]["packs"] == []

    # Resume re-runs only what did not finish: one failed trial, alone; the others stay untouched.
    first, redo = rp["trial"][0], rp["trial"][1]
    kept = (packed.sweep_dir / store.TRIALS / first / rundir.MODEL).stat().st_mtime_ns
    rundir.write_status(packed.sweep_dir / store.TRIALS / redo, "failed", "for this test")
    resumed = run_sweep(prepare_sweep(None, resume=packed.sweep_dir, jobs=1))
    assert resumed.ran == [redo] and resumed.failed == []
    assert (packed.sweep_dir / store.TRIALS / first / rundir.MODEL).stat().st_mtime_ns == kept
    assert store.read_manifest(packed.sweep_dir)["executions"][-1]["packs"] == []
