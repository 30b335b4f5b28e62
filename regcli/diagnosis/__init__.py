"""Bias/variance diagnosis of a finished run, from its history and summary alone (SPEC §5.7).

`diagnose(history, summary, config)` compares the clean training error, the validation
error and the target error, reads the learning curve (where validation bottomed out,
whether it rose afterwards, whether training was still improving, how noisy validation
is), and returns a verdict, the evidence, recommendations that each turn ONE knob to a
concrete value computed from the config, and warnings for the classic regularization
traps. `render_markdown` turns the result into diagnosis.md.

The steps, one module each, in the order `diagnose` runs them:

- `inputs`: the run's history, summary and config, normalized once (`Run`, `DEFAULTS`);
- `evidence`: the errors at the shipped epoch and the learning curve, read;
- `verdict`: the verdict and the sentence that says why;
- `recommend`: one knob per recommendation, per verdict;
- `warnings`: the classic regularization traps;
- `render`: diagnosis.md.

Pure numpy/pandas: no TensorFlow or Keras import and no disk, so `regcli diagnose` stays
instant. The early-stopping replay lives in `regcli.replay`.

Example:

>>> result = diagnose(history, summary, config)  # doctest: +SKIP
>>> result["verdict"], result["recommendations"][0]["text"]  # doctest: +SKIP
('high_variance', 'raise model.dropout from 0.2 to 0.3 ...')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from regcli.diagnosis.evidence import read_evidence
from regcli.diagnosis.inputs import DEFAULTS, Run
from regcli.diagnosis.recommend import recommendations
from regcli.diagnosis.render import render_markdown
from regcli.diagnosis.verdict import VERDICTS, read_verdict, verdict_reason
from regcli.diagnosis.warnings import traps
from regcli.rundir import jsonable

__all__ = ["DEFAULTS", "VERDICTS", "diagnose", "render_markdown"]


def diagnose(
    history: pd.DataFrame | None,
    summary: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    *,
    run_dir: str | None = None,
) -> dict[str, Any]:
    """Diagnoses one run: verdict, evidence, recommendations and warnings.

    The verdict is `diverged` when the run's state is diverged or a loss is NaN/inf;
    `not_learning` when the validation error is no better than `baseline_val_error`
    (the majority-class or mean predictor) within `not_learning_margin`; otherwise
    `high_bias` when avoidable bias (clean train error − target error) exceeds
    `bias_tolerance`, `high_variance` when the gap (val error − clean train error)
    exceeds `gap_tolerance`, both → `high_bias_and_variance`, neither → `good_fit`.

    Args:
        history: One row per epoch (history.csv). Clean columns may be missing; values may be NaN.
        summary: summary.json plus `task`, `state`, `baseline_val_error`, `n_classes`.
        config: The fully resolved experiment spec as a plain dict.
        run_dir: Named in the "ship it" recommendation. Defaults to `None` ("RUN_DIR").

    Returns:
        A JSON-able dict with `verdict`, `headline`, `evidence`, `recommendations` (dicts with
        `knob`, `from`, `to`, `text`) and `warnings` (dicts with `code`, `text`).
    """
    run = Run.build(history, summary, config, run_dir)
    ev = read_evidence(run)
    verdict = read_verdict(run, ev)
    ev["verdict_reason"] = verdict_reason(verdict, ev)
    return jsonable(
        {
            "verdict": verdict,
            "headline": f"{verdict.replace('_', ' ').capitalize()} — {ev['verdict_reason']}",
            "evidence": ev,
            "recommendations": recommendations(run, ev, verdict),
            "warnings": run.warnings + traps(run, ev, verdict),
        }
    )
