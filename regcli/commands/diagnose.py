"""`regcli diagnose`: a finished run's diagnosis recomputed from its files (and its rich rendering).

Only files are read (config.yaml, status.json, summary.json, history.csv, through
`rundir.RunFiles`): no TensorFlow, no Keras. Inputs are never rewritten; diagnosis.json/.md
are refreshed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.errors import BadInputError

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


def diagnose_runs(runs: Sequence[Path], *, replay: str | None = None) -> list[dict[str, Any]]:
    """`diagnose_run` of several runs, all or nothing: every run is read and diagnosed before any file is rewritten.

    Returns:
        One result per run, in order: `{"run_dir", "diagnosis", "replay" (with --replay), "not_written"}`;
        `not_written` is None, or the paragraph saying why diagnosis.json/.md could not be rewritten.

    Raises:
        RunDirError / BadInputError (exit code 2): a run directory is missing, unfinished or corrupt, or
            `replay` is malformed. No diagnosis file of any run is rewritten then.
    """
    from regcli.commands.several import each_or_none
    from regcli.replay import parse_replay_arg

    overrides = parse_replay_arg(replay) if replay else None
    computed = each_or_none([Path(run) for run in runs], lambda run: _compute(run, overrides), "diagnosed")
    results = []
    for result, markdown in computed:
        run = Path(result["run_dir"])
        result["not_written"] = _rewrite_diagnosis(run, result["diagnosis"], markdown)
        results.append(result)
    return results


def _compute(run: Path, overrides: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """(result, diagnosis.md text) of one run, from its files; writes nothing."""
    from regcli.diagnosis import diagnose, render_markdown
    from regcli.replay import replay_report

    summary, history, config = diagnosis_inputs(rundir.RunFiles.open(run))
    diagnosis = diagnose(history, summary, config)
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


def print_diagnosis(console, result: dict[str, Any]) -> None:
    """A readable rich panel: verdict, evidence, recommendations, warnings, replay."""
    from rich.panel import Panel
    from rich.table import Table

    diag = result["diagnosis"]
    evidence = Table.grid(padding=(0, 2))
    evidence.add_column(style="dim")
    evidence.add_column()
    for key, value in diag.get("evidence", {}).items():
        if isinstance(value, (dict, list)):
            continue
        evidence.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(Panel(evidence, title=f"{result['run_dir']}: [bold]{diag['verdict']}[/]", expand=False))
    for i, rec in enumerate(diag.get("recommendations", []), start=1):
        console.print(f"{i}. {rec.get('text') if isinstance(rec, dict) else rec}", highlight=False)
    for warning in diag.get("warnings", []):
        text = warning.get("text") if isinstance(warning, dict) else warning
        console.print(f"[yellow]warning:[/] {text}", highlight=False)
    replay = result.get("replay")
    if replay:
        lines = replay.get("text") or replay.get("lines") or []
        if isinstance(lines, str):
            lines = [lines]
        console.print(Panel("\n".join(lines) or str(replay), title="early-stopping replay", expand=False))
