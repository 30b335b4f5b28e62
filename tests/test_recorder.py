"""regcli.keras.RunRecorder: a user's own `model.fit` becomes a regcli run directory that every
read command (diagnose, ls, compare, report, test) reads as one of `regcli train`'s.

Real trainings of a tiny functional model (a custom serializable layer, L2 and dropout) on 100
seeded rows: they check wiring and Keras semantics, not convergence.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import regcli.cli
from regcli import rundir
from regcli.errors import BadInputError
from regcli.keras import RunRecorder
from regcli.keras.modelinfo import weight_penalty

L2 = 1e-2
EPOCHS = 4  # 4 epochs: these tests check wiring, not convergence


@keras.saving.register_keras_serializable(package="regcli_tests")
class Scale(keras.layers.Layer):
    """A per-feature learned scale: a custom layer only `register_keras_serializable` makes loadable."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def make_model(dropout: float = 0.5, metrics=("accuracy",)) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(L2), name="hidden")(inputs)
    h = Scale(name="scale")(h)
    h = keras.layers.Dropout(dropout, name="dropout")(h)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=list(metrics))
    return model


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32").reshape(-1, 1)
    return (x[:60], y[:60]), (x[60:80], y[60:80]), (x[80:], y[80:])


def bce(y: np.ndarray, p: np.ndarray) -> float:
    """Binary cross-entropy by hand, with Keras's clipping of the probabilities."""
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def cli(*args: str):
    return CliRunner().invoke(regcli.cli.app, list(args))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two recorded runs in one `runs/`: `stopped` (EarlyStopping restoring its best epoch, with
    test_data) and `plain` (no early stopping, so its last epoch's weights are the shipped ones)."""
    out = tmp_path_factory.mktemp("recorder") / "runs"
    train, val, test = make_data()
    stopped_model = make_model()
    stopped = RunRecorder(out, name="stopped", train_data=train, val_data=val, test_data=test)
    early = keras.callbacks.EarlyStopping(monitor="val_data_loss", mode="min", patience=1, restore_best_weights=True)
    stopped_model.fit(*train, validation_data=val, epochs=EPOCHS, batch_size=16, verbose=0,
                      callbacks=[stopped, early])
    plain_model = make_model()
    plain = RunRecorder(out, name="plain", train_data=train)
    plain_model.fit(*train, validation_data=val, epochs=EPOCHS, batch_size=16, verbose=0, callbacks=[plain])
    return {"out": out, "data": (train, val, test), "stopped": (stopped, stopped_model, early),
            "plain": (plain, plain_model)}


def test_a_recorded_run_has_every_file_of_a_completed_run(runs):
    run = runs["stopped"][0].run_dir
    assert run.parent == runs["out"] and run.name.startswith("stopped-")
    assert all((run / name).is_file() for name in rundir.RUN_FILES)
    assert (run / rundir.TEST_SPLIT).is_file()
    assert not list(run.glob(".*.tmp*"))
    status = json.loads((run / rundir.STATUS).read_text())
    assert (status["state"], status["error"]) == ("completed", None)
    plain = runs["plain"][0].run_dir
    assert rundir.read_history(plain).columns.tolist() == [
        "epoch", "loss", "val_loss", "data_loss", "val_data_loss", "clean_loss", "clean_data_loss",
        "accuracy", "val_accuracy", "clean_accuracy", "lr", "seconds",
    ]
    assert not (plain / rundir.TEST_SPLIT).exists()


def test_summary_reads_the_users_early_stopping(runs):
    recorder, model, early = runs["stopped"]
    summary = json.loads((recorder.run_dir / rundir.SUMMARY).read_text())
    history = rundir.read_history(recorder.run_dir)
    assert summary["best_epoch"] == summary["shipped_epoch"] == early.best_epoch + 1
    assert summary["monitor"] == "val_data_loss"
    assert summary["best_value"] == history["val_data_loss"].min()
    assert summary["stopped_early"] is (early.stopped_epoch > 0)
    assert summary["restored_best_weights"] is True
    assert summary["epochs_run"] == len(history)
    assert (summary["task"], summary["n_classes"], summary["n_train"], summary["n_val"], summary["n_test"]) == (
        "binary", 2, 60, 20, 20)
    best = history.iloc[summary["best_epoch"] - 1]
    assert summary["metrics"]["val"] == {
        "loss": best["val_loss"], "data_loss": best["val_data_loss"], "accuracy": best["val_accuracy"],
        "error": 1.0 - best["val_accuracy"],
    }
    train = summary["metrics"]["train"]
    assert set(train) == {"loss", "data_loss", "accuracy", "error"}
    assert train["loss"] - train["data_loss"] == pytest.approx(summary["penalty"], rel=1e-5)
    assert summary["penalty"] == pytest.approx(weight_penalty(model), rel=1e-6)
    assert summary["recorded"] == {"by": "regcli.keras.RunRecorder", "metric": "accuracy", "task_metric": "accuracy"}
    assert (summary["seed"], summary["data"]["clean_seed"], summary["smoke"]) == (None, 0, False)
    assert set(summary["weight_stats"]) == {"hidden", "out"}


def test_config_yaml_says_what_the_run_was(runs):
    recorder, model, early = runs["stopped"]
    text = (recorder.run_dir / rundir.CONFIG).read_text()
    assert text.startswith("# Recorded by regcli.keras.RunRecorder from a model.fit in your own code")
    config = yaml.safe_load(text)
    assert config["recorded"] == {"by": "regcli.keras.RunRecorder", "reproducible": False,
                                  "model_class": "Functional", "loss": "binary_crossentropy"}
    assert config["model"] == {"task": "binary", "layers": [
        {"name": model.layers[0].name, "type": "input"},
        {"name": "hidden", "type": "dense", "units": 16, "activation": "relu", "kernel_regularizer": {"l1": 0.0, "l2": L2}},
        {"name": "scale", "type": "custom", "class_name": "Scale"},
        {"name": "dropout", "type": "dropout", "rate": 0.5},
        {"name": "out", "type": "dense", "units": 1, "activation": "sigmoid"},
    ]}
    assert config["training"] == {
        "epochs": EPOCHS, "steps_per_epoch": 4, "optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.0,
        "early_stopping": {"enabled": True, "monitor": "val_data_loss", "mode": "min", "min_delta": 0.0,
                           "patience": 1, "restore_best_weights": True, "start_from_epoch": 0, "baseline": None},
    }
    assert config["data"]["test_split"] == rundir.TEST_SPLIT
    # Not a spec: `regcli validate` (and so `regcli train`) refuses it.
    result = cli("validate", str(recorder.run_dir / rundir.CONFIG))
    assert result.exit_code == 2, result.output
    assert "recorded" in result.output


def test_data_losses_are_the_task_loss_without_the_penalty(runs):
    """The plain run ships its last epoch: its last row is checked against a hand computation."""
    recorder, model = runs["plain"]
    (x, y), (xv, yv), _ = runs["data"]
    history = rundir.read_history(recorder.run_dir)
    last, before = history.iloc[-1], history.iloc[-2]
    kernel = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel).astype(np.float64)
    penalty = L2 * float(np.sum(kernel**2))
    inference = keras.ops.convert_to_numpy(model(x, training=False))
    assert last["val_data_loss"] == pytest.approx(bce(yv, model.predict(xv, verbose=0)), abs=1e-5)
    assert last["val_loss"] - last["val_data_loss"] == pytest.approx(penalty, rel=1e-5)
    # Clean: all 60 training rows (the subset is capped at 2048), dropout off.
    assert last["clean_data_loss"] == pytest.approx(bce(y, inference), abs=1e-5)
    assert last["clean_loss"] - last["clean_data_loss"] == pytest.approx(penalty, rel=1e-5)
    # As trained: the running loss holds the mean of the penalty before the epoch's first step and after its last.
    previous_penalty = before["val_loss"] - before["val_data_loss"]
    assert last["loss"] - last["data_loss"] == pytest.approx((previous_penalty + penalty) / 2, rel=1e-5)


def test_the_clean_curve_is_measured_in_inference_mode(runs):
    recorder, model = runs["plain"]
    (x, y), _, _ = runs["data"]
    history = rundir.read_history(recorder.run_dir)
    assert (history["clean_loss"] != history["loss"]).all()  # dropout 0.5 is on while training
    with_dropout = bce(y, keras.ops.convert_to_numpy(model(x, training=True)))
    assert history["clean_data_loss"].iloc[-1] != pytest.approx(with_dropout, abs=1e-4)
    clean_accuracy = float(np.mean((keras.ops.convert_to_numpy(model(x, training=False)) > 0.5) == y))
    assert history["clean_accuracy"].iloc[-1] == pytest.approx(clean_accuracy)


def test_model_keras_loads_in_safe_mode_and_predicts_as_the_trained_model(runs):
    _, (xv, _), _ = runs["data"]
    for recorder, model in (runs["plain"], runs["stopped"][:2]):
        loaded = keras.saving.load_model(recorder.run_dir / rundir.MODEL, safe_mode=True)
        assert isinstance(loaded.get_layer("scale"), Scale)
        np.testing.assert_array_equal(loaded.predict(xv, verbose=0), model.predict(xv, verbose=0))


def test_diagnose_ls_compare_and_report_read_recorded_runs(runs):
    stopped, plain = runs["stopped"][0].run_dir, runs["plain"][0].run_dir
    recorded = json.loads((stopped / rundir.DIAGNOSIS_JSON).read_text())
    result = cli("diagnose", str(stopped), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["diagnosis"] == recorded  # the recorder's diagnosis is regcli diagnose's
    result = cli("ls", str(runs["out"]))
    assert result.exit_code == 0, result.output
    assert stopped.name in result.output and plain.name in result.output and "completed" in result.output
    result = cli("compare", str(stopped), str(plain))
    assert result.exit_code == 0, result.output
    assert "training.early_stopping.monitor" in result.output
    assert list(runs["out"].glob("compare-*.png"))
    result = cli("report", str(stopped))
    assert result.exit_code == 0, result.output
    assert (stopped / "report.html").is_file()


def test_regcli_test_reads_the_stored_test_split_once(runs):
    recorder, model, _ = runs["stopped"]
    _, _, (xt, yt) = runs["data"]
    result = cli("test", str(recorder.run_dir), "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output[result.output.index("{"):])
    evaluated = model.evaluate(xt, yt, verbose=0, return_dict=True)
    assert outcome["n_test"] == 20
    assert outcome["metrics"]["loss"] == pytest.approx(evaluated["loss"], rel=1e-6)
    assert outcome["metrics"]["error"] == pytest.approx(1 - evaluated["accuracy"])
    assert outcome["metrics"]["loss"] - outcome["metrics"]["data_loss"] == pytest.approx(weight_penalty(model), rel=1e-5)
    summary = json.loads((recorder.run_dir / rundir.SUMMARY).read_text())
    assert summary["metrics"]["test"] == outcome["metrics"]
    ledger = [json.loads(line) for line in (runs["out"] / "test_ledger.jsonl").read_text().splitlines()]
    assert ledger[-1]["run_name"] == recorder.run_dir.name
    assert ledger[-1]["test_fingerprint"] == summary["data"]["test_fingerprint"]


def test_regcli_test_without_test_data_exits_2_with_one_paragraph(runs):
    run = runs["plain"][0].run_dir
    result = cli("test", str(run))
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"error: {run} was recorded by regcli.keras.RunRecorder without test_data, so it holds no test split "
        f"and there is nothing to test. Pass test_data=(x_test, y_test) to RunRecorder and record the run "
        f"again; the recorder stores it in test_split.npz for regcli test alone."
    )


def test_a_changed_test_split_is_refused(runs, tmp_path):
    import shutil

    run = tmp_path / runs["stopped"][0].run_dir.name
    shutil.copytree(runs["stopped"][0].run_dir, run)
    _, _, (xt, yt) = runs["data"]
    np.savez(run / rundir.TEST_SPLIT, x=xt[::-1], y=yt[::-1])
    result = cli("test", str(run))
    assert result.exit_code == 2
    assert "test_split.npz has changed since the run was recorded" in " ".join(result.output.split())


def make_sequential(units: int, activation: str | None, loss: str, metric: str) -> keras.Model:
    """A Sequential model without an Input: Keras builds it during the fit."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(units, activation=activation)])
    model.compile(optimizer="adam", loss=loss, metrics=[metric])
    return model


@pytest.mark.parametrize("build", [make_model, lambda: make_sequential(1, "sigmoid", "binary_crossentropy", "accuracy")],
                         ids=["functional", "sequential_unbuilt"])
def test_the_recorder_does_not_change_the_training(tmp_path, build):
    train, val, _ = make_data()
    weights = []
    for callbacks in ([], [RunRecorder(tmp_path, name="same", train_data=train)]):
        model = build()
        model.fit(*train, validation_data=val, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
        weights.append(model.get_weights())
    for recorded, plain in zip(weights[1], weights[0], strict=True):
        np.testing.assert_array_equal(recorded, plain)


@pytest.mark.parametrize(("loss", "metric", "task", "units"), [
    ("sparse_categorical_crossentropy", "accuracy", "multiclass", 3),
    ("mse", "mae", "regression", 1),
])
def test_multiclass_and_regression_fits_are_recorded(tmp_path, loss, metric, task, units):
    (x, _), (xv, _), _ = make_data()
    if task == "multiclass":
        y, yv = np.argmax(x[:, :3], axis=1), np.argmax(xv[:, :3], axis=1)
        baseline = float(np.mean(yv != np.argmax(np.bincount(y, minlength=3))))
    else:
        y, yv = x[:, :1] + 2 * x[:, 1:2], xv[:, :1] + 2 * xv[:, 1:2]
        baseline = float(np.mean(np.abs(yv.astype(np.float64) - y.astype(np.float64).mean())))
    model = make_sequential(units, "softmax" if task == "multiclass" else None, loss, metric)
    recorder = RunRecorder(tmp_path, name=task, train_data=(x, y), val_data=(xv, yv))
    model.fit(x, y, validation_data=(xv, yv), epochs=2, verbose=0, callbacks=[recorder])
    summary = json.loads((recorder.run_dir / rundir.SUMMARY).read_text())
    assert (summary["task"], summary["n_classes"], summary["state"]) == (task, units, "completed")
    assert set(summary["metrics"]["val"]) == {"loss", "data_loss", metric, "error"}
    assert summary["metrics"]["val"]["data_loss"] == summary["metrics"]["val"]["loss"]  # no penalty
    assert summary["baseline_val_error"] == pytest.approx(baseline)
    assert {f"clean_{metric}", f"val_{metric}"} <= set(rundir.read_history(recorder.run_dir).columns)
    assert yaml.safe_load((recorder.run_dir / rundir.CONFIG).read_text())["model"]["task"] == task
    result = cli("diagnose", str(recorder.run_dir))
    assert result.exit_code == 0, result.output


def test_status_is_running_while_training_and_failed_when_fit_raises(tmp_path):
    train, val, _ = make_data()
    seen = []

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(json.loads((recorder.run_dir / rundir.STATUS).read_text())["state"])
            if epoch == 1:
                raise RuntimeError("the user's callback broke")

    with pytest.raises(RuntimeError), RunRecorder(tmp_path, name="boom", train_data=train) as recorder:
        make_model().fit(*train, validation_data=val, epochs=EPOCHS, verbose=0, callbacks=[recorder, Boom()])
    status = json.loads((recorder.run_dir / rundir.STATUS).read_text())
    assert seen == ["running", "running"]
    assert (status["state"], status["error"]) == ("failed", "model.fit raised RuntimeError: the user's callback broke")
    assert len(rundir.read_history(recorder.run_dir)) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "../escape"}, "name must be 1-100 characters of letters, digits, '.', '_' or '-', starting with a "
                                "letter or digit, so the run directory stays inside the output directory. Received: '../escape'."),
        ({"train_data": None}, "train_data is required: pass train_data=(x, y), the arrays model.fit trains on."),
        ({"train_data": (np.zeros((3, 6)), np.zeros(2))}, "train_data must be (x, y) with the same number of rows, "
                                                          "at least one. Received: x of shape (3, 6), y of shape (2,)."),
        ({"train_data": np.zeros((3, 6))}, "train_data must be a pair (x, y) of arrays, as model.fit takes them. "
                                           "Received: ndarray."),
        ({"task": "ranking"}, "task must be one of auto, binary, multiclass, regression. Received: task='ranking'."),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, kwargs, message):
    arguments = {"name": "ok", "train_data": make_data()[0], **kwargs}
    with pytest.raises(BadInputError) as caught:
        RunRecorder(tmp_path / "runs", **arguments)
    assert str(caught.value) == message


def test_an_out_dir_that_cannot_hold_runs_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(BadInputError) as caught:
        RunRecorder(tmp_path / "file", name="x", train_data=make_data()[0])
    assert str(caught.value) == f"out {tmp_path / 'file'}: {tmp_path / 'file'} is not a directory, so no run directory can be made under it."


@pytest.mark.parametrize(
    ("train", "metrics", "message"),
    [
        ((np.zeros((8, 5), "float32"), np.zeros((8, 1), "float32")), ("accuracy",),
         "train_data: x has rows of shape (5,), but the model's input takes (6,). Pass the arrays model.fit uses."),
        (None, ("auc",), "RunRecorder needs the binary task's metric in the model's logs, but the model reports auc. "
                         "Compile it with metrics=['accuracy'] (Keras then logs accuracy and val_accuracy)."),
    ],
)
def test_data_or_metrics_that_do_not_fit_the_model_are_refused_before_training(tmp_path, train, metrics, message):
    train_data, val, _ = make_data()
    model = make_model(metrics=[keras.metrics.AUC(name="auc")] if metrics == ("auc",) else metrics)
    before = [np.copy(w) for w in model.get_weights()]
    with pytest.raises(BadInputError) as caught:
        model.fit(*train_data, validation_data=val, epochs=2, verbose=0,
                  callbacks=[RunRecorder(tmp_path, name="x", train_data=train or train_data)])
    assert str(caught.value) == message
    assert list(Path(tmp_path).iterdir()) == []  # no run directory
    for after, start in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(after, start)  # not one step was taken


def test_a_fit_without_validation_is_refused_and_leaves_nothing(tmp_path):
    train, _, _ = make_data()
    with pytest.raises(BadInputError) as caught:
        make_model().fit(*train, epochs=2, verbose=0, callbacks=[RunRecorder(tmp_path, name="x", train_data=train)])
    assert str(caught.value) == (
        "RunRecorder needs a validation loss every epoch, and this model.fit logs none: pass "
        "validation_data=(x_val, y_val) (or validation_split) to model.fit, with validation_freq=1."
    )
    assert list(Path(tmp_path).iterdir()) == []
