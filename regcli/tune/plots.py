"""trajectory.png: what each step of a tune did, from the rows of steps.csv (matplotlib, Agg).

Left: validation error and clean training error of the incumbent along the accepted path, each
point labelled (on the x axis) with the knob that step turned: the gap closing is the story.
Right: validation data loss (mean ± std over seeds) of every configuration tried, per step,
accepted ones filled, rejected ones hollow, each labelled with its knob and value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regcli.plots import figure_legend, pyplot, save_png
from regcli.sweep.expand import knob_labels

ACCEPTED = {"color": "tab:green", "marker": "o", "markersize": 7}
REJECTED = {"color": "0.55", "marker": "o", "markersize": 6, "markerfacecolor": "white"}


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x else None


def _short(row: Mapping[str, Any]) -> str:
    """`l2 → 0.001`: the knob's short label and the value it was turned to (`base` for step 0)."""
    if not row.get("knob"):
        return "base"
    knob = str(row["knob"])
    return f"{knob_labels([knob])[knob]} → {row.get('to', '')}"


def accepted_path(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The base row and every accepted candidate row, in order: the incumbents of the tune."""
    return [r for r in rows if r.get("val_mean") not in (None, "") and str(r.get("accepted")) == "true"
            and (r.get("knob") or int(r.get("step") or 0) == 0)]


def trajectory_figure(rows: Sequence[Mapping[str, Any]]):
    """The Figure of trajectory.png (see the module docstring)."""
    plt = pyplot()
    n_tried = sum(_num(r.get("val_mean")) is not None for r in rows)
    # the right panel widens with the configurations tried: ~0.55 inch each keeps their labels apart
    right_width = max(5.0, 0.55 * n_tried)
    fig, (left, right) = plt.subplots(1, 2, figsize=(6 + right_width, 5.2),
                                      gridspec_kw={"width_ratios": [5.0, right_width]})
    fig.subplots_adjust(left=0.07, right=0.98, top=0.84, bottom=0.3, wspace=0.22)
    path = accepted_path(rows)
    xs = list(range(len(path)))
    for key, label, style in (("val_error", "validation error", {"color": "tab:orange"}),
                              ("train_error", "clean training error", {"color": "tab:blue"})):
        left.plot(xs, [_num(r.get(key)) for r in path], marker="o", label=label, **style)
    ticks = [f"step {r['step']}\n" + ("base" if not r.get("knob") else f"{r['knob']}\n→ {r['to']}") for r in path]
    left.set_xticks(xs, ticks, fontsize=8)
    left.set_xlim(-0.4, max(xs) + 0.4 if xs else 0.4)
    left.set_ylabel("error (1 − accuracy, or MAE)")
    left.set_title("The accepted path: the gap between the curves", fontsize=10)
    left.grid(alpha=0.3)
    _candidates_panel(right, rows, path)
    fig.suptitle("regcli tune: one knob per step, accepted only beyond seed noise", fontsize=12)
    figure_legend(fig, [left, right], ncol=5, fontsize=8.5)
    return fig


def _positions(tried: Sequence[Mapping[str, Any]]) -> list[float]:
    """x of each tried row: one slot per configuration, in order, with a gap between steps."""
    xs, x, last = [], 0.0, None
    for row in tried:
        if last is not None:
            x += 1.0 + (0.6 if int(row["step"]) != last else 0.0)
        xs.append(x)
        last = int(row["step"])
    return xs


def _candidates_panel(ax, rows: Sequence[Mapping[str, Any]], path: Sequence[Mapping[str, Any]]) -> None:
    from matplotlib.transforms import blended_transform_factory

    tried = [r for r in rows if _num(r.get("val_mean")) is not None]
    xs = _positions(tried)
    on_path = [(x, _num(r["val_mean"])) for x, r in zip(xs, tried, strict=True) if any(r is p for p in path)]
    ax.plot([x for x, _ in on_path], [y for _, y in on_path], color="tab:green", alpha=0.5, linewidth=1.5,
            label="incumbent")
    for x, row in zip(xs, tried, strict=True):
        accepted = any(row is p for p in path)
        ax.errorbar([x], [_num(row["val_mean"])], yerr=[_num(row.get("val_std")) or 0.0], capsize=3,
                    linestyle="none", label="accepted" if accepted else "rejected",
                    **(ACCEPTED if accepted else REJECTED))
    ax.set_xticks(xs, [_short(r) for r in tried], fontsize=7.5, rotation=30, ha="right", rotation_mode="anchor")
    for label, row in zip(ax.get_xticklabels(), tried, strict=True):
        if any(row is p for p in path):
            label.set_color("tab:green")
            label.set_fontweight("bold")
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for step in sorted({int(r["step"]) for r in tried}):
        here = [x for x, r in zip(xs, tried, strict=True) if int(r["step"]) == step]
        ax.text((here[0] + here[-1]) / 2, 1.01, f"step {step}", transform=top, ha="center", va="bottom", fontsize=8)
        if step:
            ax.axvline(here[0] - 0.8, color="0.8", linewidth=0.8, linestyle=":")
    if xs:
        ax.set_xlim(xs[0] - 0.6, xs[-1] + 0.6)
    ax.set_ylabel("val_data_loss (mean ± std over seeds)")
    ax.set_title("Every configuration tried", fontsize=10, pad=16)
    ax.grid(alpha=0.3, axis="y")


def save_trajectory(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    save_png(trajectory_figure(rows), Path(path))
