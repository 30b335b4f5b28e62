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
    # time; the figures here set their margins themselves. zlib level 1 instead of 6: ~40 ms
    # less a figure here, for files ~8% larger (line plots compress well either way).
    fig.savefig(buf, format="png", dpi=110, pil_kwargs={"compress_level": 1})
    atomic_write_bytes(Path(path), buf.getvalue())


def learning_curves(history, summary: dict[str, Any], path: Path) -> None:
    """Loss and main metric: train as trained, train clean (inference mode), validation.

    The loss panel shows the penalty-free `data_loss` curves (comparable across L1/L2
    strengths) and Keras's `val_loss` (penalty included) dashed. The shipped (best)
    epoch and the epoch training stopped at are marked.
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    metric = "accuracy" if "accuracy" in history.columns else "mae"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    # Fixed margins instead of a tight bounding box: every run (and packed tower) draws this
    # figure once, so one draw instead of two saves ~0.2 s a run.
    fig.subplots_adjust(left=0.055, right=0.985, bottom=0.12, top=0.86, wspace=0.18)
    epochs = history["epoch"]
    # Legends at a fixed corner, where curves of that kind rarely run (losses and mae fall,
    # accuracy rises): loc="best" scans every curve, ~30 ms a figure here.
    panels = [
        ("loss (penalty-free data loss)", "data_loss", axes[0], "upper right"),
        (metric, metric, axes[1], "lower right" if metric == "accuracy" else "upper right"),
    ]
    for title, col, ax, corner in panels:
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
        # Fewer ticks than matplotlib's default: each costs ~3 ms to create here.
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.legend(fontsize=8, loc=corner)
    fig.suptitle(f"{summary.get('run_name', '')}  (seed {summary.get('seed')}, {summary.get('backend')})", fontsize=10)
    _save(fig, path)
    plt.close(fig)
