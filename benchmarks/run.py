"""regcli's benchmarks: start-up, per-epoch time and total wall time, against plain Keras.

    .venv/bin/python benchmarks/run.py               # `make bench`: everything, 3 rounds (5-9 min on 2 cores),
                                                     # then benchmarks/perf.py (sweeps, memory, scale: ~6 min)
                                                     # and benchmarks/feed_vs_fit.py (feeding vs model.fit, ~16 min)
    .venv/bin/python benchmarks/run.py --quick       # 2 rounds, 10 epochs, no JAX (2-3 min)
    .venv/bin/python benchmarks/run.py --repeats 5   # more rounds, tighter medians
    .venv/bin/python benchmarks/run.py --cases regcli_tf,tfdata_tf,tfdata_det_tf --output /tmp/ab.md

Both sides of every comparison run in this one process tree, on this machine, in the same
session: each round runs every case once, in an order rotated from round to round
(A B C, B C A, C A B, ...), and ratios are taken within a round, so drift in the machine's
load moves both sides alike. Every measurement is a fresh subprocess, so imports and JIT
warm-ups never leak from one into another. The results go to docs/benchmarks.md: machine,
versions, date, median and min-max over the rounds, ratios, and the goals with marks
computed from the numbers.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = "configs/quickstart.yaml"
# 30 epochs: epoch 1 (tracing/compiling) is left out, which leaves 29 steady-state epochs per run.
DEFAULT_EPOCHS = 30
QUICK_EPOCHS = 10
# One round of every case takes 1.7-2.7 min on the 2-core reference machine, depending on its
# load (a JAX process spends 5-15 s compiling), so 3 rounds keep `make bench` under 10 minutes.
DEFAULT_REPEATS = 3
QUICK_REPEATS = 2
# A case that runs longer than this is recorded as failed rather than stalling the whole run.
CASE_TIMEOUT_S = 300
# "No slower than" allows this much: on a shared 2-core machine, two runs of the same pipeline
# differ by 10-30 % per epoch, so a strict <= 1.00 would be a coin flip between equal pipelines.
NO_SLOWER_TOLERANCE = 1.05
STARTUP_CASES = ("import_tf", "help", "help_pyc", "validate", "python")

TF = {"KERAS_BACKEND": "tensorflow"}
JAX = {"KERAS_BACKEND": "jax"}
REGCLI_TRAIN = ("{regcli}", "train", "{spec}", "--out", "{out}", "--name", "bench", "--quiet")
BASELINE = ("{python}", "benchmarks/keras_baselines.py", "{spec}", "--json", "{out}/result.json", "--feed")


@dataclass(frozen=True)
class Case:
    """One command line, run in a fresh subprocess each round, and how to read its results."""

    key: str
    label: str
    argv: tuple[str, ...]  # {python}, {regcli}, {spec} and {out} are filled in per run
    env: dict[str, str] = field(default_factory=dict)
    parse: Callable[[Path], dict] | None = None  # reads the numbers the run left in its out dir
    bytecode_cache: bool = False  # with a warm bytecode cache of our own (PYTHONPYCACHEPREFIX)
    extra: bool = False  # a diagnostic: runs only when named in --cases


def parse_regcli_run(out: Path) -> dict:
    """Per-epoch `seconds` from history.csv and the fit/run times from summary.json."""
    runs = sorted(out.glob("*/summary.json"))
    if not runs:
        raise ValueError(f"no run directory with a summary.json under {out}")
    run = runs[-1].parent
    summary = json.loads((run / "summary.json").read_text())
    with open(run / "history.csv", newline="") as fh:
        seconds = [float(row["seconds"]) for row in csv.DictReader(fh)]
    return epoch_numbers(seconds, summary["fit_seconds"]) | {
        "run_seconds": summary["seconds"],  # run directory created -> training done
        "val_accuracy": summary["metrics"]["val"].get("accuracy"),
    }


def parse_baseline_run(out: Path) -> dict:
    result = json.loads((out / "result.json").read_text())
    return epoch_numbers(result["seconds"], result["fit_seconds"]) | {
        "val_accuracy": result["final_val_accuracy"]
    }


def epoch_numbers(seconds: list[float], fit_seconds: float) -> dict:
    """The per-epoch views of one run; epoch 1 (tracing/compiling) is left out of the steady state."""
    n = len(seconds)
    return {
        "epochs": n,
        "epoch_s": statistics.median(seconds[1:] or seconds),  # history.csv `seconds`, epochs 2..N
        "first_epoch_s": seconds[0],
        # Everything fit() does after epoch 1 ends, per epoch: training, validation and every
        # callback (for regcli: the clean-metrics evaluation, history.csv, the resume checkpoint).
        "allin_epoch_s": (fit_seconds - seconds[0]) / max(1, n - 1),
        "fit_per_epoch_s": fit_seconds / max(1, n),  # summary.json's fit_seconds / epochs, compile included
        "outside_epoch_s": (fit_seconds - sum(seconds)) / max(1, n),  # in fit() but outside `seconds`
        "fit_s": fit_seconds,
    }


CASES = (
    Case("import_tf", 'python -c "import tensorflow"', ("{python}", "-c", "import tensorflow"), TF),
    Case("help", "regcli --help", ("{regcli}", "--help")),
    Case("help_pyc", "regcli --help (bytecode cached)", ("{regcli}", "--help"), bytecode_cache=True),
    Case("validate", f"regcli validate {QUICKSTART}", ("{regcli}", "validate", QUICKSTART)),
    Case("python", 'python -c "pass" (the interpreter alone)', ("{python}", "-c", "pass")),
    Case("regcli_tf", "(a) regcli train", REGCLI_TRAIN, parse=parse_regcli_run),
    Case("numpy_tf", "(b) plain Keras, numpy arrays", (*BASELINE, "numpy"), TF, parse_baseline_run),
    Case("tfdata_tf", "(c) plain Keras, hand-tuned tf.data", (*BASELINE, "tfdata"), TF, parse_baseline_run),
    Case(
        "tfdata_det_tf",
        "(c') = (c) + TF op determinism, as regcli runs",
        (*BASELINE, "tfdata", "--deterministic"),
        TF,
        parse_baseline_run,
        extra=True,
    ),
    Case(
        "regcli_jax",
        "(a) regcli train --backend jax",
        (*REGCLI_TRAIN, "--backend", "jax"),
        parse=parse_regcli_run,
    ),
    Case("numpy_jax", "(b) plain Keras on JAX, numpy arrays", (*BASELINE, "numpy"), JAX, parse_baseline_run),
    Case(
        "quickstart",
        f"regcli train {QUICKSTART}",
        ("{regcli}", "train", QUICKSTART, "--out", "{out}", "--name", "bench", "--quiet"),
        parse=parse_regcli_run,
    ),
)


# ---------------------------------------------------------------------------------------------
# Running: rounds of every case, in a rotated order.


@dataclass
class Context:
    """What every run needs: where to write, which spec, which executables."""

    workdir: Path
    spec: Path  # the seed template with a fixed number of epochs and early stopping off
    pycache: Path  # the bytecode cache of the "bytecode cached" start-up case
    python: str = sys.executable
    regcli: tuple[str, ...] = ()

    def argv(self, case: Case, out: Path) -> list[str]:
        argv: list[str] = []
        for token in case.argv:
            if token == "{regcli}":
                argv += self.regcli
            else:
                argv.append(token.format(python=self.python, spec=self.spec, out=out))
        return argv


def run_case(case: Case, ctx: Context, tag: str) -> dict:
    """Runs one case in a fresh subprocess; returns its wall and CPU time and parsed numbers (or an error)."""
    out = ctx.workdir / f"{case.key}-{tag}"
    out.mkdir(parents=True)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ chatter; regcli sets the same itself
    env.update(case.env)
    if case.bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(ctx.pycache)
    load1 = os.getloadavg()[0]
    cpu_before = children_cpu()
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            ctx.argv(case, out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=CASE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CASE_TIMEOUT_S} s", "load1": load1}
    result = {"wall_s": time.perf_counter() - started, "cpu_s": children_cpu() - cpu_before, "load1": load1}
    if proc.returncode != 0:
        return result | {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    if case.parse is not None:
        try:
            result |= case.parse(out)
        except (OSError, KeyError, ValueError) as exc:
            result["error"] = f"could not read its results: {exc}"
    shutil.rmtree(out, ignore_errors=True)
    return result


def children_cpu() -> float:
    """User + system CPU seconds of every finished child so far (each case is waited for in turn)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_rounds(
    cases: list[Case], ctx: Context, repeats: int, log: Callable[[str], None]
) -> dict[str, list[dict]]:
    """`repeats` rounds; each runs every case once, the order rotated by one from round to round."""
    results: dict[str, list[dict]] = {c.key: [] for c in cases}
    # One untimed run of each start-up command first: the page cache (and our bytecode cache)
    # are then warm, so every timed start-up is the one a user sees from their second call on.
    for case in cases:
        if case.key in STARTUP_CASES:
            run_case(case, ctx, "warmup")
    for r in range(repeats):
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            res = run_case(case, ctx, str(r)) | {"round": r}
            results[case.key].append(res)
            shown = res.get("error") or f"{res['wall_s']:.2f} s" + (
                f", epoch {res['epoch_s'] * 1000:.1f} ms" if "epoch_s" in res else ""
            )
            log(f"[round {r + 1}/{repeats}] {case.label}: {shown}")
    return results


def write_template(ctx: Context, epochs: int) -> None:
    """The seed template with early stopping off and a fixed number of epochs, every default filled in."""
    sets = [f"training.epochs={epochs}", "training.early_stopping.enabled=false"]
    argv = [*ctx.regcli, "validate", QUICKSTART, *(a for s in sets for a in ("--set", s))]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")
    ctx.spec.write_text(proc.stdout)


# ---------------------------------------------------------------------------------------------
# Statistics and goals.

NAN = float("nan")


@dataclass(frozen=True)
class Stat:
    """A median over rounds with the min-max of the values it summarizes."""

    median: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        if not values:
            return cls(NAN, NAN, NAN, 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, unit: str = "s", scale: float = 1.0, digits: int = 2) -> str:
        if self.n == 0:
            return "n/a"
        sep = "" if unit in ("", "×") else " "
        text = f"{self.median * scale:.{digits}f}{sep}{unit}"
        if self.n > 1 and self.lo != self.hi:
            text += f" ({self.lo * scale:.{digits}f}–{self.hi * scale:.{digits}f})"
        return text


def stat(results: dict[str, list[dict]], key: str, metric: str) -> Stat:
    return Stat.of(
        [r[metric] for r in results.get(key, []) if "error" not in r and r.get(metric) is not None]
    )


def ratio(results: dict[str, list[dict]], a: str, b: str, metric: str) -> Stat:
    """a / b within each round (the two ran minutes apart at most), summarized over the rounds.

    Pairing by round cancels most of the drift in the machine's load, which moves both sides
    alike; a ratio of the two overall medians would not.
    """
    other = {r["round"]: r.get(metric) for r in results.get(b, []) if "error" not in r}
    return Stat.of(
        [
            r[metric] / other[r["round"]]
            for r in results.get(a, [])
            if "error" not in r and r.get(metric) is not None and other.get(r["round"])
        ]
    )


@dataclass(frozen=True)
class Goal:
    text: str
    measured: Stat
    unit: str
    ok: Callable[[float], bool]

    @property
    def met(self) -> bool | None:  # None: not measured in this run
        return self.ok(self.measured.median) if self.measured.n else None

    @property
    def measured_text(self) -> str:
        m = self.measured
        if not m.n:
            return "n/a"
        return f"{m.median:.2f}{self.unit}" + (f" (rounds: {m.lo:.2f}–{m.hi:.2f})" if m.n > 1 else "")

    @property
    def mark(self) -> str:
        return {True: "✅", False: "❌", None: "not measured"}[self.met]


def goals(results: dict[str, list[dict]]) -> list[Goal]:
    out = [
        Goal(
            "`regcli --help` under a quarter of `import tensorflow`",
            ratio(results, "help", "import_tf", "wall_s"),
            "× the import's wall time",
            lambda m: m < 0.25,
        )
    ]
    for metric, what in (("epoch_s", "history.csv `seconds`"), ("allin_epoch_s", "all-in")):
        out.append(
            Goal(
                f"TF: regcli ≥ 3× faster per epoch than plain Keras on numpy ({what})",
                ratio(results, "numpy_tf", "regcli_tf", metric),
                "× faster",
                lambda m: m >= 3.0,
            )
        )
        out.append(
            Goal(
                f"TF: regcli no slower per epoch than hand-tuned tf.data ({what}; ≤ {NO_SLOWER_TOLERANCE:.2f}×)",
                ratio(results, "regcli_tf", "tfdata_tf", metric),
                "× its time",
                lambda m: m <= NO_SLOWER_TOLERANCE,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# The machine and the versions.


def machine() -> dict[str, str]:
    def first(path: str, prefix: str) -> str | None:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return None
        return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(prefix)), None)

    mem_kib = first("/proc/meminfo", "MemTotal")
    return {
        "CPU": first("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores (logical / usable by this process)": f"{os.cpu_count()} / {len(os.sched_getaffinity(0))}",
        "RAM": f"{int(mem_kib.split()[0]) / 1024**2:.1f} GiB" if mem_kib else "unknown",
        "OS": platform.platform(),
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tensorflow", "keras", "jax", "jaxlib", "numpy", "regcli"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def source_fingerprint() -> dict[str, str]:
    """A hash per regcli source file: tells whether (and where) the code changed while the benchmark ran."""
    return {
        str(path.relative_to(ROOT)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((ROOT / "regcli").rglob("*.py"))
    }


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------
# The report.


def render(results: dict[str, list[dict]], cases: dict[str, Case], meta: dict) -> str:
    def s(key: str, metric: str) -> Stat:
        return stat(results, key, metric)

    def ms(st: Stat) -> str:
        return st.fmt("ms", 1000, 1)

    epochs = meta["epochs"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{meta['command']}` on {meta['date']} in {meta['elapsed'] / 60:.1f} min. Do not edit by "
        "hand: rerun `make bench` (or `.venv/bin/python benchmarks/run.py --quick` for a short check).",
        "",
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in meta["machine"].items()],
        f"| load average (1 / 5 / 15 min) at start; at end | {meta['load_start']}; {meta['load_end']} |",
        *[f"| {k} | {v} |" for k, v in meta["versions"].items()],
        f"| PYTHONDONTWRITEBYTECODE | {meta['nobytecode']} |",
        f"| regcli source (sha256 over regcli/**/*.py) | {source_note(*meta['source'])} |",
        "",
        "## How measured",
        "",
        f"`benchmarks/run.py` ran {meta['repeats']} round(s); each round runs every case below once, in an order "
        "rotated by one from round to round. Each case is a fresh subprocess (no import or JIT warm-up leaks "
        "between cases); the start-up commands get one untimed warm-up run first (warm page cache). Wall times "
        "are taken around `subprocess.run`, CPU times from the children's `getrusage`. Per-epoch numbers train "
        f"the seed template (`{QUICKSTART}`: breast_cancer, 256/128, BatchNorm, dropout 0.2, L2 1e-4, batch 32, "
        f"Adam 1e-3) with early stopping off and {epochs} epochs: `regcli validate --set` writes that spec once "
        "and every side reads it. regcli's history.csv `seconds` is the wall time from `on_epoch_begin` to "
        "`on_epoch_end` (training + validation), taken *before* regcli's extra clean-metrics evaluation; the "
        "plain-Keras baselines (`benchmarks/keras_baselines.py`: the same rows, layers, optimizer and metrics) "
        "time the same window with a callback. Epoch 1 (tracing/compiling) is left out: a run's *epoch* is the "
        "median of epochs 2..N. *All-in* is everything `fit()` does after epoch 1, per epoch, callbacks "
        "included, which for regcli adds what it does at each epoch's end (the clean-metrics evaluation, the "
        "history.csv write, the resume checkpoint); it also carries, spread over epochs 2..N, any one-time work "
        "done at the end of epoch 1 (on JAX, compiling regcli's clean-metrics evaluation). Tables give "
        "the median over rounds with the min–max in brackets. A ratio is taken within each round (both sides "
        "ran minutes apart, so load drift moves them alike) and summarized the same way. The machine may be "
        "shared: the load averages above and per run at the end say how busy it was.",
        "",
        "## Goals",
        "",
        "| goal | measured (median ratio over rounds, min–max) | met |",
        "|---|---|---|",
        *[f"| {g.text} | {g.measured_text} | {g.mark} |" for g in goals(results)],
        "",
        "## 1. Start-up (process wall time)",
        "",
        "| command | wall | ratio to `import tensorflow` |",
        "|---|---|---|",
    ]
    for key in STARTUP_CASES[1:] + STARTUP_CASES[:1]:
        if key in cases:
            lines.append(
                f"| `{cases[key].label}` | {s(key, 'wall_s').fmt()} | "
                f"{ratio(results, key, 'import_tf', 'wall_s').fmt('×', digits=3)} |"
            )
    lines += [
        "",
        "*bytecode cached*: the same command with `PYTHONPYCACHEPREFIX` pointing at a warm cache. With "
        "`PYTHONDONTWRITEBYTECODE` set (see above), regcli's own modules, installed editable, are compiled from "
        "source at every start; a normal install or environment caches their bytecode.",
        "",
        "## 2. Per-epoch time",
    ]
    lines += epoch_table(
        results, cases, "TensorFlow", ["regcli_tf", "numpy_tf", "tfdata_tf", "tfdata_det_tf"]
    )
    lines += epoch_table(results, cases, "JAX", ["regcli_jax", "numpy_jax"])

    rows = [
        ("quickstart", f"`regcli train {QUICKSTART}` as shipped (early stopping, patience 5)"),
        ("regcli_tf", f"`regcli train`, section 2's spec ({epochs} epochs, TF)"),
        ("tfdata_tf", f"plain-Keras script (c), {epochs} epochs (no run directory, no plot)"),
    ]
    lines += [
        "",
        "## 3. Total wall time of `regcli train` (process start to exit)",
        "",
        "| run | wall | CPU (user + sys) | epochs run | fit() | regcli: run directory created → training done |",
        "|---|---|---|---|---|---|",
        *[
            f"| {label} | {s(k, 'wall_s').fmt()} | {s(k, 'cpu_s').fmt()} | {s(k, 'epochs').fmt('', digits=0)} | "
            f"{s(k, 'fit_s').fmt()} | {s(k, 'run_seconds').fmt()} |"
            for k, label in rows
            if k in cases
        ],
        "",
        f"`regcli train` / plain-Keras script, same {epochs} epochs, wall: "
        f"{ratio(results, 'regcli_tf', 'tfdata_tf', 'wall_s').fmt('×')}. For scale, `import tensorflow` alone: "
        f"{s('import_tf', 'wall_s').fmt()}.",
        "",
        "<details><summary>Every run</summary>",
        "",
        "| case | round | load (1 min) | wall | CPU | epoch | epoch 1 | all-in epoch | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, runs in results.items():
        for r in runs:
            cells = [
                f"{r[m] * 1000:.1f} ms" if m in r else ""
                for m in ("epoch_s", "first_epoch_s", "allin_epoch_s")
            ]
            wall, cpu = (f"{r[m]:.2f} s" if m in r else "" for m in ("wall_s", "cpu_s"))
            note = r.get("error", "").replace("|", "/").replace("\n", " ")
            lines.append(
                f"| {cases[key].label} | {r['round'] + 1} | {r['load1']:.2f} | {wall} | {cpu} | "
                f"{' | '.join(cells)} | {note} |"
            )
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def source_note(start: dict[str, str], end: dict[str, str]) -> str:
    """One hash of the whole source tree, and the files that changed during the run, if any."""
    tree = hashlib.sha256(json.dumps(end, sort_keys=True).encode()).hexdigest()[:12]
    changed = sorted(k for k in start.keys() | end.keys() if start.get(k) != end.get(k))
    if not changed:
        return f"{tree}, unchanged during the run"
    shown = ", ".join(f"`{c}`" for c in changed[:6]) + (
        f" and {len(changed) - 6} more" if len(changed) > 6 else ""
    )
    return f"{tree} at the end; ⚠ changed during the run, so rounds may mix versions: {shown}"


def epoch_table(
    results: dict[str, list[dict]], cases: dict[str, Case], backend: str, keys: list[str]
) -> list[str]:
    keys = [k for k in keys if k in cases]
    if not keys:
        return ["", f"### {backend}", "", "Not run (`--quick`, `--cases`, or the backend is not installed)."]
    base = keys[0]

    def ms(key: str, metric: str) -> str:
        return stat(results, key, metric).fmt("ms", 1000, 1)

    lines = [
        "",
        f"### {backend}",
        "",
        "| side | epoch (`seconds`) | all-in epoch | epoch 1 | fit_seconds / epochs | in fit(), outside "
        "`seconds`, per epoch | epoch ÷ regcli's | all-in ÷ regcli's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        lines.append(
            f"| {cases[key].label} | {ms(key, 'epoch_s')} | {ms(key, 'allin_epoch_s')} | "
            f"{stat(results, key, 'first_epoch_s').fmt()} | {ms(key, 'fit_per_epoch_s')} | {ms(key, 'outside_epoch_s')} | "
            f"{ratio(results, key, base, 'epoch_s').fmt('×')} | {ratio(results, key, base, 'allin_epoch_s').fmt('×')} |"
        )
    accuracy = ", ".join(
        f"{cases[k].label.split(' ')[0]} {stat(results, k, 'val_accuracy').fmt('', digits=3)}" for k in keys
    )
    lines += [
        "",
        f"Final validation accuracy (median), a check that all sides train the same problem: {accuracy}.",
    ]
    return lines


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmarks regcli against plain Keras and writes docs/benchmarks.md."
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_REPEATS} rounds, {QUICK_EPOCHS} epochs, no JAX."
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"Rounds of every case. Defaults to {DEFAULT_REPEATS} ({QUICK_REPEATS} with --quick).",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"Epochs per training. Defaults to {DEFAULT_EPOCHS} ({QUICK_EPOCHS} with --quick).",
    )
    parser.add_argument(
        "--cases",
        help="Comma-separated case keys to run instead of the default set, e.g. regcli_tf,tfdata_tf,tfdata_det_tf. "
        f"Known: {', '.join(c.key for c in CASES)}.",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "benchmarks.md", help="The markdown report."
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS)
    if repeats < 1 or epochs < 2:
        parser.error(
            "--repeats must be >= 1 and --epochs >= 2 (epoch 1 is left out of the per-epoch numbers)."
        )
    by_key = {c.key: c for c in CASES}
    if args.cases:
        unknown = sorted(set(args.cases.split(",")) - set(by_key))
        if unknown:
            parser.error(f"--cases: unknown {', '.join(unknown)}. Known: {', '.join(by_key)}.")
        selected = [by_key[k] for k in args.cases.split(",")]
    else:
        with_jax = not args.quick and importlib.util.find_spec("jax") is not None
        selected = [c for c in CASES if not c.extra and (with_jax or "jax" not in c.key)]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_start = load_average()
    source_start = source_fingerprint()
    workdir = Path(tempfile.mkdtemp(prefix="regcli-bench-"))
    try:
        regcli_bin = Path(sys.executable).parent / "regcli"
        ctx = Context(
            workdir=workdir,
            spec=workdir / "template.yaml",
            pycache=workdir / "pycache",
            regcli=(str(regcli_bin),) if regcli_bin.exists() else (sys.executable, "-m", "regcli"),
        )
        write_template(ctx, epochs)
        log(
            f"benchmarks: {repeats} round(s) of {len(selected)} cases, {epochs} epochs per training, in {workdir}"
        )
        results = run_rounds(selected, ctx, repeats, log)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "command": " ".join(["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed": time.perf_counter() - started,
        "machine": machine(),
        "versions": versions(),
        "load_start": load_start,
        "load_end": load_average(),
        "nobytecode": os.environ.get("PYTHONDONTWRITEBYTECODE") or "not set",
        "source": (source_start, source_fingerprint()),
        "repeats": repeats,
        "epochs": epochs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results, {c.key: c for c in selected}, meta))
    log(
        f"wrote {args.output} in {meta['elapsed'] / 60:.1f} min; regcli source {source_note(*meta['source'])}"
    )
    for g in goals(results):
        log(f"  {g.mark} {g.text}: {g.measured_text}")
    if not args.cases:  # sweeps (packed or not), memory and scale: benchmarks/perf.py appends its section
        import perf

        perf.main(["--output", str(args.output), *(["--quick"] if args.quick else [])])
        import feed_vs_fit  # regcli's feeding vs plain model.fit: final val loss over 24 seeds, its own section

        feed_vs_fit.main(["--output", str(args.output), *(["--quick"] if args.quick else [])])
    failed = [
        f"{k}, round {r['round'] + 1}: {r['error']}"
        for k, runs in results.items()
        for r in runs
        if "error" in r
    ]
    for line in failed:
        log(f"  failed: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
