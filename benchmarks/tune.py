"""Does `regcli tune` find what a full grid finds, for a third of the trials?

    .venv/bin/python benchmarks/tune.py                      # overfit, over_regularized, too_much_dropout,
                                                             # label_noise; seeds 0,1,2 (long: two grids of
                                                             # 36 configurations x 3 seeds per scenario)
    .venv/bin/python benchmarks/tune.py --scenarios overfit --seeds 0,1 --jobs 2
    .venv/bin/python benchmarks/tune.py --table docs/tune_benchmark.md   # also writes the markdown table there

For every scenario (a spec in configs/scenarios/) the same base spec is

- tuned: `regcli tune` over the seeds with a budget of a third of the grid's trials, and
- swept: a full grid over the knobs tune turns there, `model.l2` (the base's value and its decades,
  0 included) x `model.dropout` (0 to 0.7 in steps of 0.1, the base's rate included), over the same
  seeds (`regcli sweep`, packed, no final test).

What is compared is the validation data loss (summary.json `metrics.val.data_loss`), mean over the
seeds: tune's shipped configuration against the grid's best configuration. Tune passes when its
mean is within one seed-std of the grid's best (`tune_mean <= grid_mean + grid_std`) with at most a
third of the grid's trials. Tune may beat the grid: it can turn knobs the grid does not hold fixed
(early stopping, say). Every directory stays under `--out` (default `.bench_cache/tune/`): a rerun
reuses a finished tune or sweep of the same scenario and seeds instead of training it again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported: no C++ chatter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import yaml  # noqa: E402

SCENARIOS = ROOT / "configs" / "scenarios"
OUT = ROOT / ".bench_cache" / "tune"
DEFAULT_SCENARIOS = ("overfit", "over_regularized", "too_much_dropout", "label_noise")
DROPOUTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def grid_params(base: dict[str, Any]) -> dict[str, list[Any]]:
    """model.l2: 0 and the decades around the base's value (1e-4 .. 1e-1 from 0); model.dropout: 0 .. 0.7."""
    l2 = float(base["model"]["l2"])
    decades = [_round(l2 * 10.0**k) for k in range(-4, 2)] if l2 > 0 else [1e-4, 1e-3, 1e-2, 1e-1]
    l2s = sorted({0.0, *decades})
    rate = float(base["model"]["dropout"])
    return {"model.l2": l2s, "model.dropout": sorted({*DROPOUTS, rate})}


def _finished(out: Path, prefix: str, seeds: list[int], key: str) -> Path | None:
    """A finished tune or sweep directory of this scenario and seeds under `out`, if one exists."""
    for d in sorted(out.glob(f"{prefix}-*")):
        best = d / "best.json"
        spec = d / key
        if best.is_file() and spec.is_file() and yaml.safe_load(spec.read_text()).get("seeds") == seeds:
            return d
    return None


def run_grid(spec_path: Path, base: dict[str, Any], seeds: list[int], out: Path, jobs: int) -> dict[str, Any]:
    from regcli.sweep.run import prepare_sweep, run_sweep

    name = f"{base['name']}-grid"
    done = _finished(out, name, seeds, "sweep.yaml")
    if done is None:
        sweep_file = out / f"{name}.yaml"
        sweep_file.write_text(yaml.safe_dump({"name": name, "base": str(spec_path), "strategy": "grid",
                                              "params": grid_params(base), "seeds": seeds, "final_test": False}))
        done = run_sweep(prepare_sweep(sweep_file, out=out, jobs=jobs)).sweep_dir
    best = json.loads((done / "best.json").read_text())
    params = yaml.safe_load((done / "sweep.yaml").read_text())["params"]
    n_trials = math.prod(len(values) for values in params.values()) * len(seeds)
    return {"dir": done, "config": best["config"], "params": best["params"], "mean": best["mean"],
            "std": best.get("std"), "trials": n_trials}


def run_tune_of(spec_path: Path, base: dict[str, Any], seeds: list[int], out: Path, jobs: int,
                budget: int) -> dict[str, Any]:
    from regcli.tune import prepare_tune, run_tune

    done = _finished(out, f"{base['name']}-tune", seeds, "tune.yaml")
    if done is None:
        plan = prepare_tune(spec_path, seeds=seeds, budget=budget, jobs=jobs, out=out)
        done = run_tune(plan, on_step=lambda text: print(f"  {text}", file=sys.stderr, flush=True)).tune_dir
    best = json.loads((done / "best.json").read_text())
    return {"dir": done, "set": best["set"], "mean": best["mean"], "std": best.get("std"),
            "trials": best["trials_used"], "stopped": best["stopped"]["code"]}


def scenario_row(name: str, seeds: list[int], out: Path, jobs: int) -> dict[str, Any]:
    from regcli.spec import load_experiment_spec, spec_to_dict

    spec_path = SCENARIOS / f"{name}.yaml"
    base = spec_to_dict(load_experiment_spec(spec_path))
    base["name"] = base.get("name") or name
    started = time.perf_counter()
    grid = run_grid(spec_path, base, seeds, out, jobs)
    tune = run_tune_of(spec_path, base, seeds, out, jobs, budget=grid["trials"] // 3)
    slack = grid["std"] if grid["std"] is not None and math.isfinite(grid["std"]) else 0.0
    return {"scenario": name, "tune": tune, "grid": grid, "within": tune["mean"] <= grid["mean"] + slack,
            "cheap": tune["trials"] * 3 <= grid["trials"], "seconds": time.perf_counter() - started}


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def table(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    lines = [
        f"Seeds {','.join(map(str, seeds))}; validation data loss, mean ± std over seeds "
        "(`benchmarks/tune.py`).",
        "",
        "| scenario | tune: shipped | tune val_data_loss | tune trials | grid best | grid val_data_loss | grid trials "
        "| within 1 std | ≤ 1/3 trials |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, g = r["tune"], r["grid"]
        shipped = ", ".join(t["set"]) or "base"
        best = ", ".join(f"{k}={v}" for k, v in g["params"].items())
        lines.append(f"| {r['scenario']} | `{shipped}` ({t['stopped']}) | {_pm(t['mean'], t['std'])} | {t['trials']} "
                     f"| `{best}` | {_pm(g['mean'], g['std'])} | {g['trials']} | {'✅' if r['within'] else '❌'} "
                     f"| {'✅' if r['cheap'] else '❌'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", type=Path, default=None, help="Also write the markdown table to this file.")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.scenarios.split(","):
        print(f"{name}: grid, then tune", file=sys.stderr, flush=True)
        rows.append(scenario_row(name, seeds, args.out.absolute(), args.jobs))
        print(f"{name}: {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    text = table(rows, seeds)
    print(text)
    if args.table is not None:
        args.table.write_text(text)
    return 0 if all(r["within"] and r["cheap"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
