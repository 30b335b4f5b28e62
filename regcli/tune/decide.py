"""The tune's decisions, pure: which recommendations become candidates, and whether one beats the incumbent.

Nothing here reads or writes a file or trains: the loop (`regcli.tune.loop`) hands in plain
numbers and diagnosis dicts, so every rule is tested on hand-written tables.

- `consensus`: which seed's diagnosis speaks for a configuration (the most common verdict);
- `candidates`: the diagnosis's recommendations that can be applied as one `--set knob=value`;
- `paired_comparison`: the seed-noise rule (the advice benchmark's): a candidate beats the
  incumbent when its mean validation data loss is lower by more than 2 x the paired standard
  error of the per-seed differences; with one seed, a strictly lower value (no noise estimate);
  and in both cases by at least 1% of the incumbent's mean: a consistent but negligible gain
  (L2 0 -> 1e-4 lowering the loss by 0.1%) is not worth a knob turned and a step spent;
- `choose`: of the batch's candidates that pass that rule, the one with the lowest mean.

Example:

>>> paired_comparison({0: 0.50, 1: 0.52, 2: 0.49}, {0: 0.41, 1: 0.44, 2: 0.40}).beats
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

NOISE_FACTOR = 2.0  # beyond noise: a mean gain larger than 2 paired standard errors (about a 95% one-sided margin)
MIN_RELATIVE_GAIN = 0.01  # and worth it: a gain under 1% of the incumbent's mean is real at best, not useful
CANDIDATES_PER_BATCH = 2  # the top 2 recommendations are trained together; the 3rd only if neither helps
# Knobs tune never turns: they change the problem (the data, its split, its labels), not the model.
FIXED_PREFIXES = ("data.", "seed", "name", "diagnosis.")
# An explicit model.layers list changes as a whole: no single --set override applies it.
LAYERS_KNOB = "model.layers"


def yaml_value(value: Any) -> str:
    """A value as `--set` parses it: `0.001`, `1.0e-05`, `[16, 16]`, `true`."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text.removesuffix("...").strip()


def consensus(verdicts: Sequence[str]) -> int:
    """The index of the seed run whose diagnosis speaks for the configuration.

    The most common verdict over the seeds wins (one unlucky seed does not steer the tune);
    among equally common verdicts, and among the runs with the winning verdict, the first
    seed in order. Deterministic: the same verdicts give the same index.

    >>> consensus(["high_variance", "good_fit", "good_fit"])
    1
    """
    if not verdicts:
        raise ValueError("consensus needs at least one verdict.")
    counts = Counter(verdicts)
    top = max(counts.values())
    return next(i for i, v in enumerate(verdicts) if counts[v] == top)


@dataclass(frozen=True)
class Candidate:
    """One recommendation as a change: `knob` from `old` to `new`, and the recommendation's text."""

    knob: str
    old: Any
    new: Any
    text: str


@dataclass(frozen=True)
class Skipped:
    """A recommendation that names a knob but is not tried, and why."""

    knob: str
    old: Any
    new: Any
    why: str


def candidates(recommendations: Sequence[Mapping[str, Any]]) -> tuple[list[Candidate], list[Skipped]]:
    """The recommendations tune can apply, in the diagnosis's order, and those it skips.

    A recommendation without a knob (ship it, get more data) is advice, not a change: it is
    neither. `model.layers` cannot be set by one override, and `data.*` knobs change the problem
    itself (tuning the labels or the split away is not regularization): those are skipped.
    """
    chosen, skipped = [], []
    for rec in recommendations:
        knob = rec.get("knob")
        if not knob:
            continue
        old, new = rec.get("from"), rec.get("to")
        if knob == LAYERS_KNOB or knob.startswith(LAYERS_KNOB + "."):
            skipped.append(Skipped(knob, old, new, f"not tried: {rec.get('text', knob)} — a change inside "
                                   f"model.layers is not one --set override; apply it by hand"))
        elif knob.startswith(FIXED_PREFIXES):
            skipped.append(Skipped(knob, old, new, f"not tried: {knob} changes the data, not the model; "
                                   f"tune keeps the problem fixed"))
        else:
            chosen.append(Candidate(knob, old, new, str(rec.get("text") or knob)))
    return chosen, skipped


@dataclass(frozen=True)
class Comparison:
    """A candidate against the incumbent, paired over the seeds both completed.

    Attributes:
        n: seeds compared.
        gain: mean of (incumbent - candidate) over those seeds; > 0: the candidate is lower (better).
        se: the paired standard error of the gain (None with one seed).
        beats: whether the gain is beyond seed noise.
        why: the sentence steps.csv shows.
    """

    n: int
    gain: float | None
    se: float | None
    beats: bool
    why: str


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def paired_comparison(incumbent: Mapping[int, float | None], candidate: Mapping[int, float | None],
                      metric: str = "val_data_loss") -> Comparison:
    """Whether `candidate` beats `incumbent` beyond seed noise (lower is better).

    Args:
        incumbent: seed -> the incumbent's value (None: that seed did not complete).
        candidate: seed -> the candidate's value, for the same seeds.
        metric: named in `why`. Defaults to `"val_data_loss"`.

    A candidate seed that did not complete (failed, diverged: None or not finite) rejects it.
    """
    seeds = list(incumbent)
    missing = [s for s in seeds if not _finite(candidate.get(s))]
    if missing:
        return Comparison(0, None, None, False, f"rejected: seed(s) {', '.join(map(str, missing))} did not "
                          f"complete (failed or diverged)")
    pairs = [(float(incumbent[s]), float(candidate[s])) for s in seeds if _finite(incumbent[s])]
    if not pairs:
        return Comparison(0, None, None, False, "rejected: the incumbent has no completed seed to compare with")
    diffs = [a - b for a, b in pairs]
    n, gain = len(diffs), sum(diffs) / len(diffs)
    se = None if n == 1 else math.sqrt(sum((d - gain) ** 2 for d in diffs) / (n - 1)) / math.sqrt(n)
    if se is None:
        beyond_noise = gain > 0
        noise = (f"{metric} {'lower' if beyond_noise else 'not lower'} by {_fmt(gain)} on the one seed "
                 f"(one seed: no noise estimate, a strictly lower value wins)")
    else:
        beyond_noise = gain > NOISE_FACTOR * se and gain > 0
        noise = (f"{metric} gain {_fmt(gain)} {'>' if beyond_noise else '<='} {NOISE_FACTOR:g} x paired SE "
                 f"{_fmt(se)} over {n} seeds")
    incumbent_mean = sum(a for a, _ in pairs) / n
    floor = MIN_RELATIVE_GAIN * abs(incumbent_mean)
    if beyond_noise and gain < floor:
        return Comparison(n, gain, se, False, f"too small to be worth a step: {noise}, but the gain is "
                          f"{gain / abs(incumbent_mean):.1%} of the incumbent's {_fmt(incumbent_mean)} "
                          f"(under {MIN_RELATIVE_GAIN:.0%})")
    if se is None:
        return Comparison(1, gain, None, beyond_noise, f"{'accepted' if beyond_noise else 'rejected'}: {noise}")
    verb = "beats the incumbent" if beyond_noise else "not beyond seed noise"
    return Comparison(n, gain, se, beyond_noise, f"{verb}: {noise}")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the finite values (std None with fewer than 2)."""
    xs = [float(v) for v in values if _finite(v)]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def choose(incumbent: Mapping[int, float | None], batch: Sequence[Mapping[int, float | None]],
           metric: str = "val_data_loss") -> tuple[int | None, list[Comparison]]:
    """The index of the accepted candidate of `batch` (or None) and every candidate's comparison.

    Among the candidates that beat the incumbent beyond noise, the one with the lowest mean over
    the seeds is accepted (ties: the earlier, i.e. the diagnosis's order). A noisier candidate
    with a lower mean that does not pass the rule does not block one that does: one knob per
    step, the best one that is clearly better.
    """
    comparisons = [paired_comparison(incumbent, values, metric) for values in batch]
    passing = [i for i, c in enumerate(comparisons) if c.beats]
    if not passing:
        return None, comparisons
    return min(passing, key=lambda i: (mean_std(list(batch[i].values()))[0], i)), comparisons


def fits_in_budget(n_candidates: int, n_seeds: int, remaining: int) -> int:
    """How many of `n_candidates` (each trained over `n_seeds`) fit in `remaining` trials."""
    if n_seeds <= 0:
        return 0
    return max(0, min(n_candidates, remaining // n_seeds))
