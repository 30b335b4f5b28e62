"""The seeds-vs-configurations variance decomposition, its note, and the shipped run's note.

The pure functions are checked on hand-written tables against sums of squares worked out by
hand (in the comments); one tiny sweep really trains, to check that best.json carries them.
"""

from __future__ import annotations

import json
import math
from functools import partial

import helpers
import pandas as pd
import pytest

from regcli.sweep import load_sweep, store
from regcli.sweep.aggregate import shipped_run_note, split_seed_fixed
from regcli.sweep.run import prepare_sweep, run_sweep
from regcli.sweep.variance import decompose, sweep_variance, variance_note

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},  # no split_seed: every seed draws its own split
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    # 2 epochs: this checks wiring, not convergence
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}

write_sweep = partial(helpers.write_sweep, base=BASE)


def table(values, metric="val_error"):
    """{config: [value per seed 0, 1, ...]} -> one row per trial (None: the trial failed)."""
    rows = [
        {"config": config, "seed": seed, "status": "completed" if v is not None else "failed", metric: v}
        for config, per_seed in values.items()
        for seed, v in enumerate(per_seed)
    ]
    return pd.DataFrame(rows)


# Additive plus an interaction of ±0.05 (rows and columns sum to 0), scaled to validation errors:
#   a: 0.15 0.45 0.30   mean 0.30        grand mean 0.35
#   b: 0.15 0.65 0.40   mean 0.40        seed means 0.15, 0.55, 0.35
# SS_config = 3 seeds * (0.05² + 0.05²) = 0.015; SS_seed = 2 configs * (0.2² + 0.2² + 0²) = 0.16;
# SS_residual = 4 * 0.05² = 0.01; SS_total = 0.185 (deviations -.2 .1 -.05 -.2 .3 .05).
SEED_DOMINATED = {"a": [0.15, 0.45, 0.30], "b": [0.15, 0.65, 0.40]}


def test_a_seed_dominated_table_splits_as_worked_out_by_hand():
    d = decompose(table(SEED_DOMINATED), "val_error")
    assert (d["n_configs"], d["n_seeds"], d["n_trials"], d["balanced"]) == (2, 3, 6, True)
    assert d["config_share"] == pytest.approx(0.015 / 0.185)  # 3/37 = 0.081
    assert d["seed_share"] == pytest.approx(0.16 / 0.185)  # 32/37 = 0.865
    assert d["residual_share"] == pytest.approx(0.01 / 0.185)  # 2/37: balanced, the three sum to 1
    assert d["config_spread"] == pytest.approx(math.sqrt(0.005))  # std(0.30, 0.40), ddof 1
    assert d["seed_spread"] == pytest.approx(0.2)  # std(0.15, 0.55, 0.35), ddof 1
    assert d["config_means"] == pytest.approx({"a": 0.30, "b": 0.40})
    assert d["seed_means"] == pytest.approx({"0": 0.15, "1": 0.55, "2": 0.35})
    assert d["config_means_range"] == pytest.approx([0.30, 0.40]) and d["seed_means_range"] == pytest.approx([0.15, 0.55])
    assert json.loads(json.dumps(d)) == d  # best.json holds it as it is
    assert variance_note(d, split_fixed=False) == (
        "Seeds explain 86% of the variance of val_error, configurations 8% (seed means span 0.15–0.55, "
        "configuration means 0.3–0.4): the split each seed draws decides more than the knobs do. Set "
        "data.split_seed in the base spec so every seed trains on the same split, and the comparison measures "
        "the knobs."
    )
    assert variance_note(d, split_fixed=True) == (
        "Seeds explain 86% of the variance of val_error, configurations 8% (seed means span 0.15–0.55, "
        "configuration means 0.3–0.4): data.split_seed holds the split fixed, so this is initialisation "
        "noise (initial weights, batch order, dropout), and it is larger than the differences between the "
        "configurations. Add seeds, or treat the configurations as tied within noise."
    )


def test_a_config_dominated_table_gets_no_note():
    # The same numbers transposed: three configurations over two seeds, the shares swap.
    d = decompose(table({"a": [0.15, 0.15], "b": [0.45, 0.65], "c": [0.30, 0.40]}), "val_error")
    assert (d["n_configs"], d["n_seeds"]) == (3, 2)
    assert (d["config_share"], d["seed_share"]) == pytest.approx((0.16 / 0.185, 0.015 / 0.185))
    assert variance_note(d, split_fixed=False) is None


def test_the_contenders_are_the_better_half_and_the_note_reads_them():
    # Two contenders whose seeds move them by 0.19, and two hopeless configurations that no seed moves.
    results = table({"a": [0.10, 0.30], "b": [0.12, 0.30], "c": [0.40, 0.40], "d": [0.50, 0.50]})
    d = sweep_variance(results, "val_error", "min")
    # All 8: grand mean 0.3275, SS_total 0.16635; config means 0.2 0.21 0.4 0.5: SS_config = 2 * 0.065075 = 0.13015;
    # seed means 0.28 0.375: SS_seed = 4 * 2 * 0.0475² = 0.01805. The configurations dominate.
    assert (d["config_share"], d["seed_share"]) == pytest.approx((0.13015 / 0.16635, 0.01805 / 0.16635))
    # a and b: grand 0.205, SS_total 0.0363; SS_config = 2 * 2 * 0.005² = 0.0001, SS_seed = 2 * 2 * 0.095² = 0.0361.
    top = d["contenders"]
    assert (top["n_configs"], top["config_means"]) == (2, pytest.approx({"a": 0.20, "b": 0.21}))
    assert (top["config_share"], top["seed_share"], top["residual_share"]) == pytest.approx((1 / 363, 361 / 363, 1 / 363))
    assert variance_note(d, split_fixed=False).startswith(
        "Among the 2 best of 4 configurations, seeds explain 99% of the variance of val_error, configurations 0% "
        "(seed means span 0.11–0.3, configuration means 0.2–0.21): the split each seed draws"
    )
    best_by_max = sweep_variance(results, "val_error", "max")["contenders"]
    assert set(best_by_max["config_means"]) == {"c", "d"} and best_by_max["seed_share"] == 0.0
    assert variance_note(sweep_variance(results, "val_error", "max"), split_fixed=False) is None
    assert sweep_variance(table(SEED_DOMINATED), "val_error", "min")["contenders"] is None  # 2 configurations


def test_one_seed_gives_no_decomposition_and_one_configuration_only_the_seeds_share():
    assert decompose(table({"a": [0.2], "b": [0.3]}), "val_error") is None
    assert decompose(table({"a": [0.2, None], "b": [0.3, None]}), "val_error") is None  # seed 1 all failed
    assert decompose(table({}), "val_error") is None
    one = decompose(table({"a": [0.1, 0.3, 0.2]}), "val_error")
    assert (one["seed_share"], one["config_share"], one["residual_share"]) == pytest.approx((1.0, 0.0, 0.0))
    assert one["config_spread"] is None and one["seed_spread"] == pytest.approx(0.1)
    assert variance_note(one, split_fixed=False) is None  # one configuration: nothing to compare


def test_an_unbalanced_table_with_a_failed_and_a_diverged_trial():
    results = table({"a": [1.0, 5.0, 3.0], "b": [2.0, 7.0, None]}, metric="val_data_loss")
    diverged = {"config": "b", "seed": 2, "status": "diverged", "val_data_loss": 99.0}
    d = decompose(pd.concat([results, pd.DataFrame([diverged])]), "val_data_loss")  # only completed rows count
    # 5 values, grand mean 3.6, SS_total = 2.6² + 1.4² + 0.6² + 1.6² + 3.4² = 23.2.
    # Full additive fit: (a, 2) is seed 2's only value and fits exactly; the 2x2 rest leaves an
    # interaction of (1 - 5 - 2 + 7) / 4 = 0.25 per cell: RSS_full = 4 * 0.25² = 0.25.
    # Seeds only: RSS = (1 - 2)²/2 + (5 - 7)²/2 = 2.5, so SS_config = 2.5 - 0.25 = 2.25.
    # Configs only: RSS = (4 + 4 + 0) + (6.25 + 6.25) = 20.5, so SS_seed = 20.5 - 0.25 = 20.25.
    assert (d["n_configs"], d["n_seeds"], d["n_trials"], d["balanced"]) == (2, 3, 5, False)
    assert d["config_share"] == pytest.approx(2.25 / 23.2)
    assert d["seed_share"] == pytest.approx(20.25 / 23.2)
    assert d["residual_share"] == pytest.approx(0.25 / 23.2)  # unbalanced: 22.75 / 23.2, not 1
    # Fitted grid: a 0.75 5.25 3.0 | b 2.25 6.75 4.5 (b's missing seed 2: a's 3.0 + b's effect 1.5).
    assert d["config_means"] == pytest.approx({"a": 3.0, "b": 4.5})
    assert d["seed_means"] == pytest.approx({"0": 1.5, "1": 6.0, "2": 3.75})  # raw seed 2 mean: 3.0, a's only
    assert d["config_spread"] == pytest.approx(1.5 / math.sqrt(2)) and d["seed_spread"] == pytest.approx(2.25)


def test_nan_and_inf_values_count_as_missing_trials():
    clean = table({"a": [1.0, 5.0, 3.0], "b": [2.0, 7.0, None]})
    for bad in (math.nan, math.inf, None):
        dirty = table({"a": [1.0, 5.0, 3.0], "b": [2.0, 7.0, 0.0]})
        dirty.loc[5, "val_error"] = bad
        dirty.loc[5, "status"] = "completed"
        assert decompose(dirty, "val_error") == decompose(clean, "val_error"), bad


def test_no_variance_or_confounded_effects_give_none():
    assert decompose(table({"a": [0.2, 0.2], "b": [0.2, 0.2]}), "val_error") is None  # nothing to share
    # a only on seed 0, b only on seed 1: the configuration and the seed cannot be told apart.
    assert decompose(table({"a": [0.1, None], "b": [None, 0.3]}), "val_error") is None


def test_the_shipped_run_note_gives_the_luckiest_seed_against_the_mean():
    winner = {"config": "t004", "n_completed": 3, "val_data_loss_mean": 0.23, "val_data_loss_std": 0.115}
    shipped = {"run_dir": "trials/t004-s2", "seed": 2, "val_data_loss": 0.12}
    assert shipped_run_note(winner, shipped, "val_data_loss", "min", tested=True) == (
        "The shipped run trials/t004-s2 is the winner's luckiest seed (seed 2): its val_data_loss 0.12 is the "
        "minimum over 3 seeds, biased low. The configuration's mean 0.23 ± 0.12 over its 3 seeds is the honest "
        "validation estimate; the final test (best.json's final_test) is the number to report."
    )
    accuracy = {"config": "t1", "n_completed": 2, "val_accuracy_mean": 0.9, "val_accuracy_std": 0.02}
    note = shipped_run_note(accuracy, {"run_dir": "trials/t1-s0", "seed": 0, "val_accuracy": 0.914}, "val_accuracy",
                            "max", tested=False)
    assert "its val_accuracy 0.914 is the maximum over 2 seeds, biased high" in note
    assert note.endswith("; `regcli test` on it, once, gives the number to report.")
    one = {**winner, "n_completed": 1, "val_data_loss_std": None}
    assert shipped_run_note(one, shipped, "val_data_loss", "min", tested=True) is None  # nothing was chosen


def test_split_seed_fixed_reads_the_resolved_base_and_the_knobs(tmp_path):
    assert split_seed_fixed(load_sweep(write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3]}}))) is False
    fixed = {**BASE, "data": {"source": "breast_cancer", "split_seed": 0}}
    assert split_seed_fixed(load_sweep(helpers.write_sweep(tmp_path, {"params": {"model.l2": [0.0]}}, base=fixed)))
    swept = write_sweep(tmp_path, {"params": {"data.split_seed": [0, 1]}})
    assert split_seed_fixed(load_sweep(swept)) is True  # fixed within each configuration


@pytest.mark.slow
def test_a_real_sweep_without_split_seed_writes_the_decomposition_and_the_shipped_note(tmp_path):
    # 2 configurations x 2 seeds, 2 epochs, one worker: about 15 s on 2 cores, most of it TensorFlow's import.
    path = write_sweep(tmp_path, {"params": {"model.dropout": [0.0, 0.3]}, "seeds": [0, 1], "final_test": False})
    result = run_sweep(prepare_sweep(path, out=tmp_path / "runs", jobs=1))
    best = json.loads((result.sweep_dir / store.BEST).read_text())
    results = pd.read_csv(result.sweep_dir / store.RESULTS)
    assert set(results["status"]) == {"completed"}
    d = best["variance"]
    again = decompose(results, "val_data_loss")  # results.csv gives the same decomposition
    for key in ("config_share", "seed_share", "residual_share", "config_spread", "seed_spread"):
        assert d[key] == pytest.approx(again[key]), key
    assert (d["metric"], d["n_configs"], d["n_seeds"], d["balanced"]) == ("val_data_loss", 2, 2, True)
    assert d["config_share"] + d["seed_share"] + d["residual_share"] == pytest.approx(1.0)
    assert d["contenders"] is None  # 2 configurations: both are in the race
    note = best["shipped_run_note"]
    assert note.startswith(f"The shipped run {best['shipped_run']} is the winner's luckiest seed (seed ")
    assert f"is the minimum over 2 seeds, biased low. The configuration's mean {best['mean']:.4g} ± " in note
    assert note in best["notes"] and note in result.notes
    seeds_notes = [n for n in best["notes"] if n.startswith("Seeds explain")]
    assert all("Set data.split_seed in the base spec" in n for n in seeds_notes)  # this base has none
