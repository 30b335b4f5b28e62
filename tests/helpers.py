"""Small helpers shared by test files (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import time
from pathlib import Path

import yaml


def write_sweep(directory: Path, sweep: dict, *, base: dict, name: str = "sweep.yaml") -> Path:
    """Writes `base` as base.yaml and a sweep spec `name` that uses it; returns the sweep spec's path."""
    (directory / "base.yaml").write_text(yaml.safe_dump(base))
    path = directory / name
    path.write_text(yaml.safe_dump({"base": "base.yaml", **sweep}, sort_keys=False))
    return path


def flat(text: str) -> str:
    """rich may wrap stderr: compare messages with whitespace runs collapsed."""
    return " ".join(text.split())


class InProcessExecutor:
    """A sweep executor that runs the tasks in the test's own process: the module's TensorFlow is
    imported once, so a sweep or tune fixture costs seconds, not a worker's start-up
    (test_sweep_run.py and test_tune.py's CLI tests cover the real workers)."""

    def describe(self) -> str:
        return "in process (test)"

    def run(self, tasks, on_start, on_done) -> None:
        from regcli.sweep.worker import run_task

        for task in tasks:
            on_start(task)
            on_done(run_task(task))

    def close(self) -> None:
        """Nothing kept open."""


def wait_for(condition, timeout, what, poll=0.2):
    """The first truthy value of `condition()` within `timeout` seconds; AssertionError naming `what` after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
