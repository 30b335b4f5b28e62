"""The experiment spec: safe YAML loading, `--set` overrides, validated pydantic models.

Everything a user writes (SPEC.md §2) passes through this module exactly once. It reads
YAML with a safe loader that resolves floats the way people write them (`1e-4`), refuses
duplicate keys, YAML 1.1 yes/no booleans, python tags and alias bombs; it validates the
result into frozen pydantic models (unknown keys, wrong types and out-of-range values are
errors); and it turns every problem into one `SpecError` that names the dotted key, what
was expected, what was received and the fix. Code downstream trusts the spec.

This module imports only pydantic and PyYAML: `regcli --help` and `regcli validate`
must start instantly.

Example:

```python
spec = load_experiment_spec("configs/breast_cancer.yaml", overrides=["model.l2=1e-3"])
spec.model.l2  # 0.001
```
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import os.path
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from regcli.errors import SpecError

__all__ = [
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
    "validate_experiment",
]

# --------------------------------------------------------------------------------------
# Bounds. Each is far beyond any real experiment; they exist so that a typo or a hostile
# spec (epochs: 10**12, hidden: [10**9]) fails in milliseconds at validation instead of
# hours into a run or in an out-of-memory kill.
# --------------------------------------------------------------------------------------
MAX_SPEC_BYTES = 1_000_000  # a spec is a few hundred bytes; a megabyte is not a spec
MAX_ALIASES = 100  # real specs use a handful of YAML aliases (*name); bombs use thousands
MAX_EXPANDED_NODES = 100_000  # a spec expands to ~200 YAML nodes; "billion laughs" to 10**9
MAX_ENTRIES = 10_000  # entries of one YAML list or mapping; the longest real one is a sweep's 1,000 seeds
MAX_NESTING = 64  # the deepest real spec (model.layers.N.kernel_regularizer.l2) is 5 levels
MAX_INT_DIGITS = 100  # Python refuses to parse ints above 4300 digits; no setting needs 20
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most backends accept 32-bit seeds only
MAX_EPOCHS = 100_000  # a week of 6-second epochs; more is a typo, not an experiment
MAX_BATCH_SIZE = 1_000_000
MAX_UNITS = 65_536  # one 65536 x 65536 float32 Dense kernel is already 16 GiB
MAX_HIDDEN_LAYERS = 64  # the MLP shorthand; deeper plain MLPs do not train without residuals
MAX_LAYERS = 512  # explicit model.layers entries
MAX_KERNEL_SIZE = 1_024  # conv kernel / pool / stride sizes, in pixels
MAX_PENALTY = 1_000.0  # l1/l2 strengths; 1.0 already drives every weight to zero
MAX_LEARNING_RATE = 10.0  # every optimizer here diverges long before this
MAX_SCALE = 1e6  # drift shift/scale, noise stddevs, tolerances: finite and sane
MAX_N_SAMPLES = 1_000_000  # generated data sets: 10**6 rows x 20 features is 160 MB
MAX_N_FEATURES = 10_000
MAX_N_CLASSES = 1_000
# Each bound above is checked alone; their product is not: 10**6 rows x 10**4 features is a
# 74.5 GiB matrix. 2 GiB of float64 (10**6 x 268) is far beyond any regularization experiment.
MAX_GENERATED_BYTES = 2 * 1024**3
GENERATED_DEFAULT_SHAPE = {"n_samples": 1000, "n_features": 20}  # data.GENERATOR_DEFAULTS (moons: 2 features)
MAX_NAME_CHARS = 100  # run directory names stay well below every file system's limit

BUILTIN_SOURCES = (
    "breast_cancer",
    "digits",
    "wine",
    "iris",
    "diabetes",
    "moons",
    "synthetic_classification",
    "synthetic_regression",
)
# The task each built-in data set poses; None: it depends on data.params (n_classes,
# scikit-learn's make_classification default 2).
BUILTIN_TASKS: dict[str, str | None] = {
    "breast_cancer": "binary",
    "digits": "multiclass",
    "wine": "multiclass",
    "iris": "multiclass",
    "diabetes": "regression",
    "moons": "binary",
    "synthetic_classification": None,
    "synthetic_regression": "regression",
}
FILE_SUFFIXES = (".csv", ".parquet", ".npz")
TABULAR_SUFFIXES = (".csv", ".parquet")  # files that need data.target
ACTIVATIONS = ("relu", "gelu", "elu", "selu", "tanh", "sigmoid", "swish", "silu", "leaky_relu", "linear")
MONITORS = ("val_loss", "val_data_loss", "val_accuracy", "val_mae", "loss", "data_loss", "accuracy", "mae")
LAYER_TYPES = (
    "dense",
    "batchnorm",
    "activation",
    "dropout",
    "conv2d",
    "maxpool2d",
    "flatten",
    "spatial_dropout2d",
    "gaussian_noise",
)
# Keys of a spec whose string values are file-system paths (resolved to absolute paths).
PATH_KEYS = ("data.path", "model.init_from")

Source = Literal[
    "breast_cancer",
    "digits",
    "wine",
    "iris",
    "diabetes",
    "moons",
    "synthetic_classification",
    "synthetic_regression",
]
Activation = Literal[
    "relu", "gelu", "elu", "selu", "tanh", "sigmoid", "swish", "silu", "leaky_relu", "linear"
]
Monitor = Literal[
    "val_loss", "val_data_loss", "val_accuracy", "val_mae", "loss", "data_loss", "accuracy", "mae"
]
Padding = Literal["valid", "same"]

_NAME_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}")
_LAYER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_YAML11_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}


# ======================================================================================
# Safe YAML
# ======================================================================================
_TAG = "tag:yaml.org,2002:"
_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
# YAML 1.2 floats: a dot or an exponent is required (`1e-4`, `1.`, `.5e1`, `-3E2`), plus
# .inf/.nan so that validation can name them instead of reading them as strings.
_FLOAT_RE = re.compile(
    r"""[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[0-9][0-9_]*[eE][-+]?[0-9]+
    |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?)
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)""",
    re.X,
)
_BOOL_RE = re.compile(r"true|True|TRUE|false|False|FALSE")


class _RejectedYaml(yaml.MarkedYAMLError):
    """Well-formed YAML that regcli refuses (duplicate key, python tag, alias bomb, ...)."""


class SpecLoader(yaml.SafeLoader):
    """A `yaml.SafeLoader` for specs: YAML 1.2 numbers and booleans, no surprises.

    Differences from `yaml.SafeLoader`: `1e-4` is a float (PyYAML reads it as a string);
    only true/false are booleans (`no` stays the string "no"); `010` stays a string
    instead of becoming octal 8; dates stay strings; a key repeated in one mapping is an
    error; only plain mappings, lists, strings, numbers, booleans and null are built; more
    than `MAX_ALIASES` aliases or more than `MAX_EXPANDED_NODES` nodes after expanding
    aliases is an error (billion laughs).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._alias_count = 0
        self._path: list[str] = []  # dotted key of the node being composed, for messages

    def compose_node(self, parent: Any, index: Any) -> Any:
        label = None
        if isinstance(parent, yaml.SequenceNode):
            label = str(index)
            self._check_entries(parent, index, "entries")
        elif isinstance(parent, yaml.MappingNode):
            if index is None:  # composing a key
                self._check_entries(parent, len(parent.value), "keys")
            else:
                label = str(index.value) if isinstance(index, yaml.ScalarNode) else "<key>"
        if label is None:
            return self._compose_node(parent, index)
        self._path.append(label)
        try:
            return self._compose_node(parent, index)
        finally:
            self._path.pop()

    def _check_entries(self, parent: Any, count: int, what: str) -> None:
        """A list or mapping written out with more than MAX_ENTRIES entries, named by its key."""
        if count >= MAX_ENTRIES:
            kind = "list" if what == "entries" else "mapping"
            name = ".".join(self._path)[:200] or f"the top-level {kind}"
            raise _RejectedYaml(
                problem=f"{name} has more than {MAX_ENTRIES:,} {what}; at most {MAX_ENTRIES:,} are allowed "
                f"in one {kind} of a spec",
                problem_mark=parent.start_mark,
            )

    def _compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._alias_count += 1
            if self._alias_count > MAX_ALIASES:
                raise _RejectedYaml(
                    problem=f"more than {MAX_ALIASES} aliases (*name); regcli refuses documents "
                    "built from that many references (a 'billion laughs' guard). Write the values out",
                    problem_mark=self.peek_event().start_mark,
                )
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _TAG + "merge":
                continue
            key = _canonical_key(key_node)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise _RejectedYaml(
                    problem=f"duplicate key '{key_node.value}' in mapping (first given at line {first}); "
                    "PyYAML would silently keep the last one. Keep only one",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return node

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_undefined(self, node: Any) -> Any:
        tag = str(node.tag).replace(_TAG, "!!")
        raise _RejectedYaml(
            problem=f"the tag '{tag}' is not allowed: regcli reads specs with a safe loader that "
            "builds only mappings, lists, strings, numbers, booleans and null. Remove the tag",
            problem_mark=node.start_mark,
        )

    def construct_strict_int(self, node: Any) -> int:
        value = self.construct_scalar(node)
        digits = value.replace("_", "").lstrip("+-")
        if not _INT_RE.fullmatch(value) or len(digits) > MAX_INT_DIGITS:
            raise _RejectedYaml(
                problem=f"'{value[:40]}' is not a decimal integer", problem_mark=node.start_mark
            )
        return int(value.replace("_", ""))

    def construct_strict_float(self, node: Any) -> float:
        value = self.construct_scalar(node)
        if _INT_RE.fullmatch(value) and len(value) <= MAX_INT_DIGITS:
            return float(int(value.replace("_", "")))
        if not _FLOAT_RE.fullmatch(value):
            raise _RejectedYaml(problem=f"'{value[:40]}' is not a number", problem_mark=node.start_mark)
        return float(self.construct_yaml_float(node))

    def construct_strict_bool(self, node: Any) -> bool:
        value = self.construct_scalar(node)
        if not _BOOL_RE.fullmatch(value):
            raise _RejectedYaml(problem=f"'{value[:40]}' is not true or false", problem_mark=node.start_mark)
        return value.lower() == "true"


def _canonical_key(node: yaml.ScalarNode) -> Any:
    """The value a scalar key stands for, so that `1`/`+1` or `true`/`True` count as one key."""
    if node.tag == _TAG + "bool":
        return (node.tag, node.value.lower())
    if node.tag == _TAG + "null":
        return (node.tag, None)
    if node.tag in (_TAG + "int", _TAG + "float") and len(node.value) <= MAX_INT_DIGITS:
        try:
            return ("number", float(node.value.replace("_", "")))
        except ValueError:  # .inf/.nan spelled differently, or an explicitly tagged junk value
            pass
    return (node.tag, node.value)


def _check_expansion(root: Any) -> None:
    """Refuse alias cycles, nesting deeper than MAX_NESTING and alias bombs.

    Only values that aliases add (expanded values beyond the nodes actually written) count
    towards the 'billion laughs' bound `MAX_EXPANDED_NODES`; a long list written out is
    refused earlier, naming its key (`SpecLoader.compose_node`).
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded node count, height)
    on_path: set[int] = set()

    def visit(node: Any, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in done:
            size, height = done[key]
        else:
            if key in on_path:
                raise _RejectedYaml(
                    problem="an alias refers to a node that contains it", problem_mark=node.start_mark
                )
            if depth > MAX_NESTING:
                raise _RejectedYaml(
                    problem=f"nested more than {MAX_NESTING} levels deep", problem_mark=node.start_mark
                )
            on_path.add(key)
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [item for pair in node.value for item in pair]
            else:
                children = []
            size, height = 1, 0
            for child in children:
                child_size, child_height = visit(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                # Values beyond every node written so far can only come from aliases.
                if size > MAX_EXPANDED_NODES + len(done) + len(on_path):
                    raise _RejectedYaml(
                        problem=f"the document expands to more than {MAX_EXPANDED_NODES:,} values "
                        "through aliases (a 'billion laughs' document); regcli refuses it",
                        problem_mark=node.start_mark,
                    )
            on_path.discard(key)
            done[key] = (size, height)
        if depth + height > MAX_NESTING:
            raise _RejectedYaml(
                problem=f"nested more than {MAX_NESTING} levels deep", problem_mark=node.start_mark
            )
        return size, height

    if root is not None:
        visit(root, 0)


def _install_resolvers(cls: Any, base: Mapping[str, list[Any]]) -> None:
    """Give `cls` the implicit resolvers in `base` plus regcli's YAML 1.2 bool/int/float."""
    cls.yaml_implicit_resolvers = {first: list(pairs) for first, pairs in base.items()}
    cls.add_implicit_resolver(_TAG + "bool", re.compile(f"^(?:{_BOOL_RE.pattern})$"), list("tTfF"))
    cls.add_implicit_resolver(_TAG + "int", re.compile(f"^(?:{_INT_RE.pattern})$"), list("-+0123456789"))
    cls.add_implicit_resolver(
        _TAG + "float", re.compile(f"^(?:{_FLOAT_RE.pattern})$", re.X), list("-+0123456789.")
    )


# Of YAML 1.1's implicit types keep only null and merge (<<); bool, int and float are the
# YAML 1.2 ones above. Dropped: yes/no/on/off, octal and sexagesimal ints, timestamps, `=`.
_install_resolvers(
    SpecLoader,
    {
        first: kept
        for first, pairs in yaml.SafeLoader.yaml_implicit_resolvers.items()
        if (kept := [(tag, rx) for tag, rx in pairs if tag in (_TAG + "null", _TAG + "merge")])
    },
)
SpecLoader.yaml_constructors = {
    tag: fn
    for tag, fn in yaml.SafeLoader.yaml_constructors.items()
    if tag in (_TAG + "null", _TAG + "str", _TAG + "seq", _TAG + "map")
}
SpecLoader.add_constructor(_TAG + "int", SpecLoader.construct_strict_int)
SpecLoader.add_constructor(_TAG + "float", SpecLoader.construct_strict_float)
SpecLoader.add_constructor(_TAG + "bool", SpecLoader.construct_strict_bool)
SpecLoader.add_constructor(None, SpecLoader.construct_undefined)


class SpecDumper(yaml.SafeDumper):
    """Dumps specs so that both `SpecLoader` and plain YAML 1.1 tools read them back the same.

    A string is quoted when either resolver would read it as something else: "1e5" (a
    float to `SpecLoader`) and "no" (a boolean to YAML 1.1) both come out quoted.
    """


_install_resolvers(SpecDumper, yaml.SafeDumper.yaml_implicit_resolvers)
# Lists of scalars on one line (`hidden: [256, 128]`), mappings as indented blocks.
SpecDumper.add_representer(
    list,
    lambda dumper, data: dumper.represent_sequence(
        _TAG + "seq", data, flow_style=not any(isinstance(item, list | dict) for item in data)
    ),
)
SpecDumper.add_representer(
    dict, lambda dumper, data: dumper.represent_mapping(_TAG + "map", data, flow_style=False)
)


class _YamlFailure(Exception):
    """Why a text is not acceptable YAML, and where (1-based line and column, or None)."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.line, self.column = problem, line, column


def _parse_yaml(text: str) -> Any:
    """Parse `text` with `SpecLoader`; every failure becomes `_YamlFailure`."""
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except _RejectedYaml as exc:
        mark = exc.problem_mark
        raise _YamlFailure(f"{exc.problem}.", mark.line + 1, mark.column + 1) from None
    except yaml.MarkedYAMLError as exc:
        problem = f"malformed YAML: {exc.problem}"
        if exc.context:
            cm = exc.context_mark
            problem += f" ({exc.context}" + (
                f" at line {cm.line + 1}, column {cm.column + 1})" if cm else ")"
            )
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            raise _YamlFailure(problem + ".") from None
        raise _YamlFailure(problem + ".", mark.line + 1, mark.column + 1) from None
    except yaml.reader.ReaderError as exc:
        raise _YamlFailure(
            f"contains the character #x{exc.character:04x}, which YAML does not allow "
            f"(at character {exc.position})."
        ) from None
    except yaml.YAMLError as exc:
        raise _YamlFailure(f"malformed YAML: {exc}.") from None
    except RecursionError:
        raise _YamlFailure(f"nested too deeply (more than {MAX_NESTING} levels).") from None


def load_yaml_text(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with regcli's safe loader.

    Args:
        text: the YAML document.
        source: what to call the text in error messages (a file name). Defaults to `"<string>"`.

    Returns:
        The plain value (dict, list, str, int, float, bool or None; None for an empty text).

    Raises:
        SpecError: malformed YAML, or YAML that regcli refuses, with `source:line:col`.
    """
    try:
        return _parse_yaml(text)
    except _YamlFailure as exc:
        where = source if exc.line is None else f"{source}:{exc.line}:{exc.column}"
        raise SpecError(f"Invalid YAML in {where}: {exc.problem}") from None


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a spec file (experiment or sweep) and return its top-level mapping.

    Raises:
        SpecError: the file is missing, a directory, not a regular file (a device, FIFO or
            socket), unreadable, not UTF-8, over `MAX_SPEC_BYTES`, malformed, empty, or its
            top level is not a mapping.
    """
    p = Path(path)
    if not p.exists():
        raise SpecError(f"Spec file {p} does not exist (looked for {p.absolute()}). Check the path.")
    if p.is_dir():
        raise SpecError(
            f"Spec file {p} is a directory; expected a YAML file such as configs/breast_cancer.yaml."
        )
    try:
        text = _read_capped(p).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"Spec file {p} is not UTF-8 text (byte {exc.start}). Save it as UTF-8.") from None
    except OSError as exc:
        raise SpecError(f"Cannot read spec file {p}: {exc.strerror or exc}.") from None
    data = load_yaml_text(text, source=str(p))
    if data is None:
        raise SpecError(
            f"Spec file {p} is empty; expected a mapping with at least data:, e.g. "
            "'data: {source: breast_cancer}'."
        )
    if not isinstance(data, dict):
        raise SpecError(
            f"Spec file {p} must be a YAML mapping of keys such as data:, model:, training:; "
            f"its top level is {_kind(data)}."
        )
    return data


def _read_capped(p: Path) -> bytes:
    """The bytes of regular file `p`, at most `MAX_SPEC_BYTES`; never trusts `st_size`.

    Opened non-blocking so that a FIFO without a writer cannot hang the open; devices,
    FIFOs and sockets are refused before anything is read, and a file that reports size 0
    (/proc) is still read only up to the cap.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(p, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SpecError(
                f"Spec file {p} is {_file_kind(mode)}, not a regular file; expected a YAML file such as "
                "configs/breast_cancer.yaml. regcli does not read specs from devices, pipes or sockets."
            )
        chunks, size = [], 0
        while size <= MAX_SPEC_BYTES and (chunk := os.read(fd, MAX_SPEC_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"Spec file {p} is over {MAX_SPEC_BYTES:,} bytes; a spec is a short YAML file "
            f"(regcli refuses more than {MAX_SPEC_BYTES:,} bytes)."
        )
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    """'a character device', 'a named pipe (FIFO)', ... for messages."""
    kinds = (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def _kind(value: Any) -> str:
    """'a list', 'a string', ... for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null"
    return type(value).__name__


# ======================================================================================
# Problems: one line of an error message each
# ======================================================================================
_UNSET: Any = object()


@dataclass(frozen=True)
class _Problem:
    """One thing wrong with a spec; `key` is relative to where the problem was raised."""

    key: str
    message: str
    received: Any = _UNSET
    fix: str = ""
    unknown_among: tuple[str, ...] | None = None  # set for an unknown key: its siblings


def _fail(*problems: _Problem) -> None:
    """Raise the pydantic error that carries regcli problems to the translator."""
    raise PydanticCustomError(
        "regcli",
        "{summary}",
        {"summary": " ".join(f"{p.key} {p.message}".strip() for p in problems), "problems": problems},
    )


def _show(value: Any) -> str:
    """A short, YAML-flavoured rendering of a received value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=repr)
        except (ValueError, TypeError, RecursionError):
            text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_hint(value: Any, wanted: str) -> str:
    """The fix for a value of the wrong type, when there is an obvious one."""
    if isinstance(value, str):
        if value.strip().lower() in _YAML11_BOOL_WORDS:
            return "regcli reads only true/false as booleans; yes/no/on/off are plain strings."
        if wanted in ("number", "integer") and _looks_numeric(value):
            return f"Write the {wanted} without quotes."
    if isinstance(value, bool) and wanted in ("number", "integer"):
        return f"true/false are booleans, not {wanted}s."
    if wanted == "string" and isinstance(value, int | float | bool):
        return "Quote it to write a string."
    return ""


def _looks_numeric(text: str) -> bool:
    return bool(_INT_RE.fullmatch(text.strip()) or _FLOAT_RE.fullmatch(text.strip()))


def _num_text(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    return repr(x)


@dataclass(frozen=True)
class _Range:
    """A numeric field's type and interval, and the fix to print when a value is outside it.

    `hi_is_cap` marks `hi` as one of the sanity bounds above rather than a meaningful
    limit: messages then say ">= 0" for a negative value and name the bound only when it
    is exceeded.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    hi_is_cap: bool = False
    fix: str = ""

    def expected(self) -> str:
        kind = "an integer" if self.integer else "a number"
        lo, hi = self.lo, None if self.hi_is_cap else self.hi
        if lo is not None and hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"{kind} in {left}{_num_text(lo)}, {_num_text(hi)}{right}"
        if lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {_num_text(lo)}"
        if hi is not None:
            return f"{kind} {'<' if self.hi_open else '<='} {_num_text(hi)}"
        return kind if self.integer else "a finite number"

    def _inside(self, value: float) -> bool:
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def __call__(self, value: Any) -> Any:
        wanted = "integer" if self.integer else "number"
        ok_type = isinstance(value, int) if self.integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            fix = _type_hint(value, wanted)
            if self.integer and isinstance(value, float) and value.is_integer() and self._inside(value):
                fix = f"Write {int(value)} without a decimal point or exponent."
            _fail(_Problem("", f"must be {self.expected()}.", value, fix))
        if isinstance(value, float) and not math.isfinite(value):
            _fail(_Problem("", f"must be {self.expected()}.", value, "NaN and infinity are not allowed."))
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if below or (above and not self.hi_is_cap):
            _fail(_Problem("", f"must be {self.expected()}.", value, self.fix))
        if above:
            _fail(
                _Problem(
                    "",
                    f"must be at most {_num_text(self.hi)}.",
                    value,
                    "Larger values are no real experiment (a sanity bound in regcli/spec.py).",
                )
            )
        return value if self.integer else float(value)


def _num(**kwargs: Any) -> BeforeValidator:
    return BeforeValidator(_Range(**kwargs))


def _penalty(what: str) -> Any:
    return Annotated[
        float,
        _num(
            lo=0, hi=MAX_PENALTY, hi_is_cap=True, fix=f"Use 0 for no {what}; typical values are 1e-5 to 1e-2."
        ),
    ]


_Rate = Annotated[
    float,
    _num(lo=0, hi=1, hi_open=True, fix="A rate of 1 would drop every unit; typical rates are 0.1 to 0.5."),
]
_Seed = Annotated[int, _num(lo=0, hi=MAX_SEED, integer=True, fix="Seeds are 32-bit unsigned integers.")]
_Units = Annotated[int, _num(lo=1, hi=MAX_UNITS, integer=True, fix="Layer widths are positive integers.")]
_Finite = Annotated[float, _num(lo=-MAX_SCALE, hi=MAX_SCALE, hi_is_cap=True)]
_NonNegative = Annotated[float, _num(lo=0, hi=MAX_SCALE, hi_is_cap=True)]


def _size(value: Any) -> Any:
    """A conv/pool size or stride: an integer or a pair [height, width] of integers."""
    check = _Range(lo=1, hi=MAX_KERNEL_SIZE, integer=True)
    if isinstance(value, list):
        if len(value) != 2:
            _fail(_Problem("", "must be an integer or a pair [height, width].", value))
        return [check(v) for v in value]
    try:
        return check(value)
    except PydanticCustomError:
        _fail(_Problem("", f"must be {check.expected()} or a pair [height, width] of them.", value))


_Size = Annotated[int | list[int], BeforeValidator(_size)]


def _bounded_list(max_len: int, example: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, list):
            _fail(_Problem("", f"must be a list such as {example}.", value))
        if len(value) > max_len:
            _fail(_Problem("", f"must have at most {max_len} entries.", _Verbatim(f"{len(value)} entries")))
        return value

    return BeforeValidator(check)


def _string(pattern: re.Pattern[str], expected: str, fix: str = "") -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            _fail(_Problem("", f"must be {expected}.", value, _type_hint(value, "string") or fix))
        if not pattern.fullmatch(value):
            _fail(_Problem("", f"must be {expected}.", value, fix))
        return value

    return BeforeValidator(check)


def _path_string(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        _fail(_Problem("", "must be a non-empty path string.", value, _type_hint(value, "string")))
    if "\x00" in value or len(value) > 4096:
        _fail(_Problem("", "must be a file-system path.", value))
    return value


_PathStr = Annotated[str, BeforeValidator(_path_string)]


def _freeze_entry(value: Any) -> Any:
    if isinstance(value, str) and _LAYER_NAME_RE.fullmatch(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_LAYERS:
        return value
    _fail(
        _Problem(
            "",
            f"must be a layer name or a layer index in [-{MAX_LAYERS}, {MAX_LAYERS}].",
            value,
            "List the layers to freeze, e.g. freeze: [0, dense_1].",
        )
    )


def _expand_user(value: str) -> Path:
    """`~/x` -> the home directory; `~nobody/x` of an unknown user stays as written."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        return Path(value)


def _resolve_path(value: str, info: ValidationInfo) -> tuple[Path, Path]:
    """(absolute path, base directory): relative paths are resolved against `base_dir`."""
    base = Path((info.context or {}).get("base_dir") or Path.cwd()).absolute()
    path = _expand_user(value)
    if not path.is_absolute():
        path = base / path
    return Path(os.path.normpath(path)), base


# ======================================================================================
# Models
# ======================================================================================
class _Strict(BaseModel):
    """Frozen, unknown keys forbidden, no silent type coercion (an int may stand for a float)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class DriftSpec(_Strict):
    """A covariate shift applied to the validation and test features only.

    Use it to see how a regularized model degrades when the world moves: features
    become `x * scale + shift` (in standardized units) after the split.
    """

    shift: _Finite = Field(
        0.0, description="Added to every validation/test feature (standardized units). Defaults to `0.0`."
    )
    scale: Annotated[
        float, _num(lo=0, lo_open=True, hi=MAX_SCALE, hi_is_cap=True, fix="Use 1.0 for no scaling.")
    ] = Field(1.0, description="Multiplies every validation/test feature. Defaults to `1.0`.")


# Generator arguments of the synthetic data sets; data.py passes them on unchanged.
_PARAM_RANGES: dict[str, _Range] = {
    "n_samples": _Range(lo=10, hi=MAX_N_SAMPLES, integer=True, fix="Fewer than 10 rows cannot be split."),
    "n_features": _Range(lo=1, hi=MAX_N_FEATURES, integer=True),
    "n_informative": _Range(lo=1, hi=MAX_N_FEATURES, integer=True),
    "n_redundant": _Range(lo=0, hi=MAX_N_FEATURES, integer=True),
    "n_classes": _Range(lo=2, hi=MAX_N_CLASSES, integer=True),
    "n_clusters_per_class": _Range(lo=1, hi=100, integer=True),
    "class_sep": _Range(lo=0, lo_open=True, hi=MAX_SCALE, hi_is_cap=True),
    "flip_y": _Range(lo=0, hi=1),
    "noise": _Range(lo=0, hi=MAX_SCALE, hi_is_cap=True),
    "bias": _Range(lo=-MAX_SCALE, hi=MAX_SCALE),
}
SOURCE_PARAMS: dict[str, tuple[str, ...]] = {
    "moons": ("n_samples", "noise"),
    "synthetic_classification": (
        "n_samples",
        "n_features",
        "n_informative",
        "n_redundant",
        "n_classes",
        "n_clusters_per_class",
        "class_sep",
        "flip_y",
    ),
    "synthetic_regression": ("n_samples", "n_features", "n_informative", "noise", "bias"),
}


class DataSpec(_Strict):
    """Where the rows come from and how they are split, scaled and perturbed.

    Exactly one of `source` (a built-in data set) and `path` (a .csv, .parquet or .npz
    file) is given. Fractions are of the whole data set; the test split is held out.
    """

    source: Source | None = Field(
        None, description=f"A built-in data set: {', '.join(BUILTIN_SOURCES)}. Defaults to `None`."
    )
    path: _PathStr | None = Field(
        None,
        description="A .csv, .parquet or .npz file (arrays X, y); relative paths are resolved against the "
        "spec file's directory and stored absolute. Defaults to `None`.",
    )
    target: Annotated[str, _string(re.compile(r".{1,1000}", re.S), "a column name")] | None = Field(
        None, description="The label column of a .csv/.parquet file. Defaults to `None`."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Generator arguments of moons and synthetic_* sources (n_samples, n_features, noise, ...). "
        "Defaults to `{}`.",
    )
    split_seed: _Seed | None = Field(
        None,
        description="Seed of the train/val/test split; null uses the top-level `seed`. Defaults to `None`.",
    )
    val_fraction: Annotated[
        float,
        _num(
            lo=0,
            hi=1,
            lo_open=True,
            hi_open=True,
            fix="Validation drives early stopping and selection; 0.2 is typical.",
        ),
    ] = Field(0.2, description="Share of all rows held out for validation, in (0, 1). Defaults to `0.2`.")
    test_fraction: Annotated[
        float, _num(lo=0, hi=1, hi_open=True, fix="Use 0 for no test split; 0.2 is typical.")
    ] = Field(0.2, description="Share of all rows held out for the final test, in [0, 1). Defaults to `0.2`.")
    stratify: bool = Field(
        True, description="Stratify the splits by class (classification only). Defaults to `True`."
    )
    standardize: bool = Field(
        True, description="Standardize features, fitted on the training split only. Defaults to `True`."
    )
    train_fraction: Annotated[
        float, _num(lo=0, hi=1, lo_open=True, fix="Use 1.0 to keep the whole training split.")
    ] = Field(
        1.0,
        description="Keep this share of the training split (limited labeled data), in (0, 1]. Defaults to `1.0`.",
    )
    label_noise: Annotated[
        float,
        _num(lo=0, hi=0.5, hi_open=True, fix="At 0.5 the labels carry no signal; use 0.0 to 0.3."),
    ] = Field(0.0, description="Flip this share of training labels only, in [0, 0.5). Defaults to `0.0`.")
    drift: DriftSpec | None = Field(
        None, description="Covariate shift applied to validation/test features. Defaults to `None`."
    )

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        """data.path has a known suffix and exists; stored as an absolute path."""
        if value is None:
            return None
        path, base = _resolve_path(value, info)
        if path.suffix.lower() not in FILE_SUFFIXES:
            _fail(_Problem("", "must be a .csv, .parquet or .npz file.", value))
        if not path.exists():
            _fail(
                _Problem(
                    "",
                    f"file not found: {path}.",
                    value,
                    f"Relative paths are resolved against the spec file's directory ({base}).",
                )
            )
        if path.is_dir():
            _fail(_Problem("", f"is a directory ({path}); expected a data file.", value))
        return str(path)

    @field_validator("params", mode="before")
    @classmethod
    def _check_params(cls, value: Any, info: ValidationInfo) -> Any:
        """data.params holds only the known generator arguments of the chosen source."""
        if not isinstance(value, dict):
            _fail(_Problem("", "must be a mapping such as {n_samples: 1000, noise: 0.2}.", value))
        if not value:
            return {}
        source = info.data.get("source")
        if "source" not in info.data:  # source itself is invalid and already reported
            return dict(value)
        if source not in SOURCE_PARAMS:
            used = f"data.source {source}" if source else "a data file (data.path)"
            _fail(
                _Problem(
                    "",
                    f"is only for the generated data sets {', '.join(SOURCE_PARAMS)}, not for {used}.",
                    value,
                    "Remove data.params.",
                )
            )
        allowed = SOURCE_PARAMS[source]
        problems = []
        for key, item in value.items():
            if key not in allowed:
                problems.append(_Problem(str(key), "", unknown_among=allowed))
                continue
            try:
                _PARAM_RANGES[key](item)
            except PydanticCustomError as exc:
                problems.extend(_prefixed(p, key) for p in exc.context["problems"])  # type: ignore[index]
        if problems:
            _fail(*problems)
        params = {key: (item if _PARAM_RANGES[key].integer else float(item)) for key, item in value.items()}
        _check_generated_size(source, params)
        n_features, n_informative = params.get("n_features"), params.get("n_informative")
        if n_features is not None and n_informative is not None and n_informative > n_features:
            _fail(
                _Problem(
                    "n_informative",
                    f"must be <= data.params.n_features ({n_features}).",
                    n_informative,
                )
            )
        n_redundant = params.get("n_redundant")
        if None not in (n_features, n_informative, n_redundant) and n_informative + n_redundant > n_features:
            _fail(
                _Problem(
                    "n_redundant",
                    f"data.params.n_informative + n_redundant must be <= n_features ({n_features}).",
                    n_redundant,
                )
            )
        return params


def _check_generated_size(source: str, params: Mapping[str, Any]) -> None:
    """data.params: the generated float64 matrix (rows x features x 8 bytes) fits MAX_GENERATED_BYTES."""
    rows = params.get("n_samples", GENERATED_DEFAULT_SHAPE["n_samples"])
    features = 2 if source == "moons" else params.get("n_features", GENERATED_DEFAULT_SHAPE["n_features"])
    need = rows * features * 8
    if need <= MAX_GENERATED_BYTES:
        return
    _fail(
        _Problem(
            "",
            f"n_samples x n_features = {rows:,} x {features:,} would generate a {_bytes_text(need)} feature matrix "
            f"(rows x features x 8-byte floats, before splitting); regcli generates at most "
            f"{_bytes_text(MAX_GENERATED_BYTES)}.",
            dict(params),
            f"Lower n_samples or n_features, e.g. n_features: {max(1, MAX_GENERATED_BYTES // (8 * rows)):,} "
            f"with {rows:,} rows.",
        )
    )


def _bytes_text(n: int) -> str:
    """1.5 GiB, 74.5 GiB, 512.0 MiB: sizes the way numpy's MemoryError reports them."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _prefixed(problem: _Problem, prefix: str) -> _Problem:
    """`problem` with `prefix` put in front of its key."""
    key = f"{prefix}.{problem.key}" if problem.key else prefix
    return _Problem(key, problem.message, problem.received, problem.fix, problem.unknown_among)


class RegularizerSpec(_Strict):
    """L1/L2 strengths of one penalty (`keras.regularizers.L1L2`)."""

    l1: _penalty("L1 penalty") = Field(0.0, description="L1 strength, >= 0. Defaults to `0.0`.")
    l2: _penalty("L2 penalty") = Field(0.0, description="L2 strength, >= 0. Defaults to `0.0`.")


_LayerName = Annotated[
    str,
    _string(_LAYER_NAME_RE, "a layer name of letters, digits, '.', '_' or '-' (1 to 100 characters)"),
]


class _Layer(_Strict):
    """Fields every explicit layer has; `type` is narrowed to one Literal by each subclass."""

    type: str = Field(description="Layer type.")
    name: _LayerName | None = Field(
        None, description="Keras layer name (unique in the model). Defaults to `None`."
    )


class DenseLayerSpec(_Layer):
    """`keras.layers.Dense` with optional kernel, bias and activity penalties."""

    type: Literal["dense"] = Field(description="Layer type.")
    units: _Units = Field(description="Number of units, in [1, 65536].")
    activation: Activation | None = Field(None, description="Activation; null is linear. Defaults to `None`.")
    use_bias: bool = Field(True, description="Add a bias vector. Defaults to `True`.")
    kernel_regularizer: RegularizerSpec | None = Field(
        None, description="Kernel penalty. Defaults to `None`."
    )
    bias_regularizer: RegularizerSpec | None = Field(None, description="Bias penalty. Defaults to `None`.")
    activity_regularizer: RegularizerSpec | None = Field(
        None, description="Output penalty. Defaults to `None`."
    )


class BatchNormLayerSpec(_Layer):
    """`keras.layers.BatchNormalization`: batch statistics in training, moving averages in inference."""

    type: Literal["batchnorm"] = Field(description="Layer type.")
    momentum: Annotated[float, _num(lo=0, hi=1, hi_open=True, fix="0.99 is Keras's default.")] = Field(
        0.99, description="Momentum of the moving averages, in [0, 1). Defaults to `0.99`."
    )
    epsilon: Annotated[float, _num(lo=0, lo_open=True, hi=1, fix="1e-3 is Keras's default.")] = Field(
        1e-3, description="Added to the variance for stability, in (0, 1]. Defaults to `0.001`."
    )


class ActivationLayerSpec(_Layer):
    """`keras.layers.Activation`."""

    type: Literal["activation"] = Field(description="Layer type.")
    activation: Activation = Field(description=f"One of {', '.join(ACTIVATIONS)}.")


class DropoutLayerSpec(_Layer):
    """`keras.layers.Dropout`: active only while training."""

    type: Literal["dropout"] = Field(description="Layer type.")
    rate: _Rate = Field(description="Share of inputs dropped while training, in [0, 1).")


class Conv2DLayerSpec(_Layer):
    """`keras.layers.Conv2D` with optional kernel, bias and activity penalties."""

    type: Literal["conv2d"] = Field(description="Layer type.")
    filters: _Units = Field(description="Number of filters, in [1, 65536].")
    kernel_size: _Size = Field(description="Kernel size: an integer or [height, width].")
    strides: _Size = Field(1, description="Strides: an integer or [height, width]. Defaults to `1`.")
    padding: Padding = Field("valid", description="valid or same. Defaults to `valid`.")
    activation: Activation | None = Field(None, description="Activation; null is linear. Defaults to `None`.")
    use_bias: bool = Field(True, description="Add a bias vector. Defaults to `True`.")
    kernel_regularizer: RegularizerSpec | None = Field(
        None, description="Kernel penalty. Defaults to `None`."
    )
    bias_regularizer: RegularizerSpec | None = Field(None, description="Bias penalty. Defaults to `None`.")
    activity_regularizer: RegularizerSpec | None = Field(
        None, description="Output penalty. Defaults to `None`."
    )


class MaxPool2DLayerSpec(_Layer):
    """`keras.layers.MaxPooling2D`."""

    type: Literal["maxpool2d"] = Field(description="Layer type.")
    pool_size: _Size = Field(2, description="Pool size: an integer or [height, width]. Defaults to `2`.")
    strides: _Size | None = Field(None, description="Strides; null uses pool_size. Defaults to `None`.")
    padding: Padding = Field("valid", description="valid or same. Defaults to `valid`.")


class FlattenLayerSpec(_Layer):
    """`keras.layers.Flatten`."""

    type: Literal["flatten"] = Field(description="Layer type.")


class SpatialDropout2DLayerSpec(_Layer):
    """`keras.layers.SpatialDropout2D`: drops whole feature maps while training."""

    type: Literal["spatial_dropout2d"] = Field(description="Layer type.")
    rate: _Rate = Field(description="Share of feature maps dropped while training, in [0, 1).")


class GaussianNoiseLayerSpec(_Layer):
    """`keras.layers.GaussianNoise`: additive noise while training only."""

    type: Literal["gaussian_noise"] = Field(description="Layer type.")
    stddev: Annotated[float, _num(lo=0, hi=MAX_SCALE, hi_is_cap=True, fix="0.1 is a typical value.")] = Field(
        description="Standard deviation of the noise, >= 0."
    )


LayerSpec = Annotated[
    Union[  # noqa: UP007 - a discriminated union reads best spelled out
        DenseLayerSpec,
        BatchNormLayerSpec,
        ActivationLayerSpec,
        DropoutLayerSpec,
        Conv2DLayerSpec,
        MaxPool2DLayerSpec,
        FlattenLayerSpec,
        SpatialDropout2DLayerSpec,
        GaussianNoiseLayerSpec,
    ],
    Field(discriminator="type"),
]

DEFAULT_HIDDEN = (256, 128)
# The MLP-shorthand knobs: they shape model.hidden blocks and have no effect on model.layers.
SHORTHAND_KNOBS = ("activation", "batchnorm", "dropout", "l1", "l2", "bias_l2", "activity_l2", "bn_momentum")


class ModelSpec(_Strict):
    """The network: the MLP shorthand (`hidden`) or an explicit list of `layers`.

    A shorthand block is Dense(use_bias=False) -> BatchNormalization -> Activation ->
    Dropout, with the l1/l2 kernel penalties on every Dense kernel. `hidden` defaults to
    [256, 128] when `layers` is not given.
    """

    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto", description="auto (from the targets), binary, multiclass or regression. Defaults to `auto`."
    )
    hidden: Annotated[list[_Units], _bounded_list(MAX_HIDDEN_LAYERS, "[256, 128]")] | None = Field(
        None,
        description="Widths of the shorthand blocks; [256, 128] when `layers` is not given; [] is a linear "
        "model. Defaults to `[256, 128]`.",
    )
    activation: Activation = Field(
        "relu", description=f"One of {', '.join(ACTIVATIONS)}. Defaults to `relu`."
    )
    batchnorm: bool = Field(True, description="BatchNormalization in every block. Defaults to `True`.")
    dropout: _Rate = Field(0.2, description="Dropout rate after every block, in [0, 1). Defaults to `0.2`.")
    l1: _penalty("L1 penalty") = Field(0.0, description="L1 kernel penalty, >= 0. Defaults to `0.0`.")
    l2: _penalty("L2 penalty") = Field(1e-4, description="L2 kernel penalty, >= 0. Defaults to `0.0001`.")
    bias_l2: _penalty("bias penalty") = Field(0.0, description="L2 bias penalty, >= 0. Defaults to `0.0`.")
    activity_l2: _penalty("activity penalty") = Field(
        0.0, description="L2 activity (output) penalty, >= 0. Defaults to `0.0`."
    )
    bn_momentum: Annotated[float, _num(lo=0, hi=1, hi_open=True, fix="0.99 is Keras's default.")] = Field(
        0.99, description="BatchNormalization momentum, in [0, 1). Defaults to `0.99`."
    )
    layers: Annotated[list[LayerSpec], _bounded_list(MAX_LAYERS, "[{type: dense, units: 64}]")] | None = (
        Field(None, description="Explicit layers (instead of `hidden`). Defaults to `None`.")
    )
    init_from: _PathStr | None = Field(
        None, description="A run directory whose shipped weights initialise the model. Defaults to `None`."
    )
    freeze: Annotated[
        list[Annotated[str | int, BeforeValidator(_freeze_entry)]], _bounded_list(MAX_LAYERS, "[0, dense_1]")
    ] = Field(default_factory=list, description="Layer names or indices to freeze. Defaults to `[]`.")

    @model_validator(mode="before")
    @classmethod
    def _default_hidden(cls, data: Any) -> Any:
        """hidden defaults to [256, 128] only when layers is not given."""
        if isinstance(data, dict) and data.get("hidden") is None and data.get("layers") is None:
            return {**data, "hidden": list(DEFAULT_HIDDEN)}
        return data

    @field_validator("init_from")
    @classmethod
    def _init_from_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        """model.init_from is an existing directory; stored as an absolute path."""
        if value is None:
            return None
        path, base = _resolve_path(value, info)
        if not path.is_dir():
            what = "is a file, not a run directory" if path.exists() else "directory not found"
            _fail(
                _Problem(
                    "",
                    f"{what}: {path}.",
                    value,
                    f"Point it at a finished run directory; relative paths are resolved against {base}.",
                )
            )
        return str(path)


class EarlyStoppingSpec(_Strict):
    """`keras.callbacks.EarlyStopping`, followed exactly (SPEC §5.3)."""

    enabled: bool = Field(
        True, description="Stop when the monitored value stops improving. Defaults to `True`."
    )
    monitor: Monitor = Field("val_loss", description=f"One of {', '.join(MONITORS)}. Defaults to `val_loss`.")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="auto: max for accuracy, min otherwise (see `regcli.replay.resolve_mode`). Defaults to `auto`."
    )
    min_delta: Annotated[
        float, _num(lo=0, hi=MAX_SCALE, hi_is_cap=True, fix="Use 0 to count any improvement.")
    ] = Field(0.0, description="Smallest change that counts as an improvement, >= 0. Defaults to `0.0`.")
    patience: Annotated[
        int,
        _num(
            lo=0,
            hi=MAX_EPOCHS,
            integer=True,
            hi_is_cap=True,
            fix="Use 0 to stop at the first epoch without improvement.",
        ),
    ] = Field(5, description="Epochs without improvement before stopping, >= 0. Defaults to `5`.")
    restore_best_weights: bool = Field(
        True, description="Ship the best epoch's weights, also when epochs run out. Defaults to `True`."
    )
    start_from_epoch: Annotated[
        int,
        _num(lo=0, hi=MAX_EPOCHS, integer=True, hi_is_cap=True, fix="Use 0 to watch from the first epoch."),
    ] = Field(0, description="Epochs to wait before watching for improvement, >= 0. Defaults to `0`.")
    baseline: _Finite | None = Field(
        None, description="Stop unless the monitored value beats this baseline. Defaults to `None`."
    )


class TrainingSpec(_Strict):
    """Optimizer, schedule length and early stopping."""

    epochs: Annotated[
        int, _num(lo=1, hi=MAX_EPOCHS, integer=True, fix="Early stopping ends runs sooner; 100 is typical.")
    ] = Field(100, description=f"Maximum number of epochs, in [1, {MAX_EPOCHS}]. Defaults to `100`.")
    batch_size: Annotated[int, _num(lo=1, hi=MAX_BATCH_SIZE, integer=True, fix="32 to 256 is typical.")] = (
        Field(32, description=f"Rows per gradient step, in [1, {MAX_BATCH_SIZE}]. Defaults to `32`.")
    )
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = Field(
        "adam", description="adam, adamw, sgd or rmsprop. Defaults to `adam`."
    )
    learning_rate: Annotated[
        float,
        _num(lo=0, lo_open=True, hi=MAX_LEARNING_RATE, fix="1e-3 is a good start for adam."),
    ] = Field(1e-3, description="Step size, in (0, 10]. Defaults to `0.001`.")
    weight_decay: Annotated[
        float,
        _num(lo=0, hi=MAX_PENALTY, hi_is_cap=True, fix="Use 0 for none; 1e-4 to 1e-2 is typical for adamw."),
    ] = Field(
        0.0, description="Decoupled weight decay (not L2; reported separately), >= 0. Defaults to `0.0`."
    )
    early_stopping: EarlyStoppingSpec = Field(
        default_factory=EarlyStoppingSpec, description="Early stopping settings."
    )


class DiagnosisSpec(_Strict):
    """Thresholds of the bias/variance diagnosis (SPEC §5.7)."""

    target_error: _NonNegative | None = Field(
        None, description="Human-level / Bayes error estimate; null means 0. Defaults to `None`."
    )
    bias_tolerance: _NonNegative = Field(
        0.05, description="Avoidable bias (train error - target) above this is high bias. Defaults to `0.05`."
    )
    gap_tolerance: _NonNegative = Field(
        0.02,
        description="Variance (val error - clean train error) above this is high variance. Defaults to `0.02`.",
    )
    not_learning_margin: _NonNegative = Field(
        0.01,
        description="A val error within this of the majority-class / mean predictor's is not_learning. Defaults to `0.01`.",
    )
    max_penalty_share: Annotated[float, _num(lo=0, lo_open=True, hi=1, fix="0.5 is the default.")] = Field(
        0.5, description="Warn when the L1/L2 penalty is more than this share of the loss. Defaults to `0.5`."
    )
    curve_window: Annotated[int, _num(lo=2, hi=MAX_EPOCHS, integer=True, fix="10 is the default.")] = Field(
        10, description="Recent epochs over which slopes and validation noise are measured. Defaults to `10`."
    )


# URI schemes MLflow can log to from here: a local directory (file store), a local SQLite
# database, or a tracking server. A string without a scheme is a directory path.
MLFLOW_URI_SCHEMES = ("file", "sqlite", "http", "https")
_URI_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def _mlflow_uri(value: Any, info: ValidationInfo) -> Any:
    """tracking.mlflow.uri: a directory, file:///abs, sqlite:///file.db or http(s)://host; local ones made absolute."""
    from urllib.parse import urlsplit

    fix = "Use a directory such as mlruns, sqlite:///mlflow.db, or a tracking server such as http://localhost:5000."
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 4096:
        _fail(_Problem("", "must be a non-empty string.", value, _type_hint(value, "string") or fix))
    scheme = m.group(1).lower() if (m := _URI_SCHEME_RE.match(value)) else None
    if scheme is None:  # a directory path: relative to the spec file's directory
        return str(_resolve_path(value, info)[0])
    if scheme not in MLFLOW_URI_SCHEMES:
        _fail(_Problem("", f"must be a directory path or a {', '.join(MLFLOW_URI_SCHEMES)} URI.", value, fix))
    parts = urlsplit(value)
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            _fail(_Problem("", "must be a file URI with an absolute path, file:///abs/path/mlruns.", value,
                           "Or write the directory path without file: (relative paths are resolved "
                           "against the spec file's directory)."))
        return "file://" + os.path.normpath(parts.path)
    if scheme == "sqlite":
        path = value[len("sqlite:///"):] if value.lower().startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            _fail(_Problem("", "must name a database file: sqlite:///mlflow.db (relative) or sqlite:////abs/mlflow.db.",
                           value))
        return "sqlite:///" + str(_resolve_path(path, info)[0])
    if not parts.hostname:
        _fail(_Problem("", f"must name the tracking server: {scheme}://HOST[:PORT].", value, fix))
    try:
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535
    except ValueError:
        _fail(_Problem("", "has an invalid port.", value, fix))
    return value.rstrip("/")


class MlflowSpec(_Strict):
    """Where to log a run in MLflow: a tracking store and an experiment name.

    Use it to browse runs and compare them in the MLflow UI. regcli logs once the run has
    finished: params (the resolved spec, dotted keys), per-epoch metrics (step = epoch),
    summary numbers, verdict and best epoch as tags, and the run directory's files as
    artifacts. Needs `pip install 'regcli[mlflow]'`.
    """

    uri: Annotated[str, BeforeValidator(_mlflow_uri)] = Field(
        description="Tracking store: a directory (file store; relative to the spec file), file:///abs/dir, "
        "sqlite:///mlflow.db (relative to the spec file) or sqlite:////abs/mlflow.db, or http(s)://host:port."
    )
    experiment: Annotated[
        str, _string(re.compile(r"[^\x00-\x1f\x7f]{1,256}"), "an experiment name of 1 to 256 printable characters")
    ] = Field("regcli", description="MLflow experiment the run is logged to (created if missing). Defaults to `regcli`.")


class TrackingSpec(_Strict):
    """Experiment tracking, opt-in: TensorBoard event files and an MLflow run.

    Both are off by default; the run directory alone is the record of a run.
    """

    tensorboard: bool = Field(
        False,
        description="Write per-epoch TensorBoard scalars (every history.csv column) to <run_dir>/tensorboard/. "
        "Defaults to `False`.",
    )
    mlflow: MlflowSpec | None = Field(
        None, description="Log the finished run to MLflow: {uri: ..., experiment: ...}. Defaults to `None`."
    )

    @field_validator("mlflow", mode="before")
    @classmethod
    def _mlflow_mapping(cls, value: Any) -> Any:
        """tracking.mlflow is a mapping or null (a bare `true` or URI is a common slip)."""
        if value is not None and not isinstance(value, dict):
            _fail(_Problem("", "must be a mapping such as {uri: mlruns, experiment: regcli}, or null.", value,
                           "Write the tracking store under uri:."))
        return value


class ExperimentSpec(_Strict):
    """One experiment: data, model, training and diagnosis settings (SPEC §2).

    Only `data` is required; everything else has the defaults the seed considers best
    practice. Build it with `load_experiment_spec` or `validate_experiment`, which
    resolve relative paths and translate errors into `SpecError`.
    """

    name: (
        Annotated[
            str,
            _string(
                _NAME_RE,
                f"1 to {MAX_NAME_CHARS} characters from A-Z a-z 0-9 . _ - not starting with '.' or '-'",
                "It names the run directory inside the output directory, e.g. bc-l2-dropout.",
            ),
        ]
        | None
    ) = Field(
        None, description="Run name; the run directory is <out>/<name>-<timestamp>-<id>. Defaults to `None`."
    )
    seed: _Seed = Field(0, description="One seed drives split, init, shuffling and dropout. Defaults to `0`.")
    backend: Literal["tensorflow", "jax", "torch"] = Field(
        "tensorflow", description="Keras 3 backend. Defaults to `tensorflow`."
    )
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="auto (GPU when one is visible), cpu or gpu. Defaults to `auto`."
    )
    data: DataSpec = Field(description="The data set and its splits.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="The network.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Optimizer and early stopping.")
    diagnosis: DiagnosisSpec = Field(default_factory=DiagnosisSpec, description="Diagnosis thresholds.")
    tracking: TrackingSpec = Field(
        default_factory=TrackingSpec, description="Experiment tracking (TensorBoard, MLflow); off by default."
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> ExperimentSpec:
        problems = [p for check in _CROSS_CHECKS for p in check(self)]
        if problems:
            _fail(*problems)
        return self


# ======================================================================================
# Cross-field checks: small named functions, each returning its problems
# ======================================================================================
def _check_source_xor_path(spec: ExperimentSpec) -> list[_Problem]:
    """Exactly one of data.source and data.path."""
    data = spec.data
    if data.source is not None and data.path is not None:
        return [
            _Problem(
                "data",
                "It is invalid to specify both data.source AND data.path.",
                fix="Keep data.source for a built-in data set or data.path for your own file.",
            )
        ]
    if data.source is None and data.path is None:
        return [
            _Problem(
                "data",
                "needs data.source (a built-in data set) or data.path (a .csv, .parquet or .npz file).",
                fix=f"Built-in data sets: {', '.join(BUILTIN_SOURCES)}.",
            )
        ]
    return []


def _check_target(spec: ExperimentSpec) -> list[_Problem]:
    """data.target is required for .csv/.parquet files and meaningless otherwise."""
    data = spec.data
    tabular = data.path is not None and Path(data.path).suffix.lower() in TABULAR_SUFFIXES
    if tabular and data.target is None:
        return [
            _Problem(
                "data.target",
                f"is required for a {Path(data.path).suffix} file: name its label column.",
                fix="For example: target: label.",
            )
        ]
    if not tabular and data.target is not None and (data.source or data.path):
        what = (
            f"data.source {data.source} brings its own labels"
            if data.source
            else ".npz files hold arrays X and y"
        )
        return [
            _Problem(
                "data.target",
                f"applies only to .csv and .parquet files; {what}.",
                data.target,
                "Remove data.target.",
            )
        ]
    return []


def _check_fractions(spec: ExperimentSpec) -> list[_Problem]:
    """Validation and test splits leave rows for training."""
    val, test = spec.data.val_fraction, spec.data.test_fraction
    if val + test < 1:
        return []
    return [
        _Problem(
            "data.val_fraction + data.test_fraction",
            "must be < 1 so that rows remain for training.",
            _Verbatim(f"{_num_text(val)} + {_num_text(test)} = {_num_text(round(val + test, 12))}"),
            "Lower one of them; the defaults are 0.2 + 0.2.",
        )
    ]


def _check_hidden_xor_layers(spec: ExperimentSpec) -> list[_Problem]:
    """model.hidden and model.layers are mutually exclusive."""
    if spec.model.hidden is not None and spec.model.layers is not None:
        return [
            _Problem(
                "model",
                "It is invalid to specify both model.hidden AND model.layers.",
                fix="Use model.hidden for the MLP shorthand or model.layers for full control, not both.",
            )
        ]
    return []


def _check_shorthand_knobs(spec: ExperimentSpec) -> list[_Problem]:
    """Shorthand knobs changed from their defaults have no effect with model.layers."""
    if spec.model.layers is None:
        return []
    fields = ModelSpec.model_fields
    return [
        _Problem(
            f"model.{knob}",
            "applies only to the model.hidden shorthand and has no effect with model.layers.",
            getattr(spec.model, knob),
            "Set it on the layers instead (e.g. {type: dropout, rate: 0.3}, kernel_regularizer: {l2: 1.0e-4}) "
            f"or remove model.{knob}.",
        )
        for knob in SHORTHAND_KNOBS
        if getattr(spec.model, knob) != fields[knob].default
    ]


def _check_layer_names(spec: ExperimentSpec) -> list[_Problem]:
    """Explicit layer names are unique (Keras refuses duplicates)."""
    first: dict[str, int] = {}
    problems = []
    for index, layer in enumerate(spec.model.layers or []):
        if layer.name is None:
            continue
        if layer.name in first:
            problems.append(
                _Problem(
                    f"model.layers.{index}.name",
                    f"is already the name of model.layers.{first[layer.name]}; layer names must be unique.",
                    layer.name,
                )
            )
        first.setdefault(layer.name, index)
    return problems


def _data_task(data: DataSpec) -> str | None:
    """The task a built-in data set poses (binary/multiclass/regression); None for files."""
    if data.source == "synthetic_classification":
        return "binary" if data.params.get("n_classes", 2) == 2 else "multiclass"
    return BUILTIN_TASKS.get(data.source or "")


def _known_task(spec: ExperimentSpec) -> str | None:
    """The task when model.task or a built-in data set fixes it, else None."""
    return spec.model.task if spec.model.task != "auto" else _data_task(spec.data)


def _check_task_matches_data(spec: ExperimentSpec) -> list[_Problem]:
    """An explicit model.task fits the built-in data set (multiclass may model a binary one)."""
    task, data_task = spec.model.task, _data_task(spec.data)
    if (
        task == "auto"
        or data_task is None
        or task == data_task
        or (task, data_task) == ("multiclass", "binary")
    ):
        return []
    return [
        _Problem(
            "model.task",
            f"does not fit data.source {spec.data.source}, a {data_task} data set.",
            task,
            f"Use task: auto (or {data_task}).",
        )
    ]


def _check_monitor_matches_task(spec: ExperimentSpec) -> list[_Problem]:
    """accuracy is a classification metric and mae a regression metric."""
    task, monitor = _known_task(spec), spec.training.early_stopping.monitor
    metric = monitor.removeprefix("val_")
    if task == "regression" and metric == "accuracy":
        other = "val_mae" if monitor.startswith("val_") else "mae"
        return [
            _Problem(
                "training.early_stopping.monitor",
                "is a classification metric; this is a regression task.",
                monitor,
                f"Use {other} or val_loss.",
            )
        ]
    if task in ("binary", "multiclass") and metric == "mae":
        other = "val_accuracy" if monitor.startswith("val_") else "accuracy"
        return [
            _Problem(
                "training.early_stopping.monitor",
                f"is a regression metric; this is a {task} task.",
                monitor,
                f"Use {other} or val_loss.",
            )
        ]
    return []


def _check_label_noise_task(spec: ExperimentSpec) -> list[_Problem]:
    """Label noise flips class labels, so it needs a classification task."""
    if spec.data.label_noise > 0 and _known_task(spec) == "regression":
        return [
            _Problem(
                "data.label_noise",
                "flips class labels and has no meaning for a regression task.",
                spec.data.label_noise,
                "Use 0.0.",
            )
        ]
    return []


_CROSS_CHECKS = (
    _check_source_xor_path,
    _check_target,
    _check_fractions,
    _check_hidden_xor_layers,
    _check_shorthand_knobs,
    _check_layer_names,
    _check_task_matches_data,
    _check_monitor_matches_task,
    _check_label_noise_task,
)


@dataclass(frozen=True)
class _Verbatim:
    """A received value that is already text (printed without quotes)."""

    text: str


# ======================================================================================
# Translating pydantic errors into one SpecError
# ======================================================================================
_TYPE_ERRORS = {
    "int_type": ("must be an integer.", "integer"),
    "float_type": ("must be a number.", "number"),
    "bool_type": ("must be true or false.", "bool"),
    "string_type": ("must be a string.", "string"),
    "list_type": ("must be a list.", "list"),
    "dict_type": ("must be a mapping.", "mapping"),
    "model_type": ("must be a mapping.", "mapping"),
    "model_attributes_type": ("must be a mapping.", "mapping"),
}


_MISSING_FIXES = {
    "tracking.mlflow.uri": "Name the tracking store, e.g. uri: mlruns (a directory), sqlite:///mlflow.db or "
    "http://localhost:5000.",
    "data": "Add for example 'data: {source: breast_cancer}', or data.path: with your own .csv/.parquet/.npz file.",
}


def _clean_location(loc: tuple[Any, ...], raw: Any) -> tuple[list[str], Any]:
    """Dotted-path parts of a pydantic location, without discriminator tags; and the raw node there."""
    parts: list[str] = []
    node = raw
    previous_was_index = False
    for segment in loc:
        if previous_was_index and isinstance(node, dict) and node.get("type") == segment:
            previous_was_index = False  # the discriminated union's tag, not a key
            continue
        parts.append(str(segment))
        previous_was_index = isinstance(segment, int)
        if isinstance(node, dict):
            node = node.get(segment, _UNSET)
        elif isinstance(node, list) and isinstance(segment, int) and -len(node) <= segment < len(node):
            node = node[segment]
        else:
            node = _UNSET
    return parts, node


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _model_for(parts: Sequence[str], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at dotted `parts` of `raw`, if any."""
    tp: Any = ExperimentSpec
    node = raw
    for part in [*parts, None]:
        tp = _strip_annotated(tp)
        if get_origin(tp) in (Union, type(int | None)):
            members = [_strip_annotated(a) for a in get_args(tp) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            tagged = [
                m
                for m in models
                if isinstance(node, dict)
                and "type" in m.model_fields
                and node.get("type") in get_args(m.model_fields["type"].annotation)
            ]
            tp = (
                tagged[0]
                if tagged
                else models[0]
                if len(models) == 1
                else members[0]
                if len(members) == 1
                else None
            )
        if part is None:
            break
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
            node = node.get(part) if isinstance(node, dict) else None
        elif get_origin(tp) is list and part.lstrip("-").isdigit():
            tp = get_args(tp)[0]
            index = int(part)
            node = node[index] if isinstance(node, list) and -len(node) <= index < len(node) else None
        else:
            return None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _sections() -> dict[str, type[BaseModel]]:
    """Every fixed mapping of the spec by dotted path (layers excluded)."""
    return {
        "": ExperimentSpec,
        "data": DataSpec,
        "data.drift": DriftSpec,
        "model": ModelSpec,
        "training": TrainingSpec,
        "training.early_stopping": EarlyStoppingSpec,
        "diagnosis": DiagnosisSpec,
        "tracking": TrackingSpec,
        "tracking.mlflow": MlflowSpec,
    }


def _closest(value: str, choices: Sequence[str]) -> str | None:
    """The choice `value` most likely meant (case-insensitive), or None."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _unknown_key_line(parent: str, key: str, allowed: Sequence[str]) -> str:
    full = f"{parent}.{key}" if parent else key
    full = f"'{full}'" if full.isprintable() and len(full) <= 100 else _show(full)
    close = [match] if (match := _closest(key, allowed)) else []
    if close:
        suggestion = f"{parent}.{close[0]}" if parent else close[0]
        return f"Unknown key {full}. Did you mean '{suggestion}'?"
    elsewhere = [
        f"{path}.{key}" if path else key
        for path, model in _sections().items()
        if key in model.model_fields and path != parent
    ]
    if elsewhere:
        return f"Unknown key {full}. Did you mean '{elsewhere[0]}'? '{key}' belongs under {elsewhere[0].rpartition('.')[0] or 'the top level'}."
    return f"Unknown key {full}. Allowed keys here: {', '.join(allowed)}."


def _format_problem(prefix: list[str], problem: _Problem) -> str:
    parts = [*prefix, *([problem.key] if problem.key else [])]
    key = ".".join(parts)
    if problem.unknown_among is not None:
        return "  " + _unknown_key_line(".".join(prefix), problem.key, problem.unknown_among)
    line = f"  {key}: {problem.message}" if key else f"  {problem.message}"
    if problem.received is not _UNSET:
        shown = problem.received.text if isinstance(problem.received, _Verbatim) else _show(problem.received)
        line += f" Received: {shown}."
    if problem.fix:
        line += f" {problem.fix}"
    return line


def _literal_choices(ctx: Mapping[str, Any]) -> list[str]:
    return re.findall(r"'([^']*)'", str(ctx.get("expected", "")))


def _lines_for(error: Mapping[str, Any], raw: Any) -> list[str]:
    """The message lines for one pydantic error dict."""
    parts, _ = _clean_location(tuple(error["loc"]), raw)
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "regcli":
        return [_format_problem(parts, p) for p in ctx["problems"]]
    if kind in ("extra_forbidden", "invalid_key"):
        model = _model_for(parts[:-1], raw)
        allowed = tuple(model.model_fields) if model else ()
        return ["  " + _unknown_key_line(".".join(parts[:-1]), parts[-1], allowed)]
    if kind == "missing":
        return [
            _format_problem(parts, _Problem("", "is required.", fix=_MISSING_FIXES.get(".".join(parts), "")))
        ]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        message = f"must be one of {', '.join(LAYER_TYPES)}."
        fix = "Only these layer types can be built."
        if kind == "union_tag_not_found":
            return [_format_problem([*parts, "type"], _Problem("", "is required: " + message, fix=fix))]
        received = value.get("type") if isinstance(value, dict) else value
        return [_format_problem([*parts, "type"], _Problem("", message, received, fix))]
    if kind == "literal_error":
        choices = _literal_choices(ctx)
        close = _closest(value, choices) if isinstance(value, str) else None
        fix = f"Did you mean '{close}'?" if close else _type_hint(value, "string")
        return [_format_problem(parts, _Problem("", f"must be one of {', '.join(choices)}.", value, fix))]
    if kind in _TYPE_ERRORS:
        message, wanted = _TYPE_ERRORS[kind]
        fix = _type_hint(value, wanted)
        if wanted == "mapping" and parts[-2:-1] == ["layers"]:
            fix = "Each layer is a mapping such as {type: dense, units: 64}."
        elif wanted == "mapping" and parts == ["data"]:
            fix = _MISSING_FIXES["data"]
        elif wanted == "mapping" and parts[-1:] == ["early_stopping"]:
            fix = "To turn early stopping off write early_stopping: {enabled: false}."
        elif wanted == "mapping" and value is None:
            fix = "Remove the empty key to use the defaults, or give it keys."
        return [_format_problem(parts, _Problem("", message, value, fix))]
    return [_format_problem(parts, _Problem("", f"{error.get('msg', 'is invalid')}.", value))]


def _translate(exc: ValidationError, raw: Any, source: str) -> SpecError:
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        for line in _lines_for(error, raw):
            if line not in lines:
                lines.append(line)
    return SpecError("\n".join([f"Invalid spec {source}:", *lines]))


# ======================================================================================
# Overrides (--set KEY=VALUE)
# ======================================================================================
_KEY_PART_RE = re.compile(r"[A-Za-z0-9_-]+")


def parse_override(text: str) -> tuple[str, Any]:
    """Split `model.l2=1e-3` into ("model.l2", 0.001); the value is parsed as YAML.

    Raises:
        SpecError: no `=`, an empty or malformed key, or a value that is not valid YAML.
    """
    key, sep, value_text = str(text).partition("=")
    key = key.strip()
    example = "Write KEY=VALUE, e.g. --set model.l2=1e-3."
    if not sep:
        raise SpecError(f"Invalid --set {text!r}: expected KEY=VALUE with a dotted key. {example}")
    if not key or not all(_KEY_PART_RE.fullmatch(part) for part in key.split(".")):
        raise SpecError(
            f"Invalid --set {text!r}: the key must be a dotted path of letters, digits, '_' or '-' "
            f"such as model.l2. {example}"
        )
    if not value_text.strip():
        raise SpecError(f"Invalid --set {text!r}: the value is empty. Write {key}=null to set it to null.")
    try:
        value = _parse_yaml(value_text)
    except _YamlFailure as exc:
        raise SpecError(
            f"Invalid --set {text!r}: the value is not valid YAML ({exc.problem.rstrip('.')}). "
            "Quote strings that contain ': ', '#' or start with '[', '{', '&', '*' or '!'."
        ) from None
    return key, value


def set_dotted(raw: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with the dotted `key` set to `value` (for overrides and sweeps).

    Missing or null intermediate mappings are created; a list is indexed by a number
    (`model.layers.2.rate`).

    Raises:
        SpecError: the path runs through a value that is neither a mapping nor a list.
    """
    result = copy.deepcopy(dict(raw))
    node: Any = result
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the top level"
        if isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, list):
            raise SpecError(
                f"Cannot set {key}: {where} is a list of {len(node)} entries and '{part}' is not an index into it."
            )
        else:
            raise SpecError(f"Cannot set {key}: {where} is {_kind(node)} ({_show(node)}), not a mapping.")
    return result


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `raw` with every `KEY=VALUE` override applied in order.

    Unknown keys introduced by overrides are left for validation to report.

    Raises:
        SpecError: a malformed override, or one that runs through a non-mapping.
    """
    result = copy.deepcopy(dict(raw))
    for text in overrides:
        key, value = parse_override(text)
        result = set_dotted(result, key, value)
    return result


# ======================================================================================
# Entry points
# ======================================================================================
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
        raise SpecError(f"Invalid spec {source}: expected a mapping with at least data:, got {_kind(raw)}.")
    try:
        return ExperimentSpec.model_validate(dict(raw), context={"base_dir": Path(base_dir)})
    except ValidationError as exc:
        raise _translate(exc, raw, source) from None
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
        local_uri = key == "tracking.mlflow.uri" and isinstance(value, str) and not _URI_SCHEME_RE.match(value)
        if (key in PATH_KEYS or local_uri) and isinstance(value, str) and value.strip():
            candidate = _expand_user(value)
            value = str(candidate if candidate.is_absolute() else Path.cwd() / candidate)
        raw = set_dotted(raw, key, value)
    return validate_experiment(raw, p.absolute().parent, source=str(p))


def spec_to_dict(spec: ExperimentSpec) -> dict[str, Any]:
    """The spec as plain JSON/YAML-able data with every default filled in."""
    return spec.model_dump(mode="python")


def dump_spec_yaml(spec: ExperimentSpec) -> str:
    """YAML text that `load_experiment_spec` reads back into an equal spec."""
    return yaml.dump(
        spec_to_dict(spec), Dumper=SpecDumper, sort_keys=False, default_flow_style=None, allow_unicode=True
    )
