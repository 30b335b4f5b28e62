"""regcli.model: a `model:` block becomes the Keras layers and regularizers it describes."""

from __future__ import annotations

import keras
import pytest

from regcli.errors import BadInputError
from regcli.model import apply_freeze, build_model, make_regularizer, task_head
from regcli.spec import validate_experiment


def model_spec(tmp_path, **model):
    return validate_experiment({"data": {"source": "breast_cancer"}, "model": model}, tmp_path).model


def layers(model: keras.Model) -> list[tuple[str, str]]:
    return [(layer.name, type(layer).__name__) for layer in model.layers]


def test_shorthand_blocks_with_batchnorm_have_no_dense_bias_and_the_penalties_on_every_kernel(tmp_path):
    spec = model_spec(tmp_path, hidden=[8, 4], batchnorm=True, dropout=0.25, l1=1e-3, l2=1e-2, activity_l2=1e-5,
                      bn_momentum=0.9)
    model = build_model(spec, n_features=5, task="multiclass", n_classes=3)
    assert layers(model) == [
        ("features", "InputLayer"),
        ("block1_dense", "Dense"), ("block1_bn", "BatchNormalization"), ("block1_act", "Activation"),
        ("block1_dropout", "Dropout"),
        ("block2_dense", "Dense"), ("block2_bn", "BatchNormalization"), ("block2_act", "Activation"),
        ("block2_dropout", "Dropout"),
        ("output", "Dense"),
    ]
    for name in ("block1_dense", "block2_dense", "output"):
        reg = model.get_layer(name).kernel_regularizer
        assert isinstance(reg, keras.regularizers.L1L2) and (float(reg.l1), float(reg.l2)) == pytest.approx((1e-3, 1e-2)), name
    dense = model.get_layer("block1_dense")
    assert dense.use_bias is False and dense.bias_regularizer is None  # BN's beta makes the bias redundant
    assert float(dense.activity_regularizer.l2) == pytest.approx(1e-5)
    assert model.get_layer("block1_bn").momentum == pytest.approx(0.9)
    assert model.get_layer("block2_dropout").rate == 0.25
    assert model.get_layer("output").units == 3 and model.output_shape == (None, 3)


def test_shorthand_without_batchnorm_or_dropout_has_a_penalised_bias_and_no_dropout_layer(tmp_path):
    spec = model_spec(tmp_path, hidden=[6], batchnorm=False, dropout=0.0, l2=1e-3, bias_l2=1e-4, activation="tanh")
    model = build_model(spec, n_features=4, task="binary", n_classes=2)
    assert layers(model) == [("features", "InputLayer"), ("block1_dense", "Dense"), ("block1_act", "Activation"),
                             ("output", "Dense")]
    dense = model.get_layer("block1_dense")
    assert dense.use_bias and isinstance(dense.bias_regularizer, keras.regularizers.L2)
    assert float(dense.bias_regularizer.l2) == pytest.approx(1e-4)
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L2) and dense.activity_regularizer is None
    assert model.get_layer("block1_act").activation is keras.activations.tanh
    assert model.get_layer("output").activation is keras.activations.sigmoid and model.output_shape == (None, 1)


def test_explicit_layers_are_built_as_listed_with_their_own_regularizers(tmp_path):
    spec = model_spec(tmp_path, layers=[
        {"type": "dense", "units": 7, "activation": "relu", "kernel_regularizer": {"l1": 1e-3},
         "bias_regularizer": {"l2": 1e-2}},
        {"type": "gaussian_noise", "stddev": 0.1},
        {"type": "dropout", "rate": 0.5, "name": "drop"},
    ])
    model = build_model(spec, n_features=3, task="regression", n_classes=0)
    assert layers(model) == [("features", "InputLayer"), ("layer0_dense", "Dense"), ("layer1_gaussian_noise", "GaussianNoise"),
                             ("drop", "Dropout"), ("output", "Dense")]
    dense = model.get_layer("layer0_dense")
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L1) and float(dense.kernel_regularizer.l1) == pytest.approx(1e-3)
    assert isinstance(dense.bias_regularizer, keras.regularizers.L2)
    # Explicit layers carry only the penalties they name: the head has none, and no activation (regression).
    head = model.get_layer("output")
    assert head.kernel_regularizer is None and head.activation is keras.activations.linear


def test_spatial_layers_reshape_the_flat_input_and_are_flattened_before_the_head(tmp_path):
    spec = model_spec(tmp_path, layers=[{"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "maxpool2d"}])
    model = build_model(spec, n_features=64, task="multiclass", n_classes=10, image_shape=(8, 8, 1))
    names = [name for name, _ in layers(model)]
    assert names == ["features", "to_image", "layer0_conv2d", "layer1_maxpool2d", "head_flatten", "output"]
    with pytest.raises(BadInputError, match=r"model.layers.0 is conv2d, which needs image-shaped data"):
        build_model(spec, n_features=64, task="multiclass", n_classes=10)


def test_make_regularizer_is_none_l1_l2_or_both():
    assert make_regularizer(0.0, 0.0) is None
    assert type(make_regularizer(1e-3, 0.0)) is keras.regularizers.L1
    assert type(make_regularizer(0.0, 1e-3)) is keras.regularizers.L2
    assert type(make_regularizer(1e-3, 1e-3)) is keras.regularizers.L1L2


def test_task_heads():
    assert (task_head("binary", 2).units, task_head("binary", 2).activation) == (1, "sigmoid")
    assert (task_head("multiclass", 4).units, task_head("multiclass", 4).activation) == (4, "softmax")
    assert (task_head("regression", 0).units, task_head("regression", 0).metric_name) == (1, "mae")


def test_freeze_by_name_and_by_index_counts_layers_after_the_input(tmp_path):
    spec = model_spec(tmp_path, hidden=[4], batchnorm=True, dropout=0.0)
    model = build_model(spec, n_features=3, task="binary", n_classes=2)
    assert apply_freeze(model, ["block1_bn", 0, -1]) == ["block1_bn", "block1_dense", "output"]
    assert [layer.name for layer in model.layers if not layer.trainable] == ["block1_dense", "block1_bn", "output"]
    fresh = build_model(spec, n_features=3, task="binary", n_classes=2)
    with pytest.raises(BadInputError, match=r"model.freeze.0 must be a layer index in \[0, 3\]. Received: 4."):
        apply_freeze(fresh, [4])
    with pytest.raises(BadInputError, match=r"model.freeze.1 names no layer of this model. Received: 'nope'"):
        apply_freeze(fresh, [0, "nope"])
