"""One experiment, end to end: spec -> data -> run directory -> training -> files; and N
packed experiments (`regcli.training.packed`) through the same writer, one run directory each.

Bad input (spec, data, arguments) is detected before the run directory is created.
Once it exists, status.json always tells the truth: `running` while training,
then `completed`, `diverged`, `failed` or `interrupted`.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regcli import __version__, interrupt, rundir, tracking
from regcli.errors import BadInputError, Interrupted, RegcliError, RunDirError, RunFailedError

SMOKE_EPOCHS = 2
# How often a packed tower's live history.csv is rewritten while it trains: 8 towers rewriting
# their whole history every 0.1 s epoch cost more than the epoch's validation.
PACKED_HISTORY_SECONDS = 1.0
SMOKE_TRAIN_ROWS = 256

_FIRST_COLUMNS = ["epoch", "loss", "val_loss", "data_loss", "val_data_loss", "clean_loss", "clean_data_loss"]
_LAST_COLUMNS = ["lr", "seconds"]


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]
    diagnosis: dict[str, Any]
    state: str
    # Inside `regcli.finish.deferred()` (a sweep worker): the plot and final status still to write.
    finish: dict[str, Any] | None = None


def history_columns(rows: list[dict[str, Any]]) -> list[str]:
    """history.csv columns: losses first, then metrics (train, val, clean), then lr and seconds."""
    keys = list(rows[0]) if rows else list(_FIRST_COLUMNS)
    first = [c for c in _FIRST_COLUMNS if c in keys]
    last = [c for c in _LAST_COLUMNS if c in keys]
    middle = sorted((c for c in keys if c not in first and c not in last), key=lambda c: (c.startswith("clean_"), c.startswith("val_"), c))
    return first + middle + last


def effective_spec(spec: Any, *, smoke: bool) -> Any:
    """The spec as it will run: `--smoke` caps epochs at 2 (rows are capped on the data)."""
    if not smoke:
        return spec
    training = spec.training.model_copy(update={"epochs": min(spec.training.epochs, SMOKE_EPOCHS)})
    return spec.model_copy(update={"training": training})


def check_compatible(spec: Any, task: str) -> None:
    """Cross-checks the spec against what the data turned out to be (before any training)."""
    monitor = spec.training.early_stopping.monitor
    if task == "regression" and monitor.endswith("accuracy"):
        raise BadInputError(
            f"training.early_stopping.monitor is {monitor!r}, but this is a regression task, which "
            f"reports mae. Use val_loss, val_data_loss or val_mae."
        )
    if task != "regression" and monitor.endswith("mae"):
        raise BadInputError(
            f"training.early_stopping.monitor is {monitor!r}, but this is a {task} task, which reports "
            f"accuracy. Use val_loss, val_data_loss or val_accuracy."
        )
    if spec.model.init_from:
        model_file = Path(spec.model.init_from) / rundir.MODEL
        if not model_file.is_file() or model_file.stat().st_size == 0:
            raise BadInputError(f"model.init_from: {model_file} is missing or empty; point it at a completed run.")


def default_name(spec: Any) -> str:
    if spec.name:
        return spec.name
    if spec.data.source:
        return spec.data.source
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(spec.data.path).stem) or "run"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_info(device: str) -> dict[str, Any]:
    """Python, Keras, backend and version, device, OS, command line, git commit of CWD."""
    import keras

    from regcli.training import backend

    gpus = backend.visible_gpus()
    return {
        "regcli": __version__,
        "python": sys.version.split()[0],
        "keras": keras.__version__,
        "backend": backend.backend_name(),
        "backend_version": backend.backend_version(),
        "device": "gpu" if gpus and device != "cpu" else "cpu",
        "gpus": gpus,
        "os": platform.platform(),
        "machine": platform.machine(),
        "command_line": sys.argv,
        "git_commit": _git_commit(),
    }


def _prepare(spec: Any, smoke: bool) -> Any:
    """Data, compatibility checks and the backend, before any run directory is touched.

    Keras is imported here, with the spec's backend: the training modules can be imported after.
    """
    from regcli.data import load_dataset, smoke_limit
    from regcli.training import backend

    ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)
    if smoke:
        ds = smoke_limit(ds, SMOKE_TRAIN_ROWS)
    check_compatible(spec, ds.task)
    backend.select(spec.backend, spec.device, tensorflow_needed=spec.tracking.tensorboard)
    backend.import_keras_quietly()
    if spec.device == "gpu" and not backend.visible_gpus():
        raise BadInputError(f"device: gpu was asked for, but the {spec.backend} backend sees no GPU. Use device: auto or cpu.")
    return ds


def _init_path(spec: Any) -> str | None:
    return str(Path(spec.model.init_from) / rundir.MODEL) if spec.model.init_from else None


def _start_files(run: Path, spec: Any, env: dict[str, Any], *, created: bool) -> None:
    """config.yaml, status `running` and environment.json: all three, or none of them.

    A full disk or an unwritable directory here is bad input for `--out` (exit 2): the
    directory this run created is removed again (a claimed sweep trial directory is emptied),
    so nothing half-written is left, and no status.json claims a run that never started.
    """
    from regcli.spec import dump_spec_yaml

    try:
        rundir.atomic_write_text(run / rundir.CONFIG, dump_spec_yaml(spec))
        rundir.write_status(run, "running")
        rundir.atomic_write_json(run / rundir.ENVIRONMENT, env)
    except (OSError, KeyboardInterrupt) as exc:
        rundir.discard_run_dir(run, created=created)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(f"Interrupted before training started; {run} was removed.") from None
        raise RunDirError(
            f"{run.parent}: cannot write the run directory's first files ({exc.strerror or exc}: disk full "
            f"or not writable?); nothing was kept. Free space or choose another --out."
        ) from None


def run_experiment(
    spec: Any,
    *,
    out: Path,
    name: str | None = None,
    smoke: bool = False,
    on_start: Callable[[Path, int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    run_dir: Path | None = None,
) -> RunOutcome:
    """Trains one spec into a new run directory under `out` and returns the outcome.

    `run_dir`, when given, is used instead of a new `<out>/<name>-<time>-<id>` (a sweep's
    `trials/<trial-id>/`); it must not exist yet or be empty.

    Raises BadInputError (before creating anything) for unusable input,
    Interrupted on Ctrl-C and RunFailedError when training fails; a diverged run
    returns normally with state `diverged` (the CLI turns it into exit code 1).
    """
    spec = effective_spec(spec, smoke=smoke)
    tracking.preflight(spec)  # MLflow installed, its store writable or server reachable
    if run_dir is None:  # fail fast, before the data and the backend are loaded
        rundir.check_run_name(name or default_name(spec), "--name" if name else "name")
        rundir.check_out_dir(out)
    with interrupt.deferred():  # Ctrl-C acts between steps, never inside TensorFlow
        return _run_new(spec, out, name, smoke, on_start, on_epoch, run_dir)


def _run_new(spec, out, name, smoke, on_start, on_epoch, run_dir) -> RunOutcome:
    ds = _prepare(spec, smoke)
    from regcli.training.fit import prepare_model  # Keras is loaded with the spec's backend by now

    prepared = prepare_model(spec, ds, init_model_path=_init_path(spec))  # model errors: before any file
    interrupt.check()  # a Ctrl-C during the imports or the data: nothing was created
    env = environment_info(spec.device)
    env["smoke"] = smoke
    if run_dir is not None:
        run = rundir.claim_run_dir(Path(run_dir))
    else:
        run = rundir.new_run_dir(Path(out), rundir.check_run_name(name or default_name(spec), "--name" if name else "name"))
    with rundir.run_lock(run):  # a `--resume` of this run waits for it to end
        _start_files(run, spec, env, created=run_dir is None)
        return _train_into(_RunJob(run, spec, ds, env, smoke, prepared), on_start, on_epoch)


def run_packed(
    specs: list[Any],
    run_dirs: list[Path],
    *,
    smoke: bool = False,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> list[RunOutcome]:
    """Trains compatible specs as one packed model; each becomes a normal run directory.

    The run directories are indistinguishable in layout from unpacked runs; their
    summary.json and environment.json say `packed: {size, index}`. A failure marks every
    directory of the pack `failed` (a sweep then retries those trials unpacked).
    """
    from regcli.spec import spec_to_dict
    from regcli.training.packs import pack_key

    specs = [effective_spec(s, smoke=smoke) for s in specs]
    keys = {pack_key(spec_to_dict(s)) for s in specs}
    if None in keys or len(keys) != 1:
        raise BadInputError("run_packed needs specs that differ only in model, diagnosis, name and early stopping.")
    tracking.preflight(specs[0])  # tracking is part of the pack key: the same for every tower
    with interrupt.deferred():  # Ctrl-C acts between steps, never inside TensorFlow
        return _run_packed(specs, run_dirs, smoke, on_epoch)


def _start_pack_files(runs: list[Path], specs: list[Any], env: dict[str, Any]) -> None:
    """Each tower's config.yaml, status `running` and environment.json (which says `packed`)."""
    from regcli.spec import dump_spec_yaml

    for k, (run, spec) in enumerate(zip(runs, specs, strict=True)):
        rundir.atomic_write_text(run / rundir.CONFIG, dump_spec_yaml(spec))
        rundir.write_status(run, "running")
        rundir.atomic_write_json(run / rundir.ENVIRONMENT, {**env, "packed": {"size": len(specs), "index": k}})


def _run_packed(specs, run_dirs, smoke, on_epoch) -> list[RunOutcome]:
    ds = _prepare(specs[0], smoke)
    from regcli.training.packed import train_packed  # Keras is loaded with the specs' backend by now

    interrupt.check()
    runs = [rundir.claim_run_dir(Path(d)) for d in run_dirs]
    env = environment_info(specs[0].device)
    env["smoke"] = smoke
    _start_pack_files(runs, specs, env)
    tower_rows: list[list[dict]] = [[] for _ in specs]
    trackers: list[tracking.RunTracker] = []

    written = [0.0] * len(specs)

    def record(index: int, row: dict) -> None:
        tower_rows[index].append(row)
        rows = tower_rows[index]
        # A pack's towers end their epochs together: their live history.csv files are rewritten at
        # most every PACKED_HISTORY_SECONDS (the final, durable write is in _write_results).
        if time.monotonic() - written[index] >= PACKED_HISTORY_SECONDS:
            rundir.write_csv(runs[index] / rundir.HISTORY, rows, history_columns(rows), durable=False)
            written[index] = time.monotonic()
        trackers[index].epoch(row)
        if on_epoch is not None:
            on_epoch(index, row)

    started = time.perf_counter()
    try:
        trackers.extend(tracking.RunTracker(run, spec) for run, spec in zip(runs, specs, strict=True))
        results = train_packed(specs, ds, on_epoch=record)
    except KeyboardInterrupt:
        for run in runs:
            _try_status(run, "interrupted", "interrupted by the user (Ctrl-C)")
        raise Interrupted(f"Interrupted. The {len(runs)} packed runs are consistent: state interrupted.") from None
    except Exception as exc:  # noqa: BLE001 - recorded in every tower's status, reported once
        for run in runs:
            _try_status(run, "failed", f"packed training failed: {type(exc).__name__}: {exc}")
        if isinstance(exc, RegcliError):
            raise
        raise RunFailedError(f"Packed training of {len(runs)} runs failed: {type(exc).__name__}: {exc}") from None
    finally:
        for tracker in trackers:
            tracker.close()
    seconds = (time.perf_counter() - started) / len(specs)
    jobs = [_RunJob(run, spec, ds, {**env, "packed": {"size": len(specs), "index": k}}, smoke)
            for k, (run, spec) in enumerate(zip(runs, specs, strict=True))]
    outcomes = [_write_tower(job, result, seconds) for job, result in zip(jobs, results, strict=True)]
    for tracker, outcome in zip(trackers, outcomes, strict=True):
        tracker.finish(outcome)
    return outcomes


def _write_tower(job: _RunJob, result: Any, seconds: float) -> RunOutcome:
    """One packed tower's results, as an unpacked run writes them."""
    state = "diverged" if result.diverged else "completed"
    try:
        return _write_results(job, result, state, seconds)
    except OSError as exc:
        _try_status(job.run, "failed", f"could not write results: {exc}")
        raise RunFailedError(f"Could not write the results of {job.run}: {exc.strerror or exc}.") from None


def resume_run(
    run_dir: Path,
    *,
    on_start: Callable[[Path, int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> RunOutcome:
    """Continues an interrupted or killed run from its last completed epoch.

    The run's config.yaml is authoritative. Model and optimizer variables, early
    stopping's wait/best/best weights and the history come from checkpoint.npz, and the
    data pipeline skips the epochs already seen, so the run ships and stops at the same
    epochs as an uninterrupted one. Without a usable checkpoint (killed during the first
    epoch) the run restarts from epoch 1 in the same directory.
    """
    run = rundir.require_run_dir(Path(run_dir))
    with rundir.run_lock(run), interrupt.deferred():  # two resumes of one run at once: the second is refused
        return _resume_locked(run, on_start, on_epoch)


def _resume_locked(run: Path, on_start, on_epoch) -> RunOutcome:
    from regcli.spec import load_experiment_spec

    status = _readable_status(run)
    state = status.get("state")
    if state == "completed":
        raise BadInputError(f"--resume {run}: this run already completed; there is nothing to resume.")
    if state == "running" and rundir.pid_alive(status.get("pid")):
        raise BadInputError(
            f"--resume {run}: the run is still running (pid {status.get('pid')}). Stop it first, or wait for it."
        )
    rundir.require_writable(run, "--resume")
    spec = load_experiment_spec(run / rundir.CONFIG)
    tracking.preflight(spec)
    env_path = run / rundir.ENVIRONMENT
    smoke = bool(rundir.read_json(env_path, "the environment").get("smoke")) if env_path.is_file() else False
    ds = _prepare(spec, smoke)
    from regcli.training.callbacks import Checkpoint  # Keras is loaded with the spec's backend by now
    from regcli.training.fit import prepare_model

    ckpt = None
    ckpt_path = run / rundir.CHECKPOINT
    if ckpt_path.is_file():
        try:
            ckpt = Checkpoint.from_file(ckpt_path)
        except (OSError, ValueError, KeyError) as exc:
            print(f"warning: {ckpt_path} is unreadable ({exc}); restarting the run from epoch 1.", file=sys.stderr)
    prepared = prepare_model(spec, ds, init_model_path=_init_path(spec), resume=ckpt)
    interrupt.check()  # a Ctrl-C during the imports or the data: nothing was touched
    rows = ckpt.rows[: ckpt.epoch] if ckpt else []
    env = environment_info(spec.device)
    env["smoke"] = smoke
    env["resumed_from_epoch"] = ckpt.epoch if ckpt else 0
    try:
        rundir.remove_temp_files(run)
        rundir.write_csv(run / rundir.HISTORY, rows, history_columns(rows))
        rundir.write_status(run, "running")
        rundir.atomic_write_json(run / rundir.ENVIRONMENT, env)
    except OSError as exc:  # checked writable above; a disk that fills now
        _try_status(run, "failed", f"could not resume: {exc}")
        raise RunFailedError(
            f"--resume {run}: a file could not be written ({exc.strerror or exc}); the checkpoint is kept. "
            f"Free space and run `regcli train --resume {run}` again."
        ) from None
    return _train_into(_RunJob(run, spec, ds, env, smoke, prepared, ckpt), on_start, on_epoch)


def _readable_status(run: Path) -> dict:
    try:
        return rundir.read_json(run / rundir.STATUS, "the run status")
    except BadInputError as exc:  # a truncated status.json is repaired by resuming
        print(f"warning: {exc} It will be rewritten.", file=sys.stderr)
        return {}


@dataclass
class _RunJob:
    """One run to train (or continue) in its directory, and what its files will record."""

    run: Path
    spec: Any  # the effective spec (smoke limits applied)
    ds: Any  # the `regcli.data.Dataset`
    env: dict[str, Any]  # environment.json's content
    smoke: bool
    prepared: Any = None  # the `regcli.training.fit.PreparedModel` built before the directory existed
    ckpt: Any = None  # the `regcli.training.callbacks.Checkpoint` a resume continues from


def _train_into(job: _RunJob, on_start, on_epoch) -> RunOutcome:
    """Trains (or continues) in `job.run`, keeping status.json truthful, and writes the results."""
    from regcli.training.fit import train

    run, spec, ckpt = job.run, job.spec, job.ckpt
    started = time.perf_counter()
    if on_start is not None:
        on_start(run, spec.training.epochs)
    rows: list[dict[str, Any]] = list(ckpt.rows[: ckpt.epoch]) if ckpt else []
    tracker: tracking.RunTracker | None = None

    def record(row: dict) -> None:
        rows.append(row)
        # Not fsynced every epoch (the rename is atomic); the final write below is durable.
        rundir.write_csv(run / rundir.HISTORY, rows, history_columns(rows), durable=False)
        tracker.epoch(row)
        if on_epoch is not None:
            on_epoch(row)

    try:
        # A resumed run's TensorBoard logs are rewritten from the checkpoint's rows: no epoch twice.
        tracker = tracking.RunTracker(run, spec, rows)
        result = train(
            spec, job.ds, on_epoch=record, checkpoint_path=run / rundir.CHECKPOINT, resume=ckpt, prepared=job.prepared
        )
    except KeyboardInterrupt:
        rundir.write_status(run, "interrupted", "interrupted by the user (Ctrl-C)")
        raise Interrupted(
            f"Interrupted. {run} is consistent: state interrupted, {len(rows)} epoch(s) in history.csv. "
            f"Continue it with `regcli train --resume {run}`."
        ) from None
    except RegcliError as exc:
        rundir.write_status(run, "failed", str(exc))
        raise
    except OSError as exc:  # disk full, file-size limit, directory removed while training
        _try_status(run, "failed", f"could not write to the run directory: {exc}")
        raise RunFailedError(
            f"Training stopped in {run}: a file could not be written ({exc.strerror or exc}: disk full, "
            f"a file-size limit or a removed directory?). The files there are complete up to the last epoch "
            f"recorded; free space and run `regcli train --resume {run}`."
        ) from None
    except Exception as exc:  # a backend error: record it, report it without a traceback
        _try_status(run, "failed", f"{type(exc).__name__}: {exc}")
        raise RunFailedError(f"Training failed in {run}: {type(exc).__name__}: {exc}") from None
    finally:
        if tracker is not None:
            tracker.close()
    return _ship(job, result, started, tracker)


def _ship(job: _RunJob, result: Any, started: float, tracker: tracking.RunTracker) -> RunOutcome:
    """Writes a trained run's results (the checkpoint goes once they are all there)."""
    run = job.run
    state = "diverged" if result.diverged else "completed"
    if job.ckpt is not None:
        result.summary["resumed_from_epoch"] = job.ckpt.epoch
    try:
        outcome = _write_results(job, result, state, time.perf_counter() - started)
    except KeyboardInterrupt:
        rundir.write_status(run, "interrupted", "interrupted by the user (Ctrl-C) while writing results")
        raise Interrupted(f"Interrupted while writing results. {run}: state interrupted.") from None
    except OSError as exc:
        _try_status(run, "failed", f"could not write results: {exc}")
        raise RunFailedError(
            f"Could not write the results of {run}: {exc.strerror or exc} (disk full or a file-size limit?). "
            f"Files already there are complete; none is half-written."
        ) from None
    (run / rundir.CHECKPOINT).unlink(missing_ok=True)
    tracker.finish(outcome)
    return outcome


def _try_status(run: Path, state: str, error: str) -> None:
    try:
        rundir.write_status(run, state, error)
    except OSError:
        pass


def _write_results(job: _RunJob, result: Any, state: str, seconds: float) -> RunOutcome:
    """history.csv, model.keras, summary.json, the diagnosis, the curves; then the final status."""
    from regcli import finish
    from regcli.diagnosis import diagnose, render_markdown
    from regcli.spec import spec_to_dict
    from regcli.training.fit import save_model

    run, spec, ds, env, smoke = job.run, job.spec, job.ds, job.env, job.smoke

    summary = dict(result.summary)
    summary.update(
        {
            "run_name": run.name,
            "state": state,
            "task": ds.task,
            "n_classes": ds.n_classes,
            "n_train": int(len(ds.x_train)),
            "n_val": int(len(ds.x_val)),
            "n_test": int(len(ds.x_test)),
            "seconds": seconds,
            "seed": spec.seed,
            "backend": env["backend"],
            "device": env["device"],
            "smoke": smoke,
            "baseline_val_error": ds.info.get("baseline_val_error"),
            "target_mean": ds.target_mean,
            "target_std": ds.target_std,
            "data": ds.info,
        }
    )
    rundir.write_csv(run / rundir.HISTORY, result.history, history_columns(result.history))
    save_model(result.model, run / rundir.MODEL)
    rundir.atomic_write_json(run / rundir.SUMMARY, summary)
    summary = json.loads((run / rundir.SUMMARY).read_text())  # the JSON form (NaN -> null) feeds the rest
    history = rundir.read_history(run)
    config = spec_to_dict(spec)
    diagnosis = diagnose(history, summary, config, run_dir=str(run))
    rundir.atomic_write_json(run / rundir.DIAGNOSIS_JSON, diagnosis)
    rundir.atomic_write_text(run / rundir.DIAGNOSIS_MD, render_markdown(diagnosis, summary))
    error = None
    if state == "diverged":
        error = "the loss became NaN or infinite (TerminateOnNaN stopped training)"
    # learning_curves.png, then status.json; deferred only where MLflow (which logs the PNG) is off
    pending = finish.finish_or_defer(run, state, error, history, summary, can_defer=spec.tracking.mlflow is None)
    return RunOutcome(run, summary, diagnosis, state, pending)
