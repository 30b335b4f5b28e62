"""Trials' files -> results.csv, leaderboard.csv, best.json and the notes that go with them.

Everything is read back from the trial directories (status.json, summary.json,
diagnosis.json), never from what a worker returned, so a resumed sweep, a Ray sweep and
a local one aggregate identically. Ranking uses the validation split only (SPEC §3): the
`select.metric` averaged over seeds. A configuration is eligible to win only when every
one of its seeds completed ("stable across seeds"); the others rank below it.

The pure part (`leaderboard`, `pick_winner`, `noise_check`, `edge_notes`, `shipped_run_note`,
and `variance` with its note) works on plain DataFrames and is tested on hand-written
numbers; `aggregate` does the I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from regcli import rundir
from regcli.sweep import store, variance
from regcli.sweep.expand import FRACTION_KNOB, format_value, parse_cell, same_value
from regcli.sweep.spec import Sweep, penalty_knobs_varied
from regcli.values import is_finite

# The per-trial numbers that results.csv carries and the leaderboard averages.
BOARD_METRICS = ("val_data_loss", "val_loss", "val_error", "val_accuracy", "val_mae", "train_error", "gap")
# best.json's `final_test_skipped` for a --smoke sweep whose spec asks for final_test: true.
FINAL_TEST_SKIPPED_SMOKE = (
    "this is a --smoke sweep, and a smoke run never consults the test split; run the sweep without --smoke "
    "for its final test"
)


# --------------------------------------------------------------------------------------
# Reading the trials
# --------------------------------------------------------------------------------------
def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def knob_csv_value(value: Any) -> Any:
    """A knob value as results.csv holds it: scalars as they are, lists and mappings as JSON
    (`expand.parse_cell` reads it back)."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def trial_row(sweep_dir: Path, trial: Any) -> dict[str, Any]:
    """One results.csv row, from the trial directory's files."""
    run = store.trial_dir(sweep_dir, trial.id)
    status = _read(run / rundir.STATUS)
    state = store.trial_state(sweep_dir, trial.id)
    summary = _read(run / rundir.SUMMARY) if state in store.FINAL_STATES else {}
    metrics = summary.get("metrics") or {}
    train, val = metrics.get("train") or {}, metrics.get("val") or {}
    row: dict[str, Any] = {"trial": trial.id, "config": trial.config}
    row.update({knob: knob_csv_value(value) for knob, value in trial.params.items()})
    row.update({"seed": trial.seed, "status": state, "error": status.get("error") if state != "completed" else None})
    row.update(
        {
            "best_epoch": summary.get("best_epoch"),
            "epochs_run": summary.get("epochs_run"),
            "n_train": summary.get("n_train"),  # the rows it really trained on (after --smoke's cap)
            "train_loss": train.get("loss"),
            "train_data_loss": train.get("data_loss"),
        }
    )
    for name in ("accuracy", "mae"):
        if name in train or name in val:
            row[f"train_{name}"] = train.get(name)
    row["train_error"] = train.get("error")
    row.update({"val_loss": val.get("loss"), "val_data_loss": val.get("data_loss")})
    for name in ("accuracy", "mae"):
        if name in train or name in val:
            row[f"val_{name}"] = val.get(name)
    row["val_error"] = val.get("error")
    gap = None
    if is_finite(val.get("error")) and is_finite(train.get("error")):
        gap = val["error"] - train["error"]
    row.update(
        {
            "gap": gap,
            "penalty": summary.get("penalty"),
            "penalty_share": summary.get("penalty_share"),
            "verdict": _read(run / rundir.DIAGNOSIS_JSON).get("verdict") if summary else None,
            "seconds": summary.get("seconds"),
            "run_dir": f"{store.TRIALS}/{trial.id}",
        }
    )
    return row


def results_frame(sweep_dir: Path, sweep: Sweep) -> pd.DataFrame:
    """One row per trial, in expansion order (trials not run yet have status `pending`)."""
    rows = [trial_row(sweep_dir, t) for t in sweep.trials]
    frame = pd.DataFrame(rows)
    for column in ("val_accuracy", "val_mae", "train_accuracy", "train_mae"):
        if column in frame and frame[column].isna().all():
            frame = frame.drop(columns=column)
    return frame


# --------------------------------------------------------------------------------------
# The leaderboard (pure)
# --------------------------------------------------------------------------------------
def leaderboard(results: pd.DataFrame, knobs: Sequence[str], metric: str, mode: str) -> pd.DataFrame:
    """Per configuration: mean and std over seeds, ranked on `metric` (validation only).

    Completed trials feed the means; `diverged` trials are counted, not averaged. Eligible
    configurations (every seed completed) rank first, then partial ones, then those with no
    completed seed. `std` is the sample standard deviation (empty for one seed).
    """
    metrics = [metric] + [m for m in BOARD_METRICS if m != metric and m in results]
    rows = []
    for config, group in results.groupby("config", sort=False):
        done = group[group["status"] == "completed"]
        row: dict[str, Any] = {"config": config}
        row.update({knob: group[knob].iloc[0] for knob in knobs})
        row.update(
            {
                "n_seeds": len(group),
                "n_completed": len(done),
                "n_diverged": int((group["status"] == "diverged").sum()),
                "n_failed": int(group["status"].isin(["failed", "interrupted", "running", "pending"]).sum()),
            }
        )
        for m in metrics:
            values = pd.to_numeric(done[m], errors="coerce").dropna() if m in done else pd.Series(dtype=float)
            row[f"{m}_mean"] = float(values.mean()) if len(values) else None
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    sign = 1.0 if mode == "min" else -1.0
    key = pd.to_numeric(board[f"{metric}_mean"], errors="coerce") * sign
    tier = (board["n_completed"] < board["n_seeds"]).astype(int) + key.isna().astype(int)
    order = sorted(range(len(board)), key=lambda i: (tier.iloc[i], key.iloc[i] if pd.notna(key.iloc[i]) else math.inf, i))
    board = board.iloc[order].reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def pick_winner(board: pd.DataFrame) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The rank-1 configuration (None when nothing completed) and the runner-up."""
    ranked = [row for _, row in board.iterrows() if row["n_completed"] > 0] if not board.empty else []
    winner = ranked[0].to_dict() if ranked else None
    runner_up = ranked[1].to_dict() if len(ranked) > 1 else None
    return winner, runner_up


def noise_check(
    results: pd.DataFrame, winner: Mapping[str, Any], runner_up: Mapping[str, Any], metric: str, mode: str
) -> dict[str, Any]:
    """Is the winner's margin over the runner-up larger than seed noise?

    Two views: the ±1 std intervals over seeds overlap (`within_noise`), and a paired
    comparison on the seeds both completed (on how many seeds the winner was better, and
    the paired t statistic of the differences).
    """
    sign = 1.0 if mode == "min" else -1.0
    m1, m2 = winner[f"{metric}_mean"], runner_up[f"{metric}_mean"]
    s1, s2 = winner.get(f"{metric}_std"), runner_up.get(f"{metric}_std")
    margin = abs(m2 - m1) if is_finite(m1) and is_finite(m2) else None
    within = None
    if margin is not None and is_finite(s1) and is_finite(s2):
        within = bool(margin <= s1 + s2)
    done = results[results["status"] == "completed"]
    a = done[done["config"] == winner["config"]].set_index("seed")[metric]
    b = done[done["config"] == runner_up["config"]].set_index("seed")[metric]
    common = sorted(set(a.index) & set(b.index))
    paired = None
    if common:
        diffs = [sign * (float(b[s]) - float(a[s])) for s in common]  # > 0: the winner was better
        mean = sum(diffs) / len(diffs)
        t = None
        if len(diffs) > 1:
            sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
            t = mean / (sd / math.sqrt(len(diffs))) if sd > 0 else (math.inf if mean > 0 else None)
        paired = {"n": len(diffs), "wins": sum(d > 0 for d in diffs), "mean_diff": mean, "t": t}
    return {"margin": margin, "within_noise": within, "paired": paired}


def knob_range(sweep: Sweep, knob: str) -> list[Any]:
    """The values a knob took in this sweep (one_at_a_time: its list plus the base's value),
    sorted when they are all numbers or all booleans, else in the order they were listed."""
    values: list[Any] = []
    for trial in sweep.trials:
        value = trial.params[knob]
        if not any(same_value(value, v) for v in values):
            values.append(value)
    if all(_numeric(v) for v in values) or all(isinstance(v, bool) for v in values):
        values.sort()
    return values


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def edge_notes(sweep: Sweep, best_values: Mapping[str, Any]) -> list[str]:
    """Warn when the best value of a numeric knob (3+ values) is the end of its range.

    `best_values`: knob -> the best value (the winner's, or for one_at_a_time the best
    value of the knob moved alone).
    """
    notes = []
    for knob, best in best_values.items():
        values = [v for v in knob_range(sweep, knob) if _numeric(v)]
        if len(values) < 3 or not _numeric(best):
            continue
        low, high = min(values), max(values)
        swept = ", ".join(format_value(v) for v in sorted(values))
        if best == high:
            notes.append(
                f"{knob} = {format_value(best)} won and is the largest value swept ({swept}): the optimum may lie "
                f"beyond it. Extend the range above {format_value(high)}."
            )
        elif best == low and low != 0:
            notes.append(
                f"{knob} = {format_value(best)} won and is the smallest value swept ({swept}): the optimum may lie "
                f"below it. Extend the range below {format_value(low)}."
            )
    return notes


def isolation_best(board: pd.DataFrame, sweep: Sweep, knob: str) -> pd.DataFrame:
    """For each value of `knob`, the best configuration having it (the rows a knob plot shows).

    grid/random: the best over the other knobs. one_at_a_time: the base and the knob
    moved alone, so that the other knobs' variations do not leak into its picture.
    """
    varied = {t.config: t.varied for t in sweep.trials}
    rows = board[board["n_completed"] > 0]
    if sweep.resolved["strategy"] == "one_at_a_time":
        rows = rows[[set(varied[c]) <= {knob} for c in rows["config"]]]
    picked = []
    for value in knob_range(sweep, knob):
        matching = rows[[same_value(parse_cell(v), value) for v in rows[knob]]]
        if len(matching):
            picked.append(matching.iloc[0])  # the board is ranked: the first is the best
    return pd.DataFrame(picked)


# --------------------------------------------------------------------------------------
# Everything together
# --------------------------------------------------------------------------------------
def aggregate(sweep_dir: Path, sweep: Sweep) -> dict[str, Any]:
    """Writes results.csv, leaderboard.csv, best.json and the plots; returns the report.

    The report: `{"results": DataFrame, "board": DataFrame, "best": dict | None, "notes": [...],
    "plots": [paths]}`.
    """
    from regcli.sweep import datacurve, plots

    sweep_dir = Path(sweep_dir)
    results = write_results(sweep_dir, sweep)
    board = leaderboard(results, sweep.knobs, sweep.metric, sweep.mode)
    rundir.write_csv(sweep_dir / store.LEADERBOARD, board.to_dict("records"), list(board.columns))
    notes = status_notes(results, sweep_dir)
    winner, runner_up = pick_winner(board)
    best = None
    if winner is not None:
        best = best_record(results, board, sweep, winner, runner_up, notes)
    elif len(results):
        notes.insert(0, "No trial completed, so there is no winner.")
    written = plots.knob_plots(board, sweep, sweep_dir) if winner is not None else []
    if best is not None and datacurve.is_data_size_study(sweep.trials):
        written.extend(learning_curve(results, sweep, best, sweep_dir))
    rundir.atomic_write_json(sweep_dir / store.BEST, best if best is not None else {"config": None, "notes": notes})
    return {"results": results, "board": board, "best": best, "notes": notes, "plots": written}


def learning_curve(results: pd.DataFrame, sweep: Sweep, best: dict[str, Any], sweep_dir: Path) -> list[Path]:
    """A data-size study: learning_curve.csv and .png, its reading in best.json and the notes.

    The curve is drawn at the winner's values of any other swept knob (`datacurve.curve_line`);
    the winner itself is still the validation pick, which here is expected to be the most data,
    so the first note says so before the margin note can read as a tuning result.
    """
    from regcli.sweep import datacurve, plots

    rows, fixed = datacurve.curve_line(results, sweep.knobs, best["params"])
    table = datacurve.curve_table(rows)
    rundir.write_csv(sweep_dir / datacurve.CSV_NAME, table.to_dict("records"), list(table.columns))
    tolerances = {**datacurve.DEFAULTS, **{k: v for k, v in (sweep.resolved["base"].get("diagnosis") or {}).items() if v is not None}}
    reading = datacurve.read_curve(
        table,
        target_error=tolerances.get("target_error"),
        bias_tolerance=tolerances["bias_tolerance"],
        gap_tolerance=tolerances["gap_tolerance"],
    )
    classification = "val_accuracy" in results
    at = ", ".join(f"{k}={format_value(v)}" for k, v in fixed.items())
    seeds = int(table["n_trials"].max()) if len(table) else 0
    scope = f"{datacurve.error_label(classification)} vs training rows, {seeds} seed(s)" + (f", at {at}" if at else "")
    if sweep.smoke:
        scope += "; --smoke caps training at 256 rows, n is the rows really trained on"
    fraction = best["params"].get(FRACTION_KNOB)
    largest = max(knob_range(sweep, FRACTION_KNOB))
    others = [k for k in sweep.knobs if k != FRACTION_KNOB]
    study = (
        f"This sweep is a data-size study ({FRACTION_KNOB} is swept), so its winner"
        + ("" if not others else f"'s {FRACTION_KNOB}")
        + f" is no tuning result: {best['config']} "
        + (
            f"has the largest fraction ({format_value(fraction)}), and more training rows are expected to win on "
            f"validation"
            if same_value(fraction, largest)
            else f"has {FRACTION_KNOB} {format_value(fraction)}, not the largest ({format_value(largest)}): more rows "
            f"did not beat seed noise on validation"
        )
        + (". " if not others else f"; compare {', '.join(others)} at equal data. ")
        + f"Read the learning curve ({datacurve.PNG_NAME}, {datacurve.CSV_NAME})."
    )
    best["notes"].insert(0, study)
    best["notes"].append(f"Learning curve ({scope}): {reading['sentence']}")
    best["learning_curve"] = {
        **reading,
        "metric": "error",
        "at": fixed,
        "csv": datacurve.CSV_NAME,
        "png": datacurve.PNG_NAME,
    }
    written = plots.learning_curve_plot(table, reading, sweep_dir / datacurve.PNG_NAME, classification=classification, scope=scope)
    return [written] if written is not None else []


def write_results(sweep_dir: Path, sweep: Sweep) -> pd.DataFrame:
    results = results_frame(Path(sweep_dir), sweep)
    rundir.write_csv(Path(sweep_dir) / store.RESULTS, results.to_dict("records"), list(results.columns))
    return results


def status_notes(results: pd.DataFrame, sweep_dir: Path) -> list[str]:
    """Failed, diverged and unfinished trials, named."""
    notes = []
    for state, what in (("failed", "failed"), ("diverged", "diverged"), ("interrupted", "were interrupted")):
        rows = results[results["status"] == state]
        if len(rows):
            named = "; ".join(
                f"{r.trial}" + (f" ({str(r.error).splitlines()[0][:160]})" if isinstance(r.error, str) and r.error else "")
                for r in rows.itertuples()
            )
            notes.append(f"{len(rows)} trial(s) {what}: {named}.")
    if (results["status"].isin(["failed", "interrupted", "running", "pending"])).any():
        notes.append(f"`regcli sweep --resume {sweep_dir}` re-runs the trials that did not complete.")
    return notes


def best_record(
    results: pd.DataFrame,
    board: pd.DataFrame,
    sweep: Sweep,
    winner: Mapping[str, Any],
    runner_up: Mapping[str, Any] | None,
    notes: list[str],
) -> dict[str, Any]:
    """best.json: the winning configuration, its runs, the margin and every warning."""
    metric, mode = sweep.metric, sweep.mode
    params = next(t.params for t in sweep.trials if t.config == winner["config"])
    record = _winner_record(results, sweep, winner, params, notes)
    if winner["n_completed"] < winner["n_seeds"]:
        notes.append(
            f"The winner {winner['config']} completed only {winner['n_completed']} of {winner['n_seeds']} seeds: "
            f"no configuration completed every seed. Resume the sweep before trusting it."
        )
    if runner_up is not None:
        check = noise_check(results, winner, runner_up, metric, mode)
        record.update(check)
        record["runner_up"] = {
            "config": runner_up["config"],
            "params": next(t.params for t in sweep.trials if t.config == runner_up["config"]),
            "mean": runner_up[f"{metric}_mean"],
            "std": runner_up.get(f"{metric}_std"),
        }
        notes.append(_margin_note(winner, runner_up, check, metric))
    record["variance"] = variance.sweep_variance(results, metric, mode)
    seeds_note = variance.variance_note(record["variance"], split_fixed=split_seed_fixed(sweep))
    notes.extend(n for n in (seeds_note, record["shipped_run_note"]) if n)
    penalty_knobs = penalty_knobs_varied(sweep.resolved["params"])
    if metric == "val_loss" and penalty_knobs:
        notes.append(
            f"Ranked on val_loss although the penalties differ ({', '.join(penalty_knobs)}): val_loss includes each "
            f"trial's own penalty, which favours weak regularization. val_data_loss ranks them fairly."
        )
    notes.extend(edge_notes(sweep, _best_values(board, sweep, params)))
    if sweep.smoke:
        notes.append("--smoke: at most 2 trials of 2 epochs on 256 training rows; this checks the wiring, not the ranking.")
    if record["final_test_skipped"]:
        notes.append(f"final_test skipped: {record['final_test_skipped']}.")
    return record


def _winner_record(
    results: pd.DataFrame, sweep: Sweep, winner: Mapping[str, Any], params: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    """best.json before the runner-up is compared: the winner, its completed seeds and the run it ships."""
    metric, mode = sweep.metric, sweep.mode
    done = results[(results["config"] == winner["config"]) & (results["status"] == "completed")]
    values = pd.to_numeric(done[metric], errors="coerce")
    shipped = done.loc[values.idxmin() if mode == "min" else values.idxmax()] if values.notna().any() else done.iloc[0]
    return {
        "metric": metric,
        "mode": mode,
        "config": winner["config"],
        "params": params,
        "mean": winner[f"{metric}_mean"],
        "std": winner.get(f"{metric}_std"),
        "n_seeds": int(winner["n_seeds"]),
        "n_completed": int(winner["n_completed"]),
        "seeds": [int(s) for s in done["seed"]],
        "runs": list(done["run_dir"]),
        "shipped_run": shipped["run_dir"],
        "shipped_value": shipped[metric],
        "shipped_run_note": shipped_run_note(winner, shipped, metric, mode, tested=_tests_once(sweep)),
        "val_error_mean": winner.get("val_error_mean"),
        "gap_mean": winner.get("gap_mean"),
        "runner_up": None,
        "margin": None,
        "within_noise": None,
        "paired": None,
        "variance": None,
        "notes": notes,
        "final_test": None,
        # SPEC §1: a smoke run never consults the test split, so final_test: true waits for the real sweep.
        "final_test_skipped": FINAL_TEST_SKIPPED_SMOKE if sweep.smoke and sweep.resolved["final_test"] else None,
        "smoke": sweep.smoke,
    }


def _tests_once(sweep: Sweep) -> bool:
    """Whether this sweep ends with the winner's final test (final_test: true, and not --smoke)."""
    return bool(sweep.resolved["final_test"]) and not sweep.smoke


def shipped_run_note(winner: Mapping[str, Any], shipped: Mapping[str, Any], metric: str, mode: str, *, tested: bool) -> str | None:
    """Why the shipped run's validation value is optimistic, with the honest estimate beside it
    (None for one completed seed: there was nothing to choose from).

    The shipped run is the winner's seed with the best validation value: the minimum (max) over
    N seeds, so it is biased low (high) even when every seed is equally good.
    """
    n, value = int(winner["n_completed"]), shipped[metric]
    mean, std = winner[f"{metric}_mean"], winner.get(f"{metric}_std")
    if n < 2 or not is_finite(value) or not is_finite(mean):
        return None
    extreme, bias = ("minimum", "low") if mode == "min" else ("maximum", "high")
    spread = f" ± {std:.2g}" if is_finite(std) else ""
    report = (
        "the final test (best.json's final_test) is the number to report"
        if tested
        else "`regcli test` on it, once, gives the number to report"
    )
    return (
        f"The shipped run {shipped['run_dir']} is the winner's luckiest seed (seed {int(shipped['seed'])}): its "
        f"{metric} {value:.4g} is the {extreme} over {n} seeds, biased {bias}. The configuration's mean "
        f"{mean:.4g}{spread} over its {n} seeds is the honest validation estimate; {report}."
    )


def split_seed_fixed(sweep: Sweep) -> bool:
    """Whether every seed of a configuration trains on the same split: the base sets
    `data.split_seed`, or the sweep varies it as a knob without a null value."""
    if "data.split_seed" in sweep.knobs:
        return all(v is not None for v in sweep.resolved["params"]["data.split_seed"])
    return (sweep.resolved["base"].get("data") or {}).get("split_seed") is not None


def _best_values(board: pd.DataFrame, sweep: Sweep, params: Mapping[str, Any]) -> dict[str, Any]:
    """The best value of each knob, for the edge-of-range notes: the winner's (grid, random), or for
    one_at_a_time the best value of each knob moved alone. The data fraction is left out."""
    if sweep.resolved["strategy"] == "one_at_a_time":
        best_values = {}
        for knob in sweep.knobs:
            rows = isolation_best(board, sweep, knob)
            if len(rows):
                best_values[knob] = parse_cell(_best_of(rows, sweep.metric, sweep.mode)[knob])
    else:
        best_values = dict(params)
    best_values.pop(FRACTION_KNOB, None)  # 1.0 is the whole training split: there is nothing beyond it
    return best_values


def _best_of(rows: pd.DataFrame, metric: str, mode: str) -> pd.Series:
    values = pd.to_numeric(rows[f"{metric}_mean"], errors="coerce")
    return rows.loc[values.idxmin() if mode == "min" else values.idxmax()]


def _margin_note(winner: Mapping[str, Any], runner_up: Mapping[str, Any], check: Mapping[str, Any], metric: str) -> str:
    def show(row: Mapping[str, Any]) -> str:
        std = row.get(f"{metric}_std")
        return f"{row[f'{metric}_mean']:.4g}" + (f" ± {std:.2g}" if is_finite(std) else "")

    head = f"Winner {winner['config']} ({metric} {show(winner)}) vs runner-up {runner_up['config']} ({show(runner_up)})"
    paired = check.get("paired")
    seeds = f"; better on {paired['wins']} of {paired['n']} seeds" if paired else ""
    if check["within_noise"] is None:
        return f"{head}: one seed each, so the margin cannot be told from seed noise{seeds}. Add seeds: [0, 1, 2]."
    if check["within_noise"]:
        return (
            f"{head}: the margin {check['margin']:.3g} is within seed noise (the ±1 std intervals overlap{seeds}). "
            f"Treat them as tied, or add seeds."
        )
    return f"{head}: the margin {check['margin']:.3g} exceeds seed noise (the ±1 std intervals do not overlap{seeds})."
