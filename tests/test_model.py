"""regcli.model: a `model:` block becomes the Keras layers and regularizers it describes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from regcli.errors import BadInputError
from regcli.model import apply_freeze, build_model, make_regularizer, task_head
from regcli.spec import validate_experiment


def model_spec(tmp_path, **model):
    return validate_experiment({"data": {"source": "breast_cancer"}, "model": model}, tmp_path).model


def layers(model: keras.Model) -> list[tuple[str, str]]:
    return [(layer.name, type(layer).__name__) for layer in model.layers]


def test_shorthand_blocks_with_batchnorm_have_no_dense_bias_and_the_penalties_on_every_hidden_kernel(tmp_path):
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
    for name in ("block1_dense", "block2_dense"):
        reg = model.get_layer(name).kernel_regularizer
        assert isinstance(reg, keras.regularizers.L1L2) and (float(reg.l1), float(reg.l2)) == pytest.approx((1e-3, 1e-2)), name
    assert model.get_layer("output").kernel_regularizer is None  # as the seed writes it: the head is not penalized
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


# ---------------------------------------------------------------------------------------
# The seed's template, as a Keras user writes it
# ---------------------------------------------------------------------------------------
def seed_template_by_hand() -> keras.Sequential:
    """The seed article's combined template, written in plain Keras (no regcli)."""
    L2 = keras.regularizers.L2
    return keras.Sequential([
        keras.Input(shape=(30,)),
        keras.layers.Dense(256, use_bias=False, kernel_regularizer=L2(1e-4)),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(128, use_bias=False, kernel_regularizer=L2(1e-4)),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


SEED_TEMPLATE_LAYERS = [
    {"type": "dense", "units": 256, "use_bias": False, "kernel_regularizer": {"l2": 1e-4}},
    {"type": "batchnorm"},
    {"type": "activation", "activation": "relu"},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 128, "use_bias": False, "kernel_regularizer": {"l2": 1e-4}},
    {"type": "batchnorm"},
    {"type": "activation", "activation": "relu"},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 1, "activation": "sigmoid"},
]


def layer_facts(layer: keras.layers.Layer) -> dict:
    """What makes two layers the same layer: kind, shape, activation, penalties, rates, BN settings."""
    def reg(r):
        return None if r is None else (type(r).__name__, round(float(getattr(r, "l1", 0.0)), 12),
                                       round(float(getattr(r, "l2", 0.0)), 12))

    facts = {"class": type(layer).__name__, "weights": [tuple(w.shape) for w in layer.weights]}
    for attr in ("units", "use_bias", "rate", "momentum", "epsilon"):
        if hasattr(layer, attr):
            facts[attr] = getattr(layer, attr)
    if hasattr(layer, "activation"):
        facts["activation"] = layer.activation.__name__
    for attr in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
        if hasattr(layer, attr):
            facts[attr] = reg(getattr(layer, attr))
    return facts


@pytest.mark.parametrize("how", ["shorthand", "explicit layers"])
def test_the_seed_template_builds_the_hand_written_keras_model_layer_for_layer(tmp_path, how):
    model_block = ({"hidden": [256, 128], "batchnorm": True, "dropout": 0.2, "l2": 1e-4} if how == "shorthand"
                   else {"layers": SEED_TEMPLATE_LAYERS})
    ours = build_model(model_spec(tmp_path, **model_block), n_features=30, task="binary", n_classes=2)
    theirs = seed_template_by_hand()
    mine = [layer for layer in ours.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [layer_facts(layer) for layer in mine] == [layer_facts(layer) for layer in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    # Same weights in, same outputs out, in inference and in the penalty Keras adds to the loss.
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(0).normal(size=(9, 30)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(sum(float(v) for v in ours.losses), sum(float(v) for v in theirs.losses), rtol=1e-6)


def test_a_trailing_dense_with_the_tasks_outputs_is_the_output_layer_not_followed_by_another(tmp_path):
    spec = model_spec(tmp_path, layers=[{"type": "dense", "units": 8, "activation": "relu"},
                                        {"type": "dense", "units": 3, "activation": "softmax", "name": "probs"}])
    model = build_model(spec, n_features=4, task="multiclass", n_classes=3)
    assert layers(model) == [("features", "InputLayer"), ("layer0_dense", "Dense"), ("probs", "Dense")]
    # Dense(1) then Activation("sigmoid") is the same head in two layers.
    spec = model_spec(tmp_path, layers=[{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1},
                                        {"type": "activation", "activation": "sigmoid"}])
    model = build_model(spec, n_features=4, task="binary", n_classes=2)
    assert [name for name, _ in layers(model)] == ["features", "layer0_dense", "layer1_dense", "layer2_activation"]
    # Regression: a one-unit dense ends the model, linear or (positive targets) relu.
    spec = model_spec(tmp_path, layers=[{"type": "dense", "units": 8, "activation": "relu"},
                                        {"type": "dense", "units": 1, "activation": "relu"}])
    assert build_model(spec, n_features=4, task="regression", n_classes=0).output_shape == (None, 1)
    assert len(build_model(spec, n_features=4, task="regression", n_classes=0).layers) == 3


@pytest.mark.parametrize("last, task, message", [
    ({"type": "dense", "units": 1, "activation": "sigmoid"}, "multiclass",
     "model.layers.1 is a dense layer with 1 unit and sigmoid, an activation only an output layer has, but it is "
     "not this multiclass task's output layer, which is a dense layer with units 3 and activation: softmax."),
    ({"type": "activation", "activation": "softmax"}, "multiclass",
     "model.layers.1 is an activation layer with softmax, an activation only an output layer has"),
    ({"type": "dense", "units": 1}, "binary",
     "model.layers.1 is the output layer (a dense layer with units 1, the binary task's outputs, ends the model), "
     "so it needs activation: sigmoid. Received: activation=None."),
    ({"type": "dense", "units": 1, "activation": "softmax"}, "regression",
     "model.layers.1 is the output layer (a dense layer with units 1, the regression task's outputs"),
])
def test_a_trailing_layer_that_looks_like_a_head_but_is_not_this_tasks_is_refused(tmp_path, last, task, message):
    spec = model_spec(tmp_path, layers=[{"type": "dense", "units": 8, "activation": "relu"}, last])
    with pytest.raises(BadInputError) as caught:
        build_model(spec, n_features=4, task=task, n_classes=3)
    assert str(caught.value).startswith(message)


def test_output_l2_opts_the_output_kernel_into_the_penalty(tmp_path):
    model = build_model(model_spec(tmp_path, hidden=[4], output_l2=1e-3), n_features=3, task="binary", n_classes=2)
    head = model.get_layer("output")
    assert isinstance(head.kernel_regularizer, keras.regularizers.L2)
    assert float(head.kernel_regularizer.l2) == pytest.approx(1e-3)
    assert float(model.get_layer("block1_dense").kernel_regularizer.l2) == pytest.approx(1e-4)  # the default l2


def test_validate_checks_the_output_layer_against_the_data_and_warns_about_settings_that_do_nothing(tmp_path):
    from typer.testing import CliRunner

    from regcli.cli import app

    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {source: iris}\nmodel:\n  layers:\n    - {type: dense, units: 8, activation: relu}\n"
                    "    - {type: dense, units: 1, activation: sigmoid}\n")
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "model.layers.1 is a dense layer with 1 unit and sigmoid" in result.output
    assert "Traceback" not in result.output
    spec.write_text("data: {source: breast_cancer}\nmodel: {batchnorm: true, bias_l2: 1.0e-3}\n")
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0
    assert "warning: model.bias_l2 (0.001) has no effect with model.batchnorm: true" in result.output
