"""diagnosis.md, and numbers as people write them (`fmt`: 1e-4, 0.2, 0.0351)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# The evidence table of diagnosis.md: evidence key, row label; rows whose value is None are left out.
TABLE = (
    ("train_error", "clean train error (shipped epoch)"),
    ("train_error_se", "… its standard error"),
    ("val_error", "validation error (shipped epoch)"),
    ("val_error_se", "… its standard error"),
    ("target_error", "target error"),
    ("avoidable_bias", "avoidable bias = train − target"),
    ("gap", "variance = val − train"),
    ("gap_se", "… its standard error"),
    ("n_val_to_resolve_gap_tolerance", "validation rows that would resolve gap_tolerance"),
    ("baseline_val_error", "majority-class / mean predictor val error"),
    ("shipped_epoch", "shipped epoch"),
    ("best_epoch", "best epoch"),
    ("epochs_run", "epochs run"),
    ("val_curve_best_epoch", "validation curve minimum at epoch"),
    ("val_rise_after_best", "validation rise after its minimum"),
    ("val_rise_after_best_rel", "… relative"),
    ("gap_open_epoch", "gap started to open at epoch"),
    ("gap_over_tolerance_since", "gap above tolerance since epoch"),
    ("still_improving", "training loss still improving at the end"),
    ("val_noise", "validation noise (std of epoch-to-epoch change)"),
    ("recent_mean_improvement", "recent mean improvement per epoch"),
    ("min_delta", "early stopping min_delta"),
    ("n_val", "validation rows"),
    ("metric_granularity", "one validation sample moves accuracy by"),
    ("penalty_share", "penalty share of the loss"),
    ("penalty_share_peak", "largest penalty share during training"),
    ("penalty_share_peak_epoch", "… at epoch"),
    ("over_regularized", "over-regularized"),
    ("doubling_epochs_gain", "projected val loss gain from doubling the epochs"),
)


def train_error_label(ev: Mapping[str, Any]) -> str:
    """"clean train error", or "as-trained train error" where only the as-trained metric was recorded."""
    as_trained = ev.get("train_error_source") == f"history.{ev.get('metric')}"
    return "as-trained train error" if as_trained else "clean train error"


def more_validation(ev: Mapping[str, Any]) -> tuple[str, str]:
    """(what to raise, what to hold fixed) when the validation set is too small: regcli's keys, or a Keras log's."""
    if ev.get("history_source"):
        return "the validation split of model.fit", "the same validation split"
    return "data.val_fraction", "a fixed data.split_seed"


def fmt(x: Any) -> str:
    """Numbers as people write them: 1e-4, 0.2, 0.0351; None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float, np.number)):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x != 0 and abs(x) < 1e-2:
        mantissa, exponent = f"{x:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:.3g}"


def render_markdown(diagnosis: Mapping[str, Any], summary: Mapping[str, Any] | None = None) -> str:
    """diagnosis.md, the answer first: verdict, headline, recommendations, warnings; then the evidence."""
    ev = diagnosis.get("evidence", {}) or {}
    verdict = diagnosis.get("verdict", "unknown")
    lines = [f"# Diagnosis: {verdict.replace('_', ' ')}", ""]
    if diagnosis.get("headline"):
        lines += [f"**{diagnosis['headline']}**", ""]
    lines += ["## Recommendations", "", *_recommendation_lines(diagnosis.get("recommendations") or [])]
    warnings = diagnosis.get("warnings") or []
    if warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"- **{w['code']}**: {w['text']}" for w in warnings]
    lines += ["", "## Evidence", ""]
    if ev.get("verdict_reason"):
        lines += [ev["verdict_reason"][0].upper() + ev["verdict_reason"][1:], ""]
    for key, label in (("resolution_note", "Uncertainty."), ("curve_reading", "Learning curve.")):
        if ev.get(key):
            lines += [f"**{label}** {ev[key]}", ""]
    run_line = _run_line(summary)
    if run_line:
        lines += [run_line, ""]
    lines += ["| quantity | value |", "|---|---|", *_evidence_rows(ev)]
    return "\n".join(lines) + "\n"


def _run_line(summary: Mapping[str, Any] | None) -> str | None:
    """`Run: monitor `val_loss`, best epoch 12 of 20, stopped early.`, or None with nothing to say."""
    if not summary:
        return None
    bits = [f"monitor `{summary.get('monitor')}`"] if summary.get("monitor") else []
    if summary.get("best_epoch") is not None:
        bits.append(f"best epoch {summary['best_epoch']} of {summary.get('epochs_run', '?')}")
    if summary.get("stopped_early") is not None:
        bits.append("stopped early" if summary["stopped_early"] else "ran all epochs")
    return "Run: " + ", ".join(bits) + "." if bits else None


def _evidence_rows(ev: Mapping[str, Any]) -> list[str]:
    rows = []
    for key, label in TABLE:
        if key in ev and ev[key] is not None:
            value = f"{ev[key]:.1%}" if key == "val_rise_after_best_rel" else fmt(ev[key])
            rows.append(f"| {label} | {value} |")
    return rows


def _recommendation_lines(recs: list[Mapping[str, Any]]) -> list[str]:
    lines = []
    for i, rec in enumerate(recs, 1):
        knob = f" (`{rec['knob']}`: {fmt(rec.get('from'))} → {fmt(rec.get('to'))})" if rec.get("knob") else ""
        lines.append(f"{i}. {rec['text']}{knob}")
    return lines or ["None."]
