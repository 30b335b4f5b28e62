"""`regcli ls`: the runs and sweeps under a directory, from their files alone (no TensorFlow, no Keras).

Each run directory is one row: name, state (status.json's, as `rundir.run_state` words it:
`killed` when the process that wrote `running` is gone), start time, shipped epoch, the best
validation value of the penalty-free selection metric with its epoch (`val_data_loss`, the lowest
in history.csv: `val_loss` holds each run's own L1/L2 penalty, so it cannot rank runs), the
diagnosis verdict and the test error once `regcli test` ran. A sweep directory (`sweep.yaml` +
`trials/`) is one row with its trials' states and its winner's selection value (best.json); a
tune directory (`tune.yaml` + `trials/`) likewise, with its shipped configuration's mean, its
verdict, why it stopped and the final test's error. A
damaged run directory is listed with what is wrong with it (`summary.json truncated`, from
`rundir.RunFiles.probe`) instead of stopping the listing.

Example:

>>> [e["state"] for e in list_runs(Path("runs"))]  # doctest: +SKIP
['completed', 'killed', 'sweep']
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.errors import BadInputError
from regcli.values import finite_float, is_finite

SWEEP_SPEC = "sweep.yaml"
TUNE_SPEC = "tune.yaml"
TRIALS = "trials"
BEST = "best.json"
SELECTION_METRIC = "val_data_loss"  # a run's penalty-free selection metric, as a sweep's `select` defaults to
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


def best_in_history(run: Path, metric: str = SELECTION_METRIC) -> dict[str, Any] | None:
    """`{"metric", "value", "epoch"}`: the lowest finite `metric` in history.csv and its (first) epoch.

    None when history.csv is missing, unreadable or has no such column. Read with the csv module:
    pandas would add ~1.7 s to every `regcli ls` on a busy 2-core machine.
    """
    best: tuple[float, int] | None = None
    try:
        with (run / rundir.HISTORY).open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                value, epoch = finite_float(row.get(metric)), finite_float(row.get("epoch"))
                if value is not None and epoch is not None and (best is None or value < best[0]):
                    best = (value, int(epoch))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None if best is None else {"metric": metric, "value": best[0], "epoch": best[1]}


def best_validation(run: Path, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The run's best `val_data_loss` and its epoch: history.csv's, else summary.json's at the shipped epoch."""
    best = best_in_history(run)
    if best is not None:
        return best
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    val = metrics.get("val") if isinstance(metrics.get("val"), dict) else {}
    value = val.get("data_loss")
    if not is_finite(value):
        return None
    return {"metric": SELECTION_METRIC, "value": float(value), "epoch": summary.get("best_epoch")}


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
        "best_validation": best_validation(run, summary),
        "verdict": verdict,
        "test_error": _number(test.get("error")),
        "problems": problems,
    }


def is_sweep_dir(path: Path) -> bool:
    return (path / SWEEP_SPEC).is_file() and (path / TRIALS).is_dir()


def is_tune_dir(path: Path) -> bool:
    return (path / TUNE_SPEC).is_file() and (path / TRIALS).is_dir()


def is_run_dir(path: Path) -> bool:
    """A directory holding any run-directory file (a damaged run is still listed)."""
    return any((path / name).exists() for name in rundir.RUN_FILES)


def sweep_entry(sweep: Path, kind: str = "sweep") -> dict[str, Any]:
    """One sweep (or, with `kind="tune"`, tune) directory as a listing row: its trials and their states."""
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
    winner, best = None, {}
    if (sweep / BEST).exists():
        best, problem = rundir.probe_json(sweep / BEST)
        if problem:
            problems.append(problem)
        best = best or {}
        winner = sweep_winner(best)
    order = [*rundir.STATES, rundir.KILLED, "?"]
    counts = ", ".join(f"{states[s]} {s}" for s in sorted(states, key=lambda s: order.index(s) if s in order else 99))
    entry = {
        "kind": kind,
        "name": sweep.name,
        "path": str(sweep),
        "state": kind,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n_trials": len(trials),
        "trial_states": dict(states),
        "trials": f"{len(trials)} trial(s)" + (f": {counts}" if counts else ""),
        "best_epoch": None,
        "monitor": None,
        "best_value": None,
        "best_validation": winner,
        "verdict": None,
        "test_error": None,
        "problems": problems,
    }
    if kind == "tune":
        entry.update(_tune_outcome(best))
    return entry


def _tune_outcome(best: dict[str, Any]) -> dict[str, Any]:
    """A tune's verdict, why it stopped and its final test error, from best.json (empty while it runs)."""
    stopped = best.get("stopped") if isinstance(best.get("stopped"), dict) else {}
    final = best.get("final_test") if isinstance(best.get("final_test"), dict) else {}
    metrics = final.get("metrics") if isinstance(final.get("metrics"), dict) else {}
    return {"verdict": best.get("verdict") if isinstance(best.get("verdict"), str) else None,
            "stopped": stopped.get("code") if isinstance(stopped.get("code"), str) else None,
            "test_error": _number(metrics.get("error"))}


def sweep_winner(best: dict[str, Any]) -> dict[str, Any] | None:
    """`{"metric", "value", "epoch": None, "config"}` from best.json: the winner's selection value (its mean over seeds)."""
    value = best.get("mean")
    if not best.get("config") or not isinstance(best.get("metric"), str) or not is_finite(value):
        return None
    return {"metric": best["metric"], "value": float(value), "epoch": None, "config": best["config"]}


def list_runs(root: Path) -> list[dict[str, Any]]:
    """The runs and sweeps directly under `root`, oldest first.

    `root` may itself be a run directory (one row) or a sweep or tune directory (its trials).

    Raises:
        BadInputError (exit code 2): `root` does not exist or is not a directory.
    """
    root = Path(root)
    if not root.exists():
        raise BadInputError(f"{root} does not exist. Pass the directory your runs are in (default: runs/).")
    if not root.is_dir():
        raise BadInputError(f"{root} is not a directory. Pass the directory your runs are in (default: runs/).")
    if is_sweep_dir(root) or is_tune_dir(root):
        root = root / TRIALS
    elif is_run_dir(root):
        return [run_entry(root)]
    entries = []
    for child in root.iterdir():
        if child.name.startswith(".") or not child.is_dir():
            continue
        if is_sweep_dir(child):
            entries.append(sweep_entry(child))
        elif is_tune_dir(child):
            entries.append(sweep_entry(child, kind="tune"))
        elif is_run_dir(child):
            entries.append(run_entry(child))
    entries.sort(key=lambda e: (e["started"], e["name"]))
    return entries


_STATE_STYLE = {
    "completed": "green", "running": "cyan", "failed": "red", "diverged": "red", "interrupted": "yellow", "killed": "red",
}


def listing_table(entries: list[dict[str, Any]], root: Path):
    """A rich table of `list_runs` rows; a problem column appears only when something is wrong."""
    from rich.markup import escape
    from rich.table import Table

    kinds = Counter(e["kind"] for e in entries)
    counts = [f"{kinds['run']} run(s)"] + [f"{kinds[k]} {k}(s)" for k in ("sweep", "tune") if kinds[k]]
    table = Table(title=f"{root}: {', '.join(counts)}", show_header=True, header_style="bold")
    metrics = {e["best_validation"]["metric"] for e in entries if e.get("best_validation")}
    one_metric = metrics.pop() if len(metrics) == 1 else None
    best_head = f"best {one_metric}\n(epoch)" if one_metric else "best validation\n(epoch)"  # 2 lines: narrower
    for name, justify in (("name", "left"), ("state", "left"), ("started (UTC)", "left"), ("shipped\nepoch", "right"),
                          (best_head, "right"), ("verdict", "left"), ("test error", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    any_problem = any(e["problems"] for e in entries)
    if any_problem:
        table.add_column("problems", style="red", overflow="fold")
    for e in entries:
        if e["kind"] == "sweep":
            state = f"sweep, {e['trials']}"
        elif e["kind"] == "tune":
            state = f"tune, {e['trials']}" + (f"; stopped: {e['stopped']}" if e.get("stopped") else "")
        else:
            state = f"[{_STATE_STYLE.get(e['state'], 'yellow')}]{e['state']}[/]"
        row = [escape(e["name"]), state, e["started"].replace("T", " ").rstrip("Z"), rundir.format_cell(e["best_epoch"]),
               best_cell(e.get("best_validation"), one_metric), rundir.format_cell(e["verdict"]),
               rundir.format_cell(e["test_error"])]
        if any_problem:
            row.append(escape("; ".join(e["problems"])))
        table.add_row(*row)
    return table


def best_cell(best: dict[str, Any] | None, column_metric: str | None) -> str:
    """`0.4736 (4)` for a run, `0.4736 (winner)` for a sweep; `val_error=0.05 (...)` when the column mixes metrics."""
    if not best:
        return "-"
    value = f"{best['value']:.4g}"
    if best["metric"] != column_metric:
        value = f"{best['metric']}={value}"
    return f"{value} ({best['epoch'] if best['epoch'] is not None else 'winner'})"
