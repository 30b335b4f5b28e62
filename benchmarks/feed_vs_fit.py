"""Does regcli's feeding train like plain `model.fit` on the same arrays? Final val loss over seeds.

    .venv/bin/python benchmarks/feed_vs_fit.py              # called by benchmarks/run.py (`make bench`):
                                                            # 24 seeds x 30 epochs, 4 sides (~16 min, 2 cores)
    .venv/bin/python benchmarks/feed_vs_fit.py --quick      # 8 seeds x 20 epochs
    .venv/bin/python benchmarks/feed_vs_fit.py --sides regcli,fit_reshuffled --seeds 12 --jobs 1
    .venv/bin/python benchmarks/feed_vs_fit.py --seeds 48 --results DIR   # keeps per-seed results in DIR;
                                                            # a rerun with more seeds trains only the new ones

Every side trains the seed template (`configs/quickstart.yaml`: breast_cancer, 256/128, BatchNorm,
dropout 0.2, L2 1e-4, Adam 1e-3, batch 32) with early stopping off, once per seed, on one split
(`data.split_seed: 0` for every seed, as the issue held it: the seeds vary the initial weights, dropout
and the order; a split per seed spreads the final val loss three times wider, std 0.024 instead of
0.007-0.009 over 24 seeds, which hides a 0.006 difference).
Each seed's initial weights are the same on every side (`regcli.training.fit.prepare_model`), compiled
with the same optimizer, loss and metrics. Only the feeding differs:

  regcli          `regcli.training.fit.train` itself: the `Feeder` (tf.data, reshuffled each epoch),
                  steps_per_execution, the per-epoch clean-metrics evaluation.
  fit             `model.fit(x, y, batch_size=32, shuffle=True, validation_data=(x_val, y_val))`.
  fit_reshuffled  the same `model.fit` on arrays, one call per epoch, each on the rows permuted by
                  `np.random.default_rng([seed, epoch])`: Keras fed a new order every epoch.
  regcli_fixed    regcli's tf.data pipeline with `reshuffle_each_iteration=False`: one order, every epoch.

Why the last two: on TensorFlow, Keras's array adapter draws each epoch's order with `tf.random.shuffle`
inside the epoch's new dataset iterator. Once `keras.utils.set_random_seed` has fixed the global seed
(as any reproducible script, and regcli, does), that op restarts from the same seed at every epoch: plain
`model.fit(shuffle=True)` then trains on one permutation, repeated (`tests/test_feed.py` shows it).
`fit_reshuffled` is plain Keras that does reshuffle; `regcli_fixed` is regcli's pipeline that does not.

Each side runs in its own subprocess (all seeds in turn); the report gives each side's mean ± std over
seeds and, for the pairs that matter, Welch's t-test (as the issue measured) and the paired t-test
(same seed = same initial weights on both sides), and the two regimes pooled (a new order every epoch:
regcli, fit_reshuffled; one order repeated: fit, regcli_fixed). The section it writes in
docs/benchmarks.md replaces its previous one and sits before benchmarks/perf.py's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
SECTION = "## Feeding: regcli vs `model.fit`"
BEFORE = "## Sweeps, memory and scale"  # benchmarks/perf.py's section: this one goes in front of it
SIDES = ("regcli", "fit", "fit_reshuffled", "regcli_fixed")
# (a, b, what it tells): the comparisons the report tests.
PAIRS = (
    ("regcli", "fit", "the issue's comparison"),
    ("regcli", "fit_reshuffled", "both reshuffle every epoch"),
    ("regcli_fixed", "fit", "both repeat one order"),
    ("fit_reshuffled", "fit", "plain Keras, reshuffled vs as it is"),
)
# One split for all seeds (see the docstring).
SPLIT_SEED = 0
# The two regimes: a new order every epoch, one order repeated (the pooled comparison).
POOLS = (("regcli", "fit_reshuffled"), ("fit", "regcli_fixed"))
DEFAULT_SEEDS, DEFAULT_EPOCHS = 24, 30
QUICK_SEEDS, QUICK_EPOCHS = 8, 20
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}


# --------------------------------------------------------------------------------------
# One side, in a worker process
# --------------------------------------------------------------------------------------
def template(seed: int, epochs: int):
    """The seed template with early stopping off, on the fixed split, for one seed (its initial weights)."""
    from regcli.spec import load_experiment_spec

    sets = [f"seed={seed}", f"data.split_seed={SPLIT_SEED}", f"training.epochs={epochs}",
            "training.early_stopping.enabled=false"]
    return load_experiment_spec(QUICKSTART, sets)


def train_side(side: str, seed: int, epochs: int) -> dict[str, float]:
    """Trains one side for one seed; returns the last epoch's validation numbers."""
    import keras

    from regcli.data import load_dataset
    from regcli.model import make_loss, make_metrics
    from regcli.training.fit import make_optimizer, prepare_model, train

    spec = template(seed, epochs)
    ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)
    keras.backend.clear_session()
    if side == "regcli":
        last = train(spec, ds).history[-1]
        return {"val_loss": last["val_loss"], "val_data_loss": last["val_data_loss"]}
    model = prepare_model(spec, ds).model  # the same seeding and initial weights as regcli's side
    model.compile(optimizer=make_optimizer(spec.training), loss=make_loss(ds.task), metrics=make_metrics(ds.task))
    history = FEEDS[side](model, spec, ds)
    return {"val_loss": float(history["val_loss"][-1]), "val_data_loss": float(history["val_data_loss"][-1])}


def _arrays(ds):
    from regcli.training.feed import targets

    return ds.x_train, targets(ds.y_train, ds.task), (ds.x_val, targets(ds.y_val, ds.task))


def feed_fit(model, spec, ds) -> dict:
    """Plain Keras: numpy arrays, `shuffle=True`, its defaults everywhere else."""
    x, y, val = _arrays(ds)
    training = spec.training
    return model.fit(x, y, batch_size=training.batch_size, shuffle=True, validation_data=val,
                     epochs=training.epochs, verbose=0).history


def feed_fit_reshuffled(model, spec, ds) -> dict:
    """Plain Keras on arrays, one `fit` call per epoch on a new permutation of the rows."""
    import numpy as np

    x, y, val = _arrays(ds)
    training, history = spec.training, {}
    for epoch in range(training.epochs):
        order = np.random.default_rng([spec.seed, epoch]).permutation(len(x))
        h = model.fit(x[order], y[order], batch_size=training.batch_size, shuffle=False, validation_data=val,
                      initial_epoch=epoch, epochs=epoch + 1, verbose=0).history
        for key, values in h.items():
            history.setdefault(key, []).extend(values)
    return history


def feed_regcli_fixed(model, spec, ds) -> dict:
    """regcli's tf.data pipeline (cache, shuffle, batch, repeat) with one order for every epoch."""
    import math

    import tensorflow as tf

    from regcli.training.feed import Feeder

    x, y, (x_val, y_val) = _arrays(ds)
    training = spec.training
    data = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    data = data.shuffle(len(x), seed=spec.seed, reshuffle_each_iteration=False).batch(training.batch_size).repeat()
    return model.fit(data, steps_per_epoch=math.ceil(len(x) / training.batch_size), shuffle=False,
                     validation_data=Feeder(spec.seed).val_data(x_val, y_val), epochs=training.epochs,
                     verbose=0).history


FEEDS = {"fit": feed_fit, "fit_reshuffled": feed_fit_reshuffled, "regcli_fixed": feed_regcli_fixed}


def worker(side: str, seeds: range, epochs: int, out: Path) -> int:
    """All seeds of one side, in this process; writes `{seed: {...}}` to `out` after each seed.

    Seeds `out` already holds for these epochs and this source are not trained again (a run is
    deterministic: the same code gives the same numbers), so `--results DIR` extends an earlier run
    with more seeds; after any change to regcli or this script, every seed is trained again.
    """
    sys.path.insert(0, str(ROOT))
    from regcli.training import backend

    backend.select("tensorflow", "cpu")
    backend.import_keras_quietly()
    results, key = json.loads(out.read_text()) if out.exists() else {}, run_key(epochs)
    for seed in seeds:
        if results.get(str(seed), {}).get("key") == key:
            continue
        started = time.perf_counter()
        results[str(seed)] = {**train_side(side, seed, epochs), "key": key}
        print(f"  {side} seed {seed}: val_loss {results[str(seed)]['val_loss']:.4f} "
              f"({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
        out.write_text(json.dumps(results))
    return 0


# --------------------------------------------------------------------------------------
# Statistics and the report
# --------------------------------------------------------------------------------------
def compare(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean difference, Welch's t-test p value and the paired t-test p value (seed i pairs with seed i)."""
    from scipy import stats

    return {
        "diff": statistics.fmean(a) - statistics.fmean(b),
        "welch_p": float(stats.ttest_ind(a, b, equal_var=False).pvalue),
        "paired_p": float(stats.ttest_rel(a, b).pvalue),
    }


SIDE_NOTES = {
    "regcli": "`regcli.training.fit.train`: tf.data, a new order every epoch",
    "fit": "`model.fit(x, y, batch_size=32, shuffle=True)`: one order, repeated (TensorFlow, global seed set)",
    "fit_reshuffled": "`model.fit` on arrays, one call per epoch on a new permutation",
    "regcli_fixed": "regcli's tf.data pipeline with `reshuffle_each_iteration=False`: one order, repeated",
}


def render(results: dict[str, dict], meta: dict) -> str:
    """The markdown section: the distributions, the tests, and what they say."""
    lines = [
        SECTION,
        "",
        f"Written by `{meta['command']}` on {meta['date']} in {meta['elapsed'] / 60:.1f} min; "
        f"load average at start {meta['load_start']}, at end {meta['load_end']}."
        + (f" {meta['reused']} of the {meta['runs']} runs were an earlier run's, reused (`--results`)."
           if meta.get("reused") else ""),
        "",
        f"The seed template (`configs/quickstart.yaml`, early stopping off), {_seeds(meta['seeds'])} × "
        f"{meta['epochs']} epochs, TensorFlow, one split (`data.split_seed: {SPLIT_SEED}`); each seed's initial "
        "weights are the same on every side, only the feeding differs. Final-epoch validation loss (penalty "
        "included, as the issue measured; `val_data_loss` without it).",
        "",
        "| side | feeding | val_loss, mean ± std | val_data_loss, mean ± std | seeds |",
        "|---|---|---|---|---:|",
    ]
    for side, runs in results.items():
        loss = [r["val_loss"] for r in runs.values()]
        data = [r["val_data_loss"] for r in runs.values()]
        lines.append(f"| `{side}` | {SIDE_NOTES[side]} | {_mean_std(loss)} | {_mean_std(data)} | {len(loss)} |")
    return "\n".join(lines + pair_table(results) + [
        "",
        "*Paired*: seed i of one side against seed i of the other (same initial weights); a pair reads as "
        "different when its paired p < 0.05, the pooled row when its Welch p is. Every side sees every training row once per epoch, the partial last "
        "batch included; the sides differ in whether the order changes between epochs. `tests/test_feed.py` shows "
        "the rest exactly: regcli trains bit for bit like `model.fit` fed regcli's order epoch by epoch (its steps "
        "per execution and per-epoch clean evaluation change no weight), and plain `model.fit` on TensorFlow "
        "repeats one order once `keras.utils.set_random_seed` has run.",
        "",
    ])


def pair_table(results: dict[str, dict]) -> list[str]:
    """The comparisons of PAIRS that both sides ran, with Welch's and the paired t-test."""
    lines = ["", "| a vs b | what | mean(a) − mean(b) | Welch p | paired p | reads as |", "|---|---|---:|---:|---:|---|"]
    for a, b, what in PAIRS:
        if a in results and b in results:
            seeds = sorted(results[a].keys() & results[b].keys(), key=int)
            c = compare([results[a][s]["val_loss"] for s in seeds], [results[b][s]["val_loss"] for s in seeds])
            reading = "different" if c["paired_p"] < 0.05 else "no difference detected"
            lines.append(f"| `{a}` vs `{b}` | {what} | {c['diff']:+.4f} | {_p(c['welch_p'])} | "
                         f"{_p(c['paired_p'])} | {reading} |")
    if set(SIDES) <= results.keys():  # each regime's two sides pooled (equal in distribution within a regime)
        new, repeated = ([r["val_loss"] for side in pair for r in results[side].values()] for pair in POOLS)
        c = compare(new, repeated)
        reading = "different" if c["welch_p"] < 0.05 else "no difference detected"
        lines.append(f"| `{'` + `'.join(POOLS[0])}` vs `{'` + `'.join(POOLS[1])}` | a new order each epoch vs one "
                     f"order repeated, pooled | {c['diff']:+.4f} | {_p(c['welch_p'])} | | {reading} |")
    return lines


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _seeds(seeds: range) -> str:
    return f"{len(seeds)} seeds ({seeds.start}–{seeds.stop - 1})"


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def write_section(text: str, output: Path, section: str = SECTION, before: str = BEFORE) -> None:
    """Replaces `section` of `output` (this script's by default), placed before perf.py's section
    (which drops what follows it); sweep_costs.py writes its own section through it too."""
    current = output.read_text() if output.exists() else ""
    if section in current:
        head, rest = current.split(section, 1)
        after = rest.find("\n## ")
        current = head.rstrip() + ("\n\n" + rest[after + 1:] if after >= 0 else "\n")
    if before in current:
        head, tail = current.split(before, 1)
        output.write_text(head.rstrip() + "\n\n" + text + "\n" + before + tail)
    else:
        output.write_text((current.rstrip() + "\n\n" if current.strip() else "") + text)


# --------------------------------------------------------------------------------------
def run_sides(sides: list[str], seeds: range, epochs: int, jobs: int, log, keep: Path | None = None) -> dict:
    """Each side in its own subprocess (`jobs` at a time); their results, seed by seed (kept in `keep`)."""
    workdir = keep or Path(tempfile.mkdtemp(prefix="regcli-feed-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def one(side: str) -> tuple[str, dict]:
        out = workdir / f"{side}.json"
        argv = [sys.executable, __file__, "--worker", side, "--first-seed", str(seeds.start), "--seeds",
                str(len(seeds)), "--epochs", str(epochs), "--json", str(out)]
        proc = subprocess.run(argv, cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True, check=False)
        log("\n".join(line for line in proc.stderr.splitlines() if line.startswith("  ")))
        if proc.returncode != 0:
            raise SystemExit(f"side {side} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        wanted = {str(seed) for seed in seeds}
        return side, {k: v for k, v in json.loads(out.read_text()).items() if k in wanted}

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return dict(pool.map(one, sides))
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SEEDS} seeds x {QUICK_EPOCHS} epochs.")
    parser.add_argument("--seeds", type=int, help=f"How many seeds. Defaults to {DEFAULT_SEEDS}.")
    parser.add_argument("--first-seed", type=int, default=0, help="The first seed (to extend a run). Defaults to 0.")
    parser.add_argument("--epochs", type=int, help=f"Epochs per training. Defaults to {DEFAULT_EPOCHS}.")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"Comma-separated, of {', '.join(SIDES)}.")
    # Two at a time by default: a side's numbers do not depend on the load (op determinism), only the wall time.
    parser.add_argument("--jobs", type=int, default=2, help="Sides trained at the same time. Defaults to 2.")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--results", type=Path, help="Keep each side's per-seed results as DIR/<side>.json; "
                        "seeds already there are reused, not trained again.")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + (args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)))
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS)
    if args.worker:
        return worker(args.worker, seeds, epochs, args.json)
    sides = args.sides.split(",")
    if unknown := sorted(set(sides) - set(SIDES)):
        parser.error(f"--sides: unknown {', '.join(unknown)}. Known: {', '.join(SIDES)}.")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started, load_start = time.perf_counter(), _load()
    reused = sum(_reused(args.results, side, seeds, epochs) for side in sides) if args.results else 0
    log(f"feed_vs_fit: {len(sides)} sides x {len(seeds)} seeds x {epochs} epochs")
    results = run_sides(sides, seeds, epochs, max(1, args.jobs), log, args.results)
    meta = {"command": " ".join(["benchmarks/feed_vs_fit.py", *(sys.argv[1:] if argv is None else argv)]),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "elapsed": time.perf_counter() - started,
            "load_start": load_start, "load_end": _load(), "seeds": seeds, "epochs": epochs,
            "reused": reused, "runs": len(sides) * len(seeds)}
    text = render(results, meta)
    print(text)
    write_section(text, args.output)
    log(f"wrote the section {SECTION!r} of {args.output}")
    return 0


def _reused(results: Path, side: str, seeds: range, epochs: int) -> int:
    """How many of these seeds `results` already holds for `side` (the worker skips them)."""
    path = results / f"{side}.json"
    held, key = (json.loads(path.read_text()) if path.exists() else {}), run_key(epochs)
    return sum(held.get(str(seed), {}).get("key") == key for seed in seeds)


def run_key(epochs: int) -> str:
    """What a kept result must match to be reused: the epochs, regcli's source and this script's."""
    digest = hashlib.sha256(str(epochs).encode())
    for path in [*sorted((ROOT / "regcli").rglob("*.py")), Path(__file__).resolve()]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
