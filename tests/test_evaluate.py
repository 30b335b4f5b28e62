"""The fused per-epoch evaluation (`regcli.training.evaluate`): the clean subset and the validation split
from one compiled call give what Keras's `fit(validation_data=...)` plus a clean `test_on_batch` gave,
for one model and for a pack, and it is used only where that holds.

Every comparison trains twice for real: once fused (the default) and once with `fusable` switched off,
which is the path every run took before (Keras validates, `test_on_batch` measures the clean subset).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest

from regcli import rundir
from regcli.data import load_dataset
from regcli.experiment import run_packed
from regcli.spec import validate_experiment
from regcli.training import fit, packed
from regcli.training.evaluate import Twin, fusable, regularization_penalty
from regcli.training.feed import EVAL_BATCH_SIZE

TRAIN_COLUMNS = ["loss", "data_loss", "accuracy", "lr"]
EVAL_COLUMNS = ["val_loss", "val_data_loss", "val_accuracy", "clean_loss", "clean_data_loss", "clean_accuracy"]


def spec_for(tmp_path, model: dict, early_stopping: dict | None = None, data: dict | None = None, seed: int = 3):
    return validate_experiment({
        "seed": seed,
        "data": data or {"source": "breast_cancer"},
        "model": model,
        "training": {"epochs": 12, "batch_size": 32, "learning_rate": 3e-3,
                     "early_stopping": early_stopping or {"enabled": True, "patience": 2, "restore_best_weights": True}},
    }, tmp_path)


def trained_both_ways(spec, monkeypatch):
    ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)
    fused = fit.train(spec, ds)
    with monkeypatch.context() as m:
        m.setattr(fit, "fusable", lambda model, n_val: False)
        keras_way = fit.train(spec, ds)
    return fused, keras_way


def assert_same_run(fused_rows: pd.DataFrame, keras_rows: pd.DataFrame) -> None:
    """Training bit for bit; the evaluations equal up to float rounding (the penalty's sum, XLA's fusions)."""
    assert list(fused_rows.columns) == list(keras_rows.columns)
    pd.testing.assert_frame_equal(fused_rows[TRAIN_COLUMNS], keras_rows[TRAIN_COLUMNS], check_exact=True)
    np.testing.assert_allclose(fused_rows[EVAL_COLUMNS], keras_rows[EVAL_COLUMNS], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("model", [
    {"hidden": [32, 16], "batchnorm": True, "dropout": 0.3, "l2": 1e-3},
    {"hidden": [16], "batchnorm": False, "dropout": 0.0, "l1": 1e-3, "bias_l2": 1e-2, "output_l2": 1e-2},
], ids=["bn-dropout-l2", "l1-bias-output-penalties"])
def test_one_model_trains_stops_and_ships_as_with_kerass_own_validation(tmp_path, monkeypatch, model):
    spec = spec_for(tmp_path, model)
    fused, keras_way = trained_both_ways(spec, monkeypatch)
    assert fused.summary["fused_evaluation"] is True and keras_way.summary["fused_evaluation"] is False
    assert_same_run(pd.DataFrame(fused.history).drop(columns="seconds"),
                    pd.DataFrame(keras_way.history).drop(columns="seconds"))
    for key in ("best_epoch", "shipped_epoch", "epochs_run", "stopped_early", "restored_best_weights"):
        assert fused.summary[key] == keras_way.summary[key], key
    for a, b in zip(fused.model.get_weights(), keras_way.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The shipped weights' train/val metrics come from the twin here (341 rows: the clean subset is
    # the whole training split); Keras's evaluate gave the same.
    for split in ("train", "val"):
        got, want = fused.summary["metrics"][split], keras_way.summary["metrics"][split]
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-7), (split, key)
    # val_loss is the data loss plus the penalty Keras adds: at the shipped (restored) epoch's weights.
    assert fused.summary["restored_best_weights"]
    shipped = fused.history[fused.summary["shipped_epoch"] - 1]
    assert regularization_penalty(fused.model) > 0
    assert shipped["val_loss"] == pytest.approx(shipped["val_data_loss"] + regularization_penalty(fused.model), rel=1e-6)


def test_a_pack_trains_as_with_kerass_own_validation(tmp_path, monkeypatch):
    """Stacked towers and a loose (explicit-layers) tower, per-tower early stopping: the same rows and epochs."""
    models = [{"hidden": [16], "batchnorm": True, "dropout": 0.0, "l2": l2} for l2 in (0.0, 1e-3, 1e-2)]
    models.append({"layers": [{"type": "dense", "units": 8, "activation": "relu"}]})
    es = {"enabled": True, "monitor": "val_loss", "patience": 1, "restore_best_weights": True}
    specs = [spec_for(tmp_path, m, es, seed=0) for m in models]
    fused = run_packed(specs, [tmp_path / "fused" / f"t{i}" for i in range(len(specs))])
    with monkeypatch.context() as m:
        m.setattr(packed, "fusable", lambda model, n_val: False)
        packed.forget_kept_model()  # the kept model carries its twin: build a new one, the Keras way
        keras_way = run_packed(specs, [tmp_path / "keras" / f"t{i}" for i in range(len(specs))])
    packed.forget_kept_model()
    for a, b in zip(fused, keras_way, strict=True):
        assert a.summary["packed"]["size"] == len(specs)
        ha, hb = (pd.read_csv(o.run_dir / rundir.HISTORY).drop(columns="seconds") for o in (a, b))
        assert_same_run(ha, hb)
        for key in ("best_epoch", "epochs_run", "stopped_early"):
            assert a.summary[key] == b.summary[key], key
        np.testing.assert_allclose(a.summary["metrics"]["val"]["data_loss"], b.summary["metrics"]["val"]["data_loss"],
                                   rtol=1e-6)


class Scaled(keras.layers.Layer):
    """A user's own layer: it could `add_loss` in `call`, which the twin's penalty would not see."""

    def call(self, x):
        return x * 2.0


def small_model(*layers) -> keras.Model:
    inputs = keras.Input((4,))
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def test_the_twin_is_used_only_where_it_computes_what_keras_would():
    plain = small_model(keras.layers.Dense(8, kernel_regularizer=keras.regularizers.L2(1e-3)),
                        keras.layers.BatchNormalization(), keras.layers.Dropout(0.5))
    assert fusable(plain, n_val=100)
    assert not fusable(plain, n_val=EVAL_BATCH_SIZE + 1)  # Keras evaluates it batch by batch
    assert not fusable(small_model(keras.layers.Dense(8, activity_regularizer=keras.regularizers.L2(1e-3))), 100)
    assert not fusable(small_model(Scaled()), 100)
    a, b = keras.Input((4,)), keras.Input((4,))
    two_inputs = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
    assert not fusable(two_inputs, 100)


def test_a_large_validation_split_is_evaluated_by_keras_and_a_large_training_split_finished_by_evaluate(tmp_path):
    data = {"source": "synthetic_classification", "val_fraction": 0.2, "test_fraction": 0.1,
            "params": {"n_samples": 6000, "n_features": 6}}
    spec = spec_for(tmp_path, {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 1e-3}, {"enabled": False},
                    data=data)
    ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)
    assert len(ds.x_val) > EVAL_BATCH_SIZE and len(ds.x_train) > 2048
    result = fit.train(spec.model_copy(update={"training": spec.training.model_copy(update={"epochs": 2})}), ds)
    assert result.summary["fused_evaluation"] is False
    assert {"val_loss", "val_data_loss", "clean_loss"} <= result.history[-1].keys()
    # Validation small enough, training split larger than the clean subset: fused per epoch, but the
    # shipped weights' train metrics are Keras's evaluate over every training row.
    ds_small_val = dataclasses.replace(ds, x_val=ds.x_val[:500], y_val=ds.y_val[:500])
    result = fit.train(spec.model_copy(update={"training": spec.training.model_copy(update={"epochs": 2})}),
                       ds_small_val)
    assert result.summary["fused_evaluation"] is True
    want = fit.evaluate_split(result.model, ds.x_train, ds.y_train, ds.task)
    assert result.summary["metrics"]["train"]["data_loss"] == pytest.approx(want["data_loss"], rel=1e-5)


def test_the_twin_shares_the_models_weights():
    """After the model's weights change, the twin evaluates the new ones: nothing is copied."""
    model = small_model(keras.layers.Dense(8))
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    twin = Twin(model, lambda _: keras.losses.BinaryCrossentropy(), lambda _: [keras.metrics.BinaryCrossentropy(name="data_loss")])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)).astype("float32"), (rng.random((20, 1)) > 0.5).astype("float32")
    twin.set_data((x, y), (x[:7], y[:7]))
    before = twin()
    model.set_weights([w * 3.0 for w in model.get_weights()])
    after = twin()
    assert after["clean"]["data_loss"] != before["clean"]["data_loss"]
    want = model.evaluate(x[:7], y[:7], verbose=0, return_dict=True)["loss"]
    assert after["val"]["data_loss"] == pytest.approx(want, rel=1e-6)
