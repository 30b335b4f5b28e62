"""How much faster is `regcli sweep --jobs 2` than `--jobs 1`? (the issue's goal: >= 1.7x on 2 cores)

Runs the same 8-trial sweep (the quickstart model: a 256/128 MLP with BatchNorm and dropout on
breast_cancer, 4 L2 strengths x 2 seeds, a fixed number of epochs so every trial does the same
work) through the real command with `--jobs 1` and with `--jobs 2`, and reports the wall time of
each whole command (worker start-up, TensorFlow imports and aggregation included), of its
trial phase alone (first trial's config.yaml written -> last trial's final status.json, from
the files' modification times) and the speed-ups. Each run writes into a fresh temporary
directory that is removed afterwards.

    python benchmarks/sweep_jobs.py                      # prints a markdown table
    python benchmarks/sweep_jobs.py --json OUT.json      # and writes the numbers as JSON
    python benchmarks/sweep_jobs.py --epochs 10 --repeats 3

Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sweep_spec(epochs: int) -> dict:
    base = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    base["training"]["epochs"] = epochs
    base["training"]["early_stopping"] = {"enabled": False}  # every trial trains the same epochs
    return {
        "name": "bench-jobs",
        "base": base,
        "params": {"model.l2": [0.0, 1.0e-5, 1.0e-4, 1.0e-3]},
        "seeds": [0, 1],
    }


# 8 configurations x 1 seed that differ only in L2: every trial can share one packed model.
PACK_L2_VALUES = [0.0, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3]


def pack_spec(epochs: int, name: str) -> dict:
    """The packing benchmarks' sweep: the quickstart model over `PACK_L2_VALUES`, one seed."""
    spec = sweep_spec(epochs)
    spec.update(name=name, params={"model.l2": PACK_L2_VALUES, "model.dropout": [0.0]}, seeds=[0])
    return spec


def run_spec(spec: dict, jobs: int, *, pack: bool = False) -> dict:
    """`run_sweep` on a sweep spec given as a dict (written to a temporary file first)."""
    with tempfile.TemporaryDirectory(prefix="regcli-bench-spec-") as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return run_sweep(path, jobs, pack=pack)


def run_sweep(spec_path: Path, jobs: int, *, pack: bool = False) -> dict:
    """One `regcli sweep --jobs N [--no-pack]` in a fresh output directory: wall time and trial seconds.

    Unpacked by default: this benchmark measures worker parallelism, trial by trial.
    """
    with tempfile.TemporaryDirectory(prefix="regcli-bench-") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "regcli",
                "sweep",
                str(spec_path),
                "--jobs",
                str(jobs),
                "--out",
                out,
                "--quiet",
                *([] if pack else ["--no-pack"]),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            check=False,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"regcli sweep --jobs {jobs} (pack={pack}) failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        import pandas as pd

        sweep_dir = Path(proc.stdout.splitlines()[0])
        results = pd.read_csv(sweep_dir / "results.csv")
        trials = [sweep_dir / run for run in results["run_dir"]]
        first = min((t / "config.yaml").stat().st_mtime for t in trials)
        last = max((t / "status.json").stat().st_mtime for t in trials)
        # Each trial's typical epoch (median of its `seconds` after the first, traced, epoch): a
        # packed tower records its pack's epoch, which all its towers share.
        histories = [pd.read_csv(t / "history.csv")["seconds"] for t in trials]
        epoch_medians = [float(h.iloc[1:].median()) for h in histories]
        return {
            "jobs": jobs,
            "pack": pack,
            "wall_seconds": wall,
            "trial_phase_seconds": last - first,
            "trials": len(results),
            "trial_seconds_sum": float(results["seconds"].sum()),
            "epoch_medians": epoch_medians,
            "first_epochs": [float(h.iloc[0]) for h in histories],  # tracing included
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="Epochs per trial (default 20).")
    parser.add_argument(
        "--repeats", type=int, default=1, help="Runs of each setting; the median is reported."
    )
    parser.add_argument("--json", type=Path, help="Also write the measurements here.")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="regcli-bench-spec-") as tmp:
        spec_path = Path(tmp) / "bench_jobs.yaml"
        spec_path.write_text(yaml.safe_dump(sweep_spec(args.epochs), sort_keys=False))
        runs = {1: [], 2: []}
        for _ in range(args.repeats):
            for jobs in (1, 2):  # interleaved, so that drifting machine load hits both alike
                runs[jobs].append(run_sweep(spec_path, jobs))
                print(f"  --jobs {jobs}: {runs[jobs][-1]['wall_seconds']:.1f} s", file=sys.stderr)

    wall = {jobs: statistics.median(r["wall_seconds"] for r in rs) for jobs, rs in runs.items()}
    phase = {jobs: statistics.median(r["trial_phase_seconds"] for r in rs) for jobs, rs in runs.items()}
    report = {
        "benchmark": "sweep_jobs",
        "trials": runs[1][0]["trials"],
        "epochs": args.epochs,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.platform(),
        "wall_seconds": {f"jobs_{j}": w for j, w in wall.items()},
        "trial_phase_seconds": {f"jobs_{j}": p for j, p in phase.items()},
        "trial_seconds_sum": {
            f"jobs_{j}": statistics.median(r["trial_seconds_sum"] for r in rs) for j, rs in runs.items()
        },
        "speedup": wall[1] / wall[2],
        "trial_phase_speedup": phase[1] / phase[2],
        "runs": runs,
    }
    print(
        f"| sweep of {report['trials']} trials ({args.epochs} epochs each), {report['cores']} cores | whole command | trial phase |"
    )
    print("|---|---:|---:|")
    print(f"| `regcli sweep --jobs 1` | {wall[1]:.1f} s | {phase[1]:.1f} s |")
    print(f"| `regcli sweep --jobs 2` | {wall[2]:.1f} s | {phase[2]:.1f} s |")
    print(f"| speed-up | **{report['speedup']:.2f}x** | **{report['trial_phase_speedup']:.2f}x** |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
