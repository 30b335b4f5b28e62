"""The sweep spec (SPEC §3): loading, validation and expansion into validated trial specs.

A sweep spec names a base experiment spec, the knobs to vary and how (`grid`, `random`,
`one_at_a_time`), the seeds, how the winner is selected (on validation only) and whether
the winner gets its one final test. `load_sweep` validates the sweep spec, the base spec,
every swept value and every expanded trial spec before anything runs, and returns a
`Sweep` whose `resolved` mapping (written to the sweep directory as `sweep.yaml`) is
self-contained: the base is inlined with every default filled in and paths made absolute,
so the stored sweep.yaml alone reproduces (and resumes) the sweep.

Only pydantic, PyYAML and regcli.spec are imported here: `regcli validate` stays instant.

Example:

```python
sweep = load_sweep("configs/sweep_l2_dropout.yaml")
len(sweep.trials), sweep.trials[0].id   # 24, 't000-l2_0-dropout_0-s0'
```
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regcli import dotted
from regcli.errors import SpecError
from regcli.spec import (
    BUILTIN_TASKS,
    MAX_SEED,
    PATH_KEYS,
    ExperimentSpec,
    SpecDumper,
    foreign_file_problem,
    is_sweep_spec,
    load_yaml_file,
    set_dotted,
    spec_to_dict,
    validate_experiment,
)
from regcli.sweep.expand import Trial, expand, grid_size, same_value, smoke_trials
from regcli.values import closest, did_you_mean

# A sweep of more trials than this is a typo (a grid of 10 knobs x 10 values is 10**10);
# 10,000 tiny trials is already a long day on a cluster.
MAX_TRIALS = 10_000
MAX_VALUES = 1_000  # values of one knob
MAX_SEEDS = 1_000
SMOKE_TRIALS = 2  # SPEC §1: --smoke runs at most 2 trials
SELECT_METRICS = ("val_data_loss", "val_loss", "val_error", "val_accuracy", "val_mae")
PENALTY_KNOBS = ("model.l1", "model.l2", "model.bias_l2", "model.activity_l2")
_KNOB_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,59}")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class SelectSpec(_Strict):
    """How the winner is chosen: a validation metric, averaged over seeds."""

    metric: Literal["val_data_loss", "val_loss", "val_error", "val_accuracy", "val_mae"] = Field(
        "val_data_loss",
        description="A validation metric of summary.json; val_data_loss is penalty-free, so it ranks "
        "different L1/L2 strengths fairly. Defaults to `val_data_loss`.",
    )
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="auto: max for val_accuracy, min otherwise. Defaults to `auto`."
    )


class SweepSpec(_Strict):
    """A sweep: a base experiment, the knobs to vary, the seeds and the selection rule (SPEC §3)."""

    name: str | None = Field(
        None, description="Sweep directory name prefix. Defaults to `None`: the sweep file's stem."
    )
    base: str | dict[str, Any] = Field(
        description="The base experiment spec: a path relative to the sweep file, or the spec inline."
    )
    strategy: Literal["grid", "random", "one_at_a_time"] = Field(
        "grid", description="grid, random or one_at_a_time. Defaults to `grid`."
    )
    params: dict[str, list[Any]] = Field(description="Knob (dotted path) -> list of values to try.")
    seeds: list[int] | None = Field(
        None, description="Every configuration is trained once per seed. Defaults to `None`: the base's seed."
    )
    max_trials: int | None = Field(
        None, description="Configurations drawn by strategy random. Defaults to `None`."
    )
    sample_seed: int = Field(0, description="Seeds strategy random's draw. Defaults to `0`.")
    select: SelectSpec = Field(default_factory=SelectSpec, description="How the winner is chosen.")
    final_test: bool = Field(
        False, description="Evaluate the winner, and only the winner, once on the test split. Defaults to `False`."
    )
    packing: Literal["auto", "off"] = Field(
        "auto",
        description="auto: trials that differ only in the model, diagnosis and early stopping (same data, seed and "
        "training settings) train together as one packed model, up to 8 at a time; off: every trial alone "
        "(as `--no-pack`). Defaults to `auto`.",
    )


@dataclass(frozen=True)
class Sweep:
    """A validated sweep, ready to run.

    Attributes:
        source: the file it was read from.
        resolved: the self-contained spec written to `sweep.yaml`.
        trials: the trials to run, in order (`--smoke`: at most 2).
        specs: trial id -> its validated experiment spec.
        smoke: whether this is a `--smoke` sweep.
        warnings: things the user should hear before the trials start.
    """

    source: Path
    resolved: dict[str, Any]
    trials: list[Trial]
    specs: dict[str, ExperimentSpec]
    smoke: bool
    warnings: list[str]

    @property
    def name(self) -> str:
        return self.resolved["name"]

    @property
    def knobs(self) -> list[str]:
        return list(self.resolved["params"])

    @property
    def metric(self) -> str:
        return self.resolved["select"]["metric"]

    @property
    def mode(self) -> str:
        return self.resolved["select"]["mode"]


def load_sweep(path: str | Path, *, smoke: bool = False) -> Sweep:
    """Read and validate a sweep spec, its base and every trial spec.

    Args:
        path: the sweep spec file (or a sweep directory's stored `sweep.yaml`).
        smoke: `--smoke`: keep the first seed of the first 2 configurations. Defaults to `False`.

    Raises:
        SpecError: any problem, naming the key (`params.model.l22`) and the fix; nothing has run.
    """
    path = Path(path)
    raw = load_yaml_file(path)
    if not is_sweep_spec(raw):
        raise SpecError(
            f"Spec file {path} is an experiment spec, not a sweep spec (it has no top-level base: or params:). "
            f"Run it with regcli train, or write a sweep spec: base: <experiment spec>, params: {{model.l2: [0.0, 1.0e-4]}}."
        )
    source = str(path)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise _translate(exc, source) from None
    sweep_dir = path.absolute().parent
    base_spec = _load_base(spec.base, sweep_dir, source)
    base = spec_to_dict(base_spec)
    params = _resolve_params(spec.params, sweep_dir)
    seeds = list(spec.seeds) if spec.seeds is not None else [base_spec.seed]
    problems = _check_sweep(spec, params, seeds)
    if all(len(values) <= MAX_VALUES for values in params.values()):  # one validation per value: not 10,000
        problems += _check_values(base, params)
    if problems:
        raise SpecError("\n".join([f"Invalid sweep spec {source}:", *(f"  {p}" for p in dict.fromkeys(problems))]))
    _check_metric(spec.select.metric, base_spec, source)
    resolved = _resolved(spec, path, base, params, seeds)
    base_values = {knob: dotted.get(base, knob) for knob in params}
    trials = expand(
        spec.strategy,
        params,
        seeds=seeds,
        base=base_values,
        max_trials=spec.max_trials,
        sample_seed=spec.sample_seed,
    )
    if smoke:
        trials = smoke_trials(trials, SMOKE_TRIALS)
    specs = {t.id: trial_spec(base, t, source) for t in trials}
    return Sweep(path, resolved, trials, specs, smoke, _warnings(resolved, trials))


def _resolved(spec: SweepSpec, path: Path, base: dict[str, Any], params: dict[str, list[Any]],
              seeds: list[int]) -> dict[str, Any]:
    """The resolved sweep.yaml: every default filled in (select.mode auto -> max for accuracy, else min)."""
    mode = spec.select.mode
    if mode == "auto":
        mode = "max" if spec.select.metric == "val_accuracy" else "min"
    return {
        "name": spec.name or _default_name(path),
        "base": base,
        "strategy": spec.strategy,
        "params": params,
        "seeds": seeds,
        "max_trials": spec.max_trials,
        "sample_seed": spec.sample_seed,
        "select": {"metric": spec.select.metric, "mode": mode},
        "final_test": spec.final_test,
        "packing": spec.packing,
    }


def trial_spec(base: Mapping[str, Any], trial: Trial, source: str = "<sweep>") -> ExperimentSpec:
    """The validated experiment spec of one trial: the base with its knob values and seed."""
    raw = dict(base)
    for knob, value in trial.params.items():
        raw = set_dotted(raw, knob, value)
    raw = set_dotted(raw, "seed", trial.seed)
    return validate_experiment(raw, Path.cwd(), source=f"{source} (trial {trial.id})")


def dump_sweep_yaml(sweep: Sweep) -> str:
    """The resolved sweep spec as YAML (`sweep.yaml`); `load_sweep` reads it back into an equal sweep."""
    return yaml.dump(sweep.resolved, Dumper=SpecDumper, sort_keys=False, default_flow_style=None, allow_unicode=True)


def spec_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two resolved sweep specs differ (for refusing a mismatched --resume)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        diffs = []
        for key in list(a) + [k for k in b if k not in a]:
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                diffs.append(where)
            else:
                diffs.extend(spec_differences(a[key], b[key], where))
        return diffs
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in spec_differences(x, y, f"{prefix}[{i}]")]
    return [] if a == b and type(a) is type(b) else [prefix or "the whole spec"]


# --------------------------------------------------------------------------------------
# Checks: small named functions, each naming the key and the fix
# --------------------------------------------------------------------------------------
def _load_base(base: str | dict[str, Any], sweep_dir: Path, source: str) -> ExperimentSpec:
    """The base experiment spec: a file relative to the sweep file, or an inline mapping."""
    if isinstance(base, dict):
        return validate_experiment(base, sweep_dir, source=f"{source} (base)")
    base_path = Path(base).expanduser()
    if not base_path.is_absolute():
        base_path = sweep_dir / base_path
    if not base_path.exists():
        raise SpecError(
            f"Invalid sweep spec {source}:\n  base: file not found: {base_path}. Received: {base!r}. "
            f"base is an experiment spec, relative to the sweep file's directory ({sweep_dir})."
        )
    try:
        raw = load_yaml_file(base_path)
    except SpecError as exc:
        raise SpecError(f"Invalid sweep spec {source}:\n  base: {exc}") from None
    if is_sweep_spec(raw):
        raise SpecError(
            f"Invalid sweep spec {source}:\n  base: {base_path} is itself a sweep spec; base must be an experiment spec."
        )
    if problem := foreign_file_problem(raw, base_path):
        raise SpecError(f"Invalid sweep spec {source}:\n  base: {problem}")
    return validate_experiment(raw, base_path.parent, source=str(base_path))


def _resolve_params(params: Mapping[str, list[Any]], sweep_dir: Path) -> dict[str, list[Any]]:
    """Path-valued knobs (data.path, model.init_from) are resolved against the sweep file's directory."""
    resolved = {}
    for knob, values in params.items():
        if knob in PATH_KEYS:
            values = [
                str((sweep_dir / Path(v).expanduser()).resolve()) if isinstance(v, str) and v.strip() else v
                for v in values
            ]
        resolved[knob] = list(values)
    return resolved


def _check_sweep(spec: SweepSpec, params: Mapping[str, list[Any]], seeds: list[int]) -> list[str]:
    """Knob names, value lists, seeds, max_trials and the size of the sweep."""
    problems = []
    if spec.name is not None and not _NAME_RE.fullmatch(spec.name):
        problems.append(
            f"name: must be 1 to 60 characters from A-Z a-z 0-9 . _ - not starting with '.' or '-'. "
            f"Received: {_show(spec.name)}. It names the sweep directory."
        )
    if not params:
        problems.append("params: must name at least one knob, e.g. params: {model.l2: [0.0, 1.0e-4]}.")
    for knob, values in params.items():
        problems += _check_knob(knob, values, params)
    problems += _check_seeds(seeds)
    size = grid_size(params) if params else 0
    problems += _check_max_trials(spec, size)
    configs = {
        "grid": size,
        "random": spec.max_trials or 0,
        "one_at_a_time": 1 + sum(len(v) for v in params.values()),
    }[spec.strategy]
    if configs * max(1, len(seeds)) > MAX_TRIALS:
        problems.append(
            f"params: the sweep expands to {configs:,} configurations x {len(seeds)} seed(s), more than "
            f"{MAX_TRIALS:,} trials. Use strategy: random with max_trials, or fewer values."
        )
    return problems


def _check_knob(knob: str, values: list[Any], params: Mapping[str, list[Any]]) -> list[str]:
    """One knob of params: a dotted path (not seed, not overlapping another), 1 to MAX_VALUES distinct values."""
    problems = []
    where = f"params.{knob}"
    if not _KNOB_RE.fullmatch(knob):
        problems.append(f"{where}: a knob is a dotted path such as model.l2. Received: {_show(knob)}.")
    elif knob == "seed":
        problems.append(f"{where}: seeds are swept with seeds: [0, 1, 2] (every configuration once per seed), not under params.")
    elif other := next((k for k in params if k != knob and k.startswith(knob + ".")), None):
        problems.append(f"{where}: overlaps params.{other}; sweep either the whole mapping or its keys.")
    if not values:
        problems.append(f"{where}: must list at least one value, e.g. [0.0, 1.0e-4].")
    elif len(values) > MAX_VALUES:  # the per-value checks below are quadratic: not on 10,000 values
        problems.append(f"{where}: has {len(values):,} values; at most {MAX_VALUES:,} are allowed.")
        return problems
    for i, value in enumerate(values):
        if any(same_value(value, earlier) for earlier in values[:i]):
            problems.append(f"{where}: lists {_show(value)} twice; each value is one configuration.")
    return problems


def _check_max_trials(spec: SweepSpec, size: int) -> list[str]:
    """max_trials: required by strategy random, within the grid; refused by the others."""
    if spec.strategy == "random":
        if spec.max_trials is None:
            return [f"max_trials: strategy random needs it: how many of the {size} configurations to draw, "
                    f"e.g. max_trials: {min(size, 10)}."]
        if not 1 <= spec.max_trials <= size:
            return [f"max_trials: must be an integer in [1, {size}] (the grid has {size} configurations). "
                    f"Received: {spec.max_trials}. Use strategy: grid to train all of them."]
        return []
    if spec.max_trials is not None:
        return [f"max_trials: applies only to strategy random. Received: {spec.max_trials} with strategy "
                f"{spec.strategy}. Remove it."]
    return []


def _check_seeds(seeds: list[int]) -> list[str]:
    """seeds: 1 to MAX_SEEDS distinct 32-bit seeds; one line per kind of problem, however long the list."""
    if not seeds:
        return ["seeds: must list at least one seed, e.g. [0, 1, 2]."]
    if len(seeds) > MAX_SEEDS:
        return [f"seeds: has {len(seeds):,} entries; at most {MAX_SEEDS:,} are allowed. Every configuration is "
                "trained once per seed; 3 to 10 seeds measure seed noise."]
    problems = []
    if bad := [seed for seed in seeds if not 0 <= seed <= MAX_SEED]:
        problems.append(f"seeds: every seed must be an integer in [0, {MAX_SEED}]. Received: {bad[0]}.")
    if len(set(seeds)) != len(seeds):
        problems.append(f"seeds: lists a seed twice. Received: {_show(seeds)}.")
    return problems


def _check_values(base: Mapping[str, Any], params: Mapping[str, list[Any]]) -> list[str]:
    """Every knob exists and each of its values makes a valid spec on its own (before expansion)."""
    problems: list[str] = []
    for knob, values in params.items():
        if knob == "seed" or not _KNOB_RE.fullmatch(knob):
            continue
        lines_by_value: list[tuple[Any, list[str]]] = []
        for value in values:
            try:
                validate_experiment(set_dotted(base, knob, value), Path.cwd())
            except SpecError as exc:
                lines_by_value.append((value, [line.strip() for line in str(exc).splitlines()[1:] or [str(exc)]]))
        if not lines_by_value:
            continue
        shared = set.intersection(*(set(lines) for _, lines in lines_by_value))
        if len(lines_by_value) == len(values):
            problems.extend(f"params.{knob}: {line}" for line in lines_by_value[0][1] if line in shared)
        for value, lines in lines_by_value:
            problems.extend(
                f"params.{knob}, value {_show(value)}: {line}"
                for line in lines
                if not (line in shared and len(lines_by_value) == len(values))
            )
    return problems


def _check_metric(metric: str, base: ExperimentSpec, source: str) -> None:
    """select.metric exists for the base's task (accuracy for classification, mae for regression)."""
    task = base.model.task if base.model.task != "auto" else BUILTIN_TASKS.get(base.data.source or "")
    if base.data.source == "synthetic_classification":
        task = "classification"
    wrong = (metric == "val_accuracy" and task == "regression") or (
        metric == "val_mae" and task in ("binary", "multiclass", "classification")
    )
    if wrong:
        other = "val_mae" if metric == "val_accuracy" else "val_accuracy"
        raise SpecError(
            f"Invalid sweep spec {source}:\n  select.metric: {metric} is not reported for a {task} task. "
            f"Received: {metric!r}. Use val_data_loss (the default), val_error or {other}."
        )


def _warnings(resolved: Mapping[str, Any], trials: Sequence[Trial]) -> list[str]:
    """What the user should know before the trials start."""
    warnings = []
    metric = resolved["select"]["metric"]
    penalty_knobs = penalty_knobs_varied(resolved["params"])
    if metric == "val_loss" and penalty_knobs:
        warnings.append(
            f"select.metric is val_loss, but the trials differ in their penalties ({', '.join(penalty_knobs)}): "
            f"val_loss includes each trial's own L1/L2 penalty, so stronger regularization looks worse than it "
            f"is. Rank on val_data_loss (the penalty-free default) to compare them fairly."
        )
    return warnings


def penalty_knobs_varied(params: Mapping[str, list[Any]]) -> list[str]:
    """The swept knobs that change a regularization penalty term (L1/L2 on kernels, biases, activity)."""
    return [
        knob
        for knob, values in params.items()
        if len(values) > 1
        and (
            knob in PENALTY_KNOBS
            or knob == "model"
            or knob == "model.layers"
            or (knob.startswith("model.layers.") and "regularizer" in knob)
            or re.fullmatch(r"model\.layers\.\d+", knob) is not None
        )
    ]


def _default_name(path: Path) -> str:
    """The sweep file's stem as a safe directory-name prefix."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip(".-")[:60] or "sweep"


# --------------------------------------------------------------------------------------
# Translating pydantic errors of the sweep spec
# --------------------------------------------------------------------------------------
_EXAMPLES = {
    "base": "configs/breast_cancer.yaml",
    "params": "{model.l2: [0.0, 1.0e-4], model.dropout: [0.0, 0.2]}",
    "seeds": "[0, 1, 2]",
    "select": "{metric: val_data_loss, mode: min}",
}
_TYPES = {
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed(parts: Sequence[str]) -> list[str]:
    model: type[BaseModel] = SelectSpec if parts[:1] == ["select"] else SweepSpec
    return list(model.model_fields)


def _line(error: Mapping[str, Any]) -> str:
    parts = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    key = ".".join(parts)
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed(parts[:-1])
        close = closest(parts[-1], allowed)
        if close:
            fix = f"Did you mean '{'.'.join([*parts[:-1], close])}'?"
        elif parts[:-1] == [] and "." in parts[-1] or parts[-1] in ("model", "data", "training"):
            fix = f"Knobs to vary go under params:, e.g. params: {{{parts[-1]}: [...]}}; the base's settings go in base:."
        else:
            fix = f"Allowed keys here: {', '.join(allowed)}."
        return f"Unknown key '{key}'. {fix}"
    if kind == "missing":
        example = _EXAMPLES.get(key)
        return f"{key}: is required." + (f" For example: {key}: {example}." if example else "")
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        fix = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"{key}: must be one of {', '.join(choices)}. Received: {_show(value)}.{fix}"
    if kind in _TYPES:
        where = key if not (parts[:1] == ["params"] and len(parts) >= 2) else f"params.{parts[1]}"
        if parts[:1] == ["params"] and len(parts) == 2 and kind == "list_type":
            return f"{where}: must be a list of values to try, e.g. [{_show(value)}]. Received: {_show(value)}."
        if parts[:1] == ["base"]:
            return f"base: must be a path to an experiment spec (relative to the sweep file) or the spec itself as a mapping. Received: {_show(value)}."
        example = _EXAMPLES.get(where)
        return f"{where}: must be {_TYPES[kind]}." + f" Received: {_show(value)}." + (f" For example: {where}: {example}." if example else "")
    return f"{key}: {error.get('msg', 'is invalid')}. Received: {_show(value)}."


def _translate(exc: ValidationError, source: str) -> SpecError:
    lines = list(dict.fromkeys(_line(e) for e in exc.errors(include_url=False)))
    return SpecError("\n".join([f"Invalid sweep spec {source}:", *(f"  {line}" for line in lines)]))
