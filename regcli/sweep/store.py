"""The sweep-directory layout (SPEC §4): names, the manifest, trial states and the lock.

```
<out>/<sweep name>-<UTC timestamp>-<id>/
  sweep.yaml        the resolved sweep spec (authoritative on --resume)
  sweep.json        manifest: the trials (id, configuration, params, seed), --smoke, each execution
  sweep.lock        held (flock) by the sweep process running it: owner pid, host, start
  trials/<id>/      one run directory per trial (its status.json is the trial's state)
  results.csv, leaderboard.csv, best.json, val_vs_<knob>.png, gap_vs_<knob>.png
```

A trial's state is its directory's status.json: no directory (or no status.json yet)
means `pending`. `completed` and `diverged` are final: the same spec and seed give the
same result (SPEC §5.6), so `--resume` re-runs every other state from a cleared directory.
No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regcli import __version__, rundir
from regcli.errors import BadInputError, RunDirError

SWEEP_SPEC = "sweep.yaml"
MANIFEST = "sweep.json"
LOCK = "sweep.lock"
TRIALS = "trials"
RESULTS = "results.csv"
LEADERBOARD = "leaderboard.csv"
BEST = "best.json"
FINAL_STATES = ("completed", "diverged")


def trial_dir(sweep_dir: Path, trial_id: str) -> Path:
    return Path(sweep_dir).absolute() / TRIALS / trial_id


def trial_state(sweep_dir: Path, trial_id: str) -> str:
    """`pending` (nothing written yet), or the state in the trial's status.json."""
    path = trial_dir(sweep_dir, trial_id) / rundir.STATUS
    try:
        state = json.loads(path.read_text()).get("state")
    except FileNotFoundError:
        return "pending"
    except (OSError, ValueError, AttributeError):
        return "failed"  # a torn or foreign status.json: re-run it
    return state if state in rundir.STATES else "failed"


def clear_trial(sweep_dir: Path, trial_id: str) -> None:
    """Removes a trial's partial directory so that it restarts cleanly."""
    path = trial_dir(sweep_dir, trial_id)
    if path.exists():
        shutil.rmtree(path)


def write_manifest(sweep_dir: Path, manifest: dict[str, Any]) -> None:
    rundir.atomic_write_json(Path(sweep_dir) / MANIFEST, manifest)


def new_manifest(sweep: Any) -> dict[str, Any]:
    """The manifest of a new sweep directory: what was expanded, and how."""
    return {
        "regcli": __version__,
        "created": rundir.utc_now(),
        "source": str(Path(sweep.source).absolute()),
        "smoke": sweep.smoke,
        "trials": [
            {"id": t.id, "config": t.config, "params": t.params, "seed": t.seed} for t in sweep.trials
        ],
        "executions": [],
    }


def read_manifest(sweep_dir: Path) -> dict[str, Any]:
    return rundir.read_json(Path(sweep_dir) / MANIFEST, "the sweep manifest")


def require_sweep_dir(path: Path) -> Path:
    """Checks that `path` is a sweep directory (sweep.yaml, sweep.json, trials/)."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"--resume {path}: not a directory. Pass a sweep directory such as runs/<sweep>-<time>-<id>.")
    missing = [name for name in (SWEEP_SPEC, MANIFEST) if not (path / name).is_file()]
    if missing:
        raise RunDirError(
            f"--resume {path}: not a regcli sweep directory (no {' or '.join(missing)}). "
            f"Pass the directory `regcli sweep` printed; to resume a single run use regcli train --resume."
        )
    return path


# --------------------------------------------------------------------------------------
# The lock: one sweep process per sweep directory
# --------------------------------------------------------------------------------------

def _read_owner(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        owner = json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return owner if isinstance(owner, dict) else {}


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path, on_note: Any = None, kind: str = "sweep") -> Iterator[dict[str, Any]]:
    """Holds `sweep.lock` for the block: an exclusive `flock` plus the owner's pid and host.

    `kind` names the command that holds it in the messages ("sweep", or "tune" for a tune
    directory, which runs its trials through the same store). Defaults to `"sweep"`.

    The kernel releases a `flock` when its process dies, even by SIGKILL, so a lock left
    by a dead sweep is stale by construction and is taken over (with a note naming the
    dead owner). A live owner makes this raise `BadInputError` (exit code 2) naming it.
    """
    path = Path(sweep_dir) / LOCK
    host = socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise BadInputError(
                f"{sweep_dir} is in use by another regcli {kind} (pid {owner.get('pid', '?')} on "
                f"{owner.get('host', '?')}, since {owner.get('started', '?')}). Two {kind}s must not run the "
                f"same trials: wait for it to finish or stop it, then resume. (A lock whose process has died "
                f"is taken over automatically.)"
            ) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the previous owner removed the file between our open and flock: retry
    previous = _read_owner(fd)
    if previous.get("host") == host and previous.get("pid") != os.getpid() and rundir.pid_alive(previous.get("pid")):
        # flock said free, yet the recorded owner runs: a file system without working flock.
        os.close(fd)
        raise BadInputError(
            f"{sweep_dir} is in use by another regcli {kind} (pid {previous['pid']} on {host}, since "
            f"{previous.get('started', '?')}). Wait for it to finish or stop it; if no {kind} runs there, "
            f"delete {path}."
        )
    try:
        if previous.get("pid") and on_note is not None:
            on_note(
                f"took over the stale lock of pid {previous['pid']} on {previous.get('host', '?')}: that {kind} "
                f"process is gone; the trials it left unfinished are restarted."
            )
        owner = {"pid": os.getpid(), "host": host, "started": rundir.utc_now()}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(owner) + "\n").encode())
        os.fsync(fd)
        yield owner
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
