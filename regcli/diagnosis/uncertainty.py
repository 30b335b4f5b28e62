"""The sampling uncertainty of the errors a diagnosis compares, and whether a side is clearly high.

An error measured on n rows is an estimate: on the 150-row overfit demo one validation sample
moves the error by 0.0067, and a training error of 0.053 on 150 rows is 0.053 ± 0.018. A side
(avoidable bias, or the gap) is called high only when its excess over the tolerance is more
than `Z` standard errors: an excess of 0.003 over a 0.05 tolerance is then "within noise",
not high bias.

- Error rates (classification) get the Agresti-Coull standard error: the binomial one with
  z²/2 pseudo-successes and failures, so an error of 0 on 341 rows is not "exactly 0 ± 0".
- A mean absolute error gets `MAE_SPREAD * mae / sqrt(n)`: the standard error of a mean of
  |residuals| when the residuals are normal (std(|e|) = sqrt(π/2 − 1) · mean(|e|)). regcli
  records no residuals, so this is an approximation, said so in the evidence.
- The gap (val − train) adds both errors' variances: the two splits are disjoint samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z = 2.0  # "clearly": an excess beyond two standard errors (~95% one-sided 97.7%)
Z_AC = 1.96  # the Agresti-Coull interval's own z: its pseudo-counts z²/2
MAE_SPREAD = math.sqrt(math.pi / 2 - 1)  # std(|e|) / mean(|e|) for normal residuals: 0.755


def error_se(metric: str, error: float | None, n: Any) -> float | None:
    """The standard error of an error measured on `n` rows; None when either is unknown."""
    if error is None or not n or int(n) <= 0:
        return None
    n = int(n)
    if metric == "mae":
        return MAE_SPREAD * abs(error) / math.sqrt(n)
    n_adj = n + Z_AC**2
    p = (min(max(error, 0.0), 1.0) * n + Z_AC**2 / 2) / n_adj
    return math.sqrt(p * (1 - p) / n_adj)


def combined_se(*ses: float | None) -> float | None:
    """The standard error of a sum or difference of independent estimates; None if one is unknown."""
    if any(se is None for se in ses):
        return None
    return math.sqrt(sum(se**2 for se in ses))


@dataclass(frozen=True)
class Side:
    """One side of the bias/variance test: its value, tolerance and standard error, judged.

    `high` only when the excess over the tolerance is more than `Z` standard errors;
    `within_noise` when the value is over the tolerance but not clearly (the verdict then
    does not act on it, and the evidence says so).
    """

    value: float | None
    tolerance: float
    se: float | None
    eps: float = 1e-9

    @property
    def excess(self) -> float | None:
        return None if self.value is None else self.value - self.tolerance

    @property
    def over(self) -> bool:
        return self.excess is not None and self.excess > self.eps

    @property
    def high(self) -> bool:
        return self.over and self.excess > Z * (self.se or 0.0) + self.eps

    @property
    def within_noise(self) -> bool:
        return self.over and not self.high

    @property
    def resolution(self) -> float | None:
        """The smallest excess this many rows can tell from noise: `Z` standard errors."""
        return None if self.se is None else Z * self.se


def clearly_larger(a: float | None, b: float | None, se: float | None) -> bool:
    """Whether `a` exceeds `b` by more than `Z` standard errors of their difference."""
    if a is None or b is None:
        return False
    return a - b > Z * (se or 0.0)


def rows_to_resolve(metric: str, error: float | None, tolerance: float) -> int | None:
    """Validation rows needed for `Z` standard errors of `error` to fit inside `tolerance`."""
    if error is None or tolerance <= 0:
        return None
    if metric == "mae":
        return math.ceil((Z * MAE_SPREAD * abs(error) / tolerance) ** 2 - 1e-9)
    p = min(max(error, 0.01), 0.99)
    return math.ceil(Z**2 * p * (1 - p) / tolerance**2 - 1e-9)  # 900.0000000001 rows is 900
