"""`regcli diagnose`: a finished run's diagnosis recomputed from its files (and its rich rendering).

Only files are read (config.yaml, status.json, summary.json, history.csv, through
`rundir.RunFiles`): no TensorFlow, no Keras. Inputs are never rewritten; diagnosis.json/.md
are refreshed. A Keras CSVLogger file in place of a run directory is diagnosed from its curves
alone (`commands/csvlog`) and only printed: nothing is written next to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regcli import rundir
from regcli.errors import BadInputError

if TYPE_CHECKING:
    from regcli.commands.csvlog import LogOptions

VERDICTS = ("high_bias", "high_variance", "high_bias_and_variance", "good_fit", "diverged", "not_learning")


def fail_on_verdicts(text: str | None) -> set[str]:
    """Parses `--fail-on high_variance,diverged` into a set; None is no gate, an empty or unknown verdict is bad input."""
    if text is None:
        return set()
    verdicts = {v.strip() for v in text.split(",") if v.strip()}
    if not verdicts:
        raise BadInputError(
            f"--fail-on must list at least one verdict, e.g. --fail-on high_variance,diverged. "
            f"Valid verdicts: {', '.join(VERDICTS)}. Received: {text!r}. Leave --fail-on out to never fail."
        )
    unknown = sorted(verdicts - set(VERDICTS))
    if unknown:
        raise BadInputError(
            f"--fail-on must list verdicts among {', '.join(VERDICTS)}. Received: {', '.join(unknown)}."
        )
    return verdicts


def diagnosis_inputs(files: rundir.RunFiles, doing: str = "diagnosed") -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """(summary, history, config) of a run that has finished training: what `diagnose` reads.

    The summary is a copy with the run's `state` added when summary.json lacks it.
    """
    state = files.require_finished(doing)
    summary = dict(files.summary)
    history, config = files.history, files.config
    summary.setdefault("state", state)
    return summary, history, config


def diagnose_run(run: Path, *, replay: str | None = None) -> dict[str, Any]:
    """Recomputes the diagnosis from the run's files, rewrites diagnosis.json/.md, optionally replays."""
    return diagnose_runs([run], replay=replay)[0]


def diagnose_runs(
    runs: Sequence[Path], *, replay: str | None = None, log_options: LogOptions | None = None
) -> list[dict[str, Any]]:
    """`diagnose_run` of several runs, all or nothing: every run is read and diagnosed before any file is rewritten.

    A path that is a file is read as a Keras CSVLogger file (`commands/csvlog`), diagnosed from its
    curves alone with `log_options`, and never written to.

    Returns:
        One result per path, in order: `{"run_dir", "diagnosis", "replay" (with --replay), "not_written"}`
        for a run directory, `not_written` None or the paragraph saying why diagnosis.json/.md could not
        be rewritten; `{"csv_log", "diagnosis"}` for a CSVLogger file.

    Raises:
        RunDirError / BadInputError (exit code 2): a run directory is missing, unfinished or corrupt, a
            CSVLogger file is unreadable, or `replay` or `log_options` is malformed or does not apply. No
            diagnosis file of any run is rewritten then.
    """
    from regcli.commands.csvlog import LogOptions, check_log_options, diagnose_csv_log, is_csv_log
    from regcli.commands.several import each_or_none
    from regcli.replay import parse_replay_arg

    paths = [Path(run) for run in runs]
    check_log_options(paths, log_options or LogOptions(), replay)
    overrides = parse_replay_arg(replay) if replay else None

    def compute(path: Path) -> tuple[dict[str, Any], str | None]:
        return (diagnose_csv_log(path, log_options), None) if is_csv_log(path) else _compute(path, overrides)

    results = []
    for result, markdown in each_or_none(paths, compute, "diagnosed"):
        if markdown is not None:  # a run directory; a CSVLogger file is printed only
            result["not_written"] = _rewrite_diagnosis(Path(result["run_dir"]), result["diagnosis"], markdown)
        results.append(result)
    return results


def _compute(run: Path, overrides: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """(result, diagnosis.md text) of one run, from its files; writes nothing."""
    from regcli.diagnosis import diagnose, render_markdown
    from regcli.replay import replay_report

    summary, history, config = diagnosis_inputs(rundir.RunFiles.open(run))
    diagnosis = diagnose(history, summary, config, run_dir=str(run))
    result: dict[str, Any] = {"run_dir": str(run), "diagnosis": diagnosis}
    if overrides is not None:
        result["replay"] = replay_report(history, summary, config, overrides)
    return result, render_markdown(diagnosis, summary)


def _rewrite_diagnosis(run: Path, diagnosis: dict[str, Any], markdown: str) -> str | None:
    """Rewrites diagnosis.json/.md together; None, or the one paragraph saying why they could not be.

    The diagnosis was computed from the files and is printed either way: a read-only run
    directory (an archive, a colleague's share) still gets one, and both files stay as they were.
    """
    json_path, md_path = run / rundir.DIAGNOSIS_JSON, run / rundir.DIAGNOSIS_MD
    try:
        text = json.dumps(rundir.jsonable(diagnosis), indent=2, allow_nan=False) + "\n"
        rundir.atomic_write_files({json_path: text.encode("utf-8"), md_path: markdown.encode("utf-8")})
    except OSError as exc:
        return (
            f"{rundir.write_error(json_path, exc, 'rewritten')} {json_path.name} and {md_path.name} were left "
            f"as they were, so they may hold an older diagnosis than the one above. Make {run} writable "
            f"and run regcli diagnose again to refresh them."
        )
    return None


def print_diagnosis(console, result: dict[str, Any], *, verbose: bool = False) -> None:
    """The answer first: run and verdict, headline, numbered recommendations, warnings; then the replay.

    `verbose` adds the evidence (label: value, floats to 4 significant digits) after the warnings;
    diagnosis.json/.md hold it either way. In a terminal each item wraps under its own text;
    into a pipe or a file each stays one line, for grep.
    """
    from rich.text import Text

    diag = result["diagnosis"]
    where = result.get("run_dir") or result.get("csv_log")
    console.print(Text.assemble(f"{where}: ", (str(diag["verdict"]), "bold")), soft_wrap=True)
    if diag.get("headline"):
        _item(console, "", str(diag["headline"]))
    for i, rec in enumerate(diag.get("recommendations", []), start=1):
        _item(console, f"{i}.", str(rec.get("text") if isinstance(rec, dict) else rec))
    for warning in diag.get("warnings", []):
        _item(console, "warning:", str(warning.get("text") if isinstance(warning, dict) else warning), style="yellow")
    if verbose:
        console.print("evidence:", style="dim", soft_wrap=True, highlight=False)
        for key, value in diag.get("evidence", {}).items():
            _item(console, f"  {key}:", _compact(value), style="dim")
    if result.get("replay"):
        _print_replay(console, result["replay"])


def print_next_step(console, diagnosis: dict[str, Any]) -> None:
    """After `train`'s summary table: the headline, and the first recommendation as `next: ...`."""
    if diagnosis.get("headline"):
        _item(console, "", str(diagnosis["headline"]))
    recommendations = diagnosis.get("recommendations") or []
    if recommendations:
        first = recommendations[0]
        _item(console, "next:", str(first.get("text") if isinstance(first, dict) else first), style="bold")


def _item(console, label: str, text: str, *, style: str = "") -> None:
    """`label text` as one line into a pipe; in a terminal wrapped to its width, under the text."""
    from rich.table import Table
    from rich.text import Text

    if not console.is_terminal:  # a pipe or a file: never folded, so `grep` finds a whole recommendation
        line = Text.assemble((label, style), " " if label else "", text)
        console.print(line, soft_wrap=True, highlight=False)
        return
    grid = Table.grid(padding=(0, 1) if label else 0)
    if label:
        grid.add_column(style=style, no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(*([label] if label else []), Text(text))
    console.print(grid, highlight=False)


def _compact(value: Any) -> str:
    """An evidence value as a person reads it: floats to 4 significant digits, lists and dicts on one line."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    return str(value)


def _print_replay(console, replay: dict[str, Any]) -> None:
    """The --replay answer in a panel, its sentences wrapped (never cropped) to the width."""
    from rich.panel import Panel
    from rich.text import Text

    lines = replay.get("text") or replay.get("lines") or []
    if isinstance(lines, str):
        lines = [lines]
    body = Text("\n".join(lines) or str(replay), no_wrap=False, overflow="fold")
    console.print(Panel(body, title="early-stopping replay", expand=False), highlight=False)
