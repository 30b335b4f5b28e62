"""The final exam (SPEC §1 `regcli test`, §5.5): the shipped model, once, on the untouched test split.

`final_test(run_dir)` refuses a --smoke run (SPEC §1: a smoke run never consults the test split),
rebuilds the exact test split from the run's resolved config.yaml,
refuses when its fingerprint differs from the one the run recorded (the data changed),
evaluates model.keras once in inference mode, records the result in the test ledger and
adds `metrics.test` to summary.json. Every check that can fail runs before Keras is
imported and before anything is written: a refused test leaves every file as it was.
A run that `regcli.keras.RunRecorder` recorded has no spec to rebuild its data from: its test
split is the `test_split.npz` it was given, read and checked by `regcli.keras.recorded`.

Example:

>>> result = final_test(Path("runs/bc-20261127T050141Z-777577"))  # doctest: +SKIP
>>> result["metrics"]["error"], result["consulted_before"]  # doctest: +SKIP
(0.035, 0)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.commands.ledger import append_entry, default_ledger
from regcli.errors import BadInputError, RegcliError, RunDirError


def _check_completed(files: rundir.RunFiles) -> None:
    state = files.require_finished("tested")
    if state == "completed":
        return
    status = files.status
    detail = f" ({status['error']})" if status.get("error") else ""
    raise RunDirError(
        f"{files.path} cannot be tested: status.json says state {state}{detail}; only a completed run ships a "
        f"model worth a look at the test split. Train it again (or resume it) first."
    )


def _test_fingerprint(run: Path, summary: dict[str, Any]) -> str:
    data = summary.get("data")
    fingerprint = data.get("test_fingerprint") if isinstance(data, dict) else None
    if not isinstance(fingerprint, str) or not fingerprint:
        raise RunDirError(
            f"{run / rundir.SUMMARY} lacks data.test_fingerprint: it is corrupt or was not written by regcli, "
            f"so the test split cannot be checked. Retrain the run."
        )
    return fingerprint


def _no_test_split(run: Path) -> BadInputError:
    return BadInputError(
        f"{run} has no test split (n_test 0: data.test_fraction was 0), so there is nothing to test. "
        f"Set data.test_fraction (e.g. 0.2) and retrain to hold out a test split."
    )


def _check_model_file(run: Path, builder: str | None = None) -> Path:
    """The shipped model passes regcli's checks (`modelfile.check_model_file`) before Keras is imported
    (a `model.builder` run's check imports the builder's module: its custom layers are registered there)."""
    from regcli.modelfile import check_model_file

    path = run / rundir.MODEL
    try:
        check_model_file(path, builder)
    except RunDirError as exc:
        raise RunDirError(f"{exc} The test split is not looked at. Retrain the run.") from None
    return path


def _builder_of(files: rundir.RunFiles) -> str | None:
    """config.yaml's model.builder (validated with the rest of the spec later), or None."""
    model = files.config.get("model") if isinstance(files.config.get("model"), dict) else {}
    builder = model.get("builder")
    return builder if isinstance(builder, str) else None


def _check_writable(run: Path, ledger: Path) -> None:
    for where, directory in (("the run directory", run), ("the test ledger's directory", ledger.parent)):
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            raise BadInputError(
                f"{directory} ({where}) is not writable: the test result could not be recorded, "
                f"so the test split is not looked at. Make it writable and run regcli test again."
            )


def _load_spec(run: Path):
    from regcli.spec import load_experiment_spec

    try:
        # model.init_from only seeded training; a fine-tuned run stays testable after its parent run is gone.
        return load_experiment_spec(run / rundir.CONFIG, ["model.init_from=null"])
    except RegcliError as exc:
        raise RunDirError(f"{run / rundir.CONFIG} cannot be loaded, so the test split cannot be rebuilt: {exc}") from None


def _rebuild_test_split(run: Path, spec: Any, task: str, recorded: str):
    """The run's dataset rebuilt from its spec; refuses when the test split's fingerprint changed."""
    from regcli.data import load_dataset

    ds = load_dataset(spec.data, seed=spec.seed, task=task)
    rebuilt = ds.info.get("test_fingerprint")
    if rebuilt != recorded:
        where = f"data.path {spec.data.path}" if spec.data.path else f"data.source {spec.data.source}"
        raise BadInputError(
            f"The test split of {run} has changed since the run was trained: its fingerprint is now "
            f"{str(rebuilt)[:12]}, summary.json recorded {recorded[:12]}. The data ({where}) or its loading "
            f"changed, so this model would be tested on rows it was not held out from. Retrain the run on "
            f"the current data, or restore the original data."
        )
    return ds


def _evaluate_once(run: Path, spec: Any, env: dict[str, Any], ds: Any) -> dict[str, float]:
    """Loads model.keras (safe mode) with the run's backend and evaluates the test split once."""
    from regcli.training import backend

    # The device the run trained on: a CPU run is tested on the CPU too.
    device = "cpu" if env.get("device") == "cpu" or spec.device == "cpu" else "auto"
    backend.select(spec.backend, device)
    backend.import_keras_quietly()
    from regcli.training import fit

    path = run / rundir.MODEL
    try:
        model = fit.load_shipped_model(path, builder=spec.model.builder)
    except RunDirError:
        raise
    except Exception as exc:  # Keras raises many types for a damaged archive
        raise RunDirError(f"{path} cannot be loaded ({_reason(exc)}): it is corrupt. Retrain the run.") from None
    try:
        return fit.evaluate_split(model, ds.x_test, ds.y_test, ds.task, seed=spec.seed)
    except Exception as exc:
        raise RunDirError(
            f"{path} cannot be evaluated on the rebuilt test split ({_reason(exc)}): the model "
            f"does not match the run's config.yaml. Retrain the run."
        ) from None


def _reason(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception, at most `limit` characters: Keras's load errors append the whole config."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "no message"
    return f"{type(exc).__name__}: {text if len(text) <= limit else text[: limit - 3] + '...'}"


def _testable_summary(files: rundir.RunFiles) -> tuple[dict[str, Any], str, str]:
    """(summary, recorded test fingerprint, task) of a completed run whose test split can be rebuilt."""
    _check_completed(files)
    run, summary = files.path, files.summary
    if not isinstance(summary.get("metrics"), dict):
        raise RunDirError(f"{run / rundir.SUMMARY} lacks its metrics mapping: it is corrupt. Retrain the run.")
    from regcli.keras.recorded import is_recorded, no_test_split

    if is_recorded(summary) and summary.get("n_test") == 0:  # recorded without test_data: no fingerprint either
        raise no_test_split(run)
    fingerprint = _test_fingerprint(run, summary)
    if summary.get("n_test") == 0:
        raise _no_test_split(run)
    task = summary.get("task")
    if task not in ("binary", "multiclass", "regression"):
        raise RunDirError(f"{run / rundir.SUMMARY} lacks a valid task (binary, multiclass or regression). Received: {task!r}.")
    return summary, fingerprint, task


def _record_in_summary(run: Path, ledger_path: Path, metrics: dict[str, Any]) -> None:
    """Adds `metrics.test` to summary.json, re-read now so that keys written meanwhile are kept."""
    try:
        fresh = rundir.RunFiles(run).summary
        fresh["metrics"]["test"] = metrics
        rundir.atomic_write_json(run / rundir.SUMMARY, fresh)
    except (OSError, RunDirError, KeyError, TypeError) as exc:
        raise RunDirError(
            f"The test result was recorded in {ledger_path}, but {run / rundir.SUMMARY} could not be "
            f"updated ({exc}). Its metrics.test is missing; the ledger line holds the result."
        ) from None


def _check_not_smoke(files: rundir.RunFiles, summary: dict[str, Any]) -> None:
    """A --smoke run (summary.json or environment.json `smoke: true`) is refused: SPEC §1, it never consults the test split."""
    if summary.get("smoke") is not True and files.environment.get("smoke") is not True:
        return
    epochs, rows = summary.get("epochs_run", "at most 2"), summary.get("n_train", "at most 256")
    raise BadInputError(
        f"{files.path} was a --smoke run ({epochs} epoch(s), {rows} training rows): its test result would mean "
        f"nothing and would spend the test split. Train it for real (the same spec without --smoke) and test "
        f"that run; the test split is not looked at."
    )


def final_test(run_dir: Path, *, ledger: Path | None = None) -> dict[str, Any]:
    """Evaluates a completed run's shipped model once on its test split and records the look.

    Args:
        run_dir: a completed run directory.
        ledger: the test ledger to append to. Defaults to `None`: `test_ledger.jsonl` beside the
            run directory (`runs/test_ledger.jsonl`; a sweep trial uses its sweep's `<out>`).

    Returns:
        `{"run_dir", "run_name", "metrics", "val_metrics", "n_test", "test_fingerprint", "ledger",
        "consulted_before", "previous_runs"}`. `metrics` is what went into
        summary.json `metrics.test`; `previous_runs` names the run of every earlier ledger entry for
        the same test split, oldest first.

    Raises:
        RunDirError / BadInputError (exit code 2): the run is missing, not completed, corrupt, a
            --smoke run, has no test split, or its test split changed. Nothing is written then.
    """
    files = rundir.RunFiles.open(Path(run_dir))
    run = files.path
    ledger_path = Path(ledger) if ledger is not None else default_ledger(run)
    summary, fingerprint, task = _testable_summary(files)
    _check_not_smoke(files, summary)
    from regcli.keras.recorded import is_recorded

    if is_recorded(summary):  # a RunRecorder run: its stored test split and its own model (docs/recorder.md)
        return _record_look(files, ledger_path, fingerprint, *_look_recorded(files, ledger_path, summary, fingerprint))
    _check_model_file(run, _builder_of(files))
    env = files.environment
    _check_writable(run, ledger_path)
    spec = _load_spec(run)
    ds = _rebuild_test_split(run, spec, task, fingerprint)
    if len(ds.y_test) == 0:
        raise _no_test_split(run)

    metrics = _evaluate_once(run, spec, env, ds)
    data = {"source": spec.data.source, "path": spec.data.path}
    return _record_look(files, ledger_path, fingerprint, metrics, int(len(ds.y_test)), data)


def _look_recorded(files: rundir.RunFiles, ledger_path: Path, summary: dict[str, Any],
                   fingerprint: str) -> tuple[dict[str, float], int, dict[str, Any]]:
    """(metrics, n_test, the ledger's data) of a RunRecorder run, evaluated once on its stored test split."""
    from regcli.keras import recorded

    run = files.path
    recorded.custom_classes(run / rundir.MODEL)  # the archive's checks, before Keras is imported
    _check_writable(run, ledger_path)
    x_test, y_test = recorded.read_test_split(run, fingerprint)
    metrics = recorded.evaluate_once(run, summary, files.environment, x_test, y_test)
    return metrics, int(len(y_test)), {"source": None, "path": None, "test_split": str(run.absolute() / rundir.TEST_SPLIT)}


def _record_look(files: rundir.RunFiles, ledger_path: Path, fingerprint: str, metrics: dict[str, Any],
                 n_test: int, data: dict[str, Any]) -> dict[str, Any]:
    """Appends the look to the test ledger, adds `metrics.test` to summary.json; `final_test`'s result."""
    run, summary = files.path, files.summary
    entry = {
        "time": rundir.utc_now(),
        "run": str(run.absolute()),
        "run_name": run.name,
        "test_fingerprint": fingerprint,
        "data": data,
        "metrics": metrics,
        "n_test": n_test,
    }
    written, before = append_entry(ledger_path, entry)
    _record_in_summary(run, ledger_path, written["metrics"])
    return {
        "run_dir": str(run),
        "run_name": run.name,
        "metrics": written["metrics"],
        "val_metrics": (summary.get("metrics") or {}).get("val"),
        "n_test": written["n_test"],
        "test_fingerprint": fingerprint,
        "ledger": str(ledger_path),
        "consulted_before": written["consulted_before"],
        "previous_runs": [e.get("run_name") or e.get("run") for e in before],
    }


def consultation_warning(result: dict[str, Any]) -> str | None:
    """The warning for a test split that was looked at before, or None for a first look."""
    n = result["consulted_before"]
    if not n:
        return None
    counts: dict[str, int] = {}
    for name in result["previous_runs"]:
        counts[str(name)] = counts.get(str(name), 0) + 1
    by = ", ".join(f"{name} ({k}x)" if k > 1 else name for name, k in counts.items())
    return (
        f"this test split (fingerprint {result['test_fingerprint'][:12]}) was consulted {n} time(s) before, "
        f"by {by}. Each look that informs a choice makes the test error an optimistic estimate: keep the "
        f"test set for the end and select on validation only."
    )
