"""A vectorized tower stack: K shorthand MLPs of the same shape as ONE set of batched kernels.

Packing K towers as K separate sub-models (one Dense per tower per block) gives the step
K times the ops, and Keras traces and builds a graph for every one of them: measured here,
the first epoch of a pack of 8 cost 23 s, as much as tracing 8 models alone. A stack keeps
each weight of the K towers in one tensor with a leading tower axis, so a block is one
batched matmul (`(K, B, in) @ (K, in, out)`), one BatchNormalization over the batch axis
and one dropout mask, whatever K is: one trace for the whole pack.

Towers of one stack share the block widths, activation, BatchNorm on/off and momentum;
they differ in the init seed, `l1`, `l2`, `bias_l2`, `output_l2` and the dropout rate
(vectors over the tower axis). Each tower's weights are a slice `[k]` of the stack's: its gradient
depends only on its own loss, the per-tower penalty is `l1[k]·Σ|w_k| + l2[k]·Σw_k²`, and
Adam/SGD/RMSprop update each parameter from its own gradient, so a tower trains as it
would alone (`tests/test_packed.py` compares it with separate runs).

The stack's output is `(B, K, units)`; `StackLoss` sums the K towers' mean data losses
(their gradients stay separate) and `TowerMean` metrics keep one value per tower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

# The per-tower knobs, in the order of the rows of `TowerStack.knobs`.
TOWER_KNOBS = ("l1", "l2", "bias_l2", "dropout", "output_l2")


def stack_signature(model_spec: Any) -> tuple | None:
    """Towers with equal signatures can share one stack; None when a spec can't be stacked.

    Shorthand MLPs only (explicit `layers:` are packed as separate sub-models), without an
    activity penalty (Keras scales it by the batch, per layer output: not vectorized here).
    """
    if model_spec.layers is not None or model_spec.init_from or model_spec.freeze or model_spec.activity_l2:
        return None
    return (tuple(model_spec.hidden), model_spec.activation, bool(model_spec.batchnorm), float(model_spec.bn_momentum))


def stack_structure(model_specs: list[Any]) -> tuple[bool, ...]:
    """What a stack's traced step depends on besides shapes: whether any tower has L1, L2,
    bias L2, dropout and output L2 (`TowerStack` builds only the terms some tower uses)."""
    return tuple(any(getattr(s, name) for s in model_specs) for name in TOWER_KNOBS)


class TowerPenalty:
    """Per-tower L1/L2 penalty of a stacked weight `(K, ...)`: Σ_k l1[k]·Σ|w_k| + l2[k]·Σw_k².

    `l1`/`l2` are numpy (the per-epoch bookkeeping reads them); in the traced step they are
    read with `read()` (rows of the stack's `tower_knobs`) once the stack is built, so a
    stack reused for another pack (`TowerStack.set_towers`) trains with the new values
    without tracing again. Which terms exist (`uses_l1`, `uses_l2`) is fixed at build.
    """

    def __init__(self, l1: np.ndarray, l2: np.ndarray):
        self.set(l1, l2)
        self.uses_l1, self.uses_l2 = bool(self.l1.any()), bool(self.l2.any())
        self.active = self.uses_l1 or self.uses_l2
        self.read: Callable[[], tuple[Any, Any]] | None = None

    def set(self, l1: np.ndarray, l2: np.ndarray) -> None:
        self.l1 = np.asarray(l1, dtype="float32")
        self.l2 = np.asarray(l2, dtype="float32")

    def per_tower(self, w: Any) -> Any:
        axes = tuple(range(1, len(w.shape)))
        if isinstance(w, np.ndarray):  # the per-epoch bookkeeping: numpy, no eager backend ops
            return self.l1 * np.abs(w).sum(axis=axes) + self.l2 * np.square(w).sum(axis=axes)
        l1, l2 = self.read() if self.read is not None else (ops.convert_to_tensor(self.l1), ops.convert_to_tensor(self.l2))
        total = 0.0
        if self.uses_l1:
            total = total + l1 * ops.sum(ops.abs(w), axis=axes)
        if self.uses_l2:
            total = total + l2 * ops.sum(ops.square(w), axis=axes)
        return total

    def __call__(self, w: Any) -> Any:
        return ops.sum(self.per_tower(w))


class TowerStack(keras.layers.Layer):
    """K shorthand MLPs (Dense -> BN -> Activation -> Dropout blocks, then the task head) as one layer.

    Args:
        specs: the K towers' `model:` blocks (equal `stack_signature`).
        units: output units of the task head.
        head_activation: the head's activation (`"sigmoid"`, `"softmax"` or `None`).
        seed: seeds the dropout masks. Defaults to `0`.
    """

    def __init__(self, specs: list[Any], units: int, head_activation: str | None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        first = specs[0]
        self.k = len(specs)
        self.widths = list(first.hidden)
        self.units = units
        self.bn = bool(first.batchnorm)
        self.momentum = float(first.bn_momentum)
        self.epsilon = 1e-3  # keras.layers.BatchNormalization's default, as the shorthand uses
        self.act = keras.activations.get(first.activation)
        self.head_act = keras.activations.get(head_activation)
        self.uses_dropout = any(s.dropout for s in specs)
        self.kernel_penalty = TowerPenalty([s.l1 for s in specs], [s.l2 for s in specs])
        self.bias_penalty = TowerPenalty(np.zeros(self.k), [s.bias_l2 for s in specs])
        self.head_penalty = TowerPenalty(np.zeros(self.k), [s.output_l2 for s in specs])
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.blocks: list[dict[str, Any]] = []
        self._knob_values = self._knobs(specs)
        self.knobs = None  # `tower_knobs`, made by build

    @staticmethod
    def _knobs(specs: list[Any]) -> np.ndarray:
        """The towers' l1, l2, bias_l2, dropout rate and output_l2 as rows of a `(5, K)` array."""
        return np.array([[getattr(s, name) for s in specs] for name in TOWER_KNOBS], dtype="float32")

    def set_towers(self, specs: list[Any], seed: int) -> None:
        """Makes this built stack another pack's (same shape and `stack_structure`): its towers'
        L1/L2/dropout values and a dropout stream seeded with `seed`, as a new stack would
        have. The weights are the caller's to load (`load_towers`)."""
        values = self._knobs(specs)
        self.kernel_penalty.set(values[0], values[1])
        self.bias_penalty.set(np.zeros(self.k), values[2])
        self.head_penalty.set(np.zeros(self.k), values[4])
        self.knobs.assign(values)
        self.seed_generator.state.assign(keras.random.SeedGenerator(seed).state.value)

    def build(self, input_shape):
        n_in = input_shape[-1]
        k = self.k
        # Keras adds each weight's regularizer to the loss it trains on, as for a separate run.
        kernel_reg = self.kernel_penalty if self.kernel_penalty.active else None
        bias_reg = self.bias_penalty if self.bias_penalty.active else None
        head_reg = self.head_penalty if self.head_penalty.active else None  # output_l2 only, as a run's head
        # Per-tower knobs live in a variable, not in the traced graph: a reused stack takes new ones.
        self.knobs = self.add_weight((len(TOWER_KNOBS), k), initializer="zeros", trainable=False, name="tower_knobs")
        self.knobs.assign(self._knob_values)
        self.kernel_penalty.read = lambda: (self.knobs[0], self.knobs[1])
        self.bias_penalty.read = lambda: (self.knobs[2], self.knobs[2])  # bias: L2 only (uses_l1 is False)
        self.head_penalty.read = lambda: (self.knobs[4], self.knobs[4])  # output: L2 only
        for i, width in enumerate(self.widths, start=1):
            block = {"kernel": self.add_weight((k, n_in, width), name=f"block{i}_kernel", regularizer=kernel_reg)}
            if not self.bn:
                block["bias"] = self.add_weight((k, width), initializer="zeros", name=f"block{i}_bias",
                                                regularizer=bias_reg)
            else:
                block["gamma"] = self.add_weight((k, width), initializer="ones", name=f"block{i}_gamma")
                block["beta"] = self.add_weight((k, width), initializer="zeros", name=f"block{i}_beta")
                block["moving_mean"] = self.add_weight((k, width), initializer="zeros", trainable=False,
                                                       name=f"block{i}_moving_mean")
                block["moving_variance"] = self.add_weight((k, width), initializer="ones", trainable=False,
                                                           name=f"block{i}_moving_variance")
            self.blocks.append(block)
            n_in = width
        self.head = {"kernel": self.add_weight((k, n_in, self.units), name="output_kernel", regularizer=head_reg),
                     "bias": self.add_weight((k, self.units), initializer="zeros", name="output_bias")}

    def penalties(self, value_of=None) -> Any:
        """The K towers' L1/L2 penalties (what Keras adds to each tower's loss), shape `(K,)`.

        Args:
            value_of: maps a stack variable to its value as a numpy array, to compute the
                penalties in numpy. Defaults to `None`: a backend tensor from the variables.
        """
        if value_of is None:
            total, value_of = ops.zeros((self.k,)), (lambda var: var)
        else:
            total = np.zeros(self.k, dtype="float32")
        for block in self.blocks:
            if self.kernel_penalty.active:
                total = total + self.kernel_penalty.per_tower(value_of(block["kernel"]))
            if "bias" in block and self.bias_penalty.active:
                total = total + self.bias_penalty.per_tower(value_of(block["bias"]))
        if self.head_penalty.active:
            total = total + self.head_penalty.per_tower(value_of(self.head["kernel"]))
        return total

    def call(self, inputs, training=False):
        x = ops.expand_dims(inputs, 0)  # (1, B, F): broadcast over the K towers' kernels
        for block in self.blocks:
            x = ops.matmul(x, block["kernel"])  # (K, B, width)
            if "bias" in block:
                x = x + ops.expand_dims(block["bias"], 1)
            if self.bn:
                x = self._batchnorm(x, block, training)
            x = self.act(x)
            if training and self.uses_dropout:
                rates = ops.reshape(self.knobs[3], (-1, 1, 1))
                keep = keras.random.uniform(ops.shape(x), seed=self.seed_generator) >= rates
                x = ops.where(keep, x / (1.0 - rates), ops.zeros_like(x))
        x = ops.matmul(x, self.head["kernel"]) + ops.expand_dims(self.head["bias"], 1)
        return ops.transpose(self.head_act(x), (1, 0, 2))  # (B, K, units): Keras batches along axis 0

    def _batchnorm(self, x, block, training):
        gamma, beta = ops.expand_dims(block["gamma"], 1), ops.expand_dims(block["beta"], 1)
        if training:
            mean, variance = ops.moments(x, axes=[1])  # over the batch: (K, width)
            m = self.momentum
            block["moving_mean"].assign(block["moving_mean"] * m + mean * (1.0 - m))
            block["moving_variance"].assign(block["moving_variance"] * m + variance * (1.0 - m))
        else:
            mean, variance = block["moving_mean"], block["moving_variance"]
        # tf.nn.batch_normalization's formula (Keras's on TensorFlow and JAX alike), with (K, 1, width)
        # statistics: ops.batch_normalization wants 1-D ones on some backends.
        inv = ops.rsqrt(ops.expand_dims(variance, 1) + self.epsilon) * gamma
        return x * inv + (beta - ops.expand_dims(mean, 1) * inv)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.k, self.units)

    # ----------------------------------------------------------------------------------
    # Tower <-> stack weights
    # ----------------------------------------------------------------------------------
    def tower_vars(self, tower_model: keras.Model) -> list[Any]:
        """The stack variable holding each of the tower model's `weights` (in that order), sliced `[k]`.

        The tower model is the one `regcli.model.build_model` makes for the same spec:
        layers `block{i}_dense`, `block{i}_bn` and `output`.
        """
        by_layer = {}
        for i, block in enumerate(self.blocks, start=1):
            by_layer[f"block{i}_dense"] = {"kernel": block["kernel"], "bias": block.get("bias")}
            if self.bn:
                by_layer[f"block{i}_bn"] = {name: block[name] for name in ("gamma", "beta", "moving_mean", "moving_variance")}
        by_layer["output"] = self.head
        stack_of = {}
        for layer in tower_model.layers:
            for var in layer.weights:
                stack_of[id(var)] = by_layer[layer.name][var.name]
        return [stack_of[id(var)] for var in tower_model.weights]

    def load_towers(self, models: dict[int, keras.Model]) -> None:
        """Writes each tower model's weights into its slice `[k]` of the stack (one assign per variable).

        Args:
            models: tower index `k` -> a model `build_model` made for tower k's spec.
        """
        first = next(iter(models.values()))  # every tower model lists its weights in the same order
        for i, var in enumerate(self.tower_vars(first)):
            value = np.array(ops.convert_to_numpy(var))
            for k, model in models.items():
                value[k] = ops.convert_to_numpy(model.weights[i])
            var.assign(value)


class StackLoss(keras.losses.Loss):
    """Σ over the K towers of each tower's mean data loss (binary/sparse CE or MSE) on `(B, K, units)`."""

    def __init__(self, task: str, k: int, name: str = "stack_loss"):
        super().__init__(name=name)
        self.per_tower = tower_fn(task, "loss", k)

    def call(self, y_true, y_pred):
        return ops.sum(self.per_tower(y_true, y_pred), axis=1)  # (B,): the mean over B is the sum of K means


def tower_fn(task: str, what: str, k: int):
    """A `(y_true, y_pred (B, K, units)) -> (B, K)` function: the data loss or the task metric per tower."""
    if task == "multiclass":
        fn = (keras.losses.sparse_categorical_crossentropy if what == "loss"
              else keras.metrics.sparse_categorical_accuracy)
    elif task == "binary":
        fn = keras.losses.binary_crossentropy if what == "loss" else keras.metrics.binary_accuracy
    else:
        fn = keras.losses.mean_squared_error if what == "loss" else keras.metrics.mean_absolute_error

    def per_tower(y_true, y_pred):
        if task == "multiclass":
            y = ops.reshape(ops.cast(y_true, "int32"), (-1, 1))  # (B, 1) sparse labels
            y = ops.repeat(y, k, axis=1)  # (B, K)
        else:
            y = ops.repeat(ops.expand_dims(ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, 1)), 1), k, axis=1)
        values = fn(y, y_pred)
        # binary_accuracy keeps the units axis (B, K, 1); a separate run's metric averages it too.
        return ops.mean(values, axis=-1) if len(values.shape) == 3 else values

    return per_tower


class TowerMean(keras.metrics.Metric):
    """The mean over all seen rows of a per-tower value: one result per tower, shape `(K,)`."""

    def __init__(self, fn, k: int, name: str):
        super().__init__(name=name)
        self.fn, self.k = fn, k
        self.total = self.add_variable(shape=(k,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ops.cast(self.fn(y_true, y_pred), "float32")
        self.total.assign_add(ops.sum(values, axis=0))
        self.count.assign_add(ops.cast(ops.shape(values)[0], "float32"))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(ops.zeros((self.k,)))
        self.count.assign(0.0)


def stack_metrics(task: str, metric_name: str, k: int) -> list[keras.metrics.Metric]:
    """The task metric and `data_loss` per tower, named as an unpacked run's columns."""
    return [TowerMean(tower_fn(task, "metric", k), k, metric_name), TowerMean(tower_fn(task, "loss", k), k, "data_loss")]
