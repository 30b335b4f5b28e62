"""Matplotlib (Agg) figures from history DataFrames; no backend, no Keras."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from regcli.rundir import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display): every regcli figure draws with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    # No bbox_inches="tight": it draws the figure twice (measure, then render), ~40% of a plot's
    # time; the figures here set their margins themselves.
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(Path(path), buf.getvalue())


def learning_curves(history, summary: dict[str, Any], path: Path) -> None:
    """Loss and main metric: train as trained, train clean (inference mode), validation.

    The loss panel shows the penalty-free `data_loss` curves (comparable across L1/L2
    strengths) and Keras's `val_loss` (penalty included) dashed. The shipped (best)
    epoch and the epoch training stopped at are marked.
    """
    plt = pyplot()
    metric = "accuracy" if "accuracy" in history.columns else "mae"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    # Fixed margins instead of a tight bounding box: every run (and packed tower) draws this
    # figure once, so one draw instead of two saves ~0.2 s a run.
    fig.subplots_adjust(left=0.055, right=0.985, bottom=0.12, top=0.86, wspace=0.18)
    epochs = history["epoch"]
    panels = [
        ("loss (penalty-free data loss)", "data_loss", axes[0]),
        (metric, metric, axes[1]),
    ]
    for title, col, ax in panels:
        if col in history:
            ax.plot(epochs, history[col], label="train (as trained)", color="tab:blue", alpha=0.6)
        if f"clean_{col}" in history:
            ax.plot(epochs, history[f"clean_{col}"], label="train (clean)", color="tab:blue", linewidth=2)
        if f"val_{col}" in history:
            ax.plot(epochs, history[f"val_{col}"], label="validation", color="tab:orange", linewidth=2)
        if col == "data_loss" and "val_loss" in history:
            ax.plot(epochs, history["val_loss"], label="val_loss (with penalty)", color="tab:orange", linestyle="--", alpha=0.6)
        best = summary.get("best_epoch")
        if best:
            ax.axvline(best, color="tab:green", linestyle=":", label=f"shipped epoch {best}")
        if summary.get("stopped_early"):
            ax.axvline(summary.get("epochs_run"), color="tab:red", linestyle=":", label="early stop")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary.get('run_name', '')}  (seed {summary.get('seed')}, {summary.get('backend')})", fontsize=10)
    _save(fig, path)
    plt.close(fig)
