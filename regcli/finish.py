"""A run directory's last step: its learning-curve plot, then its final status.

`regcli train` does it at once. A sweep worker (`deferred()`) leaves it to the sweep process
(`regcli.sweep.finisher`): drawing a trial's PNG takes ~0.2-0.3 s, which the worker then spends
training the next trial or pack instead. Either way the PNG is written atomically *before*
status.json says `completed`: a trial counts as completed only once all its files exist; a
trial whose finishing was lost (the sweep killed) is still `running`, and `--resume` re-runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regcli import rundir

_deferred = False


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block, `finish_or_defer` leaves the plot and the final status to the caller."""
    global _deferred
    previous, _deferred = _deferred, True
    try:
        yield
    finally:
        _deferred = previous


def finish_or_defer(run: Path, state: str, error: str | None, history, summary: dict[str, Any],
                    can_defer: bool = True) -> dict[str, Any] | None:
    """Finishes `run` now, or (inside `deferred()`, when `can_defer`) returns what `finish_run` needs
    to do it later."""
    if _deferred and can_defer:
        return {"run_dir": str(run), "state": state, "error": error}
    finish_run(run, state, error, history=history, summary=summary)
    return None


def finish_run(run: Path, state: str, error: str | None, *, history=None, summary: dict[str, Any] | None = None,
               pid: int | None = None) -> None:
    """Draws learning_curves.png from the run's files (or the given ones), then writes status.json."""
    from regcli import plots

    run = Path(run)
    if history is None:
        history = rundir.read_history(run)
    if summary is None:
        summary = rundir.read_json(run / rundir.SUMMARY, "the run's summary")
    plots.learning_curves(history, summary, run / rundir.CURVES)
    rundir.write_status(run, state, error, pid=pid)
