"""Matplotlib (Agg) figures from history DataFrames; no backend, no Keras.

Each picture has a function that builds the Figure (tested on its matplotlib objects) and a
thin one that saves it. Legends sit outside the axes, so they never cover a curve.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from regcli.rundir import atomic_write_bytes

# Matplotlib's default colour cycle: the run's curves are blue (train) and orange (validation).
SHIPPED_STYLE = {"color": "tab:green", "linestyle": ":", "linewidth": 1.5}
BEST_VAL_STYLE = {"color": "tab:purple", "linestyle": "-.", "linewidth": 1.2}
STOP_STYLE = {"color": "tab:red", "linestyle": ":", "linewidth": 1.5}


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display): every regcli figure draws with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, *, close: bool = True) -> None:
    """Writes `fig` to `path` atomically (PNG, 110 dpi) and closes it. Defaults to `close=True`."""
    buf = io.BytesIO()
    # No bbox_inches="tight": it draws the figure twice (measure, then render), ~40% of a plot's
    # time; the figures here set their margins themselves. zlib level 1 instead of 6: ~40 ms
    # less a figure here, for files ~8% larger (line plots compress well either way).
    fig.savefig(buf, format="png", dpi=110, pil_kwargs={"compress_level": 1})
    atomic_write_bytes(Path(path), buf.getvalue())
    if close:
        pyplot().close(fig)


def _direction(column: str) -> str | None:
    from regcli.errors import BadInputError
    from regcli.replay import resolve_mode

    try:
        return resolve_mode("auto", column)
    except BadInputError:
        return None


def best_validation_epoch(history, monitor: str | None = None) -> tuple[int, str] | None:
    """The 1-based epoch with the best validation value, and the column it was read from.

    The column is `monitor` when it is a validation column of the history (what early stopping
    watches, or would have watched), else `val_data_loss`, else `val_loss`. Ties go to the first
    epoch, as in Keras (an improvement must be strict). None when no such column has a finite value.

    >>> import pandas as pd
    >>> best_validation_epoch(pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.2, 0.1, 0.15]}))
    (2, 'val_loss')
    """
    candidates = [c for c in (monitor, "val_data_loss", "val_loss") if c and c.startswith("val_")]
    for column in candidates:
        mode = _direction(column)
        if column not in history or mode is None:
            continue
        values = [(float(v), int(e)) for v, e in zip(history[column], history["epoch"], strict=True)]
        finite = [(v, e) for v, e in values if math.isfinite(v)]
        if finite:
            best = min(finite, key=lambda p: p[0]) if mode == "min" else max(finite, key=lambda p: p[0])
            return best[1], column
    return None


def _same_curve(history, a: str, b: str) -> bool:
    """Whether two columns hold the same curve (val_loss without any penalty is val_data_loss)."""
    if a not in history or b not in history:
        return False
    x, y = history[a].astype(float), history[b].astype(float)
    return bool(((x - y).abs() <= 1e-7 * (1.0 + y.abs())).all())


def _panel_curves(ax, history, col: str) -> None:
    epochs = history["epoch"]
    if col in history:
        ax.plot(epochs, history[col], label="train (as trained)", color="tab:blue", alpha=0.6)
    if f"clean_{col}" in history:
        ax.plot(epochs, history[f"clean_{col}"], label="train (clean)", color="tab:blue", linewidth=2)
    if f"val_{col}" in history:
        ax.plot(epochs, history[f"val_{col}"], label="validation", color="tab:orange", linewidth=2)
    if col == "data_loss" and "val_loss" in history and not _same_curve(history, "val_loss", "val_data_loss"):
        ax.plot(epochs, history["val_loss"], label="val_loss (with penalty)", color="tab:orange", linestyle="--", alpha=0.6)


def _panel_marks(ax, history, summary: dict[str, Any], col: str, best_val: tuple[int, str] | None) -> None:
    """The shipped epoch, the best validation epoch where it differs, and the early stop."""
    shipped = summary.get("best_epoch")
    best_label = None
    if best_val is not None:
        word = "lowest" if _direction(best_val[1]) == "min" else "highest"
        best_label = f"{word} {best_val[1]}"
    if shipped:
        same = best_val is not None and best_val[0] == shipped
        ax.axvline(shipped, label=f"shipped epoch {shipped}" + (f" (= {best_label})" if same else ""), **SHIPPED_STYLE)
    if best_val is not None and best_val[0] != shipped:
        epoch, column = best_val
        ax.axvline(epoch, label=f"{best_label}: epoch {epoch}", **BEST_VAL_STYLE)
        if column in (f"val_{col}", "val_loss" if col == "data_loss" else None):
            value = history.loc[history["epoch"] == epoch, column].iloc[0]
            ax.plot([epoch], [value], marker="*", markersize=12, color="tab:purple", markeredgecolor="black",
                    linestyle="none", zorder=5)
    if summary.get("stopped_early"):
        ax.axvline(summary.get("epochs_run"), label="early stop", **STOP_STYLE)


def figure_legend(fig, axes, *, fontsize: float = 8, ncol: int = 4, y: float = 0.01):
    """One legend for all `axes` (labels deduplicated), centred below them in the figure's margin."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    return fig.legend(list(handles.values()), list(handles), loc="lower center", bbox_to_anchor=(0.5, y),
                      ncol=min(ncol, max(1, len(handles))), fontsize=fontsize, frameon=False)


def learning_curves_figure(history, summary: dict[str, Any]):
    """The Figure of `learning_curves.png` (see `learning_curves`)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    metric = "accuracy" if "accuracy" in history.columns else "mae"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    # Fixed margins instead of a tight bounding box: every run (and packed tower) draws this
    # figure once, so one draw instead of two saves ~0.2 s a run. The bottom 0.2 of the figure
    # (~0.95 in) holds the x labels and up to two rows of legend, off the curves.
    fig.subplots_adjust(left=0.055, right=0.985, bottom=0.23, top=0.88, wspace=0.18)
    # Early stopping on: the quantity it watched (its pick is the shipped epoch when it restores).
    # Off: the penalty-free val_data_loss, the solid validation curve (val_loss also falls as the
    # weights, and with them the penalty, shrink, so its minimum drifts late).
    watched = summary.get("monitor") if summary.get("monitor_best_epoch") else "val_data_loss"
    best_val = best_validation_epoch(history, watched)
    for title, col, ax in (("loss (penalty-free data loss)", "data_loss", axes[0]), (metric, metric, axes[1])):
        _panel_curves(ax, history, col)
        _panel_marks(ax, history, summary, col, best_val)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        # Fewer ticks than matplotlib's default: each costs ~3 ms to create here.
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    figure_legend(fig, axes)
    fig.suptitle(f"{summary.get('run_name', '')}  (seed {summary.get('seed')}, {summary.get('backend')})", fontsize=10)
    return fig


def learning_curves(history, summary: dict[str, Any], path: Path) -> None:
    """Loss and main metric: train as trained, train clean (inference mode), validation.

    The loss panel shows the penalty-free `data_loss` curves (comparable across L1/L2
    strengths) and Keras's `val_loss` (penalty included) dashed. The shipped epoch, the best
    validation epoch where it differs (early stopping off, or not restoring) and the epoch
    training stopped at are marked; the legend sits below the panels.
    """
    save_png(learning_curves_figure(history, summary), path)
