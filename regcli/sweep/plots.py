"""The sweep's pictures: validation vs each knob, and the generalization gap vs each knob.

For every swept knob, two figures from the leaderboard (means and ±1 std over seeds):

- `val_vs_<knob>.png`: the selection metric at each value of the knob, for the best
  configuration having that value (one_at_a_time: the knob moved alone);
- `gap_vs_<knob>.png`: clean training error, validation error and their gap for the same
  configurations: where the gap closes without the validation error rising is where
  regularization starts to help, where both rise it has started to hurt.

A sweep over `data.train_fraction` also gets `learning_curve.png` (`learning_curve_plot`):
clean train and validation error against the number of training rows (see `datacurve`).

Values sit at evenly spaced positions labelled with the values (penalties such as
0, 1e-5, 1e-4 have no useful linear or log axis). Matplotlib with the Agg backend only.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from regcli import rundir
from regcli.plots import figure_legend, pyplot
from regcli.rundir import atomic_write_bytes
from regcli.sweep import store
from regcli.sweep.aggregate import isolation_best
from regcli.sweep.expand import format_value, parse_cell


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _std(rows: pd.DataFrame, column: str) -> list[float]:
    if column not in rows:
        return [0.0] * len(rows)
    return [float(v) if pd.notna(v) else 0.0 for v in pd.to_numeric(rows[column], errors="coerce")]


def _mean(rows: pd.DataFrame, column: str) -> list[float]:
    if column not in rows:
        return [float("nan")] * len(rows)
    return [float(v) for v in pd.to_numeric(rows[column], errors="coerce")]


def plot_name(kind: str, knob: str) -> str:
    return f"{kind}_vs_{re.sub(r'[^A-Za-z0-9._-]+', '_', knob)}.png"


def is_classification(board: pd.DataFrame) -> bool:
    """Whether the board's errors are 1 - accuracy (a validation accuracy was recorded) rather than mae."""
    return "val_accuracy_mean" in board and pd.to_numeric(board["val_accuracy_mean"], errors="coerce").notna().any()


def validation_sizes(sweep: Any, sweep_dir: Path) -> dict[str, int]:
    """Configuration -> validation rows (`n_val` of its first completed trial's summary.json)."""
    sizes: dict[str, int] = {}
    for trial in sweep.trials:
        if trial.config in sizes:
            continue
        try:
            summary = json.loads((store.trial_dir(sweep_dir, trial.id) / rundir.SUMMARY).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and isinstance(summary.get("n_val"), int) and summary["n_val"] > 0:
            sizes[trial.config] = summary["n_val"]
    return sizes


def _row_sizes(rows: pd.DataFrame, n_val: int | Mapping[str, int] | None) -> list[int]:
    """The distinct validation sizes of the plotted rows (a `n_val` column of the board wins)."""
    if "n_val" in rows:
        values = pd.to_numeric(rows["n_val"], errors="coerce").dropna()
        return sorted({int(v) for v in values if v > 0})
    if isinstance(n_val, int):
        return [n_val]
    return sorted({int(n_val[c]) for c in rows["config"] if n_val and c in n_val})


def _seeds_phrase(rows: pd.DataFrame) -> tuple[str, bool]:
    """How many seeds each point averages, and whether there is a spread to draw (2 seeds or more)."""
    counts = pd.to_numeric(rows["n_completed"], errors="coerce").fillna(0).astype(int)
    low, high = int(counts.min()), int(counts.max())
    if high <= 1:
        return "1 seed, no error bars", False
    seeds = f"{low}-{high}" if low != high else f"{high}"
    return f"±1 std over {seeds} seeds", True


def _row_note(sizes: list[int]) -> str:
    """How much one validation row moves the error: 1/114 = 0.0088 (an error is a count of rows)."""
    if not sizes:
        return ""
    if len(sizes) == 1:
        return f"1 validation row = 1/{sizes[0]} = {1 / sizes[0]:.2g}"
    return f"1 validation row = {1 / sizes[-1]:.2g} to {1 / sizes[0]:.2g} (n_val {sizes[0]}-{sizes[-1]})"


def _clipped(mean: list[float], std: list[float]) -> list[list[float]]:
    """Asymmetric error bars that stop at 0: an error cannot be negative."""
    lower = [min(s, m) if m == m else 0.0 for m, s in zip(mean, std, strict=True)]
    return [[max(v, 0.0) for v in lower], std]


def _axis(ax: Any, x: list[int], labels: list[str]) -> None:
    ax.set_xticks(x, labels)
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.grid(alpha=0.3)


def row_axis(ax: Any, sizes: list[int]) -> Any:
    """A right-hand axis counting validation rows (error x n_val), so a step of one row reads as one.

    Only with one known validation size; returns the secondary axis or None.
    """
    from matplotlib.ticker import MaxNLocator

    if len(sizes) != 1:
        return None
    n = sizes[0]
    rows = ax.secondary_yaxis("right", functions=(lambda e: e * n, lambda r: r / n))
    rows.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    rows.set_ylabel(f"validation rows wrong (1 of {n} = {1 / n:.2g})", fontsize=9)
    return rows


def val_figure(rows: pd.DataFrame, knob: str, metric: str, scope: str, *, sizes: list[int] | None = None) -> Any:
    """`val_vs_<knob>.png`: the selection metric at each value of the knob (rows: `isolation_best`)."""
    plt = pyplot()
    x = list(range(len(rows)))
    seeds, spread = _seeds_phrase(rows)
    mean = _mean(rows, f"{metric}_mean")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    yerr = _clipped(mean, _std(rows, f"{metric}_std")) if spread else None
    ax.errorbar(x, mean, yerr=yerr, marker="o", capsize=4)
    _axis(ax, x, [format_value(parse_cell(v)) for v in rows[knob]])
    ax.set_xlabel(knob)
    ax.set_ylabel(f"{metric} (validation)")
    note = _row_note(sizes or []) if metric in ("val_error", "val_accuracy") else ""
    ax.set_title(f"{metric} vs {knob}\n" + textwrap.fill(f"({'; '.join(filter(None, (scope, seeds, note)))})", 80), fontsize=10)
    return fig


def gap_figure(rows: pd.DataFrame, knob: str, scope: str, *, classification: bool, sizes: list[int] | None = None) -> Any:
    """`gap_vs_<knob>.png`: errors above (validation drawn on top), their gap below on its own axis.

    The gap equals the validation error wherever training error is 0, so the two never share an
    axis. Error bars of the errors stop at 0; the gap's may go below (validation can beat training).
    """
    plt = pyplot()
    x = list(range(len(rows)))
    seeds, spread = _seeds_phrase(rows)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for column, label, style, shift in (
        ("train_error", "clean train error", {"fmt": "s--", "mfc": "white", "markersize": 8, "zorder": 2}, -0.04),
        ("val_error", "validation error", {"fmt": "o-", "markersize": 6, "zorder": 3}, 0.04),
    ):
        mean = _mean(rows, f"{column}_mean")
        yerr = _clipped(mean, _std(rows, f"{column}_std")) if spread else None
        top.errorbar([i + shift for i in x], mean, yerr=yerr, capsize=4, label=label, **style)
    gap = _mean(rows, "gap_mean")
    bottom.axhline(0.0, color="grey", linewidth=1)
    bottom.errorbar(x, gap, yerr=_std(rows, "gap_std") if spread else None, fmt="d-", color="tab:green", capsize=4,
                    label="gap (val - clean train)")
    low, high = top.get_ylim()
    high = max(high, 1e-3)
    top.set_ylim(max(low, -0.03 * high), high)  # errors are >= 0: no axis far below 0, yet markers at 0 show whole
    _axis(top, x, labels := [format_value(parse_cell(v)) for v in rows[knob]])
    _axis(bottom, x, labels)
    top.tick_params(labelbottom=False)
    top.set_ylabel("error (1 - accuracy)" if classification else "error (mae)")
    bottom.set_ylabel("gap (val - train)")
    bottom.set_xlabel(knob)
    # One known validation size: the right-hand axis counts rows; several: the title says their size.
    note = ""
    if classification and row_axis(top, sizes or []) is None:
        note = _row_note(sizes or [])
    top.set_title(f"generalization gap vs {knob}\n" + textwrap.fill(f"({'; '.join(filter(None, (scope, seeds, note)))})", 80),
                  fontsize=10)
    figure_legend(fig, (top, bottom), ncol=3, y=0.0)
    fig.subplots_adjust(left=0.13, right=0.88, top=0.88, bottom=0.16, hspace=0.08)
    return fig


def knob_figures(board: pd.DataFrame, sweep: Any, *, n_val: int | Mapping[str, int] | None = None) -> list[tuple[str, Any]]:
    """(file name, Figure) of `val_vs_<knob>.png` and `gap_vs_<knob>.png` for every knob.

    `n_val`: validation rows, one number or per configuration (`validation_sizes`); with it a
    classification sweep marks how much one validation row moves the error.
    """
    figures = []
    classification = is_classification(board)
    for knob in sweep.knobs:
        rows = isolation_best(board, sweep, knob)
        if rows.empty:
            continue
        scope = "the knob moved alone" if sweep.resolved["strategy"] == "one_at_a_time" else "best over the other knobs"
        sizes = _row_sizes(rows, n_val)
        figures.append((plot_name("val", knob), val_figure(rows, knob, sweep.metric, scope, sizes=sizes)))
        figures.append((plot_name("gap", knob), gap_figure(rows, knob, scope, classification=classification, sizes=sizes)))
    return figures


def knob_plots(board: pd.DataFrame, sweep: Any, sweep_dir: Path) -> list[Path]:
    """Writes `val_vs_<knob>.png` and `gap_vs_<knob>.png` for every knob; returns their paths."""
    plt = pyplot()
    written = []
    for name, fig in knob_figures(board, sweep, n_val=validation_sizes(sweep, sweep_dir)):
        path = Path(sweep_dir) / name
        _save(fig, path)
        plt.close(fig)
        written.append(path)
    return written


def learning_curve_plot(table: pd.DataFrame, reading: dict[str, Any], path: Path, *, classification: bool, scope: str) -> Path | None:
    """`learning_curve.png`: clean train and validation error vs training rows (±1 std over seeds).

    The x axis is log2-scaled (each tick a training-set size), so equal steps are doublings,
    the unit the reading speaks in. Nothing is written for an empty table.
    """
    if table.empty:
        return None
    plt = pyplot()
    x = [int(n) for n in table["n_train"]]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for column, label, style in (("train_error", "clean train error", "s--"), ("val_error", "validation error", "o-")):
        mean, std = _mean(table, f"{column}_mean"), _std(table, f"{column}_std")
        ax.errorbar(x, mean, yerr=std, fmt=style, capsize=4, label=label)
        ax.fill_between(x, [m - s for m, s in zip(mean, std, strict=True)], [m + s for m, s in zip(mean, std, strict=True)], alpha=0.12)
    evidence = reading.get("evidence") or {}
    if "bias_tolerance" in evidence:
        ceiling = evidence["target_error"] + evidence["bias_tolerance"]
        ax.axhline(ceiling, color="grey", linestyle=":", linewidth=1, label=f"target + bias tolerance ({ceiling:.2g})")
    if len(set(x)) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(n) for n in x])
    ax.minorticks_off()
    ax.set_xlabel("training rows (n_train)")
    ax.set_ylabel("error (1 - accuracy)" if classification else "error (mae)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"learning curve: {reading['verdict'].replace('_', ' ')}\n" + textwrap.fill(f"({scope})", 90), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
    return path
