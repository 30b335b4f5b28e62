"""The tune loop: diagnose -> try the top recommendations one knob each over the seeds -> accept a
change only beyond seed noise -> repeat -> test the shipped run once.

1. The base spec is trained over the seeds and diagnosed (each seed's run; the most common
   verdict speaks, see `decide.consensus`).
2. The first `CANDIDATES_PER_BATCH` applicable recommendations become candidates, each the
   incumbent with that one knob turned; they train over the same seeds as one batch of trials
   through the sweep's machinery (`trial_tasks`, `run_trials`, its executors: candidates that
   differ only in the model share a packed model).
3. The best candidate that beats the incumbent beyond noise (`decide.choose`) becomes the
   incumbent; if none does, the remaining recommendation is tried, then the tune stops.
4. Repeat until the verdict is good_fit, no candidate helps, no recommendation applies, or the
   budget (trials, each seed run one) is spent; then `story.final_test` (not for --smoke).

Decisions depend only on the trials' files, so the same spec and seeds give the same steps and
`--resume` replays the loop, training only the trials that did not finish. Ctrl-C leaves every
file consistent and raises `Interrupted` (exit code 130).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.errors import Interrupted, RunFailedError, SpecError
from regcli.sweep import store
from regcli.sweep.console import TrialProgress
from regcli.sweep.run import make_executor, run_trials, trial_tasks
from regcli.sweep.spec import Sweep
from regcli.tune import story
from regcli.tune.decide import CANDIDATES_PER_BATCH, Candidate, candidates, choose, fits_in_budget, yaml_value
from regcli.tune.plan import TRIALS, TUNE_SPEC, Config, TunePlan, config_specs, dump_tune_yaml
from regcli.tune.trials import Evaluation

MAX_STEPS = 20  # a safety net: the budget ends a tune long before (each step costs at least one seed run)


@dataclass
class TuneResult:
    """What `run_tune` did: the directory, best.json's record, the steps' rows and the trials trained now."""

    tune_dir: Path
    best: dict[str, Any]
    rows: list[dict[str, Any]]
    trained: int


def show(value: Any) -> str:
    """A knob value for people: `1e-4`, `0.3`, `[16, 16]`."""
    from regcli.sweep.expand import format_value

    return yaml_value(value) if isinstance(value, list | dict) else format_value(value)


def change_text(c: Candidate) -> str:
    return f"{c.knob} {show(c.old)} → {show(c.new)}"


class Tuner:
    """Runs one tune in an open tune directory; `run()` returns the final incumbent and the stop.

    Args:
        plan: the validated tune.
        tune_dir: the open (locked) tune directory.
        progress: the sweep's trial progress display. Defaults to `None`: none.
        on_step: called with each progress line ("step 1: high_variance → trying ..."). Defaults to `None`.
        train: configurations -> their evaluations, trained as one batch. Defaults to `None`:
            `train_batch`, the sweep's machinery; tests hand in a table of numbers instead.
    """

    def __init__(self, plan: TunePlan, tune_dir: Path, progress: TrialProgress | None = None,
                 on_step: Callable[[str], None] | None = None,
                 train: Callable[[list[Config]], list[Evaluation]] | None = None) -> None:
        self.plan, self.tune_dir = plan, Path(tune_dir)
        self.progress = progress or TrialProgress()
        self.say = on_step or (lambda text: None)
        self.train = train or self.train_batch
        self.rows: list[dict[str, Any]] = []
        self.evaluated: dict[str, Evaluation] = {}  # Config.key -> its evaluation
        self.used = 0  # trials spent (finished ones of a resumed tune included: the steps replay the same)
        self.trained = 0  # trials trained by this process
        self._executor = None  # made at the first batch that trains, kept open for the next ones

    def executor(self):
        """The sweep's executor, made once: its workers (TensorFlow imported) serve every batch."""
        if self._executor is None:
            most = CANDIDATES_PER_BATCH * len(self.plan.seeds)  # the largest batch: two candidates over the seeds
            self._executor = make_executor(self.plan.executor, self.plan.address, self.plan.jobs, most, keep_open=True)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    # ----------------------------------------------------------------- training a batch

    def evaluate(self, configs: list[Config]) -> list[Evaluation]:
        """One batch: `configs` trained over the seeds (what is not finished yet) and read back."""
        found = self.train(configs)
        self.used += len(configs) * len(self.plan.seeds)
        for evaluation in found:
            self.evaluated[evaluation.config.key] = evaluation
        return found

    def train_batch(self, configs: list[Config]) -> list[Evaluation]:
        """Trains the trials of `configs` that are not finished through the sweep's machinery; reads all back."""
        seeds = self.plan.seeds
        specs: dict[str, Any] = {}
        trials = []
        for config in configs:
            specs.update(config_specs(self.plan.base, config, seeds))
            trials += config.trials(seeds)
        batch = Sweep(Path(self.plan.source), self.plan.resolved(), trials, specs, self.plan.smoke, [])
        todo = [t for t in trials if store.trial_state(self.tune_dir, t.id) not in store.FINAL_STATES]
        if todo:
            tasks = trial_tasks(self.tune_dir, batch, todo, packing=True, workers=self.plan.jobs or 1)
            try:
                run_trials(self.tune_dir, batch, todo, tasks, self.executor(), self.progress)
            except Interrupted:
                self.write(partial=True)
                done = sum(store.trial_state(self.tune_dir, t.id) in store.FINAL_STATES for t in trials)
                raise Interrupted(
                    f"Interrupted. {self.tune_dir} is consistent: {done} of this step's {len(trials)} trial(s) "
                    f"finished, the others are interrupted or not started. Continue with: "
                    f"regcli tune --resume {self.tune_dir}"
                ) from None
        self.trained += len(todo)
        return [Evaluation.read(self.tune_dir, config, seeds) for config in configs]

    # ----------------------------------------------------------------- the loop

    def run(self) -> tuple[Evaluation, dict[str, str]]:
        base = self.evaluate([Config(0, {}, None)])[0]
        self.rows.append(story.base_row(base))
        self.write(partial=True)
        if not base.complete:
            states = ", ".join(f"seed {s}: {state}" for s, state in base.states().items() if state != "completed")
            raise RunFailedError(
                f"The base spec did not complete on every seed ({states}); tune compares every change with "
                f"the base over the same seeds, so it stops here. See {self.tune_dir / TRIALS} (and "
                f"`regcli diagnose` a diverged run); a failed trial is retrained by regcli tune --resume {self.tune_dir}."
            )
        self.say(f"step 0: base {base.verdict} ({base.verdict_count()}), val_data_loss {story.pm(*base.stats())}")
        incumbent = base
        for step in range(1, MAX_STEPS + 1):
            accepted, stop = self.step(step, incumbent)
            self.write(partial=True)
            if accepted is None:
                return incumbent, stop
            incumbent = accepted
        return incumbent, {"code": "max_steps", "text": f"stopped after {MAX_STEPS} steps"}

    def step(self, step: int, incumbent: Evaluation) -> tuple[Evaluation | None, dict[str, str]]:
        """One step from `incumbent`: its recommendations as candidates, in batches, until one is accepted."""
        diagnosis = incumbent.diagnosis or {}
        verdict = diagnosis.get("verdict")
        if verdict == "good_fit":
            return None, self.stop(step, incumbent, "good_fit", "the incumbent's diagnosis is good_fit: ship it")
        todo, skipped = candidates(diagnosis.get("recommendations") or [])
        for s in skipped:
            self.rows.append(story.skipped_row(step, incumbent, s.knob, s.old, s.new, s.why))
        todo = self._new_configs(step, incumbent, todo)
        if not todo:
            texts = "; ".join(r["text"] for r in diagnosis.get("recommendations") or []) or "none"
            return None, self.stop(step, incumbent, "no_recommendation",
                                   f"{verdict}: no recommendation tune can apply ({texts})")
        while todo:
            batch, todo = todo[:CANDIDATES_PER_BATCH], todo[CANDIDATES_PER_BATCH:]
            fit = fits_in_budget(len(batch), len(self.plan.seeds), self.plan.budget - self.used)
            if fit == 0:
                return None, self.stop(step, incumbent, "budget", f"budget spent: {self.used} of "
                                       f"{self.plan.budget} trials used, a candidate needs {len(self.plan.seeds)}")
            cut, batch = fit < len(batch), batch[:fit]
            self.say(f"step {step}: {verdict} → trying " + ", ".join(change_text(c) for c, _ in batch))
            accepted = self._try(step, incumbent, batch)
            if accepted is not None:
                return accepted, {}
            if cut:  # a candidate of this batch did not fit: the budget, not the candidates, ended the tune
                return None, self.stop(step, incumbent, "budget", f"budget spent: {self.used} of {self.plan.budget} "
                                       f"trials used, the next candidate needs {len(self.plan.seeds)}")
        return None, self.stop(step, incumbent, "no_gain", "no candidate beat the incumbent beyond seed noise and by 1% or more")

    def _new_configs(self, step: int, incumbent: Evaluation, todo: list[Candidate]) -> list[tuple[Candidate, Config]]:
        """Each candidate as a configuration; one already trained, or whose spec is invalid, is a skipped row."""
        out = []
        for c in todo:
            config = incumbent.config.turned(c.knob, c.new, step)
            earlier = self.evaluated.get(config.key)
            if earlier is not None:
                why = f"not tried again: this configuration was trained at step {earlier.config.step}"
                self.rows.append(story.skipped_row(step, incumbent, c.knob, c.old, c.new, why))
                continue
            try:
                config_specs(self.plan.base, config, self.plan.seeds[:1])
            except SpecError as exc:
                why = f"not tried: {c.knob}={yaml_value(c.new)} makes an invalid spec ({str(exc).splitlines()[-1].strip()})"
                self.rows.append(story.skipped_row(step, incumbent, c.knob, c.old, c.new, why))
                continue
            out.append((c, config))
        return out

    def _try(self, step: int, incumbent: Evaluation, batch: list[tuple[Candidate, Config]]) -> Evaluation | None:
        found = self.evaluate([config for _, config in batch])
        index, comparisons = choose(incumbent.values(), [e.values() for e in found])
        for i, ((c, _), evaluation, comparison) in enumerate(zip(batch, found, comparisons, strict=True)):
            why = comparison.why
            if comparison.beats and i != index:
                why = f"also beats the incumbent ({why.split(': ', 1)[-1]}), but {batch[index][0].knob} has the lower mean"
            self.rows.append(story.candidate_row(step, incumbent, c, evaluation, i == index, why))
        if index is None:
            self.say(f"step {step}: no candidate beat the incumbent beyond seed noise and by 1% or more")
            return None
        winner = found[index]
        self.say(f"step {step}: accepted {change_text(batch[index][0])}: val_data_loss {story.pm(*winner.stats())} "
                 f"(was {story.pm(*incumbent.stats())}); {comparisons[index].why}")
        return winner

    def stop(self, step: int, incumbent: Evaluation, code: str, text: str) -> dict[str, str]:
        self.rows.append(story.stop_row(step, incumbent, text))
        self.say(f"stop: {text}")
        return {"code": code, "text": text}

    def write(self, partial: bool = False) -> None:
        """steps.csv (and on the way: results.csv, trajectory.png) as far as the tune got."""
        story.write_steps(self.tune_dir, self.rows)
        if partial:
            return
        story.write_results(self.tune_dir, self.plan, list(self.evaluated.values()))
        story.write_trajectory(self.tune_dir, self.rows)


def open_tune_dir(plan: TunePlan) -> Path:
    """A new tune directory (tune.yaml, trials/), or the one to resume (tune.yaml rewritten with its budget)."""
    if plan.resume is not None:
        tune_dir = Path(plan.resume).absolute()
    else:
        tune_dir = rundir.new_run_dir(plan.out, plan.name).absolute()
        (tune_dir / TRIALS).mkdir()
    rundir.atomic_write_text(tune_dir / TUNE_SPEC, dump_tune_yaml(plan))
    return tune_dir


def run_tune(plan: TunePlan, *, progress: TrialProgress | None = None,
             on_step: Callable[[str], None] | None = None, on_note: Callable[[str], None] | None = None) -> TuneResult:
    """Runs (or resumes) a tune end to end: steps, story files, the final test of the shipped run.

    Raises:
        BadInputError: the tune directory is locked by a live tune.
        RunFailedError (exit code 1): the base spec did not complete on every seed.
        Interrupted (exit code 130): Ctrl-C; the tune directory is consistent.
    """
    tune_dir = open_tune_dir(plan)
    with store.sweep_lock(tune_dir, on_note, kind="tune"):
        tuner = Tuner(plan, tune_dir, progress, on_step)
        try:
            incumbent, stop = tuner.run()
        finally:
            tuner.close()
            tuner.write()
        best = story.best_record(plan, incumbent, stop, tuner.used, len(tuner.rows))
        if not plan.smoke:
            story.final_test(tune_dir, best)
        rundir.atomic_write_json(tune_dir / story.BEST, best)
    return TuneResult(tune_dir, best, tuner.rows, tuner.trained)
