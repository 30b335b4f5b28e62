"""Packed training: K regularization configs trained as K towers of ONE Keras model.

For the small models people regularize, per-step overhead dominates, not arithmetic.
K towers on the same input with K outputs and summed losses serve all K configs with
each step. Each tower's gradients depend only on its own loss (the derivative of a sum
is the sum of derivatives) and Adam/SGD/RMSprop update each parameter from its own
gradient, so each tower trains as it would alone. Checked: with the same seed and no
dropout, each tower's validation losses equal a separate run's to float precision.

What is and isn't identical to K separate runs (same seed):
- identical: initial weights (each tower is built right after seeding with its own
  spec's seed, exactly as a separate run does), the batches and their order (the
  pipeline is seeded with the pack's shared seed), every update, `val_data_loss`,
  `val_<metric>`, the clean columns, early stopping's decisions and shipped epoch;
- `val_loss`/`clean_loss` add the tower's penalty at the end of the epoch, as Keras
  does for a separate run (equal up to float rounding);
- `loss` (as trained) is the running mean of the tower's data loss plus the penalty at
  the end of the epoch, while Keras adds each batch's penalty: close, not identical;
- dropout streams: each tower's Dropout layers are seeded at build time from its own
  spec's seed, so they match a separate run when the call order matches; not guaranteed;
- `seconds` is the packed epoch's wall time, shared by all towers.

Towers stop independently: each has its own Keras EarlyStopping (driven with the tower's
logs, restoring the tower's best weights); the fused model trains until the last tower
stops. A tower whose loss becomes NaN is `diverged` without stopping the others.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras

from regcli.model import build_model, make_loss, make_metrics, task_head
from regcli.packing import pack_key  # noqa: F401 - re-exported: regcli.packed.pack_key
from regcli.train import (
    TrainResult,
    _Feeder,
    _targets,
    clean_metrics,
    clean_subset,
    finish,
    make_early_stopping,
    make_optimizer,
    seed_everything,
    steps_per_execution,
    weight_penalty,
)


class _Tower:
    """One packed config: its spec, submodel, early stopping and history."""

    def __init__(self, index: int, spec: Any, model: keras.Model, early):
        self.index, self.spec, self.model, self.early = index, spec, model, early
        self.name = f"t{index}"
        self.rows: list[dict[str, float]] = []
        self.done = False
        model.stop_training = False


class PackedRecorder(keras.callbacks.Callback):
    """Splits the fused model's logs into per-tower history rows and drives per-tower stopping."""

    def __init__(self, towers: list[_Tower], clean_feed: tuple, on_epoch: Callable[[int, dict], None] | None):
        super().__init__()
        self.towers, self.clean_feed, self.on_epoch = towers, clean_feed, on_epoch
        self._t0 = 0.0

    def on_train_begin(self, logs=None):
        for tower in self.towers:
            if tower.early is not None:
                tower.early.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        logs = logs or {}
        clean = clean_metrics(self.model, self.clean_feed)
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        for tower in self.towers:
            if tower.done:
                continue
            row = self._row(tower, epoch, logs, clean, lr, seconds)
            tower.rows.append(row)
            if self.on_epoch is not None:
                self.on_epoch(tower.index, row)
            if not math.isfinite(row["loss"]):
                tower.done = True  # diverged; the others go on (their gradients are independent)
            elif tower.early is not None:
                tower.early.on_epoch_end(epoch, row)
                tower.done = bool(tower.model.stop_training)
        if all(t.done for t in self.towers):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for tower in self.towers:
            if tower.early is not None:
                tower.early.on_train_end()  # restores the tower's best weights when asked to

    @staticmethod
    def _row(tower: _Tower, epoch: int, logs: dict, clean: dict, lr: float, seconds: float) -> dict[str, float]:
        n = tower.name
        penalty = weight_penalty(tower.model)  # Keras adds it to a separate run's loss/val_loss
        row: dict[str, float] = {"epoch": epoch + 1}
        for prefix, source in (("", logs), ("val_", logs), ("clean_", clean)):
            src_prefix = "val_" if prefix == "val_" else ""
            for key, value in source.items():
                head = f"{src_prefix}{n}_"
                if key.startswith(head):
                    metric = key[len(head):]
                    row[f"{prefix}{metric}"] = float(value)
            if f"{prefix}loss" in row:
                row[f"{prefix}loss"] = row[f"{prefix}loss"] + penalty
        row["lr"] = lr
        row["seconds"] = seconds
        return row


def train_packed(
    specs: list[Any],
    ds: Any,
    *,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> list[TrainResult]:
    """Trains K compatible specs (same `pack_key`) as one fused model; one result per spec."""
    first = specs[0]
    seed_everything(first.seed)
    head = task_head(ds.task, ds.n_classes)
    towers = []
    for k, spec in enumerate(specs):
        # Seed right before each tower, exactly as a separate run seeds before its model.
        keras.utils.set_random_seed(spec.seed)
        model = build_model(spec.model, n_features=ds.x_train.shape[1], task=ds.task, n_classes=ds.n_classes,
                            image_shape=ds.image_shape, name=f"t{k}")
        towers.append(_Tower(k, spec, model, make_early_stopping(spec.training.early_stopping)))
        if towers[-1].early is not None:
            towers[-1].early.set_model(model)
    keras.utils.set_random_seed(first.seed)

    inputs = keras.Input(shape=(ds.x_train.shape[1],), name="features")
    fused = keras.Model(inputs, {t.name: t.model(inputs) for t in towers}, name="packed")
    training = first.training
    steps = max(1, math.ceil(len(ds.x_train) / training.batch_size))
    spe = steps_per_execution(steps)
    fused.compile(
        optimizer=make_optimizer(training),
        loss={t.name: make_loss(ds.task) for t in towers},
        metrics={t.name: make_metrics(ds.task) for t in towers},
        steps_per_execution=spe,
    )
    y_train, y_val = _targets(ds.y_train, ds.task), _targets(ds.y_val, ds.task)

    def per_tower(y):
        return {t.name: y for t in towers}

    feeder = _Feeder(first.seed)
    clean_idx = clean_subset(ds, first.seed)
    recorder = PackedRecorder(towers, feeder.clean_batch(ds.x_train[clean_idx], per_tower(y_train[clean_idx])), on_epoch)
    started = time.perf_counter()
    fused.fit(
        **feeder.train(ds.x_train, per_tower(y_train), training.batch_size),
        validation_data=feeder.val_data(ds.x_val, per_tower(y_val)),
        epochs=training.epochs,
        callbacks=[recorder],
        verbose=0,
    )
    fit_seconds = time.perf_counter() - started

    results = []
    for tower in towers:
        # The tower alone, compiled like a separate run, for its inference-mode metrics and its file.
        tower.model.compile(optimizer=make_optimizer(training), loss=make_loss(ds.task), metrics=make_metrics(ds.task))
        extra = {"frozen_layers": [], "steps_per_execution": spe,
                 "packed": {"size": len(towers), "index": tower.index, "fused_fit_seconds": fit_seconds}}
        results.append(finish(tower.model, tower.rows, tower.early, tower.spec.training, ds, feeder, head,
                              fit_seconds / len(towers), extra))
    return results
