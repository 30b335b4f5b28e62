"""Keras callbacks of one training run: the history recorder, resumable early stopping and
the checkpoints that make a killed run resumable bit-for-bit.

`EpochRecorder` runs first at each epoch end (its row is complete when the others see the
logs); `Checkpointer` runs after early stopping has updated, so a checkpoint holds its state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from regcli.replay import resolve_mode

# Resume checkpoints are written after the first epoch, then at most this often (and at the last epoch).
CHECKPOINT_SECONDS = 2.0


def clean_metrics(model: keras.Model, clean_batch: tuple) -> dict[str, float]:
    """Loss and metrics of the fixed training subset in inference mode, as one batch.

    `test_on_batch` (metrics reset first) costs about 3 ms here where `evaluate` costs
    about 14 ms: it skips building an epoch iterator and a callback list every epoch.
    """
    return {k: float(v) for k, v in model.test_on_batch(*clean_batch, return_dict=True).items()}


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch, adds clean training metrics and the learning rate, records rows.

    It must run first at epoch end, so the later callbacks see the clean metrics in `logs`,
    and, with a `Twin` (`regcli.training.evaluate`), the validation metrics it computed in the
    same call (fit then runs without `validation_data`). `seconds` is the epoch's wall time:
    training and its evaluations.
    """

    def __init__(self, clean_feed: tuple, on_epoch: Callable[[dict], None] | None = None, twin: Any = None):
        super().__init__()
        self.clean_feed = clean_feed
        self.on_epoch = on_epoch
        self.twin = twin
        self.rows: list[dict[str, float]] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.twin is not None:
            from regcli.training.evaluate import regularization_penalty, single_metrics

            results, penalty = self.twin(), regularization_penalty(self.model)
            logs.update({f"val_{k}": v for k, v in single_metrics(results["val"], penalty).items()})
            clean = single_metrics(results["clean"], penalty)
        else:
            clean = clean_metrics(self.model, self.clean_feed)
        seconds = time.perf_counter() - self._t0
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


def restore(model: keras.Model, ckpt: Checkpoint) -> None:
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
