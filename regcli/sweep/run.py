"""A sweep end to end: validate -> sweep directory -> trials (local or Ray) -> aggregate -> final test
(never for a --smoke sweep: a smoke run does not consult the test split).

`prepare_sweep` checks everything that can be wrong with the input (spec, options, the
directory to resume) and creates nothing; `run_sweep` creates or locks the sweep
directory, runs the trials that are not finished, and aggregates. Ctrl-C leaves the
directory consistent (every trial's status.json is the truth, results.csv is written) and
raises `Interrupted` (exit code 130).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.errors import BadInputError, DataError, Interrupted, RunDirError
from regcli.spec import spec_to_dict
from regcli.sweep import store
from regcli.sweep.console import TrialProgress
from regcli.sweep.executors import EXECUTORS, LocalExecutor, RayExecutor, require_ray
from regcli.sweep.expand import FRACTION_KNOB
from regcli.sweep.finisher import Finisher
from regcli.sweep.jobs import AUTO, JobsChoice, available_memory, choose_workers
from regcli.sweep.spec import Sweep, dump_sweep_yaml, load_sweep, spec_differences
from regcli.sweep.worker import threads_per_worker
from regcli.training.packs import group_packs, pack_key


@dataclass
class SweepPlan:
    """A validated sweep and how to run it; nothing has been created yet."""

    sweep: Sweep
    executor: str = "local"
    jobs: int | str | None = None  # None or "auto": chosen from the cores and the trials (regcli.sweep.jobs)
    address: str | None = None
    out: Path = Path("runs")
    resume: Path | None = None
    warnings: list[str] = field(default_factory=list)
    pack: bool = True  # False: --no-pack (the sweep spec's `packing: off` also turns packing off)

    @property
    def packing(self) -> bool:
        return self.pack and self.sweep.resolved.get("packing", "auto") == "auto"


@dataclass
class SweepResult:
    """What `run_sweep` did: the directory, the report of `aggregate` and the trials' states."""

    sweep_dir: Path
    sweep: Sweep
    report: dict[str, Any]
    ran: list[str]
    states: dict[str, str]

    @property
    def failed(self) -> list[str]:
        """Trials that did not finish (failed, or never ran): `--resume` re-runs them."""
        return [t for t, s in self.states.items() if s not in store.FINAL_STATES]

    @property
    def notes(self) -> list[str]:
        return self.report["notes"]


def prepare_sweep(
    config: Path | None,
    *,
    resume: Path | None = None,
    out: Path | None = None,
    smoke: bool = False,
    executor: str = "local",
    address: str | None = None,
    jobs: int | str | None = None,
    pack: bool = True,
) -> SweepPlan:
    """Validates the sweep spec (or the directory to resume) and the options; creates nothing.

    Raises:
        SpecError / BadInputError (exit code 2): a bad spec, option or sweep directory, or
            `--resume` with a spec that differs from the stored sweep.yaml.
    """
    check_executor_options(executor, address, jobs)
    if resume is None:
        if config is None:
            raise BadInputError("regcli sweep needs a sweep spec (SWEEP.yaml), or --resume SWEEP_DIR to continue one.")
        sweep = load_sweep(config, smoke=smoke)
        out = Path(out) if out is not None else Path("runs")
        rundir.check_run_name(sweep.name, "name")
        _check_train_fractions(sweep)
        _check_tracking(sweep)
        return SweepPlan(sweep, executor, jobs, address, out, None, list(sweep.warnings), pack)
    if out is not None:
        raise BadInputError(f"--out does not apply with --resume: the trials are written into {resume}. Remove --out.")
    sweep_dir = store.require_sweep_dir(Path(resume))
    manifest = store.read_manifest(sweep_dir)
    stored_smoke = bool(manifest.get("smoke"))
    if smoke and not stored_smoke:
        raise BadInputError(
            f"--resume {sweep_dir}: this sweep was started without --smoke; resume it without --smoke "
            f"(a smoke run of it is a new sweep)."
        )
    sweep = load_sweep(sweep_dir / store.SWEEP_SPEC, smoke=stored_smoke)
    if config is not None:
        given = load_sweep(config, smoke=stored_smoke)
        # The name only named the directory, which exists: every other key must match.
        diffs = [d for d in spec_differences(sweep.resolved, given.resolved) if d != "name"]
        if diffs:
            shown = ", ".join(diffs[:6]) + (f" and {len(diffs) - 6} more" if len(diffs) > 6 else "")
            raise BadInputError(
                f"--resume {sweep_dir}: {config} is not the sweep stored there (they differ in {shown}). The stored "
                f"{store.SWEEP_SPEC} is authoritative: resume with `regcli sweep --resume {sweep_dir}` alone, or "
                f"start a new sweep with `regcli sweep {config}`."
            )
    expected = [t.get("id") for t in manifest.get("trials", [])]
    if expected != [t.id for t in sweep.trials]:
        raise RunDirError(
            f"--resume {sweep_dir}: {store.MANIFEST} lists other trials than {store.SWEEP_SPEC} expands to "
            f"(was it written by another regcli version, or edited?). Start a new sweep from {store.SWEEP_SPEC}."
        )
    return SweepPlan(sweep, executor, jobs, address, sweep_dir.parent, sweep_dir, list(sweep.warnings), pack)


def _check_tracking(sweep: Sweep) -> None:
    """A `tracking:` block that cannot work (MLflow missing, store not writable, server silent) stops
    the sweep before any trial starts, as it stops `regcli train` (exit code 2)."""
    from regcli import tracking

    checked = set()
    for spec in sweep.specs.values():
        key = repr(spec.tracking)
        if key not in checked:
            checked.add(key)
            tracking.preflight(spec)


def _check_train_fractions(sweep: Sweep) -> None:
    """A swept data.train_fraction so small that its training rows cannot hold every class fails
    here, as bad input, not as failed trials: the smallest fraction of each data set is loaded once
    (no TensorFlow; sklearn's bundled sets take well under a second)."""
    if FRACTION_KNOB not in sweep.knobs:
        return
    from regcli.data import load_dataset

    smallest: dict[str, Any] = {}
    for trial in sweep.trials:
        spec = sweep.specs[trial.id]
        data = spec.data.model_dump()
        key = json.dumps({k: v for k, v in data.items() if k not in ("train_fraction", "split_seed")}, sort_keys=True, default=str)
        if key not in smallest or spec.data.train_fraction < smallest[key].data.train_fraction:
            smallest[key] = spec
    for spec in smallest.values():
        try:
            load_dataset(spec.data, seed=spec.seed, task=spec.model.task)
        except DataError as exc:
            if not str(exc).startswith(FRACTION_KNOB):
                raise
            raise DataError(
                f"Invalid sweep spec {sweep.source}:\n  params.{FRACTION_KNOB}, value {spec.data.train_fraction}: {exc}"
            ) from None


def check_executor_options(executor: str, address: str | None, jobs: int | str | None) -> None:
    """--executor, --address and --jobs, as `regcli sweep` and `regcli tune` take them."""
    if executor not in EXECUTORS:
        raise BadInputError(f"--executor must be one of {', '.join(EXECUTORS)}. Received: {executor!r}.")
    if jobs is not None and jobs != AUTO and jobs < 1:
        raise BadInputError(f"--jobs must be an integer >= 1 or auto. Received: {jobs}. Use 1 to train one trial at a time.")
    if address is not None and executor != "ray":
        raise BadInputError("--address applies only to --executor ray (the address of a Ray cluster, HOST:PORT).")
    if executor == "ray":
        require_ray()


def make_executor(executor: str, address: str | None, jobs: int | None, n_trials: int, keep_open: bool = False):
    """The executor for (at most) `n_trials` tasks at once: a Ray cluster's, or local worker processes.

    `keep_open`: its workers (or Ray) stay up between `run` calls until `close()`, as a tune's batches want.
    """
    if executor == "ray":
        # One CPU (and TensorFlow thread) per trial: Ray packs as many trials as the cluster has CPUs.
        return RayExecutor(address, cpus_per_trial=1, max_in_flight=jobs, keep_open=keep_open)
    jobs = min(jobs or 1, max(1, n_trials))  # no idle workers holding a share of the cores
    return LocalExecutor(jobs, threads_per_worker(jobs), keep_open=keep_open)


def run_sweep(
    plan: SweepPlan,
    *,
    progress: TrialProgress | None = None,
    on_note: Callable[[str], None] | None = None,
) -> SweepResult:
    """Runs the trials of `plan` that are not finished, then aggregates (and final-tests the winner).

    Raises:
        BadInputError: the sweep directory is locked by a live sweep.
        Interrupted: Ctrl-C (exit code 130); the sweep directory is consistent.
    """
    sweep = plan.sweep
    sweep_dir = _open_sweep_dir(plan)
    with store.sweep_lock(sweep_dir, on_note):
        todo = [t for t in sweep.trials if store.trial_state(sweep_dir, t.id) not in store.FINAL_STATES]
        jobs, choice = _jobs(plan, sweep, todo)
        executor = make_executor(plan.executor, plan.address, jobs, len(todo))
        tasks = trial_tasks(sweep_dir, sweep, todo, packing=plan.packing, workers=jobs or 1)
        chosen = choice.describe(len(todo)) if choice else None
        _record_execution(sweep_dir, plan, executor, todo, tasks, chosen)
        run_trials(sweep_dir, sweep, todo, tasks, executor, progress or TrialProgress(), chosen)
        from regcli.sweep.aggregate import aggregate  # pandas: imported once the workers are started

        report = aggregate(sweep_dir, sweep)
        # A --smoke sweep never consults the test split: best.json says final_test_skipped (aggregate).
        if sweep.resolved["final_test"] and not sweep.smoke and report["best"] is not None:
            _final_test(sweep_dir, report)
    states = {t.id: store.trial_state(sweep_dir, t.id) for t in sweep.trials}
    return SweepResult(sweep_dir, sweep, report, [t.id for t in todo], states)


def _jobs(plan: SweepPlan, sweep: Sweep, todo: list) -> tuple[int | None, JobsChoice | None]:
    """The workers to start: `--jobs N` as given; `auto` (the default) chosen for the local executor
    (`regcli.sweep.jobs`); with Ray, auto (None) leaves the trials in flight to the cluster's CPUs."""
    if plan.jobs not in (None, AUTO):
        return int(plan.jobs), None
    if plan.executor != "local" or not todo:
        return None, None
    choice = choose_workers(pack_items(sweep, todo), packing=plan.packing, memory=available_memory())
    return choice.workers, choice


def _open_sweep_dir(plan: SweepPlan) -> Path:
    """A new sweep directory (sweep.yaml, sweep.json, trials/), or the one to resume."""
    if plan.resume is not None:
        return Path(plan.resume).absolute()
    sweep_dir = rundir.new_run_dir(plan.out, plan.sweep.name).absolute()
    (sweep_dir / store.TRIALS).mkdir()
    rundir.atomic_write_text(sweep_dir / store.SWEEP_SPEC, dump_sweep_yaml(plan.sweep))
    store.write_manifest(sweep_dir, store.new_manifest(plan.sweep))
    return sweep_dir


def pack_label(ids: list[str]) -> str:
    """How progress and the manifest name a pack: `pack of 8: t000..t007`."""
    return f"pack of {len(ids)}: {ids[0].split('-')[0]}..{ids[-1].split('-')[0]}"


def pack_items(sweep: Sweep, todo: list) -> list[tuple[str, str | None]]:
    """`(trial id, pack key)` of each trial in `todo`: what `group_packs` and `--jobs auto` read."""
    return [(t.id, pack_key(spec_to_dict(sweep.specs[t.id]))) for t in todo]


def trial_tasks(sweep_dir: Path, sweep: Sweep, todo: list, *, packing: bool, workers: int) -> list[dict[str, Any]]:
    """One task per trial, or with packing, one per pack of compatible trials (same `pack_key`, at most 8)."""

    def trial_task(trial_id: str) -> dict[str, Any]:
        return {
            "trial": trial_id,
            "spec": spec_to_dict(sweep.specs[trial_id]),
            "run_dir": str(store.trial_dir(sweep_dir, trial_id)),
            "smoke": sweep.smoke,
        }

    if not packing:
        return [trial_task(t.id) for t in todo]
    packs = group_packs(pack_items(sweep, todo), workers)
    tasks = []
    for ids in packs:
        if len(ids) == 1:
            tasks.append(trial_task(ids[0]))
            continue
        singles = [trial_task(i) for i in ids]
        tasks.append({
            "trial": pack_label(ids),
            "pack": ids,
            "specs": [t["spec"] for t in singles],
            "run_dirs": [t["run_dir"] for t in singles],
            "smoke": sweep.smoke,
        })
    return tasks


def run_trials(sweep_dir: Path, sweep: Sweep, todo: list, tasks: list, executor: Any, progress: TrialProgress,
               chosen: str | None = None) -> None:
    """Runs `tasks` (the trials `todo`) from cleared directories; a pack that failed as a whole is
    retried as single trials, once. On Ctrl-C leaves every status.json true, then raises Interrupted.
    `chosen`: what `--jobs auto` chose, shown first in the progress display.

    Resume needs nothing pack-specific: `run_packed` writes `running` into every trial directory
    of the pack before training, so a pack killed mid-way leaves its trials `running` (or already
    `completed`, when it died while writing results), exactly like killed single trials: the
    completed ones are final, the others are cleared and re-run (and re-packed) by `--resume`.
    """
    for trial in todo:
        store.clear_trial(sweep_dir, trial.id)
    sink = _TrialSink(sweep_dir, progress, finish_here=getattr(executor, "finishes_in_sweep", False))
    packs = [task["trial"] for task in tasks if "pack" in task]
    what = (f"{chosen}; " if chosen else "") + executor.describe() + (f"; packed: {', '.join(packs)}" if packs else "")
    progress.begin(len(sweep.trials), len(sweep.trials) - len(todo), what)
    try:
        executor.run(sink.mark(tasks), on_start=sink.started, on_done=sink.done)
        if sink.retry:
            for trial_id in sink.retry:
                store.clear_trial(sweep_dir, trial_id)
            singles = trial_tasks(sweep_dir, sweep, [t for t in todo if t.id in sink.retry], packing=False, workers=1)
            sink.retry.clear()
            executor.run(sink.mark(singles), on_start=sink.started, on_done=sink.done)
        sink.finisher.drain()
    except KeyboardInterrupt:
        from regcli.sweep.aggregate import write_results

        with contextlib.suppress(KeyboardInterrupt):
            sink.finisher.drain()  # trials already trained are finished: their results stand
        _settle(sweep_dir, todo, "interrupted", "interrupted by the user (Ctrl-C)")
        write_results(sweep_dir, sweep)
        final = sum(store.trial_state(sweep_dir, t.id) in store.FINAL_STATES for t in sweep.trials)
        raise Interrupted(
            f"Interrupted. {sweep_dir} is consistent: {final} of {len(sweep.trials)} trial(s) finished, the "
            f"others are interrupted or not started. Continue with: regcli sweep --resume {sweep_dir}"
        ) from None
    _settle(sweep_dir, todo, "failed", "the trial's worker ended without finishing it")


class _TrialSink:
    """Where an executor's results go: packs unpacked, failed packs queued for a retry alone, trained
    trials finished (plot, final status) by the `Finisher` when their worker left that to the sweep,
    then the progress display told."""

    def __init__(self, sweep_dir: Path, progress: TrialProgress, finish_here: bool) -> None:
        self.sweep_dir, self.progress, self.finish_here = sweep_dir, progress, finish_here
        self.retry: list[str] = []
        self.finisher = Finisher()
        self._shown = threading.Lock()  # the progress display hears from the finisher's thread too
        self._prewarm = threading.Thread(target=_import_aggregation, name="regcli-prewarm", daemon=True)

    def mark(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for task in tasks:
            task["finish_in_sweep"] = self.finish_here
        return tasks

    def started(self, task: dict[str, Any]) -> None:
        if self._prewarm.ident is None:
            self._prewarm.start()  # once the first task is on its way to a worker
        with self._shown:
            self.progress.started(task["trial"])

    def done(self, result: dict[str, Any]) -> None:
        if "pack" in result:
            if result.get("pack_failed"):
                self.retry.extend(result["pack"])  # the packed model failed as a whole: each trial alone, once
                return
            for trial_result in result["results"]:
                self.done(trial_result)
            return
        if "finish" in result:  # trained; its plot and final status are drawn here, while the worker goes on
            self.finisher.submit(result, self.settled)
        else:
            self.settled(result)

    def settled(self, result: dict[str, Any]) -> None:
        trial = result["trial"]
        if result["state"] in ("failed", "interrupted") and store.trial_state(self.sweep_dir, trial) in ("pending", "running"):
            # the worker vanished before it could write status.json: the sweep writes it
            run = store.trial_dir(self.sweep_dir, trial)
            run.mkdir(parents=True, exist_ok=True)
            rundir.write_status(run, result["state"], result["error"])
        with self._shown:
            self.progress.finished(result)


def _import_aggregation() -> None:
    """Imports aggregation's modules (pandas, matplotlib): run in a background thread while the trials run.

    The sweep process mostly waits for its workers then; these ~1 s of imports would otherwise
    come before the first worker starts (delaying every trial) or after the last trial.
    """
    import contextlib

    with contextlib.suppress(Exception):  # aggregation imports them again and reports any error
        import regcli.sweep.aggregate
        import regcli.sweep.plots  # noqa: F401
        from regcli.plots import pyplot

        pyplot()


def _record_execution(sweep_dir: Path, plan: SweepPlan, executor: Any, todo: list, tasks: list,
                      chosen: str | None = None) -> None:
    """Appends this execution (who, where, which trials, which of them packed) to the manifest's `executions`."""
    manifest = store.read_manifest(sweep_dir)
    manifest.setdefault("executions", []).append(
        {
            "started": rundir.utc_now(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "executor": executor.describe(),
            "jobs": chosen or plan.jobs,
            "resume": plan.resume is not None,
            "trials": [t.id for t in todo],
            "packing": "auto" if plan.packing else "off",
            "packs": [task["pack"] for task in tasks if "pack" in task],
            "command_line": sys.argv,
        }
    )
    store.write_manifest(sweep_dir, manifest)


def _settle(sweep_dir: Path, trials: list, state: str, error: str) -> int:
    """Trials whose status.json still says `running` (their worker is gone) get `state`."""
    settled = 0
    for trial in trials:
        if store.trial_state(sweep_dir, trial.id) == "running":
            rundir.write_status(store.trial_dir(sweep_dir, trial.id), state, error)
            settled += 1
    return settled


def _final_test(sweep_dir: Path, report: dict[str, Any]) -> None:
    """The winner's one look at the test split, through `regcli test`'s own code path (ledger included).

    A resumed sweep whose winner was already tested reuses that result instead of looking again.
    """
    from regcli.commands.final_test import consultation_warning, final_test

    best = report["best"]
    run = sweep_dir / best["shipped_run"]
    summary = rundir.read_json(run / rundir.SUMMARY, "the winner's summary")
    tested = (summary.get("metrics") or {}).get("test")
    if tested is not None:
        best["final_test"] = {"run": best["shipped_run"], "metrics": tested, "reused": True}
    else:
        result = final_test(run)
        best["final_test"] = {
            "run": best["shipped_run"],
            "metrics": result["metrics"],
            "n_test": result["n_test"],
            "ledger": result["ledger"],
            "consulted_before": result["consulted_before"],
        }
        warning = consultation_warning(result)
        if warning:
            best["notes"].append(warning)
    rundir.atomic_write_json(sweep_dir / store.BEST, best)
