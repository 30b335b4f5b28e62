"""Spec -> `keras.Model`: the MLP shorthand, the explicit layer list and the task head.

Pure: nothing here touches disk except `load_init_weights`, which reads the weights of
the run named by `model.init_from`. Keras is imported by the caller's process only
(this module is imported lazily by `regcli.training`), so `regcli --help` stays instant.
"""

from __future__ import annotations

import re
from typing import Any

import keras

from regcli.errors import BadInputError
from regcli.head import explicit_head, task_head
from regcli.spec import LAYER_TYPES  # every allowed explicit layer type; nothing else can be built


def make_loss(task: str) -> keras.losses.Loss:
    """The training loss: binary / sparse categorical cross-entropy, or MSE."""
    if task == "binary":
        return keras.losses.BinaryCrossentropy()
    if task == "multiclass":
        return keras.losses.SparseCategoricalCrossentropy()
    return keras.losses.MeanSquaredError()


def make_metrics(task: str) -> list[keras.metrics.Metric]:
    """The task metric plus `data_loss`: the same loss as a metric, hence without the penalty.

    Keras adds the L1/L2 penalty to `loss` and `val_loss`; a metric sees only
    `(y_true, y_pred)`, so `data_loss`/`val_data_loss` are penalty-free and comparable
    across regularization strengths.
    """
    if task == "binary":
        return [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.BinaryCrossentropy(name="data_loss"),
        ]
    if task == "multiclass":
        return [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="data_loss"),
        ]
    return [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.MeanSquaredError(name="data_loss"),
    ]


def make_regularizer(l1: float = 0.0, l2: float = 0.0) -> keras.regularizers.Regularizer | None:
    """Explicit `L1`/`L2`/`L1L2` objects; None when both are zero.

    Keras's string id `'l1_l2'` raises and `L1L2()` with defaults is silently zero, so
    regcli never goes through either.
    """
    l1, l2 = float(l1 or 0.0), float(l2 or 0.0)
    if l1 > 0 and l2 > 0:
        return keras.regularizers.L1L2(l1=l1, l2=l2)
    if l1 > 0:
        return keras.regularizers.L1(l1)
    if l2 > 0:
        return keras.regularizers.L2(l2)
    return None


def _reg_from(entry: Any) -> keras.regularizers.Regularizer | None:
    if entry is None:
        return None
    return make_regularizer(getattr(entry, "l1", 0.0), getattr(entry, "l2", 0.0))


def _shorthand_layers(model_spec: Any) -> list[keras.layers.Layer]:
    """One block per `hidden` entry: Dense(no bias when BN) -> BN -> Activation -> Dropout."""
    layers: list[keras.layers.Layer] = []
    bn = bool(model_spec.batchnorm)
    for i, units in enumerate(model_spec.hidden, start=1):
        use_bias = not bn  # BN's beta makes a Dense bias redundant
        layers.append(
            keras.layers.Dense(
                units,
                use_bias=use_bias,
                kernel_regularizer=make_regularizer(model_spec.l1, model_spec.l2),
                bias_regularizer=make_regularizer(0.0, model_spec.bias_l2) if use_bias else None,
                activity_regularizer=make_regularizer(0.0, model_spec.activity_l2),
                name=f"block{i}_dense",
            )
        )
        if bn:
            layers.append(keras.layers.BatchNormalization(momentum=model_spec.bn_momentum, name=f"block{i}_bn"))
        layers.append(keras.layers.Activation(model_spec.activation, name=f"block{i}_act"))
        if model_spec.dropout > 0:
            layers.append(keras.layers.Dropout(model_spec.dropout, name=f"block{i}_dropout"))
    return layers


def _explicit_layer(entry: Any, index: int) -> keras.layers.Layer:
    """Builds one allow-listed layer from its spec entry."""
    kind = entry.type
    name = getattr(entry, "name", None) or f"layer{index}_{kind}"
    if kind == "dense":
        return keras.layers.Dense(
            entry.units,
            activation=entry.activation,
            use_bias=entry.use_bias,
            kernel_regularizer=_reg_from(entry.kernel_regularizer),
            bias_regularizer=_reg_from(entry.bias_regularizer),
            activity_regularizer=_reg_from(entry.activity_regularizer),
            name=name,
        )
    if kind == "conv2d":
        return keras.layers.Conv2D(
            entry.filters,
            entry.kernel_size,
            strides=entry.strides,
            padding=entry.padding,
            activation=entry.activation,
            use_bias=entry.use_bias,
            kernel_regularizer=_reg_from(entry.kernel_regularizer),
            bias_regularizer=_reg_from(entry.bias_regularizer),
            activity_regularizer=_reg_from(entry.activity_regularizer),
            name=name,
        )
    if kind == "batchnorm":
        return keras.layers.BatchNormalization(momentum=entry.momentum, epsilon=entry.epsilon, name=name)
    if kind == "activation":
        return keras.layers.Activation(entry.activation, name=name)
    if kind == "dropout":
        return keras.layers.Dropout(entry.rate, name=name)
    if kind == "spatial_dropout2d":
        return keras.layers.SpatialDropout2D(entry.rate, name=name)
    if kind == "gaussian_noise":
        return keras.layers.GaussianNoise(entry.stddev, name=name)
    if kind == "maxpool2d":
        return keras.layers.MaxPooling2D(entry.pool_size, strides=entry.strides, padding=entry.padding, name=name)
    if kind == "flatten":
        return keras.layers.Flatten(name=name)
    raise BadInputError(
        f"model.layers.{index}.type must be one of {', '.join(LAYER_TYPES)}. Received: {kind!r}."
    )


_SPATIAL = ("conv2d", "maxpool2d", "spatial_dropout2d")


def build_model(
    model_spec: Any,
    *,
    n_features: int,
    task: str,
    n_classes: int,
    image_shape: tuple[int, ...] | None = None,
    name: str = "regcli_model",
    input_shape: tuple[int, ...] | None = None,
) -> keras.Model:
    """Builds the (uncompiled) model a spec describes.

    Explicit `layers:` are built as written; when they end in the task's output layer
    (`regcli.head.explicit_head`) no head is added, otherwise regcli adds `output`. Layers
    with conv2d/maxpool2d/spatial_dropout2d need image-shaped data (e.g. `digits`, 8x8x1):
    the flat features are reshaped after the input, and a spatial output is flattened
    before an added head. The shorthand penalizes its hidden kernels with `l1`/`l2` and
    the head's only with `output_l2`, as the seed's templates do.

    Args:
        model_spec: the validated `model:` block.
        n_features: number of (flat) input features.
        task: "binary", "multiclass" or "regression".
        n_classes: number of classes (ignored for binary/regression heads).
        image_shape: shape to reshape the flat input to for spatial layers. Defaults to `None`.
        name: the Keras model name. Defaults to `"regcli_model"`.
        input_shape: the shape of one input row as fed, for `model.builder` (the user's function
            builds its own input, for `image_shape` when the data are images). Defaults to `None`:
            `(n_features,)`.
    """
    head = task_head(task, n_classes)
    if model_spec.builder is not None:
        from regcli.builder import build_from_builder
        from regcli.spec.builders import BUILDER_KNOBS

        fed = tuple(input_shape or (n_features,))
        return build_from_builder(model_spec, BUILDER_KNOBS, input_shape=tuple(image_shape or fed), fed_shape=fed,
                                  n_outputs=head.units, task=task, name=name)
    inputs = keras.Input(shape=(n_features,), name="features")
    x = inputs
    if model_spec.layers is not None:
        entries = list(model_spec.layers)
        own_head = explicit_head(entries, head)
        x = _to_image(x, entries, n_features, image_shape)
        layers = [_explicit_layer(e, i) for i, e in enumerate(entries)]
        head_reg = None
    else:
        own_head = 0
        layers = _shorthand_layers(model_spec)
        head_reg = make_regularizer(0.0, model_spec.output_l2)
    for layer in layers:
        x = layer(x)
    if not own_head:
        if len(x.shape) > 2:
            x = keras.layers.Flatten(name="head_flatten")(x)
        x = keras.layers.Dense(head.units, activation=head.activation, kernel_regularizer=head_reg, name="output")(x)
    return keras.Model(inputs, x, name=name)


def _to_image(x: Any, entries: list[Any], n_features: int, image_shape: tuple[int, ...] | None) -> Any:
    """The flat input reshaped to `image_shape` when a spatial layer needs it; refused on flat data."""
    if not any(e.type in _SPATIAL for e in entries):
        return x
    if image_shape is None:
        first = next(i for i, e in enumerate(entries) if e.type in _SPATIAL)
        raise BadInputError(
            f"model.layers.{first} is {entries[first].type}, which needs image-shaped data "
            f"(e.g. data.source: digits, an .npz whose X is (N, H, W[, C]), or an image folder with "
            f"data.image_size); this data set "
            f"has {n_features} flat features. Use dense layers instead."
        )
    return keras.layers.Reshape(tuple(image_shape), name="to_image")(x)


def apply_freeze(model: keras.Model, freeze: list[str | int]) -> list[str]:
    """Freezes layers by name or by index (0 = first layer after the input); returns their names.

    A frozen BatchNormalization runs in inference mode (Keras 3 semantics), so its moving
    statistics stay as loaded.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    by_name = {layer.name: layer for layer in layers}
    frozen = []
    for i, key in enumerate(freeze):
        if isinstance(key, int):
            if not -len(layers) <= key < len(layers):
                raise BadInputError(
                    f"model.freeze.{i} must be a layer index in [0, {len(layers) - 1}]. Received: {key}. "
                    f"Layers: {', '.join(by_name)}."
                )
            layer = layers[key]
        else:
            if key not in by_name:
                raise BadInputError(
                    f"model.freeze.{i} names no layer of this model. Received: {key!r}. "
                    f"Layers: {', '.join(by_name)}."
                )
            layer = by_name[key]
        layer.trainable = False
        frozen.append(layer.name)
    return frozen


def load_init_weights(model: keras.Model, model_path: str, builder: str | None = None) -> None:
    """Loads a previous run's shipped weights into `model` (fine-tuning, `model.init_from`).

    Only weights are read (`Model.load_weights` on the `.keras` archive): no layer
    config or code from the file is deserialized, so a hostile file cannot run anything.
    The architecture must match the one this spec builds.
    """
    import warnings

    from regcli.modelfile import check_model_file

    check_model_file(model_path, builder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(model_path)
            skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)]
            problem = f"Keras skipped part of it ({skipped[0].split('.')[0]})" if skipped else None
        except Exception as exc:  # Keras raises ValueError/KeyError/OSError for mismatches and bad files
            problem = _mismatch(str(exc))
    if problem:
        raise BadInputError(
            f"model.init_from: the weights in {model_path} do not fit the model this spec builds: {problem}. "
            f"init_from needs the same layers and shapes as the run it starts from: use that run's "
            f"model settings, or drop init_from to train from scratch."
        )


def _mismatch(message: str) -> str:
    """One line out of Keras's load error (which prints whole weight tensors): what differs, where."""
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", message)
    where = re.search(r"Target variable: <Variable path=([\w/.-]+)", message)
    if shapes:
        name = where.group(1) if where else "a weight"
        return f"{name} has shape {shapes.group(2)} in the file but {shapes.group(1)} here"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or ["unknown error"]
    text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]  # "Example error message for ...:" + the example
    return text.rstrip(".:")[:400]


def weight_stats(model: keras.Model, near_zero: float = 1e-3) -> dict[str, dict[str, float]]:
    """Per layer with a kernel: L1 norm, L2 norm and the share of |w| < `near_zero` (L1's sparsity)."""
    import numpy as np

    stats = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        w = np.asarray(keras.ops.convert_to_numpy(kernel), dtype=np.float64)
        stats[layer.name] = {
            "l1_norm": float(np.abs(w).sum()),
            "l2_norm": float(np.sqrt((w**2).sum())),
            "near_zero_fraction": float((np.abs(w) < near_zero).mean()),
            "n_weights": int(w.size),
        }
    return stats
