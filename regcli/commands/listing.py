"""`regcli ls`: the runs and sweeps under a directory, from their files alone (no TensorFlow, no Keras).

Each run directory is one row: name, state (status.json's, as `rundir.run_state` words it:
`killed` when the process that wrote `running` is gone), start time, shipped epoch, the best validation
value (`monitor=value`), the diagnosis verdict and the test error once `regcli test` ran.
A sweep directory (`sweep.yaml` + `trials/`) is one row with its trials' states. A damaged
run directory is listed with what is wrong with it (`summary.json truncated`, from
`rundir.RunFiles.probe`) instead of stopping the listing.

Example:

>>> [e["state"] for e in list_runs(Path("runs"))]  # doctest: +SKIP
['completed', 'killed', 'sweep']
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.errors import BadInputError

SWEEP_SPEC = "sweep.yaml"
TRIALS = "trials"
_STAMP_RE = re.compile(r"-(\d{8}T\d{6}Z)-[0-9a-f]{6}$")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _when(path: Path, started: Any) -> datetime:
    """When a run or sweep started: status.json, else the name's timestamp, else the directory's mtime."""
    when = _parse_time(started)
    if when is None:
        match = _STAMP_RE.search(path.name)
        when = _parse_time(match.group(1)) if match else None
    if when is None:
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return when


def row_state(run: Path, status: dict[str, Any] | None) -> tuple[str, str | None]:
    """`rundir.run_state` for a listing row: `?` without a readable status.json, `? ('x')` for an unknown state."""
    if status is None:
        return "?", None
    state, sentence = rundir.run_state(run, status)
    if state in (*rundir.STATES, rundir.KILLED):
        return state, sentence
    return f"? ({state!r})", None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def run_entry(run: Path) -> dict[str, Any]:
    """One run directory as a listing row; problems are collected, never raised."""
    files = rundir.RunFiles(run)
    problems: list[str] = []
    status, problem = files.probe(rundir.STATUS)
    if problem:
        problems.append(problem)
    state, sentence = row_state(run, status)
    if state == rundir.KILLED:
        problems.append(sentence)
    if state.startswith("? ("):
        problems.append(f"status.json has an unknown state {status.get('state')!r}")
        state = "?"
    summary: dict[str, Any] | None = None
    if (run / rundir.SUMMARY).exists() or state in ("completed", "diverged"):
        summary, problem = files.probe(rundir.SUMMARY)
        if problem:
            problems.append(problem)
    verdict = None
    if (run / rundir.DIAGNOSIS_JSON).exists() or state in ("completed", "diverged"):
        diagnosis, problem = files.probe(rundir.DIAGNOSIS_JSON)
        if problem:
            problems.append(problem)
        verdict = diagnosis.get("verdict") if diagnosis else None
    if state == "completed":
        for name in (rundir.CONFIG, rundir.HISTORY, rundir.MODEL):
            path = run / name
            if not path.exists():
                problems.append(f"{name} missing")
            elif path.stat().st_size == 0:
                problems.append(f"{name} empty")
    summary = summary or {}
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    started = status.get("started") if status else None
    return {
        "kind": "run",
        "name": run.name,
        "path": str(run),
        "state": state,
        "started": _when(run, started).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "best_epoch": summary.get("best_epoch"),
        "monitor": summary.get("monitor"),
        "best_value": _number(summary.get("best_value")),
        "verdict": verdict,
        "test_error": _number(test.get("error")),
        "problems": problems,
    }


def is_sweep_dir(path: Path) -> bool:
    return (path / SWEEP_SPEC).is_file() and (path / TRIALS).is_dir()


def is_run_dir(path: Path) -> bool:
    """A directory holding any run-directory file (a damaged run is still listed)."""
    return any((path / name).exists() for name in rundir.RUN_FILES)


def sweep_entry(sweep: Path) -> dict[str, Any]:
    """One sweep directory as a listing row: its trials and their states."""
    trials = sorted(p for p in (sweep / TRIALS).iterdir() if p.is_dir() and not p.name.startswith("."))
    states: Counter[str] = Counter()
    starts = []
    problems = []
    for trial in trials:
        status, problem = rundir.RunFiles(trial).probe(rundir.STATUS)
        states[row_state(trial, status)[0]] += 1
        if problem:
            problems.append(f"{trial.name}: {problem}")
        if status and _parse_time(status.get("started")):
            starts.append(_parse_time(status.get("started")))
    started = min(starts) if starts else _when(sweep, None)
    order = [*rundir.STATES, rundir.KILLED, "?"]
    counts = ", ".join(f"{states[s]} {s}" for s in sorted(states, key=lambda s: order.index(s) if s in order else 99))
    return {
        "kind": "sweep",
        "name": sweep.name,
        "path": str(sweep),
        "state": "sweep",
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n_trials": len(trials),
        "trial_states": dict(states),
        "trials": f"{len(trials)} trial(s)" + (f": {counts}" if counts else ""),
        "best_epoch": None,
        "monitor": None,
        "best_value": None,
        "verdict": None,
        "test_error": None,
        "problems": problems,
    }


def list_runs(root: Path) -> list[dict[str, Any]]:
    """The runs and sweeps directly under `root`, oldest first.

    `root` may itself be a run directory (one row) or a sweep directory (its trials).

    Raises:
        BadInputError (exit code 2): `root` does not exist or is not a directory.
    """
    root = Path(root)
    if not root.exists():
        raise BadInputError(f"{root} does not exist. Pass the directory your runs are in (default: runs/).")
    if not root.is_dir():
        raise BadInputError(f"{root} is not a directory. Pass the directory your runs are in (default: runs/).")
    if is_sweep_dir(root):
        root = root / TRIALS
    elif is_run_dir(root):
        return [run_entry(root)]
    entries = []
    for child in root.iterdir():
        if child.name.startswith(".") or not child.is_dir():
            continue
        if is_sweep_dir(child):
            entries.append(sweep_entry(child))
        elif is_run_dir(child):
            entries.append(run_entry(child))
    entries.sort(key=lambda e: (e["started"], e["name"]))
    return entries


_STATE_STYLE = {
    "completed": "green", "running": "cyan", "failed": "red", "diverged": "red", "interrupted": "yellow", "killed": "red",
}


def listing_table(entries: list[dict[str, Any]], root: Path):
    """A rich table of `list_runs` rows; a problem column appears only when something is wrong."""
    from rich.table import Table

    n_sweeps = sum(e["kind"] == "sweep" for e in entries)
    counts = [f"{len(entries) - n_sweeps} run(s)"] + ([f"{n_sweeps} sweep(s)"] if n_sweeps else [])
    table = Table(title=f"{root}: {', '.join(counts)}", show_header=True, header_style="bold")
    for name, justify in (("name", "left"), ("state", "left"), ("started (UTC)", "left"), ("best epoch", "right"),
                          ("best validation", "right"), ("verdict", "left"), ("test error", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    any_problem = any(e["problems"] for e in entries)
    if any_problem:
        table.add_column("problems", style="red", overflow="fold")
    for e in entries:
        if e["kind"] == "sweep":
            state = f"sweep, {e['trials']}"
            best = "-"
        else:
            style = _STATE_STYLE.get(e["state"], "yellow")
            state = f"[{style}]{e['state']}[/]"
            best = f"{e['monitor']}={e['best_value']:.4g}" if e["monitor"] and e["best_value"] is not None else "-"
        row = [e["name"], state, e["started"].replace("T", " ").rstrip("Z"), rundir.format_cell(e["best_epoch"]), best,
               rundir.format_cell(e["verdict"]), rundir.format_cell(e["test_error"])]
        if any_problem:
            row.append("; ".join(e["problems"]))
        table.add_row(*row)
    return table
