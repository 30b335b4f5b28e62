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

Towers of the same shape (shorthand MLPs with equal widths, activation and BatchNorm
on/off: `regcli.training.stack.stack_signature`) share one `TowerStack`: one batched kernel per
block for all of them, so the fused model is traced once per shape, not once per tower.
Other towers (explicit `layers:`) are separate sub-models of the fused model.

A process keeps its last single-stack fused model: the next pack of the same shape (in a
sweep worker: another seed, other L1/L2 or dropout values) loads its towers into it and
trains with the steps already traced, exactly as a new fused model would (see `_REUSABLE`).

Each epoch's clean and validation metrics of every tower come from one compiled call of the fused
model's `Twin` (`regcli.training.evaluate`), where that is exact; otherwise from Keras's validation
and one `test_on_batch`, as before. The twin is kept with the fused model for the next pack.

Towers stop independently: each has its own Keras EarlyStopping (driven with the tower's
logs, restoring the tower's best weights); the fused model trains until the last tower
stops. A tower whose loss becomes NaN is `diverged` without stopping the others.
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
from regcli.head import TaskHead, task_head
from regcli.model import build_model, make_loss, make_metrics
from regcli.training.callbacks import make_early_stopping
from regcli.training.evaluate import Twin, fusable
from regcli.training.feed import Feeder, clean_subset, steps_per_execution, targets
from regcli.training.fit import (
    Fitted,
    TrainResult,
    finish,
    make_optimizer,
    seed_everything,
    set_random_seed,
    weight_penalty,
    with_error,
)
from regcli.training.stack import StackLoss, TowerStack, stack_metrics, stack_signature, stack_structure


class _Snapshot:
    """A stack's variables as numpy, copied out once per epoch at most and shared by all its towers.

    The epoch's penalties and every early-stopping weight copy read it: when several towers
    improve at once, each stack variable is copied out once, not once a tower.
    """

    def __init__(self):
        self._values: dict[int, np.ndarray] = {}

    def value(self, var) -> np.ndarray:
        if id(var) not in self._values:
            self._values[id(var)] = keras.ops.convert_to_numpy(var)
        return self._values[id(var)]

    def clear(self) -> None:
        """The weights changed (an epoch trained): the next read copies them out again."""
        self._values.clear()


class _StackView:
    """One tower of a stack, as Keras's EarlyStopping sees a model: weights and `stop_training`.

    `get_weights` slices the tower's weights out of the stack (in the tower model's order);
    `set_weights` (the best-weights restore) loads them into the tower's own model.
    """

    def __init__(self, tower: _Tower, stack: TowerStack, index: int, snapshot: _Snapshot):
        self.tower, self.stack, self.index, self.snapshot = tower, stack, index, snapshot
        self.vars = stack.tower_vars(tower.model)
        self.stop_training = False

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(self.snapshot.value(var)[self.index]) for var in self.vars]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.tower.model.set_weights(weights)
        self.tower.synced = True


class _Tower:
    """One packed config: its spec, its own model (the one shipped), early stopping and history."""

    def __init__(self, index: int, spec: Any, model: keras.Model, early):
        self.index, self.spec, self.model, self.early = index, spec, model, early
        self.name = f"t{index}"
        self.rows: list[dict[str, float]] = []
        self.done = False
        self.view: _StackView | None = None  # set when the tower trains inside a stack
        self.synced = True  # whether `model` holds the tower's current (or restored) weights
        model.stop_training = False

    @property
    def target(self):
        """What early stopping watches and stops: the stack view, or the tower's sub-model."""
        return self.view if self.view is not None else self.model

    def output(self) -> tuple[str, int | None]:
        """The fused model's output holding this tower: (name, index in the stack or None)."""
        if self.view is None:
            return self.name, None
        return self.view.stack.name, self.view.index


def _value(logs: dict, prefix: str, output: str, metric: str, index: int | None) -> float | None:
    """One tower's value of `metric` in Keras's logs (a vector for stacks).

    Keras names a metric `<prefix><output>_<metric>`, but just `<prefix><metric>` when the
    fused model has a single output (one stack holding every tower).
    """
    value = logs.get(f"{prefix}{output}_{metric}", logs.get(f"{prefix}{metric}"))
    if value is None:
        return None
    return float(value if index is None else np.asarray(value)[index])


class PackedRecorder(keras.callbacks.Callback):
    """Splits the fused model's logs into per-tower history rows and drives per-tower stopping."""

    def __init__(self, towers: list[_Tower], stacks: list[TowerStack], clean_feed: tuple, metric_names: list[str],
                 on_epoch: Callable[[int, dict], None] | None, twin: Twin | None = None):
        super().__init__()
        self.towers, self.stacks, self.clean_feed, self.twin = towers, stacks, clean_feed, twin
        self.metric_names, self.on_epoch = metric_names, on_epoch
        self.snapshots = {t.view.stack.name: t.view.snapshot for t in towers if t.view is not None}
        self._t0 = 0.0

    def on_train_begin(self, logs=None):
        for tower in self.towers:
            if tower.early is not None:
                tower.early.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        model = self.model  # on JAX, reading `self.model` syncs the variables the stack views read
        if self.twin is not None:  # clean and validation from one call (fit ran without validation_data)
            fused = self.twin()
            clean, val = fused["clean"], (fused["val"], "")
        else:
            clean, val = model.test_on_batch(*self.clean_feed, return_dict=True), (logs, "val_")
        seconds = time.perf_counter() - self._t0
        lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        for snapshot in self.snapshots.values():
            snapshot.clear()  # the weights changed this epoch
        # Penalties from the stacks' numpy snapshots, which early stopping's weight copies then reuse.
        penalties = {s.name: s.penalties(self.snapshots[s.name].value) for s in self.stacks}
        for tower in self.towers:
            if tower.done:
                continue
            output, index = tower.output()
            penalty = weight_penalty(tower.model) if index is None else float(penalties[output][index])
            row = self._row(output, index, epoch, (logs, val, clean), penalty, lr, seconds)
            tower.rows.append(row)
            if tower.view is not None:
                tower.synced = False
            if self.on_epoch is not None:
                self.on_epoch(tower.index, row)
            if not math.isfinite(row["loss"]):
                tower.done = True  # diverged; the others go on (their gradients are independent)
            elif tower.early is not None:
                tower.early.on_epoch_end(epoch, row)
                tower.done = bool(tower.target.stop_training)
        if all(t.done for t in self.towers):
            model.stop_training = True

    def on_train_end(self, logs=None):
        for tower in self.towers:
            if tower.early is not None:
                tower.early.on_train_end()  # restores the tower's best weights when asked to

    def _row(self, output, index, epoch, sources, penalty, lr, seconds) -> dict[str, float]:
        """A history row as an unpacked run writes it; `loss` columns add the tower's penalty, as Keras does.

        `sources`: the training logs, (the validation logs, their key prefix) and the clean logs.
        """
        logs, (val, val_prefix), clean = sources
        row: dict[str, float] = {"epoch": epoch + 1}
        for prefix, source, src_prefix in (("", logs, ""), ("val_", val, val_prefix), ("clean_", clean, "")):
            data_loss = _value(source, src_prefix, output, "data_loss", index)
            if data_loss is not None:
                # Keras's per-output loss is the tower's data loss; a stack's is the sum over its towers.
                row[f"{prefix}loss"] = data_loss + penalty
                row[f"{prefix}data_loss"] = data_loss
            for metric in self.metric_names:
                value = _value(source, src_prefix, output, metric, index)
                if value is not None:
                    row[f"{prefix}{metric}"] = value
        row["lr"] = lr
        row["seconds"] = seconds
        return row


def _stack_towers(towers: list[_Tower]) -> tuple[dict[tuple, list[_Tower]], list[_Tower]]:
    """Groups towers by `stack_signature`; towers that can't be stacked are returned apart."""
    groups: dict[tuple, list[_Tower]] = {}
    loose = []
    for tower in towers:
        signature = stack_signature(tower.spec.model)
        if signature is None:
            loose.append(tower)
        else:
            groups.setdefault(signature, []).append(tower)
    return groups, loose


def _towers_into_stack(views: list[_StackView]) -> None:
    """Writes each view's tower-model weights into its slice of the stack (one assign per variable)."""
    views[0].stack.load_towers({view.index: view.tower.model for view in views})

def _load_into_stack(stack: TowerStack, members: list[_Tower]) -> None:
    """Copies each member's model weights (its own seeded initialization) into its slice of the stack."""
    snapshot = _Snapshot()
    views = [_StackView(t, stack, j, snapshot) for j, t in enumerate(members)]
    _towers_into_stack(views)
    for tower, view in zip(members, views, strict=True):
        tower.view = view
        if tower.early is not None:
            tower.early.set_model(view)


def _store_shipped(stacks: list[TowerStack], towers: list[_Tower]) -> None:
    """Syncs both ways at the end: towers without a restore take their final stack slice; the
    stack then holds every tower's shipped weights, for one fused evaluation of all of them."""
    for stack in stacks:
        views = [t.view for t in towers if t.view is not None and t.view.stack is stack]
        views[0].snapshot.clear()
        for view in views:
            if not view.tower.synced:
                view.tower.model.set_weights(view.get_weights())
                view.tower.synced = True
        _towers_into_stack(views)


def _stack_metrics(logs: dict, towers: list[_Tower], metric_names: list[str], metric: str,
                   penalties: dict[str, np.ndarray]) -> dict[int, dict]:
    """Inference-mode loss and metrics of every stacked tower from ONE evaluation of the fused model (its logs)."""
    out = {}
    for tower in towers:
        if tower.view is None:
            continue
        output, index = tower.output()
        values = {m: _value(logs, "", output, m, index) for m in ["data_loss", *metric_names]}
        values = {k: v for k, v in values.items() if v is not None}
        values["loss"] = values["data_loss"] + float(penalties[output][index])
        out[tower.index] = with_error(values, metric)
    return out


# ----------------------------------------------------------------------------------------
# Reuse of the fused model by the next pack of the same shape in this process
# ----------------------------------------------------------------------------------------
# A sweep worker often trains pack after pack of the same shape: other seeds, other L1/L2 or
# dropout values. Tracing the fused model's train and test steps is most of a short pack's
# cost (~3 s here), so the last single-stack fused model is kept: the next pack with the
# same reuse key loads its towers' initial weights, L1/L2/dropout values and dropout seed
# into the stack, resets the optimizer to its state before any step, and trains with the
# functions already traced. What it computes is what a new fused model would (tested).
_REUSABLE: dict[str, Any] = {}


def _reuse_key(specs: list[Any], ds: Any, groups: dict, loose: list, head: Any) -> tuple | None:
    """What a traced single-stack fused model depends on; None when the pack is not one stack."""
    if loose or len(groups) != 1:
        return None
    first = specs[0]
    training = first.training.model_dump(mode="json", exclude={"epochs", "early_stopping"})
    return (keras.backend.backend(), first.device, ds.task, ds.n_classes, ds.x_train.shape[1:], len(ds.x_train),
            len(ds.x_val), next(iter(groups)), len(specs), stack_structure([s.model for s in specs]), head.units, head.activation,
            repr(sorted(training.items())))


def _keep_for_reuse(key: tuple | None, fused, stack, twin: Twin | None) -> None:
    """Keeps a new single-stack fused model (and its optimizer's initial state) for the next pack."""
    _REUSABLE.clear()
    if key is None:
        return
    # Built now (Keras would build it at the first step) to record its state before any step.
    fused.optimizer.build(fused.trainable_variables)
    _REUSABLE.update(key=key, fused=fused, stack=stack, twin=twin,
                     optimizer=[np.array(keras.ops.convert_to_numpy(v)) for v in fused.optimizer.variables])


def _reused(key: tuple | None, specs, groups) -> tuple[Any, list[TowerStack], dict, Twin | None]:
    """The kept fused model made ready for this pack (and its twin), or (None, [], {}, None) when none fits."""
    if key is None or _REUSABLE.get("key") != key:
        return None, [], {}, None
    fused, stack = _REUSABLE["fused"], _REUSABLE["stack"]
    members = next(iter(groups.values()))
    stack.set_towers([t.spec.model for t in members], seed=specs[0].seed)
    _load_into_stack(stack, members)
    for var, value in zip(fused.optimizer.variables, _REUSABLE["optimizer"], strict=True):
        var.assign(value)
    return fused, [stack], {stack.name: None}, _REUSABLE["twin"]


def kept_model() -> keras.Model | None:
    """The fused model this process keeps for its next pack of the same shape, or None."""
    return _REUSABLE.get("fused")


def forget_kept_model() -> None:
    """Drops the kept fused model: the next pack builds (and traces) a new one."""
    _REUSABLE.clear()


# ----------------------------------------------------------------------------------------
# Training one pack
# ----------------------------------------------------------------------------------------
@dataclass
class _Pack:
    """One pack being trained: its towers, its fused model and what all of them share."""

    towers: list[_Tower]
    ds: Any
    training: Any  # the first spec's `training:` block: equal in the pack but for early stopping
    seed: int
    head: TaskHead
    spe: int  # steps per execution
    fused: keras.Model | None = None
    stacks: list[TowerStack] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # the fused model's outputs, by name
    reused: bool = False
    metric_names: list[str] = field(default_factory=list)
    twin: Twin | None = None  # the per-epoch clean + validation evaluation in one call, where exact
    n_clean: int = 0

    def per_output(self, y) -> dict[str, Any]:
        """The same targets for every output of the fused model."""
        return {name: y for name in self.outputs}


def train_packed(
    specs: list[Any],
    ds: Any,
    *,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> list[TrainResult]:
    """Trains K compatible specs (same `pack_key`) as one fused model; one result per spec."""
    first = specs[0]
    seed_everything(first.seed, keep_kernels=True)  # packs hold regcli-built models only
    head = task_head(ds.task, ds.n_classes)
    towers = _build_towers(specs, ds)
    set_random_seed(first.seed, keep_kernels=True)

    groups, loose = _stack_towers(towers)
    training = first.training
    spe = steps_per_execution(max(1, math.ceil(len(ds.x_train) / training.batch_size)))
    pack = _Pack(towers, ds, training, first.seed, head, spe)
    key = _reuse_key(specs, ds, groups, loose, head)
    pack.fused, pack.stacks, pack.outputs, pack.twin = _reused(key, specs, groups)
    pack.reused = pack.fused is not None
    if pack.fused is None:
        _fuse(pack, groups, loose)
        _keep_for_reuse(key, pack.fused, pack.stacks[0] if pack.stacks else None, pack.twin)
    feeder = Feeder(first.seed)
    pack.metric_names = [m.name for m in make_metrics(ds.task) if m.name != "data_loss"]
    fit_seconds = _fit(pack, feeder, on_epoch)

    # Shipped weights into every tower's model and back into the stacks; then the inference-mode
    # metrics of all stacked towers come from one evaluation per split, not one (traced) per tower.
    _store_shipped(pack.stacks, towers)
    stacked = _stacked_metrics(pack, feeder)
    return [_finish_tower(pack, tower, feeder, fit_seconds, stacked.get(tower.index)) for tower in towers]


def _build_towers(specs: list[Any], ds: Any) -> list[_Tower]:
    """Each spec's own model and early stopping, each model built right after seeding with its spec's seed."""
    towers = []
    for k, spec in enumerate(specs):
        # Seed right before each tower, exactly as a separate run seeds before its model.
        set_random_seed(spec.seed, keep_kernels=True)
        model = build_model(spec.model, n_features=ds.x_train.shape[1], task=ds.task, n_classes=ds.n_classes,
                            image_shape=ds.image_shape, name=f"t{k}")
        towers.append(_Tower(k, spec, model, make_early_stopping(spec.training.early_stopping)))
    return towers


def _fuse(pack: _Pack, groups: dict[tuple, list[_Tower]], loose: list[_Tower]) -> None:
    """Builds and compiles the pack's new fused model: one stack per group, a sub-model per loose tower."""
    ds, head = pack.ds, pack.head
    inputs = keras.Input(shape=(ds.x_train.shape[1],), name="features")
    losses, metrics = {}, {}
    for g, members in enumerate(groups.values()):
        stack = TowerStack([t.spec.model for t in members], head.units, head.activation, seed=pack.seed, name=f"s{g}")
        pack.outputs[stack.name] = stack(inputs)
        losses[stack.name] = StackLoss(ds.task, len(members))
        metrics[stack.name] = stack_metrics(ds.task, head.metric_name, len(members))
        _load_into_stack(stack, members)
        pack.stacks.append(stack)
    for tower in loose:
        pack.outputs[tower.name] = tower.model(inputs)
        losses[tower.name] = make_loss(ds.task)
        metrics[tower.name] = make_metrics(ds.task)
        if tower.early is not None:
            tower.early.set_model(tower.model)
    pack.fused = keras.Model(inputs, pack.outputs, name="packed")
    pack.fused.compile(optimizer=make_optimizer(pack.training), loss=losses, metrics=metrics,
                       steps_per_execution=pack.spe)
    pack.twin = _twin(pack, {s.name: s.k for s in pack.stacks})


def _twin(pack: _Pack, stack_sizes: dict[str, int]) -> Twin | None:
    """The fused model's per-epoch evaluation of both splits in one call, or None where not exact."""
    if not fusable(pack.fused, len(pack.ds.x_val)):
        return None
    task, metric = pack.ds.task, pack.head.metric_name

    def loss_of(name):
        return StackLoss(task, stack_sizes[name]) if name in stack_sizes else make_loss(task)

    def metrics_of(name):
        return stack_metrics(task, metric, stack_sizes[name]) if name in stack_sizes else make_metrics(task)

    return Twin(pack.fused, loss_of, metrics_of)


def _fit(pack: _Pack, feeder: Feeder, on_epoch: Callable[[int, dict], None] | None) -> float:
    """Fits the fused model until every tower has stopped; returns the seconds it took."""
    ds, training = pack.ds, pack.training
    y_train, y_val = targets(ds.y_train, ds.task), targets(ds.y_val, ds.task)
    clean_idx = clean_subset(ds, pack.seed)
    clean_feed = feeder.clean_batch(ds.x_train[clean_idx], pack.per_output(y_train[clean_idx]))
    pack.n_clean = len(clean_idx)
    if pack.twin is not None:
        pack.twin.set_data((ds.x_train[clean_idx], pack.per_output(y_train[clean_idx])), (ds.x_val, pack.per_output(y_val)))
    recorder = PackedRecorder(pack.towers, pack.stacks, clean_feed, pack.metric_names, on_epoch, pack.twin)
    started = time.perf_counter()
    pack.fused.fit(
        **feeder.train(ds.x_train, pack.per_output(y_train), training.batch_size),
        validation_data=None if pack.twin is not None else feeder.val_data(ds.x_val, pack.per_output(y_val)),
        epochs=training.epochs,
        callbacks=[recorder, interrupt.InterruptCheck()],
        verbose=0,
    )
    return time.perf_counter() - started


def _stacked_metrics(pack: _Pack, feeder: Feeder) -> dict[int, dict[str, dict]]:
    """`{tower index: {"train": ..., "val": ...}}` of every stacked tower, from one evaluation per split."""
    if not pack.stacks:
        return {}
    ds = pack.ds
    y_train, y_val = targets(ds.y_train, ds.task), targets(ds.y_val, ds.task)
    penalties = {s.name: keras.ops.convert_to_numpy(s.penalties()) for s in pack.stacks}
    if pack.twin is not None and pack.n_clean == len(ds.x_train):  # the clean subset is the training split
        fused = pack.twin()
        logs = fused["clean"], fused["val"]
    else:
        logs = tuple(pack.fused.evaluate(**feeder.eval(x, pack.per_output(y)), verbose=0, return_dict=True)
                     for x, y in ((ds.x_train, y_train), (ds.x_val, y_val)))
    train_m, val_m = (_stack_metrics(split_logs, pack.towers, pack.metric_names, pack.head.metric_name, penalties)
                      for split_logs in logs)
    return {i: {"train": train_m[i], "val": val_m[i]} for i in train_m}


def _finish_tower(pack: _Pack, tower: _Tower, feeder: Feeder, fit_seconds: float,
                  metrics: dict[str, dict] | None) -> TrainResult:
    """The tower alone, compiled like a separate run, for its file (and, unstacked, its metrics)."""
    ds = pack.ds
    tower.model.compile(optimizer=make_optimizer(pack.training), loss=make_loss(ds.task), metrics=make_metrics(ds.task))
    # Built, so the saved optimizer has the variables a loaded model expects (Keras warns
    # "Skipping variable loading for optimizer" on a model saved with an unbuilt one).
    tower.model.optimizer.build(tower.model.trainable_variables)
    extra = {"frozen_layers": [], "steps_per_execution": pack.spe,
             "packed": {"size": len(pack.towers), "index": tower.index, "fused_fit_seconds": fit_seconds,
                        "stacked": tower.view is not None, "reused_model": pack.reused}}
    fitted = Fitted(tower.model, tower.rows, tower.early, tower.spec.training, fit_seconds / len(pack.towers),
                    extra, metrics)
    return finish(fitted, ds, feeder)
