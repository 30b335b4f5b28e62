"""Starter specs and JSON Schemas: what `regcli init` and `regcli schema` write.

`init_spec` writes a commented starter spec that validates as written (the csv template
once its data file exists). Its first line is a `yaml-language-server` modeline naming a
JSON Schema written beside it (`regcli.schema.json`, or `regcli-sweep.schema.json` for a
sweep), so VS Code's YAML extension and every other editor built on yaml-language-server
completes keys, shows each key's description and flags unknown keys and out-of-range values
while the user types. The schemas are generated from the pydantic models in `regcli.spec`
and `regcli.sweep.spec`, with the numeric ranges regcli enforces added.

Nothing here imports TensorFlow or Keras; pydantic is imported only when a schema is built.

Example:

```python
result = init_spec(Path("experiment.yaml"), Template.quickstart)
result.spec, result.schema   # experiment.yaml, regcli.schema.json
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from regcli.errors import BadInputError
from regcli.rundir import atomic_write_text

__all__ = [
    "EXPERIMENT_SCHEMA_FILE",
    "SWEEP_SCHEMA_FILE",
    "InitResult",
    "Template",
    "default_path",
    "experiment_schema",
    "init_spec",
    "render_template",
    "schema_text",
    "sweep_schema",
    "write_schema",
]

EXPERIMENT_SCHEMA_FILE = "regcli.schema.json"
SWEEP_SCHEMA_FILE = "regcli-sweep.schema.json"
SPEC_SUFFIXES = (".yaml", ".yml")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic generates


class Template(StrEnum):
    """The starter specs `regcli init --template` writes."""

    quickstart = "quickstart"
    cnn = "cnn"
    regression = "regression"
    csv = "csv"
    sweep = "sweep"


# ======================================================================================
# Templates. `<SPEC>` becomes the path the spec is written to; the modeline is prepended.
# Each validates as written (tests/test_init.py); numbers in comments are facts of the
# bundled data sets or arithmetic on the values next to them.
# ======================================================================================
_QUICKSTART = """\
# A starter experiment from `regcli init`: a 256/128 MLP with every regularizer at a sane
# default, on scikit-learn's bundled breast-cancer data (569 rows, 30 features, no download).
#   regcli validate <SPEC>        # prints the spec with every default filled in
#   regcli train <SPEC>           # writes runs/quickstart-<time>-<id>/ and prints a summary
#   regcli diagnose runs/quickstart-*   # bias or variance, and the next knob to turn
# Only data: is required; every other key has a default (`regcli schema` documents them all).
name: quickstart
seed: 0                  # one seed drives the split, the initial weights, shuffling and dropout
data:
  source: breast_cancer  # or iris, wine, digits, diabetes, moons, synthetic_*; or path: your.csv
  val_fraction: 0.2      # of all rows: 0.2 + 0.2 leaves 60 % (341 rows) to train on
  test_fraction: 0.2     # held out for `regcli test`; never used for training or selection
model:
  hidden: [256, 128]     # one block per entry: Dense(no bias) -> BatchNorm -> ReLU -> Dropout,
                         # then the output layer, Dense(1, sigmoid), which l2 leaves unpenalized
  batchnorm: true
  dropout: 0.2           # share of units dropped while training; 0.1 to 0.5 is typical, 0 turns it off
  l2: 1e-4               # hidden-kernel penalty; move it in decades (1e-5 .. 1e-2). 1e-4 is read as a number
training:
  epochs: 100            # an upper bound: early stopping ends the run sooner
  batch_size: 32         # BatchNorm needs batches of 16 or more (the diagnosis warns below that)
  learning_rate: 1e-3    # adam's usual start
  early_stopping:
    monitor: val_loss
    patience: 5          # stop after 5 epochs without improvement...
    restore_best_weights: true  # ...and ship the best epoch's weights, not the last one's
"""

_CNN = """\
# A starter CNN from `regcli init --template cnn`: the bundled 8x8 digits images (1797 rows,
# 10 classes, no download). The 64 flat features are reshaped to 8x8x1 for the conv layers.
#   regcli train <SPEC>
# model.layers gives full control; regularize each layer itself (model.dropout/l2 apply to
# the model.hidden shorthand only, and regcli refuses them here). The output layer: end the
# list with {type: dense, units: 10, activation: softmax} (the task's outputs) and it IS the
# output layer; end it with a hidden layer, as here, and regcli adds that output layer.
name: digits-cnn
seed: 0
data:
  source: digits
model:
  layers:
    # 16 filters of 3x3 on 8x8x1: 144 kernel weights; L2 1e-4 keeps them small
    - {type: conv2d, filters: 16, kernel_size: 3, padding: same, use_bias: false, kernel_regularizer: {l2: 1e-4}}
    - {type: batchnorm}                 # no bias above: BatchNorm's beta takes its place
    - {type: activation, activation: relu}
    - {type: spatial_dropout2d, rate: 0.1}  # drops whole feature maps: neighbouring pixels are correlated
    - {type: maxpool2d, pool_size: 2}   # 8x8 -> 4x4
    - {type: flatten}                   # 4 x 4 x 16 = 256 features
    - {type: dense, units: 64, use_bias: false, kernel_regularizer: {l2: 1e-4}}
    - {type: batchnorm}
    - {type: activation, activation: relu}
    - {type: dropout, rate: 0.3}
training:
  epochs: 40             # an upper bound: early stopping ends the run sooner
  batch_size: 64         # 1079 training rows (60 % of 1797): 17 steps per epoch
  early_stopping:
    patience: 5
"""

_REGRESSION = """\
# A starter regression from `regcli init --template regression`: scikit-learn's bundled
# diabetes data (442 rows, 10 features, no download). Targets are standardized on the
# training split, so mae is in units of the target's standard deviation.
#   regcli train <SPEC>
name: diabetes-regression
seed: 0
data:
  source: diabetes       # model.task is inferred: regression (loss mse, metric mae)
model:
  hidden: [64, 32]       # 266 training rows (60 % of 442): a small network overfits less
  batchnorm: false
  dropout: 0.1
  l2: 1e-3               # 10x the classification default: few rows, noisy targets
training:
  epochs: 150
  batch_size: 32
  early_stopping:
    monitor: val_data_loss   # penalty-free: comparable across l2 strengths, unlike val_loss
    patience: 10             # regression curves are noisier; 5 epochs stops too early
"""

_CSV = """\
# A starter for your own table from `regcli init --template csv`.
# EDIT data.path and data.target below: regcli refuses the spec until the file exists.
#   regcli validate <SPEC>        # checks the path and the keys
#   regcli train <SPEC>
# Every column but the target is a feature; string columns are one-hot encoded. A target of
# strings or of at most 20 distinct integers is a class label; other numbers are regression.
name: my-table
seed: 0
data:
  path: my_data.csv      # EDIT: .csv, .parquet (with target:) or .npz (arrays X, y); relative to this file
  target: label          # EDIT: the column to predict (remove target: for an .npz file)
  val_fraction: 0.2      # of all rows: 0.2 + 0.2 leaves 60 % to train on
  test_fraction: 0.2     # held out for `regcli test`; never used for training or selection
  standardize: true      # fitted on the training split only: no leak from validation or test
model:
  hidden: [64, 32]       # small: tables of a few hundred rows overfit a 256-unit network
  batchnorm: true
  dropout: 0.2
  l2: 1e-4
training:
  epochs: 100            # an upper bound: early stopping ends the run sooner
  batch_size: 32
  early_stopping:
    patience: 8          # small validation splits are noisy; 8 epochs rides out a bump
"""

_SWEEP = """\
# A starter sweep from `regcli init --template sweep`: where does regularization start to help?
# 4 L2 strengths x 3 dropout rates = 12 configurations, each trained once per seed: 36 trials.
#   regcli validate <SPEC>              # checks the base and every trial spec
#   regcli sweep <SPEC> --smoke         # 2 trials of at most 2 epochs: checks the wiring
#   regcli sweep <SPEC> --jobs 2        # all 36 trials, 2 at a time
# Then read leaderboard.csv (mean and std over seeds) and best.json in the sweep directory.
name: l2-dropout
base:                    # the experiment every trial starts from (or a file: base: experiment.yaml)
  seed: 0
  data:
    source: breast_cancer
    split_seed: 0        # hold the split fixed: the seeds then vary only init, shuffling and dropout
  model:
    hidden: [256, 128]
    batchnorm: true
  training:
    epochs: 100          # an upper bound: early stopping ends each trial sooner
    early_stopping:
      patience: 5
strategy: grid           # every combination; one_at_a_time moves each knob alone around the base
params:
  model.l2: [0.0, 1.0e-4, 1.0e-3, 1.0e-2]   # decades: L2's effect is multiplicative
  model.dropout: [0.0, 0.2, 0.5]
seeds: [0, 1, 2]         # 3 seeds: the leaderboard's std tells a real difference from noise
select: {metric: val_data_loss, mode: min}  # penalty-free, so different L2 strengths compare fairly
final_test: true         # the winner, and only the winner, looks at the test split once
"""

_TEMPLATES = {
    Template.quickstart: _QUICKSTART,
    Template.cnn: _CNN,
    Template.regression: _REGRESSION,
    Template.csv: _CSV,
    Template.sweep: _SWEEP,
}


def default_path(template: Template) -> Path:
    """Where `regcli init` writes without PATH: `sweep.yaml` for the sweep, else `experiment.yaml`."""
    return Path("sweep.yaml" if template is Template.sweep else "experiment.yaml")


def schema_file(template: Template) -> str:
    """The schema file a template's modeline points at."""
    return SWEEP_SCHEMA_FILE if template is Template.sweep else EXPERIMENT_SCHEMA_FILE


def render_template(template: Template, spec_path: str | Path | None = None) -> str:
    """The starter spec's text: the modeline, then the commented template.

    Args:
        template: which starter.
        spec_path: the path shown in the comments' example commands. Defaults to `None`:
            the template's default path.
    """
    shown = str(spec_path) if spec_path is not None else str(default_path(template))
    if not shown.isprintable() or len(shown) > 200:
        shown = Path(shown).name if Path(shown).name.isprintable() else "SPEC.yaml"
    modeline = f"# yaml-language-server: $schema={schema_file(template)}\n"
    return modeline + _TEMPLATES[template].replace("<SPEC>", shown)


# ======================================================================================
# regcli init
# ======================================================================================
@dataclass(frozen=True)
class InitResult:
    """What `init_spec` wrote.

    Attributes:
        spec: the starter spec's path.
        schema: the JSON Schema file beside it.
        schema_written: False when an existing schema file was kept.
        created_dirs: parent directories created for the spec.
        notes: what the user should know (what to edit, a kept schema).
    """

    spec: Path
    schema: Path
    schema_written: bool
    created_dirs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def init_spec(path: Path | None, template: Template, *, force: bool = False) -> InitResult:
    """Write a starter spec and, beside it, the JSON Schema its modeline names.

    A PATH that is an existing directory gets the default file name inside it; missing
    parent directories are created. An existing spec is replaced only with `force`; an
    existing schema file that differs from this regcli's schema is kept unless `force`.

    Args:
        path: the spec file to write. Defaults to `None`: `default_path(template)`.
        template: which starter.
        force: replace an existing spec (and schema) file. Defaults to `False`.

    Raises:
        BadInputError: the spec exists (without `force`), PATH is not a .yaml/.yml file
            name, a parent is a file, or a file cannot be written.
    """
    target = _target_path(path, template)
    if target.exists() and not force:
        raise BadInputError(
            f"{target} already exists; regcli init does not overwrite it (the file is unchanged). "
            f"Pass --force to replace it, or give another PATH, e.g. regcli init {_sibling(target)}."
        )
    if target.exists() and not target.is_file():
        raise BadInputError(f"{target} exists and is not a regular file; give a .yaml file path as PATH.")
    created = _make_parents(target.parent)
    schema_path = target.parent / schema_file(template)
    text = schema_text(sweep=template is Template.sweep)
    schema_written, notes = _write_schema_beside(schema_path, text, force)
    _write(target, render_template(template, target))
    if template is Template.csv:
        notes.extend(_csv_notes(target))
    return InitResult(target, schema_path, schema_written, created, notes)


def _target_path(path: Path | None, template: Template) -> Path:
    """PATH, PATH/<default name> for a directory, or the default; it must name a .yaml/.yml file."""
    if path is None:
        return default_path(template)
    if path.is_dir():
        return path / default_path(template).name
    if path.suffix.lower() not in SPEC_SUFFIXES:
        raise BadInputError(
            f"PATH must name a .yaml or .yml file (editors apply the schema to YAML files by their suffix). "
            f"Received: {path}. For example: regcli init {path.with_suffix('.yaml')}."
        )
    return path


def _sibling(target: Path) -> Path:
    """A free name next to `target` for the error message's example (`experiment-2.yaml`)."""
    for n in range(2, 100):
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        if not candidate.exists():
            return candidate
    return target.with_name(f"{target.stem}-new{target.suffix}")


def _make_parents(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; the ones created, outermost first."""
    missing = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise BadInputError(
                    f"{parent} is a file, not a directory, so {directory} cannot be created. Choose another PATH."
                )
            break
        missing.append(parent)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"Cannot create the directory {directory}: {exc.strerror or exc}.") from None
    return missing[::-1]


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise BadInputError(f"Cannot write {path}: {exc.strerror or exc}.") from None


def _write_schema_beside(schema_path: Path, text: str, force: bool) -> tuple[bool, list[str]]:
    """Write the schema unless an identical one is there, or a different one and no `force`."""
    if schema_path.is_file() and not force:
        try:
            same = schema_path.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if same:
            return False, []
        return False, [
            f"kept the existing {schema_path}; it differs from this regcli's schema. "
            f"Refresh it with: regcli schema{' --sweep' if schema_path.name == SWEEP_SCHEMA_FILE else ''} --out {schema_path}"
        ]
    if schema_path.exists() and not schema_path.is_file():
        return False, [f"{schema_path} is not a regular file; the modeline's schema is missing (editors skip it)."]
    _write(schema_path, text)
    return True, []


def _csv_notes(spec: Path) -> list[str]:
    data = spec.parent / "my_data.csv"
    if data.exists():
        return [f"data.path is {data}; set data.target in {spec} to its label column."]
    return [
        f"edit data.path and data.target in {spec}: the spec names my_data.csv (resolved against the spec's "
        f"directory: {data}), which does not exist yet, so `regcli validate {spec}` fails until it does."
    ]


# ======================================================================================
# JSON Schemas
# ======================================================================================
def experiment_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an experiment spec, from `regcli.spec.ExperimentSpec`.

    Keys, types, choices and defaults come from the models (unknown keys are
    `additionalProperties: false`); descriptions from their `Field(description=...)`; numeric
    ranges from the validators. Cross-field checks (data.source xor data.path, ...) and file
    existence are left to `regcli validate`.
    """
    from regcli.spec import models as spec_module

    schema = spec_module.ExperimentSpec.model_json_schema()
    _add_ranges(schema, spec_module.ExperimentSpec, spec_module)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "regcli experiment spec",
        "description": "An experiment for `regcli train` (SPEC.md §2). Only `data` is required. "
        "Generated by `regcli schema`; `regcli validate` also runs the cross-field checks.",
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }


def sweep_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep spec; an inline `base:` is checked as an experiment spec."""
    from regcli.sweep import spec as sweep_module

    experiment = experiment_schema()
    schema = sweep_module.SweepSpec.model_json_schema()
    defs = schema.setdefault("$defs", {})
    clash = set(defs) & set(experiment["$defs"]) | ({"ExperimentSpec"} & set(defs))
    if clash:  # a model renamed into a clash must not silently replace another's schema
        raise RuntimeError(f"sweep and experiment schemas both define {sorted(clash)}")
    defs.update(experiment["$defs"])
    defs["ExperimentSpec"] = {
        key: value for key, value in experiment.items() if key not in ("$defs", "$schema")
    }
    base = schema["properties"]["base"]
    base["anyOf"] = [
        {"type": "string", "description": "An experiment spec file, relative to the sweep file."},
        {"$ref": "#/$defs/ExperimentSpec"},
    ]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "regcli sweep spec",
        "description": "A sweep for `regcli sweep` (SPEC.md §3): a base experiment, the knobs to vary, the "
        "seeds and the selection rule. Generated by `regcli schema --sweep`.",
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }


def schema_text(*, sweep: bool = False) -> str:
    """The schema as the JSON text `regcli schema` prints and `init` writes."""
    return json.dumps(sweep_schema() if sweep else experiment_schema(), indent=2) + "\n"


def write_schema(out: Path, *, sweep: bool = False) -> Path:
    """Write the schema to `out` atomically (creating missing parents); returns `out`.

    Raises:
        BadInputError: `out` is a directory, a parent is a file, or it cannot be written.
    """
    if out.is_dir():
        raise BadInputError(
            f"--out {out} is a directory; give a file name, e.g. --out {out / (SWEEP_SCHEMA_FILE if sweep else EXPERIMENT_SCHEMA_FILE)}."
        )
    _make_parents(out.parent)
    _write(out, schema_text(sweep=sweep))
    return out


def _add_ranges(schema: dict[str, Any], root: type, spec_module: Any) -> None:
    """Copy the numeric bounds of regcli's range validators into the schema (minimum, maximum, ...).

    Ranges live in `BeforeValidator(Range(...))` metadata, which pydantic cannot see through;
    without them an editor would accept `dropout: 1.0` that `regcli validate` refuses.
    """
    from regcli.spec.fields import Range

    models = {name: getattr(spec_module, name, None) for name in schema.get("$defs", {})}
    targets = [(schema, root)] + [(schema["$defs"][name], cls) for name, cls in models.items() if cls is not None]
    for model_schema, cls in targets:
        properties = model_schema.get("properties", {})
        for name, info in cls.model_fields.items():
            if name in properties:
                _apply_ranges(properties[name], info.annotation, info.metadata, Range)


def _apply_ranges(prop: dict[str, Any], tp: Any, metadata: Any, range_type: type) -> None:
    for item in metadata:
        bounds = getattr(item, "func", None)
        if isinstance(bounds, range_type) and prop.get("type") in ("number", "integer"):
            _set_bounds(prop, bounds)
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *extra = get_args(tp)
        _apply_ranges(prop, inner, extra, range_type)
    elif origin in (Union, UnionType):
        members = [arg for arg in get_args(tp) if arg is not NoneType]
        branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
        if len(members) == 1 and not branches:
            _apply_ranges(prop, members[0], (), range_type)
        elif len(members) == len(branches):
            for member, branch in zip(members, branches, strict=True):
                _apply_ranges(branch, member, (), range_type)
    elif origin is list and isinstance(prop.get("items"), dict):
        _apply_ranges(prop["items"], get_args(tp)[0], (), range_type)


def _set_bounds(prop: dict[str, Any], bounds: Any) -> None:
    if bounds.lo is not None:
        prop["exclusiveMinimum" if bounds.lo_open else "minimum"] = bounds.lo
    if bounds.hi is not None:
        prop["exclusiveMaximum" if bounds.hi_open else "maximum"] = bounds.hi
