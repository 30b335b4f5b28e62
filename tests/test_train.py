"""Real (tiny) trainings checking SPEC §4/§5 semantics end to end through the library.

Every test trains for real on bundled data with a few epochs: they check wiring and
Keras semantics, not convergence.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from regcli import rundir
from regcli.experiment import run_experiment
from regcli.replay import replay_early_stopping
from regcli.spec import load_experiment_spec

SUMMARY_KEYS = {
    "best_epoch", "shipped_epoch", "best_value", "monitor", "epochs_run", "stopped_early",
    "restored_best_weights", "metrics", "penalty", "penalty_share", "weight_stats",
    "n_train", "n_val", "n_test", "seconds", "seed", "backend",
}


def make_spec(tmp_path, replace=(), **sections):
    """A small breast_cancer spec; `sections` extend the top-level blocks (or replace those named in `replace`)."""
    raw = {
        "seed": 0,
        "data": {"source": "breast_cancer"},
        "model": {"hidden": [16], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
        "training": {"epochs": 4, "batch_size": 32, "early_stopping": {"enabled": False}},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and key not in replace:
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment_spec(path)


def train(tmp_path, replace=(), **sections):
    spec = make_spec(tmp_path, replace, **sections)
    outcome = run_experiment(spec, out=tmp_path / "runs")
    history = pd.read_csv(outcome.run_dir / rundir.HISTORY)
    return outcome, history


def test_run_directory_has_every_file_and_key(tmp_path):
    outcome, history = train(tmp_path, model={"hidden": [16], "batchnorm": True, "dropout": 0.2, "l2": 1e-4})
    run = outcome.run_dir
    for name in rundir.RUN_FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    summary = json.loads((run / rundir.SUMMARY).read_text())
    assert SUMMARY_KEYS <= set(summary)
    for split in ("train", "val"):
        assert {"loss", "data_loss", "accuracy", "error"} <= set(summary["metrics"][split])
    status = json.loads((run / rundir.STATUS).read_text())
    assert status["state"] == "completed" and status["error"] is None and status["ended"]
    diagnosis = json.loads((run / rundir.DIAGNOSIS_JSON).read_text())
    assert diagnosis["verdict"] in {"high_bias", "high_variance", "high_bias_and_variance", "good_fit", "diverged", "not_learning"}
    env = json.loads((run / rundir.ENVIRONMENT).read_text())
    assert {"python", "keras", "backend", "backend_version", "device", "os", "command_line", "git_commit"} <= set(env)
    expected = {"epoch", "loss", "val_loss", "data_loss", "val_data_loss", "clean_loss", "clean_data_loss",
                "accuracy", "val_accuracy", "clean_accuracy", "lr", "seconds"}
    assert expected <= set(history.columns)
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == 569
    # config.yaml is the resolved spec: loading it back gives the same spec.
    assert load_experiment_spec(run / rundir.CONFIG) == make_spec(tmp_path, model={"hidden": [16], "batchnorm": True, "dropout": 0.2, "l2": 1e-4})


def test_l2_penalty_is_in_loss_not_in_data_loss_and_equals_lambda_sum_w2(tmp_path):
    lam, lam_out = 1e-2, 3e-2  # l2 on the hidden kernels, output_l2 on the output layer's (opt-in)
    outcome, history = train(tmp_path, model={"hidden": [8], "l2": lam, "output_l2": lam_out})
    summary = outcome.summary
    model = keras.saving.load_model(outcome.run_dir / rundir.MODEL, safe_mode=True)
    by_hand = sum((lam_out if layer.name == "output" else lam) * float(np.sum(np.square(layer.get_weights()[0])))
                  for layer in model.layers if hasattr(layer, "kernel"))
    assert summary["penalty"] == pytest.approx(by_hand, rel=1e-5)
    train_m = summary["metrics"]["train"]
    assert train_m["loss"] - train_m["data_loss"] == pytest.approx(by_hand, rel=1e-3)
    # Per epoch: val_loss carries the penalty, val_data_loss does not (the gap is the penalty, > 0).
    gap = history["val_loss"] - history["val_data_loss"]
    assert (gap > 0.5 * by_hand).all()
    gap_clean = history["clean_loss"] - history["clean_data_loss"]
    assert gap_clean.iloc[-1] == pytest.approx(by_hand, rel=1e-3)


def test_no_penalty_means_loss_equals_data_loss(tmp_path):
    outcome, history = train(tmp_path)
    assert outcome.summary["penalty"] == 0.0
    np.testing.assert_allclose(history["val_loss"], history["val_data_loss"], rtol=1e-5)


def test_l1_makes_weights_sparser(tmp_path):
    common = {"training": {"epochs": 30, "learning_rate": 1e-2, "early_stopping": {"enabled": False}}}
    with_l1, _ = train(tmp_path, model={"hidden": [32], "l1": 3e-2}, **common)
    without, _ = train(tmp_path, model={"hidden": [32]}, **common)
    sparse = with_l1.summary["weight_stats"]["block1_dense"]["near_zero_fraction"]
    dense = without.summary["weight_stats"]["block1_dense"]["near_zero_fraction"]
    assert sparse > dense + 0.1, (sparse, dense)
    assert with_l1.summary["weight_stats"]["block1_dense"]["l1_norm"] < without.summary["weight_stats"]["block1_dense"]["l1_norm"]


def test_dropout_is_off_at_inference_and_clean_differs_from_as_trained(tmp_path):
    outcome, history = train(tmp_path, model={"hidden": [64], "dropout": 0.5})
    model = keras.saving.load_model(outcome.run_dir / rundir.MODEL, safe_mode=True)
    x = np.random.default_rng(0).normal(size=(32, 30)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    # As trained (dropout on, running mean) vs clean (inference mode): not the same numbers.
    assert not np.allclose(history["data_loss"], history["clean_data_loss"], rtol=1e-3)


@pytest.mark.parametrize(
    "early_stopping",
    [
        {"patience": 1, "min_delta": 0.0},
        {"patience": 2, "min_delta": 0.01, "start_from_epoch": 2},
        {"patience": 50},  # runs out of epochs without stopping: the best epoch is still shipped
    ],
)
def test_best_epoch_follows_keras_rule_replayed_on_history(tmp_path, early_stopping):
    es = {"enabled": True, "monitor": "val_loss", "restore_best_weights": True, **early_stopping}
    outcome, history = train(
        tmp_path,
        model={"hidden": [32], "dropout": 0.3, "l2": 1e-3},
        training={"epochs": 12, "learning_rate": 3e-2, "early_stopping": es},
    )
    s = outcome.summary
    replay = replay_early_stopping(
        list(history["val_loss"]),
        mode="min",
        patience=es["patience"],
        min_delta=es.get("min_delta", 0.0),
        start_from_epoch=es.get("start_from_epoch", 0),
    )
    assert s["epochs_run"] == len(history) == replay["epochs_run"]
    assert s["best_epoch"] == s["shipped_epoch"] == replay["shipped_epoch"]
    assert s["stopped_early"] == (replay["stopped_epoch"] is not None)
    assert s["restored_best_weights"] is True
    # The shipped model is the best epoch's: its val loss is history's val_loss at best_epoch.
    assert s["metrics"]["val"]["loss"] == pytest.approx(history["val_loss"][s["best_epoch"] - 1], rel=1e-4)
    assert s["best_value"] == pytest.approx(history["val_loss"][s["best_epoch"] - 1])


def test_same_spec_and_seed_give_identical_history_and_weights(tmp_path):
    sections = {"model": {"hidden": [16], "batchnorm": True, "dropout": 0.3, "l2": 1e-3}}
    a, ha = train(tmp_path, **sections)
    b, hb = train(tmp_path, **sections)
    cols = [c for c in ha.columns if c != "seconds"]
    pd.testing.assert_frame_equal(ha[cols], hb[cols], check_exact=True)
    ma = keras.saving.load_model(a.run_dir / rundir.MODEL)
    mb = keras.saving.load_model(b.run_dir / rundir.MODEL)
    for wa, wb in zip(ma.get_weights(), mb.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_frozen_batchnorm_keeps_its_moving_statistics_during_fine_tuning(tmp_path):
    model = {"hidden": [16], "batchnorm": True, "dropout": 0.0}
    base, _ = train(tmp_path, model=model)
    tuned, _ = train(tmp_path, model={**model, "init_from": str(base.run_dir), "freeze": ["block1_bn"]})
    before = keras.saving.load_model(base.run_dir / rundir.MODEL).get_layer("block1_bn")
    after = keras.saving.load_model(tuned.run_dir / rundir.MODEL).get_layer("block1_bn")
    for name in ("moving_mean", "moving_variance", "gamma", "beta"):
        np.testing.assert_array_equal(getattr(before, name).numpy(), getattr(after, name).numpy())
    # The unfrozen dense layer did train.
    d0 = keras.saving.load_model(base.run_dir / rundir.MODEL).get_layer("block1_dense").get_weights()[0]
    d1 = keras.saving.load_model(tuned.run_dir / rundir.MODEL).get_layer("block1_dense").get_weights()[0]
    assert not np.array_equal(d0, d1)
    assert tuned.summary["frozen_layers"] == ["block1_bn"]


def test_regression_task_reports_mae(tmp_path):
    outcome, history = train(tmp_path, data={"source": "diabetes"})
    assert outcome.summary["task"] == "regression"
    assert {"mae", "val_mae", "clean_mae"} <= set(history.columns)
    assert outcome.summary["metrics"]["val"]["error"] == outcome.summary["metrics"]["val"]["mae"]


def test_digits_cnn_trains_on_8x8_images(tmp_path):
    layers = [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "kernel_regularizer": {"l2": 1e-4}},
        {"type": "batchnorm"},
        {"type": "activation", "activation": "relu"},
        {"type": "spatial_dropout2d", "rate": 0.1},
        {"type": "maxpool2d"},
        {"type": "flatten"},
        {"type": "gaussian_noise", "stddev": 0.1},
        {"type": "dense", "units": 8, "activation": "relu"},
        {"type": "dropout", "rate": 0.2},
    ]
    outcome, history = train(tmp_path, data={"source": "digits"}, model={"layers": layers}, training={"epochs": 2}, replace=("model",))
    assert outcome.summary["task"] == "multiclass"
    assert "layer0_conv2d" in outcome.summary["weight_stats"]
    assert len(history) == 2 and math.isfinite(history["val_loss"].iloc[-1])


def test_diverging_run_is_recorded_as_diverged(tmp_path):
    outcome, history = train(
        tmp_path,
        data={"source": "diabetes"},
        model={"hidden": [64, 64], "batchnorm": False, "dropout": 0.0},
        training={"optimizer": "sgd", "learning_rate": 10.0, "epochs": 5},
    )
    assert outcome.state == "diverged"
    status = json.loads((outcome.run_dir / rundir.STATUS).read_text())
    assert status["state"] == "diverged" and "NaN" in status["error"]
    assert json.loads((outcome.run_dir / rundir.DIAGNOSIS_JSON).read_text())["verdict"] == "diverged"


@pytest.mark.parametrize("kind", ["one model", "pack"])
def test_seeding_that_keeps_tensorflows_kernel_cache_trains_exactly_as_seeding_that_clears_it(tmp_path, monkeypatch, kind):
    """`regcli.training.fit.set_random_seed(keep_kernels=True)` skips the kernel-cache clear of
    `tf.random.set_seed` (0.32 s on each later pack's first epoch): a run after another one in the same
    process trains bit for bit as with the clear (dropout's stream, BatchNorm, the shuffle order)."""
    from regcli.experiment import run_packed
    from regcli.training import fit

    model = {"hidden": [16], "batchnorm": True, "dropout": 0.3, "l2": 1e-3}
    specs = [make_spec(tmp_path, model=model, seed=seed) for seed in (1, 2)]

    def second_run(where):
        if kind == "pack":
            run_packed(specs[:1], [tmp_path / where / "a"])
            return [run_packed(specs[1:], [tmp_path / where / "b"])[0].run_dir]
        run_experiment(specs[0], out=tmp_path / where)
        return [run_experiment(specs[1], out=tmp_path / where).run_dir]

    kept = second_run("kept")
    with monkeypatch.context() as m:
        clearing = fit.set_random_seed
        m.setattr(fit, "set_random_seed", lambda seed, keep_kernels=False: clearing(seed))
        if kind == "pack":
            from regcli.training import packed

            m.setattr(packed, "set_random_seed", lambda seed, keep_kernels=False: clearing(seed))
        cleared = second_run("cleared")
    for a, b in zip(kept, cleared, strict=True):
        ha, hb = (pd.read_csv(d / rundir.HISTORY).drop(columns="seconds") for d in (a, b))
        pd.testing.assert_frame_equal(ha, hb, check_exact=True)
