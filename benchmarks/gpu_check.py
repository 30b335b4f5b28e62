"""GPU check for a lent device machine: the quickstart and a packed sweep, each on the GPU and on the same machine's CPU.

The device image has JAX with CUDA but no TensorFlow, so everything runs with `backend: jax`
(`--backend jax`, the sweep's base spec likewise); Keras and pydantic come from carried wheels
(`benchmarks/gpu_wheels.sh` here, then `bash benchmarks/gpu_check.sh` there). Writes
`$OUT/gpu_check.md` (a section to paste into docs/benchmarks.md) and the runs' logs.

    python benchmarks/gpu_check.py --out DIR [--epochs 30]

Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sweep_jobs  # noqa: E402 - the sibling script


def card_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        return out or "no GPU (nvidia-smi printed nothing)"
    except (OSError, subprocess.TimeoutExpired):
        return "no GPU (nvidia-smi not found)"


def train(device: str, out: Path, log) -> dict:
    """One `regcli train configs/quickstart.yaml --backend jax` on `device`: wall time and per-epoch medians."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "regcli", "train", "configs/quickstart.yaml", "--backend", "jax",
         "--set", f"device={device}", "--out", str(out), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    wall = time.perf_counter() - started
    log.write(f"$ regcli train quickstart on {device}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}\n")
    if proc.returncode != 0:
        return {"device": device, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    run = Path(proc.stdout.splitlines()[0])
    import pandas as pd

    history = pd.read_csv(run / "history.csv")
    summary = json.loads((run / "summary.json").read_text())
    env = json.loads((run / "environment.json").read_text())
    later = history["seconds"][1:] if len(history) > 1 else history["seconds"]
    return {"device": device, "wall": wall, "first_epoch": float(history["seconds"][0]),
            "epoch_median": float(statistics.median(later)), "epochs": int(len(history)),
            "val_error": summary["metrics"]["val"].get("error"), "env_device": env.get("device"),
            "gpus": env.get("gpus")}


def sweep(device: str, epochs: int, pack: bool, log) -> dict:
    spec = sweep_jobs.pack_spec(epochs, f"gpu-check-{device}")
    spec["base"].update(backend="jax", device=device)
    try:
        result = sweep_jobs.run_spec(spec, 1, pack=pack)
    except SystemExit as exc:  # run_sweep exits with the command's stderr on failure
        log.write(f"$ sweep on {device} (pack={pack}) failed:\n{exc}\n")
        return {"device": device, "pack": pack, "error": str(exc).splitlines()[0]}
    log.write(f"$ sweep on {device} (pack={pack}): {result}\n")
    return {"device": device, **result}


def fmt(value, unit: str = " s") -> str:
    return "–" if value is None else f"{value:.3f}{unit}" if value < 1 else f"{value:.1f}{unit}"


def render(card: str, runs: list[dict], sweeps: list[dict], epochs: int) -> str:
    lines = [
        "## GPU check (JAX backend)",
        "",
        f"Written by `benchmarks/gpu_check.py` on the lent device machine: **{card}**. Each row beside the "
        "same run on that machine's CPU (`device: cpu`, `JAX_PLATFORMS=cpu`), in one call.",
        "",
        "### `regcli train configs/quickstart.yaml --backend jax`",
        "",
        "| device | whole command | first epoch (tracing) | later epochs (median) | epochs | val error |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        if "error" in r:
            lines.append(f"| {r['device']} | failed: {r['error']} | | | | |")
        else:
            lines.append(f"| {r['device']} | {fmt(r['wall'])} | {fmt(r['first_epoch'])} | {fmt(r['epoch_median'])} | "
                         f"{r['epochs']} | {r['val_error']:.4f} |")
    lines += [
        "",
        f"### Sweep of 8 configurations (quickstart model, 8 L2 strengths, {epochs} epochs, `--jobs 1`)",
        "",
        "| device | setting | whole command | trial phase |",
        "|---|---|---:|---:|",
    ]
    for s in sweeps:
        what = "packed (auto)" if s.get("pack") else "`--no-pack`"
        if "error" in s:
            lines.append(f"| {s['device']} | {what} | failed: {s['error']} | |")
        else:
            lines.append(f"| {s['device']} | {what} | {fmt(s['wall_seconds'])} | {fmt(s['trial_phase_seconds'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--epochs", type=int, default=30, help="Epochs per sweep trial (default 30).")
    parser.add_argument("--devices", default="gpu,cpu", help="Comma-separated devices (default gpu,cpu).")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    card = card_name()
    runs, sweeps = [], []
    with open(args.out / "gpu_check.log", "w") as log, tempfile.TemporaryDirectory(prefix="regcli-gpu-runs-") as tmp:
        for device in args.devices.split(","):
            runs.append(train(device, Path(tmp) / device, log))
            print(runs[-1], flush=True)
            for pack in (True, False):
                sweeps.append(sweep(device, args.epochs, pack, log))
                print(sweeps[-1], flush=True)
    text = render(card, runs, sweeps, args.epochs)
    (args.out / "gpu_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
