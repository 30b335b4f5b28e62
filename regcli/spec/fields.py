"""The building blocks of the spec models: bounds, choice tables, field types and the `Problem` each reports.

Every numeric field is checked by one `Range` (type, interval, the fix to print), so that
`dropout: 1.5` and `epochs: 10**12` fail with the same sentence shape in a millisecond, and
the sanity bounds sit far beyond any real experiment (100,000 epochs, 65,536 units, 2 GiB of
generated data). A failed check raises `fail(Problem(...))`, which `regcli.spec.problems`
turns into one line of a `SpecError`.
"""

from __future__ import annotations

import json
import os
import os.path
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from regcli.spec.yaml_io import looks_numeric
from regcli.values import is_finite

# --------------------------------------------------------------------------------------
# Bounds. Each is far beyond any real experiment; they exist so that a typo or a hostile
# spec (epochs: 10**12, hidden: [10**9]) fails in milliseconds at validation instead of
# hours into a run or in an out-of-memory kill.
# --------------------------------------------------------------------------------------
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
MAX_IMAGE_SIDE = 4_096  # data.image_size: one 4096 x 4096 rgb image is already 192 MiB of float32
MAX_NAME_CHARS = 100  # run directory names stay well below every file system's limit

# The choices of a field are written once, as the Literal pydantic checks; the tuples are
# the same names in the same order, for messages and for other modules.
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
# An explicit layer may also be the output layer, so it may end in softmax (`regcli.head`).
LayerActivation = Literal[
    "relu", "gelu", "elu", "selu", "tanh", "sigmoid", "swish", "silu", "leaky_relu", "linear", "softmax"
]
Monitor = Literal[
    "val_loss", "val_data_loss", "val_accuracy", "val_mae", "loss", "data_loss", "accuracy", "mae"
]
Padding = Literal["valid", "same"]
BUILTIN_SOURCES: tuple[str, ...] = get_args(Source)
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
LAYER_ACTIVATIONS: tuple[str, ...] = get_args(LayerActivation)
MONITORS: tuple[str, ...] = get_args(Monitor)
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
# The image files of an image folder: keras.utils.image_dataset_from_directory's formats.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
COLOR_CHANNELS = {"rgb": 3, "grayscale": 1}  # data.color_mode -> channels per pixel
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

NAME_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}")
_LAYER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_YAML11_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}


# ======================================================================================
# Problems: one line of an error message each
# ======================================================================================
UNSET: Any = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec; `key` is relative to where the problem was raised."""

    key: str
    message: str
    received: Any = UNSET
    fix: str = ""
    unknown_among: tuple[str, ...] | None = None  # set for an unknown key: its siblings


def fail(*problems: Problem) -> None:
    """Raise the pydantic error that carries regcli problems to the translator."""
    raise PydanticCustomError(
        "regcli",
        "{summary}",
        {"summary": " ".join(f"{p.key} {p.message}".strip() for p in problems), "problems": problems},
    )


def show(value: Any) -> str:
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


def type_hint(value: Any, wanted: str) -> str:
    """The fix for a value of the wrong type, when there is an obvious one."""
    if isinstance(value, str):
        if value.strip().lower() in _YAML11_BOOL_WORDS:
            return "regcli reads only true/false as booleans; yes/no/on/off are plain strings."
        if wanted in ("number", "integer") and looks_numeric(value):
            return f"Write the {wanted} without quotes."
    if isinstance(value, bool) and wanted in ("number", "integer"):
        return f"true/false are booleans, not {wanted}s."
    if wanted == "string" and isinstance(value, int | float | bool):
        return "Quote it to write a string."
    return ""


def num_text(x: float) -> str:
    """1e-4 as 0.0001, 5.0 as 5: a number as a bound or a received value is written in messages."""
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    return repr(x)


@dataclass(frozen=True)
class Verbatim:
    """A received value that is already text (printed without quotes)."""

    text: str


def prefixed(problem: Problem, prefix: str) -> Problem:
    """`problem` with `prefix` put in front of its key."""
    key = f"{prefix}.{problem.key}" if problem.key else prefix
    return Problem(key, problem.message, problem.received, problem.fix, problem.unknown_among)


# ======================================================================================
# Field types
# ======================================================================================
@dataclass(frozen=True)
class Range:
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
            return f"{kind} in {left}{num_text(lo)}, {num_text(hi)}{right}"
        if lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {num_text(lo)}"
        if hi is not None:
            return f"{kind} {'<' if self.hi_open else '<='} {num_text(hi)}"
        return kind if self.integer else "a finite number"

    def _inside(self, value: float) -> bool:
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def __call__(self, value: Any) -> Any:
        wanted = "integer" if self.integer else "number"
        ok_type = isinstance(value, int) if self.integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            fix = type_hint(value, wanted)
            if self.integer and isinstance(value, float) and value.is_integer() and self._inside(value):
                fix = f"Write {int(value)} without a decimal point or exponent."
            fail(Problem("", f"must be {self.expected()}.", value, fix))
        if not is_finite(value):  # the type is checked above: only float NaN and inf get here
            fail(Problem("", f"must be {self.expected()}.", value, "NaN and infinity are not allowed."))
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if below or (above and not self.hi_is_cap):
            fail(Problem("", f"must be {self.expected()}.", value, self.fix))
        if above:
            fail(
                Problem(
                    "",
                    f"must be at most {num_text(self.hi)}.",
                    value,
                    "Larger values are no real experiment (a sanity bound in regcli/spec/fields.py).",
                )
            )
        return value if self.integer else float(value)


def ranged(**kwargs: Any) -> BeforeValidator:
    return BeforeValidator(Range(**kwargs))


def penalty(what: str) -> Any:
    return Annotated[
        float,
        ranged(
            lo=0, hi=MAX_PENALTY, hi_is_cap=True, fix=f"Use 0 for no {what}; typical values are 1e-5 to 1e-2."
        ),
    ]


Rate = Annotated[
    float,
    ranged(lo=0, hi=1, hi_open=True, fix="A rate of 1 would drop every unit; typical rates are 0.1 to 0.5."),
]
Seed = Annotated[int, ranged(lo=0, hi=MAX_SEED, integer=True, fix="Seeds are 32-bit unsigned integers.")]
Units = Annotated[int, ranged(lo=1, hi=MAX_UNITS, integer=True, fix="Layer widths are positive integers.")]
Finite = Annotated[float, ranged(lo=-MAX_SCALE, hi=MAX_SCALE, hi_is_cap=True)]
NonNegative = Annotated[float, ranged(lo=0, hi=MAX_SCALE, hi_is_cap=True)]


def _size(value: Any) -> Any:
    """A conv/pool size or stride: an integer or a pair [height, width] of integers."""
    check = Range(lo=1, hi=MAX_KERNEL_SIZE, integer=True)
    if isinstance(value, list):
        if len(value) != 2:
            fail(Problem("", "must be an integer or a pair [height, width].", value))
        return [check(v) for v in value]
    try:
        return check(value)
    except PydanticCustomError:
        fail(Problem("", f"must be {check.expected()} or a pair [height, width] of them.", value))


Size = Annotated[int | list[int], BeforeValidator(_size)]


def _image_size(value: Any) -> Any:
    """data.image_size: a pair [height, width] of integers in [1, MAX_IMAGE_SIDE]."""
    side = Range(lo=1, hi=MAX_IMAGE_SIDE, integer=True)
    expected = f"must be a pair [height, width] of integers in [1, {MAX_IMAGE_SIDE}]."
    fix = "Every image is resized to it, e.g. image_size: [32, 32]."
    if not isinstance(value, list) or len(value) != 2:
        fail(Problem("", expected, value, fix))
    try:
        return [side(v) for v in value]
    except PydanticCustomError:
        fail(Problem("", expected, value, fix))


ImageSize = Annotated[list[int], BeforeValidator(_image_size)]


def bounded_list(max_len: int, example: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, list):
            fail(Problem("", f"must be a list such as {example}.", value))
        if len(value) > max_len:
            fail(Problem("", f"must have at most {max_len} entries.", Verbatim(f"{len(value)} entries")))
        return value

    return BeforeValidator(check)


def matching_string(pattern: re.Pattern[str], expected: str, fix: str = "") -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            fail(Problem("", f"must be {expected}.", value, type_hint(value, "string") or fix))
        if not pattern.fullmatch(value):
            fail(Problem("", f"must be {expected}.", value, fix))
        return value

    return BeforeValidator(check)


def _path_string(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        fail(Problem("", "must be a non-empty path string.", value, type_hint(value, "string")))
    if "\x00" in value or len(value) > 4096:
        fail(Problem("", "must be a file-system path.", value))
    return value


PathStr = Annotated[str, BeforeValidator(_path_string)]


def freeze_entry(value: Any) -> Any:
    if isinstance(value, str) and _LAYER_NAME_RE.fullmatch(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_LAYERS:
        return value
    fail(
        Problem(
            "",
            f"must be a layer name or a layer index in [-{MAX_LAYERS}, {MAX_LAYERS}].",
            value,
            "List the layers to freeze, e.g. freeze: [0, dense_1].",
        )
    )


def expand_user(value: str) -> Path:
    """`~/x` -> the home directory; `~nobody/x` of an unknown user stays as written."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        return Path(value)


def resolve_path(value: str, info: ValidationInfo) -> tuple[Path, Path]:
    """(absolute path, base directory): relative paths are resolved against `base_dir`."""
    base = Path((info.context or {}).get("base_dir") or Path.cwd()).absolute()
    path = expand_user(value)
    if not path.is_absolute():
        path = base / path
    return Path(os.path.normpath(path)), base


LayerName = Annotated[
    str,
    matching_string(_LAYER_NAME_RE, "a layer name of letters, digits, '.', '_' or '-' (1 to 100 characters)"),
]

# URI schemes MLflow can log to from here: a local directory (file store), a local SQLite
# database, or a tracking server. A string without a scheme is a directory path.
MLFLOW_URI_SCHEMES = ("file", "sqlite", "http", "https")
URI_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def mlflow_uri(value: Any, info: ValidationInfo) -> Any:
    """tracking.mlflow.uri: a directory, file:///abs, sqlite:///file.db or http(s)://host; local ones made absolute."""
    from urllib.parse import urlsplit

    fix = "Use a directory such as mlruns, sqlite:///mlflow.db, or a tracking server such as http://localhost:5000."
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 4096:
        fail(Problem("", "must be a non-empty string.", value, type_hint(value, "string") or fix))
    scheme = m.group(1).lower() if (m := URI_SCHEME_RE.match(value)) else None
    if scheme is None:  # a directory path: relative to the spec file's directory
        return str(resolve_path(value, info)[0])
    if scheme not in MLFLOW_URI_SCHEMES:
        fail(Problem("", f"must be a directory path or a {', '.join(MLFLOW_URI_SCHEMES)} URI.", value, fix))
    parts = urlsplit(value)
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            fail(Problem("", "must be a file URI with an absolute path, file:///abs/path/mlruns.", value,
                           "Or write the directory path without file: (relative paths are resolved "
                           "against the spec file's directory)."))
        return "file://" + os.path.normpath(parts.path)
    if scheme == "sqlite":
        path = value[len("sqlite:///"):] if value.lower().startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            fail(Problem("", "must name a database file: sqlite:///mlflow.db (relative) or sqlite:////abs/mlflow.db.",
                           value))
        return "sqlite:///" + str(resolve_path(path, info)[0])
    if not parts.hostname:
        fail(Problem("", f"must name the tracking server: {scheme}://HOST[:PORT].", value, fix))
    try:
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535
    except ValueError:
        fail(Problem("", "has an invalid port.", value, fix))
    return value.rstrip("/")


# ======================================================================================
# data.params: the one table of generator arguments per source
# ======================================================================================
# Each generator argument `data.params` may set, and its range. scikit-learn's others are not
# offered: `random_state` is the split seed, and weights / effective_rank / tail_strength are
# lists or shape knobs that no regularization experiment here needs.
PARAM_RANGES: dict[str, Range] = {
    "n_samples": Range(lo=10, hi=MAX_N_SAMPLES, integer=True, fix="Fewer than 10 rows cannot be split."),
    "n_features": Range(lo=1, hi=MAX_N_FEATURES, integer=True),
    "n_informative": Range(lo=1, hi=MAX_N_FEATURES, integer=True),
    "n_redundant": Range(lo=0, hi=MAX_N_FEATURES, integer=True),
    "n_classes": Range(lo=2, hi=MAX_N_CLASSES, integer=True),
    "n_clusters_per_class": Range(lo=1, hi=100, integer=True),
    "class_sep": Range(lo=0, lo_open=True, hi=MAX_SCALE, hi_is_cap=True),
    "flip_y": Range(lo=0, hi=1),
    "noise": Range(lo=0, hi=MAX_SCALE, hi_is_cap=True),
    "bias": Range(lo=-MAX_SCALE, hi=MAX_SCALE),
}
# The arguments each generated source accepts, in the order messages list them. The one table:
# validation refuses any other key, and regcli.data passes these on to scikit-learn unchanged.
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
