"""A sweep worker leaves each trial's learning-curve plot and final status to the sweep process
(regcli.finish, regcli.sweep.finisher): the worker trains on, and a trial is `completed` only
once its PNG exists."""

from __future__ import annotations

import json
import os

from helpers import write_sweep

from regcli import rundir
from regcli.sweep import store
from regcli.sweep.finisher import Finisher
from regcli.sweep.run import prepare_sweep, run_sweep, trial_tasks
from regcli.sweep.spec import load_sweep
from regcli.sweep.worker import run_task

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}


def tasks_for(tmp_path, params, packing):
    sweep = load_sweep(write_sweep(tmp_path, {"params": params, "seeds": [0]}, base=BASE))
    (tmp_path / store.TRIALS).mkdir()
    tasks = trial_tasks(tmp_path, sweep, sweep.trials, packing=packing, workers=1)
    for task in tasks:
        task["finish_in_sweep"] = True
    return tasks


def test_a_worker_hands_back_a_trained_trial_without_its_plot_and_the_finisher_completes_it(tmp_path):
    (task,) = tasks_for(tmp_path, {"model.l2": [0.0]}, packing=False)
    result = run_task(task)
    run = tmp_path / store.TRIALS / task["trial"]
    assert result["state"] == "completed" and result["finish"]["run_dir"] == str(run)
    assert (run / rundir.MODEL).is_file() and (run / rundir.DIAGNOSIS_JSON).is_file()
    assert not (run / rundir.CURVES).exists()
    assert json.loads((run / rundir.STATUS).read_text())["state"] == "running"  # not completed without its PNG
    seen = []
    finisher = Finisher()
    finisher.submit(result, seen.append)
    finisher.drain()
    assert seen == [result] and "finish" not in result
    status = json.loads((run / rundir.STATUS).read_text())
    assert status["state"] == "completed" and status["pid"] == os.getpid()  # the trial's worker (here: this test)
    assert (run / rundir.CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_packs_trials_are_each_handed_back_for_finishing(tmp_path):
    (task,) = tasks_for(tmp_path, {"model.l2": [0.0, 1e-3]}, packing=True)
    result = run_task(task)
    assert result["state"] == "completed" and len(result["results"]) == 2
    finisher = Finisher()
    for trial in result["results"]:
        assert "finish" in trial and not (tmp_path / store.TRIALS / trial["trial"] / rundir.CURVES).exists()
        finisher.submit(trial, lambda r: None)
    finisher.drain()
    for trial in result["results"]:
        run = tmp_path / store.TRIALS / trial["trial"]
        assert (run / rundir.CURVES).is_file() and rundir.read_json(run / rundir.STATUS, "status")["state"] == "completed"


def test_a_plot_that_cannot_be_written_fails_its_trial_and_nothing_else(tmp_path):
    (task,) = tasks_for(tmp_path, {"model.l2": [0.0]}, packing=False)
    result = run_task(task)
    run = tmp_path / store.TRIALS / task["trial"]
    (run / rundir.CURVES).mkdir()  # the PNG's path is taken: writing it fails
    finisher = Finisher()
    finisher.submit(result, lambda r: None)
    finisher.drain()
    assert result["state"] == "failed" and "learning_curves.png" in result["error"]
    assert rundir.read_json(run / rundir.STATUS, "status")["state"] == "failed"


def test_a_local_sweep_finishes_every_trial_in_the_sweep_process_with_its_plot(tmp_path):
    """Real worker processes: every trial ends completed with its PNG, its status naming the worker that trained it."""
    sweep = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3], "model.hidden": [[8], [16]]}, "seeds": [0]},
                        base=BASE)
    result = run_sweep(prepare_sweep(sweep, out=tmp_path / "runs", jobs=1))
    runs = sorted((result.sweep_dir / store.TRIALS).iterdir())
    assert len(runs) == 4
    pids = set()
    for run in runs:
        status = rundir.read_json(run / rundir.STATUS, "status")
        assert status["state"] == "completed" and (run / rundir.CURVES).is_file()
        pids.add(status["pid"])
    assert os.getpid() not in pids  # trained (and so named) by the workers, finished here
    execution = json.loads((result.sweep_dir / store.MANIFEST).read_text())["executions"][-1]
    assert execution["jobs"] == 1
