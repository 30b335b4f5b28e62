"""What one epoch of a pack's arithmetic costs: K towers' batched matmuls, forward and backward.

The quickstart model's kernels (30 -> 256 -> 128 -> 1) stacked with a leading tower axis, as
`regcli.training.stack.TowerStack` holds them, trained with plain SGD on a fixed batch of 32 rows for
one epoch of breast_cancer (13 steps) inside one `tf.function`: no Keras, no data pipeline, no
BatchNorm, Adam or metrics. The time per epoch for K = 1 and K = 8 says whether batching the
towers' matmuls gains anything on this machine (the rest of a pack's epoch is overhead that
packing shares).

    python benchmarks/tower_matmul.py            # prints JSON: {"1": ms, "8": ms, ...}

Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def epoch_ms(k: int, threads: int, repeats: int = 30) -> float:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((32, 30), dtype=np.float32))
    weights = [
        tf.Variable(rng.random(shape, dtype=np.float32) * 0.01)
        for shape in ((k, 30, 256), (k, 256, 128), (k, 128, 1))
    ]

    def forward(inputs):
        h = tf.nn.relu(tf.matmul(tf.expand_dims(inputs, 0), weights[0]))
        h = tf.nn.relu(tf.matmul(h, weights[1]))
        return tf.reduce_sum(tf.matmul(h, weights[2]))

    @tf.function
    def epoch(inputs):
        loss = tf.constant(0.0)
        for _ in tf.range(13):
            with tf.GradientTape() as tape:
                loss = forward(inputs)
            for var, grad in zip(weights, tape.gradient(loss, weights), strict=True):
                var.assign_sub(1e-3 * grad)
        return loss

    epoch(x)  # trace
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        epoch(x).numpy()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> int:
    import tensorflow as tf

    threads = int(os.environ.get("REGCLI_BENCH_THREADS", "2"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(json.dumps({str(k): epoch_ms(k, threads) for k in (1, 8)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
