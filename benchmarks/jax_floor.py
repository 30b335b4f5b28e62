"""The floor under issue 19's "JAX all-in <= 3x the arithmetic": the same packed epoch hand-written in JAX.

8 towers of the seed template (30 -> Dense 256 -> BatchNorm -> ReLU -> Dropout 0.2 -> Dense 128 -> BatchNorm
-> ReLU -> Dropout -> Dense 1, sigmoid; L2 on the kernels; Adam), batch 32 over 341 rows (11 steps, the last
partial), and the epoch's inference pass over the clean subset and the validation rows: ALL of it as one
jitted call per epoch, no Keras, no callbacks, no host work but the call. What it takes per config-epoch is
what any Keras-driven epoch of the same arithmetic can at best approach on this machine; the ratio to the
multiply-add arithmetic (at the matmul peak) says whether the 3x goal is within reach of overhead removal.

    .venv/bin/python benchmarks/jax_floor.py        # prints {"ms_per_config_epoch": ..., "peak_gflops": ...}

Not a test; `benchmarks/sweep_costs.py` runs it in the same round as the sweeps it compares with.
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402 - after the platform is pinned
import jax.numpy as jnp  # noqa: E402

K, N_TRAIN, N_VAL, BATCH, FEATURES, WIDTHS = 8, 341, 114, 32, 30, (256, 128)
L2, RATE, LR, B1, B2, EPS, MOMENTUM, BN_EPS = 1e-4, 0.2, 1e-3, 0.9, 0.999, 1e-7, 0.99, 1e-3


def init(key):
    params, stats, sizes = {}, {}, (FEATURES, *WIDTHS)
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        key, sub = jax.random.split(key)
        params[f"k{i}"] = jax.random.normal(sub, (K, n_in, n_out)) * (2.0 / n_in) ** 0.5
        params[f"g{i}"], params[f"b{i}"] = jnp.ones((K, 1, n_out)), jnp.zeros((K, 1, n_out))
        stats[f"m{i}"], stats[f"v{i}"] = jnp.zeros((K, 1, n_out)), jnp.ones((K, 1, n_out))
    key, sub = jax.random.split(key)
    params["head"], params["head_b"] = jax.random.normal(sub, (K, WIDTHS[-1], 1)) * 0.05, jnp.zeros((K, 1, 1))
    return params, stats


def forward(params, stats, x, key, training):
    h, new = jnp.broadcast_to(x, (K, *x.shape)), dict(stats)
    for i in range(len(WIDTHS)):
        h = h @ params[f"k{i}"]
        if training:
            mean, var = h.mean(axis=1, keepdims=True), h.var(axis=1, keepdims=True)
            new[f"m{i}"] = stats[f"m{i}"] * MOMENTUM + mean * (1 - MOMENTUM)
            new[f"v{i}"] = stats[f"v{i}"] * MOMENTUM + var * (1 - MOMENTUM)
        else:
            mean, var = stats[f"m{i}"], stats[f"v{i}"]
        h = jax.nn.relu((h - mean) * jax.lax.rsqrt(var + BN_EPS) * params[f"g{i}"] + params[f"b{i}"])
        if training:
            key, sub = jax.random.split(key)
            h = jnp.where(jax.random.uniform(sub, h.shape) >= RATE, h / (1 - RATE), 0.0)
    return h @ params["head"] + params["head_b"], new


def bce(logits, y):
    return jnp.mean(jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits))), axis=(1, 2))


def loss_fn(params, stats, x, y, key):
    logits, new = forward(params, stats, x, key, True)
    penalty = L2 * sum(jnp.sum(params[f"k{i}"] ** 2, axis=(1, 2)) for i in range(len(WIDTHS)))
    return jnp.sum(bce(logits, y) + penalty), new


def adam(params, m, v, grads, t):
    m = jax.tree.map(lambda a, g: B1 * a + (1 - B1) * g, m, grads)
    v = jax.tree.map(lambda a, g: B2 * a + (1 - B2) * g * g, v, grads)
    scale = LR * jnp.sqrt(1 - B2**t) / (1 - B1**t)
    return jax.tree.map(lambda p, a, b: p - scale * a / (jnp.sqrt(b) + EPS), params, m, v), m, v


@jax.jit
def epoch(state, x, y, xv, yv, order, key):
    """One epoch: 11 training steps in the given row order, then both inference passes."""
    params, stats, m, v, t = state
    for start in range(0, N_TRAIN, BATCH):
        idx = order[start:start + BATCH]
        key, sub = jax.random.split(key)
        grads, stats = jax.grad(loss_fn, has_aux=True)(params, stats, x[idx], y[idx], sub)
        t = t + 1
        params, m, v = adam(params, m, v, grads, t)
    clean = bce(forward(params, stats, x, key, False)[0], y)
    val = bce(forward(params, stats, xv, key, False)[0], yv)
    return (params, stats, m, v, t), clean, val


def matmul_peak() -> float:
    a = jnp.ones((2048, 2048))
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    started = time.perf_counter()
    for _ in range(10):
        out = mm(a)
    out.block_until_ready()
    return 2 * 2048**3 * 10 / (time.perf_counter() - started) / 1e9


def measure(epochs: int = 40) -> dict:
    key = jax.random.PRNGKey(0)
    params, stats = init(key)
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = (params, stats, zeros, zeros, 0)
    x, xv = jax.random.normal(key, (N_TRAIN, FEATURES)), jax.random.normal(key, (N_VAL, FEATURES))
    y, yv = (x[:, :1] > 0).astype("float32"), (xv[:, :1] > 0).astype("float32")
    times = []
    for e in range(epochs + 1):
        order = jax.random.permutation(jax.random.PRNGKey(e), N_TRAIN)
        started = time.perf_counter()
        state, clean, val = epoch(state, x, y, xv, yv, order, jax.random.PRNGKey(1000 + e))
        val.block_until_ready()
        if e:  # epoch 0 compiles
            times.append(time.perf_counter() - started)
    return {"ms_per_config_epoch": statistics.median(times) / K * 1e3, "peak_gflops": matmul_peak(),
            "final_val_bce": float(val.mean())}


if __name__ == "__main__":
    print(json.dumps(measure()))
