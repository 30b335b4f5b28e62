"""Sweeps without training: expansion, spec validation, aggregation, the lock, refusals.

Everything here is exact and fast: hand-written params and results, full error lines.
The sweeps that really train are in tests/test_sweep_run.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from functools import partial

import helpers
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from regcli import rundir
from regcli.cli import app
from regcli.errors import BadInputError, SpecError
from regcli.sweep import dump_sweep_yaml, load_sweep, store
from regcli.sweep.aggregate import edge_notes, leaderboard, noise_check, pick_winner
from regcli.sweep.expand import expand, expand_random
from regcli.sweep.run import prepare_sweep

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 1.0e-4},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}


write_sweep = partial(helpers.write_sweep, base=BASE)


def make_sweep_dir(tmp_path, sweep):
    """A sweep directory as `regcli sweep` lays it out, before any trial ran."""
    sweep_dir = rundir.new_run_dir(tmp_path / "runs", sweep.name)
    (sweep_dir / store.TRIALS).mkdir()
    rundir.atomic_write_text(sweep_dir / store.SWEEP_SPEC, dump_sweep_yaml(sweep))
    store.write_manifest(sweep_dir, store.new_manifest(sweep))
    return sweep_dir


# --------------------------------------------------------------------------------------
# Expansion
# --------------------------------------------------------------------------------------
def test_grid_expands_every_combination_once_per_seed_in_order():
    trials = expand("grid", {"model.l2": [0.0, 1e-4], "model.dropout": [0.0, 0.2]}, seeds=[0, 1])
    assert [t.id for t in trials] == [
        "t000-l2_0-dropout_0-s0",
        "t000-l2_0-dropout_0-s1",
        "t001-l2_0-dropout_0.2-s0",
        "t001-l2_0-dropout_0.2-s1",
        "t002-l2_1e-4-dropout_0-s0",
        "t002-l2_1e-4-dropout_0-s1",
        "t003-l2_1e-4-dropout_0.2-s0",
        "t003-l2_1e-4-dropout_0.2-s1",
    ]
    assert trials[5].params == {"model.l2": 1e-4, "model.dropout": 0.0} and trials[5].seed == 1
    assert trials[5].config == "t002-l2_1e-4-dropout_0"


def test_random_draws_distinct_grid_points_reproducibly_in_grid_order():
    params = {"model.l2": [0.0, 1e-5, 1e-4, 1e-3], "model.dropout": [0.0, 0.2, 0.5]}
    grid = [{"model.l2": a, "model.dropout": b} for a in params["model.l2"] for b in params["model.dropout"]]
    draw = expand_random(params, 5, sample_seed=7)
    assert draw == expand_random(params, 5, sample_seed=7)
    assert draw != expand_random(params, 5, sample_seed=8)
    assert len({json.dumps(d) for d in draw}) == 5
    assert [grid.index(d) for d in draw] == sorted(grid.index(d) for d in draw)
    assert expand_random(params, 12, sample_seed=0) == grid
    trials = expand("random", params, seeds=[3], max_trials=2, sample_seed=7)
    assert [t.params for t in trials] == draw[:0] + expand_random(params, 2, sample_seed=7)
    assert all(t.seed == 3 for t in trials)


def test_one_at_a_time_is_the_base_then_each_knob_alone():
    trials = expand(
        "one_at_a_time",
        {"model.l2": [0.0, 1e-4, 1e-3], "model.dropout": [0.0, 0.5]},
        seeds=[0],
        base={"model.l2": 1e-4, "model.dropout": 0.2},
    )
    assert [t.id for t in trials] == [
        "t000-base-s0",
        "t001-l2_0-s0",
        "t002-l2_0.001-s0",
        "t003-dropout_0-s0",
        "t004-dropout_0.5-s0",
    ]
    assert trials[0].params == {"model.l2": 1e-4, "model.dropout": 0.2}
    assert trials[2].params == {"model.l2": 1e-3, "model.dropout": 0.2}
    assert trials[4].params == {"model.l2": 1e-4, "model.dropout": 0.5}
    assert [t.varied for t in trials] == [(), ("model.l2",), ("model.l2",), ("model.dropout",), ("model.dropout",)]


def test_trial_ids_are_safe_short_and_distinct():
    params = {
        "data.path": ["/data/a b.csv", "/data/c.csv"],
        "model.hidden": [[256, 128], [8]],
        "model.layers.1.rate": [0.1],
        "model.layers.3.rate": [0.5],
        "model.batchnorm": [True, False],
        "training.optimizer": ["adam"],
        "diagnosis.target_error": [None],
        "training.early_stopping.patience": list(range(40)),
    }
    trials = expand("grid", params, seeds=[0, 4294967295])
    ids = [t.id for t in trials]
    assert len(set(ids)) == len(ids) == 2 * 2 * 2 * 40 * 2
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", i) for i in ids)
    assert max(len(i) for i in ids) <= 100
    # too long for a name: cut, with a hash of the whole label so that ids stay distinct
    assert re.fullmatch(r"t000-path_ab-hidden_256x128-layers\.1\.rate_0\.1-layers\.3\.rate_0\.5-[^/]*-[0-9a-f]{6}-s0", ids[0])
    assert expand("grid", {"data.path": ["/d/a.csv"], "model.batchnorm": [True]}, seeds=[1])[0].id == (
        "t000-path_a-batchnorm_true-s1"
    )


def test_smoke_keeps_two_configurations_of_the_first_seed(tmp_path):
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-4, 1e-3]}, "seeds": [5, 6]})
    sweep = load_sweep(path, smoke=True)
    assert [t.id for t in sweep.trials] == ["t000-l2_0-s5", "t001-l2_1e-4-s5"]
    assert sweep.smoke and len(load_sweep(path).trials) == 6


# --------------------------------------------------------------------------------------
# The sweep spec
# --------------------------------------------------------------------------------------
def test_sweep_spec_resolves_base_relative_to_the_sweep_file_and_round_trips(tmp_path, monkeypatch):
    sub = tmp_path / "sweeps"
    sub.mkdir()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (sub / "s.yaml").write_text("base: ../base.yaml\nparams: {model.dropout: [0.0, 0.3]}\nseeds: [0, 1]\n")
    monkeypatch.chdir(sub.parent.parent)
    sweep = load_sweep(sub / "s.yaml")
    assert sweep.name == "s" and len(sweep.trials) == 4
    resolved = sweep.resolved
    assert resolved["base"]["model"]["hidden"] == [8] and resolved["base"]["training"]["batch_size"] == 32
    assert resolved["select"] == {"metric": "val_data_loss", "mode": "min"} and resolved["final_test"] is False
    assert sweep.specs["t001-dropout_0.3-s1"].model.dropout == 0.3
    assert sweep.specs["t001-dropout_0.3-s1"].seed == 1
    stored = tmp_path / "stored.yaml"
    stored.write_text(dump_sweep_yaml(sweep))
    again = load_sweep(stored)
    assert again.resolved == resolved and [t.id for t in again.trials] == [t.id for t in sweep.trials]


def spec_error(tmp_path, sweep, base=BASE) -> str:
    with pytest.raises(SpecError) as info:
        load_sweep(write_sweep(tmp_path, sweep, base=base))
    return str(info.value)


def test_a_bad_knob_path_is_named_with_a_did_you_mean(tmp_path):
    message = spec_error(tmp_path, {"params": {"model.l22": [0.0, 1e-3], "model.dropout": [0.0, 1.0]}})
    assert message.splitlines() == [
        f"Invalid sweep spec {tmp_path / 'sweep.yaml'}:",
        "  params.model.l22: Unknown key 'model.l22'. Did you mean 'model.l2'?",
        "  params.model.dropout, value 1.0: model.dropout: must be a number in [0, 1). Received: 1.0. "
        "A rate of 1 would drop every unit; typical rates are 0.1 to 0.5.",
    ]


def test_sweep_spec_errors_name_every_key(tmp_path):
    message = spec_error(
        tmp_path,
        {
            "strategy": "gird",
            "params": {"model.l2": [0.0, 0.0], "seed": [1]},
            "seeds": [0, 0],
            "selct": {"metric": "val_loss"},
            "max_trials": 3,
        },
    )
    assert "  strategy: must be one of grid, random, one_at_a_time. Received: 'gird'. Did you mean 'grid'?" in message
    assert "  Unknown key 'selct'. Did you mean 'select'?" in message
    message = spec_error(
        tmp_path, {"params": {"model.l2": [0.0, 0.0], "seed": [1]}, "seeds": [0, 0], "max_trials": 3}
    )
    assert message.splitlines()[1:] == [
        "  params.model.l2: lists 0.0 twice; each value is one configuration.",
        "  params.seed: seeds are swept with seeds: [0, 1, 2] (every configuration once per seed), not under params.",
        "  seeds: lists a seed twice. Received: [0, 0].",
        "  max_trials: applies only to strategy random. Received: 3 with strategy grid. Remove it.",
    ]
    message = spec_error(tmp_path, {"strategy": "random", "params": {"model.l2": [0.0, 1e-4]}})
    assert "max_trials: strategy random needs it: how many of the 2 configurations to draw" in message
    message = spec_error(tmp_path, {"params": {"model.l2": 0.1}, "select": {"metric": "test_error"}})
    assert "  params.model.l2: must be a list of values to try, e.g. [0.1]. Received: 0.1." in message
    assert "  select.metric: must be one of val_data_loss, val_loss, val_error, val_accuracy, val_mae." in message
    message = spec_error(tmp_path, {"params": {"model.l2": [0.0]}, "select": {"metric": "val_mae"}})
    assert "select.metric: val_mae is not reported for a binary task" in message


def test_every_trial_spec_is_validated_before_anything_runs(tmp_path):
    # Each value is fine alone; 0.5 + 0.5 leaves no training rows, which only the expanded trial shows.
    path = write_sweep(tmp_path, {"params": {"data.val_fraction": [0.2, 0.5], "data.test_fraction": [0.2, 0.5]}})
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    assert "(trial t003-val_fraction_0.5-test_fraction_0.5-s0)" in str(info.value)
    assert "data.val_fraction + data.test_fraction: must be < 1" in str(info.value)
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_too_many_seeds_or_values_are_refused_naming_the_key(tmp_path):
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}})
    path.write_text(f"base: base.yaml\nparams: {{model.l2: [0.0, 0.001]}}\nseeds: {list(range(100_000))}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (
        f"error: Invalid YAML in {path}:3:8: seeds has more than 10,000 entries; "
        "at most 10,000 are allowed in one list of a spec."
    )
    assert "billion laughs" not in result.output and "Traceback" not in result.output
    assert spec_error(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}, "seeds": list(range(5_000))}).splitlines()[1:] == [
        "  seeds: has 5,000 entries; at most 1,000 are allowed. Every configuration is trained once per seed; "
        "3 to 10 seeds measure seed noise."
    ]
    values = [i / 1e6 for i in range(5_000)]
    assert spec_error(tmp_path, {"params": {"model.l2": values}}).splitlines()[1:] == [
        "  params.model.l2: has 5,000 values; at most 1,000 are allowed."
    ]


def test_a_base_that_is_not_a_spec_is_named_but_never_echoed(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.write_text("root:*:20228:0:99999:7:::\nalice:$6$s3cr3t:20228:0:99999:7:::\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": str(shadow), "params": {"model.l2": [0.0, 1e-3]}}))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (
        f"error: Invalid sweep spec {path}: base: {shadow} is not an experiment spec: none of its 2 top-level keys "
        "is one of name, seed, backend, device, data, model, training, diagnosis, tracking (its content is not "
        "shown). Expected a YAML mapping with at least data:, e.g. 'data: {source: breast_cancer}'; check the path."
    )
    assert "s3cr3t" not in result.output and "root:" not in result.output
    message = spec_error(tmp_path, {"params": {"model.l2": [0.0]}, "base": "/dev/null"})  # was "file not found"
    assert message.splitlines()[1].startswith("  base: Spec file /dev/null is a character device, not a regular file")


def test_more_jobs_than_cores_is_said_in_one_line(tmp_path, monkeypatch):
    import regcli.sweep.run

    def stop(plan, **_):
        raise BadInputError(f"stopped before training; the plan asked for --jobs {plan.jobs}")

    monkeypatch.setattr(regcli.sweep.run, "run_sweep", stop)
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result = CliRunner().invoke(app, ["sweep", str(path), "--jobs", "1000", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (
        f"warning: --jobs 1000 is more than this machine's {cores} CPU core(s): 2 worker process(es) (at most one "
        f"per trial; the sweep has 2) will share them, each trial slower. Use --jobs {cores} for one trial per core. "
        "error: stopped before training; the plan asked for --jobs 1000"
    )
    if cores >= 3:
        result = CliRunner().invoke(app, ["sweep", str(path), "--jobs", "3", "--out", str(tmp_path / "runs")])
        assert "warning: --jobs 3: the sweep has 2 trial(s), so 2 worker process(es) start." in result.output
    result = CliRunner().invoke(app, ["sweep", str(path), "--jobs", "1", "--out", str(tmp_path / "runs")])
    assert "warning" not in result.output
    assert not (tmp_path / "runs").exists()


def test_ranking_on_val_loss_across_penalties_warns(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}, "select": {"metric": "val_loss"}}))
    assert len(sweep.warnings) == 1 and "val_loss includes each trial's own L1/L2 penalty" in sweep.warnings[0]
    assert "model.l2" in sweep.warnings[0]
    assert load_sweep(write_sweep(tmp_path, {"params": {"model.dropout": [0.0, 0.2]}, "select": {"metric": "val_loss"}})).warnings == []
    assert load_sweep(write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}})).warnings == []


def test_validate_and_help_stay_free_of_tensorflow(tmp_path):
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}})
    code = (
        "import sys; from regcli.sweep import load_sweep, dump_sweep_yaml; import regcli.sweep.run; "
        f"dump_sweep_yaml(load_sweep({str(path)!r})); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------
# Aggregation (hand-written results)
# --------------------------------------------------------------------------------------
def results(rows):
    columns = ["trial", "config", "model.l2", "seed", "status", "val_data_loss", "val_loss", "val_error", "train_error", "gap"]
    return pd.DataFrame([dict(zip(columns, r, strict=True)) for r in rows])


RESULTS = [
    # trial, config, l2, seed, status, val_data_loss, val_loss, val_error, train_error, gap
    ("a-s0", "a", 0.0, 0, "completed", 0.30, 0.30, 0.10, 0.00, 0.10),
    ("a-s1", "a", 0.0, 1, "completed", 0.34, 0.34, 0.12, 0.02, 0.10),
    ("b-s0", "b", 1e-4, 0, "completed", 0.20, 0.25, 0.08, 0.04, 0.04),
    ("b-s1", "b", 1e-4, 1, "completed", 0.24, 0.29, 0.06, 0.04, 0.02),
    ("c-s0", "c", 1e-3, 0, "completed", 0.10, 0.40, 0.05, 0.05, 0.00),
    ("c-s1", "c", 1e-3, 1, "failed", None, None, None, None, None),
    ("d-s0", "d", 1e-2, 0, "diverged", None, None, None, None, None),
    ("d-s1", "d", 1e-2, 1, "pending", None, None, None, None, None),
]


def test_leaderboard_ranks_on_validation_means_and_puts_unstable_configs_last():
    board = leaderboard(results(RESULTS), ["model.l2"], "val_data_loss", "min")
    assert list(board["config"]) == ["b", "a", "c", "d"]  # c has the best value but a failed seed
    assert list(board["rank"]) == [1, 2, 3, 4]
    b = board.iloc[0]
    assert b["val_data_loss_mean"] == pytest.approx(0.22) and b["val_data_loss_std"] == pytest.approx(0.028284, abs=1e-6)
    assert b["gap_mean"] == pytest.approx(0.03) and b["n_completed"] == 2
    c, d = board.iloc[2], board.iloc[3]
    assert (c["n_completed"], c["n_failed"]) == (1, 1) and pd.isna(c["val_data_loss_std"])  # one seed: no std
    assert (d["n_completed"], d["n_diverged"], d["n_failed"]) == (0, 1, 1) and pd.isna(d["val_data_loss_mean"])
    by_val_loss = leaderboard(results(RESULTS), ["model.l2"], "val_loss", "min")
    assert list(by_val_loss["config"][:2]) == ["b", "a"]
    by_error_max = leaderboard(results(RESULTS), ["model.l2"], "val_error", "max")
    assert list(by_error_max["config"][:2]) == ["a", "b"]


def test_margin_against_seed_noise():
    frame = results(RESULTS)
    board = leaderboard(frame, ["model.l2"], "val_data_loss", "min")
    winner, runner_up = pick_winner(board)
    check = noise_check(frame, winner, runner_up, "val_data_loss", "min")
    assert check["margin"] == pytest.approx(0.10)
    assert check["within_noise"] is False  # 0.22 ± 0.028 vs 0.32 ± 0.028
    assert check["paired"]["n"] == 2 and check["paired"]["wins"] == 2
    close = frame.copy()
    close.loc[close["trial"] == "a-s0", "val_data_loss"] = 0.19  # a: 0.23 ± 0.057, better than b on seed 0
    close.loc[close["trial"] == "a-s1", "val_data_loss"] = 0.27
    board = leaderboard(close, ["model.l2"], "val_data_loss", "min")
    winner, runner_up = pick_winner(board)
    check = noise_check(close, winner, runner_up, "val_data_loss", "min")
    assert winner["config"] == "b" and check["margin"] == pytest.approx(0.01)
    assert check["within_noise"] is True and check["paired"]["wins"] == 1


def test_edge_of_range_warning(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-5, 1e-4, 1e-3], "model.dropout": [0.0, 0.5]}}))
    assert edge_notes(sweep, {"model.l2": 1e-4, "model.dropout": 0.5}) == []  # 2 values are no range
    assert edge_notes(sweep, {"model.l2": 0.0, "model.dropout": 0.0}) == []  # no penalty below 0
    (note,) = edge_notes(sweep, {"model.l2": 1e-3, "model.dropout": 0.0})
    assert note == (
        "model.l2 = 0.001 won and is the largest value swept (0, 1e-5, 1e-4, 0.001): the optimum may lie "
        "beyond it. Extend the range above 0.001."
    )


# --------------------------------------------------------------------------------------
# The sweep directory: lock, resume refusals, options
# --------------------------------------------------------------------------------------
def test_the_lock_refuses_a_second_owner_and_takes_over_a_dead_ones(tmp_path):
    sweep_dir = make_sweep_dir(tmp_path, load_sweep(write_sweep(tmp_path, {"params": {"model.l2": [0.0]}})))
    with store.sweep_lock(sweep_dir) as owner:
        assert owner["pid"] == os.getpid()
        lock = json.loads((sweep_dir / store.LOCK).read_text())
        assert lock["host"] == socket.gethostname() and lock["pid"] == os.getpid()
        with pytest.raises(BadInputError, match=rf"in use by another regcli sweep \(pid {os.getpid()} on "):
            with store.sweep_lock(sweep_dir):
                pass
    assert not (sweep_dir / store.LOCK).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (sweep_dir / store.LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    notes = []
    with store.sweep_lock(sweep_dir, notes.append):
        pass
    assert notes == [
        f"took over the stale lock of pid {dead.pid} on {socket.gethostname()}: that sweep process is gone; "
        "the trials it left unfinished are restarted."
    ]


def test_resume_with_a_different_spec_is_refused(tmp_path):
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-4]}, "seeds": [0, 1]})
    sweep_dir = make_sweep_dir(tmp_path, load_sweep(path))
    assert prepare_sweep(path, resume=sweep_dir).sweep.resolved == load_sweep(path).resolved  # the same spec is fine
    other = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}, "seeds": [0, 1]}, name="sweep.yaml")
    result = CliRunner().invoke(app, ["sweep", str(other), "--resume", str(sweep_dir)])
    assert result.exit_code == 2
    assert "is not the sweep stored there (they differ in params.model.l2[1])" in " ".join(result.output.split())
    assert "regcli sweep --resume" in " ".join(result.output.split())
    with pytest.raises(BadInputError, match="--out does not apply with --resume"):
        prepare_sweep(None, resume=sweep_dir, out=tmp_path)
    with pytest.raises(BadInputError, match="started without --smoke"):
        prepare_sweep(None, resume=sweep_dir, smoke=True)
    with pytest.raises(BadInputError, match="not a regcli sweep directory"):
        prepare_sweep(None, resume=tmp_path)


def test_options_are_checked_before_anything_is_created(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, {"params": {"model.l2": [0.0]}})
    for args, text in (
        (["--jobs", "0"], "--jobs must be an integer >= 1"),
        (["--executor", "slurm"], "--executor must be one of local, ray"),
        (["--address", "127.0.0.1:6379"], "--address applies only to --executor ray"),
    ):
        result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "runs"), *args])
        assert result.exit_code == 2 and text in result.output, result.output
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    result = CliRunner().invoke(app, ["sweep", str(path), "--executor", "ray", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "needs Ray" in result.output and "pip install" in result.output
    with pytest.raises(BadInputError, match=re.escape("Install it with: pip install 'regcli[ray]'")):
        prepare_sweep(path, executor="ray")
    assert not (tmp_path / "runs").exists()
