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
import re
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from regcli.plots import pyplot
from regcli.rundir import atomic_write_bytes
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


def knob_plots(board: pd.DataFrame, sweep: Any, sweep_dir: Path) -> list[Path]:
    """Writes `val_vs_<knob>.png` and `gap_vs_<knob>.png` for every knob; returns their paths."""
    plt = pyplot()
    metric = sweep.metric
    written = []
    for knob in sweep.knobs:
        rows = isolation_best(board, sweep, knob)
        if rows.empty:
            continue
        x = list(range(len(rows)))
        labels = [format_value(parse_cell(v)) for v in rows[knob]]
        seeds = int(rows["n_seeds"].max())
        scope = "the knob moved alone" if sweep.resolved["strategy"] == "one_at_a_time" else "best over the other knobs"

        fig, ax = plt.subplots(figsize=(6.5, 4))
        ax.errorbar(x, _mean(rows, f"{metric}_mean"), yerr=_std(rows, f"{metric}_std"), marker="o", capsize=4)
        ax.set_xticks(x, labels)
        ax.set_xlim(-0.5, len(x) - 0.5)
        ax.set_xlabel(knob)
        ax.set_ylabel(f"{metric} (validation)")
        ax.set_title(f"{metric} vs {knob}\n({scope}; error bars ±1 std over {seeds} seed(s))", fontsize=10)
        ax.grid(alpha=0.3)
        path = Path(sweep_dir) / plot_name("val", knob)
        _save(fig, path)
        plt.close(fig)
        written.append(path)

        fig, ax = plt.subplots(figsize=(6.5, 4))
        for column, label, style in (
            ("train_error", "clean train error", "s--"),
            ("val_error", "validation error", "o-"),
            ("gap", "gap (val - clean train)", "d-"),
        ):
            ax.errorbar(x, _mean(rows, f"{column}_mean"), yerr=_std(rows, f"{column}_std"), fmt=style, capsize=4, label=label)
        ax.set_xticks(x, labels)
        ax.set_xlim(-0.5, len(x) - 0.5)
        ax.set_xlabel(knob)
        ax.set_ylabel("error (1 - accuracy, or mae)")
        ax.set_title(f"generalization gap vs {knob}\n({scope}; ±1 std over {seeds} seed(s))", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        path = Path(sweep_dir) / plot_name("gap", knob)
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
