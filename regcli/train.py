"""Compile + fit + callbacks + clean metrics -> history rows and a summary.

The only module that needs a Keras backend at import time. `regcli.backend.select`
must have set `KERAS_BACKEND` before this module is imported (the CLI and the sweep
workers do so), because Keras reads it once.

The loop, in one sitting:
  seed everything -> build + compile -> fit with callbacks
  (clean train metrics, TerminateOnNaN, EarlyStopping, history recorder)
  -> ship the best (or last) weights -> evaluate train/val in inference mode -> summary.
"""

from __future__ import annotations

import math
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
from regcli.replay import resolve_mode

# Clean (inference-mode) training metrics are computed every epoch on a fixed training
# subset: up to 2048 rows keeps the per-epoch overhead to one `test_on_batch` call.
CLEAN_SUBSET_ROWS = 2048
# Evaluation batches are large: inference results do not depend on the batch size
# (BN uses moving statistics, dropout is off), and fewer steps mean less overhead.
EVAL_BATCH_SIZE = 1024
# Several steps per graph execution: measured here about 2x per epoch for batch 32 on a
# 256/128 MLP, with bit-identical results (the same steps in the same order). The count
# used divides the steps per epoch (see `steps_per_execution`).
MAX_STEPS_PER_EXECUTION = 32
# Resume checkpoints are written after the first epoch, then at most this often (and at the last epoch).
CHECKPOINT_SECONDS = 2.0


@dataclass
class TrainResult:
    """What one training run produced, before anything is written to disk."""

    model: keras.Model
    history: list[dict[str, float]]
    summary: dict[str, Any]
    diverged: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def backend_name() -> str:
    return keras.backend.backend()


def backend_version() -> str:
    name = backend_name()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            return tf.__version__
        if name == "jax":
            import jax

            return jax.__version__
        if name == "torch":
            import torch

            return torch.__version__
    except ImportError:
        return "unknown"
    return "unknown"


def visible_gpus() -> list[str]:
    """Names of the accelerators the active backend can see."""
    name = backend_name()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if name == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform == "gpu"]
        if name == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a backend without a GPU plugin raises various errors here
        return []
    return []


def seed_everything(seed: int) -> None:
    """One seed drives Python, NumPy and backend RNGs (init, shuffling, dropout).

    On TensorFlow, op determinism is switched on too (SPEC §5.6: the same spec and
    seed give the same history on the same machine).
    """
    keras.utils.set_random_seed(seed)
    if backend_name() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _targets(y: np.ndarray, task: str) -> np.ndarray:
    # Binary and regression heads have one output unit: Keras wants (N, 1) targets.
    if task in ("binary", "regression"):
        return y.reshape(-1, 1).astype("float32")
    return y.astype("int32")


def steps_per_execution(steps: int, cap: int = MAX_STEPS_PER_EXECUTION) -> int:
    """The largest divisor of `steps` up to `cap`.

    Several steps per graph execution cut Keras's per-step overhead (measured here about
    2x per epoch for batch 32), but an execution must not straddle two epochs: with
    `steps_per_epoch` set and a count that does not divide it, Keras runs extra steps and
    the epochs drift apart (which would break exact resume).
    """
    return max(d for d in range(1, min(cap, steps) + 1) if steps % d == 0)


class EpochBatches(keras.utils.PyDataset):
    """Epoch-indexed shuffled batches for non-TensorFlow backends.

    Epoch e's order depends only on (seed, e), so a resumed run sees the same batches
    as an uninterrupted one.
    """

    def __init__(self, x, y, batch_size: int, seed: int, first_epoch: int = 0):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = first_epoch
        self._order = self._permutation()

    def _permutation(self):
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i):
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        if isinstance(self.y, dict):  # packed towers: one target array per output
            return self.x[idx], {k: v[idx] for k, v in self.y.items()}
        return self.x[idx], self.y[idx]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._permutation()


class _Feeder:
    """Feeds arrays to Keras the fastest way the backend allows, resumable at any epoch.

    TensorFlow: a cached, shuffled (reshuffled each epoch, seeded), batched, repeated and
    prefetched `tf.data.Dataset` read with `steps_per_epoch` (measured here 20-35 ms per
    epoch vs 100-200 ms for numpy arrays). Resuming at epoch k skips k epochs of batches,
    which replays the same shuffle order. Other backends: `EpochBatches`.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.tf = backend_name() == "tensorflow"

    def train(self, x, y, batch_size: int, first_epoch: int = 0):
        steps = math.ceil(len(x) / batch_size)
        if not self.tf:
            return {"x": EpochBatches(x, y, batch_size, self.seed, first_epoch), "shuffle": False}
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
        ds = ds.shuffle(len(x), seed=self.seed, reshuffle_each_iteration=True).batch(batch_size).repeat()
        if first_epoch:
            ds = ds.skip(first_epoch * steps)
        # The dataset is already shuffled: shuffle=False stops Keras warning it would ignore its flag.
        return {"x": ds.prefetch(tf.data.AUTOTUNE), "steps_per_epoch": steps, "shuffle": False}

    def eval(self, x, y):
        if not self.tf:
            return {"x": x, "y": y, "batch_size": EVAL_BATCH_SIZE}
        import tensorflow as tf

        return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(EVAL_BATCH_SIZE).cache()}

    def clean_batch(self, x, y) -> tuple:
        """The clean subset as one (x, y) batch, converted once to backend tensors."""
        if isinstance(y, dict):
            return keras.ops.convert_to_tensor(x), {k: keras.ops.convert_to_tensor(v) for k, v in y.items()}
        return keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)

    def val_data(self, x, y):
        if not self.tf:
            return (x, y)
        return self.eval(x, y)["x"]


def clean_metrics(model: keras.Model, clean_batch: tuple) -> dict[str, float]:
    """Loss and metrics of the fixed training subset in inference mode, as one batch.

    `test_on_batch` (metrics reset first) costs about 3 ms here where `evaluate` costs
    about 14 ms: it skips building an epoch iterator and a callback list every epoch.
    """
    return {k: float(v) for k, v in model.test_on_batch(*clean_batch, return_dict=True).items()}


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch, adds clean training metrics and the learning rate, records rows.

    It must run first at epoch end, so `seconds` is the training + validation wall time
    of that epoch alone and the later callbacks see the clean metrics in `logs`.
    """

    def __init__(self, clean_feed: tuple, on_epoch: Callable[[dict], None] | None = None):
        super().__init__()
        self.clean_feed = clean_feed
        self.on_epoch = on_epoch
        self.rows: list[dict[str, float]] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        logs = logs if logs is not None else {}
        clean = clean_metrics(self.model, self.clean_feed)
        for key, value in clean.items():
            logs[f"clean_{key}"] = float(value)
        lr = self.model.optimizer.learning_rate
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in logs.items() if not k.startswith("clean_")})
        row.update({k: float(v) for k, v in logs.items() if k.startswith("clean_")})
        row["lr"] = float(keras.ops.convert_to_numpy(lr))
        row["seconds"] = seconds
        self.rows.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping, unchanged, whose state can be saved and restored.

    `BackupAndRestore` saves weights and the epoch but not early stopping's wait, best and
    best weights: a run resumed with it alone stops at a different epoch (measured: 5
    instead of 3). The rule itself is Keras's own `on_epoch_end`.
    """

    STATE = ("wait", "stopped_epoch", "best", "best_epoch")

    def __init__(self, *args, resume: dict | None = None, resume_best_weights: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._resume = resume
        self._resume_best_weights = resume_best_weights

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resume is not None:
            for key in self.STATE:
                setattr(self, key, self._resume[key])
            self.best_weights = self._resume_best_weights

    def state(self) -> dict:
        return {key: getattr(self, key) for key in self.STATE}


@dataclass
class Checkpoint:
    """Training state after `epoch` completed epochs: enough to continue bit-for-bit."""

    epoch: int
    rows: list[dict[str, float]]
    early: dict | None
    model_vars: list[np.ndarray]
    optimizer_vars: list[np.ndarray]
    best_weights: list[np.ndarray] | None

    def to_bytes(self) -> bytes:
        import io
        import json

        state = {"version": 1, "epoch": self.epoch, "rows": self.rows, "early": self.early,
                 "n_model": len(self.model_vars), "n_optimizer": len(self.optimizer_vars),
                 "n_best": None if self.best_weights is None else len(self.best_weights)}
        arrays = {"state": np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)}
        arrays.update({f"model_{i}": a for i, a in enumerate(self.model_vars)})
        arrays.update({f"optimizer_{i}": a for i, a in enumerate(self.optimizer_vars)})
        arrays.update({f"best_{i}": a for i, a in enumerate(self.best_weights or [])})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_file(cls, path) -> Checkpoint:
        """Reads a checkpoint (`allow_pickle=False`); ValueError/OSError/KeyError when corrupt."""
        import json

        try:
            with np.load(path, allow_pickle=False) as npz:
                state = json.loads(npz["state"].tobytes().decode())
                model_vars = [npz[f"model_{i}"] for i in range(state["n_model"])]
                optimizer_vars = [npz[f"optimizer_{i}"] for i in range(state["n_optimizer"])]
                best = None if state["n_best"] is None else [npz[f"best_{i}"] for i in range(state["n_best"])]
        except (OSError, KeyError, ValueError, TypeError, EOFError) as exc:
            raise ValueError(f"corrupt checkpoint: {exc}") from None
        except Exception as exc:  # zipfile.BadZipFile and friends from a truncated archive
            raise ValueError(f"corrupt checkpoint: {type(exc).__name__}: {exc}") from None
        return cls(state["epoch"], state["rows"], state["early"], model_vars, optimizer_vars, best)


class Checkpointer(keras.callbacks.Callback):
    """Saves a `Checkpoint` atomically at epoch ends (after early stopping has updated).

    After the first epoch, then at most every `CHECKPOINT_SECONDS`, and always at the epoch training ends on: a
    checkpoint costs ~5-10 ms on the quickstart model, a fifth of a fast epoch. Resuming
    from an older checkpoint is still exact: the epochs after it are replayed identically.
    """

    def __init__(self, path, recorder: EpochRecorder, early: ResumableEarlyStopping | None):
        super().__init__()
        self.path, self.recorder, self.early = path, recorder, early
        self._last = -math.inf  # the first epoch is always saved: a kill after it loses nothing

    def on_epoch_end(self, epoch, logs=None):
        from regcli.rundir import atomic_write_bytes

        last_epoch = epoch + 1 >= self.params.get("epochs", 0) or self.model.stop_training
        if not last_epoch and time.monotonic() - self._last < CHECKPOINT_SECONDS:
            return
        self._last = time.monotonic()

        ckpt = Checkpoint(
            epoch=epoch + 1,
            rows=self.recorder.rows,
            early=None if self.early is None else self.early.state(),
            model_vars=[np.asarray(keras.ops.convert_to_numpy(v)) for v in self.model.variables],
            optimizer_vars=[np.asarray(keras.ops.convert_to_numpy(v)) for v in self.model.optimizer.variables],
            best_weights=None if self.early is None else self.early.best_weights,
        )
        # Not fsynced: the rename is atomic, so a killed process leaves the previous or this checkpoint.
        atomic_write_bytes(self.path, ckpt.to_bytes(), durable=False)


def _restore(model: keras.Model, ckpt: Checkpoint) -> None:
    """Assigns a checkpoint's model and optimizer variables (same spec, same variable order)."""
    model.optimizer.build(model.trainable_variables)
    pairs = [(model.variables, ckpt.model_vars), (model.optimizer.variables, ckpt.optimizer_vars)]
    for variables, values in pairs:
        if len(variables) != len(values):
            raise ValueError(f"the checkpoint holds {len(values)} variables, the model {len(variables)}")
        for var, value in zip(variables, values, strict=True):
            if tuple(var.shape) != tuple(value.shape):
                raise ValueError(f"variable {var.path} has shape {tuple(var.shape)}, the checkpoint {value.shape}")
            var.assign(value)


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

    Called before the run directory exists (`regcli.runner`), so that a spec whose model
    cannot be built for this data (`conv2d` on flat features, a `freeze` index out of range,
    an `init_from` run of another architecture) creates nothing. Nothing between this and
    `train` draws random numbers: the run is the same as if `train` had built the model.
    """
    seed_everything(spec.seed)
    model = build_model(
        spec.model,
        n_features=ds.x_train.shape[1],
        task=ds.task,
        n_classes=ds.n_classes,
        image_shape=ds.image_shape,
    )
    if init_model_path and resume is None:
        load_init_weights(model, init_model_path)
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
    model, frozen = prepared.model, prepared.frozen
    head = task_head(ds.task, ds.n_classes)
    training = spec.training
    steps = max(1, math.ceil(len(ds.x_train) / training.batch_size))
    spe = steps_per_execution(steps)
    model.compile(
        optimizer=make_optimizer(training),
        loss=make_loss(ds.task),
        metrics=make_metrics(ds.task),
        steps_per_execution=spe,
    )

    y_train, y_val = _targets(ds.y_train, ds.task), _targets(ds.y_val, ds.task)
    clean_idx = clean_subset(ds, spec.seed)
    feeder = _Feeder(spec.seed)

    first_epoch = 0
    recorder = EpochRecorder(feeder.clean_batch(ds.x_train[clean_idx], y_train[clean_idx]), on_epoch)
    if resume is not None:
        _restore(model, resume)
        first_epoch = resume.epoch
        recorder.rows = [dict(r) for r in resume.rows[:first_epoch]]
    nan_guard = keras.callbacks.TerminateOnNaN()
    callbacks: list[keras.callbacks.Callback] = [recorder, nan_guard]
    early = make_early_stopping(training.early_stopping, resume)
    if early is not None:
        callbacks.append(early)
    if checkpoint_path is not None:
        callbacks.append(Checkpointer(checkpoint_path, recorder, early))
    callbacks.append(interrupt.InterruptCheck())  # last: a Ctrl-C acts once the epoch is recorded and saved
    last_epoch = training.epochs
    if resume is not None and resume.early and resume.early["stopped_epoch"] > 0:
        last_epoch = first_epoch  # it had already stopped early: only the end-of-training restore is left

    started = time.perf_counter()
    model.fit(
        **feeder.train(ds.x_train, y_train, training.batch_size, first_epoch),
        validation_data=feeder.val_data(ds.x_val, y_val),
        initial_epoch=first_epoch,
        epochs=max(first_epoch, last_epoch),
        callbacks=callbacks,
        verbose=0,
    )
    fit_seconds = time.perf_counter() - started

    return finish(model, recorder.rows, early, training, ds, feeder, head, fit_seconds,
                  {"frozen_layers": frozen, "steps_per_execution": spe})


def make_early_stopping(es_spec: Any, resume: Checkpoint | None = None) -> ResumableEarlyStopping | None:
    """A new EarlyStopping per run (a reused one carried `best` between fits in some Keras versions)."""
    if not es_spec.enabled:
        return None
    return ResumableEarlyStopping(
        monitor=es_spec.monitor,
        min_delta=es_spec.min_delta,
        patience=es_spec.patience,
        # Keras's "auto" cannot tell the direction of `val_data_loss`: resolve it here.
        mode=resolve_mode(es_spec.mode, es_spec.monitor),
        baseline=es_spec.baseline,
        restore_best_weights=es_spec.restore_best_weights,
        start_from_epoch=es_spec.start_from_epoch,
        resume=None if resume is None else resume.early,
        resume_best_weights=None if resume is None else resume.best_weights,
    )


def clean_subset(ds: Any, seed: int) -> np.ndarray:
    """The fixed training rows evaluated in inference mode every epoch (sorted indices)."""
    rng = np.random.default_rng(seed)
    n_clean = min(CLEAN_SUBSET_ROWS, len(ds.x_train))
    return np.sort(rng.choice(len(ds.x_train), size=n_clean, replace=False))


def finish(model, rows, early, training, ds, feeder, head, fit_seconds, extra, metrics=None) -> TrainResult:
    """The shipped epoch and why, inference-mode metrics of the shipped weights, the summary.

    `model` must already hold the shipped weights (EarlyStopping's end-of-training restore).
    `metrics` (`{"train": ..., "val": ...}`) are those weights' inference-mode metrics when the
    caller already has them (a packed stack evaluates all its towers at once); else evaluated here.
    """
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

    if metrics is None:
        y_train, y_val = _targets(ds.y_train, ds.task), _targets(ds.y_val, ds.task)
        train_feed = feeder.eval(ds.x_train, y_train)
        val_feed = feeder.eval(ds.x_val, y_val)
        metrics = {"train": _evaluate(model, train_feed, head.metric_name),
                   "val": _evaluate(model, val_feed, head.metric_name)}
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
        "fit_seconds": fit_seconds,
        **extra,
    }
    return TrainResult(model=model, history=rows, summary=summary, diverged=diverged)


def evaluate_split(model: keras.Model, x: np.ndarray, y: np.ndarray, task: str, seed: int = 0) -> dict[str, float]:
    """Evaluates a (compiled) model once in inference mode on one split."""
    feeder = _Feeder(seed)
    return _evaluate(model, feeder.eval(x, _targets(y, task)), task_head(task, 2).metric_name)


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


def load_shipped_model(path) -> keras.Model:
    """Loads a run's shipped model: regcli's own layers only, then `safe_mode=True`."""
    from regcli.modelfile import check_model_file

    check_model_file(path)
    return keras.saving.load_model(path, safe_mode=True, compile=True)
