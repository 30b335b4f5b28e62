"""The README's shell blocks, run as written (issue: the first hour).

Every ```bash block of README.md runs, in order, in one temporary directory holding a copy
of configs/, with this venv's `regcli` first on PATH: the guided tour trains for real (the
overfit demo is 150 rows), a block after `<!-- readme-test: smoke -->` runs its `train` and
`sweep` commands with `--smoke` (the README says so next to it), and the set-up block runs
`make run` against this venv (`make test` is what runs this test, so it is not run again).
A command that stops working, or a glob that stops matching, fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(?:<!--\s*readme-test:\s*(?P<mode>[\w-]+)\s*-->\s*\n)?^```bash\n(?P<body>.*?)^```\s*$", re.S | re.M)
VENV_BIN = Path(sys.executable).parent
# A shell function in front of the real regcli: with --smoke appended to train and sweep
# (not to --resume, which continues a run as it was started).
SMOKE = """
regcli() {
  case "$1" in
    train|sweep) case " $* " in *" --resume "*) command regcli "$@" ;; *) command regcli "$@" --smoke ;; esac ;;
    *) command regcli "$@" ;;
  esac
}
"""


def blocks() -> list[tuple[str | None, str]]:
    return [(m.group("mode"), m.group("body")) for m in BLOCK.finditer(README.read_text())]


def run_block(body: str, cwd: Path, env: dict[str, str], smoke: bool) -> subprocess.CompletedProcess:
    script = ("set -e\n" + (SMOKE if smoke else "") + body).replace("\r", "")
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


def test_the_readme_has_the_blocks_this_test_runs():
    found = blocks()
    assert [mode for mode, _ in found].count("smoke") == 1
    bodies = "\n".join(body for _, body in found)
    for command in ("make run", "regcli train configs/overfit_demo.yaml", "regcli diagnose runs/overfit-demo-*",
                    "regcli compare runs/overfit-demo-*", 'regcli test "$RUN"', "regcli sweep --resume",
                    "regcli train configs/byom/builder.yaml", "RunRecorder(", "regcli diagnose history.csv"):
        assert command in bodies, command


def setup_block(body: str, tmp_path: Path, env: dict[str, str]) -> None:
    """`make run` against this venv in a copy of the Makefile; `make test` is this very run."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    lines = [line.split("#")[0].strip() for line in body.splitlines() if line.strip()]
    assert lines == ["make run", "make test"], lines
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)  # copy2 keeps the mtime the install stamp is compared with
    venv = f"VENV={VENV_BIN.parent}"
    stamp = VENV_BIN / ".installed-run"
    up_to_date = subprocess.run(["make", "-q", str(stamp), venv], cwd=tmp_path, capture_output=True)
    if up_to_date.returncode != 0:  # `make test` made it; a venv made otherwise would be reinstalled here
        warnings.warn(f"{stamp} is missing or older than pyproject.toml: `make run` not run", stacklevel=2)
        return
    done = subprocess.run(["make", "run", venv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "runs").glob("quickstart-*")
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    shutil.rmtree(tmp_path / "runs")


@pytest.mark.slow
def test_every_bash_block_of_the_readme_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "100"}
    outputs = []
    for mode, body in blocks():
        if body.lstrip().startswith("make "):
            setup_block(body, tmp_path, env)
            continue
        done = run_block(body, tmp_path, env, smoke=mode == "smoke")
        assert done.returncode == 0, f"README block failed (exit {done.returncode}):\n{body}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    runs = tmp_path / "runs"
    # The guided tour: the overfit demo is diagnosed high_variance, the early-stopping run is the one tested.
    demos = sorted(runs.glob("overfit-demo-*"))
    assert len(demos) == 2
    assert "high_variance" in outputs[0]
    ledger = [json.loads(line) for line in (runs / "test_ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 1 and Path(ledger[0]["run"]).name == demos[1].name
    # The sweeps ran (as smoke runs), and the resumed one is still complete.
    for sweep in ("sweep-l2-dropout-*", "learning-curve-*"):
        (sweep_dir,) = runs.glob(sweep)
        assert (sweep_dir / "best.json").is_file(), sweep_dir
    # Bring your own model: a builder, a RunRecorder and an image-folder run completed; the CSVLogger file diagnosed.
    for name in ("byom-builder-*", "mine-*", "images-*"):
        (run_dir,) = runs.glob(name)
        assert json.loads((run_dir / "status.json").read_text())["state"] == "completed", run_dir
    assert "history.csv: " in "".join(outputs)


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_early_does_not_turn_a_completed_run_into_exit_1(tmp_path):
    """The tour's `RUN=$(regcli train ... | head -n 1)`: head exits after the path, regcli's summary
    then meets a closed pipe. Rich's own handler exits 1, which regcli means as "the run failed"."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = (f"set -o pipefail; regcli train {ROOT / 'configs' / 'overfit_demo.yaml'} --smoke --out runs "
              "| head -n 1")
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / done.stdout.strip()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr
