"""What every `regcli` command shares: consoles, the one error translation, option checks, tables.

`errors()` is where a RegcliError becomes its one-paragraph message on stderr and the SPEC §1 exit
code (2 bad input, 1 failed run, 130 Ctrl-C). Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from regcli.errors import BadInputError, RegcliError
from regcli.rundir import format_cell


def flags_take_no_value(params: list) -> list:
    """Gives every flag an empty metavar, so help shows `--smoke`, not `--smoke <bool>`; returns `params`."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class RegcliGroup(TyperGroup):
    """regcli's command group: help lists a flag (--smoke, --quiet, --json, --help, ...) without a value placeholder.

    Typer 0.29's rich help prints each option's type after it, flags included, so `--smoke <bool>`
    read as an option that takes a value, and `--smoke true` then fails ("unexpected extra argument").
    A flag's metavar is what the help shows in place of its type: empty, it shows nothing.
    """

    def get_params(self, ctx):
        return flags_take_no_value(super().get_params(ctx))

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            flags_take_no_value(command.get_params(ctx))  # the command's --help option included
        return command


def stderr():
    from rich.console import Console

    return Console(stderr=True)


def stdout():
    from rich.console import Console

    return Console(soft_wrap=True)


@contextlib.contextmanager
def errors():
    """Turns regcli's errors into one clear message and the SPEC §1 exit code."""
    try:
        yield
    except RegcliError as exc:
        from rich.markup import escape

        # escape: messages hold brackets ("pip install 'regcli[ray]'") that are not markup.
        stderr().print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        stderr().print("interrupted")
        raise typer.Exit(code=130) from None
    except Exception as exc:
        from regcli.interrupt import caused_by_ctrl_c

        if not caused_by_ctrl_c(exc):  # e.g. "SystemError: __import__ returned a result with an exception set"
            raise
        stderr().print("interrupted")
        raise typer.Exit(code=130) from None


def overrides(sets: list[str] | None, seed: int | None, backend: str | None) -> list[str]:
    overrides = list(sets or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    if backend is not None:
        overrides.append(f"backend={backend}")
    return overrides


def out_dir(value: str | None) -> Path | None:
    """--out: a directory path; an empty one would silently mean the current folder."""
    if value is not None and not value.strip():
        with errors():  # the usual one-line `error:` and exit 2, not Typer's usage box
            raise BadInputError(
                f"--out must name a directory. Received: {value!r}. Give one, e.g. --out runs "
                "(--out . for the current folder), or leave --out out for its default."
            )
    return None if value is None else Path(value)


def check_name(name: str | None) -> None:
    """--name '' is refused like any other bad run name, instead of silently using the default."""
    from regcli.rundir import check_run_name

    if name is not None:
        check_run_name(name, "--name")


def jobs_note(jobs: int | str | None, executor: str, n_trials: int) -> str | None:
    """One line when --jobs N asks for more local workers than there are trials or CPU cores."""
    if not isinstance(jobs, int) or executor != "local":
        return None
    from regcli.sweep.jobs import usable_cores

    cores = usable_cores()
    workers = min(jobs, max(1, n_trials))
    if jobs > cores:
        return (
            f"--jobs {jobs} is more than this machine's {cores} CPU core(s): {workers} worker process(es) "
            f"(at most one per trial; the sweep has {n_trials}) will share them, each trial slower. "
            f"Use --jobs {cores} for one trial per core."
        )
    if jobs > n_trials:
        return f"--jobs {jobs}: the sweep has {n_trials} trial(s), so {workers} worker process(es) start."
    return None


def summary_table(outcome):
    from rich.table import Table

    s, d = outcome.summary, outcome.diagnosis
    table = Table(title=f"{outcome.run_dir.name}: {outcome.state}", show_header=True)
    table.add_column("")
    table.add_column("train (clean)", justify="right")
    table.add_column("validation", justify="right")
    for key in ("loss", "data_loss", "accuracy", "mae", "error"):
        if key in s["metrics"]["train"]:
            table.add_row(key, format_cell(s["metrics"]["train"].get(key)), format_cell(s["metrics"]["val"].get(key)))
    table.caption = (
        f"shipped epoch {s['best_epoch']} of {s['epochs_run']} "
        f"({'stopped early' if s['stopped_early'] else 'ran all epochs'}"
        f"{', best weights restored' if s['restored_best_weights'] else ''}); "
        f"verdict: {d.get('verdict')}"
    )
    return table


def print_summary(console, outcome) -> None:
    """`train`'s stdout: the run directory (first line, for `| head -n 1`), the table, the next knob."""
    from regcli.commands.diagnose import print_next_step

    console.print(str(outcome.run_dir), highlight=False)
    console.print(summary_table(outcome))
    print_next_step(console, outcome.diagnosis)


def print_or_pipe_closed(write) -> None:
    """`write(console)` to stdout; a reader that closed the pipe early (`regcli train ... | head -n 1`)
    is not a failed run: the rest of the output is dropped and the exit code stays the run's."""
    def drop_the_rest() -> None:
        # The Python docs' recipe: point stdout at /dev/null so later writes and the last flush are quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    console = stdout()
    console.on_broken_pipe = drop_the_rest  # rich's own handler exits 1 (a failed run, to regcli)
    try:
        write(console)
        sys.stdout.flush()
    except BrokenPipeError:
        drop_the_rest()


@contextlib.contextmanager
def epoch_progress(quiet: bool):
    """A rich progress bar over epochs on stderr, only for a terminal and without --quiet."""
    console = stderr()
    if quiet or not console.is_terminal:
        yield None, None
        return
    from regcli.progress import progress_bar

    with progress_bar(console) as progress:
        state = {}

        def on_start(run_dir: Path, epochs: int) -> None:
            state["task"] = progress.add_task(f"training {run_dir.name}", total=epochs, info="")

        def on_epoch(row: dict) -> None:
            info = " ".join(f"{k} {row[k]:.4f}" for k in ("loss", "val_loss", "val_data_loss") if k in row)
            progress.update(state["task"], completed=row["epoch"], info=info)

        yield on_start, on_epoch


def wide_stdout():
    """stdout for tables: the terminal's width, or 200 columns when piped (no folded cells in files)."""
    console = stdout()
    if not console.is_terminal:
        console.width = 200
    return console


def test_table(result: dict):
    from rich.table import Table

    table = Table(title=f"{result['run_name']}: test split ({result['n_test']} rows)", show_header=True)
    table.add_column("")
    table.add_column("validation", justify="right")
    table.add_column("test", justify="right")
    val = result.get("val_metrics") or {}
    for key in ("loss", "data_loss", "accuracy", "mae", "error"):
        if key in result["metrics"]:
            table.add_row(key, format_cell(val.get(key)), format_cell(result["metrics"][key]))
    table.caption = f"test fingerprint {result['test_fingerprint'][:12]}; looked at {result['consulted_before']} time(s) before"
    return table
