"""Sweep throughput (packed vs unpacked, --jobs 1 vs 2), memory, and training at scale.

    .venv/bin/python benchmarks/perf.py            # called by benchmarks/run.py (`make bench`)
    .venv/bin/python benchmarks/perf.py --quick    # 10-epoch sweeps, 2 scale epochs, no JAX

Writes (or replaces) the "Sweeps, memory and scale" section of docs/benchmarks.md. As in
run.py, both sides of every ratio run in this one process tree, minutes apart, on this
machine; every measurement is a fresh subprocess. Not a test: the numbers depend on the
machine and on what else runs on it (the load average is recorded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sweep_jobs  # noqa: E402 - the sibling script, importable once benchmarks/ is on the path

SECTION = "## Sweeps, memory and scale"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
PACK_GOAL, JOBS_GOAL = 4.0, 1.7
# The seed template's 256/128 MLP: forward multiply-adds per sample for 100 input features.
SCALE_MACS = 100 * 256 + 256 * 128 + 128 * 1


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------------------
# Sweep throughput
# --------------------------------------------------------------------------------------
def sweep_section(epochs: int, log) -> tuple[str, dict]:
    spec = sweep_jobs.pack_spec(epochs, "bench-pack")
    settings = [(1, False), (2, False), (1, True), (2, True)]
    runs = {}
    for jobs, pack in settings:  # one after the other, in one session: load drift moves all alike
        runs[(jobs, pack)] = sweep_jobs.run_spec(spec, jobs, pack=pack)
        log(f"  sweep --jobs {jobs} {'packed' if pack else '--no-pack'}: {runs[(jobs, pack)]['wall_seconds']:.1f} s")
    n = len(sweep_jobs.PACK_L2_VALUES)

    def per_min(key, what="wall_seconds"):
        return n / runs[key][what] * 60

    lines = [
        f"### Sweep throughput: {n} configurations (quickstart model, `model.l2` x `model.dropout: [0.0]`), "
        f"1 seed, {epochs} epochs, early stopping off",
        "",
        "*Whole command*: `regcli sweep` start to exit (worker start-up, TensorFlow import, aggregation, plots). "
        "*Trial phase*: first trial's config.yaml written to last trial's final status.json.",
        "",
        "| setting | whole command | trials/min | trial phase | trials/min (trial phase) |",
        "|---|---:|---:|---:|---:|",
    ]
    for (jobs, pack), r in runs.items():
        lines.append(
            f"| `--jobs {jobs}` {'packed (auto)' if pack else '`--no-pack`'} | {r['wall_seconds']:.1f} s | "
            f"{per_min((jobs, pack)):.1f} | {r['trial_phase_seconds']:.1f} s | {per_min((jobs, pack), 'trial_phase_seconds'):.1f} |"
        )
    fixed = runs[(1, True)]["wall_seconds"] - runs[(1, True)]["trial_phase_seconds"]
    ceiling = runs[(1, False)]["wall_seconds"] / fixed
    needed = runs[(1, False)]["wall_seconds"] / PACK_GOAL - fixed
    sep_epoch = statistics.mean(runs[(1, False)]["epoch_medians"])
    pack_epoch = statistics.median(runs[(1, True)]["epoch_medians"])
    epoch_ratio = per_epoch_ratio(runs[(1, False)], runs[(1, True)])
    matmul = tower_matmul()
    ratios = {
        "ceiling_j1": ceiling,
        "pack_j1": per_min((1, True)) / per_min((1, False)),
        "pack_j2": per_min((2, True)) / per_min((2, False)),
        "pack_j1_phase": per_min((1, True), "trial_phase_seconds") / per_min((1, False), "trial_phase_seconds"),
        "pack_j2_phase": per_min((2, True), "trial_phase_seconds") / per_min((2, False), "trial_phase_seconds"),
        "jobs": runs[(1, False)]["wall_seconds"] / runs[(2, False)]["wall_seconds"],
        "jobs_phase": runs[(1, False)]["trial_phase_seconds"] / runs[(2, False)]["trial_phase_seconds"],
    }
    lines += [
        "",
        "| goal | measured (whole command; trial phase) | met (whole command) |",
        "|---|---:|:-:|",
        f"| packed ≥ {PACK_GOAL:g}× the trials/min of unpacked, `--jobs 1` | {ratios['pack_j1']:.2f}×; "
        f"{ratios['pack_j1_phase']:.2f}× | {mark(ratios['pack_j1'] >= PACK_GOAL)} |",
        f"| packed ≥ {PACK_GOAL:g}× the trials/min of unpacked, `--jobs 2` | {ratios['pack_j2']:.2f}×; "
        f"{ratios['pack_j2_phase']:.2f}× | {mark(ratios['pack_j2'] >= PACK_GOAL)} |",
        f"| unpacked `--jobs 2` ≥ {JOBS_GOAL:g}× faster than `--jobs 1` | {ratios['jobs']:.2f}×; "
        f"{ratios['jobs_phase']:.2f}× | {mark(ratios['jobs'] >= JOBS_GOAL)} |",
        "",
        "With packing, `--jobs 2` splits the 8 trials into 2 packs of 4 (one per worker); `--jobs 1` trains one pack of 8.",
        "",
        "**What packing can and cannot share.** A pack of 8 same-shape towers is one `TowerStack`: one trace "
        "(instead of 8) and one batched kernel per block, so its *trial phase* is several times shorter than "
        "8 separate trials'. The *whole command* also holds costs that no packing shares: starting the worker "
        "and importing TensorFlow before the first trial, and aggregation with the sweep's plots after the last. "
        f"In the packed `--jobs 1` sweep above these are {fixed:.1f} s of {runs[(1, True)]['wall_seconds']:.1f} s: "
        f"even a pack whose trial phase took no time at all would be {ceiling:.2f}× the unpacked sweep's trials/min "
        "(the unpacked whole command over the packed one's time outside its trial phase)"
        + (
            f", so the {PACK_GOAL:g}× goal is out of reach for this sweep's whole command on this machine, whatever "
            "packing does. "
            if ceiling < PACK_GOAL
            else f"; {PACK_GOAL:g}× would need the packed trial phase at {needed:.1f} s or less (measured: "
            f"{runs[(1, True)]['trial_phase_seconds']:.1f} s). "
        )
        + "Inside the trial phase, a pack still pays once what 8 trials pay 8 times (tracing: its first epoch "
        f"took {statistics.median(runs[(1, True)]['first_epochs']):.1f} s, a separate trial's "
        f"{statistics.median(runs[(1, False)]['first_epochs']):.1f} s), and per tower what no packing shares: each trial's run directory (model, diagnosis, "
        "learning-curve plot: ~0.3 s a trial) and the arithmetic. At batch 32 the arithmetic is much of a "
        f"pack's epoch: 8 towers' batched forward and backward matmuls alone take {matmul['8']:.1f} ms an epoch "
        f"here, {matmul['8'] / matmul['1']:.1f}× the {matmul['1']:.1f} ms of 1 tower "
        "(`benchmarks/tower_matmul.py`: batching gains little at these sizes), where one separate model's "
        f"whole epoch takes {sep_epoch * 1000:.0f} ms; the pack's epoch took {pack_epoch * 1000:.0f} ms, 8 separate "
        f"ones {8 * sep_epoch * 1000:.0f} ms ({epoch_ratio:.2f}×; median `seconds` of epochs 2..N). "
        "With `--jobs 2`, unpacked trials already use both cores while a pack shares one model's steps, so "
        "the packed gain over the same jobs is smaller.",
    ]
    return "\n".join(lines), ratios


def per_epoch_ratio(unpacked: dict, packed: dict) -> float:
    """One epoch of every trial: the separate trials' typical epochs summed, over the pack's (its towers share it)."""
    return sum(unpacked["epoch_medians"]) / statistics.median(packed["epoch_medians"])


def unpacked_and_packed(spec: dict, label: str, log) -> tuple[dict[bool, dict], float, float]:
    """`spec` swept with `--jobs 1`, `--no-pack` then packed: the runs, and packed's whole-command
    and trial-phase speed-ups."""
    runs = {}
    for pack in (False, True):
        runs[pack] = sweep_jobs.run_spec(spec, 1, pack=pack)
        log(f"  {label} sweep --jobs 1 {'packed' if pack else '--no-pack'}: {runs[pack]['wall_seconds']:.1f} s")
    whole = runs[False]["wall_seconds"] / runs[True]["wall_seconds"]
    phase = runs[False]["trial_phase_seconds"] / runs[True]["trial_phase_seconds"]
    return runs, whole, phase


def tower_matmul() -> dict[str, float]:
    """`benchmarks/tower_matmul.py` in a fresh process: ms per epoch of 1 and 8 towers' matmuls."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tower_matmul.py")],
        capture_output=True, text=True, env=ENV, check=True,
    )
    return json.loads(proc.stdout)


def long_section(epoch_counts: list[int], log) -> str:
    """Packed vs unpacked, --jobs 1, with longer trials: the per-epoch speed-up counts for more."""
    rows, per_epoch = [], []
    for epochs in epoch_counts:
        runs, whole, phase = unpacked_and_packed(sweep_jobs.pack_spec(epochs, "bench-pack-long"), f"{epochs}-epoch", log)
        epoch = per_epoch_ratio(runs[False], runs[True])
        per_epoch.append(epoch)
        rows.append(
            f"| {epochs} | {runs[False]['wall_seconds']:.1f} s | {runs[True]['wall_seconds']:.1f} s | **{whole:.2f}×** "
            f"{mark(whole >= PACK_GOAL)} | {runs[False]['trial_phase_seconds']:.1f} s | "
            f"{runs[True]['trial_phase_seconds']:.1f} s | **{phase:.2f}×** {mark(phase >= PACK_GOAL)} | {epoch:.2f}× |"
        )
    return "\n".join([
        "#### The same 8 configurations with longer trials, `--jobs 1`",
        "",
        "| epochs | whole, `--no-pack` | whole, packed | ratio | trial phase, `--no-pack` | trial phase, packed | ratio | per epoch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "*Per epoch*: the 8 unpacked trials' typical epochs (median `seconds` of epochs 2..N in each history.csv) "
        "summed, over the pack's typical epoch. Packing's gain per epoch "
        f"({min(per_epoch):.1f}-{max(per_epoch):.1f}×) is what longer trials approach; what each trial and "
        "the command pay once (tracing, run-directory writes, worker start-up, aggregation) weighs less the "
        "longer the trials train.",
    ])


def seeds_section(epochs: int, seed_counts: list[int], log) -> str:
    """8 configurations x more and more seeds, --jobs 1: one pack per seed, so a worker's later packs
    reuse its traced model; the marginal cost of one more seed gives the ratio long sweeps tend to."""
    from regcli.sweep.executors import TRIALS_PER_WORKER
    from regcli.sweep.worker import PACK_RECYCLE_COST

    rows, measured = [], {}
    for seeds in seed_counts:
        spec = sweep_jobs.pack_spec(epochs, "bench-pack-seeds")
        spec["seeds"] = list(range(seeds))
        n = len(sweep_jobs.PACK_L2_VALUES) * seeds  # one pack of 8 a seed
        runs, whole, phase = unpacked_and_packed(spec, f"{n}-trial", log)
        measured[seeds] = runs
        workers = (math.ceil(n / TRIALS_PER_WORKER), math.ceil(seeds * PACK_RECYCLE_COST / TRIALS_PER_WORKER))
        rows.append(
            f"| {seeds} | {n} | {runs[False]['wall_seconds']:.1f} s ({n / runs[False]['wall_seconds'] * 60:.0f}/min) | "
            f"{runs[True]['wall_seconds']:.1f} s ({n / runs[True]['wall_seconds'] * 60:.0f}/min) | **{whole:.2f}×** "
            f"{mark(whole >= PACK_GOAL)} | {runs[False]['trial_phase_seconds']:.1f} s | {runs[True]['trial_phase_seconds']:.1f} s | "
            f"**{phase:.2f}×** {mark(phase >= PACK_GOAL)} | {workers[0]} / {workers[1]} |"
        )
    lo, hi = min(seed_counts), max(seed_counts)
    extra_trials = len(sweep_jobs.PACK_L2_VALUES) * (hi - lo)
    marginal = {pack: (measured[hi][pack]["wall_seconds"] - measured[lo][pack]["wall_seconds"]) / extra_trials
                for pack in (False, True)}
    limit = marginal[False] / marginal[True]
    return "\n".join([
        f"#### The same 8 configurations over several seeds ({epochs} epochs), `--jobs 1`",
        "",
        "| seeds | trials | whole, `--no-pack` | whole, packed | ratio | trial phase, `--no-pack` | trial phase, packed | ratio | workers (unpacked / packed) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Each seed is one pack of 8. Workers are recycled every {TRIALS_PER_WORKER} trials, a pack costing "
        f"{PACK_RECYCLE_COST}, and a worker's packs after its first reuse its fused model and traced steps (one "
        "seed's pack has the shape of the next), so only a worker's first pack pays for tracing. Each worker imports "
        "Keras and TensorFlow as it starts, and a replacement is started while the worker it replaces trains its "
        f"last task. **Marginal cost** of one more trial, from the {lo}- and {hi}-seed sweeps: "
        f"{marginal[False]:.2f} s unpacked, {marginal[True]:.2f} s packed (an eighth of a pack), so the whole "
        f"command's trials/min ratio tends to **{limit:.2f}×** for long sweeps ({mark(limit >= PACK_GOAL)} against "
        f"the {PACK_GOAL:g}× goal); what a sweep pays once (worker start-up, the first pack's tracing, aggregation) "
        "weighs less the more trials it runs.",
    ])


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------
def maxrss_mib(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """Peak RSS (ru_maxrss of this child alone, via wait4) and wall seconds of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def twenty_in_a_row(out: Path, n: int, backend: str) -> None:
    """(In a child process.) Trains `n` small models one after another through run_experiment; RSS after each."""
    from regcli.experiment import run_experiment
    from regcli.spec import load_experiment_spec

    spec_path = out / "small.yaml"
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    raw["training"]["epochs"] = 3
    raw["backend"] = backend
    spec_path.write_text(yaml.safe_dump(raw))
    rss = []
    for i in range(n):
        spec = load_experiment_spec(spec_path).model_copy(update={"seed": i})
        run_experiment(spec, out=out / "runs", name=f"m{i}")
        rss.append(rss_mib())
    (out / "rss.json").write_text(json.dumps(rss))


def packs_in_a_row(out: Path, n: int) -> None:
    """(In a child process.) Trains `n` packs of the 8 packing-benchmark configurations (3 epochs,
    seeds 0..n-1) one after another through run_packed, as a sweep worker does; RSS after each."""
    from regcli.experiment import run_packed
    from regcli.spec import load_yaml_file, validate_experiment

    base = load_yaml_file(ROOT / "configs" / "quickstart.yaml")  # regcli's loader: 1e-3 is a float
    base["training"].update(epochs=3, early_stopping={"enabled": False})
    rss = []
    for seed in range(n):
        specs = [validate_experiment({**base, "seed": seed, "model": {**base["model"], "l2": l2, "dropout": 0.0}},
                                     out, source="bench") for l2 in sweep_jobs.PACK_L2_VALUES]
        run_packed(specs, [out / "packs" / f"s{seed}" / f"t{k}" for k in range(len(specs))])
        rss.append(rss_mib())
    (out / "rss.json").write_text(json.dumps(rss))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_section(quick: bool, log) -> str:
    from regcli.sweep.executors import TRIALS_PER_WORKER
    from regcli.sweep.worker import PACK_RECYCLE_COST

    with tempfile.TemporaryDirectory(prefix="regcli-bench-mem-") as tmp:
        peak, seconds = maxrss_mib([sys.executable, "-m", "regcli", "train", "configs/quickstart.yaml",
                                    "--out", tmp, "--quiet"])
        log(f"  regcli train peak RSS: {peak:.0f} MiB ({seconds:.0f} s)")
        series = {}
        for backend in ("tensorflow",) if quick else ("tensorflow", "jax"):
            out = Path(tmp) / backend
            out.mkdir()
            code = (f"import sys, pathlib; sys.path.insert(0, 'benchmarks'); import perf; "
                    f"perf.twenty_in_a_row(pathlib.Path({str(out)!r}), 20, {backend!r})")
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            series[backend] = json.loads((out / "rss.json").read_text())
            log(f"  20 models in a row ({backend}): {series[backend][0]:.0f} -> {series[backend][-1]:.0f} MiB")
        out = Path(tmp) / "packs"
        out.mkdir()
        code = f"import sys, pathlib; sys.path.insert(0, 'benchmarks'); import perf; perf.packs_in_a_row(pathlib.Path({str(out)!r}), 8)"
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        packs = json.loads((out / "rss.json").read_text())
        log(f"  8 packs of 8 in a row: {packs[0]:.0f} -> {packs[-1]:.0f} MiB")
    lines = [
        "### Memory",
        "",
        f"Peak RSS (`ru_maxrss` of the child) of one `regcli train configs/quickstart.yaml` (100 epochs, early "
        f"stopping): **{peak:.0f} MiB** ({seconds:.0f} s).",
        "",
        "One process training 20 quickstart models (3 epochs each, seeds 0-19) in a row through "
        "`regcli.experiment.run_experiment` (the spec's `backend:` set to each backend); RSS after each model:",
        "",
        "| backend | after model 1 | after 5 | after 10 | after 20 | growth per model (models 5-20) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for backend, rss in series.items():
        growth = (rss[19] - rss[4]) / 15
        lines.append(f"| {backend} | {rss[0]:.0f} MiB | {rss[4]:.0f} MiB | {rss[9]:.0f} MiB | {rss[19]:.0f} MiB | "
                     f"{growth:+.1f} MiB |")
    tf_growth = (series["tensorflow"][19] - series["tensorflow"][4]) / 15
    pack_growth = (packs[-1] - packs[0]) / (len(packs) - 1)
    bound = series["tensorflow"][0] + TRIALS_PER_WORKER * max(tf_growth, 0)
    pack_bound = packs[0] + (TRIALS_PER_WORKER // PACK_RECYCLE_COST - 1) * max(pack_growth, 0)
    lines += [
        "",
        f"Packs: one process training {len(packs)} packs of the 8 packing-benchmark configurations (3 epochs, seeds "
        f"0-{len(packs) - 1}) in a row through `regcli.experiment.run_packed`, as a sweep worker does (its packs after the "
        f"first reuse the traced model): **{packs[0]:.0f} MiB** after pack 1, {packs[len(packs) // 2 - 1]:.0f} MiB "
        f"after pack {len(packs) // 2}, {packs[-1]:.0f} MiB after pack {len(packs)}: **{pack_growth:+.1f} MiB** a "
        f"pack of 8 trials after the first, against {tf_growth:+.1f} MiB a separate trial (TensorFlow, above).",
        "",
        f"How a sweep bounds it: a local worker trains at most `TRIALS_PER_WORKER` = {TRIALS_PER_WORKER} trials "
        f"(a pack costs `PACK_RECYCLE_COST` = {PACK_RECYCLE_COST}), then a fresh process replaces it; a Ray worker "
        f"runs at most {TRIALS_PER_WORKER} trial tasks or {TRIALS_PER_WORKER // PACK_RECYCLE_COST} pack tasks. At "
        f"the growth measured here a worker's RSS stays under about {bound:.0f} MiB (first model + "
        f"{TRIALS_PER_WORKER} × growth) training separate trials and about {pack_bound:.0f} MiB training packs, "
        f"however many trials the sweep has. {mark(True)} bounded (recycled).",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# At scale
# --------------------------------------------------------------------------------------
def matmul_flops(seconds: float = 3.0) -> float:
    """float32 FLOP/s of numpy matmuls of the model's shapes at batch 256 (all cores), best of the layers."""
    import numpy as np

    rng = np.random.default_rng(0)
    best = 0.0
    for k, m in ((100, 256), (256, 128), (256, 256)):
        a = rng.standard_normal((256, k), dtype=np.float32)
        b = rng.standard_normal((k, m), dtype=np.float32)
        a @ b
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            a @ b
            n += 1
        best = max(best, 2 * 256 * k * m * n / (time.perf_counter() - started))
    return best


def scale_section(epochs: int, log) -> str:
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    raw["data"] = {"source": "synthetic_classification", "params": {"n_samples": 200000, "n_features": 100}}
    raw["training"].update(epochs=epochs, batch_size=256, early_stopping={"enabled": False})
    raw["name"] = "scale"
    sides = {}
    with tempfile.TemporaryDirectory(prefix="regcli-bench-scale-") as tmp:
        spec = Path(tmp) / "scale.yaml"
        spec.write_text(yaml.safe_dump(raw))
        env = {**ENV, "KERAS_BACKEND": "tensorflow"}
        subprocess.run([sys.executable, "-m", "regcli", "train", str(spec), "--out", tmp, "--quiet"], cwd=ROOT,
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = next(Path(tmp).glob("scale-*"))
        summary = json.loads((run / "summary.json").read_text())
        import pandas as pd

        sides["regcli"] = list(pd.read_csv(run / "history.csv")["seconds"])
        n_train = summary["n_train"]
        subprocess.run([sys.executable, "benchmarks/keras_baselines.py", str(spec), "--feed", "numpy", "--json",
                        f"{tmp}/keras.json"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        sides["plain Keras on numpy"] = json.loads(Path(f"{tmp}/keras.json").read_text())["seconds"]
    flops = matmul_flops()
    per_sample = 2 * SCALE_MACS * 3
    lines = [
        f"### At scale: synthetic_classification 200,000 × 100 ({n_train} training rows), the template's "
        f"256/128 BN MLP, batch 256, {epochs} epochs, TensorFlow",
        "",
        f"Machine's float32 dense matmul (numpy, 256×k @ k×m at the model's shapes, all cores): "
        f"**{flops / 1e9:.1f} GFLOP/s**. Model: {SCALE_MACS:,} forward multiply-adds per sample, so "
        f"2 × MACs × 3 (forward + backward) = {per_sample:,} FLOP per training sample.",
        "",
        "| side | epoch (median of epochs 2..N; epoch 1 if only 1) | training samples/s | fraction of matmul FLOP/s |",
        "|---|---:|---:|---:|",
    ]
    rates = {}
    for name, seconds in sides.items():
        steady = statistics.median(seconds[1:] or seconds)
        rates[name] = n_train / steady
        lines.append(f"| {name} | {steady:.2f} s | {rates[name]:,.0f} | {rates[name] * per_sample / flops:.1%} |")
        log(f"  scale {name}: {steady:.2f} s/epoch")
    ratio = rates["regcli"] / rates["plain Keras on numpy"]
    lines += [
        "",
        f"regcli / plain Keras samples/s: **{ratio:.2f}×** (an epoch includes validation for both; regcli's "
        f"history `seconds` excludes its end-of-epoch clean-metrics pass, like run.py's per-epoch numbers).",
    ]
    return "\n".join(lines)


def render(quick: bool, log) -> str:
    started = time.perf_counter()
    load_start = load()
    parts = [
        SECTION,
        "",
        f"Written by `benchmarks/perf.py{' --quick' if quick else ''}` on "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; load average (1 / 5 / 15 min) at start "
        f"{load_start}.",
        "",
    ]
    sweep_text, _ = sweep_section(10 if quick else 20, log)
    parts += [sweep_text, ""]
    if not quick:
        parts += [long_section([100, 300], log), "", seeds_section(20, [3, 6], log), ""]
    parts += [memory_section(quick, log), "", scale_section(2 if quick else 3, log), ""]
    parts.insert(3, f"Took {(time.perf_counter() - started) / 60:.1f} min; load average at end {load()}.")
    return "\n".join(parts)


def write_section(text: str, output: Path) -> None:
    """Replaces this script's section of `output` (or appends it)."""
    current = output.read_text() if output.exists() else ""
    head = current.split(SECTION)[0].rstrip()
    output.write_text((head + "\n\n" if head else "") + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10-epoch sweeps, 2 scale epochs, TensorFlow only.")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    write_section(render(args.quick, log), args.output)
    log(f"wrote the section {SECTION!r} of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
