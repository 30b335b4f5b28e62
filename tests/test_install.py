"""`make run` installs what running needs and `make test` adds the test extras (issue: the first hour).

A user who runs the quickstart should not get a 3.7 GB `.venv` with Ray, MLflow, JAX and
Playwright. Two checks: the Makefile's recipes (read with `make -n`, nothing installed), and
the quickstart itself trained with every extra's packages made unimportable, which is what
`pip install -e .` without extras leaves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The top-level packages the extras (pyproject.toml's optional-dependencies) bring.
EXTRA_PACKAGES = ("ray", "mlflow", "jax", "jaxlib", "pytest", "hypothesis", "ruff", "jsonschema", "playwright")


def dry_run(target: str, tmp_path: Path) -> list[str]:
    """The pip commands `make TARGET` would run for a fresh venv (make -n runs nothing)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if "pip install" in line and "--upgrade pip" not in line]


def test_make_run_installs_regcli_without_extras_and_make_test_adds_them(tmp_path):
    run_installs = dry_run("run", tmp_path)
    assert run_installs and all("-e ." in line and "[" not in line for line in run_installs), run_installs
    test_installs = dry_run("test", tmp_path)
    assert any('-e ".[dev,jax,ray,mlflow]"' in line for line in test_installs), test_installs


BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not installed by make run)")
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["regcli", *sys.argv[2:]]
from regcli.cli import main
main()
"""


@pytest.mark.slow
def test_the_quickstart_trains_with_no_extra_installed(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(EXTRA_PACKAGES), "train", str(ROOT / "configs" / "quickstart.yaml"),
         "--smoke", "--quiet", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stderr
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    assert (run_dir / "learning_curves.png").stat().st_size > 0
