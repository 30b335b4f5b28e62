"""`regcli report`: the HTML page of a run and of a sweep, checked in a real headless Chromium.

One tiny sweep is trained per module (breast_cancer, hidden [8], 2 epochs, 2 trials:
these tests check wiring, not convergence); its winning trial is the run under test. Chromium (Debian's `chromium`,
installed by `make browser`) is driven with Playwright, never `playwright install`:
the page must load from file:// with no console error and no request but file:/data:,
show the verdict, paint a non-blank screenshot and load every image.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import InProcessExecutor, flat
from typer.testing import CliRunner

from regcli import rundir
from regcli.cli import app
from regcli.commands.report import REPORT, write_report

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Offline and quiet: no sandbox (CI runs as root), no GPU, no background traffic of Chromium's own.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TINY = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}



def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}



@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A real sweep of two trials (l2 0 and 1e-3), aggregated, with the winner's final test."""
    from regcli.sweep import run as sweep_run
    from regcli.sweep.run import prepare_sweep, run_sweep

    mp = pytest.MonkeyPatch()
    mp.setattr(sweep_run, "make_executor", lambda *args, **kwargs: InProcessExecutor())
    base = tmp_path_factory.mktemp("report-sweep")
    (base / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    sweep = {"name": "tiny-sweep", "base": "tiny.yaml", "params": {"model.l2": [0.0, 1.0e-3]}, "seeds": [0],
             "final_test": True}
    (base / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    try:
        # pack=False: each trial trains alone, as `regcli train` would (its run dir is `run_dir` below)
        return run_sweep(prepare_sweep(base / "sweep.yaml", out=base / "runs", pack=False)).sweep_dir
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def run_dir(sweep_dir) -> Path:
    """The sweep's winning trial: a complete run directory (with metrics.test from the final test)."""
    return sweep_dir / json.loads((sweep_dir / "best.json").read_text())["shipped_run"]


@pytest.fixture(scope="module")
def tune_dir(tmp_path_factory) -> Path:
    """A --smoke tune of TINY (one seed, at most 3 trials of 2 epochs), trained in this process."""
    from regcli.tune import loop, prepare_tune

    mp = pytest.MonkeyPatch()
    mp.setattr(loop, "make_executor", lambda *args, **kwargs: InProcessExecutor())
    base = tmp_path_factory.mktemp("report-tune")
    (base / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    try:
        return loop.run_tune(prepare_tune(base / "tiny.yaml", out=base / "runs", smoke=True)).tune_dir
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A Playwright context on Debian's headless Chromium with a fresh user-data-dir."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run `make browser` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1000, "height": 900},
        )
        yield context
        context.close()


def open_page(browser, report: Path):
    """Loads the report; returns the page and what it logged and requested."""
    page = browser.new_page()
    seen = {"console": [], "page_errors": [], "requests": [], "failed": []}
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.goto(report.resolve().as_uri(), wait_until="load")
    return page, seen


def check_page(page, seen, n_images: int) -> None:
    """No error, no network, every image loaded, and pixels on the screenshot."""
    from PIL import Image, ImageStat

    assert not [c for c in seen["console"] if c.startswith("error")], seen["console"]
    assert seen["page_errors"] == [] and seen["failed"] == []
    assert seen["requests"] and all(u.startswith(("file:", "data:")) for u in seen["requests"]), seen["requests"]
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
    assert len(images) == n_images and all(done and width > 0 for done, width in images), images
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    assert len(shot.getcolors(maxcolors=1 << 24)) > 100  # text, tables and plots, not a blank page
    assert max(ImageStat.Stat(shot).stddev) > 10


# --- pages in Chromium -----------------------------------------------------------------


def test_run_report_renders_offline_with_the_verdict_of_diagnose(run_dir, browser):
    result = CliRunner().invoke(app, ["diagnose", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    headline = json.loads(result.stdout)["diagnosis"]["headline"]

    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir / REPORT)
    page, seen = open_page(browser, run_dir / REPORT)
    check_page(page, seen, n_images=len(list(run_dir.glob("*.png"))))
    assert page.inner_text("#verdict-text") == headline
    text = page.inner_text("body")
    assert "shipped" in text and "learning_curves.png" in text and "source: breast_cancer" in text
    page.close()


def test_sweep_report_shows_winner_leaderboard_every_plot_and_states(sweep_dir, browser):
    best = json.loads((sweep_dir / "best.json").read_text())
    result = CliRunner().invoke(app, ["report", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    page, seen = open_page(browser, sweep_dir / REPORT)
    check_page(page, seen, n_images=len(list(sweep_dir.glob("*.png"))))
    assert f"Winner: {best['config']}" in page.inner_text("#verdict-text")
    assert page.locator("#leaderboard tbody tr").count() == 2
    winner = page.inner_text("#winner")
    assert "Final test" in winner and f"{best['final_test']['metrics']['error']:.4g}" in winner
    assert "2 completed" in page.inner_text("header")
    page.close()


def test_tune_report_shows_what_shipped_every_step_and_the_trajectory(tune_dir, browser):
    result = CliRunner().invoke(app, ["report", str(tune_dir)])
    assert result.exit_code == 0, result.output
    page, seen = open_page(browser, tune_dir / REPORT)
    check_page(page, seen, n_images=1)  # trajectory.png
    assert page.inner_text("#verdict-text").startswith("Shipped: ")
    n_steps = len((tune_dir / "steps.csv").read_text().splitlines()) - 1
    assert page.locator("#steps tbody tr").count() == n_steps
    assert "No final test: this is a --smoke tune" in page.inner_text("#winner")
    page.close()


def test_failed_run_gets_a_report_of_its_state_with_every_text_escaped(run_dir, browser, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / run_dir.name))
    error = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"
    rundir.write_status(run, "failed", error)
    (run / rundir.SUMMARY).unlink()
    write_report(run)
    page, seen = open_page(browser, run / REPORT)
    check_page(page, seen, n_images=1)
    assert page.inner_text("#error").endswith(error)
    assert page.evaluate("document.scripts.length") == 0
    assert "No diagnosis" in page.inner_text("#verdict")
    page.close()


# --- files -----------------------------------------------------------------------------


def test_every_png_of_a_sweep_is_inlined_with_a_caption_from_its_name(sweep_dir, tmp_path):
    sweep = Path(shutil.copytree(sweep_dir, tmp_path / sweep_dir.name))
    shutil.copy(next(sweep.glob("val_vs_*.png")), sweep / "learning_curve_train_fraction.png")
    page = write_report(sweep).read_text()
    assert page.count("<img ") == len(list(sweep.glob("*.png")))
    assert "Learning curve train fraction." in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_a_run_and_a_sweep_in_one_command_each_get_their_report(run_dir, sweep_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / run_dir.name, ignore=shutil.ignore_patterns(REPORT)))
    sweep = Path(shutil.copytree(sweep_dir, tmp_path / sweep_dir.name, ignore=shutil.ignore_patterns(REPORT)))
    best = json.loads((sweep / "best.json").read_text())
    skipped = "this is a --smoke sweep, and a smoke run never consults the test split"
    (sweep / "best.json").write_text(json.dumps({**best, "final_test": None, "final_test_skipped": skipped}))
    result = CliRunner().invoke(app, ["report", str(run), str(sweep)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(run / REPORT), str(sweep / REPORT)]
    page = (sweep / REPORT).read_text()
    assert f"No final test: {skipped}." in page and "Final test, the winner only" not in page
    assert (run / REPORT).read_text().startswith("<!DOCTYPE html>")


def test_report_imports_neither_tensorflow_nor_keras(run_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / run_dir.name))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "regcli", "report", str(run)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not modules & {"tensorflow", "keras", "jax", "torch"}
    assert proc.stdout.strip() == str(run / REPORT)


def test_open_without_a_browser_still_prints_the_path(run_dir, tmp_path, monkeypatch):
    import webbrowser

    run = Path(shutil.copytree(run_dir, tmp_path / run_dir.name))
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or False)
    result = CliRunner().invoke(app, ["report", str(run), "--open"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run / REPORT)
    assert opened == [(run / REPORT).resolve().as_uri()] and "no web browser" in result.stderr


# --- bad inputs ------------------------------------------------------------------------


def _status(run: Path, **fields) -> None:
    status = json.loads((run / rundir.STATUS).read_text())
    (run / rundir.STATUS).write_text(json.dumps({**status, **fields}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: its pid names no process now
    return proc.pid


BROKEN_RUNS = {
    "truncated summary": (lambda run: (run / rundir.SUMMARY).write_text('{"best_epoch": 2, "metr'), "not valid JSON"),
    "corrupt status": (lambda run: (run / rundir.STATUS).write_bytes(b"\x00\xff garbage"), "status.json"),
    "still running": (lambda run: _status(run, state="running", pid=os.getpid()), "is alive: it is still training"),
    "killed": (lambda run: _status(run, state="running", pid=_dead_pid()), "is gone: it was killed. Resume it with"),
    "truncated history": (lambda run: (run / rundir.HISTORY).write_text("epoch,loss,val_loss\n1,0.5"), "truncated"),
    "completed without summary": (lambda run: (run / rundir.SUMMARY).unlink(), "summary.json is missing"),
    "no status": (lambda run: (run / rundir.STATUS).unlink(), "status.json is missing"),
}
BROKEN_SWEEPS = {
    "corrupt manifest": (lambda sweep: (sweep / "sweep.json").write_text("[1, 2"), "not valid JSON"),
    "corrupt best.json": (lambda sweep: (sweep / "best.json").write_text("{"), "not valid JSON"),
}


def _refused(target: Path, root: Path, message: str) -> None:
    before = snapshot(root)
    result = CliRunner().invoke(app, ["report", str(target)])
    assert result.exit_code == 2, result.output
    assert str(target) in flat(result.stderr) and message in flat(result.stderr), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert snapshot(root) == before


@pytest.mark.parametrize("case", sorted(BROKEN_RUNS))
def test_a_broken_run_is_refused_with_exit_2_and_nothing_written(run_dir, tmp_path, case):
    break_it, message = BROKEN_RUNS[case]
    run = Path(shutil.copytree(run_dir, tmp_path / run_dir.name))
    break_it(run)
    _refused(run, tmp_path, message)


@pytest.mark.parametrize("case", sorted(BROKEN_SWEEPS))
def test_a_broken_sweep_is_refused_with_exit_2_and_nothing_written(sweep_dir, tmp_path, case):
    break_it, message = BROKEN_SWEEPS[case]
    sweep = Path(shutil.copytree(sweep_dir, tmp_path / sweep_dir.name, ignore=shutil.ignore_patterns(REPORT)))
    break_it(sweep)
    _refused(sweep, tmp_path, message)


def test_a_missing_path_a_file_and_a_foreign_directory_are_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a run")
    _refused(tmp_path / "nothing-here", tmp_path, "does not exist")
    _refused(tmp_path / "notes" / "todo.txt", tmp_path, "is a file")
    _refused(tmp_path / "notes", tmp_path, "neither a regcli run directory")
