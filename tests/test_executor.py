"""The local executor's workers: recycling, and replacements started early with their backend preloaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from regcli.sweep import store
from regcli.sweep.executors import LocalExecutor, common_backend
from regcli.sweep.run import trial_tasks
from regcli.sweep.spec import load_sweep

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}


def sweep_tasks(tmp_path, params):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "name": "ex", "params": params, "seeds": [0]}))
    sweep = load_sweep(path)
    (tmp_path / store.TRIALS).mkdir()
    return trial_tasks(tmp_path, sweep, sweep.trials, packing=False, workers=1)


class Timeline:
    """Runs `executor` on `tasks`, noting when each worker process was started and each task ended."""

    def __init__(self, executor):
        self.events: list[tuple[str, str | int]] = []
        self.results: list[dict] = []
        spawn = executor._spawn

        def spawn_noted():
            worker = spawn()
            self.events.append(("spawn", worker.process.pid))
            return worker

        executor._spawn = spawn_noted
        self.executor = executor

    def run(self, tasks):
        def done(result):
            self.results.append(result)
            self.events.append(("done", result["trial"]))

        self.executor.run(tasks, on_start=lambda task: None, on_done=done)
        return self


def test_common_backend_is_shared_by_every_trial_or_none():
    tf = {"spec": {"backend": "tensorflow", "device": "cpu"}}
    pack = {"specs": [{"backend": "tensorflow", "device": "cpu"}] * 2}
    assert common_backend([tf, pack]) == ("tensorflow", "cpu")
    assert common_backend([tf, {"spec": {"backend": "jax", "device": "cpu"}}]) is None
    assert common_backend([tf, {"spec": {"backend": "tensorflow", "device": "gpu"}}]) is None
    # A JAX trial writing TensorBoard files (with tf.summary) selects its backend itself: preloaded
    # JAX workers keep TensorFlow out.
    jax_tb = {"spec": {"backend": "jax", "device": "cpu", "tracking": {"tensorboard": True}}}
    assert common_backend([jax_tb]) is None
    assert common_backend([{"spec": {"backend": "jax", "device": "cpu"}}]) == ("jax", "cpu")
    assert common_backend([{"spec": {"backend": "tensorflow", "device": "cpu", "tracking": {"tensorboard": True}}}]) \
        == ("tensorflow", "cpu")


def test_a_preloaded_worker_has_keras_on_its_backend_before_any_task():
    code = (
        "import sys; from regcli.training import backend; backend.OWN_PROCESS = True; "
        "from regcli.sweep.worker import preload; preload('tensorflow', 'cpu'); import keras; "
        "print(keras.backend.backend(), 'regcli.experiment' in sys.modules, 'matplotlib.pyplot' in sys.modules, "
        "'jax' in sys.modules and sys.modules['jax'] is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # regcli's own TensorFlow processes keep JAX out (TensorFlow would import it for nothing)
    assert out == ["tensorflow", "True", "True", "True"]


def test_jax_is_kept_out_only_of_regclis_own_processes():
    import keras  # noqa: F401 - this test process trains with TensorFlow in other tests

    from regcli.training import backend

    assert backend.OWN_PROCESS is False  # pytest is a library caller: nothing is kept out of it
    assert "jax" not in sys.modules or sys.modules["jax"] is not None


@pytest.mark.slow
def test_a_replacement_worker_starts_while_the_one_it_replaces_trains_its_last_trial(tmp_path):
    tasks = sweep_tasks(tmp_path, {"model.l2": [0.0, 1.0e-4, 1.0e-3]})
    timeline = Timeline(LocalExecutor(jobs=1, threads=1, trials_per_worker=1)).run(tasks)
    assert [r["state"] for r in timeline.results] == ["completed"] * 3
    assert len({r["pid"] for r in timeline.results}) == 3  # recycled after each trial
    kinds = [kind for kind, _ in timeline.events]
    # Each of the 3 workers was started before the previous one's (last) trial ended; none after the last.
    assert kinds == ["spawn", "spawn", "done", "spawn", "done", "done"]
    spawned = [pid for kind, pid in timeline.events if kind == "spawn"]
    assert spawned == [r["pid"] for r in timeline.results]
    for task in tasks:
        assert store.trial_state(tmp_path, task["trial"]) == "completed"


@pytest.mark.slow
def test_without_a_common_backend_a_replacement_starts_only_when_needed(tmp_path):
    tasks = sweep_tasks(tmp_path, {"model.l2": [0.0, 1.0e-4]})
    tasks[1]["spec"]["device"] = "cpu"  # the first asks for `auto`: workers cannot preload one backend
    assert tasks[0]["spec"]["device"] == "auto"
    timeline = Timeline(LocalExecutor(jobs=1, threads=1, trials_per_worker=1)).run(tasks)
    assert [r["state"] for r in timeline.results] == ["completed"] * 2
    assert [kind for kind, _ in timeline.events] == ["spawn", "done", "spawn", "done"]


@pytest.mark.slow
def test_a_worker_trains_several_packs_and_reuses_the_traced_model(tmp_path):
    """A pack costs PACK_RECYCLE_COST of a worker's budget, not its size: the worker that trained
    one pack trains the next, which reuses the fused model (and its traced steps) of the same shape."""
    import json

    from regcli.sweep.worker import PACK_RECYCLE_COST

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "name": "ex", "params": {"model.l2": [0.0, 1.0e-4, 1.0e-3, 1.0e-2]},
                                    "seeds": [0, 1]}))
    sweep = load_sweep(path)
    (tmp_path / store.TRIALS).mkdir()
    tasks = trial_tasks(tmp_path, sweep, sweep.trials, packing=True, workers=1)
    assert [len(t["pack"]) for t in tasks] == [4, 4]  # one pack per seed
    budget = 2 * PACK_RECYCLE_COST
    timeline = Timeline(LocalExecutor(jobs=1, threads=1, trials_per_worker=budget)).run(tasks)
    assert [r["state"] for r in timeline.results] == ["completed"] * 2
    assert len({r["pid"] for r in timeline.results}) == 1  # one worker trained both packs
    reused = []
    for task in tasks:
        for run_dir in task["run_dirs"]:
            summary = json.loads((Path(run_dir) / "summary.json").read_text())
            reused.append(summary["packed"]["reused_model"])
    assert reused == [False] * 4 + [True] * 4


@pytest.mark.slow
def test_a_kept_open_executor_serves_the_next_batch_with_the_same_worker(tmp_path):
    """A tune's batches come one after another: with keep_open the worker that trained the first
    (TensorFlow already imported) trains the second; close() stops it."""
    tasks = sweep_tasks(tmp_path, {"model.l2": [0.0, 1.0e-4]})
    executor = LocalExecutor(jobs=1, threads=1, keep_open=True)
    timeline = Timeline(executor)
    try:
        timeline.run(tasks[:1])
        (worker,) = executor._workers  # idle between the batches, not stopped
        assert worker.process.is_alive()
        timeline.run(tasks[1:])
    finally:
        executor.close()
    assert [r["state"] for r in timeline.results] == ["completed"] * 2
    assert [kind for kind, _ in timeline.events] == ["spawn", "done", "done"]  # one start for both batches
    assert len({r["pid"] for r in timeline.results}) == 1
    assert executor._workers == []
    worker.process.join(timeout=30)
    assert not worker.process.is_alive()


TRAIN_AND_REPORT = """
import sys
from regcli.cli import main
sys.argv = ["regcli", "train", sys.argv[1], "--out", sys.argv[2], "--quiet"]
try:
    main()
except SystemExit as exc:
    print("exit", exc.code)
import keras
print("loaded", keras.backend.backend(), sys.modules.get("tensorflow") is not None)
"""


@pytest.mark.slow
def test_a_jax_run_and_a_jax_sweep_never_import_tensorflow(tmp_path):
    """keras.utils.set_random_seed imports TensorFlow whenever it is installed (only to seed it): in
    regcli's own processes a JAX run keeps it out, in the command's process and in the sweep's workers."""
    import os

    pytest.importorskip("jax")
    env = {**{k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}, "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "backend": "jax"}))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"base": "base.yaml", "name": "jx",
                                                         "params": {"model.l2": [0.0, 1.0e-3]}, "seeds": [0]}))
    train = subprocess.run([sys.executable, "-c", TRAIN_AND_REPORT, str(tmp_path / "base.yaml"), str(tmp_path / "runs")],
                           capture_output=True, text=True, cwd=root, env=env, timeout=600)
    assert train.stdout.split("\n")[-3:-1] == ["exit 0", "loaded jax False"], train.stdout + train.stderr[-3000:]
    # The workers inherit PYTHONPROFILEIMPORTTIME: their imports are listed on stderr (regcli.training.packed
    # is imported by a worker's preload only), and none is TensorFlow's.
    sweep = subprocess.run([sys.executable, "-m", "regcli", "sweep", str(tmp_path / "sweep.yaml"), "--quiet",
                            "--out", str(tmp_path / "runs")], capture_output=True, text=True, cwd=root,
                           env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    modules = {line.split("|")[-1].strip() for line in sweep.stderr.splitlines() if line.startswith("import time:")}
    assert "regcli.training.packed" in modules
    assert not {m for m in modules if m.split(".")[0] == "tensorflow"}
    states = [json.loads(p.read_text())["state"] for p in (tmp_path / "runs").glob("**/status.json")]
    assert states == ["completed"] * 3  # the run and the sweep's two trials


def test_the_worker_launcher_starts_python_with_ctrl_c_ignored_and_falls_back_when_it_cannot_be_written(
    tmp_path, monkeypatch
):
    """The terminal's Ctrl-C must not kill a worker whose interpreter is still starting (it would print
    "Fatal Python error: init_import_site"): workers start through a launcher that ignores SIGINT."""
    from regcli.sweep.launch import launcher

    monkeypatch.setenv("REGCLI_CACHE_DIR", str(tmp_path / "cache"))
    path = launcher()
    assert path is not None and path.parent == tmp_path / "cache" / "bin"
    probe = "import signal, sys; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, sys.executable)"
    result = subprocess.run([str(path), "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", sys.executable], result.stderr
    assert launcher() == path  # reused, not rewritten
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("REGCLI_CACHE_DIR", str(blocked))
    assert launcher() is None  # cannot be written: LocalExecutor starts python itself
    assert not list(tmp_path.glob("a-file*/**"))
