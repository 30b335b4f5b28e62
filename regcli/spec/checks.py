"""Cross-field checks of a spec: small named functions, each returning the problems it finds.

A field validator sees one value; these see the whole mapping (data.source xor data.path,
val + test < 1, monitor vs task, rows x features under 2 GiB). Each has a one-line
docstring and a message that names the dotted key and the fix. `models` runs them: the
data.params checks from `DataSpec`, `CROSS_CHECKS` once the whole `ExperimentSpec` is valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticCustomError

from regcli.spec.builders import check_builder
from regcli.spec.fields import (
    BUILTIN_SOURCES,
    BUILTIN_TASKS,
    GENERATED_DEFAULT_SHAPE,
    MAX_GENERATED_BYTES,
    PARAM_RANGES,
    SOURCE_PARAMS,
    TABULAR_SUFFIXES,
    Problem,
    Verbatim,
    fail,
    num_text,
    prefixed,
)

if TYPE_CHECKING:
    from regcli.spec.models import DataSpec, ExperimentSpec

# The MLP-shorthand knobs: they shape model.hidden blocks and have no effect on model.layers.
SHORTHAND_KNOBS = (
    "activation", "batchnorm", "dropout", "l1", "l2", "bias_l2", "activity_l2", "bn_momentum", "output_l2",
)


# ======================================================================================
# data.params: the generator arguments of the chosen source
# ======================================================================================
def checked_params(source: str | None, value: Mapping[str, Any]) -> dict[str, Any]:
    """data.params with integers kept and the rest as floats, once every check passes.

    The checks run in order and the first that finds problems raises them: a key unknown to
    the source is reported before a matrix that would be too large.
    """
    for check in (check_params_source, check_param_values):
        if problems := check(source, value):
            fail(*problems)
    params = {key: (item if PARAM_RANGES[key].integer else float(item)) for key, item in value.items()}
    for check in (check_generated_size, check_informative_features, check_redundant_features):
        if problems := check(source, params):
            fail(*problems)
    return params


def check_params_source(source: str | None, params: Mapping[str, Any]) -> list[Problem]:
    """data.params is given only with a generated source (moons, synthetic_*)."""
    if source in SOURCE_PARAMS:
        return []
    used = f"data.source {source}" if source else "a data file (data.path)"
    return [
        Problem(
            "",
            f"is only for the generated data sets {', '.join(SOURCE_PARAMS)}, not for {used}.",
            params,
            "Remove data.params.",
        )
    ]


def check_param_values(source: str | None, params: Mapping[str, Any]) -> list[Problem]:
    """Every key of data.params is an argument of the source's generator, inside its range."""
    allowed = SOURCE_PARAMS[source or ""]  # check_params_source ran first: the source is a generated one
    problems = []
    for key, item in params.items():
        if key not in allowed:
            problems.append(Problem(str(key), "", unknown_among=allowed))
            continue
        try:
            PARAM_RANGES[key](item)
        except PydanticCustomError as exc:
            problems.extend(prefixed(p, key) for p in exc.context["problems"])  # type: ignore[index]
    return problems


def check_generated_size(source: str | None, params: Mapping[str, Any]) -> list[Problem]:
    """data.params: the generated float64 matrix (rows x features x 8 bytes) fits MAX_GENERATED_BYTES."""
    rows = params.get("n_samples", GENERATED_DEFAULT_SHAPE["n_samples"])
    features = 2 if source == "moons" else params.get("n_features", GENERATED_DEFAULT_SHAPE["n_features"])
    need = rows * features * 8
    if need <= MAX_GENERATED_BYTES:
        return []
    return [
        Problem(
            "",
            f"n_samples x n_features = {rows:,} x {features:,} would generate a {bytes_text(need)} feature matrix "
            f"(rows x features x 8-byte floats, before splitting); regcli generates at most "
            f"{bytes_text(MAX_GENERATED_BYTES)}.",
            dict(params),
            f"Lower n_samples or n_features, e.g. n_features: {max(1, MAX_GENERATED_BYTES // (8 * rows)):,} "
            f"with {rows:,} rows.",
        )
    ]


def bytes_text(n: int) -> str:
    """1.5 GiB, 74.5 GiB, 512.0 MiB: sizes the way numpy's MemoryError reports them."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_informative_features(source: str | None, params: Mapping[str, Any]) -> list[Problem]:
    """data.params.n_informative is at most n_features."""
    n_features, n_informative = params.get("n_features"), params.get("n_informative")
    if n_features is None or n_informative is None or n_informative <= n_features:
        return []
    return [Problem("n_informative", f"must be <= data.params.n_features ({n_features}).", n_informative)]


def check_redundant_features(source: str | None, params: Mapping[str, Any]) -> list[Problem]:
    """data.params.n_informative + n_redundant is at most n_features."""
    n_features, n_informative, n_redundant = (params.get(k) for k in ("n_features", "n_informative", "n_redundant"))
    if None in (n_features, n_informative, n_redundant) or n_informative + n_redundant <= n_features:
        return []
    return [
        Problem(
            "n_redundant",
            f"data.params.n_informative + n_redundant must be <= n_features ({n_features}).",
            n_redundant,
        )
    ]


# ======================================================================================
# The whole spec: run once every field is valid
# ======================================================================================
def check_source_xor_path(spec: ExperimentSpec) -> list[Problem]:
    """Exactly one of data.source and data.path."""
    data = spec.data
    if data.source is not None and data.path is not None:
        return [
            Problem(
                "data",
                "It is invalid to specify both data.source AND data.path.",
                fix="Keep data.source for a built-in data set or data.path for your own file.",
            )
        ]
    if data.source is None and data.path is None:
        return [
            Problem(
                "data",
                "needs data.source (a built-in data set) or data.path (a .csv, .parquet or .npz file).",
                fix=f"Built-in data sets: {', '.join(BUILTIN_SOURCES)}.",
            )
        ]
    return []


def check_target(spec: ExperimentSpec) -> list[Problem]:
    """data.target is required for .csv/.parquet files and meaningless otherwise."""
    data = spec.data
    folder = data.path is not None and Path(data.path).is_dir()
    tabular = data.path is not None and not folder and Path(data.path).suffix.lower() in TABULAR_SUFFIXES
    if tabular and data.target is None:
        return [
            Problem(
                "data.target",
                f"is required for a {Path(data.path).suffix} file: name its label column.",
                fix="For example: target: label.",
            )
        ]
    if not tabular and data.target is not None and (data.source or data.path):
        what = (
            f"data.source {data.source} brings its own labels"
            if data.source
            else "an image folder's labels are its class subfolder names"
            if folder
            else ".npz files hold arrays X and y"
        )
        return [
            Problem(
                "data.target",
                f"applies only to .csv and .parquet files; {what}.",
                data.target,
                "Remove data.target.",
            )
        ]
    return []


def check_image_folder(spec: ExperimentSpec) -> list[Problem]:
    """data.image_size is required for an image folder (data.path a directory) and refused elsewhere."""
    data = spec.data
    if data.path is None and data.source is None:
        return []  # check_source_xor_path reports it
    folder = data.path is not None and Path(data.path).is_dir()
    if folder and data.image_size is None:
        return [
            Problem(
                "data.image_size",
                "is required for an image folder (data.path is a directory): every image is resized to this "
                "[height, width].",
                fix="For example: image_size: [32, 32].",
            )
        ]
    if folder:
        return []
    # color_mode is filled in (rgb) whenever image_size is given: name only the key the user wrote.
    key = "image_size" if data.image_size is not None else "color_mode"
    value = getattr(data, key)
    if value is None:
        return []
    used = f"data.source {data.source}" if data.source else f"the file {Path(str(data.path)).name}"
    return [
        Problem(
            f"data.{key}",
            f"applies only to an image folder (data.path a directory of class subfolders), not to {used}.",
            value,
            f"Remove data.{key}.",
        )
    ]


def check_fractions(spec: ExperimentSpec) -> list[Problem]:
    """Validation and test splits leave rows for training."""
    val, test = spec.data.val_fraction, spec.data.test_fraction
    if val + test < 1:
        return []
    return [
        Problem(
            "data.val_fraction + data.test_fraction",
            "must be < 1 so that rows remain for training.",
            Verbatim(f"{num_text(val)} + {num_text(test)} = {num_text(round(val + test, 12))}"),
            "Lower one of them; the defaults are 0.2 + 0.2.",
        )
    ]


def check_hidden_xor_layers(spec: ExperimentSpec) -> list[Problem]:
    """model.hidden and model.layers are mutually exclusive."""
    if spec.model.hidden is not None and spec.model.layers is not None:
        return [
            Problem(
                "model",
                "It is invalid to specify both model.hidden AND model.layers.",
                fix="Use model.hidden for the MLP shorthand or model.layers for full control, not both.",
            )
        ]
    return []


def check_shorthand_knobs(spec: ExperimentSpec) -> list[Problem]:
    """Shorthand knobs written next to model.layers are refused: they would not apply.

    Refused when written at all (pydantic's `model_fields_set`), also at their default
    value: `l2: 1.0e-4` beside `layers:` reads as if it penalized those layers.
    """
    if spec.model.layers is None:
        return []
    return [
        Problem(
            f"model.{knob}",
            "applies only to the model.hidden shorthand and has no effect with model.layers.",
            getattr(spec.model, knob),
            f"{_LAYER_FIX.get(knob, 'Set it on the layers instead')}, or remove model.{knob}.",
        )
        for knob in SHORTHAND_KNOBS
        if knob in spec.model.model_fields_set
    ]


# Where each shorthand knob's effect lives in an explicit layer list.
_LAYER_FIX = {
    "l1": "Give the dense layers kernel_regularizer: {l1: 1.0e-5}",
    "l2": "Give the dense layers kernel_regularizer: {l2: 1.0e-4}",
    "output_l2": "Give the last (output) dense layer kernel_regularizer: {l2: 1.0e-4}",
    "bias_l2": "Give the dense layers bias_regularizer: {l2: 1.0e-4}",
    "activity_l2": "Give the dense layers activity_regularizer: {l2: 1.0e-5}",
    "dropout": "Add {type: dropout, rate: 0.2} layers where you want dropout",
    "batchnorm": "Add {type: batchnorm} layers (after a dense layer with use_bias: false)",
    "bn_momentum": "Give the batchnorm layers momentum: 0.99",
    "activation": "Give the dense layers activation: relu, or add {type: activation, activation: relu} layers",
}


def check_layer_names(spec: ExperimentSpec) -> list[Problem]:
    """Explicit layer names are unique (Keras refuses duplicates)."""
    first: dict[str, int] = {}
    problems = []
    for index, layer in enumerate(spec.model.layers or []):
        if layer.name is None:
            continue
        if layer.name in first:
            problems.append(
                Problem(
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


def check_task_matches_data(spec: ExperimentSpec) -> list[Problem]:
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
        Problem(
            "model.task",
            f"does not fit data.source {spec.data.source}, a {data_task} data set.",
            task,
            f"Use task: auto (or {data_task}).",
        )
    ]


def check_monitor_matches_task(spec: ExperimentSpec) -> list[Problem]:
    """accuracy is a classification metric and mae a regression metric."""
    task, monitor = _known_task(spec), spec.training.early_stopping.monitor
    metric = monitor.removeprefix("val_")
    if task == "regression" and metric == "accuracy":
        other = "val_mae" if monitor.startswith("val_") else "mae"
        return [
            Problem(
                "training.early_stopping.monitor",
                "is a classification metric; this is a regression task.",
                monitor,
                f"Use {other} or val_loss.",
            )
        ]
    if task in ("binary", "multiclass") and metric == "mae":
        other = "val_accuracy" if monitor.startswith("val_") else "accuracy"
        return [
            Problem(
                "training.early_stopping.monitor",
                f"is a regression metric; this is a {task} task.",
                monitor,
                f"Use {other} or val_loss.",
            )
        ]
    return []


def check_label_noise_task(spec: ExperimentSpec) -> list[Problem]:
    """Label noise flips class labels, so it needs a classification task."""
    if spec.data.label_noise > 0 and _known_task(spec) == "regression":
        return [
            Problem(
                "data.label_noise",
                "flips class labels and has no meaning for a regression task.",
                spec.data.label_noise,
                "Use 0.0.",
            )
        ]
    return []


def spec_warnings(spec: ExperimentSpec) -> list[str]:
    """Settings that are valid but do nothing: said by `validate` and `train`, never refused."""
    notes = []
    if spec.model.layers is None and spec.model.batchnorm and spec.model.bias_l2 > 0:
        notes.append(
            f"model.bias_l2 ({num_text(spec.model.bias_l2)}) has no effect with model.batchnorm: true: a "
            "BatchNorm block's Dense layer has no bias (BatchNorm's beta takes its place). Remove "
            "model.bias_l2, or set model.batchnorm: false."
        )
    for index, layer in enumerate(spec.model.layers or []):
        if getattr(layer, "bias_regularizer", None) is not None and not layer.use_bias:
            notes.append(
                f"model.layers.{index}.bias_regularizer has no effect: the layer has use_bias: false. "
                f"Remove it, or set use_bias: true."
            )
    return notes


CROSS_CHECKS = (
    check_builder,
    check_source_xor_path,
    check_target,
    check_image_folder,
    check_fractions,
    check_hidden_xor_layers,
    check_shorthand_knobs,
    check_layer_names,
    check_task_matches_data,
    check_monitor_matches_task,
    check_label_noise_task,
)
