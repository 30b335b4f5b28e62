"""Two small answers every layer of regcli asks: is this a finite number, and which allowed
name did the user mean. Pure; standard library only."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any


def is_finite(value: Any) -> bool:
    """A finite real number (numpy scalars from a DataFrame included), not a bool, NaN or inf."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def finite_float(value: Any) -> float | None:
    """A finite float (numbers and numeric strings), or None for a bool, a non-number, NaN or inf.

    JSON has no NaN: regcli writes a non-finite value as null, and reads it back as None here.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if is_finite(value) else None


def closest(word: str, choices: Iterable[Any]) -> str | None:
    """The choice `word` most likely meant: an exact case-insensitive match, else the nearest
    spelling (difflib, cutoff 0.6), else None."""
    options = [str(choice) for choice in choices]
    lowered = {option.lower(): option for option in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def did_you_mean(word: str, choices: Iterable[Any]) -> str:
    """`" Did you mean 'X'?"` for the closest choice, or `""`: appended to an error message."""
    match = closest(str(word), choices)
    return f" Did you mean '{match}'?" if match else ""
