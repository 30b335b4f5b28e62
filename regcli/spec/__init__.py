"""The experiment spec: read a YAML file, apply `--set` overrides, validate it into frozen models.

Everything a user writes (SPEC.md §2) passes through this package exactly once, in data-flow
order: `yaml_io` reads YAML with a safe loader (`1e-4` is a float; duplicate keys, yes/no
booleans, python tags and alias bombs are refused), `overrides` applies `--set`, `models`
(with `fields` and `checks`) validates, and `problems` turns every failure into one
`SpecError` that names the dotted key, what was expected, what was received and the fix.
Code downstream trusts the spec.

The package imports only pydantic and PyYAML: `regcli --help` and `regcli validate`
must start instantly.

Example:

```python
spec = load_experiment_spec("configs/breast_cancer.yaml", overrides=["model.l2=1e-3"])
spec.model.l2  # 0.001
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from regcli.errors import SpecError
from regcli.spec.builders import unset_knobs
from regcli.spec.checks import SHORTHAND_KNOBS, spec_warnings
from regcli.spec.fields import BUILTIN_SOURCES, BUILTIN_TASKS, LAYER_TYPES, MAX_SEED, PATH_KEYS, SOURCE_PARAMS
from regcli.spec.models import (
    ActivationLayerSpec,
    BatchNormLayerSpec,
    Conv2DLayerSpec,
    DataSpec,
    DenseLayerSpec,
    DiagnosisSpec,
    DriftSpec,
    DropoutLayerSpec,
    EarlyStoppingSpec,
    ExperimentSpec,
    FlattenLayerSpec,
    GaussianNoiseLayerSpec,
    LayerSpec,
    MaxPool2DLayerSpec,
    MlflowSpec,
    ModelSpec,
    RegularizerSpec,
    SpatialDropout2DLayerSpec,
    TrackingSpec,
    TrainingSpec,
)
from regcli.spec.overrides import absolute_from_cwd, apply_overrides, parse_override, set_dotted
from regcli.spec.problems import translate
from regcli.spec.yaml_io import MAX_ALIASES, SpecDumper, SpecLoader, kind_of, load_yaml_file, load_yaml_text

__all__ = [
    "BUILTIN_SOURCES",
    "BUILTIN_TASKS",
    "LAYER_TYPES",
    "MAX_ALIASES",
    "MAX_SEED",
    "PATH_KEYS",
    "SOURCE_PARAMS",
    "ActivationLayerSpec",
    "BatchNormLayerSpec",
    "Conv2DLayerSpec",
    "DataSpec",
    "DenseLayerSpec",
    "DiagnosisSpec",
    "DriftSpec",
    "DropoutLayerSpec",
    "EarlyStoppingSpec",
    "ExperimentSpec",
    "FlattenLayerSpec",
    "GaussianNoiseLayerSpec",
    "LayerSpec",
    "MaxPool2DLayerSpec",
    "MlflowSpec",
    "ModelSpec",
    "RegularizerSpec",
    "SpecDumper",
    "SpecLoader",
    "SpatialDropout2DLayerSpec",
    "TrackingSpec",
    "TrainingSpec",
    "apply_overrides",
    "dump_spec_yaml",
    "foreign_file_problem",
    "is_sweep_spec",
    "load_experiment_spec",
    "load_yaml_file",
    "load_yaml_text",
    "parse_override",
    "set_dotted",
    "spec_to_dict",
    "spec_warnings",
    "validate_experiment",
]


def is_sweep_spec(raw: Any) -> bool:
    """True for a sweep spec: a mapping with a top-level `base` or `params` key (SPEC §3)."""
    return isinstance(raw, Mapping) and ("base" in raw or "params" in raw)


def foreign_file_problem(raw: Mapping[str, Any], path: Path) -> str | None:
    """Why the mapping read from `path` is not an experiment spec at all, or None.

    A mapping none of whose top-level keys is a spec key (a password file, some other
    program's config) is not a spec with typos: its keys are not echoed back.
    """
    if any(key in ExperimentSpec.model_fields for key in raw):
        return None
    return (
        f"{path} is not an experiment spec: none of its {len(raw):,} top-level keys is one of "
        f"{', '.join(ExperimentSpec.model_fields)} (its content is not shown). Expected a YAML mapping with at "
        "least data:, e.g. 'data: {source: breast_cancer}'; check the path."
    )


def validate_experiment(
    raw: Mapping[str, Any], base_dir: str | Path, *, source: str = "<spec>"
) -> ExperimentSpec:
    """Validate a raw spec mapping into an `ExperimentSpec`.

    Args:
        raw: the parsed YAML mapping (overrides already applied).
        base_dir: directory that relative data.path / model.init_from are resolved against
            (the spec file's directory).
        source: what to call the spec in error messages. Defaults to `"<spec>"`.

    Raises:
        SpecError: every problem, one line each, under `Invalid spec <source>:`.
    """
    if not isinstance(raw, Mapping):
        raise SpecError(f"Invalid spec {source}: expected a mapping with at least data:, got {kind_of(raw)}.")
    try:
        return ExperimentSpec.model_validate(dict(raw), context={"base_dir": Path(base_dir)})
    except ValidationError as exc:
        raise translate(exc, raw, source) from None
    except RecursionError:
        raise SpecError(f"Invalid spec {source}: nested too deeply.") from None


def load_experiment_spec(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentSpec:
    """Read, override and validate an experiment spec file.

    Relative paths written in the file are resolved against the file's directory;
    relative paths given in `--set data.path=...` / `--set model.init_from=...` against
    the current directory (where the user typed them). Both are stored absolute.

    Raises:
        SpecError: for every problem (file, YAML, override or validation).
    """
    p = Path(path)
    raw = load_yaml_file(p)
    if is_sweep_spec(raw):
        raise SpecError(
            f"Spec file {p} is a sweep spec (it has a top-level base: or params:); run it with regcli sweep."
        )
    if problem := foreign_file_problem(raw, p):
        raise SpecError(f"Spec file {problem}")
    for text in overrides:
        key, value = parse_override(text)
        raw = set_dotted(raw, key, absolute_from_cwd(key, value))
    return validate_experiment(raw, p.absolute().parent, source=str(p))


def spec_to_dict(spec: ExperimentSpec) -> dict[str, Any]:
    """The spec as plain JSON/YAML-able data with every default filled in.

    With explicit `model.layers`, the shorthand keys (`hidden`, `l2`, `dropout`, ...) are
    left out: they do not apply, and showing their defaults would read as if they did. With
    `model.builder`, only the knobs passed to the function are kept (and without one, the
    `builder` keys are left out: the resolved spec of an MLP reads as before).
    """
    data = spec.model_dump(mode="python")
    if spec.model.layers is not None:
        for key in ("hidden", *SHORTHAND_KNOBS):
            data["model"].pop(key, None)
    for key in unset_knobs(spec):  # a builder's knobs: only those passed to its function
        data["model"].pop(key, None)
    if spec.model.builder is None:
        data["model"].pop("builder", None)
        data["model"].pop("builder_args", None)
    return data


def dump_spec_yaml(spec: ExperimentSpec) -> str:
    """YAML text that `load_experiment_spec` reads back into an equal spec."""
    return yaml.dump(
        spec_to_dict(spec), Dumper=SpecDumper, sort_keys=False, default_flow_style=None, allow_unicode=True
    )
