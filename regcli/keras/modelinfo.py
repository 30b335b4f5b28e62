"""What a user's compiled Keras model is, in regcli's terms: its task, its task metric, its
weight penalty, its layers and optimizer as config.yaml describes them, and its evaluation.

`RunRecorder` reads a model it did not build: the task comes from the compiled loss (or the
recorder's `task=`), the task metric from the names the model's compiled metrics report, the
L1/L2 penalty from the regularizers of its trainable weights (the weight part of
`model.losses`, which is what Keras adds to `loss` and `val_loss`), and the regularization
that the diagnosis reads (kernel L1/L2, dropout rates, BatchNorm) from its layers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np

from regcli.errors import BadInputError
from regcli.training.evaluate import regularization_penalty
from regcli.training.feed import EVAL_BATCH_SIZE
from regcli.training.fit import with_error

TASKS = ("binary", "multiclass", "regression")
# The compiled loss's function name -> the task it trains (keras.losses.get resolves aliases: "mse", "bce").
LOSS_TASKS = {
    "binary_crossentropy": "binary",
    "binary_focal_crossentropy": "binary",
    "sparse_categorical_crossentropy": "multiclass",
    "categorical_crossentropy": "multiclass",
    "categorical_focal_crossentropy": "multiclass",
    "mean_squared_error": "regression",
    "mean_absolute_error": "regression",
    "huber": "regression",
    "log_cosh": "regression",
    "mean_squared_logarithmic_error": "regression",
    "mean_absolute_percentage_error": "regression",
}
# The names under which Keras logs each task metric, regcli's own name first.
METRIC_NAMES = {
    "accuracy": ("accuracy", "binary_accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "acc"),
    "mae": ("mae", "mean_absolute_error"),
}
# Keras layer classes -> regcli's layer types (SPEC §2 model.layers); any other layer is `custom`.
LAYER_TYPES = {
    "InputLayer": "input", "Dense": "dense", "BatchNormalization": "batchnorm", "Activation": "activation",
    "Dropout": "dropout", "Conv2D": "conv2d", "MaxPooling2D": "maxpool2d", "Flatten": "flatten",
    "SpatialDropout2D": "spatial_dropout2d", "GaussianNoise": "gaussian_noise",
}
_LAYER_NUMBERS = ("units", "filters", "rate", "momentum", "stddev")
_REGULARIZERS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer")


def loss_name(loss: Any) -> str:
    """The compiled loss's function name (`binary_crossentropy`), or its class or function name."""
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return loss
    fn = getattr(loss, "fn", loss)  # a Loss class such as BinaryCrossentropy wraps its function
    return str(getattr(fn, "__name__", type(loss).__name__))


def output_units(model: keras.Model, x: np.ndarray) -> int:
    """The width of the model's one output for rows like `x` (Sequential and subclassed models too).

    Raises BadInputError for a model with several outputs, or one that cannot take such rows.
    """
    try:
        spec = model.compute_output_spec(keras.KerasTensor((None, *x.shape[1:]), dtype=str(x.dtype)))
    except Exception as exc:  # Keras raises many types for an input it cannot take
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise BadInputError(
            f"train_data does not fit the model: it cannot take rows of shape {tuple(x.shape[1:])} "
            f"({type(exc).__name__}: {reason}). Pass train_data=(x, y), the arrays model.fit trains on."
        ) from None
    if not hasattr(spec, "shape"):
        raise BadInputError(
            f"RunRecorder records a model with one output and one loss; this model has {len(spec)} outputs. "
            f"Record each output's model on its own, or combine them into one output."
        )
    return int(spec.shape[-1] or 1) if len(spec.shape) > 1 else 1


def infer_task(model: keras.Model, task: str, units: int) -> tuple[str, int]:
    """(task, n_classes) of a compiled model whose output has `units`: from the loss when `task` is auto.

    Raises BadInputError when the loss says nothing about the task and `task` is auto, when
    `task` contradicts the loss, or when the output layer cannot serve the task.
    """
    if model.loss is None or isinstance(model.loss, Mapping | list | tuple):
        raise BadInputError(
            f"RunRecorder records a model compiled with one loss. Received: loss={model.loss!r}. "
            f"Compile it with model.compile(loss=...), one loss for its one output."
        )
    name = loss_name(model.loss)
    from_loss = LOSS_TASKS.get(name)
    if task == "auto":
        if from_loss is None:
            raise BadInputError(
                f"RunRecorder cannot tell the task from the loss {name!r}. Pass task='binary', 'multiclass' "
                f"or 'regression' to RunRecorder."
            )
        task = from_loss
    elif from_loss is not None and from_loss != task:
        raise BadInputError(f"RunRecorder task={task!r}, but the model's loss {name} trains a {from_loss} task. Received: task={task!r}.")
    if task == "multiclass" and units < 2:
        raise BadInputError(f"task multiclass needs an output layer with one unit per class; this model's has {units}.")
    if task == "binary" and units != 1:
        raise BadInputError(f"task binary needs an output layer with 1 unit; this model's has {units}. Use task='multiclass'.")
    return task, {"multiclass": units, "binary": 2}.get(task, 1)  # n_classes as regcli.data counts them


def task_metric(names: Iterable[str], task: str) -> tuple[str, str]:
    """(the name the model logs its task metric under, regcli's name: accuracy or mae).

    Raises BadInputError when the model's compiled metrics report neither: the diagnosis
    compares errors, and Keras logs a validation metric only when the model was compiled with it.
    """
    metric = "mae" if task == "regression" else "accuracy"
    names = list(names)
    for logged in METRIC_NAMES[metric]:
        if logged in names:
            return logged, metric
    reported = ", ".join(n for n in names if n != "loss") or "none"
    raise BadInputError(
        f"RunRecorder needs the {task} task's metric in the model's logs, but the model reports {reported}. "
        f"Compile it with metrics=[{metric!r}] (Keras then logs {metric} and val_{metric})."
    )


# The L1/L2 penalty of the current weights, as Keras adds it to `loss` and `val_loss`
# (`model.losses` also holds call-time terms, such as activity regularization, which after a
# compiled step are symbolic and cannot be read back).
weight_penalty = regularization_penalty


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray, *, logged: str, metric: str) -> dict[str, float]:
    """Loss (penalty included), `data_loss` (without it) and the metrics of `(x, y)` in inference mode.

    `logged` is the name the model reports its task metric under; it is also given as `metric`
    (accuracy or mae), and `error` is added (1 - accuracy, or mae), as regcli's summary has them.
    """
    result = model.evaluate(x, y, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
    metrics = {str(k): float(v) for k, v in result.items()}
    metrics["data_loss"] = metrics["loss"] - weight_penalty(model)
    if logged in metrics:
        metrics[metric] = metrics[logged]
    return with_error(metrics, metric)


def _number(value: Any) -> float:
    """A float to 7 significant digits: Keras stores an L1 factor of 0.1 as 0.10000000149011612."""
    return float(f"{float(value):.7g}")


def describe_regularizer(regularizer: Any) -> dict[str, Any]:
    """`{l1, l2}` for Keras's L1, L2 and L1L2; `{class_name}` for any other regularizer."""
    if isinstance(regularizer, keras.regularizers.L1 | keras.regularizers.L2 | keras.regularizers.L1L2):
        config = regularizer.get_config()
        return {"l1": _number(config.get("l1", 0.0)), "l2": _number(config.get("l2", 0.0))}
    return {"class_name": type(regularizer).__name__}


def describe_layer(layer: keras.layers.Layer) -> dict[str, Any]:
    """One layer as config.yaml's model.layers lists it: regcli's type, or `custom` and its class."""
    cls = type(layer)
    builtin = cls.__module__.startswith("keras.")
    entry: dict[str, Any] = {"name": layer.name, "type": LAYER_TYPES.get(cls.__name__, "custom") if builtin else "custom"}
    if entry["type"] == "custom":
        entry["class_name"] = cls.__name__
    for attr in _LAYER_NUMBERS:
        value = getattr(layer, attr, None)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            entry[attr] = value if isinstance(value, int) else _number(value)
    activation = getattr(layer, "activation", None)
    if callable(activation) and getattr(activation, "__name__", "linear") != "linear":
        entry["activation"] = activation.__name__
    for attr in _REGULARIZERS:
        regularizer = getattr(layer, attr, None)
        if regularizer is not None:
            entry[attr] = describe_regularizer(regularizer)
    return entry


def describe_optimizer(optimizer: Any) -> dict[str, Any]:
    """`optimizer`, `learning_rate` (at the start of training) and `weight_decay`, as the spec names them."""
    described: dict[str, Any] = {"optimizer": type(optimizer).__name__.lower()}
    rate = getattr(optimizer, "learning_rate", None)
    try:
        described["learning_rate"] = _number(keras.ops.convert_to_numpy(rate))
    except (TypeError, ValueError):  # a schedule object that is not a variable
        described["learning_rate"] = None
    decay = getattr(optimizer, "weight_decay", None)
    described["weight_decay"] = _number(decay) if isinstance(decay, int | float) else 0.0
    return described


def describe_early_stopping(early: keras.callbacks.EarlyStopping | None) -> dict[str, Any]:
    """The user's EarlyStopping as training.early_stopping says it (`enabled: false` without one)."""
    if early is None:
        return {"enabled": False, "monitor": "val_loss"}
    baseline = early.baseline
    return {
        "enabled": True,
        "monitor": early.monitor,
        "mode": early.mode,
        "min_delta": _number(abs(early.min_delta)),
        "patience": int(early.patience),
        "restore_best_weights": bool(early.restore_best_weights),
        "start_from_epoch": int(early.start_from_epoch),
        "baseline": None if baseline is None else _number(baseline),
    }


def find_early_stopping(callback: keras.callbacks.Callback) -> keras.callbacks.EarlyStopping | None:
    """The EarlyStopping among the callbacks `callback` runs with, or None.

    Keras gives a callback no handle on its siblings; `CallbackList.on_train_begin` calls each
    callback's own with the list as its `self`, so the list is found one frame up the stack
    (a user's own CallbackList subclass a few frames further).
    """
    import sys

    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(c is callback for c in owner.callbacks):
            found = [c for c in owner.callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
            return found[0] if found else None
        frame = frame.f_back
    return None
