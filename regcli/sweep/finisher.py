"""The sweep process finishes its trials' run directories while the workers train the next ones.

A local worker hands back a trained trial with its plot and final status still to write
(`regcli.finish`). The sweep process, otherwise waiting on its workers, does it in one
background thread: the worker is free for its next task at once. Only then does the trial
count as done (its progress, its final status). `drain()` waits for every trial handed over;
the sweep calls it before it settles the statuses or aggregates.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.finish import finish_run


class Finisher:
    """One thread drawing and finishing trials, in the order they were handed over."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, result: dict[str, Any], then: Callable[[dict[str, Any]], None]) -> None:
        """Finishes `result["finish"]`'s run directory, then calls `then(result)` (from the thread)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="regcli-finisher", daemon=True)
            self._thread.start()
        self._queue.put((result, then))

    def drain(self) -> None:
        """Returns once every trial handed over is finished (a Ctrl-C here leaves the rest `running`)."""
        if self._thread is not None:
            self._queue.put(None)
            while self._thread.is_alive():
                self._thread.join(timeout=0.2)  # a short join: Ctrl-C still reaches the main thread
            self._thread = None

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            result, then = item
            job = result.pop("finish")
            try:
                finish_run(Path(job["run_dir"]), job["state"], job["error"], pid=result.get("pid"))
            except Exception as exc:  # noqa: BLE001 - disk full, a plot that cannot be drawn: the trial failed
                result["state"], result["error"] = "failed", f"could not write learning_curves.png: {exc}"
                with contextlib.suppress(OSError):
                    rundir.write_status(Path(job["run_dir"]), "failed", result["error"], pid=result.get("pid"))
            then(result)
