"""`regcli report`: one self-contained report.html for a run, sweep or tune directory.

The page needs no network: figures are inlined as base64 PNG data URIs, the CSS is inline,
there is no script and no web font, and a Content-Security-Policy forbids anything else.
Only files are read (no TensorFlow, no Keras); every value taken from them is escaped.
The one file written is `report.html`, atomically, after everything has been read: a bad
input leaves the directory as it was. `regcli report DIR...` builds every page before it
writes the first, so one bad directory among several leaves them all as they were.

(The sweep's terminal display is `regcli.sweep.console`.)
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import webbrowser
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from regcli import __version__, rundir
from regcli.errors import RunDirError
from regcli.sweep import store
from regcli.sweep.store import BEST, LEADERBOARD, MANIFEST, RESULTS, SWEEP_SPEC
from regcli.tune.plan import STEPS, TRAJECTORY, TUNE_SPEC

REPORT = "report.html"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = ("loss", "data_loss", "accuracy", "mae", "error")


def write_report(path: Path) -> Path:
    """Writes `<path>/report.html` for a run or sweep directory and returns its path.

    Raises:
        RunDirError: the path does not exist, is neither a run nor a sweep directory, is
            still running or was killed (`rundir.run_state`), holds a file that cannot be read, or
            cannot be written (exit code 2).
    """
    return write_reports([path])[0]


def write_reports(paths: Sequence[Path]) -> list[Path]:
    """`write_report` of several directories: every page is built before any report.html is written.

    Raises:
        RunDirError (exit code 2): as `write_report`; a directory that cannot be read stops them all
            before anything is written.
    """
    from regcli.commands.several import each_or_none

    pages = each_or_none([Path(p) for p in paths], render_report, "reported")
    written: list[Path] = []
    for path, page in pages:
        try:
            written.append(_write_page(path, page))
        except RunDirError as exc:
            if not written:
                raise
            raise RunDirError(f"{exc} The reports before it were written: {', '.join(map(str, written))}.") from None
    return written


def render_report(path: Path) -> tuple[Path, str]:
    """(directory, the HTML page) of a run or sweep directory; reads its files, writes nothing."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist (looked for {path.absolute()}). Pass a run or sweep directory.")
    if not path.is_dir():
        raise RunDirError(f"{path} is a file; `regcli report` takes a run directory or a sweep directory.")
    if (path / TUNE_SPEC).is_file():
        return path, tune_page(path)
    if (path / SWEEP_SPEC).is_file() or (path / MANIFEST).is_file():
        return path, sweep_page(path)
    if (path / rundir.STATUS).exists() or (path / rundir.CONFIG).exists():
        return path, run_page(path)
    raise RunDirError(
        f"{path} is neither a regcli run directory (no {rundir.STATUS}) nor a sweep directory "
        f"(no {SWEEP_SPEC}). Pass the directory `regcli train` or `regcli sweep` printed."
    )


def _write_page(path: Path, page: str) -> Path:
    target = path / REPORT
    try:
        rundir.atomic_write_text(target, page)
    except OSError as exc:
        raise RunDirError(
            f"{rundir.write_error(target, exc, 'written')} Nothing in {path} was changed; make it writable "
            f"and run regcli report again."
        ) from None
    return target


def open_in_browser(report: Path) -> bool:
    """Opens the report in the default browser; False (and no error) when there is none."""
    try:
        return bool(webbrowser.open(Path(report).resolve().as_uri()))
    except webbrowser.Error:
        return False


# --------------------------------------------------------------------------- reading


def _text(path: Path) -> str | None:
    """A file's text, None when it is missing; RunDirError when it is there but unreadable."""
    if not path.exists():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is not UTF-8 text: the file is corrupt.") from None
    except OSError as exc:
        raise RunDirError(f"{path} cannot be read: {exc.strerror or exc}.") from None


def _json(path: Path, what: str) -> dict[str, Any] | None:
    """A JSON object from the directory, None when missing; RunDirError when corrupt."""
    return rundir.read_json(path, what) if path.exists() else None


def _csv(path: Path) -> list[dict[str, str]] | None:
    text = _text(path)
    if text is None:
        return None
    if text and not text.endswith("\n"):
        raise RunDirError(f"{path} ends in a partial line: the file is truncated.")
    rows = list(csv.DictReader(io.StringIO(text)))
    if text.strip() and not rows and "," not in text:
        raise RunDirError(f"{path} is not a regcli CSV file: it has no header.")
    return rows


def _figures(directory: Path) -> list[tuple[str, bytes]]:
    """Every PNG in the directory as (file name, bytes): learning curves, then val_vs_*, gap_vs_*, the rest."""
    order = ("learning_curves", "val_vs_", "gap_vs_")
    pngs = sorted(directory.glob("*.png"),
                  key=lambda p: (next((i for i, o in enumerate(order) if p.name.startswith(o)), len(order)), p.name))
    out = []
    for png in pngs:
        try:
            data = png.read_bytes()
        except OSError:
            continue
        if data.startswith(PNG_SIGNATURE):  # a torn or foreign file would show as a broken image
            out.append((png.name, data))
    return out


def read_run(run: Path) -> dict[str, Any]:
    """Everything the run page shows, read from the run's files alone.

    A completed run must have all its files; a failed, diverged or interrupted run gets a
    page of whatever it wrote. A file that is there but unreadable is an error.
    """
    from regcli.commands.diagnose import diagnosis_inputs

    files = rundir.RunFiles(run)
    status = files.status
    state = status.get("state")
    if state not in rundir.STATES:
        raise RunDirError(f"{run / rundir.STATUS} has state {state!r}; expected one of {', '.join(rundir.STATES)}.")
    files.require_finished("reported")
    info: dict[str, Any] = {"status": status, "config_text": _text(run / rundir.CONFIG), "diagnosis": None}
    if state == "completed" or files.has(rundir.SUMMARY):
        # The same reading as `regcli diagnose --json`, without rewriting diagnosis.json/.md.
        from regcli.diagnosis import diagnose

        summary, history, config = diagnosis_inputs(files, "reported")
        info.update(summary=summary, history=history, config=config, diagnosis=diagnose(history, summary, config))
    else:
        info["summary"] = None
        info["history"] = files.history if files.has(rundir.HISTORY) else None
    info["figures"] = _figures(run)
    return info


def read_sweep(sweep_dir: Path) -> dict[str, Any]:
    """Everything the sweep page shows: spec, trial states, leaderboard, winner, figures."""
    manifest = rundir.read_json(sweep_dir / MANIFEST, "the sweep manifest")
    trials = manifest.get("trials")
    if not isinstance(trials, list) or not all(isinstance(t, Mapping) and "id" in t for t in trials):
        raise RunDirError(f"{sweep_dir / MANIFEST} has no list of trials: the file is corrupt.")
    return {
        "spec_text": _text(sweep_dir / SWEEP_SPEC),
        "manifest": manifest,
        "states": {str(t["id"]): store.trial_state(sweep_dir, str(t["id"])) for t in trials},
        "results": _csv(sweep_dir / RESULTS),
        "leaderboard": _csv(sweep_dir / LEADERBOARD),
        "best": _json(sweep_dir / BEST, "the sweep's winner"),
        "figures": _figures(sweep_dir),
    }


# --------------------------------------------------------------------------- HTML pieces

CSS = """
:root { --fg:#1d2430; --muted:#5b6576; --line:#dde2ea; --bg:#f6f7f9; --card:#fff; --accent:#2f5fb3; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px 20px 48px; }
header h1 { font-size: 22px; margin: 0 0 4px; word-break: break-all; }
header p { margin: 0; color: var(--muted); }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin-top:16px; }
h2 { font-size: 17px; margin: 0 0 10px; }
table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 12px 4px 0; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; }
th { color: var(--muted); font-weight: 600; }
pre { background: var(--bg); border:1px solid var(--line); border-radius:6px; padding:10px; overflow:auto; font-size:13px; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 12px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figcaption { color: var(--muted); font-size: 13px; }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:13px; font-weight:600;
         background:#e7ecf5; color:var(--accent); margin-right:6px; }
.good { background:#e3f4e8; color:#1d7a3a; } .warn { background:#fdf1dc; color:#8a5a00; }
.bad { background:#fbe4e4; color:#a12626; }
.headline { font-size: 16px; font-weight: 600; }
.note { color: var(--muted); }
.row { display: flex; flex-wrap: wrap; gap: 0 40px; align-items: flex-start; }
footer { color: var(--muted); font-size: 12px; margin-top: 20px; }
"""

# No script, no font, no request: the page may only show inline styles and data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

BADGE_CLASS = {
    "completed": "good", "good_fit": "good", "high_bias": "warn", "high_variance": "warn",
    "high_bias_and_variance": "warn", "interrupted": "warn", "pending": "warn", "running": "warn",
    "failed": "bad", "diverged": "bad", "not_learning": "bad",
}


def esc(value: Any) -> str:
    """Escapes any value for HTML; floats get 4 significant digits."""
    return html.escape(rundir.format_cell(value))


def badge(text: Any, kind: str | None = None) -> str:
    """A coloured label; its colour from `kind` (a state or verdict), by default from the text."""
    return f'<span class="badge {BADGE_CLASS.get(str(kind or text), "")}">{esc(text)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric_from: int = 1) -> str:
    """A table; columns from `numeric_from` on are right-aligned."""
    def cls(i: int) -> str:
        return ' class="num"' if i >= numeric_from else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{esc(v)}</td>" for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(title: str, body: str, section_id: str) -> str:
    return f'<section id="{section_id}"><h2>{html.escape(title)}</h2>{body}</section>'


def figure_html(name: str, data: bytes, caption: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="{uri}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)} <code>{html.escape(name)}</code></figcaption></figure>")


def figures_html(figures: Sequence[tuple[str, bytes]], metric: str = "val_data_loss") -> str:
    if not figures:
        return ""
    return '<div class="figures">' + "".join(figure_html(n, d, caption_for(n, metric)) for n, d in figures) + "</div>"


def caption_for(name: str, metric: str = "val_data_loss") -> str:
    """A caption from a figure's file name: `gap_vs_model.l2.png` -> "Generalization gap vs model.l2 ..."."""
    stem = name[:-4] if name.endswith(".png") else name
    if stem == "learning_curves":
        return "Learning curves: train (as trained and clean) vs validation, best epoch and stop marked."
    if stem.startswith("val_vs_"):
        return f"Validation {metric} vs {stem[7:]}: best over the other knobs, error bars over seeds."
    if stem.startswith("gap_vs_"):
        return f"Generalization gap (validation error − clean training error) vs {stem[7:]}."
    text = stem.replace("_", " ").strip()
    return text[:1].upper() + text[1:] + "."


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} — regcli report</title><style>{CSS}</style></head>"
        f"<body><main><header><h1>{html.escape(title)}</h1><p>{subtitle}</p></header>"
        + "".join(sections)
        + f"<footer>Written by regcli {html.escape(__version__)} on {esc(rundir.utc_now())}. "
        "Self-contained: no network, figures inlined.</footer></main></body></html>\n"
    )


# --------------------------------------------------------------------------- run page


def run_page(run: Path) -> str:
    """The HTML page of one run directory."""
    info = read_run(run)
    status, summary, diag = info["status"], info["summary"], info["diagnosis"]
    subtitle = badge(status.get("state")) + (badge(diag["verdict"]) if diag else "")
    subtitle += f"started {esc(status.get('started'))}, ended {esc(status.get('ended'))}"
    sections = []
    if status.get("error"):
        sections.append(section("What went wrong", f"<pre>{esc(status['error'])}</pre>", "error"))
    sections.append(section("Verdict", _verdict_html(diag), "verdict"))
    sections.append(section("Learning curves", figures_html(info["figures"]) or
                            '<p class="note">This run wrote no figure.</p>', "curves"))
    sections.append(section("Summary", _summary_html(summary, info.get("config"), info.get("history")), "summary"))
    if diag:
        rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in diag["evidence"].items()]
        sections.append(section("Evidence", "<details><summary>Every number the verdict reads</summary>"
                                + table(("evidence", "value"), rows, numeric_from=2) + "</details>", "evidence"))
    config = info["config_text"]
    sections.append(section("Resolved spec (config.yaml)",
                            f"<pre>{html.escape(config)}</pre>" if config is not None
                            else '<p class="note">config.yaml is missing.</p>', "config"))
    return page(run.resolve().name, subtitle, sections)


def _verdict_html(diag: Mapping[str, Any] | None) -> str:
    if not diag:
        return '<p class="note">No diagnosis: the run did not finish, so it has no summary.json to diagnose.</p>'
    parts = [f'<p class="headline" id="verdict-text">{html.escape(str(diag.get("headline") or diag["verdict"]))}</p>']
    reading = diag.get("evidence", {}).get("curve_reading")
    if reading:
        parts.append(f"<p>{html.escape(str(reading))}</p>")
    recs = diag.get("recommendations") or []
    if recs:
        items = "".join(f"<li>{html.escape(str(r.get('text') if isinstance(r, Mapping) else r))}</li>" for r in recs)
        parts.append(f"<p>Next, one knob at a time:</p><ol>{items}</ol>")
    warnings = diag.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{html.escape(str(w.get('text') if isinstance(w, Mapping) else w))}</li>" for w in warnings)
        parts.append(f'<p>Warnings:</p><ul class="warnings">{items}</ul>')
    return "".join(parts)


def best_epoch_reason(summary: Mapping[str, Any], config: Mapping[str, Any] | None) -> str:
    """Why the shipped epoch was shipped, in one sentence."""
    es = ((config or {}).get("training") or {}).get("early_stopping") or {}
    best, shipped, run_ = summary.get("best_epoch"), summary.get("shipped_epoch"), summary.get("epochs_run")
    text = f"Epoch {rundir.format_cell(best)} had the best {summary.get('monitor')} ({rundir.format_cell(summary.get('best_value'))}). "
    if summary.get("stopped_early"):
        text += (f"Training stopped early after epoch {rundir.format_cell(run_)}: {rundir.format_cell(es.get('patience'))} epochs "
                 f"without improvement (patience). ")
    else:
        text += f"Training ran all {rundir.format_cell(run_)} epochs. "
    if summary.get("restored_best_weights"):
        text += f"The best epoch's weights were restored, so epoch {rundir.format_cell(shipped)} was shipped."
    else:
        text += f"Best weights were not restored: the last epoch ({rundir.format_cell(shipped)}) was shipped."
    return text


def _summary_html(summary: Mapping[str, Any] | None, config: Any, history: Any) -> str:
    if not summary:
        if history is None or not len(history):
            return '<p class="note">No summary.json and no recorded epoch.</p>'
        last = history.iloc[-1].to_dict()
        return (f'<p class="note">No summary.json: the run stopped after {len(history)} recorded epoch(s). '
                "Its last row of history.csv:</p>"
                + table(list(last), [list(last.values())], numeric_from=0))
    parts = [f"<p>{html.escape(best_epoch_reason(summary, config))}</p>"]
    metrics = summary.get("metrics") or {}
    splits = [s for s in ("train", "val", "test") if isinstance(metrics.get(s), Mapping)]
    heads = {"train": "train (clean)", "val": "validation", "test": "test"}
    rows = [[k] + [metrics[s].get(k) for s in splits] for k in METRIC_KEYS if any(k in metrics[s] for s in splits)]
    facts = [(k, summary.get(k)) for k in ("penalty", "penalty_share", "n_train", "n_val", "n_test", "n_params",
                                           "seed", "backend", "seconds") if k in summary]
    parts.append('<div class="row">' + table(["metric"] + [heads[s] for s in splits], rows)
                 + table(("", "value"), facts, numeric_from=2) + "</div>")
    stats = summary.get("weight_stats") or {}
    if stats:
        rows = [(layer, s.get("l1_norm"), s.get("l2_norm"), s.get("near_zero_fraction"))
                for layer, s in stats.items() if isinstance(s, Mapping)]
        parts.append("<p>Weights per layer (L1's sparsity shows as the share of |w| &lt; 1e-3):</p>"
                     + table(("layer", "l1_norm", "l2_norm", "near_zero_fraction"), rows))
    return "".join(parts)


# --------------------------------------------------------------------------- sweep page


def sweep_page(sweep_dir: Path) -> str:
    """The HTML page of one sweep directory."""
    info = read_sweep(sweep_dir)
    best, board = info["best"], info["leaderboard"]
    metric = (best or {}).get("metric") or "val_data_loss"
    counts = Counter(info["states"].values())
    subtitle = "".join(badge(f"{n} {state}", state) for state, n in sorted(counts.items()))
    subtitle += f"{len(info['states'])} trial(s); created {esc(info['manifest'].get('created'))}"
    state_rows = [(state, n) for state, n in sorted(counts.items())]
    sections = [
        section("Winner", _winner_html(best), "winner"),
        section("Leaderboard", _leaderboard_html(board, metric), "leaderboard"),
        section("Figures", figures_html(info["figures"], metric)
                or '<p class="note">The sweep has written no figure yet.</p>', "figures"),
        section("Trials", table(("state", "trials"), state_rows) + _trials_html(info["results"]), "trials"),
        section("Resolved sweep spec (sweep.yaml)",
                f"<pre>{html.escape(info['spec_text'])}</pre>" if info["spec_text"] is not None
                else '<p class="note">sweep.yaml is missing.</p>', "config"),
    ]
    return page(sweep_dir.resolve().name, subtitle, sections)


def _winner_html(best: Mapping[str, Any] | None) -> str:
    if best is None:
        return '<p class="note">No best.json yet: the sweep has not been aggregated.</p>'
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in best.get("notes") or [])
    notes = f'<ul class="notes">{notes}</ul>' if notes else ""
    if not best.get("config"):
        return '<p class="headline" id="verdict-text">No winner: no trial completed.</p>' + notes
    std = f" ± {rundir.format_cell(best.get('std'))}" if best.get("std") is not None else ""
    parts = [
        f'<p class="headline" id="verdict-text">Winner: {esc(best["config"])} — {esc(best.get("metric"))} '
        f"{esc(best.get('mean'))}{html.escape(std)} over {esc(best.get('n_completed'))} seed(s), chosen on validation only.</p>",
        table(("knob", "value"), (best.get("params") or {}).items(), numeric_from=1),
        f"<p>Shipped run: <code>{esc(best.get('shipped_run'))}</code></p>",
    ]
    final = best.get("final_test")
    if isinstance(final, Mapping) and isinstance(final.get("metrics"), Mapping):
        rows = [(k, final["metrics"][k]) for k in METRIC_KEYS if k in final["metrics"]]
        parts.append(f"<p>Final test, the winner only, once ({esc(final.get('n_test'))} rows):</p>"
                     + table(("metric", "test"), rows))
    elif best.get("final_test_skipped"):
        parts.append(f'<p class="note">No final test: {esc(best["final_test_skipped"])}.</p>')
    else:
        parts.append('<p class="note">No final test result.</p>')
    return "".join(parts) + notes


def _leaderboard_html(board: list[dict[str, str]] | None, metric: str) -> str:
    if not board:
        return '<p class="note">No leaderboard.csv yet: the sweep has not been aggregated.</p>'
    columns = list(board[0])
    knobs = columns[columns.index("config") + 1:columns.index("n_seeds")] if {"config", "n_seeds"} <= set(columns) else []
    heads = ["#", *knobs, metric, "± std", "val error", "train error", "gap", "seeds"]
    rows = [
        [r.get("rank"), *(r.get(k) for k in knobs), _num(r.get(f"{metric}_mean")), _num(r.get(f"{metric}_std")),
         _num(r.get("val_error_mean")), _num(r.get("train_error_mean")), _num(r.get("gap_mean")),
         f"{r.get('n_completed', '')}/{r.get('n_seeds', '')}"]
        for r in board
    ]
    return table(heads, rows)


def _trials_html(results: list[dict[str, str]] | None) -> str:
    if not results:
        return ""
    heads = ["trial", "status", "seed", "best epoch", "val error", "gap", "verdict"]
    rows = [[r.get("trial"), r.get("status"), r.get("seed"), r.get("best_epoch"), _num(r.get("val_error")),
             _num(r.get("gap")), r.get("verdict")] for r in results]
    return "<details><summary>Every trial (results.csv)</summary>" + table(heads, rows, numeric_from=2) + "</details>"


def _num(text: str | None) -> Any:
    """A CSV cell as a float when it is one (for 4-digit display), else as it is."""
    if text in (None, ""):
        return None
    try:
        return float(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- tune page


def read_tune(tune_dir: Path) -> dict[str, Any]:
    """Everything the tune page shows: tune.yaml, the steps, the shipped configuration, the trajectory."""
    return {
        "spec_text": _text(tune_dir / TUNE_SPEC),
        "steps": _csv(tune_dir / STEPS) or [],
        "best": _json(tune_dir / BEST, "the tune's shipped configuration"),
        "figures": [(n, d) for n, d in _figures(tune_dir) if n == TRAJECTORY],
    }


def tune_page(tune_dir: Path) -> str:
    """The HTML page of one tune directory: what was shipped, every decision and why, the trajectory."""
    info = read_tune(tune_dir)
    best, steps = info["best"], info["steps"]
    accepted = sum(r.get("accepted") == "true" and bool(r.get("knob")) for r in steps)
    subtitle = badge(best.get("verdict") or "?") if best else badge("unfinished", "running")
    subtitle += f"{esc(accepted)} accepted change(s) in {esc(len(steps))} decision(s)"
    figures = "".join(figure_html(n, d, "Validation and clean-train error per step, each point labelled with the "
                                  "knob turned; right: every configuration tried (mean ± std over seeds).")
                      for n, d in info["figures"])
    sections = [
        section("Shipped configuration", _tune_best_html(best), "winner"),
        section("Trajectory", figures or '<p class="note">No trajectory.png yet.</p>', "figures"),
        section("Steps (steps.csv)", _steps_html(steps), "steps"),
        section("Resolved tune (tune.yaml)",
                f"<pre>{html.escape(info['spec_text'])}</pre>" if info["spec_text"] is not None
                else '<p class="note">tune.yaml is missing.</p>', "config"),
    ]
    return page(tune_dir.resolve().name, subtitle, sections)


def _tune_best_html(best: Mapping[str, Any] | None) -> str:
    if best is None:
        return ('<p class="headline" id="verdict-text">No best.json yet: the tune has not finished. '
                "Continue it with regcli tune --resume.</p>")
    overrides = best.get("overrides") or {}
    std = f" ± {rundir.format_cell(best.get('std'))}" if best.get("std") is not None else ""
    what = ", ".join(best.get("set") or []) or "the base spec, unchanged"
    parts = [
        f'<p class="headline" id="verdict-text">Shipped: {esc(what)} — val_data_loss {esc(best.get("mean"))}'
        f"{html.escape(std)} over {esc(len(best.get('seeds') or []))} seed(s), chosen on validation only.</p>",
        f"<p>Stopped: {esc((best.get('stopped') or {}).get('text'))}. {esc(best.get('trials_used'))} of "
        f"{esc(best.get('budget'))} trials used.</p>",
        table(("knob", "value"), overrides.items(), numeric_from=1) if overrides else "",
        f"<p>Shipped run: <code>{esc(best.get('shipped_run'))}</code></p>",
    ]
    final = best.get("final_test")
    if isinstance(final, Mapping) and isinstance(final.get("metrics"), Mapping):
        rows = [(k, final["metrics"][k]) for k in METRIC_KEYS if k in final["metrics"]]
        parts.append("<p>Final test, the shipped run only, once:</p>" + table(("metric", "test"), rows))
    elif best.get("final_test_skipped"):
        parts.append(f'<p class="note">No final test: {esc(best["final_test_skipped"])}.</p>')
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in best.get("notes") or [])
    return "".join(parts) + (f'<ul class="notes">{notes}</ul>' if notes else "")


def _steps_html(steps: list[dict[str, str]]) -> str:
    if not steps:
        return '<p class="note">No steps.csv yet.</p>'
    heads = ["step", "knob", "from", "to", "val_data_loss", "± std", "accepted", "why"]
    numeric, num_class = {4, 5}, ' class="num"'
    head = "".join(f'<th{num_class if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(heads))
    body = ""
    for r in steps:
        cells = [r.get("step"), r.get("knob") or ("base" if r.get("step") == "0" else ""), r.get("from"), r.get("to"),
                 _num(r.get("val_mean")), _num(r.get("val_std")), r.get("accepted"), r.get("why")]
        body += "<tr>" + "".join(f'<td{num_class if i in numeric else ""}>{esc(v)}</td>'
                                 for i, v in enumerate(cells[:-1]))
        body += f'<td style="overflow-wrap:anywhere">{esc(cells[-1])}</td></tr>'  # long knob names wrap too
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
