"""The explicit layers of `model.layers` (the allow-list: nothing else can be built) and `Strict`.

`Strict` is the base of every spec model: frozen, unknown keys forbidden, no silent type
coercion. Each layer type is one model whose `type` is a Literal; `LayerSpec` is their
discriminated union, so an unknown `type` is refused naming the allowed ones.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from regcli.spec.fields import (
    LAYER_ACTIVATIONS,
    MAX_SCALE,
    LayerActivation,
    LayerName,
    Padding,
    Rate,
    Size,
    Units,
    penalty,
    ranged,
)


class Strict(BaseModel):
    """Frozen, unknown keys forbidden, no silent type coercion (an int may stand for a float)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class RegularizerSpec(Strict):
    """L1/L2 strengths of one penalty (`keras.regularizers.L1L2`)."""

    l1: penalty("L1 penalty") = Field(0.0, description="L1 strength, >= 0. Defaults to `0.0`.")
    l2: penalty("L2 penalty") = Field(0.0, description="L2 strength, >= 0. Defaults to `0.0`.")



class _Layer(Strict):
    """Fields every explicit layer has; `type` is narrowed to one Literal by each subclass."""

    type: str = Field(description="Layer type.")
    name: LayerName | None = Field(
        None, description="Keras layer name (unique in the model). Defaults to `None`."
    )


class DenseLayerSpec(_Layer):
    """`keras.layers.Dense` with optional kernel, bias and activity penalties."""

    type: Literal["dense"] = Field(description="Layer type.")
    units: Units = Field(description="Number of units, in [1, 65536].")
    activation: LayerActivation | None = Field(
        None, description="Activation; null is linear (softmax only on an output layer). Defaults to `None`."
    )
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
    momentum: Annotated[float, ranged(lo=0, hi=1, hi_open=True, fix="0.99 is Keras's default.")] = Field(
        0.99, description="Momentum of the moving averages, in [0, 1). Defaults to `0.99`."
    )
    epsilon: Annotated[float, ranged(lo=0, lo_open=True, hi=1, fix="1e-3 is Keras's default.")] = Field(
        1e-3, description="Added to the variance for stability, in (0, 1]. Defaults to `0.001`."
    )


class ActivationLayerSpec(_Layer):
    """`keras.layers.Activation`."""

    type: Literal["activation"] = Field(description="Layer type.")
    activation: LayerActivation = Field(description=f"One of {', '.join(LAYER_ACTIVATIONS)}.")


class DropoutLayerSpec(_Layer):
    """`keras.layers.Dropout`: active only while training."""

    type: Literal["dropout"] = Field(description="Layer type.")
    rate: Rate = Field(description="Share of inputs dropped while training, in [0, 1).")


class Conv2DLayerSpec(_Layer):
    """`keras.layers.Conv2D` with optional kernel, bias and activity penalties."""

    type: Literal["conv2d"] = Field(description="Layer type.")
    filters: Units = Field(description="Number of filters, in [1, 65536].")
    kernel_size: Size = Field(description="Kernel size: an integer or [height, width].")
    strides: Size = Field(1, description="Strides: an integer or [height, width]. Defaults to `1`.")
    padding: Padding = Field("valid", description="valid or same. Defaults to `valid`.")
    activation: LayerActivation | None = Field(
        None, description="Activation; null is linear (softmax only on an output layer). Defaults to `None`."
    )
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
    pool_size: Size = Field(2, description="Pool size: an integer or [height, width]. Defaults to `2`.")
    strides: Size | None = Field(None, description="Strides; null uses pool_size. Defaults to `None`.")
    padding: Padding = Field("valid", description="valid or same. Defaults to `valid`.")


class FlattenLayerSpec(_Layer):
    """`keras.layers.Flatten`."""

    type: Literal["flatten"] = Field(description="Layer type.")


class SpatialDropout2DLayerSpec(_Layer):
    """`keras.layers.SpatialDropout2D`: drops whole feature maps while training."""

    type: Literal["spatial_dropout2d"] = Field(description="Layer type.")
    rate: Rate = Field(description="Share of feature maps dropped while training, in [0, 1).")


class GaussianNoiseLayerSpec(_Layer):
    """`keras.layers.GaussianNoise`: additive noise while training only."""

    type: Literal["gaussian_noise"] = Field(description="Layer type.")
    stddev: Annotated[float, ranged(lo=0, hi=MAX_SCALE, hi_is_cap=True, fix="0.1 is a typical value.")] = Field(
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
