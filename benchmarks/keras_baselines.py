"""The seed template written as plain Keras: the baselines `regcli train` is measured against.

One training per process, so imports and JIT warm-ups never leak between measurements.
`benchmarks/run.py` starts it with `KERAS_BACKEND` already set and reads the JSON it writes:

    KERAS_BACKEND=tensorflow python benchmarks/keras_baselines.py SPEC.yaml --feed numpy --json OUT.json

Feeds:
  numpy   what most Keras code does: `model.fit(x, y, batch_size=32, shuffle=True)` on numpy
          arrays, `validation_data=(x_val, y_val)`, Keras's defaults everywhere else.
  tfdata  hand-tuned (TensorFlow only): cache -> shuffle -> batch -> prefetch, validation as a
          cached 1024-row-batch dataset, `steps_per_execution` = steps per epoch (at most 16).

The data are the exact rows `regcli train SPEC.yaml` trains on (regcli's loader, which is numpy
and scikit-learn only); the model is the same stack of layers, written out by hand; the
metrics are the same as regcli's (accuracy plus the penalty-free loss as `data_loss`), so every
side computes the same quantities per step. `seconds` is measured exactly like regcli's
history.csv column: from `on_epoch_begin` to `on_epoch_end` (training + validation of that epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import keras  # the backend comes from KERAS_BACKEND, which the caller sets
import numpy as np

from regcli.data import load_dataset
from regcli.spec import load_experiment_spec

# Same upper bound regcli uses; with 341 training rows and batch 32 an epoch is 11 steps.
MAX_STEPS_PER_EXECUTION = 16
# Inference does not depend on the batch size, so the hand-tuned pipeline validates in big batches.
EVAL_BATCH_SIZE = 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="A regcli experiment spec (shorthand MLP, binary task).")
    parser.add_argument("--feed", choices=("numpy", "tfdata"), required=True)
    parser.add_argument("--json", type=Path, required=True, help="Where to write the measurements.")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="Switch on TensorFlow's op determinism first, as regcli does (SPEC §5.6).",
    )
    args = parser.parse_args(argv)

    spec = load_experiment_spec(args.spec)
    ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)
    if ds.task != "binary" or spec.model.hidden is None:
        raise SystemExit("keras_baselines.py writes the binary shorthand MLP only (the quickstart).")

    if args.feed == "tfdata" and keras.backend.backend() != "tensorflow":
        raise SystemExit("--feed tfdata needs KERAS_BACKEND=tensorflow.")
    keras.utils.set_random_seed(spec.seed)
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    model = build(spec.model, ds.x_train.shape[1])
    training = spec.training
    steps = math.ceil(len(ds.x_train) / training.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=training.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.BinaryCrossentropy(name="data_loss"),
        ],
        steps_per_execution=min(MAX_STEPS_PER_EXECUTION, steps) if args.feed == "tfdata" else 1,
    )
    y_train = ds.y_train.reshape(-1, 1).astype("float32")
    y_val = ds.y_val.reshape(-1, 1).astype("float32")
    if args.feed == "numpy":
        feed = {"x": ds.x_train, "y": y_train, "batch_size": training.batch_size, "shuffle": True}
        val = (ds.x_val, y_val)
    else:
        import tensorflow as tf

        train_ds = tf.data.Dataset.from_tensor_slices((ds.x_train, y_train)).cache()
        train_ds = train_ds.shuffle(len(ds.x_train), seed=spec.seed, reshuffle_each_iteration=True)
        feed = {"x": train_ds.batch(training.batch_size).prefetch(tf.data.AUTOTUNE), "shuffle": False}
        val = tf.data.Dataset.from_tensor_slices((ds.x_val, y_val)).batch(EVAL_BATCH_SIZE).cache()

    timer = EpochTimer()
    fit_started = time.perf_counter()
    history = model.fit(**feed, validation_data=val, epochs=training.epochs, callbacks=[timer], verbose=0)
    fit_seconds = time.perf_counter() - fit_started
    result = {
        "backend": keras.backend.backend(),
        "feed": args.feed,
        "epochs_run": len(timer.seconds),
        "seconds": timer.seconds,
        "fit_seconds": fit_seconds,
        "final_val_accuracy": float(np.asarray(history.history["val_accuracy"][-1])),
    }
    args.json.write_text(json.dumps(result, indent=2))
    return 0


def build(model_spec, n_features: int):
    """The shorthand MLP by hand: [Dense(no bias, L2) -> BN -> ReLU -> Dropout] per entry, sigmoid head."""
    l2 = model_spec.l2
    inputs = keras.Input(shape=(n_features,))
    x = inputs
    for units in model_spec.hidden:
        x = keras.layers.Dense(units, use_bias=False, kernel_regularizer=keras.regularizers.L2(l2))(x)
        x = keras.layers.BatchNormalization(momentum=model_spec.bn_momentum)(x)
        x = keras.layers.Activation(model_spec.activation)(x)
        x = keras.layers.Dropout(model_spec.dropout)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=keras.regularizers.L2(l2))(x)
    return keras.Model(inputs, outputs)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, `on_epoch_begin` -> `on_epoch_end` (regcli's `seconds`)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


if __name__ == "__main__":
    sys.exit(main())
