"""The test ledger (SPEC §5.5): one JSON line per look at a test split, append-only.

Every `regcli test` (and a sweep's final test) appends one line to `test_ledger.jsonl`
in the directory that holds the run directories (`runs/test_ledger.jsonl`):

    {"time": "2026-11-27T05:01:02Z", "run": "/abs/runs/bc-...", "run_name": "bc-...",
     "test_fingerprint": "ed54...", "data": {"source": "breast_cancer", "path": null},
     "metrics": {"loss": ..., "data_loss": ..., "accuracy": ..., "error": ...},
     "n_test": 114, "consulted_before": 0}

`consulted_before` counts the earlier lines with the same `test_fingerprint`, from any
run: the seed's "keep the test set for the end" made countable. Counting and appending
happen under one exclusive `flock` on `test_ledger.jsonl.lock`, and the line is written
with a single `write` on an `O_APPEND` descriptor and fsync'ed, so concurrent testers
never lose, duplicate or interleave lines and their counts are 0, 1, 2, ... in order.
No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.errors import BadInputError

LEDGER = "test_ledger.jsonl"
LOCK_SUFFIX = ".lock"


def default_ledger(run: Path) -> Path:
    """Where the ledger of `run` lives: beside the run directory, in its parent.

    A sweep trial (`<out>/<sweep>/trials/<id>`) shares the ledger of the sweep's
    `<out>`, so runs and sweeps written to the same `runs/` count against one ledger.
    """
    run = Path(run).absolute()
    parent = run.parent
    if parent.name == "trials" and (parent.parent / "sweep.yaml").is_file():
        return parent.parent.parent / LEDGER
    return parent / LEDGER


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's entries in order; unreadable lines (a torn write from a crash) are skipped."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BadInputError(f"Cannot read the test ledger {path}: {exc.strerror or exc}.") from None
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def consultations(entries: list[Mapping[str, Any]], fingerprint: str) -> list[Mapping[str, Any]]:
    """The entries that looked at the test split with this fingerprint (any run)."""
    return [e for e in entries if e.get("test_fingerprint") == fingerprint]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds an exclusive `flock` on `<ledger>.lock` (created if needed) for the block."""
    lock = Path(f"{path}{LOCK_SUFFIX}")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise BadInputError(
            f"Cannot open the test-ledger lock {lock}: {exc.strerror or exc}. The directory must be writable."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _append_line(path: Path, line: bytes) -> None:
    """Appends one line with a single write on an O_APPEND descriptor, then fsyncs it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size:
            # A crash mid-write can leave a last line without its newline: start on a fresh line.
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
        written = os.write(fd, line)
        while written < len(line):  # a short write on a regular file is rare (disk full); finish it
            written += os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def append_entry(path: Path, entry: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Appends `entry` to the ledger at `path`, under the lock; returns (line written, earlier looks).

    `consulted_before` is set (overwriting any value in `entry`) to the number of earlier
    lines with the same `test_fingerprint`, counted under the same lock as the append.

    Args:
        path: the ledger file, e.g. `runs/test_ledger.jsonl`; created if missing.
        entry: a JSON-able mapping with at least `test_fingerprint`.

    Example:
        >>> written, before = append_entry(Path("runs/test_ledger.jsonl"), entry)  # doctest: +SKIP
        >>> written["consulted_before"] == len(before)  # doctest: +SKIP
        True
    """
    path = Path(path)
    fingerprint = entry.get("test_fingerprint")
    if not fingerprint:
        raise ValueError("a ledger entry needs a test_fingerprint")
    with locked(path):
        before = [dict(e) for e in consultations(read_ledger(path), fingerprint)]
        written = {**rundir.jsonable(dict(entry)), "consulted_before": len(before)}
        line = (json.dumps(written, sort_keys=False, allow_nan=False) + "\n").encode("utf-8")
        _append_line(path, line)
    return written, before
