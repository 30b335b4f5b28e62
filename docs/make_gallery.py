"""Remakes docs/gallery/report_run.png and report_sweep.png from real runs.

    .venv/bin/python docs/make_gallery.py [--full-sweep] [RUN_DIR SWEEP_DIR]

Trains configs/quickstart.yaml, runs configs/sweep_l2_dropout.yaml (--smoke unless
--full-sweep: the full 45 trials take 5-7 minutes on 2 cores) unless RUN_DIR and SWEEP_DIR
of earlier runs of them are given, writes both reports with
`regcli report` and screenshots their top 1600 pixels in headless Chromium (the system's
`chromium`, see `make browser`), 900 pixels wide, quantized to 256 colours (< 200 KB).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "docs" / "gallery"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def regcli(*args: str) -> str:
    """Runs `regcli ARGS` and returns the first line of its stdout (the directory it wrote)."""
    proc = subprocess.run([sys.executable, "-m", "regcli", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()[0].strip()


def screenshot(report: Path, target: Path, height: int = 1600) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=ARGS,
            viewport={"width": 900, "height": height},
        )
        page = context.new_page()
        page.goto(report.resolve().as_uri(), wait_until="load")
        png = page.screenshot(full_page=False)
        context.close()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256)
    image.save(target, optimize=True)
    print(f"{target}: {target.stat().st_size // 1024} KB")


def main() -> None:
    GALLERY.mkdir(parents=True, exist_ok=True)
    given = [Path(a) for a in sys.argv[1:] if not a.startswith("--")]
    if len(given) == 2:
        run, sweep = given
    else:
        out = Path(tempfile.mkdtemp(prefix="regcli-gallery-"))
        run = Path(regcli("train", "configs/quickstart.yaml", "--out", str(out), "--quiet"))
        smoke = [] if "--full-sweep" in sys.argv else ["--smoke"]
        sweep = Path(regcli("sweep", "configs/sweep_l2_dropout.yaml", *smoke, "--jobs", "2", "--out", str(out), "--quiet"))
    for directory, name in ((run, "report_run.png"), (sweep, "report_sweep.png")):
        screenshot(Path(regcli("report", str(directory))), GALLERY / name)


if __name__ == "__main__":
    main()
