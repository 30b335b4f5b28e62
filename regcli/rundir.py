"""The run-directory layout (SPEC §4): names, atomic writes, status, reading a run back.

Every file regcli writes goes through `atomic_write_bytes`: a temp file in the same
directory, fsync, then `os.replace`, so a crash leaves either the old or the new file.
Every command that reads a run back (diagnose, test, compare, report, ls) reads it through
`RunFiles`, and words its state with `run_state`, so each file's problem reads the same everywhere.
No TensorFlow here: `diagnose` and `ls` read run directories without a backend.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from regcli.errors import BadInputError, RunDirError

CONFIG = "config.yaml"
STATUS = "status.json"
HISTORY = "history.csv"
SUMMARY = "summary.json"
DIAGNOSIS_JSON = "diagnosis.json"
DIAGNOSIS_MD = "diagnosis.md"
CURVES = "learning_curves.png"
MODEL = "model.keras"
ENVIRONMENT = "environment.json"
CHECKPOINT = "checkpoint.npz"  # per-epoch training state for `train --resume`; removed once the run ends
# The test split a `regcli.keras.RunRecorder` run was given (`test_data=`), for `regcli test` only.
TEST_SPLIT = "test_split.npz"

RUN_FILES = (CONFIG, STATUS, HISTORY, SUMMARY, DIAGNOSIS_JSON, DIAGNOSIS_MD, CURVES, MODEL, ENVIRONMENT)
STATES = ("running", "completed", "failed", "diverged", "interrupted")

# mkstemp creates files 0600; regcli's files get the usual permissions (0666 minus the umask).
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with seconds, e.g. `2026-11-27T05:01:02Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_run_name(name: str, key: str = "name") -> str:
    """Returns `name` when it is a safe directory name; raises RunDirError otherwise.

    Letters, digits, `.`, `_`, `-`, starting with a letter or digit: `../../etc` or
    `a/b` cannot escape the output directory.
    """
    if not _NAME_RE.match(name):
        raise RunDirError(
            f"{key} must be 1-100 characters of letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit, so the run directory stays inside the output directory. Received: {name!r}."
        )
    return name


def check_out_dir(out: Path, key: str = "--out") -> Path:
    """RunDirError (exit 2) when `out` could not hold run directories; creates nothing.

    `out` may not exist yet: then its nearest existing ancestor must be a writable directory
    (it is created with the run directory, so bad input leaves no empty `--out` behind).
    `key` names the argument in the message. Defaults to `"--out"`.
    """
    out = Path(out)
    probe = out
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise RunDirError(f"{key} {out}: {probe} is a broken symbolic link. Choose another {key}.")
        probe = probe.parent
    if not probe.is_dir():
        raise RunDirError(f"{key} {out}: {probe} is not a directory, so no run directory can be made under it.")
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only_mount(probe) else "not writable"
        raise RunDirError(f"{key} {out}: {probe} is {why}. Choose another {key}.")
    return out


def ensure_out_dir(out: Path) -> Path:
    """Creates the output directory if needed; RunDirError (exit 2) when it cannot be used."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {out}: cannot create the output directory: {exc.strerror or exc}.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(f"--out {out}: the output directory is not writable. Choose another --out.")
    return out


def new_run_dir(out: Path, name: str) -> Path:
    """Creates `<out>/<name>-<UTC timestamp>-<6 hex>` and returns it.

    The random suffix and `mkdir(exist_ok=False)` make concurrent runs into the same
    `--out` collision-free.
    """
    check_run_name(name)
    out = ensure_out_dir(out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for _ in range(100):
        run = out / f"{name}-{stamp}-{secrets.token_hex(3)}"
        if run.resolve().parent != out.resolve():
            raise RunDirError(f"name {name!r} would leave the output directory {out}.")
        try:
            run.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"--out {out}: cannot create a run directory: {exc.strerror or exc}.") from None
        return run
    raise RunDirError(f"--out {out}: could not find a free run directory name.")


def claim_run_dir(run: Path) -> Path:
    """Creates `run` (parents included) for a run whose directory name is fixed, e.g. a sweep trial.

    An existing empty directory is accepted; one holding files is refused.
    """
    run = Path(run)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{run}: cannot create the run directory: {exc.strerror or exc}.") from None
    if any(run.iterdir()):
        raise RunDirError(f"{run} already holds files; a run needs an empty directory.")
    return run


@contextlib.contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Holds an exclusive `flock` on the run directory itself while a process trains in it.

    `regcli train` holds it for its new run and `train --resume` for the run it continues,
    so two resumes started at the same moment cannot both train (the second is refused,
    exit 2), whatever status.json's pid says. No file is created: the lock is on the
    directory, and the kernel drops it when the process dies, even by SIGKILL.
    """
    fd = os.open(run, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(
                f"--resume {run}: another regcli process is training this run right now (it holds the run "
                f"directory's lock). Wait for it to finish, or stop it and resume again."
            ) from None
        yield
    finally:
        os.close(fd)


def require_writable(run: Path, flag: str) -> None:
    """RunDirError (exit 2) naming `flag` when files cannot be created in `run` (read-only mount, permissions)."""
    if not os.access(run, os.W_OK | os.X_OK):
        reason = "a read-only file system" if _read_only_mount(run) else "no write permission"
        raise RunDirError(
            f"{flag} {run}: the run directory is not writable ({reason}), and resuming rewrites its files. "
            f"Nothing was changed. Copy the run directory somewhere writable and resume the copy."
        )


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def discard_run_dir(run: Path, *, created: bool) -> None:
    """Removes a run directory that never got its first files: the whole directory when this
    process `created` it, else (a claimed sweep trial directory) only what is inside it."""
    if created:
        shutil.rmtree(run, ignore_errors=True)
        return
    for child in Path(run).iterdir() if Path(run).is_dir() else []:
        with contextlib.suppress(OSError):
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Writes `data` to `path` atomically (temp file in the same directory, fsync, rename).

    `durable=False` skips the fsync: the rename is still atomic, so a killed process leaves
    the old or the new file; only a power loss could lose the latest version. Per-epoch
    files (history.csv during training, the checkpoint) use it to keep epochs fast.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def jsonable(value: Any) -> Any:
    """Converts numpy scalars/arrays and NaN/inf (-> None) into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def format_cell(value: Any) -> str:
    """A value as a table shows it: 4 significant digits for floats, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: list[str], durable: bool = True) -> None:
    """Writes rows atomically as CSV; missing values are empty cells, floats full precision."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"), durable=durable)


def write_status(run: Path, state: str, error: str | None = None, pid: int | None = None) -> dict[str, Any]:
    """Writes status.json, keeping `started` from the previous status if there is one.

    `pid`: the process that trained the run. Defaults to this one.
    """
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    previous = {}
    path = Path(run) / STATUS
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
    status = {
        "state": state,
        "started": previous.get("started") or utc_now(),
        "ended": None if state == "running" else utc_now(),
        "error": error,
        "pid": pid or os.getpid(),
    }
    atomic_write_json(path, status)
    return status


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Reads a JSON object a run directory should hold; a clear RunDirError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} is missing: {what} has not been written (was the run interrupted?).")
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is not text: the file is corrupt.") from None
    except ValueError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}): the file is truncated or corrupt.") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} must hold a JSON object. Received: {type(data).__name__}.")
    return data


def read_history(run: Path):
    """Reads history.csv as a DataFrame; a clear RunDirError for a missing, empty or truncated file."""
    import pandas as pd

    path = Path(run) / HISTORY
    if not path.is_file():
        raise RunDirError(f"{path} is missing: no epoch of this run has been recorded.")
    text = path.read_text(errors="replace")
    if not text.strip():
        raise RunDirError(f"{path} is empty: no epoch of this run has been recorded.")
    if not text.endswith("\n"):
        raise RunDirError(f"{path} ends in a partial line: the file is truncated.")
    try:
        df = pd.read_csv(io.StringIO(text))
    except Exception as exc:  # pandas raises several parser error types
        raise RunDirError(f"{path} cannot be parsed as CSV ({exc}): the file is corrupt.") from None
    missing = [c for c in ("epoch", "loss", "val_loss") if c not in df.columns]
    if missing:
        raise RunDirError(f"{path} lacks the column(s) {', '.join(missing)}: it is not a regcli history.")
    return df


def read_config(run: Path) -> dict[str, Any]:
    """The run's resolved spec as a plain dict (safe loader; not re-validated: data may have moved)."""
    from regcli.spec import load_yaml_file

    path = Path(run) / CONFIG
    if not path.is_file():
        raise RunDirError(f"{path} is missing: this run directory has no resolved spec.")
    try:
        config = load_yaml_file(path)
    except BadInputError as exc:
        raise RunDirError(f"{path} cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path} must hold a mapping (the resolved spec). It is corrupt.")
    return config


def probe_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) for a readable JSON object; (None, what is wrong) otherwise, e.g. `summary.json truncated`.

    For a listing that must go on past a damaged run: nothing is raised.
    """
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, f"{name} missing"
    except OSError as exc:
        return None, f"{name} unreadable ({exc.strerror or exc})"
    if not raw.strip():
        return None, f"{name} empty"
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except UnicodeDecodeError:
        return None, f"{name} corrupt (not text)"
    except json.JSONDecodeError as exc:
        # regcli's JSON files end in "}": without it, or when the parser ran out of input, the
        # writer was cut off; an error inside a complete-looking file is corruption.
        stripped = text.rstrip()
        truncated = not stripped.endswith("}") or exc.pos >= len(stripped)
        return None, f"{name} truncated" if truncated else f"{name} corrupt"
    if not isinstance(data, dict):
        return None, f"{name} corrupt (not a JSON object)"
    return data, None


def pid_alive(pid: Any) -> bool:
    """True when a process with this pid exists on this machine (a `running` status whose pid is gone is stale)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_files(files: Mapping[Path, bytes]) -> None:
    """Writes several files of one run so that a failure leaves every one of them as it was.

    Every temp file is written (and fsynced) first; only when all are on disk are they renamed
    into place. A read-only or full file system fails at the first temp file: nothing changes.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), _FILE_MODE)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def write_error(path: Path, exc: OSError, what: str) -> str:
    """One sentence for a file regcli could not write, e.g. `runs/x/diagnosis.json could not be
    rewritten: Read-only file system (errno 30, EROFS).`"""
    import errno as _errno

    reason = exc.strerror or str(exc)
    code = f" (errno {exc.errno}, {_errno.errorcode.get(exc.errno, '?')})" if exc.errno else ""
    return f"{path} could not be {what}: {reason}{code}."


# The effective state of a run: status.json's state, except that a `running` status whose
# process is gone is `killed` (SIGKILL, OOM killer, a power cut: nothing could record the end).
KILLED = "killed"


def run_state(run: Path, status: Mapping[str, Any] | None = None) -> tuple[str, str | None]:
    """(effective state, one sentence about it or None) for a run directory; the one rule every command uses.

    `running` with a live pid stays `running` ("still training"); `running` whose pid is gone
    (or was never recorded) is `killed`, with the `regcli train --resume` command that
    continues it. `status` is status.json's content when the caller has read it already.
    Every command that reads a run (diagnose, report, test, ls, compare) words it this way.
    """
    if status is None:
        status = read_json(Path(run) / STATUS, "the run status")
    state = status.get("state")
    if state != "running":
        return str(state), None
    pid = status.get("pid")
    if pid_alive(pid):
        return "running", (
            f"status.json says the run is still running and its process (pid {pid}) is alive: it is "
            f"still training. Wait for it to finish."
        )
    return KILLED, (
        f"status.json says the run is still running, but its process (pid {pid}) is gone: it was "
        f"killed. Resume it with `regcli train --resume {run}`."
    )


def require_finished(run: Path, status: Mapping[str, Any], doing: str) -> str:
    """The run's state when training has ended; RunDirError `<run> cannot be <doing>: ...` while it runs or after a kill."""
    state, sentence = run_state(run, status)
    if state in ("running", KILLED):
        raise RunDirError(f"{run} cannot be {doing}: {sentence}")
    return state


def remove_temp_files(run: Path) -> list[str]:
    """Deletes temp files a crash left behind (`.<name>.*.tmp`, `.<stem>.tmp.keras`); returns their names."""
    removed = []
    for path in Path(run).glob(".*.tmp*"):
        if path.is_file():
            path.unlink()
            removed.append(path.name)
    return removed


def require_run_dir(run: Path) -> Path:
    """Checks that `run` is a directory holding status.json; returns it as a Path."""
    run = Path(run)
    if not run.is_dir():
        raise RunDirError(f"{run} is not a directory. Pass a run directory such as runs/<name>-<time>-<id>.")
    if not (run / STATUS).is_file() and not (run / CONFIG).is_file():
        raise RunDirError(f"{run} is not a regcli run directory: it has no {STATUS} or {CONFIG}.")
    return run


@dataclass(frozen=True)
class RunFiles:
    """One run directory read back: each file parsed once, on first use, with the wording every command shares.

    `diagnose`, `test`, `compare`, `report` and `ls` read runs through it, so a missing, truncated
    or corrupt status.json, summary.json, config.yaml or history.csv is named the same way by each
    (the `RunDirError`s of `read_json`, `read_config` and `read_history`). Nothing is written, and
    a file is read when first asked for: `state()` of a run without a summary reads no summary.

    Example:
        >>> files = RunFiles.open(Path("runs/bc-20261127T050141Z-777577"))  # doctest: +SKIP
        >>> files.require_finished("diagnosed"), files.summary["best_epoch"]  # doctest: +SKIP
        ('completed', 12)
    """

    path: Path

    @classmethod
    def open(cls, run: Path) -> RunFiles:
        """The files of `run`, once `require_run_dir` accepts it; reads nothing yet."""
        return cls(require_run_dir(run))

    def has(self, name: str) -> bool:
        """True when the run directory holds `name` (e.g. `SUMMARY`), whether or not it is readable."""
        return (self.path / name).exists()

    @cached_property
    def status(self) -> dict[str, Any]:
        return read_json(self.path / STATUS, "the run status")

    @cached_property
    def summary(self) -> dict[str, Any]:
        return read_json(self.path / SUMMARY, "the run summary")

    @cached_property
    def config(self) -> dict[str, Any]:
        """config.yaml as a plain dict (`read_config`)."""
        return read_config(self.path)

    @cached_property
    def history(self):
        """history.csv as a DataFrame (`read_history`)."""
        return read_history(self.path)

    @cached_property
    def environment(self) -> dict[str, Any]:
        """environment.json, or `{}` for a run that has none."""
        path = self.path / ENVIRONMENT
        return read_json(path, "the run environment") if path.is_file() else {}

    @cached_property
    def diagnosis(self) -> dict[str, Any]:
        return read_json(self.path / DIAGNOSIS_JSON, "the diagnosis")

    def probe(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """`probe_json` of one file: (object, None) or (None, `summary.json truncated`); never raises."""
        return probe_json(self.path / name)

    def state(self) -> tuple[str, str | None]:
        """`run_state` of this run, from its status.json."""
        return run_state(self.path, self.status)

    def require_finished(self, doing: str) -> str:
        """`require_finished` of this run: its state once training has ended, else RunDirError."""
        return require_finished(self.path, self.status, doing)
