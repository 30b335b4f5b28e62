"""What a sweep shows people: a rich progress display over trials, and the leaderboard table."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from regcli.sweep.expand import format_value, knob_labels, parse_cell

TABLE_ROWS = 20  # the leaderboard printed at the end; leaderboard.csv has every configuration


class TrialProgress:
    """Callbacks the sweep calls as trials start and finish; this base class shows nothing."""

    def begin(self, total: int, done: int, what: str) -> None:
        """`total` trials in the sweep, `done` of them finished before this run."""

    def started(self, trial: str) -> None:
        """A trial (or a pack of trials, `pack of 8: t000..t007`) was handed to a worker."""

    def finished(self, result: dict[str, Any]) -> None:
        """A trial ended (`result["state"]`: completed, diverged, failed, interrupted; `result["task"]`:
        the pack it trained in, if any)."""


class _RichProgress(TrialProgress):
    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task = None
        self.running: set[str] = set()
        self.states: dict[str, int] = {}

    def begin(self, total: int, done: int, what: str) -> None:
        # Above the bar, and kept: how the trials run (the workers `--jobs auto` chose, the packs).
        self.progress.console.print(what, highlight=False, markup=False, soft_wrap=True)
        self.task = self.progress.add_task("trials", total=total, completed=done, info=what)

    def _info(self, last: str = "") -> str:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(self.states.items()))
        return "  ".join(part for part in (f"{len(self.running)} running", counts, last) if part)

    def started(self, trial: str) -> None:
        self.running.add(trial)
        self.progress.update(self.task, info=self._info(f"started: {trial}"))

    def finished(self, result: dict[str, Any]) -> None:
        self.running.discard(result.get("task", result["trial"]))
        self.states[result["state"]] = self.states.get(result["state"], 0) + 1
        self.progress.update(self.task, advance=1, info=self._info(f"last: {result['trial']} {result['state']}"))


@contextlib.contextmanager
def sweep_progress(console: Any, quiet: bool = False) -> Iterator[TrialProgress]:
    """A progress bar over trials on `console` (stderr), only for a terminal and without --quiet."""
    if quiet or not console.is_terminal:
        yield TrialProgress()
        return
    from regcli.progress import progress_bar

    with progress_bar(console) as progress:
        yield _RichProgress(progress)


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def leaderboard_table(result: Any):
    """The ranked configurations (best first): knob values, metric mean ± std, error, gap, seeds."""
    from rich.table import Table

    board, sweep, best = result.report["board"], result.sweep, result.report["best"]
    metric = sweep.metric
    table = Table(title=f"{result.sweep_dir.name}: {len(board)} configuration(s), ranked on {metric} ({sweep.mode})")
    table.add_column("#", justify="right")
    labels = knob_labels(sweep.knobs)
    for knob in sweep.knobs:
        table.add_column(labels[knob], justify="right")
    table.add_column(metric, justify="right")
    table.add_column("± std", justify="left")
    if metric != "val_error":
        table.add_column("val error", justify="right")
    table.add_column("gap", justify="right")
    table.add_column("seeds", justify="right")
    for _, row in board.head(TABLE_ROWS).iterrows():
        std = row.get(f"{metric}_std")
        cells = [str(row["rank"]), *(format_value(parse_cell(row[k])) for k in sweep.knobs)]
        cells += [_num(row[f"{metric}_mean"]), "" if std is None or _isnan(std) else f"± {_num(std, 2)}"]
        if metric != "val_error":
            cells.append(_num(row.get("val_error_mean")))
        cells += [_num(row.get("gap_mean"), 3), f"{row['n_completed']}/{row['n_seeds']}"]
        style = "bold green" if best and row["config"] == best["config"] else None
        table.add_row(*cells, style=style)
    if len(board) > TABLE_ROWS:
        table.caption = f"top {TABLE_ROWS} of {len(board)}; all in leaderboard.csv"
    if best:
        test = best.get("final_test")
        tested = f"; test error {_num(test['metrics'].get('error'))} ({best['shipped_run']})" if test else ""
        study = " (a data-size study: more rows are expected to win; read learning_curve.png)" if best.get("learning_curve") else ""
        table.caption = (table.caption + "\n" if table.caption else "") + f"winner: {best['config']}{study}{tested}"
    return table


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
