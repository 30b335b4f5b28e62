"""`regcli compare`: several runs side by side, from their files alone (no TensorFlow, no Keras).

The table shows only the knobs that differ between the runs (the resolved config.yaml
flattened to dotted keys, e.g. `model.l2`), then the results that matter for
regularization: shipped epoch, penalty-free validation loss, validation and clean train
error, their gap, the penalty's share of the loss, the diagnosis verdict and the test
error when `regcli test` has been run. One overlay plot puts the validation curves of
every run on the same axes, the shipped epoch of each marked.

Example:

>>> result = compare_runs([Path("runs/a-..."), Path("runs/b-...")])  # doctest: +SKIP
>>> result["knobs"]  # doctest: +SKIP
{'model.l2': [0.0, 0.001]}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.dotted import flatten
from regcli.errors import BadInputError, RunDirError
from regcli.values import is_finite

# The result rows of the table, in order: (key in the result dict, label).
RESULTS = (
    ("best_epoch", "best epoch"),
    ("epochs_run", "epochs run"),
    ("val_data_loss", "val data_loss"),
    ("val_error", "val error"),
    ("train_error", "train error (clean)"),
    ("gap", "gap (val - train)"),
    ("penalty_share", "penalty share"),
    ("verdict", "verdict"),
    ("test_error", "test error"),
)


_MISSING = object()


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The dotted keys (`regcli.dotted.flatten`) whose values are not the same in every config, with each
    config's value (None where a config lacks the key)."""
    flats = [flatten(c) for c in configs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    out = {}
    for key in keys:
        values = [flat.get(key, _MISSING) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            out[key] = [None if v is _MISSING else v for v in values]
    return out


def _number(value: Any) -> float | None:
    return float(value) if is_finite(value) else None


def _error_curve(history) -> Any:
    if "val_accuracy" in history:
        return 1.0 - history["val_accuracy"]
    if "val_mae" in history:
        return history["val_mae"]
    return None


def _verdict(files: rundir.RunFiles) -> str | None:
    """diagnosis.json's verdict; None without one, `diagnosis.json corrupt` for an unreadable one."""
    if not (files.path / rundir.DIAGNOSIS_JSON).is_file():
        return None
    try:
        return files.diagnosis.get("verdict")
    except RunDirError:
        return "diagnosis.json corrupt"


def load_run(run: Path) -> dict[str, Any]:
    """Everything `compare` needs from one run directory; RunDirError for a missing or corrupt one."""
    files = rundir.RunFiles.open(Path(run))
    run = files.path
    state = files.require_finished("compared")
    summary = files.summary
    metrics = summary.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("val"), dict) or not isinstance(metrics.get("train"), dict):
        raise RunDirError(f"{run / rundir.SUMMARY} lacks metrics.train / metrics.val: it is corrupt. Retrain the run.")
    config, history = files.config, files.history
    verdict = _verdict(files)
    val, train = metrics["val"], metrics["train"]
    val_error, train_error = _number(val.get("error")), _number(train.get("error"))
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    return {
        "run_dir": str(run),
        "name": run.name,
        "state": state,
        "config": config,
        "history": history,
        "best_epoch": summary.get("best_epoch"),
        "epochs_run": summary.get("epochs_run"),
        "val_data_loss": _number(val.get("data_loss")),
        "val_error": val_error,
        "train_error": train_error,
        "gap": val_error - train_error if val_error is not None and train_error is not None else None,
        "penalty_share": _number(summary.get("penalty_share")),
        "verdict": verdict,
        "test_error": _number(test.get("error")),
    }


def default_out(runs: Sequence[Path]) -> Path:
    """The directory the runs have in common (their parent when they sit side by side)."""
    return Path(os.path.commonpath([str(Path(r).absolute().parent) for r in runs]))


def run_labels(names: Sequence[str], knobs: Mapping[str, list[Any]], max_knobs: int = 3) -> list[str]:
    """Legend labels: `#1 <name>` plus the first differing knobs, e.g. `#2 bc-... (model.l2=0.001)`."""
    labels = []
    for i, name in enumerate(names):
        shown = ", ".join(f"{k}={rundir.format_cell(v[i])}" for k, v in list(knobs.items())[:max_knobs])
        labels.append(f"#{i + 1} {name}" + (f" ({shown})" if shown else ""))
    return labels


def _overlay_panels(axes, runs: Sequence[dict[str, Any]], labels: Sequence[str], colours) -> None:
    """Each run's validation data_loss and error curves, its shipped epoch as a ringed dot."""
    for i, run in enumerate(runs):
        h = run["history"]
        colour = colours(i % 10)
        curves = (h["val_data_loss"] if "val_data_loss" in h else h["val_loss"], _error_curve(h))
        for ax, curve in zip(axes, curves, strict=True):
            if curve is None:
                continue
            ax.plot(h["epoch"], curve, color=colour, linewidth=1.8, label=labels[i])
            best = run.get("best_epoch")
            shipped = h.index[h["epoch"] == best]
            if len(shipped):
                ax.plot([best], [curve[shipped[0]]], marker="o", markersize=8, color=colour,
                        markeredgecolor="black", linestyle="none")


def overlay_figure(runs: Sequence[dict[str, Any]], labels: Sequence[str] | None = None):
    """The Figure of the overlay plot: two panels, one legend below them (never on a curve).

    The legend is measured before the margins are set: the figure grows by the legend's
    height (two columns when they fit the width, else one), so it neither shrinks the panels
    nor runs off the page, however many runs there are.
    """
    import textwrap

    from matplotlib.ticker import MaxNLocator

    from regcli.plots import figure_legend, pyplot

    plt = pyplot()
    labels = [textwrap.fill(str(s), 100) for s in (labels if labels is not None else [r["name"] for r in runs])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    _overlay_panels(axes, runs, labels, plt.get_cmap("tab10"))
    for ax, title in zip(axes, ("validation data_loss (penalty-free)", "validation error"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    renderer = fig.canvas.get_renderer()
    legend = figure_legend(fig, axes, fontsize=7.5, ncol=2)
    if legend.get_window_extent(renderer).width > 0.97 * fig.bbox.width:
        legend.remove()
        legend = figure_legend(fig, axes, fontsize=7.5, ncol=1)
    legend_in = legend.get_window_extent(renderer).height / fig.dpi
    # Inches: 0.6 above the panels for the two titles, 0.55 below for ticks and the x label.
    height = 0.6 + 3.0 + 0.55 + legend_in + 0.1
    fig.set_size_inches(11, height)
    fig.subplots_adjust(left=0.06, right=0.985, top=1 - 0.6 / height, bottom=(0.55 + legend_in + 0.1) / height, wspace=0.18)
    legend.set_bbox_to_anchor((0.5, 0.05 / height), transform=fig.transFigure)
    fig.suptitle("validation curves (o = shipped epoch)", fontsize=10, y=1 - 0.08 / height, va="top")
    return fig


def overlay_plot(runs: Sequence[dict[str, Any]], path: Path, labels: Sequence[str] | None = None) -> None:
    """Validation data_loss and validation error vs epoch, one colour per run, shipped epoch marked."""
    from regcli.plots import save_png

    save_png(overlay_figure(runs, labels), Path(path))


def compare_runs(run_dirs: Sequence[Path], *, out: Path | None = None) -> dict[str, Any]:
    """Reads the runs, finds the knobs that differ, writes the overlay plot; returns the comparison.

    Args:
        run_dirs: two or more run directories.
        out: where `compare-<UTC timestamp>.png` is written. Defaults to `None`: the runs' common parent.

    Returns:
        `{"runs": [names], "run_dirs": [...], "knobs": {dotted key: [value per run]},
        "results": {key: [value per run]}, "plot": path}`.

    Raises:
        BadInputError / RunDirError (exit code 2): fewer than 2 runs, a run given twice, a bad run
            directory, or an unwritable output directory.
    """
    paths = [Path(r) for r in run_dirs]
    if len(paths) < 2:
        raise BadInputError(f"regcli compare needs at least 2 run directories. Received: {len(paths)}.")
    seen: dict[Path, Path] = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            also = f" (also as {seen[key]})" if str(seen[key]) != str(p) else ""
            raise BadInputError(f"{p} was given twice{also}: pass each run directory once.")
        seen[key] = p
    runs = [load_run(p) for p in paths]
    out = rundir.ensure_out_dir(Path(out) if out is not None else default_out(paths))
    plot = out / f"compare-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.png"
    names = [r["name"] for r in runs]
    knobs = differing_keys([r["config"] for r in runs])
    overlay_plot(runs, plot, run_labels(names, knobs))
    return {
        "runs": names,
        "run_dirs": [r["run_dir"] for r in runs],
        "knobs": knobs,
        "results": {key: [r[key] for r in runs] for key, _ in RESULTS},
        "plot": str(plot),
    }


def comparison_table(result: dict[str, Any]):
    """A rich table: one column per run, the differing knobs first, then the results."""
    from rich.table import Table

    table = Table(title="regcli compare", show_header=True, header_style="bold")
    table.add_column("")
    for i, name in enumerate(result["runs"], start=1):
        table.add_column(f"#{i} {name}", justify="right", overflow="fold")
    if not result["knobs"]:
        table.add_row("[dim](no config key differs)[/]", *([""] * len(result["runs"])))
    for key, values in result["knobs"].items():
        table.add_row(f"[cyan]{key}[/]", *(rundir.format_cell(v) for v in values))
    table.add_section()
    for key, label in RESULTS:
        if key == "test_error" and all(v is None for v in result["results"][key]):
            continue  # no run has been tested: no row of dashes
        table.add_row(label, *(rundir.format_cell(v) for v in result["results"][key]))
    table.caption = "val/test error: 1 - accuracy (classification) or mae (regression); gap = val - train error"
    return table
