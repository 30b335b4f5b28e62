"""The pictures, checked on their matplotlib objects: what is marked, what is labelled, where the
legend sits. Hand-written histories and leaderboards; nothing is trained."""

from __future__ import annotations

import json
import math
from functools import partial

import helpers
import pandas as pd
import pytest

from regcli import plots, rundir
from regcli.commands.compare import overlay_figure
from regcli.sweep import load_sweep, store
from regcli.sweep.aggregate import leaderboard
from regcli.sweep.plots import knob_figures, knob_plots, validation_sizes

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}
write_sweep = partial(helpers.write_sweep, base=BASE)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots.pyplot().close("all")


def history(val_data_loss, *, penalty=0.01):
    """A classification history: val_data_loss as given, train curves falling, val_loss = data loss + penalty."""
    n = len(val_data_loss)
    return pd.DataFrame(
        {
            "epoch": list(range(1, n + 1)),
            "loss": [0.6 / e + penalty for e in range(1, n + 1)],
            "data_loss": [0.6 / e for e in range(1, n + 1)],
            "clean_data_loss": [0.5 / e for e in range(1, n + 1)],
            "val_data_loss": val_data_loss,
            "val_loss": [v + penalty for v in val_data_loss],
            "accuracy": [min(0.7 + 0.05 * e, 1.0) for e in range(1, n + 1)],
            "clean_accuracy": [min(0.75 + 0.05 * e, 1.0) for e in range(1, n + 1)],
            "val_accuracy": [0.9 - v for v in val_data_loss],
        }
    )


CURVE = [0.5, 0.3, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45]  # validation bottoms out at epoch 3 of 8


def lines(fig, label):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == label]


def assert_legend_off_the_axes(fig):
    """Every figure legend: inside the figure, clear of every axes' data area and of its tick labels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert fig.legends and all(ax.get_legend() is None for ax in fig.axes)
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1, (box, fig.bbox)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), (legend, ax)
            assert not box.overlaps(ax.get_tightbbox(renderer)), (legend, ax)  # its ticks and labels too


# --------------------------------------------------------------------------------------
# learning_curves.png
# --------------------------------------------------------------------------------------
def test_best_validation_epoch_on_a_hand_written_loss_list():
    frame = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "val_loss": [0.2, 0.15, 0.1, 0.11, 0.12]})
    assert plots.best_validation_epoch(frame, "val_loss") == (3, "val_loss")
    tied = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.2, 0.1, 0.1], "val_accuracy": [0.8, 0.9, 0.95]})
    assert plots.best_validation_epoch(tied, "val_loss") == (2, "val_loss")  # a tie is no improvement (Keras)
    assert plots.best_validation_epoch(tied, "val_accuracy") == (3, "val_accuracy")  # accuracy: the highest
    with_nan = pd.DataFrame({"epoch": [1, 2, 3], "val_data_loss": [0.3, math.nan, 0.2]})
    assert plots.best_validation_epoch(with_nan, "val_loss") == (3, "val_data_loss")  # falls back, skips NaN
    assert plots.best_validation_epoch(pd.DataFrame({"epoch": [1], "loss": [0.1]})) is None


def test_the_best_validation_epoch_is_marked_apart_from_the_shipped_one_when_early_stopping_is_off():
    # Early stopping off: fit.py writes monitor_best_epoch None, and the shipped epoch is the last.
    summary = {"best_epoch": 8, "epochs_run": 8, "stopped_early": False, "monitor": "val_loss", "monitor_best_epoch": None}
    fig = plots.learning_curves_figure(history(CURVE), summary)
    best = lines(fig, "lowest val_data_loss: epoch 3")
    assert len(best) == 2 and all(list(line.get_xdata()) == [3, 3] for line in best)  # one line in each panel
    shipped = lines(fig, "shipped epoch 8")
    assert len(shipped) == 2 and all(list(line.get_xdata()) == [8, 8] for line in shipped)
    assert best[0].get_color() != shipped[0].get_color() and best[0].get_linestyle() != shipped[0].get_linestyle()
    stars = [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [3]
    assert list(stars[0].get_ydata()) == pytest.approx([0.2])  # on the validation data_loss curve, at its lowest
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "lowest val_data_loss: epoch 3" in labels and "early stop" not in labels


def test_with_early_stopping_on_the_monitored_column_is_the_one_marked():
    """Restoring off: early stopping watched val_loss (min at 4 here) and shipped the last epoch."""
    frame = history(CURVE)
    frame.loc[frame["epoch"] == 4, "val_loss"] = 0.1
    summary = {"best_epoch": 8, "epochs_run": 8, "monitor": "val_loss", "monitor_best_epoch": 4}
    fig = plots.learning_curves_figure(frame, summary)
    assert len(lines(fig, "lowest val_loss: epoch 4")) == 2 and not lines(fig, "lowest val_data_loss: epoch 3")
    stars = [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "*"]
    assert [list(s.get_xdata()) + list(s.get_ydata()) for s in stars] == [[4, 0.1]]  # on the dashed val_loss curve


def test_a_shipped_epoch_that_is_the_best_says_so_and_draws_no_second_line():
    summary = {"best_epoch": 3, "epochs_run": 8, "stopped_early": True, "monitor": "val_data_loss", "monitor_best_epoch": 3}
    fig = plots.learning_curves_figure(history(CURVE), summary)
    assert len(lines(fig, "shipped epoch 3 (= lowest val_data_loss)")) == 2
    assert not [line for ax in fig.axes for line in ax.get_lines() if str(line.get_label()).startswith("lowest")]
    assert len(lines(fig, "early stop")) == 2


def test_val_loss_without_a_penalty_is_not_drawn_under_the_validation_curve():
    fig = plots.learning_curves_figure(history(CURVE, penalty=0.0), {"best_epoch": 3, "monitor": "val_loss"})
    assert not lines(fig, "val_loss (with penalty)")
    assert len(lines(plots.learning_curves_figure(history(CURVE), {"best_epoch": 3}), "val_loss (with penalty)")) == 1


def test_the_learning_curves_legend_sits_below_the_panels_and_nothing_is_cut_off():
    summary = {"best_epoch": 8, "epochs_run": 8, "stopped_early": True, "monitor": "val_loss", "run_name": "r"}
    fig = plots.learning_curves_figure(history(CURVE), summary)
    assert len(fig.legends[0].get_texts()) == 7  # train x2, validation, val_loss, shipped, best, stop
    assert_legend_off_the_axes(fig)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        tight = ax.get_tightbbox(renderer)
        assert tight.x0 >= 0 and tight.y0 >= 0 and tight.x1 <= fig.bbox.x1 and tight.y1 <= fig.bbox.y1


def test_learning_curves_writes_a_png(tmp_path):
    plots.learning_curves(history(CURVE), {"best_epoch": 3}, tmp_path / rundir.CURVES)
    assert (tmp_path / rundir.CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------
# compare's overlay plot
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_runs, label_length", [(2, 20), (12, 60), (3, 180)])
def test_the_overlay_legend_is_below_the_panels_for_few_or_many_runs_and_long_labels(n_runs, label_length):
    runs = [{"name": f"run{i}", "best_epoch": 3, "history": history([v + 0.01 * i for v in CURVE])} for i in range(n_runs)]
    labels = [f"#{i + 1} " + "x" * label_length for i in range(n_runs)]
    fig = overlay_figure(runs, labels)
    assert len(fig.legends[0].get_texts()) == n_runs
    assert_legend_off_the_axes(fig)
    assert all(ax.get_window_extent().height > 200 for ax in fig.axes)  # the panels keep their size


# --------------------------------------------------------------------------------------
# gap_vs_<knob>.png and val_vs_<knob>.png
# --------------------------------------------------------------------------------------
def sweep_board(tmp_path, seeds, *, classification=True):
    """A 2-value dropout sweep whose training error is 0: the gap equals the validation error."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    sweep = load_sweep(write_sweep(tmp_path, {"params": {"model.dropout": [0.0, 0.5]}, "seeds": seeds}))
    val = {(0.0, 0): 0.0088, (0.0, 1): 0.0351, (0.5, 0): 0.0175, (0.5, 1): 0.0175, (0.0, 2): 0.0, (0.5, 2): 0.0}
    rows = []
    for trial in sweep.trials:
        error = val[(trial.params["model.dropout"], trial.seed)]
        metrics = {"val_accuracy": 1 - error} if classification else {"val_mae": error}
        rows.append({"config": trial.config, "model.dropout": trial.params["model.dropout"], "seed": trial.seed,
                     "status": "completed", "val_data_loss": 0.1 + error, "val_error": error, "train_error": 0.0,
                     "gap": error, **metrics})
    return sweep, leaderboard(pd.DataFrame(rows), sweep.knobs, sweep.metric, sweep.mode)


def curve(fig, label):
    """The data line of the errorbar artist `label` (errorbar labels its container, not the line)."""
    found = [c.lines[0] for ax in fig.axes for c in ax.containers if c.get_label() == label]
    assert len(found) == 1, (label, found)
    return found[0]


def gap_of(figures):
    return next(fig for name, fig in figures if name.startswith("gap_vs_"))


def bars(ax, label):
    """(lowest, highest) y of the error bars of the errorbar artist `label` in `ax`, or None without bars."""
    container = next(c for c in ax.containers if c.get_label() == label)
    if not container.has_yerr:
        return None
    ys = [y for collection in container.lines[2] for segment in collection.get_segments() for _, y in segment]
    return min(ys), max(ys)


def test_validation_error_and_gap_never_share_an_axis_and_validation_is_drawn_on_top(tmp_path):
    sweep, board = sweep_board(tmp_path, [0, 1])
    fig = gap_of(knob_figures(board, sweep, n_val=114))
    val, train, gap = (curve(fig, label) for label in ("validation error", "clean train error", "gap (val - clean train)"))
    assert list(val.get_ydata()) == pytest.approx(list(gap.get_ydata()))  # the same numbers ...
    assert val.axes is not gap.axes  # ... on separate panels, so both can be seen
    assert val.axes is train.axes and val.get_zorder() > train.get_zorder()
    assert list(val.get_xdata()) != list(train.get_xdata())  # nudged apart where the errors coincide
    assert train.get_markerfacecolor() != val.get_markerfacecolor()
    assert_legend_off_the_axes(fig)


def test_error_bars_stop_at_zero_but_the_gaps_do_not(tmp_path):
    sweep, board = sweep_board(tmp_path, [0, 1, 2])  # dropout 0: errors 0.0088, 0.0351, 0, mean 0.0146 ± 0.018
    fig = gap_of(knob_figures(board, sweep))
    assert bars(curve(fig, "validation error").axes, "validation error")[0] == pytest.approx(0.0)
    assert bars(curve(fig, "clean train error").axes, "clean train error")[0] == pytest.approx(0.0)
    assert bars(curve(fig, "gap (val - clean train)").axes, "gap (val - clean train)")[0] < 0  # a gap may be negative
    val_fig = next(f for name, f in knob_figures(board, sweep) if name.startswith("val_vs_"))
    assert all(y >= 0 for c in val_fig.axes[0].containers for coll in c.lines[2] for s in coll.get_segments() for _, y in s)


def test_one_seed_draws_no_error_bars_and_the_title_claims_no_spread(tmp_path):
    sweep, board = sweep_board(tmp_path, [0])
    for name, fig in knob_figures(board, sweep, n_val=114):
        for ax in fig.axes:
            assert not any(c.has_yerr for c in ax.containers), name
        title = fig.axes[0].get_title()
        assert "1 seed" in title and "±" not in title and "std" not in title and "seed(s)" not in title, title


def test_the_error_axis_names_the_task_and_counts_validation_rows_for_classification(tmp_path):
    sweep, board = sweep_board(tmp_path, [0, 1])
    fig = gap_of(knob_figures(board, sweep, n_val={c: 114 for c in board["config"]}))
    top = curve(fig, "validation error").axes
    assert top.get_ylabel() == "error (1 - accuracy)"
    assert [child.get_ylabel() for child in top.child_axes] == ["validation rows wrong (1 of 114 = 0.0088)"]
    assert "seeds" in top.get_title() and "±1 std over 2 seeds" in top.get_title()

    sweep, board = sweep_board(tmp_path / "reg", [0, 1], classification=False)
    fig = gap_of(knob_figures(board, sweep, n_val=88))
    top = curve(fig, "validation error").axes
    assert top.get_ylabel() == "error (mae)" and top.child_axes == []  # mae is no count of rows


def test_several_validation_sizes_are_named_in_the_title(tmp_path):
    sweep, board = sweep_board(tmp_path, [0, 1])
    configs = list(board["config"])
    fig = gap_of(knob_figures(board, sweep, n_val={configs[0]: 114, configs[1]: 100}))
    top = curve(fig, "validation error").axes
    assert top.child_axes == [] and "1 validation row = 0.0088 to 0.01 (n_val 100-114)" in " ".join(top.get_title().split())


def test_knob_plots_reads_n_val_from_the_trials_and_writes_both_pictures(tmp_path):
    sweep, board = sweep_board(tmp_path, [0, 1])
    sweep_dir = tmp_path / "sweep"
    for trial in sweep.trials:
        run = store.trial_dir(sweep_dir, trial.id)
        run.mkdir(parents=True)
        (run / rundir.SUMMARY).write_text(json.dumps({"n_val": 114}))
    assert validation_sizes(sweep, sweep_dir) == {c: 114 for c in board["config"]}
    written = knob_plots(board, sweep, sweep_dir)
    assert sorted(p.name for p in written) == ["gap_vs_model.dropout.png", "val_vs_model.dropout.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
