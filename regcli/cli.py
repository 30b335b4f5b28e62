"""The `regcli` command line: one short function per command, no training logic.

Errors are translated once, in `_errors()`: a RegcliError prints its one-paragraph
message to stderr and exits with its code (2 bad input, 1 failed run, 130 Ctrl-C).
Nothing here imports TensorFlow or Keras: `--help`, `validate` and `diagnose` stay instant.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from regcli.errors import RegcliError

app = typer.Typer(
    name="regcli",
    help="Experiment runner for regularization in deep learning (Keras 3): train, diagnose, sweep.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _stdout():
    from rich.console import Console

    return Console(soft_wrap=True)


@contextlib.contextmanager
def _errors():
    """Turns regcli's errors into one clear message and the SPEC §1 exit code."""
    try:
        yield
    except RegcliError as exc:
        _stderr().print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        _stderr().print("interrupted")
        raise typer.Exit(code=130) from None


def _overrides(sets: list[str] | None, seed: int | None, backend: str | None) -> list[str]:
    overrides = list(sets or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    if backend is not None:
        overrides.append(f"backend={backend}")
    return overrides


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _summary_table(outcome):
    from rich.table import Table

    s, d = outcome.summary, outcome.diagnosis
    table = Table(title=f"{outcome.run_dir.name}: {outcome.state}", show_header=True)
    table.add_column("")
    table.add_column("train (clean)", justify="right")
    table.add_column("validation", justify="right")
    for key in ("loss", "data_loss", "accuracy", "mae", "error"):
        if key in s["metrics"]["train"]:
            table.add_row(key, _fmt(s["metrics"]["train"].get(key)), _fmt(s["metrics"]["val"].get(key)))
    table.caption = (
        f"shipped epoch {s['best_epoch']} of {s['epochs_run']} "
        f"({'stopped early' if s['stopped_early'] else 'ran all epochs'}"
        f"{', best weights restored' if s['restored_best_weights'] else ''}); "
        f"verdict: {d.get('verdict')}"
    )
    return table


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="The experiment spec (YAML).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key by dotted path, e.g. --set model.l2=1e-3 (value parsed as YAML)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory the run directory is created in.")] = Path("runs"),
    name: Annotated[str | None, typer.Option(help="Run name (default: the spec's name or data source).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the spec's seed.")] = None,
    backend: Annotated[str | None, typer.Option(help="Keras backend: tensorflow, jax or torch.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="CI smoke run: at most 2 epochs and 256 training rows.")] = False,
) -> None:
    """Validate a spec, train it, and write one run directory."""
    from regcli.runner import run_experiment
    from regcli.spec import load_experiment_spec

    with _errors():
        spec = load_experiment_spec(config, _overrides(set_, seed, backend))
        with _progress(quiet) as (on_start, on_epoch):
            outcome = run_experiment(spec, out=out, name=name, smoke=smoke, on_start=on_start, on_epoch=on_epoch)
    console = _stdout()
    console.print(str(outcome.run_dir), highlight=False)
    console.print(_summary_table(outcome))
    if outcome.state != "completed":
        _stderr().print(f"[bold red]error:[/] the run {outcome.state}; see {outcome.run_dir / 'status.json'}.")
        raise typer.Exit(code=1)


@contextlib.contextmanager
def _progress(quiet: bool):
    """A rich progress bar over epochs on stderr, only for a terminal and without --quiet."""
    console = _stderr()
    if quiet or not console.is_terminal:
        yield None, None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    ) as progress:
        state = {}

        def on_start(run_dir: Path, epochs: int) -> None:
            state["task"] = progress.add_task(f"training {run_dir.name}", total=epochs, info="")

        def on_epoch(row: dict) -> None:
            info = " ".join(f"{k} {row[k]:.4f}" for k in ("loss", "val_loss", "val_data_loss") if k in row)
            progress.update(state["task"], completed=row["epoch"], info=info)

        yield on_start, on_epoch


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="An experiment spec (YAML).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key by dotted path (value parsed as YAML).")] = None,
) -> None:
    """Check a spec and print it with every default filled in."""
    from regcli.spec import dump_spec_yaml, load_experiment_spec

    with _errors():
        spec = load_experiment_spec(config, list(set_ or []))
    typer.echo(dump_spec_yaml(spec), nl=False)


@app.command()
def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the diagnosis as JSON.")] = False,
    replay: Annotated[
        str | None,
        typer.Option(help="Replay early stopping with other settings, e.g. patience=3,min_delta=0.001,start_from_epoch=2."),
    ] = None,
    fail_on: Annotated[
        str | None, typer.Option(help="Exit 1 when the verdict is one of these, e.g. high_variance,diverged.")
    ] = None,
) -> None:
    """(Re)compute the bias/variance diagnosis of a finished run from its files alone."""
    from regcli.review import diagnose_run, fail_on_verdicts, print_diagnosis

    with _errors():
        verdicts = fail_on_verdicts(fail_on)
        result = diagnose_run(run_dir, replay=replay)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_diagnosis(_stdout(), result)
    if result["diagnosis"]["verdict"] in verdicts:
        raise typer.Exit(code=1)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
