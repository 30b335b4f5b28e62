"""The `regcli` command line: one short function per command, no training logic.

Errors are translated once, in `_errors()`: a RegcliError prints its one-paragraph
message to stderr and exits with its code (2 bad input, 1 failed run, 130 Ctrl-C).
Nothing here imports TensorFlow or Keras: `--help`, `validate` and `diagnose` stay instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from regcli.commands.init import Template
from regcli.errors import BadInputError, RegcliError
from regcli.rundir import format_cell


def _flags_take_no_value(params: list) -> list:
    """Gives every flag an empty metavar, so help shows `--smoke`, not `--smoke <bool>`; returns `params`."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Group(TyperGroup):
    """regcli's command group: help lists a flag (--smoke, --quiet, --json, --help, ...) without a value placeholder.

    Typer 0.29's rich help prints each option's type after it, flags included, so `--smoke <bool>`
    read as an option that takes a value, and `--smoke true` then fails ("unexpected extra argument").
    A flag's metavar is what the help shows in place of its type: empty, it shows nothing.
    """

    def get_params(self, ctx):
        return _flags_take_no_value(super().get_params(ctx))

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_take_no_value(command.get_params(ctx))  # the command's --help option included
        return command


app = typer.Typer(
    name="regcli",
    help="Experiment runner for regularization in deep learning (Keras 3): train, diagnose, sweep.",
    cls=_Group,
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
        from rich.markup import escape

        # escape: messages hold brackets ("pip install 'regcli[ray]'") that are not markup.
        _stderr().print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        _stderr().print("interrupted")
        raise typer.Exit(code=130) from None
    except Exception as exc:
        from regcli.interrupt import caused_by_ctrl_c

        if not caused_by_ctrl_c(exc):  # e.g. "SystemError: __import__ returned a result with an exception set"
            raise
        _stderr().print("interrupted")
        raise typer.Exit(code=130) from None


def _overrides(sets: list[str] | None, seed: int | None, backend: str | None) -> list[str]:
    overrides = list(sets or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    if backend is not None:
        overrides.append(f"backend={backend}")
    return overrides


def _out_dir(value: str | None) -> Path | None:
    """--out: a directory path; an empty one would silently mean the current folder."""
    if value is not None and not value.strip():
        with _errors():  # the usual one-line `error:` and exit 2, not Typer's usage box
            raise BadInputError(
                f"--out must name a directory. Received: {value!r}. Give one, e.g. --out runs "
                "(--out . for the current folder), or leave --out out for its default."
            )
    return None if value is None else Path(value)


def _check_name(name: str | None) -> None:
    """--name '' is refused like any other bad run name, instead of silently using the default."""
    from regcli.rundir import check_run_name

    if name is not None:
        check_run_name(name, "--name")


def _jobs_note(jobs: int | None, executor: str, n_trials: int) -> str | None:
    """One line when --jobs asks for more local workers than there are trials or CPU cores."""
    if jobs is None or executor != "local":
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
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


def _summary_table(outcome):
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


def _print_summary(console, outcome) -> None:
    """`train`'s stdout: the run directory (first line, for `| head -n 1`), the table, the next knob."""
    from regcli.commands.diagnose import print_next_step

    console.print(str(outcome.run_dir), highlight=False)
    console.print(_summary_table(outcome))
    print_next_step(console, outcome.diagnosis)


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="The experiment spec (YAML).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key by dotted path, e.g. --set model.l2=1e-3 (value parsed as YAML)."),
    ] = None,
    out: Annotated[
        str, typer.Option(callback=_out_dir, help="Directory the run directory is created in.")
    ] = "runs",
    name: Annotated[
        str | None,
        typer.Option(help="Run name (default: the spec's name or data source): 1-100 characters of letters, digits, "
        "'.', '_' or '-', starting with a letter or digit."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the spec's seed.")] = None,
    backend: Annotated[str | None, typer.Option(help="Keras backend: tensorflow, jax or torch.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="CI smoke run: at most 2 epochs and 256 training rows.")] = False,
    resume: Annotated[
        Path | None, typer.Option(help="Continue an interrupted or killed run directory from its last completed epoch.")
    ] = None,
) -> None:
    """Validate a spec, train it, and write one run directory (or --resume one)."""
    from regcli.experiment import resume_run, run_experiment
    from regcli.spec import load_experiment_spec, spec_warnings

    with _errors():
        _check_train_args(config, resume, set_, seed, backend, name, smoke)
        _check_name(name)
        with _progress(quiet) as (on_start, on_epoch):
            if resume is not None:
                outcome = resume_run(resume, on_start=on_start, on_epoch=on_epoch)
            else:
                spec = load_experiment_spec(config, _overrides(set_, seed, backend))
                for warning in spec_warnings(spec):
                    _stderr().print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
                outcome = run_experiment(spec, out=out, name=name, smoke=smoke, on_start=on_start, on_epoch=on_epoch)
    _print_or_pipe_closed(lambda console: _print_summary(console, outcome))
    if outcome.state != "completed":
        _stderr().print(f"[bold red]error:[/] the run {outcome.state}; see {outcome.run_dir / 'status.json'}.")
        raise typer.Exit(code=1)


def _print_or_pipe_closed(write) -> None:
    """`write(console)` to stdout; a reader that closed the pipe early (`regcli train ... | head -n 1`)
    is not a failed run: the rest of the output is dropped and the exit code stays the run's."""
    def drop_the_rest() -> None:
        # The Python docs' recipe: point stdout at /dev/null so later writes and the last flush are quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    console = _stdout()
    console.on_broken_pipe = drop_the_rest  # rich's own handler exits 1 (a failed run, to regcli)
    try:
        write(console)
        sys.stdout.flush()
    except BrokenPipeError:
        drop_the_rest()


def _check_train_args(config, resume, set_, seed, backend, name, smoke) -> None:
    """`train` takes CONFIG or --resume RUN_DIR; a resumed run's config.yaml is authoritative."""
    from regcli.errors import BadInputError

    if resume is None and config is None:
        raise BadInputError("train needs CONFIG (a spec file) or --resume RUN_DIR. See `regcli train --help`.")
    if resume is not None:
        given = [flag for flag, value in (("CONFIG", config), ("--set", set_), ("--seed", seed), ("--backend", backend),
                                          ("--name", name), ("--smoke", smoke or None)) if value]
        if given:
            raise BadInputError(
                f"--resume continues a run exactly as its config.yaml says; it cannot be combined with {', '.join(given)}."
            )


@contextlib.contextmanager
def _progress(quiet: bool):
    """A rich progress bar over epochs on stderr, only for a terminal and without --quiet."""
    console = _stderr()
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


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="An experiment or sweep spec (YAML).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key by dotted path (value parsed as YAML).")] = None,
) -> None:
    """Check a spec (train or sweep) and print it with every default filled in."""
    from regcli.data.check import data_report
    from regcli.spec import dump_spec_yaml, is_sweep_spec, load_experiment_spec, load_yaml_file, spec_warnings

    with _errors():
        if is_sweep_spec(load_yaml_file(config)):
            from regcli.errors import BadInputError
            from regcli.sweep import dump_sweep_yaml, load_sweep

            if set_:
                raise BadInputError("--set applies to experiment specs; edit the sweep file (or its base spec) instead.")
            swept = load_sweep(config)
            text, specs = dump_sweep_yaml(swept), list(swept.specs.values())
        else:
            from regcli.tracking import preflight

            spec = load_experiment_spec(config, list(set_ or []))
            preflight(spec)  # MLflow installed, its store writable or server reachable (no import)
            text, specs = dump_spec_yaml(spec), [spec]
        notes = data_report(specs)  # a data file is read as train reads it; a built-in source by shape
        notes += [f"warning: {w}" for w in dict.fromkeys(w for s in specs for w in spec_warnings(s))]
    typer.echo(text, nl=False)  # stdout: the resolved spec alone, so `validate spec.yaml > resolved.yaml` works
    for note in notes:
        _stderr().print(note, highlight=False, markup=False, soft_wrap=True)


@app.command()
def diagnose(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="One or more run directories, e.g. runs/overfit-demo-* (the shell expands it).")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the diagnosis as JSON (several runs: a list, each with its run_dir).")
    ] = False,
    replay: Annotated[
        str | None,
        typer.Option(help="Replay early stopping with other settings, e.g. patience=3,min_delta=0.001,start_from_epoch=2."),
    ] = None,
    fail_on: Annotated[
        str | None, typer.Option(help="Exit 1 when a run's verdict is one of these, e.g. high_variance,diverged.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also print the evidence (diagnosis.json/.md always hold it).")
    ] = False,
) -> None:
    """(Re)compute the bias/variance diagnosis of finished runs from their files alone."""
    from regcli.commands.diagnose import diagnose_runs, fail_on_verdicts, print_diagnosis

    with _errors():
        verdicts = fail_on_verdicts(fail_on)
        results = diagnose_runs(run_dirs, replay=replay)  # every run checked before any file is rewritten
    if as_json:
        typer.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        console = _stdout()
        for i, result in enumerate(results):
            if i:
                console.print()  # one block per run, each opening with its run directory and verdict
            print_diagnosis(console, result, verbose=verbose)
    for result in results:  # printed above, but diagnosis.json/.md could not be rewritten (read-only run dir)
        if result["not_written"]:
            _stderr().print(f"error: {result['not_written']}", highlight=False, markup=False, soft_wrap=True)
    if any(result["diagnosis"]["verdict"] in verdicts for result in results):
        raise typer.Exit(code=1)  # the gate's answer first: the verdict itself is sound
    if any(result["not_written"] for result in results):
        raise typer.Exit(code=2)


def _wide_stdout():
    """stdout for tables: the terminal's width, or 200 columns when piped (no folded cells in files)."""
    console = _stdout()
    if not console.is_terminal:
        console.width = 200
    return console


@app.command("test")
def run_test(
    run_dir: Annotated[Path, typer.Argument(help="A completed run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """The final exam: evaluate the shipped model once on the untouched test split and record it in the test ledger.

    A --smoke run is refused: a smoke run never consults the test split.
    """
    from regcli.commands.final_test import consultation_warning, final_test

    with _errors():
        result = final_test(run_dir)
    warning = consultation_warning(result)
    if warning:
        _stderr().print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console = _stdout()
    console.print(_test_table(result))
    console.print(f"recorded in {result['ledger']}", highlight=False)


def _test_table(result: dict):
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


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
    out: Annotated[
        str | None,
        typer.Option(callback=_out_dir, help="Directory for the overlay plot. Defaults to the runs' common parent."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare runs side by side: the knobs that differ, their results, and one overlay plot of their curves."""
    from regcli.commands.compare import compare_runs, comparison_table

    with _errors():
        result = compare_runs(run_dirs, out=out)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    console = _wide_stdout()
    console.print(comparison_table(result))
    console.print(f"plot: {result['plot']}", highlight=False)


@app.command()
def ls(
    directory: Annotated[Path, typer.Argument(help="Where the runs and sweeps are.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")] = False,
) -> None:
    """List the runs and sweeps under a directory with their state and best validation value (val_data_loss)."""
    from regcli.commands.listing import list_runs, listing_table

    with _errors():
        entries = list_runs(directory)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    console = _wide_stdout()
    if not entries:
        console.print(f"no runs or sweeps under {directory}", highlight=False)
        return
    console.print(listing_table(entries, directory))


@app.command()
def sweep(
    config: Annotated[
        Path | None, typer.Argument(help="The sweep spec (YAML). Optional with --resume, which uses the stored sweep.yaml.")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="Trials trained at once: local worker processes sharing the cores (default 1); with "
        "--executor ray, at most this many in flight (default: as many as the cluster's CPUs take)."),
    ] = None,
    executor: Annotated[str, typer.Option(help="Where trials run: local (worker processes) or ray (a Ray cluster).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address HOST:PORT for --executor ray. Defaults to a local Ray.")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this sweep directory: run only its trials that did not finish.")
    ] = None,
    out: Annotated[
        str | None, typer.Option(callback=_out_dir, help="Directory the sweep directory is created in. Defaults to runs/.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="CI smoke run: at most 2 trials of at most 2 epochs and 256 training rows.")
    ] = False,
    no_pack: Annotated[
        bool,
        typer.Option("--no-pack", help="Train every trial alone, even trials that could share one packed model "
        "(as `packing: off` in the sweep spec)."),
    ] = False,
) -> None:
    """Expand a sweep into trials, run them in parallel, aggregate, and pick the winner on validation only."""
    from rich.markup import escape

    from regcli.sweep.console import leaderboard_table, sweep_progress
    from regcli.sweep.run import prepare_sweep, run_sweep

    def warn(text: str) -> None:
        _stderr().print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    with _errors():
        plan = prepare_sweep(config, resume=resume, out=out, smoke=smoke, executor=executor, address=address, jobs=jobs,
                            pack=not no_pack)
        for warning in [*plan.warnings, _jobs_note(jobs, executor, len(plan.sweep.trials))]:
            if warning:
                warn(warning)
        with sweep_progress(_stderr(), quiet=quiet) as progress:
            result = run_sweep(plan, progress=progress, on_note=warn)
    console = _stdout()
    if not console.is_terminal:
        console.width = 160  # a file or pipe: the leaderboard's columns are not cut to 80
    console.print(str(result.sweep_dir), highlight=False)
    console.print(leaderboard_table(result))
    for note in result.notes:
        _stderr().print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    if result.failed or result.report["best"] is None:
        what = f"{len(result.failed)} trial(s) did not finish" if result.failed else "no trial completed"
        _stderr().print(f"[bold red]error:[/] {what}; see {result.sweep_dir / 'results.csv'}.", highlight=False)
        raise typer.Exit(code=1)


@app.command()
def tune(
    config: Annotated[Path | None, typer.Argument(help="The base experiment spec (YAML); optional with --resume.")] = None,
    budget: Annotated[int | None, typer.Option(help="The most trials to train, each seed run one. Defaults to 24.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds of every configuration. Defaults to 0,1,2.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Trials trained at once, as for regcli sweep. Defaults to 1.")] = None,
    executor: Annotated[str, typer.Option(help="Where trials run: local (worker processes) or ray (a Ray cluster).")] = "local",
    resume: Annotated[Path | None, typer.Option(help="Continue this tune directory; its finished trials are kept.")] = None,
    out: Annotated[str | None, typer.Option(callback=_out_dir, help="Where the tune directory is created. Defaults to runs/.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="CI smoke run: one seed, one step, 2 epochs, no final test.")] = False,
) -> None:
    """Diagnose, try the top recommendations one knob each over seeds, keep a change only beyond seed noise, repeat; test once."""
    from regcli.sweep.console import sweep_progress
    from regcli.tune import parse_seeds, prepare_tune, run_tune, summary_text

    say = (lambda text: None) if quiet else (lambda text: _stderr().print(text, highlight=False, markup=False, soft_wrap=True))
    with _errors():
        plan = prepare_tune(config, budget=budget, seeds=parse_seeds(seeds), jobs=jobs, executor=executor, out=out,
                            resume=resume, smoke=smoke)
        with sweep_progress(_stderr(), quiet=quiet) as progress:
            result = run_tune(plan, progress=progress, on_step=say, on_note=say)
    typer.echo(summary_text(result))  # stdout: the tune directory and what shipped; progress went to stderr
    for note in result.best["notes"]:
        _stderr().print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)


@app.command()
def init(
    path: Annotated[
        Path | None,
        typer.Argument(help="The spec file to write. Defaults to experiment.yaml (sweep.yaml for --template sweep); "
        "an existing directory gets that name inside it, missing parent directories are created.", show_default=False),
    ] = None,
    template: Annotated[
        Template,
        typer.Option(help="The starter: quickstart (breast-cancer MLP with L2, dropout, BatchNorm, early stopping), "
        "cnn (digits CNN), regression (diabetes), csv (your own table) or sweep (L2 x dropout over 3 seeds)."),
    ] = Template.quickstart,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing spec file and its schema file.")] = False,
) -> None:
    """Write a commented starter spec that validates, and beside it the JSON Schema editors check it with."""
    from regcli.commands.init import init_spec

    with _errors():
        result = init_spec(path, template, force=force)
    for directory in result.created_dirs:
        typer.echo(f"created {directory}/")
    typer.echo(f"wrote {result.spec} ({template.value} template)")
    if result.schema_written:
        typer.echo(f"wrote {result.schema} (its first line points YAML editors at this schema)")
    for note in result.notes:
        _stderr().print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    command = "sweep" if template is Template.sweep else "train"
    typer.echo(f"next: regcli validate {result.spec} && regcli {command} {result.spec}")


@app.command()
def schema(
    sweep_: Annotated[
        bool, typer.Option("--sweep", help="The sweep spec's schema instead of the experiment spec's.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write the schema to this file instead of printing it.")] = None,
) -> None:
    """Print the JSON Schema of the experiment spec (or the sweep spec), for editors and other tools."""
    from regcli.commands.init import schema_text, write_schema

    with _errors():
        if out is not None:
            typer.echo(f"wrote {write_schema(out, sweep=sweep_)}")
            return
        text = schema_text(sweep=sweep_)
    typer.echo(text, nl=False)


@app.command()
def report(
    directories: Annotated[list[Path], typer.Argument(help="One or more run or sweep directories.")],
    open_: Annotated[bool, typer.Option("--open", help="Open each report in the default web browser.")] = False,
) -> None:
    """Write one self-contained report.html (figures inlined, no network) into each run or sweep directory."""
    from regcli.commands.report import open_in_browser, write_reports

    with _errors():
        written = write_reports(directories)  # every page built before the first is written
    for path in written:
        typer.echo(str(path))
        if open_ and not open_in_browser(path):
            _stderr().print(f"no web browser available: open {path} yourself.", highlight=False, markup=False,
                           soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    import signal

    from regcli import interrupt
    from regcli.training import backend

    backend.OWN_PROCESS = True
    interrupt.quiet_unraisable_ctrl_c()

    if hasattr(signal, "SIGXFSZ"):
        # Past a file-size limit (ulimit -f) the kernel kills the process by default; ignored,
        # the write fails with EFBIG instead and regcli reports it and records state `failed`.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
