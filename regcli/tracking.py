"""Experiment tracking, opt-in per spec (`tracking:`): TensorBoard event files and MLflow runs.

The run directory stays the record of a run; tracking copies it where people browse runs.
Both trackers are fed the history rows exactly as history.csv holds them (after the clean
training metrics are added), so every value they show is a value of the run directory.

- TensorBoard: `<run_dir>/tensorboard/{train,validation,clean}/`, one scalar per history
  column and epoch (step = the 1-based epoch of history.csv). `loss` is `train/epoch_loss`,
  `val_loss` is `validation/epoch_loss` and `clean_loss` is `clean/epoch_loss`, so one chart
  overlays the three curves of learning_curves.png. Written with `tf.summary.write`, which
  needs TensorFlow but not the `tensorboard` package (only viewing does). A resumed run
  rewrites the logs from its checkpoint's history, so they never hold an epoch twice.
- MLflow: logged once the run has finished (completed or diverged): params, metric
  histories, summary numbers, tags and the run directory's files. `mlflow` is imported only
  then, never on `--help` / `validate`. A failed or interrupted run is logged when it is
  resumed and finishes, so one run directory is one MLflow run.

`preflight(spec)` checks before any training what can be checked: MLflow installed, a local
store writable, a tracking server reachable.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from regcli import rundir
from regcli.dotted import flatten  # the same dotted keys `regcli compare` shows
from regcli.errors import BadInputError
from regcli.values import is_finite

INSTALL_HINT = "pip install 'regcli[mlflow]'"
TENSORBOARD_DIR = "tensorboard"
TRACKING_FILE = "tracking.json"  # where the run was logged (MLflow run id, or why it was not)
# A tracking server must answer a TCP connect within this many seconds before training starts.
CONNECT_TIMEOUT_S = 3.0
# MLflow retries an unreachable server for minutes by default; a finished run waits at most ~30 s.
HTTP_ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# The run directory's files logged as MLflow artifacts (when present).
ARTIFACT_FILES = (
    rundir.CONFIG,
    rundir.SUMMARY,
    rundir.HISTORY,
    rundir.DIAGNOSIS_JSON,
    rundir.DIAGNOSIS_MD,
    rundir.MODEL,
    rundir.ENVIRONMENT,
)
# MLflow's log_batch limits (per request).
_MAX_PARAMS, _MAX_METRICS, _MAX_PARAM_CHARS = 100, 1000, 6000


# ======================================================================================
# Before training
# ======================================================================================
def preflight(spec: Any) -> None:
    """Checks that the tracking the spec asks for can work, without importing MLflow.

    Raises:
        BadInputError: MLflow is not installed, a local store cannot be written, or a
            tracking server does not answer.
    """
    ml = spec.tracking.mlflow
    if ml is None:
        return
    if not mlflow_installed():
        raise BadInputError(
            f"tracking.mlflow asks for MLflow logging, but MLflow is not installed. Install it with "
            f"{INSTALL_HINT}, or remove tracking.mlflow from the spec."
        )
    scheme = urlsplit(ml.uri).scheme.lower() if "://" in ml.uri else ""
    if scheme in ("http", "https"):
        _check_server(ml.uri)
    else:
        _check_writable(local_store_path(ml.uri), ml.uri)


def mlflow_installed() -> bool:
    """True when `import mlflow` would work (found without importing it: MLflow takes seconds to import)."""
    return importlib.util.find_spec("mlflow") is not None


def local_store_path(uri: str) -> Path:
    """The directory (file store) or database file (sqlite) a local MLflow URI names."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file://"):
        return Path(urlsplit(uri).path)
    return Path(uri)


def _check_writable(path: Path, uri: str) -> None:
    """The store (or its nearest existing parent) is a writable directory; nothing is created."""
    is_db = uri.startswith("sqlite:")
    target = path.parent if is_db else path
    if is_db and path.is_dir():
        raise BadInputError(f"tracking.mlflow.uri: {path} is a directory; a sqlite URI names a database file.")
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BadInputError(
            f"tracking.mlflow.uri: cannot create the MLflow store at {target}: {probe} is a file, not a "
            f"directory. Received: {uri!r}. Choose another directory."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInputError(
            f"tracking.mlflow.uri: {probe} is not writable, so the MLflow store {target} cannot be written. "
            f"Received: {uri!r}. Choose a directory you can write to."
        )


def _check_server(uri: str) -> None:
    """A TCP connect to the tracking server succeeds within CONNECT_TIMEOUT_S (DNS included)."""
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
                outcome["ok"] = True
        except OSError as exc:
            outcome["error"] = exc.strerror or str(exc)

    # A daemon thread bounds name resolution too, which socket timeouts do not cover.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S + 0.5)
    if not outcome.get("ok"):
        why = outcome.get("error") or f"no answer within {CONNECT_TIMEOUT_S:g} s"
        raise BadInputError(
            f"tracking.mlflow.uri: the MLflow tracking server {parts.hostname}:{port} cannot be reached ({why}). "
            f"Received: {uri!r}. Start the server (mlflow server --port {port}) or log to a local store "
            "such as uri: mlruns."
        )


# ======================================================================================
# TensorBoard
# ======================================================================================
def tensorboard_scalars(row: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """(writer, tag, value) of one history row: val_X -> validation/epoch_X, clean_X -> clean/epoch_X, X -> train/epoch_X."""
    out = []
    for key, value in row.items():
        if key == "epoch" or not isinstance(value, int | float):
            continue
        if key.startswith("val_"):
            out.append(("validation", "epoch_" + key[4:], float(value)))
        elif key.startswith("clean_"):
            out.append(("clean", "epoch_" + key[6:], float(value)))
        else:
            out.append(("train", "epoch_" + key, float(value)))
    return out


class TensorBoardLog:
    """Scalar event files under `<run_dir>/tensorboard/`, one per writer (train, validation, clean).

    Starts afresh: existing logs are removed and `rows` (a resumed run's history so far)
    are written first.
    """

    def __init__(self, run_dir: Path, rows: Iterable[Mapping[str, Any]] = ()):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir()
        # The metadata tf.summary.scalar writes, without needing the tensorboard package.
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        self._writers: dict[str, Any] = {}
        for row in rows:
            self.epoch(row, flush=False)
        self.flush()

    def _writer(self, name: str):
        if name not in self._writers:
            self._writers[name] = self._tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def epoch(self, row: Mapping[str, Any], flush: bool = True) -> None:
        tf = self._tf
        step = int(row["epoch"])
        for name, tag, value in tensorboard_scalars(row):
            with self._writer(name).as_default():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=self._metadata)
        if flush:  # each epoch is visible in a running TensorBoard at once
            self.flush()

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


# ======================================================================================
# MLflow
# ======================================================================================
def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 3] + "..."


def _summary_numbers(summary: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric leaves of summary.json as `summary.<dotted key>` metrics."""
    return {
        f"summary.{key}": float(value)
        for key, value in flatten(summary).items()
        if is_finite(value)
    }


def _client(uri: str):
    """An MlflowClient for `uri`; MLflow 3's file store is opted into when the spec names a directory."""
    if not uri.startswith(("sqlite:", "http:", "https:")):
        # MLflow >= 3.x raises for directory stores ("maintenance mode") unless opted in; the
        # spec asked for a directory, so regcli opts in (sqlite:///mlflow.db avoids it).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    for key, value in HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import logging

    # MLflow's alembic migrations print INFO lines when a sqlite store is first created.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of experiment `name`, created when missing (another process may create it at the same time)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    kwargs = {}
    if uri.startswith("sqlite:"):  # artifacts beside the database, not in the current directory
        kwargs["artifact_location"] = (local_store_path(uri).parent / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, **kwargs)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def log_mlflow(run: Path, spec_dict: Mapping[str, Any], outcome: Any) -> dict[str, Any]:
    """Logs a finished run to MLflow and returns where: {"uri", "experiment", "experiment_id", "run_id"}."""
    from mlflow.entities import Metric, Param

    ml = spec_dict["tracking"]["mlflow"]
    client = _client(ml["uri"])
    experiment_id = _experiment_id(client, ml["experiment"], ml["uri"])
    summary, diagnosis = outcome.summary, outcome.diagnosis
    tags = {
        "verdict": str(diagnosis.get("verdict")),
        "best_epoch": str(summary.get("best_epoch")),
        "shipped_epoch": str(summary.get("shipped_epoch")),
        "state": outcome.state,
        "stopped_early": str(bool(summary.get("stopped_early"))).lower(),
        "regcli.run_dir": str(Path(run).absolute()),
        "mlflow.runName": Path(run).name,
    }
    diagnosis_md = Path(run) / rundir.DIAGNOSIS_MD
    if diagnosis_md.is_file():
        tags["mlflow.note.content"] = diagnosis_md.read_text()  # the run's description in the UI
    mlrun = client.create_run(experiment_id, run_name=Path(run).name, tags=tags)
    run_id = mlrun.info.run_id
    status = "FAILED"
    try:
        params = [Param(k, _param_text(v)) for k, v in flatten(spec_dict).items()]
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, int(row["epoch"]))
            for row in rundir.read_history(run).to_dict("records")
            for key, value in row.items()
            if key != "epoch" and isinstance(value, int | float) and not math.isnan(value)
        ]
        metrics += [Metric(k, v, now, 0) for k, v in _summary_numbers(summary).items()]
        for i in range(0, len(params), _MAX_PARAMS):
            client.log_batch(run_id, params=params[i : i + _MAX_PARAMS])
        for i in range(0, len(metrics), _MAX_METRICS):
            client.log_batch(run_id, metrics=metrics[i : i + _MAX_METRICS])
        for path in sorted(Path(run).glob("*.png")):
            client.log_artifact(run_id, str(path))
        for name in ARTIFACT_FILES:
            if (Path(run) / name).is_file():
                client.log_artifact(run_id, str(Path(run) / name))
        status = "FINISHED" if outcome.state == "completed" else "FAILED"
    finally:
        client.set_terminated(run_id, status)
    return {"uri": ml["uri"], "experiment": ml["experiment"], "experiment_id": experiment_id, "run_id": run_id}


# ======================================================================================
# What the runner uses
# ======================================================================================
class RunTracker:
    """The tracking of one run directory: `epoch(row)` while training, `finish(outcome)` after.

    With tracking off (the default) every method does nothing.
    """

    def __init__(self, run: Path, spec: Any, rows: Iterable[Mapping[str, Any]] = ()):
        self.run, self.spec = Path(run), spec
        self.tensorboard = TensorBoardLog(self.run, rows) if spec.tracking.tensorboard else None

    def epoch(self, row: Mapping[str, Any]) -> None:
        if self.tensorboard is not None:
            self.tensorboard.epoch(row)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def finish(self, outcome: Any) -> dict[str, Any] | None:
        """Logs a finished run to MLflow; a logging failure is a warning (the run itself is complete).

        Writes tracking.json: where the run was logged, or the error.
        """
        from regcli.spec import spec_to_dict

        self.close()
        if self.spec.tracking.mlflow is None:
            return None
        try:
            record = {"mlflow": log_mlflow(self.run, spec_to_dict(self.spec), outcome)}
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types; the run is done either way
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(
                f"warning: the run finished but could not be logged to MLflow ({self.spec.tracking.mlflow.uri}): "
                f"{message}",
                file=sys.stderr,
            )
            record = {"mlflow": {"uri": self.spec.tracking.mlflow.uri, "error": message}}
        if self.spec.tracking.tensorboard:
            record["tensorboard"] = TENSORBOARD_DIR
        try:
            rundir.atomic_write_json(self.run / TRACKING_FILE, record)
        except OSError:
            pass
        return record
