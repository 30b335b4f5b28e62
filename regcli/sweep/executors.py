"""Where trials run: local worker processes, or Ray tasks on a cluster.

Both executors take the same tasks (one trial, or a pack of trials trained as one packed
model: see `regcli.sweep.worker.run_task`) and report each task's small result dict through
`on_done`; the trial's files are written by the worker
straight into the sweep directory, so resume, aggregation and `diagnose` never know which
executor ran a trial.

- `LocalExecutor`: `jobs` spawned worker processes, each with `cores // jobs` TensorFlow
  threads, each recycled after `TRIALS_PER_WORKER` trials (TensorFlow keeps a few MB per
  model built in a process even after `clear_session()`; a pack costs `PACK_RECYCLE_COST`,
  so a worker trains several packs, and its next packs of one shape reuse the traced model). A
  worker that dies (killed, out of memory, segfault) fails only its own task: the sweep
  replaces the worker and goes on. When every task uses the same backend and device, a worker
  imports Keras and its backend (~5 s for TensorFlow) as soon as it starts, and the
  replacement of a worker that is on its last task is started then, so that its import
  overlaps the training instead of following it.
- `RayExecutor`: one Ray core task per trial or pack (`num_cpus` each), on the cluster at
  `address` or on a local Ray started for the sweep and shut down after it. Ray on this
  machine (the local one, or an address on 127.0.0.1) listens on and is reached at 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from regcli import interrupt
from regcli.errors import BadInputError, RunFailedError
from regcli.sweep.launch import ignoring_sigint, launcher
from regcli.sweep.worker import (
    PACK_RECYCLE_COST,
    configure_threads,
    preload,
    recycle_cost,
    run_task,
    threads_per_worker,
)

# TensorFlow keeps memory per model built in a process even after clear_session() (~4 MB
# per model; ~12 MB per quickstart trial with its run directory here): a worker trains at
# most this many trials (a pack costs `worker.PACK_RECYCLE_COST`) before a fresh one
# replaces it, which also amortizes the ~5 s TensorFlow import over several trials.
TRIALS_PER_WORKER = 8
# After Ctrl-C, how long running trials get to record `interrupted` themselves before
# their workers are stopped (the sweep then marks them interrupted).
INTERRUPT_GRACE_S = 20.0
EXECUTORS = ("local", "ray")
# Set to "0", Ray on this machine uses 127.0.0.1, not the network interface (see keep_ray_on_loopback).
LOOPBACK_ENV_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# The niceness of the task workers a raylet starts (Ray's default: 15); read when the raylet starts.
WORKER_NICENESS_ENV_VAR = "RAY_worker_niceness"

OnStart = Callable[[dict[str, Any]], None]
OnDone = Callable[[dict[str, Any]], None]


def common_backend(tasks: Sequence[dict[str, Any]]) -> tuple[str, str] | None:
    """`(backend, device)` when every trial of `tasks` asks for the same ones, else None.

    None too when a trial on another backend than TensorFlow writes TensorBoard files: a
    preloaded JAX worker keeps TensorFlow out (`backend.select`), so such trials select their
    backend themselves.
    """
    specs = [spec for task in tasks for spec in task.get("specs", [task.get("spec", {})])]
    seen = {(spec.get("backend", "tensorflow"), spec.get("device", "auto")) for spec in specs}
    tensorboard = any((spec.get("tracking") or {}).get("tensorboard") for spec in specs)
    if len(seen) != 1 or (tensorboard and next(iter(seen))[0] != "tensorflow"):
        return None
    return seen.pop()


def died(task: dict[str, Any], why: str, state: str = "failed") -> dict[str, Any]:
    """The result of a trial (or pack) whose worker vanished without reporting: `failed`, or
    `interrupted` when Ctrl-C ended the worker (before it could set its own handler)."""
    result = {"trial": task["trial"], "state": state, "error": why, "seconds": None, "pid": None}
    if "pack" in task:
        result.update(pack=list(task["pack"]), pack_failed=state == "failed", results=[
            {"trial": t, "task": task["trial"], "state": state, "error": why, "seconds": None, "pid": None}
            for t in task["pack"]
        ])
    return result


def _death(task: dict[str, Any], exitcode: int | None) -> dict[str, Any]:
    if exitcode == -signal.SIGINT:  # the terminal's Ctrl-C reached a worker still starting up
        return died(task, "interrupted by the user (Ctrl-C) while its worker was starting", "interrupted")
    return died(task, f"the worker process died (exit code {exitcode}) while training this trial")


# --------------------------------------------------------------------------------------
# Local worker processes
# --------------------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Ends this worker when the sweep process is gone (killed): no orphan keeps training."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _until_deferred(signum, frame) -> None:
    """A worker's SIGINT handler around its trial's `interrupt.deferred()` (which SIG_IGN would turn
    off): a Ctrl-C or nudge in the instants before or after it is dropped; the sweep nudges again."""


def _worker_main(
    conn: Connection, threads: int, max_trials: int, parent: int, backend: tuple[str, str] | None = None
) -> None:
    """A spawned worker: takes tasks from `conn` one at a time, until it has trained `max_trials` trials.

    With `backend` (`(backend, device)` of every task), it imports Keras first, before any task arrives.
    """
    from regcli.training import backend as backends

    backends.OWN_PROCESS = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # idle workers ignore Ctrl-C; trials handle it
    interrupt.quiet_unraisable_ctrl_c()
    os.dup2(2, 1)  # whatever a library prints goes to stderr: stdout is the sweep's summary
    configure_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if backend is not None:
        preload(*backend)
    trials = 0
    while trials < max_trials:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        # Ctrl-C (the terminal's, or the sweep's nudge) takes effect at the trial's next safe point:
        # never a second, immediate one, which could land inside TensorFlow (see regcli.interrupt).
        signal.signal(signal.SIGINT, _until_deferred)
        try:
            with interrupt.deferred(escalate=False):
                result = run_task(task)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        conn.send(result)
        trials += recycle_cost(task)
    # Every file was written atomically and every result sent: skip the interpreter's teardown
    # (TensorFlow's takes 1-2 s, which the sweep would wait for when it retires this worker).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@dataclass
class _Worker:
    process: Any
    conn: Connection
    task: dict[str, Any] | None = None
    trials: int = 0


class LocalExecutor:
    """Runs trials in `jobs` spawned worker processes on this machine.

    Args:
        jobs: trials trained at once. Defaults to `1`.
        threads: TensorFlow intra-op threads per worker. Defaults to `None`: cores // jobs.
        trials_per_worker: trials before a worker is replaced. Defaults to `TRIALS_PER_WORKER`.
        keep_open: keep the idle workers (their TensorFlow already imported) between `run` calls,
            until `close()`: a tune's batches reuse them. Defaults to `False`: `run` stops them.
    """

    # Each trial's plot and final status are left to the sweep process (`regcli.sweep.finisher`).
    finishes_in_sweep = True

    def __init__(self, jobs: int = 1, threads: int | None = None, trials_per_worker: int = TRIALS_PER_WORKER,
                 keep_open: bool = False):
        self.jobs = max(1, jobs)
        self.keep_open = keep_open
        self.threads = threads or threads_per_worker(self.jobs)
        self.trials_per_worker = trials_per_worker
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._backend: tuple[str, str] | None = None
        self._launcher = launcher()  # workers start with Ctrl-C ignored (regcli.sweep.launch)

    def describe(self) -> str:
        return f"local, {self.jobs} worker(s) x {self.threads} thread(s)"

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, self.threads, self.trials_per_worker, os.getpid(), self._backend),
            name="regcli-sweep-worker",
            daemon=True,
        )
        try:
            with ignoring_sigint(self._launcher):
                process.start()
        except OSError:
            if self._launcher is None:
                raise
            self._launcher = None  # the launcher cannot run here (e.g. a noexec cache): start python itself
            return self._spawn()
        child_conn.close()
        worker = _Worker(process, parent_conn)
        self._workers.append(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        with contextlib.suppress(OSError):
            worker.conn.close()
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(timeout=5)

    def run(self, tasks: Sequence[dict[str, Any]], on_start: OnStart, on_done: OnDone) -> None:
        """Runs every task; returns when all are done. Ctrl-C: see `_interrupt`, then re-raised."""
        queue = deque(tasks)
        backend = common_backend(tasks)
        if backend != self._backend:  # workers kept open preload the previous batch's backend
            self._shutdown()
            self._backend = backend
        finished = False
        try:
            while queue or any(w.task for w in self._workers):
                self._dispatch(queue, on_start)
                self._collect(on_done, timeout=1.0)
            finished = True
        except KeyboardInterrupt:
            queue.clear()
            self._interrupt(on_done)
            raise
        finally:
            if not (finished and self.keep_open):
                self._shutdown()

    def close(self) -> None:
        """Stops the workers kept open (`keep_open`); a no-op when there are none."""
        self._shutdown()

    def _dispatch(self, queue: deque, on_start: OnStart) -> None:
        busy = sum(1 for w in self._workers if w.task is not None)
        while queue and busy < self.jobs:
            idle = [w for w in self._workers if w.task is None]
            worker = idle[0] if idle else self._spawn()
            try:
                worker.conn.send(queue[0])
            except OSError as exc:
                self._retire(worker)
                if not idle:
                    raise RunFailedError(f"Could not start a sweep worker process: {exc}.") from None
                continue  # an idle worker had died (e.g. the OOM killer): a fresh one replaces it
            worker.task = queue.popleft()
            busy += 1
            on_start(worker.task)
        self._start_replacements(queue)

    def _start_replacements(self, queue: deque) -> None:
        """Starts a fresh worker now for each busy one on its last task, while tasks wait for them.

        Only when workers preload their backend: a fresh worker spends its first seconds
        importing it, which then overlaps the last task of the worker it replaces.
        """
        if self._backend is None or not queue:
            return
        retiring = sum(
            1 for w in self._workers if w.task is not None and w.trials + recycle_cost(w.task) >= self.trials_per_worker
        )
        spare = sum(1 for w in self._workers if w.task is None)
        for _ in range(min(retiring, len(queue)) - spare):
            self._spawn()

    def _collect(self, on_done: OnDone, timeout: float) -> None:
        by_handle: dict[Any, _Worker] = {}
        for worker in self._workers:
            by_handle[worker.conn] = worker
            by_handle[worker.process.sentinel] = worker
        for handle in wait(list(by_handle), timeout=timeout):
            worker = by_handle[handle]
            if worker not in self._workers:
                continue
            result = None
            if worker.task is not None:
                try:
                    if worker.conn.poll():
                        result = worker.conn.recv()
                except (EOFError, OSError):
                    result = None
                if result is None and not worker.process.is_alive():
                    worker.process.join(timeout=1)
                    result = _death(worker.task, worker.process.exitcode)
                if result is None:
                    continue
                worker.trials += recycle_cost(worker.task)
                worker.task = None
                on_done(result)
            if worker.trials >= self.trials_per_worker or not worker.process.is_alive():
                self._retire(worker)

    def _interrupt(self, on_done: OnDone) -> None:
        """Ctrl-C: running trials record `interrupted` themselves (the terminal's SIGINT reaches the
        workers too), then the workers are stopped. A worker that did not get it, or that was still
        starting (SIGINT ignored until its trial begins: see `regcli.sweep.launch`), is sent one
        every 2 s; inside a trial, the first one stops it at the next safe point."""
        started = time.monotonic()
        nudged = started
        try:
            while any(w.task for w in self._workers) and time.monotonic() < started + INTERRUPT_GRACE_S:
                if time.monotonic() > nudged + 2.0:
                    for worker in self._workers:
                        if worker.task is not None and worker.process.pid:
                            with contextlib.suppress(OSError):
                                os.kill(worker.process.pid, signal.SIGINT)
                    nudged = time.monotonic()
                self._collect(on_done, timeout=0.5)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop now

    def _shutdown(self) -> None:
        for worker in list(self._workers):
            if worker.task is None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        for worker in list(self._workers):
            if worker.task is not None and worker.process.is_alive():
                worker.process.terminate()
            self._retire(worker)


# --------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------
def require_ray() -> None:
    """A clear exit-code-2 error when Ray is not installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise BadInputError(
            "--executor ray needs Ray, which is not installed in this environment. "
            "Install it with: pip install 'regcli[ray]'  (or use --executor local)."
        )


def on_this_machine(address: str | None) -> bool:
    """Whether Ray at `address` (or at RAY_ADDRESS when `address` is `None`) runs on this machine.

    No address at all means a local Ray started for the sweep; `localhost`, `127.x.x.x` and `::1`
    name one already running here. `auto` and other hosts may be anywhere.
    """
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    if target == "local":
        return True
    host = target.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def keep_ray_on_loopback() -> None:
    """Ray in this process, and every process it starts, listens on and talks to 127.0.0.1 only.

    On Linux Ray binds a local cluster to the network interface's address and turns a `127.0.0.1`
    address into it (`_node_ip_address="127.0.0.1"` is overridden); with
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, as on macOS, it uses 127.0.0.1. Ray reads the variable when
    imported, and the processes it spawns inherit it.
    """
    os.environ[LOOPBACK_ENV_VAR] = "0"
    if "ray" in sys.modules:  # imported before we set it (a library caller): the flag is already read
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def token_refused(exc: BaseException | None) -> bool:
    """Whether a failed `ray.init` was the cluster refusing our authentication token."""
    while exc is not None:
        if type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def token_refused_message(address: str | None) -> str:
    """The refusal, where Ray reads the token from (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token), the fix."""
    where = f"--address {address or os.environ.get('RAY_ADDRESS')}"
    if os.environ.get("RAY_AUTH_TOKEN"):
        source = "the RAY_AUTH_TOKEN environment variable"
    else:
        source = str(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    fix = (f"Put this cluster's token in {source} (`ray get-auth-token` on its head node prints it), "
           f"or set RAY_AUTH_TOKEN_PATH to a file that holds it")
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":  # Ray sends no token to an explicit address then
        return (f"{where}: the Ray cluster there requires an authentication token and refused regcli, which sent "
                f"none because RAY_AUTH_MODE is not `token`. Set RAY_AUTH_MODE=token. {fix}.")
    return (f"{where}: the Ray cluster there refused regcli's authentication token, read from {source} "
            f"(a token left there by another cluster is refused). {fix}.")


def ray_trial(task: dict[str, Any]) -> dict[str, Any]:
    """A Ray task (a trial or a pack): TensorFlow threads from the CPUs Ray assigned, then the trial as usual.

    Ray sets OMP_NUM_THREADS for its workers, which TensorFlow's thread pools ignore.
    """
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    configure_threads(max(1, int(cpus)))
    return run_task(task)


class RayExecutor:
    """Runs each trial as a Ray core task.

    Args:
        address: a Ray cluster `HOST:PORT`. Defaults to `None`: a local Ray for this sweep
            (or the cluster `RAY_ADDRESS` names).
        cpus_per_trial: CPUs each trial asks Ray for (and TensorFlow threads it uses). Defaults to `1`.
        max_in_flight: trials submitted at once. Defaults to `None`: all of them (Ray queues them).
        keep_open: keep a Ray this executor started (or connected to) up between `run` calls, until
            `close()`: a tune's batches reuse it. Defaults to `False`: `run` shuts it down.
    """

    def __init__(self, address: str | None = None, cpus_per_trial: int = 1, max_in_flight: int | None = None,
                 keep_open: bool = False):
        require_ray()
        self.address = address
        self.keep_open = keep_open
        self._started = False  # this executor called ray.init (and so shuts it down)
        self.cpus_per_trial = max(1, cpus_per_trial)
        self.max_in_flight = max_in_flight

    def describe(self) -> str:
        where = f"Ray cluster {self.address}" if self.address else "a local Ray"
        return f"{where}, {self.cpus_per_trial} CPU(s) per trial"

    def _prepare_environment(self) -> None:
        """Before Ray is imported: loopback only on this machine; a Ray started here runs trials un-niced.

        Ray's raylet nices its task workers to 15 by default: on a busy 2-core machine (two CPU-bound
        processes beside the sweep) they got ~3% of a core and never finished. A Ray started for the
        sweep runs its trials at normal priority, as the local executor's workers do.
        """
        if on_this_machine(self.address):
            keep_ray_on_loopback()
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            os.environ.setdefault(WORKER_NICENESS_ENV_VAR, "0")

    def run(self, tasks: Sequence[dict[str, Any]], on_start: OnStart, on_done: OnDone) -> None:
        import logging

        self._prepare_environment()
        import ray

        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, ValueError, RuntimeError, ray.exceptions.AuthenticationError) as exc:
                if token_refused(exc):
                    raise BadInputError(token_refused_message(self.address)) from None
                raise BadInputError(
                    f"--address {self.address}: cannot connect to a Ray cluster there ({type(exc).__name__}: {exc}). "
                    f"Start one with `ray start --head` and pass the address it prints, or omit --address for a local Ray."
                ) from None
            self._started = True
        remote = ray.remote(num_cpus=self.cpus_per_trial, max_calls=TRIALS_PER_WORKER, max_retries=0)(ray_trial)
        # Packs recycle their Ray workers as local ones do (a pack costs PACK_RECYCLE_COST trials).
        remote_pack = ray.remote(num_cpus=self.cpus_per_trial, max_calls=TRIALS_PER_WORKER // PACK_RECYCLE_COST,
                                 max_retries=0)(ray_trial)
        queue = deque(tasks)
        in_flight: dict[Any, dict[str, Any]] = {}
        limit = self.max_in_flight or len(tasks) or 1
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    task = queue.popleft()
                    in_flight[(remote_pack if "pack" in task else remote).remote(task)] = task
                    on_start(task)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                for ref in ready:
                    task = in_flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = died(task, f"the Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                    on_done(result)
        except KeyboardInterrupt:
            for ref in in_flight:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        finally:
            if not self.keep_open:
                self.close()

    def close(self) -> None:
        """Shuts down the Ray this executor started or connected to; a no-op otherwise."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
