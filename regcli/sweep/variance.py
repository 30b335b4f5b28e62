"""How much of a sweep's spread is the seeds' and how much the configurations': a two-way
variance decomposition of the selection metric (pure: pandas and numpy, no TensorFlow).

When the base spec leaves `data.split_seed` null, each seed draws its own train/val split,
and the seed can move the validation metric far more than the knobs do (measured on
`configs/sweep_l2_dropout.yaml` without a split seed: seed means 0.12 and 0.35 in
validation error, the configurations within 0.01 of each other). `decompose` says so in
numbers (`sweep_variance`: over every trial and over the contenders), `variance_note` in a
sentence; `regcli.sweep.aggregate` puts both in best.json (`variance`, `notes`).

The model is additive, `value = grand mean + config effect + seed effect + residual`, fitted
by least squares, so a failed trial (a missing cell) still gives the other cells' effects.
The residual holds the config x seed interaction: with one trial per cell the two cannot be
told apart. A factor's sum of squares is the drop in residual sum of squares when it joins
the model beside the other ("type II"): in a balanced table (every configuration on every
seed) that is the classic two-way ANOVA and the three shares sum to 1; with a missing trial
they may not, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from regcli.values import finite_float


def decompose(results: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    """Splits the variance of `metric` over trials into a configuration, a seed and a residual share.

    Each share is a sum of squares (type II: what a factor explains beyond the other) over the
    total sum of squares around the grand mean; balanced, the three sum to 1. The means behind
    the spreads are the additive model's (a configuration's fitted value averaged over every
    seed): the plain means when balanced, and with a missing trial they do not blame a
    configuration for the seed it lacks.

    Args:
        results: one row per trial with columns `config`, `seed` and `metric` (and, when
            present, `status`: only `completed` rows count). Rows whose value is missing,
            NaN or infinite are left out, as a failed trial is.
        metric: the column to decompose (the sweep's `select.metric`).

    Returns:
        A JSON-able dict (`metric`, `n_configs`, `n_seeds`, `n_trials`, `balanced`,
        `config_share`, `seed_share`, `residual_share`, `config_spread`, `seed_spread`,
        `config_means`, `seed_means`, `config_means_range`, `seed_means_range`), or None when
        there is nothing to decompose: fewer than 2 seeds with a value, a total variance of
        0, or trials so scattered that config and seed effects cannot be told apart
        (configuration A only on seed 0, B only on seed 1).

    Example:
        >>> table = pd.DataFrame({"config": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
        ...                       "val_error": [0.1, 0.3, 0.1, 0.3]})
        >>> decompose(table, "val_error")["seed_share"]  # the seed moves it by 0.2, the config not at all
        1.0
    """
    cells = _cells(results, metric)
    if cells is None:
        return None
    configs, seeds = list(dict.fromkeys(cells["config"])), sorted(set(cells["seed"]))
    y = cells["value"].to_numpy(dtype=float)
    total = float(((y - y.mean()) ** 2).sum())
    c = np.array([configs.index(v) for v in cells["config"]])
    s = np.array([seeds.index(v) for v in cells["seed"]])
    fitted = _additive_fits(c, s, len(configs), len(seeds), y)
    if total <= 0 or fitted is None:
        return None  # all equal: no variance to share; or effects confounded: no unique split
    rss_full, rss_seeds_only, rss_configs_only, grid = fitted
    config_means, seed_means = grid.mean(axis=1), grid.mean(axis=0)
    return {
        "metric": metric,
        "n_configs": len(configs),
        "n_seeds": len(seeds),
        "n_trials": len(y),
        "balanced": len(y) == len(configs) * len(seeds),
        "config_share": _share(rss_seeds_only - rss_full, total),
        "seed_share": _share(rss_configs_only - rss_full, total),
        "residual_share": _share(rss_full, total),
        "config_spread": _std(config_means),
        "seed_spread": _std(seed_means),
        "config_means": {str(k): float(v) for k, v in zip(configs, config_means, strict=True)},
        "seed_means": {str(k): float(v) for k, v in zip(seeds, seed_means, strict=True)},
        "config_means_range": [float(config_means.min()), float(config_means.max())],
        "seed_means_range": [float(seed_means.min()), float(seed_means.max())],
    }


def sweep_variance(results: pd.DataFrame, metric: str, mode: str) -> dict[str, Any] | None:
    """best.json's `variance`: `decompose` over every completed trial, plus `contenders`, the same
    over the better half of the configurations (None below 4 configurations).

    The contenders are what the winner is picked from. A hopeless configuration carries the
    configuration share over all trials without being in the race: in
    `configs/sweep_l2_dropout.yaml` without a split seed, the three l2 = 1 configurations sit at
    the majority class (val_error 0.5 on every seed): over all 15 configurations, seeds explain 42%
    of the val_data_loss variance and configurations 39%; over the best 8, 53% and 25% (val_error:
    35% and 49% over all, 98% and 0.7% over its best 8).

    Args:
        results: one row per trial, as `decompose` takes it.
        metric: the selection metric.
        mode: `min` or `max`, which configurations are the better ones.
    """
    overall = decompose(results, metric)
    if overall is None:
        return None
    top = _better_half(results, metric, mode)
    overall["contenders"] = decompose(results[results["config"].isin(top)], metric) if top else None
    return overall


def variance_note(decomposition: Mapping[str, Any] | None, *, split_fixed: bool) -> str | None:
    """A note when the seeds clearly move the selection metric more than the configurations do.

    It reads the contenders' decomposition when there is one (4+ configurations), else the one
    over every trial. "Clearly": the seeds' share of the variance is larger than the
    configurations', and so is the spread (std) of the seed means against that of the
    configuration means. Without a fixed `data.split_seed` the seed also draws the split, and
    the note says to fix it; with it, the seeds' share is initialisation noise. None otherwise,
    and for one configuration.
    """
    d = (decomposition or {}).get("contenders") or decomposition
    if not d or d["n_configs"] < 2 or d["config_spread"] is None:
        return None
    if not (d["seed_share"] > d["config_share"] and d["seed_spread"] > d["config_spread"]):
        return None
    (s_lo, s_hi), (c_lo, c_hi) = d["seed_means_range"], d["config_means_range"]
    among = "S" if d is decomposition else f"Among the {d['n_configs']} best of {decomposition['n_configs']} configurations, s"
    head = (
        f"{among}eeds explain {d['seed_share']:.0%} of the variance of {d['metric']}, configurations "
        f"{d['config_share']:.0%} (seed means span {s_lo:.3g}–{s_hi:.3g}, configuration means {c_lo:.3g}–{c_hi:.3g})"
    )
    if not split_fixed:
        return (
            f"{head}: the split each seed draws decides more than the knobs do. Set data.split_seed in the base "
            f"spec so every seed trains on the same split, and the comparison measures the knobs."
        )
    return (
        f"{head}: data.split_seed holds the split fixed, so this is initialisation noise (initial weights, batch "
        f"order, dropout), and it is larger than the differences between the configurations. Add seeds, or treat "
        f"the configurations as tied within noise."
    )


def _better_half(results: pd.DataFrame, metric: str, mode: str) -> list[Any] | None:
    """The better half (rounded up) of the configurations by their mean over completed seeds; None
    below 4 configurations, where half would be 1 and leave nothing to compare."""
    cells = _cells(results, metric)
    if cells is None:
        return None
    means = cells.groupby("config", sort=False)["value"].mean().sort_values(ascending=mode == "min")
    if len(means) < 4:
        return None
    return list(means.index[: math.ceil(len(means) / 2)])


def _cells(results: pd.DataFrame, metric: str) -> pd.DataFrame | None:
    """One finite value per (config, seed), in the table's order; None for fewer than 2 seeds."""
    if results.empty or metric not in results:
        return None
    rows = results[results["status"] == "completed"] if "status" in results else results
    values = [finite_float(v) for v in rows[metric]]
    table = pd.DataFrame({"config": list(rows["config"]), "seed": list(rows["seed"]), "value": values}).dropna()
    # A (config, seed) pair appears once in a sweep; were it repeated, its mean is the cell's value.
    table = table.groupby(["config", "seed"], sort=False, as_index=False)["value"].mean()
    if table["seed"].nunique() < 2:
        return None  # one seed: seed and residual are the same thing, there is nothing to split
    return table


def _design(c: np.ndarray, s: np.ndarray, n_c: int, n_s: int, with_configs: bool, with_seeds: bool) -> np.ndarray:
    """The additive model's design matrix: an intercept, then one indicator per configuration and
    per seed after the first (the first is the baseline)."""
    columns = [np.ones(len(c))]
    if with_configs:
        columns += [(c == i).astype(float) for i in range(1, n_c)]
    if with_seeds:
        columns += [(s == j).astype(float) for j in range(1, n_s)]
    return np.column_stack(columns)


def _additive_fits(
    c: np.ndarray, s: np.ndarray, n_c: int, n_s: int, y: np.ndarray
) -> tuple[float, float, float, np.ndarray] | None:
    """The residual sums of squares of the full additive model, of seeds only and of configurations
    only, and the full model's grid of fitted values; None when the full design is rank-deficient
    (trials so scattered that a configuration's effect and a seed's are the same column)."""
    beta, rss_full, rank = _fit(_design(c, s, n_c, n_s, True, True), y)
    if rank < n_c + n_s - 1:
        return None
    _, rss_seeds_only, _ = _fit(_design(c, s, n_c, n_s, False, True), y)
    _, rss_configs_only, _ = _fit(_design(c, s, n_c, n_s, True, False), y)
    return rss_full, rss_seeds_only, rss_configs_only, _fitted_grid(beta, n_c, n_s)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Least squares: the coefficients, the residual sum of squares and the design's rank."""
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ beta
    return beta, float(residual @ residual), int(rank)


def _fitted_grid(beta: np.ndarray, n_c: int, n_s: int) -> np.ndarray:
    """The full additive model's value for every (config, seed) pair, trained or not: rows are
    configurations, columns seeds."""
    config_effect = np.concatenate([[0.0], beta[1:n_c]])
    seed_effect = np.concatenate([[0.0], beta[n_c : n_c + n_s - 1]])
    return beta[0] + config_effect[:, None] + seed_effect[None, :]


def _share(sum_of_squares: float, total: float) -> float:
    """A sum of squares as a share of the total, rounded to 12 decimals: least squares leaves
    about 1e-16 of the total where the exact value is 0 (1e-31 for an effect that is not there)."""
    return round(max(0.0, sum_of_squares) / total, 12)


def _std(means: np.ndarray) -> float | None:
    """The sample standard deviation (ddof 1, as the leaderboard's `_std` over seeds); None for one mean."""
    return float(np.std(means, ddof=1)) if len(means) > 1 else None
