"""The spec's pydantic models: frozen, unknown keys forbidden, every default the seed's best practice.

One model per YAML section (SPEC.md §2): `ExperimentSpec` holds `DataSpec`, `ModelSpec`
(the MLP shorthand or up to 512 explicit `layers`), `TrainingSpec`, `DiagnosisSpec` and
`TrackingSpec`. Field types and bounds come from `fields`, whole-spec rules from `checks`;
the `Field(description=...)` texts are the reference `regcli schema` prints.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from regcli.spec.builders import fill_function_defaults, resolve_ref
from regcli.spec.checks import CROSS_CHECKS, checked_params
from regcli.spec.fields import (
    ACTIVATIONS,
    BUILTIN_SOURCES,
    FILE_SUFFIXES,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_HIDDEN_LAYERS,
    MAX_IMAGE_SIDE,
    MAX_LAYERS,
    MAX_LEARNING_RATE,
    MAX_NAME_CHARS,
    MAX_PENALTY,
    MAX_SCALE,
    MONITORS,
    NAME_RE,
    Activation,
    Finite,
    ImageSize,
    Monitor,
    NonNegative,
    PathStr,
    Problem,
    Rate,
    Seed,
    Source,
    Units,
    bounded_list,
    fail,
    freeze_entry,
    matching_string,
    mlflow_uri,
    penalty,
    ranged,
    resolve_path,
)
from regcli.spec.layers import (  # noqa: F401 - re-exported: the layer models are part of the spec's API
    ActivationLayerSpec,
    BatchNormLayerSpec,
    Conv2DLayerSpec,
    DenseLayerSpec,
    DropoutLayerSpec,
    FlattenLayerSpec,
    GaussianNoiseLayerSpec,
    LayerSpec,
    MaxPool2DLayerSpec,
    RegularizerSpec,
    SpatialDropout2DLayerSpec,
    Strict,
)


class DriftSpec(Strict):
    """A covariate shift applied to the validation and test features only.

    Use it to see how a regularized model degrades when the world moves: features
    become `x * scale + shift` (in standardized units) after the split.
    """

    shift: Finite = Field(
        0.0, description="Added to every validation/test feature (standardized units). Defaults to `0.0`."
    )
    scale: Annotated[
        float, ranged(lo=0, lo_open=True, hi=MAX_SCALE, hi_is_cap=True, fix="Use 1.0 for no scaling.")
    ] = Field(1.0, description="Multiplies every validation/test feature. Defaults to `1.0`.")


class DataSpec(Strict):
    """Where the rows come from and how they are split, scaled and perturbed.

    Exactly one of `source` (a built-in data set) and `path` (a .csv, .parquet or .npz
    file, or a folder of class subfolders of images with `image_size`) is given. Fractions
    are of the whole data set; the test split is held out.
    """

    source: Source | None = Field(
        None, description=f"A built-in data set: {', '.join(BUILTIN_SOURCES)}. Defaults to `None`."
    )
    path: PathStr | None = Field(
        None,
        description="A .csv, .parquet or .npz file (arrays X, y), or a folder of class subfolders of images "
        "(images/cat/*.png, images/dog/*.png; needs image_size); relative paths are resolved against the "
        "spec file's directory and stored absolute. Defaults to `None`.",
    )
    image_size: ImageSize | None = Field(
        None,
        description="Image folders only, and required there: every image is resized to this [height, width], "
        f"two integers in [1, {MAX_IMAGE_SIDE}] (bilinear, aspect ratio not kept), and its pixels scaled to "
        "[0, 1]. Defaults to `None`.",
    )
    color_mode: Literal["rgb", "grayscale"] | None = Field(
        None,
        description="Image folders only: rgb (3 channels; filled in when image_size is given) or grayscale "
        "(1 channel). Defaults to `None`.",
    )
    impute: Literal["none", "mean", "median", "most_frequent"] = Field(
        "none",
        description="Missing (NaN) feature values of a data file: none refuses them; mean, median or "
        "most_frequent fill a numeric column with that statistic of the training split only, and a string "
        "column gets a `missing` level of its own. Missing targets are always refused. Defaults to `none`.",
    )
    target: Annotated[str, matching_string(re.compile(r".{1,1000}", re.S), "a column name")] | None = Field(
        None, description="The label column of a .csv/.parquet file. Defaults to `None`."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Generator arguments of moons and synthetic_* sources (n_samples, n_features, noise, ...). "
        "Defaults to `{}`.",
    )
    split_seed: Seed | None = Field(
        None,
        description="Seed of the train/val/test split; null uses the top-level `seed`. Defaults to `None`.",
    )
    val_fraction: Annotated[
        float,
        ranged(
            lo=0,
            hi=1,
            lo_open=True,
            hi_open=True,
            fix="Validation drives early stopping and selection; 0.2 is typical.",
        ),
    ] = Field(0.2, description="Share of all rows held out for validation, in (0, 1). Defaults to `0.2`.")
    test_fraction: Annotated[
        float, ranged(lo=0, hi=1, hi_open=True, fix="Use 0 for no test split; 0.2 is typical.")
    ] = Field(0.2, description="Share of all rows held out for the final test, in [0, 1). Defaults to `0.2`.")
    stratify: bool = Field(
        True, description="Stratify the splits by class (classification only). Defaults to `True`."
    )
    standardize: bool = Field(
        True,
        description="Standardize features, fitted on the training split only: per feature, or per color "
        "channel for an image folder. Defaults to `True`.",
    )
    train_fraction: Annotated[
        float, ranged(lo=0, hi=1, lo_open=True, fix="Use 1.0 to keep the whole training split.")
    ] = Field(
        1.0,
        description="Keep this share of the training split (limited labeled data), in (0, 1]. Defaults to `1.0`.",
    )
    label_noise: Annotated[
        float,
        ranged(lo=0, hi=0.5, hi_open=True, fix="At 0.5 the labels carry no signal; use 0.0 to 0.3."),
    ] = Field(0.0, description="Flip this share of training labels only, in [0, 0.5). Defaults to `0.0`.")
    drift: DriftSpec | None = Field(
        None, description="Covariate shift applied to validation/test features. Defaults to `None`."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_color_mode(cls, data: Any) -> Any:
        """color_mode defaults to rgb for an image folder (image_size given), and stays null otherwise."""
        if isinstance(data, dict) and data.get("image_size") is not None and data.get("color_mode") is None:
            return {**data, "color_mode": "rgb"}
        return data

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        """data.path is an existing folder (of images) or a file with a known suffix; stored absolute."""
        if value is None:
            return None
        path, base = resolve_path(value, info)
        if path.is_dir():  # an image folder: its classes and files are the data's to check (regcli.data.images)
            return str(path)
        if not path.suffix and not path.exists():
            fail(Problem("", f"folder not found: {path}.", value,
                         f"Relative paths are resolved against the spec file's directory ({base})."))
        if path.suffix.lower() not in FILE_SUFFIXES:
            fail(Problem("", "must be a .csv, .parquet or .npz file.", value))
        if not path.exists():
            fail(
                Problem(
                    "",
                    f"file not found: {path}.",
                    value,
                    f"Relative paths are resolved against the spec file's directory ({base}).",
                )
            )
        return str(path)

    @field_validator("params", mode="before")
    @classmethod
    def _check_params(cls, value: Any, info: ValidationInfo) -> Any:
        """data.params holds only the known generator arguments of the chosen source."""
        if not isinstance(value, dict):
            fail(Problem("", "must be a mapping such as {n_samples: 1000, noise: 0.2}.", value))
        if not value:
            return {}
        if "source" not in info.data:  # source itself is invalid and already reported
            return dict(value)
        return checked_params(info.data.get("source"), value)


DEFAULT_HIDDEN = (256, 128)


class ModelSpec(Strict):
    """The network: the MLP shorthand (`hidden`) or an explicit list of `layers`.

    A shorthand block is Dense(use_bias=False) -> BatchNormalization -> Activation ->
    Dropout, with the l1/l2 kernel penalties on every hidden Dense kernel; the output layer
    is penalized only with `output_l2` (the seed's templates leave it unpenalized). `hidden`
    defaults to [256, 128] when `layers` is not given. With `layers`, the shorthand keys
    are refused and left out of the resolved spec: they would not apply.
    """

    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto", description="auto (from the targets), binary, multiclass or regression. Defaults to `auto`."
    )
    hidden: Annotated[list[Units], bounded_list(MAX_HIDDEN_LAYERS, "[256, 128]")] | None = Field(
        None,
        description="Widths of the shorthand blocks; [256, 128] when `layers` is not given; [] is a linear "
        "model. Defaults to `[256, 128]`.",
    )
    activation: Activation = Field(
        "relu", description=f"One of {', '.join(ACTIVATIONS)}. Defaults to `relu`."
    )
    batchnorm: bool = Field(True, description="BatchNormalization in every block. Defaults to `True`.")
    dropout: Rate = Field(0.2, description="Dropout rate after every block, in [0, 1). Defaults to `0.2`.")
    l1: penalty("L1 penalty") = Field(
        0.0, description="L1 penalty on the hidden Dense kernels (not the output layer's), >= 0. Defaults to `0.0`."
    )
    l2: penalty("L2 penalty") = Field(
        1e-4,
        description="L2 penalty on the hidden Dense kernels (not the output layer's: see output_l2), >= 0. "
        "Defaults to `0.0001`.",
    )
    bias_l2: penalty("bias penalty") = Field(
        0.0,
        description="L2 penalty on the hidden Dense biases, >= 0 (with batchnorm the Dense layers have no "
        "bias, so it has no effect). Defaults to `0.0`.",
    )
    activity_l2: penalty("activity penalty") = Field(
        0.0, description="L2 activity (output) penalty, >= 0. Defaults to `0.0`."
    )
    output_l2: penalty("output-layer penalty") = Field(
        0.0,
        description="L2 penalty on the output layer's kernel, >= 0: opt-in, as the seed's templates leave "
        "the output layer unpenalized. Defaults to `0.0`.",
    )
    bn_momentum: Annotated[float, ranged(lo=0, hi=1, hi_open=True, fix="0.99 is Keras's default.")] = Field(
        0.99, description="BatchNormalization momentum, in [0, 1). Defaults to `0.99`."
    )
    layers: Annotated[list[LayerSpec], bounded_list(MAX_LAYERS, "[{type: dense, units: 64}]")] | None = (
        Field(None, description="Explicit layers (instead of `hidden`). Defaults to `None`.")
    )
    builder: Annotated[str, matching_string(re.compile(r".{1,4096}", re.S), "a builder reference")] | None = Field(
        None,
        description="Your own model function instead of hidden/layers: 'path/to/models.py:build' (relative to "
        "the spec's directory) or 'package.module:build'. It is called with the model knobs it accepts (l2, "
        "dropout, ...), model.builder_args, and input_shape, n_outputs, task, and returns an uncompiled "
        "keras.Model. This runs your own code: train, sweep, tune and test import it (validate only reads it). "
        "Defaults to `None`.",
    )
    builder_args: dict[str, Any] = Field(
        default_factory=dict,
        description="More keyword arguments of model.builder's function (its own knobs, e.g. {width: 64}); "
        "sweepable as model.builder_args.width. Defaults to `{}`.",
    )
    init_from: PathStr | None = Field(
        None, description="A run directory whose shipped weights initialise the model. Defaults to `None`."
    )
    freeze: Annotated[
        list[Annotated[str | int, BeforeValidator(freeze_entry)]], bounded_list(MAX_LAYERS, "[0, dense_1]")
    ] = Field(default_factory=list, description="Layer names or indices to freeze. Defaults to `[]`.")

    @model_validator(mode="before")
    @classmethod
    def _default_hidden(cls, data: Any, info: ValidationInfo) -> Any:
        """hidden defaults to [256, 128] only when neither layers nor a builder is given; a builder's
        knobs left out default to the function's own (literal) defaults."""
        if isinstance(data, dict) and data.get("builder") is not None:
            base = Path((info.context or {}).get("base_dir") or Path.cwd()).absolute()
            return fill_function_defaults(data, base)
        if isinstance(data, dict) and data.get("hidden") is None and data.get("layers") is None:
            return {**data, "hidden": list(DEFAULT_HIDDEN)}
        return data

    @field_validator("builder")
    @classmethod
    def _builder_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        """model.builder names a .py file (stored absolute) or a module, and a top-level function in it: read, not run."""
        if value is None:
            return None
        _, base = resolve_path(".", info)
        try:
            return resolve_ref(value, base)
        except ValueError as exc:
            fail(Problem("", f"{exc}.", value, "Write it as 'models.py:build' (a file beside the spec) or "
                         "'package.module:build', naming a top-level def."))

    @field_validator("init_from")
    @classmethod
    def _init_from_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        """model.init_from is an existing directory; stored as an absolute path."""
        if value is None:
            return None
        path, base = resolve_path(value, info)
        if not path.is_dir():
            what = "is a file, not a run directory" if path.exists() else "directory not found"
            fail(
                Problem(
                    "",
                    f"{what}: {path}.",
                    value,
                    f"Point it at a finished run directory; relative paths are resolved against {base}.",
                )
            )
        return str(path)


class EarlyStoppingSpec(Strict):
    """`keras.callbacks.EarlyStopping`, followed exactly (SPEC §5.3)."""

    enabled: bool = Field(
        True, description="Stop when the monitored value stops improving. Defaults to `True`."
    )
    monitor: Monitor = Field("val_loss", description=f"One of {', '.join(MONITORS)}. Defaults to `val_loss`.")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="auto: max for accuracy, min otherwise (see `regcli.replay.resolve_mode`). Defaults to `auto`."
    )
    min_delta: Annotated[
        float, ranged(lo=0, hi=MAX_SCALE, hi_is_cap=True, fix="Use 0 to count any improvement.")
    ] = Field(0.0, description="Smallest change that counts as an improvement, >= 0. Defaults to `0.0`.")
    patience: Annotated[
        int,
        ranged(
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
        ranged(lo=0, hi=MAX_EPOCHS, integer=True, hi_is_cap=True, fix="Use 0 to watch from the first epoch."),
    ] = Field(0, description="Epochs to wait before watching for improvement, >= 0. Defaults to `0`.")
    baseline: Finite | None = Field(
        None, description="Stop unless the monitored value beats this baseline. Defaults to `None`."
    )


class TrainingSpec(Strict):
    """Optimizer, schedule length and early stopping."""

    epochs: Annotated[
        int, ranged(lo=1, hi=MAX_EPOCHS, integer=True, fix="Early stopping ends runs sooner; 100 is typical.")
    ] = Field(100, description=f"Maximum number of epochs, in [1, {MAX_EPOCHS}]. Defaults to `100`.")
    batch_size: Annotated[int, ranged(lo=1, hi=MAX_BATCH_SIZE, integer=True, fix="32 to 256 is typical.")] = (
        Field(32, description=f"Rows per gradient step, in [1, {MAX_BATCH_SIZE}]. Defaults to `32`.")
    )
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = Field(
        "adam", description="adam, adamw, sgd or rmsprop. Defaults to `adam`."
    )
    learning_rate: Annotated[
        float,
        ranged(lo=0, lo_open=True, hi=MAX_LEARNING_RATE, fix="1e-3 is a good start for adam."),
    ] = Field(1e-3, description="Step size, in (0, 10]. Defaults to `0.001`.")
    weight_decay: Annotated[
        float,
        ranged(lo=0, hi=MAX_PENALTY, hi_is_cap=True, fix="Use 0 for none; 1e-4 to 1e-2 is typical for adamw."),
    ] = Field(
        0.0, description="Decoupled weight decay (not L2; reported separately), >= 0. Defaults to `0.0`."
    )
    early_stopping: EarlyStoppingSpec = Field(
        default_factory=EarlyStoppingSpec, description="Early stopping settings."
    )


class DiagnosisSpec(Strict):
    """Thresholds of the bias/variance diagnosis (SPEC §5.7)."""

    target_error: NonNegative | None = Field(
        None, description="Human-level / Bayes error estimate; null means 0. Defaults to `None`."
    )
    bias_tolerance: NonNegative = Field(
        0.05, description="Avoidable bias (train error - target) above this is high bias. Defaults to `0.05`."
    )
    gap_tolerance: NonNegative = Field(
        0.02,
        description="Variance (val error - clean train error) above this is high variance. Defaults to `0.02`.",
    )
    not_learning_margin: NonNegative = Field(
        0.01,
        description="A val error within this of the majority-class / mean predictor's is not_learning. Defaults to `0.01`.",
    )
    max_penalty_share: Annotated[float, ranged(lo=0, lo_open=True, hi=1, fix="0.5 is the default.")] = Field(
        0.5, description="Warn when the L1/L2 penalty is more than this share of the loss. Defaults to `0.5`."
    )
    curve_window: Annotated[int, ranged(lo=2, hi=MAX_EPOCHS, integer=True, fix="10 is the default.")] = Field(
        10, description="Recent epochs over which slopes and validation noise are measured. Defaults to `10`."
    )



class MlflowSpec(Strict):
    """Where to log a run in MLflow: a tracking store and an experiment name.

    Use it to browse runs and compare them in the MLflow UI. regcli logs once the run has
    finished: params (the resolved spec, dotted keys), per-epoch metrics (step = epoch),
    summary numbers, verdict and best epoch as tags, and the run directory's files as
    artifacts. Needs `pip install 'regcli[mlflow]'`.
    """

    uri: Annotated[str, BeforeValidator(mlflow_uri)] = Field(
        description="Tracking store: a directory (file store; relative to the spec file), file:///abs/dir, "
        "sqlite:///mlflow.db (relative to the spec file) or sqlite:////abs/mlflow.db, or http(s)://host:port."
    )
    experiment: Annotated[
        str, matching_string(re.compile(r"[^\x00-\x1f\x7f]{1,256}"), "an experiment name of 1 to 256 printable characters")
    ] = Field("regcli", description="MLflow experiment the run is logged to (created if missing). Defaults to `regcli`.")


class TrackingSpec(Strict):
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
            fail(Problem("", "must be a mapping such as {uri: mlruns, experiment: regcli}, or null.", value,
                           "Write the tracking store under uri:."))
        return value


class ExperimentSpec(Strict):
    """One experiment: data, model, training and diagnosis settings (SPEC §2).

    Only `data` is required; everything else has the defaults the seed considers best
    practice. Build it with `load_experiment_spec` or `validate_experiment`, which
    resolve relative paths and translate errors into `SpecError`.
    """

    name: (
        Annotated[
            str,
            matching_string(
                NAME_RE,
                f"1 to {MAX_NAME_CHARS} characters from A-Z a-z 0-9 . _ - not starting with '.' or '-'",
                "It names the run directory inside the output directory, e.g. bc-l2-dropout.",
            ),
        ]
        | None
    ) = Field(
        None, description="Run name; the run directory is <out>/<name>-<timestamp>-<id>. Defaults to `None`."
    )
    seed: Seed = Field(0, description="One seed drives split, init, shuffling and dropout. Defaults to `0`.")
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
        """Every rule that spans sections (`checks.CROSS_CHECKS`); all their problems at once."""
        problems = [p for check in CROSS_CHECKS for p in check(self)]
        if problems:
            fail(*problems)
        return self
