"""One trial in a worker process (local or Ray): threads, backend, train, report.

`run_task(task)` is what every executor runs: `run_trial` trains one trial's spec into its
fixed directory `trials/<id>/` with `regcli.experiment.run_experiment` (the same code path as
`regcli train`), `run_pack` trains a pack of compatible trials as one packed model with
`regcli.experiment.run_packed` into the same directories; both return small dicts and the
results themselves are the files. Whatever
happens, the trial's status.json ends up telling the truth: `completed`, `diverged`,
`failed` (with the error) or `interrupted`.

`configure_threads(n)` must run in the worker before TensorFlow executes its first op:
N workers with TensorFlow's default pools (one thread per core each) oversubscribe the
machine (measured on 2 cores: 2 default workers ran at 0.81x the speed of one; 2 x 1
thread at 1.5-1.8x).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from regcli import interrupt, rundir
from regcli.errors import RegcliError

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def threads_per_worker(jobs: int, cores: int | None = None) -> int:
    """Intra-op threads for each of `jobs` concurrent trials: the cores shared out, at least 1."""
    from regcli.sweep.jobs import usable_cores

    return max(1, (cores or usable_cores()) // max(1, jobs))


def configure_threads(threads: int) -> None:
    """Caps this process's compute threads at `threads` (call before the first TensorFlow op).

    Sets the usual environment variables (OpenMP/BLAS, TensorFlow's; XLA's for JAX when the
    trial's backend is imported) and, once TensorFlow is imported, its intra-op pool to
    `threads` and its inter-op pool to 1: small models gain nothing from running independent
    ops side by side.
    """
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["REGCLI_TRIAL_THREADS"] = str(threads)


def _before_backend_import(backend: str) -> None:
    """JAX reads its thread settings from XLA_FLAGS when it starts: one thread, when asked."""
    if backend == "jax" and os.environ.get("REGCLI_TRIAL_THREADS") == "1" and "jax" not in sys.modules:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()


def _apply_tensorflow_threads() -> None:
    """Applies REGCLI_TRIAL_THREADS to TensorFlow's pools; a no-op once its context exists.

    Also quiets TensorFlow's Python logger: a worker builds one model per trial, and from the
    sixth on TensorFlow warns about "retracing", which is expected here and only noise.
    """
    threads = os.environ.get("REGCLI_TRIAL_THREADS")
    if sys.modules.get("tensorflow") is None:  # not imported, or kept out of a JAX worker
        return
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if not threads:
        return
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised by an earlier trial in this process
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)


def _select_backend(spec: Any) -> None:
    from regcli.training import backend

    _before_backend_import(spec.backend)
    backend.select(spec.backend, spec.device, tensorflow_needed=spec.tracking.tensorboard)
    backend.import_keras_quietly()
    _apply_tensorflow_threads()


def preload(backend_name: str, device: str) -> None:
    """Imports Keras with `backend_name` and the training modules before the first task arrives.

    A worker spends its first seconds on these imports (~5 s for TensorFlow here); done at
    start, they overlap whatever the sweep does meanwhile (another worker's last trial).
    Never raises: a trial that cannot select its backend reports that itself.
    """
    from regcli.training import backend

    try:
        _before_backend_import(backend_name)
        backend.select(backend_name, device)
        backend.import_keras_quietly()
        _apply_tensorflow_threads()
        import regcli.data  # noqa: F401
        import regcli.experiment  # noqa: F401
        import regcli.training.packed  # noqa: F401 - the training path: fit, feed, callbacks, model, stack
        from regcli.plots import pyplot

        pyplot()  # matplotlib (Agg) for each trial's learning_curves.png
    except Exception:  # noqa: BLE001 - the task's own _select_backend raises it properly
        pass


# What a pack costs in a worker's recycling budget (`TRIALS_PER_WORKER` in executors), where a
# trial costs 1. Measured here (quickstart model, packs of 8; `benchmarks/perf.py`, Memory): a
# pack that reuses the last pack's traced model grows a worker's memory less than one separate
# trial does (~9 vs ~12 MB), one that builds its fused model about as much as two (~20 MB). A
# sweep's packs mostly share a shape (seeds x values), so a pack costs 1: a worker trains up to
# 8 packs, and all but its first reuse the traced model (`regcli.training.packed`).
PACK_RECYCLE_COST = 1


def recycle_cost(task: dict[str, Any]) -> int:
    """A task's cost in its worker's recycling budget: 1 for a trial, `PACK_RECYCLE_COST` for a pack."""
    return PACK_RECYCLE_COST if "pack" in task else 1


def _finishing(task: dict[str, Any]):
    """With `task["finish_in_sweep"]` (the local executor's tasks), each run's plot and final status are
    left to the sweep process (`regcli.finish`, `regcli.sweep.finisher`): this worker trains on."""
    from regcli import finish

    return finish.deferred() if task.get("finish_in_sweep") else contextlib.nullcontext()


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """What executors run: one trial (`run_trial`) or one pack of trials (`run_pack`); never raises."""
    return run_pack(task) if "pack" in task else run_trial(task)


def run_trial(task: dict[str, Any]) -> dict[str, Any]:
    """Trains one trial into `task["run_dir"]`; never raises.

    Args:
        task: `{"trial": id, "spec": resolved experiment spec (dict), "run_dir": absolute path,
            "smoke": bool}`.

    Returns:
        `{"trial", "state", "error", "seconds", "pid"}`; the run directory holds the rest.
    """
    from regcli.experiment import run_experiment
    from regcli.spec import validate_experiment

    started = time.perf_counter()
    run_dir = Path(task["run_dir"])
    state, error, pending = "failed", None, None
    try:
        spec = validate_experiment(task["spec"], run_dir.parent, source=f"trial {task['trial']}")
        _select_backend(spec)
        with contextlib.redirect_stdout(sys.stderr), _finishing(task):  # stdout belongs to the sweep's summary
            outcome = run_experiment(spec, out=run_dir.parent, run_dir=run_dir, smoke=bool(task.get("smoke")))
        state, pending = outcome.state, outcome.finish
        if state == "diverged":
            error = "the loss became NaN or infinite"
    except KeyboardInterrupt:
        state, error = "interrupted", "interrupted by the user (Ctrl-C)"
    except RegcliError as exc:
        state = "interrupted" if exc.exit_code == 130 else "failed"
        error = str(exc)
    except Exception as exc:  # a trial's bug must not stop the sweep: record it
        if interrupt.caused_by_ctrl_c(exc):  # a Ctrl-C inside a library call
            state, error = "interrupted", "interrupted by the user (Ctrl-C)"
        else:
            error = f"{type(exc).__name__}: {exc}"
    if state not in rundir.STATES or state in ("failed", "interrupted"):
        _record(run_dir, task, state if state in rundir.STATES else "failed", error)
    result = {
        "trial": task["trial"],
        "state": state,
        "error": error,
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
    }
    return {**result, "finish": pending} if pending else result


def _record(run_dir: Path, task: dict[str, Any], state: str, error: str | None) -> None:
    """Makes status.json say `state` (and keeps config.yaml) when the run could not write it itself."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        status_path = run_dir / rundir.STATUS
        current = rundir.read_json(status_path, "the trial status").get("state") if status_path.is_file() else None
        if current in (None, "running"):
            rundir.write_status(run_dir, state, error)
        if not (run_dir / rundir.CONFIG).exists():
            import yaml

            from regcli.spec import SpecDumper

            rundir.atomic_write_text(
                run_dir / rundir.CONFIG,
                yaml.dump(task["spec"], Dumper=SpecDumper, sort_keys=False, default_flow_style=None),
            )
    except (OSError, RegcliError):
        pass


def run_pack(task: dict[str, Any]) -> dict[str, Any]:
    """Trains a pack of compatible trials as one packed model (`regcli.experiment.run_packed`); never raises.

    Args:
        task: `{"trial": label, "pack": [ids], "specs": [dicts], "run_dirs": [paths], "smoke": bool}`.

    Returns:
        `{"trial": label, "pack": ids, "state", "error", "seconds", "pid", "pack_failed", "results"}`:
        one `run_trial`-like result per trial (with `"task": label`). `pack_failed` is true when
        the packed training failed as a whole (every trial `failed`): the sweep then retries
        those trials alone. A diverged tower is that trial's state only.
    """
    from regcli.experiment import run_packed
    from regcli.spec import validate_experiment

    started = time.perf_counter()
    run_dirs = [Path(d) for d in task["run_dirs"]]
    states, error, pack_failed = ["failed"] * len(run_dirs), None, True
    pending: list = [None] * len(run_dirs)
    try:
        specs = [
            validate_experiment(raw, d.parent, source=f"trial {trial}")
            for raw, d, trial in zip(task["specs"], run_dirs, task["pack"], strict=True)
        ]
        _select_backend(specs[0])
        with contextlib.redirect_stdout(sys.stderr), _finishing(task):  # stdout belongs to the sweep's summary
            outcomes = run_packed(specs, run_dirs, smoke=bool(task.get("smoke")))
        states, pack_failed = [o.state for o in outcomes], False
        pending = [o.finish for o in outcomes]
    except KeyboardInterrupt:
        states, error, pack_failed = ["interrupted"] * len(run_dirs), "interrupted by the user (Ctrl-C)", False
    except RegcliError as exc:
        if exc.exit_code == 130:
            states, pack_failed = ["interrupted"] * len(run_dirs), False
        error = str(exc)
    except Exception as exc:  # a pack's bug must not stop the sweep: record it (and retry alone)
        if interrupt.caused_by_ctrl_c(exc):  # a Ctrl-C inside a library call
            states, error, pack_failed = ["interrupted"] * len(run_dirs), "interrupted by the user (Ctrl-C)", False
        else:
            error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    results = []
    for trial, raw, run_dir, state, finish in zip(task["pack"], task["specs"], run_dirs, states, pending, strict=True):
        trial_error = "the loss became NaN or infinite" if state == "diverged" else error
        if state in ("failed", "interrupted"):
            _record(run_dir, {"spec": raw}, state, trial_error)
        results.append({"trial": trial, "task": task["trial"], "state": state, "error": trial_error,
                        "seconds": seconds / len(run_dirs), "pid": os.getpid(), **({"finish": finish} if finish else {})})
    return {"trial": task["trial"], "pack": list(task["pack"]), "state": "failed" if pack_failed else "completed",
            "error": error, "seconds": seconds, "pid": os.getpid(), "pack_failed": pack_failed, "results": results}
