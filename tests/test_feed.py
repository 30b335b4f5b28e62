"""regcli's training batches (`regcli.training.feed`): every training row exactly once per epoch, the
last partial batch included, in an order that depends only on (seed, epoch) and changes every epoch;
and what plain `model.fit` does instead.

The statistical side of the same question (final validation loss over 24 seeds, regcli's feeding vs
`model.fit`) is `benchmarks/feed_vs_fit.py`; its result is in docs/benchmarks.md.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from regcli.data import load_dataset
from regcli.model import make_loss, make_metrics
from regcli.spec import validate_experiment
from regcli.training import callbacks, fit
from regcli.training.feed import EpochBatches, Feeder, steps_per_execution, targets

# 45 rows in batches of 8: 6 steps per epoch, the last a partial batch of 5 rows.
N, BATCH, EPOCHS = 45, 8, 3
STEPS = math.ceil(N / BATCH)
SIZES = [8, 8, 8, 8, 8, 5]
# The tf.data pipeline and the probes below are TensorFlow's; the other backends' `EpochBatches` is numpy.
tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow feeder")


def rows():
    """Row i holds the number i in x and in y, so a batch names its rows and shows x and y stay paired."""
    x = np.arange(N, dtype="float32").reshape(-1, 1)
    return x, x.copy()


def tf_epochs(seed: int, first_epoch: int = 0, epochs: int = EPOCHS) -> list[list[list[int]]]:
    """The TensorFlow feeder's batches, as row numbers, grouped by epoch (seeded as regcli seeds a run)."""
    keras.utils.set_random_seed(seed)
    feed = Feeder(seed).train(*rows(), BATCH, first_epoch)
    assert feed["steps_per_epoch"] == STEPS
    batches = []
    for xb, yb in feed["x"].take(STEPS * epochs):
        np.testing.assert_array_equal(xb.numpy(), yb.numpy())
        batches.append(xb.numpy()[:, 0].astype(int).tolist())
    return [batches[e * STEPS:(e + 1) * STEPS] for e in range(epochs)]


def assert_each_row_once(epochs: list[list[list[int]]]) -> None:
    for batches in epochs:
        assert [len(b) for b in batches] == SIZES
        assert sorted(r for b in batches for r in b) == list(range(N))
    orders = {tuple(r for b in batches for r in b) for batches in epochs}
    assert len(orders) == len(epochs), "every epoch must get a new order"


@tensorflow_only
def test_tensorflow_batches_hold_every_row_once_per_epoch_with_the_partial_last_batch():
    assert_each_row_once(tf_epochs(seed=0))


@tensorflow_only
def test_tensorflow_epoch_order_depends_only_on_seed_and_epoch():
    """A resumed run (first_epoch=2) gets the uninterrupted run's batches from epoch 2 on."""
    full = tf_epochs(seed=3, epochs=4)
    assert tf_epochs(seed=3, epochs=4) == full
    assert tf_epochs(seed=3, first_epoch=2, epochs=2) == full[2:]
    assert tf_epochs(seed=4, epochs=1) != full[:1]


def pydataset_epochs(seed: int, first_epoch: int = 0, epochs: int = EPOCHS) -> list[list[list[int]]]:
    """The other backends' `EpochBatches`, read as Keras reads a PyDataset: batches, then on_epoch_end."""
    data = EpochBatches(*rows(), BATCH, seed, first_epoch)
    assert len(data) == STEPS
    out = []
    for _ in range(epochs):
        out.append([data[i][0][:, 0].astype(int).tolist() for i in range(len(data))])
        data.on_epoch_end()
    return out


def test_epoch_batches_hold_every_row_once_per_epoch_in_an_order_fixed_by_seed_and_epoch():
    full = pydataset_epochs(seed=0, epochs=4)
    assert_each_row_once(full)
    assert pydataset_epochs(seed=0, epochs=4) == full
    assert pydataset_epochs(seed=0, first_epoch=2, epochs=2) == full[2:]


SEEN: list[list[int]] = []


class Probe(keras.Model):
    """Records the rows of every batch `train_step` trains on (inside the traced graph)."""

    def train_step(self, data):
        tf.py_function(lambda x: SEEN.append(x.numpy()[:, 0].astype(int).tolist()) or 0, [data[0]], tf.int32)
        return super().train_step(data)


def fitted_epochs(spe: int, **feed) -> list[list[list[int]]]:
    """What `model.fit` trains on, epoch by epoch, with `feed` and `spe` steps per execution."""
    SEEN.clear()
    inputs = keras.Input((1,))
    model = Probe(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=spe)
    model.fit(**feed, epochs=EPOCHS, verbose=0)
    assert len(SEEN) == STEPS * EPOCHS
    return [SEEN[e * STEPS:(e + 1) * STEPS] for e in range(EPOCHS)]


@tensorflow_only
def test_model_fit_through_the_feeder_trains_on_every_row_once_per_epoch():
    """The feeder read by Keras with regcli's steps per execution (all 6 steps in one execution)."""
    assert steps_per_execution(STEPS) == STEPS
    keras.utils.set_random_seed(0)
    seen = fitted_epochs(steps_per_execution(STEPS), **Feeder(0).train(*rows(), BATCH))
    assert_each_row_once(seen)
    assert seen == tf_epochs(seed=0)


@tensorflow_only
def test_plain_model_fit_repeats_one_order_once_a_global_seed_is_set():
    """Why `fit(x, y, shuffle=True)` trains differently from regcli (benchmarks/feed_vs_fit.py).

    Keras's array adapter draws each epoch's order with `tf.random.shuffle` in a new dataset
    iterator; with the global seed fixed (`keras.utils.set_random_seed`), that op restarts from
    the same seed every epoch. Every row is still seen once per epoch, but in one order, repeated.
    If a Keras release reshuffles here, this test fails: rerun the benchmark and update its docs.
    """
    keras.utils.set_random_seed(0)
    x, y = rows()
    seen = fitted_epochs(1, x=x, y=y, batch_size=BATCH, shuffle=True)
    for batches in seen:
        assert [len(b) for b in batches] == SIZES
        assert sorted(r for b in batches for r in b) == list(range(N))
    assert seen[0] == seen[1] == seen[2]


def test_steps_per_execution_is_the_largest_divisor_up_to_32():
    assert [steps_per_execution(s) for s in (1, 6, 11, 40, 64, 37, 341)] == [1, 6, 11, 20, 32, 1, 31]


def small_run(tmp_path):
    """The template's block (BN, dropout, L2) on breast_cancer: 341 training rows, 11 steps of 32."""
    spec = validate_experiment({
        "seed": 5,
        "data": {"source": "breast_cancer"},
        "model": {"hidden": [16], "batchnorm": True, "dropout": 0.2, "l2": 1e-4},
        "training": {"epochs": 3, "batch_size": 32, "early_stopping": {"enabled": False}},
    }, tmp_path)
    return spec, load_dataset(spec.data, seed=spec.seed, task=spec.model.task)


def trained(spec, ds):
    result = fit.train(spec, ds)
    history = [{k: v for k, v in row.items() if k != "seconds" and not k.startswith("clean_")}
               for row in result.history]
    return history, [np.asarray(v) for v in result.model.get_weights()], result.summary


@tensorflow_only
def test_steps_per_execution_and_the_clean_evaluation_leave_training_bit_identical(tmp_path, monkeypatch):
    """Neither suspect changes a single weight: one step per execution, or Keras's own validation with no
    clean-metrics evaluation after each epoch (instead of the fused evaluation, `regcli.training.evaluate`),
    trains exactly the same model; the validation columns agree (`val_loss` up to the rounding of the
    penalty's sum)."""
    spec, ds = small_run(tmp_path)
    history, weights, summary = trained(spec, ds)
    assert summary["steps_per_execution"] == 11 and summary["fused_evaluation"] is True
    with monkeypatch.context() as m:
        m.setattr(fit, "steps_per_execution", lambda steps: 1)
        one_step = trained(spec, ds)
    with monkeypatch.context() as m:
        m.setattr(fit, "fusable", lambda model, n_val: False)
        m.setattr(callbacks, "clean_metrics", lambda model, batch: {})
        no_clean = trained(spec, ds)
    assert one_step[2]["steps_per_execution"] == 1
    assert no_clean[2]["fused_evaluation"] is False
    for other_history, other_weights, _ in (one_step, no_clean):
        for row, other in zip(history, other_history, strict=True):
            assert row.keys() == other.keys()
            assert {k: v for k, v in row.items() if k != "val_loss"} == {k: v for k, v in other.items() if k != "val_loss"}
            assert other["val_loss"] == pytest.approx(row["val_loss"], rel=1e-6)
        for a, b in zip(weights, other_weights, strict=True):
            np.testing.assert_array_equal(a, b)


@tensorflow_only
def regcli_orders(seed: int, n: int, batch_size: int, epochs: int) -> list[np.ndarray]:
    """The row order of each epoch of a regcli run: its feeder on row numbers, seeded as the run is.

    tf.data's shuffle order depends on the seeds and the number of rows, not on the values.
    """
    keras.utils.set_random_seed(seed)
    numbers = np.arange(n).reshape(-1, 1)
    steps = math.ceil(n / batch_size)
    batches = [xb.numpy()[:, 0] for xb, _ in Feeder(seed).train(numbers, numbers, batch_size)["x"].take(steps * epochs)]
    return [np.concatenate(batches[e * steps:(e + 1) * steps]) for e in range(epochs)]


@tensorflow_only
def test_regcli_trains_exactly_like_model_fit_fed_the_same_orders(tmp_path):
    """regcli's feeding is `model.fit` on the arrays in regcli's order, bit for bit: the tf.data pipeline,
    11 steps per execution and the clean evaluation add nothing. Whatever distinguishes a regcli run from
    plain `fit(x, y, shuffle=True)` is the order alone (one order repeated there, a new one each epoch here)."""
    spec, ds = small_run(tmp_path)
    history, weights, _ = trained(spec, ds)
    model = fit.prepare_model(spec, ds).model  # the same seeding, hence the same initial weights and dropout seeds
    model.compile(optimizer=fit.make_optimizer(spec.training), loss=make_loss(ds.task), metrics=make_metrics(ds.task))
    y = targets(ds.y_train, ds.task)
    losses = []
    for epoch, order in enumerate(regcli_orders(spec.seed, len(ds.x_train), 32, spec.training.epochs)):
        h = model.fit(ds.x_train[order], y[order], batch_size=32, shuffle=False, initial_epoch=epoch,
                      epochs=epoch + 1, verbose=0)
        losses += h.history["loss"]
    assert losses == [row["loss"] for row in history]
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [341, 352])
def test_steps_per_epoch_counts_the_partial_last_batch(n):
    """341 rows of 32: 10 full batches and one of 21 (trained on, as Keras does); 352: exactly 11."""
    x = np.zeros((n, 1), "float32")
    assert Feeder(0).train(x, x, 32)["steps_per_epoch"] == 11
