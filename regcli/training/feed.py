"""Feeding arrays to Keras: the targets' shape, the shuffled training batches, the evaluation
batches and the clean subset, the same for one model (`fit`) and a packed one (`packed`).

Every epoch trains on every training row exactly once, the last partial batch included (as
`model.fit` does), in a new order each epoch; epoch e's order depends only on (seed, e), so a
resumed run sees the same batches as an uninterrupted one (`tests/test_feed.py`).

Plain `model.fit(x, y, shuffle=True)` on TensorFlow does not reshuffle once a global seed is set
(`keras.utils.set_random_seed`): its array adapter draws the order with `tf.random.shuffle` in each
epoch's new dataset iterator, which restarts from the same seed, so every epoch repeats epoch 1's
order (JAX's array adapter does reshuffle). That, not the feeding here, is why the two train
differently (final val loss of the template over 48 seeds: 0.0872 here vs 0.0824, p 0.007): `model.fit`
fed this feeder's order trains bit for bit like regcli, and this pipeline with one order repeated gives
`model.fit`'s distribution (0.0813, p 0.6). See `benchmarks/feed_vs_fit.py` and docs/benchmarks.md.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from regcli.training.backend import backend_name

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


def targets(y: np.ndarray, task: str) -> np.ndarray:
    """The labels as Keras wants them: binary and regression heads have one output unit, (N, 1) targets."""
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


def clean_subset(ds: Any, seed: int) -> np.ndarray:
    """The fixed training rows evaluated in inference mode every epoch (sorted indices)."""
    rng = np.random.default_rng(seed)
    n_clean = min(CLEAN_SUBSET_ROWS, len(ds.x_train))
    return np.sort(rng.choice(len(ds.x_train), size=n_clean, replace=False))


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


class Feeder:
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
        # batch before repeat: each epoch is `steps` batches ending with its partial one, and no
        # batch mixes two epochs; the full-length buffer makes each epoch a uniform permutation.
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
