"""Sweep expansion: strategy + params + seeds -> an exact, ordered list of trials (pure).

A *configuration* is one assignment of values to the swept knobs; a *trial* is one
configuration trained with one seed. Expansion is deterministic: the same sweep spec
always gives the same trials in the same order with the same ids, which is what lets
`--resume` match trial directories to trials.

- `grid`: every combination, in `itertools.product` order (the first knob varies slowest).
- `random`: `max_trials` distinct combinations of the grid, drawn with `sample_seed`,
  kept in grid order.
- `one_at_a_time`: the base configuration, then each knob varied alone through its values
  (values equal to the base's are the base configuration itself and are not repeated).

Every configuration is trained once per seed; trials are ordered configuration-major.

Example:

>>> trials = expand("grid", {"model.l2": [0.0, 1e-4], "model.dropout": [0.2]}, seeds=[0, 1])
>>> [t.id for t in trials]
['t000-l2_0-dropout_0.2-s0', 't000-l2_0-dropout_0.2-s1', 't001-l2_1e-4-dropout_0.2-s0', 't001-l2_1e-4-dropout_0.2-s1']
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

STRATEGIES = ("grid", "random", "one_at_a_time")
# Trial ids name directories: short enough for any file system and for `ls`, unique by
# their t### prefix; a long label is cut and a hash of the full label keeps it distinct.
MAX_ID_CHARS = 80  # + "-s<seed>" (at most 12) stays within the 100 characters of a run name
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Config:
    """One configuration: a value for every swept knob.

    Args:
        index: its position in the expansion (the ### of its trial ids).
        params: knob (dotted path) -> value, for every swept knob.
        varied: the knobs shown in its id: all of them, or for `one_at_a_time` the one
            knob moved away from the base (none for the base itself).
    """

    index: int
    params: dict[str, Any]
    varied: tuple[str, ...]

    @property
    def id(self) -> str:
        return config_id(self.index, {k: self.params[k] for k in self.varied}, knob_labels(list(self.params)))


@dataclass(frozen=True)
class Trial:
    """One configuration trained with one seed; `id` names its directory `trials/<id>/`."""

    id: str
    config: str
    index: int
    params: dict[str, Any] = field(hash=False)
    varied: tuple[str, ...]
    seed: int


def grid_size(params: Mapping[str, Sequence[Any]]) -> int:
    return math.prod(len(values) for values in params.values())


def expand_grid(params: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the knobs' values; the first knob varies slowest."""
    keys = list(params)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(params[k] for k in keys))]


def expand_random(params: Mapping[str, Sequence[Any]], max_trials: int, sample_seed: int) -> list[dict[str, Any]]:
    """`max_trials` distinct grid combinations drawn with `sample_seed`, in grid order.

    The grid is never materialized: indices are drawn from `range(grid_size)` and decoded
    (mixed radix, last knob fastest, as in `itertools.product`), so a huge grid is cheap.
    """
    keys = list(params)
    sizes = [len(params[k]) for k in keys]
    total = math.prod(sizes)
    if not 1 <= max_trials <= total:
        raise ValueError(f"max_trials must be in [1, {total}]. Received: {max_trials}.")
    picked = sorted(random.Random(sample_seed).sample(range(total), max_trials))
    configs = []
    for flat in picked:
        combo = []
        for size in reversed(sizes):
            flat, digit = divmod(flat, size)
            combo.append(digit)
        digits = list(reversed(combo))
        configs.append({k: params[k][d] for k, d in zip(keys, digits, strict=True)})
    return configs


def expand_one_at_a_time(
    params: Mapping[str, Sequence[Any]], base: Mapping[str, Any]
) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    """The base configuration, then each knob moved alone through its values.

    Returns (params, varied knobs) pairs; `base` holds the base spec's value of every knob.
    """
    configs = [({k: base[k] for k in params}, ())]
    for knob, values in params.items():
        for value in values:
            if same_value(value, base[knob]):
                continue
            configs.append(({**{k: base[k] for k in params}, knob: value}, (knob,)))
    return configs


def same_value(a: Any, b: Any) -> bool:
    """Equality as YAML means it: 0 == 0.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def expand(
    strategy: str,
    params: Mapping[str, Sequence[Any]],
    *,
    seeds: Sequence[int],
    base: Mapping[str, Any] | None = None,
    max_trials: int | None = None,
    sample_seed: int = 0,
) -> list[Trial]:
    """The trials of a sweep, configuration-major, each configuration once per seed.

    Args:
        strategy: `grid`, `random` or `one_at_a_time`.
        params: knob (dotted path) -> list of values, in the spec's order.
        seeds: the seeds every configuration is trained with.
        base: the base spec's value of every knob (`one_at_a_time` only). Defaults to `None`.
        max_trials: configurations to draw (`random` only). Defaults to `None`.
        sample_seed: seeds the random draw. Defaults to `0`.
    """
    if strategy == "grid":
        pairs = [(p, tuple(params)) for p in expand_grid(params)]
    elif strategy == "random":
        if max_trials is None:
            raise ValueError("strategy random needs max_trials.")
        pairs = [(p, tuple(params)) for p in expand_random(params, max_trials, sample_seed)]
    elif strategy == "one_at_a_time":
        if base is None:
            raise ValueError("strategy one_at_a_time needs the base values of the knobs.")
        pairs = expand_one_at_a_time(params, base)
    else:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}. Received: {strategy!r}.")
    configs = [Config(i, p, varied) for i, (p, varied) in enumerate(pairs)]
    return [
        Trial(id=f"{c.id}-s{seed}", config=c.id, index=c.index, params=c.params, varied=c.varied, seed=seed)
        for c in configs
        for seed in seeds
    ]


def smoke_trials(trials: Sequence[Trial], limit: int = 2) -> list[Trial]:
    """`--smoke`: the first seed of the first `limit` configurations (still a comparison)."""
    first_seed = trials[0].seed if trials else 0
    return [t for t in trials if t.seed == first_seed][:limit]


# --------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------
# Last parts that say little alone: `training.early_stopping.enabled` reads as `early_stopping.enabled`.
_VAGUE = ("enabled", "rate", "units", "momentum", "shift", "scale", "mode")


def knob_labels(knobs: Sequence[str]) -> dict[str, str]:
    """Short labels for ids: the last part of the path (`model.l2` -> `l2`), more for a vague one
    (`early_stopping.enabled`, `layers.1.rate`), the whole path where two knobs share a label."""
    short = [_label(k) for k in knobs]
    return {k: (label if short.count(label) == 1 else k) for k, label in zip(knobs, short, strict=True)}


def _label(knob: str) -> str:
    parts = knob.split(".")
    keep = 1
    if parts[-1] in _VAGUE:
        keep = 2
        while keep < len(parts) and parts[-keep].isdigit():  # model.layers.1.rate -> layers.1.rate
            keep += 1
    return ".".join(parts[-keep:])


def format_value(value: Any) -> str:
    """A value as it reads in an id: 1e-4, 0.2, true, 8x8, a file's stem."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 1e-3 or abs(value) >= 1e6:
            mantissa, exponent = f"{value:.2e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(format_value(v) for v in value) or "empty"
    if isinstance(value, dict):
        return "-".join(f"{k}.{format_value(v)}" for k, v in value.items()) or "empty"
    text = str(value)
    if "/" in text:  # a path: its file name says enough
        text = PurePath(text).stem
    return text


def config_id(index: int, shown: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """`t003-l2_1e-4-dropout_0.2`: the index, then `label_value` for each shown knob.

    Only letters, digits, `.`, `_` and `-` (a valid regcli run name); cut to
    `MAX_ID_CHARS` with a short hash of the full label when longer.
    """
    parts = [f"{labels[k]}_{format_value(v)}" for k, v in shown.items()] or ["base"]
    label = _UNSAFE.sub("", "-".join(_UNSAFE.sub("", p) for p in parts)) or "config"
    prefix = f"t{index:03d}-"
    room = MAX_ID_CHARS - len(prefix)
    if len(label) > room:
        digest = hashlib.sha256(label.encode()).hexdigest()[:6]
        label = f"{label[: room - 7]}-{digest}"
    return prefix + label


# A sweep over it is a data-size study (regcli.sweep.datacurve).
FRACTION_KNOB = "data.train_fraction"


def parse_cell(value: Any) -> Any:
    """A knob value back from a DataFrame cell: JSON lists/mappings decoded, numpy scalars made plain."""
    if hasattr(value, "item") and not isinstance(value, str):
        return value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
