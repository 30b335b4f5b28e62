"""`--jobs auto` (the default of `regcli sweep`): how many local workers, and so which packs.

Pure (no Keras). A sweep's whole command is modelled from costs measured on the 2-core
development machine (docs/benchmarks.md, 8 quickstart trials, TensorFlow: packed 17.4 s with
`--jobs 1` and 14.1 s with `--jobs 2`; unpacked 39.5 s and 25.9 s):

- each worker first imports its backend: `WORKER_START_S`, all workers at once (in parallel
  while there are as many cores as workers);
- each task (a trial, or a pack of trials) then costs `TASK_S` (build, trace, compile, write its
  run directories) plus `TRIAL_S` per trial in it (its epochs, its files);
- more workers than cores share them: every cost stretches by workers / cores;
- the sweep process's own work (its start, aggregation, the sweep's plots): `SWEEP_S`.

The tasks are dealt largest first to the least-loaded worker, and the fewest workers whose
makespan is within `MIN_GAIN` of the best are chosen: a worker costs a start-up and ~0.7 GB of
memory, so one is added only when it pays. The model reproduces the four measurements within
10% (`tests/test_jobs.py`). Workers are also capped by the cores, the trials and the memory
available (`WORKER_MEMORY_BYTES` each).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from regcli.errors import BadInputError
from regcli.training.packs import group_packs

AUTO = "auto"
WORKER_START_S = 5.0
TASK_S = 3.1
TRIAL_S = 0.8
MIN_GAIN = 0.05
SWEEP_S = 3.0
WORKER_MEMORY_BYTES = 1_000_000_000


@dataclass(frozen=True)
class JobsChoice:
    """What `--jobs auto` chose, and the one line the progress display shows for it."""

    workers: int
    tasks: int
    estimate_s: float
    cores: int

    def describe(self, n_trials: int) -> str:
        return (f"--jobs auto: {self.workers} worker(s) for {n_trials} trial(s) in {self.tasks} task(s) "
                f"on {self.cores} core(s)")


def parse_jobs(value: str | int | None) -> int | str | None:
    """`--jobs`: an integer >= 1, or `auto`; None (not given) stays None."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise BadInputError(
            f"--jobs must be an integer >= 1 or auto. Received: {value!r}. Use auto to let regcli choose "
            f"from the cores and the trials, or 1 to train one trial at a time."
        ) from None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (bytes); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def makespan(sizes: Sequence[int], workers: int, cores: int) -> float:
    """Estimated seconds of the whole `regcli sweep` command (see the module docstring)."""
    stretch = max(1.0, workers / max(1, cores))
    loads = [0.0] * workers
    for size in sorted(sizes, reverse=True):
        loads[loads.index(min(loads))] += TASK_S + TRIAL_S * size
    return SWEEP_S + stretch * (WORKER_START_S + max(loads))


def choose_workers(
    items: Sequence[tuple[str, Hashable | None]], *, packing: bool, cores: int | None = None,
    memory: int | None = None,
) -> JobsChoice:
    """The local workers for these `(trial id, pack key)` items (`--jobs auto`)."""
    cores = cores or usable_cores()
    limit = max(1, min(cores, len(items)))
    if memory is not None:
        limit = max(1, min(limit, memory // WORKER_MEMORY_BYTES))
    estimates = []
    for workers in range(1, limit + 1):
        sizes = [len(p) for p in group_packs(items, workers)] if packing else [1] * len(items)
        estimates.append((makespan(sizes, workers, cores), workers, len(sizes)))
    best = min(e[0] for e in estimates)
    estimate, workers, tasks = next(e for e in estimates if e[0] <= best * (1 + MIN_GAIN))
    return JobsChoice(workers, tasks, round(estimate, 1), cores)
