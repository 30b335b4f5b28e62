"""One model: seed -> build + compile -> fit with callbacks -> ship -> summary.

The training modules need a Keras backend at import time: `regcli.training.backend.select`
must have set `KERAS_BACKEND` before they are imported (the CLI and the sweep workers do
so), because Keras reads it once.

The loop, in one sitting:
  seed everything -> build + compile -> fit with callbacks
  (clean train metrics, TerminateOnNaN, EarlyStopping, history recorder)
  -> ship the best (or last) weights -> evaluate train/val in inference mode -> summary.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from regcli import interrupt
from regcli.model import (
    apply_freeze,
    build_model,
    load_init_weights,
    make_loss,
    make_metrics,
    task_head,
    weight_stats,
)
from regcli.training.backend import backend_name
from regcli.training.callbacks import (
    Checkpoint,
    Checkpointer,
    EpochRecorder,
    ResumableEarlyStopping,
    make_early_stopping,
    restore,
)
from regcli.training.evaluate import Twin, fusable, regularization_penalty, single_metrics
from regcli.training.feed import Feeder, clean_subset, steps_per_execution, targets


@dataclass
class TrainResult:
    """What one training run produced, before anything is written to disk."""

    model: keras.Model
    history: list[dict[str, float]]
    summary: dict[str, Any]
    diverged: bool = False
    details: dict[str, Any] = field(default_factory=dict)

def set_random_seed(seed: int, *, keep_kernels: bool = False) -> None:
    """`keras.utils.set_random_seed`; with `keep_kernels`, without clearing TensorFlow's kernel cache.

    `tf.random.set_seed`, which Keras calls, clears TensorFlow's eager kernel cache "to reset any
    existing seeds" of stateful random ops, and the next compiled call re-creates every kernel:
    measured 0.32 s on the first epoch of each pack a sweep worker trains after its first (0.056 s
    warm). The models regcli builds draw only stateless random numbers (Keras's `SeedGenerator`),
    and tf.data takes its seeds in Python when a pipeline is built, so for them the clear changes
    nothing (the same histories: tests/test_evaluate.py); a `model.builder` model may hold stateful
    TensorFlow random ops, so its runs keep the clear.
    """
    context = sys.modules.get("tensorflow.python.eager.context")
    pywrap = getattr(context, "pywrap_tfe", None)
    if not keep_kernels or pywrap is None or not hasattr(pywrap, "TFE_ContextClearCaches"):
        keras.utils.set_random_seed(seed)
        return
    clear = pywrap.TFE_ContextClearCaches
    pywrap.TFE_ContextClearCaches = lambda handle: None
    try:
        keras.utils.set_random_seed(seed)
    finally:
        pywrap.TFE_ContextClearCaches = clear


def seed_everything(seed: int, *, keep_kernels: bool = False) -> None:
    """One seed drives Python, NumPy and backend RNGs (init, shuffling, dropout).

    On TensorFlow, op determinism is switched on too (SPEC §5.6: the same spec and
    seed give the same history on the same machine). `keep_kernels`: see `set_random_seed`.
    """
    set_random_seed(seed, keep_kernels=keep_kernels)
    if backend_name() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def make_optimizer(training: Any) -> keras.optimizers.Optimizer:
    """adam | adamw | sgd | rmsprop; `weight_decay` is Keras's decoupled decay (not L2)."""
    kwargs = {"learning_rate": training.learning_rate}
    if training.weight_decay:
        kwargs["weight_decay"] = training.weight_decay
    name = training.optimizer
    if name == "adam":
        return keras.optimizers.Adam(**kwargs)
    if name == "adamw":
        kwargs.setdefault("weight_decay", 0.0)
        return keras.optimizers.AdamW(**kwargs)
    if name == "sgd":
        return keras.optimizers.SGD(**kwargs)
    return keras.optimizers.RMSprop(**kwargs)


def weight_penalty(model: keras.Model) -> float:
    """The L1/L2 penalty of the current weights (kernel and bias regularizers)."""
    total = 0.0
    for layer in model.layers:
        for attr, reg_attr in (("kernel", "kernel_regularizer"), ("bias", "bias_regularizer")):
            reg = getattr(layer, reg_attr, None)
            weight = getattr(layer, attr, None)
            if reg is not None and weight is not None:
                total += float(keras.ops.convert_to_numpy(reg(weight)))
    return total


def with_error(metrics: dict[str, float], metric: str) -> dict[str, float]:
    """Adds `error`: 1 - accuracy for classification, the metric itself (mae) for regression."""
    value = metrics.get(metric, math.nan)
    metrics["error"] = (1.0 - value) if metric == "accuracy" else value
    return metrics


def _evaluate(model, feed: dict, metric: str) -> dict[str, float]:
    return with_error({k: float(v) for k, v in model.evaluate(**feed, verbose=0, return_dict=True).items()}, metric)

@dataclass
class PreparedModel:
    """A freshly seeded, built model with its `init_from` weights and frozen layers, ready to compile."""

    model: keras.Model
    frozen: list[str]


def prepare_model(spec: Any, ds: Any, *, init_model_path: str | None = None,
                  resume: Checkpoint | None = None) -> PreparedModel:
    """Seeds everything and builds the model; every model error (BadInputError) is raised here.

    Called before the run directory exists (`regcli.experiment`), so that a spec whose model
    cannot be built for this data (`conv2d` on flat features, a `freeze` index out of range,
    an `init_from` run of another architecture) creates nothing. Nothing between this and
    `train` draws random numbers: the run is the same as if `train` had built the model.
    """
    seed_everything(spec.seed, keep_kernels=spec.model.builder is None)
    model = build_model(
        spec.model,
        n_features=ds.x_train.shape[1],
        task=ds.task,
        n_classes=ds.n_classes,
        image_shape=ds.image_shape,
        input_shape=tuple(ds.x_train.shape[1:]),
    )
    if init_model_path and resume is None:
        load_init_weights(model, init_model_path, builder=spec.model.builder)
    return PreparedModel(model, apply_freeze(model, list(spec.model.freeze)))

def train(
    spec: Any,
    ds: Any,
    *,
    on_epoch: Callable[[dict], None] | None = None,
    init_model_path: str | None = None,
    checkpoint_path: Any = None,
    resume: Checkpoint | None = None,
    prepared: PreparedModel | None = None,
) -> TrainResult:
    """Trains the model `spec` describes on the data set `ds` (already split and scaled).

    Args:
        spec: the validated experiment spec (effective values: smoke limits applied).
        ds: a `regcli.data.Dataset`.
        on_epoch: called with each history row as soon as the epoch ends. Defaults to `None`.
        init_model_path: a `.keras` file whose weights initialize the model. Defaults to `None`.
        checkpoint_path: where to save the training state after every epoch. Defaults to `None`.
        resume: a checkpoint to continue from (same spec and data). Defaults to `None`.
        prepared: the model `prepare_model` built for this spec, data and resume. Defaults to
            `None`: built here.
    """
    if prepared is None:
        prepared = prepare_model(spec, ds, init_model_path=init_model_path, resume=resume)
    model, training = prepared.model, spec.training
    spe = steps_per_execution(max(1, math.ceil(len(ds.x_train) / training.batch_size)))
    model.compile(optimizer=make_optimizer(training), loss=make_loss(ds.task), metrics=make_metrics(ds.task),
                  steps_per_execution=spe)

    y_train, y_val = targets(ds.y_train, ds.task), targets(ds.y_val, ds.task)
    clean_idx = clean_subset(ds, spec.seed)
    feeder = Feeder(spec.seed)
    first_epoch = 0
    twin = _twin(model, ds, (ds.x_train[clean_idx], y_train[clean_idx]), (ds.x_val, y_val))
    recorder = EpochRecorder(feeder.clean_batch(ds.x_train[clean_idx], y_train[clean_idx]), on_epoch, twin)
    if resume is not None:
        restore(model, resume)
        first_epoch = resume.epoch
        recorder.rows = [dict(r) for r in resume.rows[:first_epoch]]
    early = make_early_stopping(training.early_stopping, resume)
    last_epoch = training.epochs
    if resume is not None and resume.early and resume.early["stopped_epoch"] > 0:
        last_epoch = first_epoch  # it had already stopped early: only the end-of-training restore is left

    started = time.perf_counter()
    model.fit(
        **feeder.train(ds.x_train, y_train, training.batch_size, first_epoch),
        validation_data=None if twin is not None else feeder.val_data(ds.x_val, y_val),  # the twin evaluates it
        initial_epoch=first_epoch,
        epochs=max(first_epoch, last_epoch),
        callbacks=_callbacks(recorder, early, checkpoint_path),
        verbose=0,
    )
    fit_seconds = time.perf_counter() - started
    extra = {"frozen_layers": prepared.frozen, "steps_per_execution": spe, "fused_evaluation": twin is not None}
    metrics = _twin_metrics(twin, model, ds, len(clean_idx))
    return finish(Fitted(model, recorder.rows, early, training, fit_seconds, extra, metrics), ds, feeder)


def _twin(model: keras.Model, ds: Any, clean: tuple, val: tuple) -> Twin | None:
    """The clean subset and validation split evaluated in one call per epoch, where that is exact (else None)."""
    if not fusable(model, len(ds.x_val)):
        return None
    twin = Twin(model, lambda _: make_loss(ds.task), lambda _: make_metrics(ds.task))
    twin.set_data(clean, val)
    return twin


def _twin_metrics(twin: Twin | None, model: keras.Model, ds: Any, n_clean: int) -> dict[str, dict] | None:
    """The shipped weights' train/val metrics from one twin call when the clean subset is the whole
    training split (small data); None: `finish` evaluates them (batch by batch)."""
    if twin is None or n_clean != len(ds.x_train):
        return None
    results, penalty = twin(), regularization_penalty(model)
    metric = task_head(ds.task, ds.n_classes).metric_name
    return {"train": with_error(single_metrics(results["clean"], penalty), metric),
            "val": with_error(single_metrics(results["val"], penalty), metric)}


def _callbacks(recorder: EpochRecorder, early: ResumableEarlyStopping | None,
               checkpoint_path: Any) -> list[keras.callbacks.Callback]:
    """In order: the recorder (first at epoch end), NaN guard, early stopping, checkpoints, Ctrl-C."""
    callbacks: list[keras.callbacks.Callback] = [recorder, keras.callbacks.TerminateOnNaN()]
    if early is not None:
        callbacks.append(early)
    if checkpoint_path is not None:
        callbacks.append(Checkpointer(checkpoint_path, recorder, early))
    callbacks.append(interrupt.InterruptCheck())  # last: a Ctrl-C acts once the epoch is recorded and saved
    return callbacks


@dataclass
class Fitted:
    """One model after `fit`, already holding the weights it ships (early stopping's restore done)."""

    model: keras.Model
    rows: list[dict[str, float]]  # the history, one row per epoch run
    early: ResumableEarlyStopping | None
    training: Any  # the spec's `training:` block
    fit_seconds: float
    extra: dict[str, Any]  # summary keys of the caller's own: frozen layers, steps per execution, packed
    # The shipped weights' inference-mode metrics (`{"train": ..., "val": ...}`) when the caller
    # already has them (a packed stack evaluates all its towers at once); None: evaluated by `finish`.
    metrics: dict[str, dict[str, float]] | None = None


def finish(fitted: Fitted, ds: Any, feeder: Feeder) -> TrainResult:
    """The shipped epoch and why, inference-mode metrics of the shipped weights, the summary."""
    model, rows, early, training = fitted.model, fitted.rows, fitted.early, fitted.training
    es_spec = training.early_stopping
    epochs_run = len(rows)
    diverged = any(not math.isfinite(r.get("loss", math.nan)) for r in rows) or epochs_run == 0
    restored = bool(early is not None and es_spec.restore_best_weights and early.best_weights is not None)
    # SPEC §4: best_epoch is the 1-based epoch whose weights were shipped. Keras's best_epoch
    # is 0-based; without a restore the last epoch's weights are shipped.
    shipped_epoch = int(early.best_epoch) + 1 if restored else epochs_run
    best_epoch = shipped_epoch
    monitor_best_epoch = int(early.best_epoch) + 1 if early is not None and early.best_epoch is not None and epochs_run else None
    monitor = es_spec.monitor
    best_value = rows[best_epoch - 1].get(monitor) if 0 < best_epoch <= epochs_run else None

    metrics = fitted.metrics if fitted.metrics is not None else _shipped_metrics(model, ds, feeder)
    penalty = weight_penalty(model)
    train_loss = metrics["train"].get("loss", math.nan)
    summary = {
        "best_epoch": best_epoch,
        "shipped_epoch": shipped_epoch,
        "best_value": best_value,
        "monitor": monitor,
        "epochs_run": epochs_run,
        "epochs_configured": training.epochs,
        "stopped_early": bool(early is not None and early.stopped_epoch > 0),
        "restored_best_weights": restored,
        "monitor_best_epoch": monitor_best_epoch,
        "metrics": metrics,
        "penalty": penalty,
        "penalty_share": (penalty / train_loss) if train_loss and math.isfinite(train_loss) and train_loss > 0 else None,
        "activity_penalty": max(0.0, train_loss - metrics["train"].get("data_loss", math.nan) - penalty)
        if math.isfinite(train_loss)
        else None,
        "weight_stats": weight_stats(model),
        "n_params": int(model.count_params()),
        "fit_seconds": fitted.fit_seconds,
        **fitted.extra,
    }
    return TrainResult(model=model, history=rows, summary=summary, diverged=diverged)


def _shipped_metrics(model: keras.Model, ds: Any, feeder: Feeder) -> dict[str, dict[str, float]]:
    """Inference-mode loss and metrics of the model's (shipped) weights on the train and val splits."""
    metric = task_head(ds.task, ds.n_classes).metric_name
    y_train, y_val = targets(ds.y_train, ds.task), targets(ds.y_val, ds.task)
    train_feed, val_feed = feeder.eval(ds.x_train, y_train), feeder.eval(ds.x_val, y_val)
    return {"train": _evaluate(model, train_feed, metric), "val": _evaluate(model, val_feed, metric)}


def evaluate_split(model: keras.Model, x: np.ndarray, y: np.ndarray, task: str, seed: int = 0) -> dict[str, float]:
    """Evaluates a (compiled) model once in inference mode on one split."""
    feeder = Feeder(seed)
    return _evaluate(model, feeder.eval(x, targets(y, task)), task_head(task, 2).metric_name)


def save_model(model: keras.Model, path) -> None:
    """Saves the model as `.keras` atomically (temp file in the same directory, then rename)."""
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_shipped_model(path, builder: str | None = None) -> keras.Model:
    """Loads a run's shipped model: regcli's own layers only (or the `builder`'s registered ones), then `safe_mode=True`."""
    from regcli.modelfile import check_model_file

    check_model_file(path, builder)
    return keras.saving.load_model(path, safe_mode=True, compile=True)
