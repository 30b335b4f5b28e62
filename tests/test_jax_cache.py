"""The persistent JAX compilation cache (regcli.training.backend.use_jax_compilation_cache): a train
or sweep of shapes compiled before reuses the programs, and never gets other numbers for it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import write_sweep

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
SPEC = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [16], "batchnorm": True, "dropout": 0.3, "l2": 1e-3},
    "training": {"epochs": 4, "early_stopping": {"enabled": False}},
}


def regcli(*args, cache, **env):
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "REGCLI_CACHE_DIR": str(cache), **env}
    full.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "regcli", *map(str, args), "--quiet"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env=full, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def histories(out: Path) -> dict[str, list[dict]]:
    """Every history.csv under `out`, by its path relative to the run (or sweep) directory, without `seconds`."""
    found = {}
    for path in sorted(out.glob("**/history.csv")):
        with path.open() as handle:
            rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
        found[str(path.relative_to(out).parts[1:])] = rows
    return found


def entries(cache: Path) -> set[str]:
    return {p.name for p in (cache / "jax").iterdir()} if (cache / "jax").is_dir() else set()


def test_a_train_with_a_cold_and_a_warm_cache_has_the_same_history_and_compiles_nothing_new(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    cache = tmp_path / "cache"
    regcli("train", spec, "--backend", "jax", "--out", tmp_path / "cold", cache=cache)
    compiled = entries(cache)
    assert compiled, "the cold run left nothing in the cache"
    regcli("train", spec, "--backend", "jax", "--out", tmp_path / "warm", cache=cache)
    assert entries(cache) == compiled  # every program came from the cache
    cold, warm = histories(tmp_path / "cold"), histories(tmp_path / "warm")
    assert len(cold) == 1 and cold == warm
    regcli("train", spec, "--backend", "jax", "--out", tmp_path / "off", cache=tmp_path / "no-cache",
           REGCLI_JAX_CACHE="off")
    assert entries(tmp_path / "no-cache") == set()
    assert histories(tmp_path / "off") == cold


def test_a_packed_jax_sweep_run_again_reuses_the_cache_and_agrees_trial_by_trial(tmp_path):
    base = {**SPEC, "backend": "jax", "training": {"epochs": 3, "early_stopping": {"enabled": False}}}
    sweep = write_sweep(tmp_path, {"params": {"model.l2": [0.0, 1e-3], "model.dropout": [0.0, 0.3]}}, base=base)
    cache = tmp_path / "cache"
    regcli("sweep", sweep, "--jobs", "1", "--out", tmp_path / "cold", cache=cache)
    compiled = entries(cache)
    regcli("sweep", sweep, "--jobs", "1", "--out", tmp_path / "warm", cache=cache)
    assert compiled and entries(cache) == compiled
    cold, warm = histories(tmp_path / "cold"), histories(tmp_path / "warm")
    assert len(cold) == 4 and cold == warm
