"""The one rich progress bar regcli shows (epochs of a run, trials of a sweep) on stderr."""

from __future__ import annotations

from typing import Any


def progress_bar(console: Any):
    """A transient bar: description, bar, done/total, elapsed time and a free `info` field."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    )
