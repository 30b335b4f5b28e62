"""Sweep workers start with Ctrl-C ignored, from their very first instruction.

The terminal's Ctrl-C goes to the whole foreground process group, the sweep's workers
included. A worker whose interpreter is still starting (importing `site`, or unpickling its
target) would die of it printing "Fatal Python error: init_import_site ... KeyboardInterrupt"
or a traceback. A signal ignored at `exec` stays ignored, and Python then keeps it ignored, so
the workers are started through a two-line shell launcher, `trap '' INT; exec python "$@"`
(in regcli's cache directory), instead of the interpreter itself. A worker then takes Ctrl-C
only inside a trial, at a safe point (`regcli.interrupt`); the sweep nudges its running
trials with SIGINT until they stop (`executors.LocalExecutor._interrupt`). The sweep process's
own Ctrl-C handling is untouched: it never ignores the signal, so a Ctrl-C is never lost.

Where the launcher cannot be written or run (no /bin/sh, a read-only or noexec cache), the
interpreter is started directly, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing.spawn
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from regcli.cache import cache_dir

SHELL = "/bin/sh"


def launcher() -> Path | None:
    """The launcher for this interpreter, written on first use; None when it cannot be."""
    python = sys.executable
    if not python or not os.access(SHELL, os.X_OK):
        return None
    digest = hashlib.sha256(python.encode()).hexdigest()[:12]
    path = cache_dir() / "bin" / f"regcli-worker-{digest}"
    text = f"#!{SHELL}\n# regcli sweep worker: starts {python} with SIGINT ignored\ntrap '' INT\nexec {shlex.quote(python)} \"$@\"\n"
    with contextlib.suppress(OSError):
        if path.read_text() == text and os.access(path, os.X_OK):
            return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".launcher-")
    except OSError:
        return None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    return path


@contextlib.contextmanager
def ignoring_sigint(path: Path | None) -> Iterator[None]:
    """Within the block, multiprocessing's spawn starts its children through `path`."""
    if path is None:
        yield
        return
    previous = multiprocessing.spawn.get_executable()
    multiprocessing.spawn.set_executable(str(path))
    try:
        yield
    finally:
        multiprocessing.spawn.set_executable(previous)
