"""The `regcli` command line: one short function per command, no training logic.

Errors are translated once, in `cli_support.errors()`: a RegcliError prints its one-paragraph
message to stderr and exits with its code (2 bad input, 1 failed run, 130 Ctrl-C).
Nothing here imports TensorFlow or Keras: `--help`, `validate` and `diagnose` stay instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from regcli.cli_support import (
    RegcliGroup,
    check_name,
    epoch_progress,
    errors,
    jobs_note,
    out_dir,
    overrides,
    print_or_pipe_closed,
    print_summary,
    stderr,
    stdout,
    test_table,
    wide_stdout,
)
from regcli.commands.init import Template
from regcli.errors import BadInputError

app = typer.Typer(
    name="regcli",
    help="Experiment runner for regularization in deep learning (Keras 3): train, diagnose, sweep.",
    cls=RegcliGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="The experiment spec (YAML).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key by dotted path, e.g. --set model.l2=1e-3 (value parsed as YAML)."),
    ] = None,
    out: Annotated[
        str, typer.Option(callback=out_dir, help="Directory the run directory is created in.")
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

    with errors():
        _check_train_args(config, resume, set_, seed, backend, name, smoke)
        check_name(name)
        with epoch_progress(quiet) as (on_start, on_epoch):
            if resume is not None:
                outcome = resume_run(resume, on_start=on_start, on_epoch=on_epoch)
            else:
                spec = load_experiment_spec(config, overrides(set_, seed, backend))
                for warning in spec_warnings(spec):
                    stderr().print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
                outcome = run_experiment(spec, out=out, name=name, smoke=smoke, on_start=on_start, on_epoch=on_epoch)
    print_or_pipe_closed(lambda console: print_summary(console, outcome))
    if outcome.state != "completed":
        stderr().print(f"[bold red]error:[/] the run {outcome.state}; see {outcome.run_dir / 'status.json'}.")
        raise typer.Exit(code=1)


def _check_train_args(config, resume, set_, seed, backend, name, smoke) -> None:
    """`train` takes CONFIG or --resume RUN_DIR; a resumed run's config.yaml is authoritative."""

    if resume is None and config is None:
        raise BadInputError("train needs CONFIG (a spec file) or --resume RUN_DIR. See `regcli train --help`.")
    if resume is not None:
        given = [flag for flag, value in (("CONFIG", config), ("--set", set_), ("--seed", seed), ("--backend", backend),
                                          ("--name", name), ("--smoke", smoke or None)) if value]
        if given:
            raise BadInputError(
                f"--resume continues a run exactly as its config.yaml says; it cannot be combined with {', '.join(given)}."
            )


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="An experiment or sweep spec (YAML).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key by dotted path (value parsed as YAML).")] = None,
) -> None:
    """Check a spec (train or sweep) and print it with every default filled in."""
    from regcli.data.check import data_report
    from regcli.spec import dump_spec_yaml, is_sweep_spec, load_experiment_spec, load_yaml_file, spec_warnings

    with errors():
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
        stderr().print(note, highlight=False, markup=False, soft_wrap=True)


@app.command()
def diagnose(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run directories, e.g. runs/overfit-demo-* (the shell expands it), or Keras CSVLogger files."),
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the diagnosis as JSON (several: a list, each with its run_dir or csv_log)."),
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
    task: Annotated[
        str, typer.Option(help="CSVLogger files: classification or regression; auto reads it from accuracy or mae.")
    ] = "auto",
    n_train: Annotated[
        int | None, typer.Option(min=1, help="CSVLogger files: training rows, so the errors carry their sampling noise.")
    ] = None,
    n_val: Annotated[int | None, typer.Option(min=1, help="CSVLogger files: validation rows (see --n-train).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="CSVLogger files: a threshold, e.g. --set diagnosis.target_error=0.05."),
    ] = None,
) -> None:
    """(Re)compute the bias/variance diagnosis of finished runs from their files alone (CSVLogger files: their curves)."""
    from regcli.commands.csvlog import LogOptions
    from regcli.commands.diagnose import diagnose_runs, fail_on_verdicts, print_diagnosis

    with errors():
        verdicts = fail_on_verdicts(fail_on)
        options = LogOptions.parse(task, n_train, n_val, set_ or ())
        results = diagnose_runs(run_dirs, replay=replay, log_options=options)  # all read before any file is rewritten
    if as_json:
        typer.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        console = stdout()
        for i, result in enumerate(results):
            if i:
                console.print()  # one block per path, each opening with it and its verdict
            print_diagnosis(console, result, verbose=verbose)
    for result in results:  # printed above, but diagnosis.json/.md could not be rewritten (read-only run dir)
        if result.get("not_written"):
            stderr().print(f"error: {result['not_written']}", highlight=False, markup=False, soft_wrap=True)
    if any(result["diagnosis"]["verdict"] in verdicts for result in results):
        raise typer.Exit(code=1)  # the gate's answer first: the verdict itself is sound
    if any(result.get("not_written") for result in results):
        raise typer.Exit(code=2)


@app.command("test")
def run_test(
    run_dir: Annotated[Path, typer.Argument(help="A completed run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """The final exam: evaluate the shipped model once on the untouched test split and record it in the test ledger.

    A --smoke run is refused: a smoke run never consults the test split.
    """
    from regcli.commands.final_test import consultation_warning, final_test

    with errors():
        result = final_test(run_dir)
    warning = consultation_warning(result)
    if warning:
        stderr().print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console = stdout()
    console.print(test_table(result))
    console.print(f"recorded in {result['ledger']}", highlight=False)


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
    out: Annotated[
        str | None,
        typer.Option(callback=out_dir, help="Directory for the overlay plot. Defaults to the runs' common parent."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare runs side by side: the knobs that differ, their results, and one overlay plot of their curves."""
    from regcli.commands.compare import compare_runs, comparison_table

    with errors():
        result = compare_runs(run_dirs, out=out)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    console = wide_stdout()
    console.print(comparison_table(result))
    console.print(f"plot: {result['plot']}", highlight=False)


@app.command()
def ls(
    directory: Annotated[Path, typer.Argument(help="Where the runs and sweeps are.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")] = False,
) -> None:
    """List the runs and sweeps under a directory with their state and best validation value (val_data_loss)."""
    from regcli.commands.listing import list_runs, listing_table

    with errors():
        entries = list_runs(directory)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    console = wide_stdout()
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
        str | None,
        typer.Option(help="Trials trained at once: N local worker processes sharing the cores, or auto (the "
        "default: chosen from the cores, the trials and their packs, and shown in the progress display); with "
        "--executor ray, at most N in flight (auto: as many as the cluster's CPUs take)."),
    ] = None,
    executor: Annotated[str, typer.Option(help="Where trials run: local (worker processes) or ray (a Ray cluster).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address HOST:PORT for --executor ray. Defaults to a local Ray.")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this sweep directory: run only its trials that did not finish.")
    ] = None,
    out: Annotated[
        str | None, typer.Option(callback=out_dir, help="Directory the sweep directory is created in. Defaults to runs/.")
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
    from regcli.sweep.jobs import parse_jobs
    from regcli.sweep.run import prepare_sweep, run_sweep

    def warn(text: str) -> None:
        stderr().print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    with errors():
        jobs_given = parse_jobs(jobs)
        plan = prepare_sweep(config, resume=resume, out=out, smoke=smoke, executor=executor, address=address,
                             jobs=jobs_given, pack=not no_pack)
        for warning in [*plan.warnings, jobs_note(jobs_given, executor, len(plan.sweep.trials))]:
            if warning:
                warn(warning)
        with sweep_progress(stderr(), quiet=quiet) as progress:
            result = run_sweep(plan, progress=progress, on_note=warn)
    console = stdout()
    if not console.is_terminal:
        console.width = 160  # a file or pipe: the leaderboard's columns are not cut to 80
    console.print(str(result.sweep_dir), highlight=False)
    console.print(leaderboard_table(result))
    for note in result.notes:
        stderr().print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    if result.failed or result.report["best"] is None:
        what = f"{len(result.failed)} trial(s) did not finish" if result.failed else "no trial completed"
        stderr().print(f"[bold red]error:[/] {what}; see {result.sweep_dir / 'results.csv'}.", highlight=False)
        raise typer.Exit(code=1)


@app.command()
def tune(
    config: Annotated[Path | None, typer.Argument(help="The base experiment spec (YAML); optional with --resume.")] = None,
    budget: Annotated[int | None, typer.Option(help="The most trials to train, each seed run one. Defaults to 24.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds of every configuration. Defaults to 0,1,2.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Trials trained at once, as for regcli sweep. Defaults to 1.")] = None,
    executor: Annotated[str, typer.Option(help="Where trials run: local (worker processes) or ray (a Ray cluster).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address HOST:PORT for --executor ray. Defaults to a local Ray.")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this tune directory; its finished trials are kept.")] = None,
    out: Annotated[str | None, typer.Option(callback=out_dir, help="Where the tune directory is created. Defaults to runs/.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="CI smoke run: one seed, one step, 2 epochs, no final test.")] = False,
) -> None:
    """Diagnose, try the top recommendations one knob each over seeds, keep a change only beyond seed noise, repeat; test once."""
    from regcli.sweep.console import sweep_progress
    from regcli.tune import parse_seeds, prepare_tune, run_tune, summary_text

    say = (lambda text: None) if quiet else (lambda text: stderr().print(text, highlight=False, markup=False, soft_wrap=True))
    with errors():
        plan = prepare_tune(config, budget=budget, seeds=parse_seeds(seeds), jobs=jobs, executor=executor,
                            address=address, out=out, resume=resume, smoke=smoke)
        with sweep_progress(stderr(), quiet=quiet) as progress:
            result = run_tune(plan, progress=progress, on_step=say, on_note=say)
    typer.echo(summary_text(result))  # stdout: the tune directory and what shipped; progress went to stderr
    for note in result.best["notes"]:
        stderr().print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)


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

    with errors():
        result = init_spec(path, template, force=force)
    for directory in result.created_dirs:
        typer.echo(f"created {directory}/")
    typer.echo(f"wrote {result.spec} ({template.value} template)")
    if result.schema_written:
        typer.echo(f"wrote {result.schema} (its first line points YAML editors at this schema)")
    for note in result.notes:
        stderr().print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
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

    with errors():
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

    with errors():
        written = write_reports(directories)  # every page built before the first is written
    for path in written:
        typer.echo(str(path))
        if open_ and not open_in_browser(path):
            stderr().print(f"no web browser available: open {path} yourself.", highlight=False, markup=False,
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
