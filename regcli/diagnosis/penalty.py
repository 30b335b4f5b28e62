"""What the L1/L2 penalty did to the weights: the evidence that names over-regularization.

The penalty's share of the loss at the shipped epoch cannot see a penalty that has won: once
the weights are crushed to ~0 the penalty is ~0 too (measured: digits, L2 1.0 on every kernel,
val error 0.90, final share 4e-4). So the diagnosis looks at what the penalty did:

- `penalty_share_peak`: the largest share of the (clean, inference-mode) training loss the
  penalty had at any epoch, from history.csv (`clean_loss − clean_data_loss`). Above
  `max_penalty_share` the optimizer spent those epochs shrinking weights, not fitting;
- `collapsed_layers`: penalized layers whose RMS weight is below `COLLAPSED_RMS` (Glorot's
  initial RMS is sqrt(2 / (fan_in + fan_out)), ≥ 0.03 even for two 1024-unit layers), or,
  under L1, whose weights are nearly all below 1e-3 (`near_zero_fraction` > `SPARSE_COLLAPSE`);
- `near_constant_predictions`: a classifier whose clean training data loss is within 10% of
  the constant predictor's (the entropy of the training class frequencies).

`over_regularized` is read with the verdict: it names the penalty as the fault only when the
model underfits (high bias, or not learning) and one of the above holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from regcli import dotted
from regcli.diagnosis.inputs import Run
from regcli.values import finite_float

COLLAPSED_RMS = 0.01  # RMS |w| below this in a penalized layer: crushed (init RMS is >= 0.03)
SPARSE_COLLAPSE = 0.9  # under L1, more than 90% of a layer's weights below 1e-3: pruned away
NEAR_CONSTANT = 0.9  # clean training data loss >= 90% of the constant predictor's: predicts ~one class


def penalty_evidence(run: Run, train_data_loss: float | None) -> dict[str, Any]:
    """The peak penalty share, the collapsed layers and whether predictions are near constant."""
    peak, peak_epoch = _peak_share(run.history)
    constant = _constant_loss(run)
    return {
        "penalty_share_peak": peak,
        "penalty_share_peak_epoch": peak_epoch,
        "collapsed_layers": _collapsed_layers(run),
        "constant_predictor_loss": constant,
        "near_constant_predictions": (
            None
            if constant is None or train_data_loss is None
            else bool(train_data_loss >= NEAR_CONSTANT * constant)
        ),
    }


def over_regularized(run: Run, ev: Mapping[str, Any], underfits: bool) -> list[str]:
    """The signs that the penalty is the fault, as short clauses; empty when it is not.

    Only a model that underfits (and has a penalty) can be over-regularized: a model that fits
    has a small data loss, so any penalty is a large share of it without having won.
    """
    if not underfits or not run.has_penalty():
        return []
    most = run.th["max_penalty_share"]
    signs = []
    share, peak = ev.get("penalty_share"), ev.get("penalty_share_peak")
    if share is not None and share > most:
        signs.append(f"the penalty is {share:.0%} of the loss at the shipped epoch")
    elif peak is not None and peak > most:
        signs.append(f"the penalty was {peak:.0%} of the loss at epoch {ev['penalty_share_peak_epoch']}")
    if ev.get("collapsed_layers"):
        signs.append(f"the weights of {', '.join(ev['collapsed_layers'])} collapsed towards 0")
    if signs and ev.get("near_constant_predictions"):
        signs.append("the predictions are nearly constant")
    return signs


def _peak_share(h: pd.DataFrame) -> tuple[float | None, int | None]:
    """(largest penalty share of the loss over the epochs, its epoch), clean columns first."""
    for total, data in (("clean_loss", "clean_data_loss"), ("loss", "data_loss")):
        if total in h.columns and data in h.columns:
            loss = pd.to_numeric(h[total], errors="coerce").to_numpy(dtype=float)
            data_loss = pd.to_numeric(h[data], errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):  # a diverged run's NaN/inf epochs
                share = np.where(loss > 0, (loss - data_loss) / loss, np.nan)
            share[~np.isfinite(share)] = np.nan
            if np.isfinite(share).any():
                i = int(np.nanargmax(share))
                return float(min(max(share[i], 0.0), 1.0)), int(h["epoch"].iloc[i])
    return None, None


def _collapsed_layers(run: Run) -> list[str]:
    """Penalized layers (by weight_stats name) whose weights the penalty crushed."""
    stats = run.summary.get("weight_stats") or {}
    if not isinstance(stats, Mapping) or not run.has_penalty():
        return []
    l1 = run.kernel_l1() > 0
    collapsed = []
    for name, layer in stats.items():
        if not isinstance(layer, Mapping) or not _penalized(run, str(name)):
            continue
        l2_norm, n = finite_float(layer.get("l2_norm")), layer.get("n_weights")
        rms = l2_norm / math.sqrt(n) if l2_norm is not None and n else None
        sparse = finite_float(layer.get("near_zero_fraction"))
        if (rms is not None and rms < COLLAPSED_RMS) or (l1 and sparse is not None and sparse > SPARSE_COLLAPSE):
            collapsed.append(str(name))
    return collapsed


def _penalized(run: Run, layer_name: str) -> bool:
    """Whether this kernel carries an L1/L2 penalty: the output layer only under `output_l2`."""
    if run.layers is not None:
        return True  # explicit layers: the largest factor applies somewhere; names do not map back
    if layer_name == "output":
        return (finite_float(run.cfg("model.output_l2")) or 0.0) > 0
    return run.kernel_l1() > 0 or run.kernel_l2() > 0


def _constant_loss(run: Run) -> float | None:
    """The cross-entropy of always predicting the training class frequencies; None for regression."""
    if run.task == "regression":
        return None
    counts = dotted.get(run.summary, "data.class_counts.train")
    if not isinstance(counts, Mapping) or not counts:
        return None
    n = np.array([float(c) for c in counts.values() if finite_float(c)], dtype=float)
    p = n[n > 0] / n.sum() if n.sum() > 0 else np.array([])
    return float(-(p * np.log(p)).sum()) if len(p) else None
