"""regcli.training.stack: K same-shape towers in one TowerStack compute what K separate models do."""

from __future__ import annotations

import keras
import numpy as np

from regcli.model import build_model
from regcli.spec import validate_experiment
from regcli.training.stack import StackLoss, TowerStack, stack_signature

X = np.random.default_rng(9).normal(size=(7, 5)).astype("float32")
Y = (np.arange(7) % 2).reshape(-1, 1).astype("float32")


def model_spec(tmp_path, **model):
    return validate_experiment({"data": {"source": "breast_cancer"}, "model": model}, tmp_path).model


def towers(tmp_path, models: list[dict], *, scramble: bool = False) -> tuple[list, list[keras.Model]]:
    """The specs and their separate models (tower k seeded with k), as `regcli.model` builds them."""
    specs, built = [], []
    for k, model in enumerate(models):
        spec = model_spec(tmp_path, **model)
        keras.utils.set_random_seed(k)
        tower = build_model(spec, n_features=X.shape[1], task="binary", n_classes=2, name=f"t{k}")
        if scramble:  # non-trivial BN statistics and biases too
            for var in tower.weights:
                var.assign(np.random.default_rng(k).normal(size=var.shape).astype("float32") ** 2 + 0.1)
        specs.append(spec)
        built.append(tower)
    return specs, built


def stack_of(specs, models) -> TowerStack:
    stack = TowerStack(specs, 1, "sigmoid", name="s0")
    stack(keras.Input((X.shape[1],)))
    stack.load_towers(dict(enumerate(models)))
    return stack


def slices(stack: TowerStack, model: keras.Model, k: int) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(var)[k] for var in stack.tower_vars(model)]


def test_a_stack_computes_each_towers_model_and_penalty_exactly(tmp_path):
    """Inference mode, BatchNorm towers with different penalties: outputs, penalties, weights."""
    specs, models = towers(tmp_path, [{"hidden": [16], "batchnorm": True, "dropout": 0.0, "l2": 1e-3},
                                      {"hidden": [16], "batchnorm": True, "dropout": 0.0, "l2": 0.0, "l1": 1e-3, "output_l2": 1e-2}],
                           scramble=True)
    stack = stack_of(specs, models)
    out = keras.ops.convert_to_numpy(stack(X, training=False))
    assert out.shape == (7, 2, 1)
    penalties = keras.ops.convert_to_numpy(stack.penalties())
    for k, model in enumerate(models):
        np.testing.assert_allclose(out[:, k], keras.ops.convert_to_numpy(model(X, training=False)), rtol=1e-5)
        expected = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
        np.testing.assert_allclose(penalties[k], expected, rtol=1e-5)
        for got, want in zip(slices(stack, model, k), model.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)


def test_one_training_step_of_a_stack_is_one_step_of_each_separate_model(tmp_path):
    """The summed loss keeps each tower's gradient its own: its data loss plus its own L1/L2/bias L2."""
    specs, models = towers(tmp_path, [
        {"hidden": [6, 3], "batchnorm": False, "dropout": 0.0, "l2": 0.0, "l1": 1e-2},
        {"hidden": [6, 3], "batchnorm": False, "dropout": 0.0, "l2": 1e-1, "bias_l2": 1e-2},
        {"hidden": [6, 3], "batchnorm": False, "dropout": 0.0, "l2": 0.0, "output_l2": 1e-1},
    ])
    stack = stack_of(specs, models)
    inputs = keras.Input((X.shape[1],))
    fused = keras.Model(inputs, stack(inputs))
    fused.compile(optimizer=keras.optimizers.SGD(0.5), loss=StackLoss("binary", len(models)))
    fused.train_on_batch(X, Y)
    for k, model in enumerate(models):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.BinaryCrossentropy())
        before = model.get_weights()
        model.train_on_batch(X, Y)
        after = model.get_weights()
        assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True) if a.ndim == 2)
        for got, want in zip(slices(stack, model, k), after, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_towers_share_a_stack_only_with_the_same_shorthand_shape(tmp_path):
    base = {"hidden": [8, 4], "activation": "relu", "batchnorm": True, "bn_momentum": 0.9}
    signature = stack_signature(model_spec(tmp_path, **base))
    assert signature == ((8, 4), "relu", True, 0.9)
    # Penalties and dropout are per tower: they do not change the signature.
    assert stack_signature(model_spec(tmp_path, **base, l1=1e-3, l2=0.0, dropout=0.5, bias_l2=1e-3)) == signature
    assert stack_signature(model_spec(tmp_path, **{**base, "hidden": [8, 8]})) != signature
    assert stack_signature(model_spec(tmp_path, **{**base, "activation": "tanh"})) != signature
    assert stack_signature(model_spec(tmp_path, **base, activity_l2=1e-4)) is None  # not vectorized
    assert stack_signature(model_spec(tmp_path, layers=[{"type": "dense", "units": 8}])) is None
