"""The tune directory's story files: steps.csv rows, results.csv, trajectory.png, best.json and the final test.

```
<out>/<name>-tune-<UTC timestamp>-<id>/
  tune.yaml        the resolved tune: base spec, seeds, budget, executor (authoritative on --resume)
  steps.csv        one row per decision: the base, each candidate tried or skipped, the stop
  trajectory.png   validation and clean-train error per step, each point labelled with its knob
  results.csv      one row per trial, as a sweep's results.csv
  best.json        the shipped configuration, its run, mean ± std over seeds, the one final test
  trials/<id>/     normal run directories (`s1-dropout_0.2-3f2a-s0`: step, knob, hash, seed)
  sweep.lock       held while a tune process runs in the directory
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.commands.ledger import LEDGER
from regcli.tune.decide import Candidate, yaml_value
from regcli.tune.plan import BEST, RESULTS, STEPS, TRAJECTORY, TunePlan
from regcli.tune.trials import Evaluation

__all__ = ["BEST", "RESULTS", "STEPS", "STEP_COLUMNS", "TRAJECTORY"]

STEP_COLUMNS = ["step", "incumbent", "knob", "from", "to", "seeds", "val_mean", "val_std", "accepted", "why",
                "verdict", "val_error", "train_error", "config"]
FINAL_TEST_SKIPPED_SMOKE = (
    "this is a --smoke tune, and a smoke run never consults the test split; run the tune without --smoke "
    "for its final test"
)


def pm(mean: float | None, std: float | None) -> str:
    """`0.412 ± 0.01`, `0.412` (one seed) or `-`."""
    if mean is None:
        return "-"
    return f"{mean:.4g}" + (f" ± {std:.2g}" if std is not None else "")


def describe(evaluation: Evaluation) -> str:
    """The incumbent as steps.csv names it: `base`, or its overrides (`model.l2=0.001, model.dropout=0.2`)."""
    return ", ".join(evaluation.config.sets()) or "base"


def _measured(evaluation: Evaluation) -> dict[str, Any]:
    mean, std = evaluation.stats()
    return {"seeds": ",".join(str(s) for s in evaluation.seeds if evaluation.runs[s]["state"] == "completed"),
            "val_mean": mean, "val_std": std, "verdict": evaluation.verdict,
            "val_error": evaluation.stats("val_error")[0], "train_error": evaluation.stats("train_error")[0],
            "config": evaluation.config.id}


def base_row(base: Evaluation) -> dict[str, Any]:
    states = [f"seed {s} {st}" for s, st in base.states().items() if st != "completed"]
    why = f"the base spec: {base.verdict} ({base.verdict_count()})" if base.verdict else "the base spec"
    return {"step": 0, "incumbent": "", "knob": "", "from": "", "to": "", **_measured(base),
            "accepted": "true" if base.complete else "false",
            "why": why + (f"; not complete: {', '.join(states)}" if states else "")}


def candidate_row(step: int, incumbent: Evaluation, c: Candidate, evaluation: Evaluation, accepted: bool,
                  why: str) -> dict[str, Any]:
    return {"step": step, "incumbent": describe(incumbent), "knob": c.knob, "from": yaml_value(c.old),
            "to": yaml_value(c.new), **_measured(evaluation), "accepted": "true" if accepted else "false", "why": why}


def skipped_row(step: int, incumbent: Evaluation, knob: str, old: Any, new: Any, why: str) -> dict[str, Any]:
    return {"step": step, "incumbent": describe(incumbent), "knob": knob, "from": yaml_value(old),
            "to": yaml_value(new), "seeds": "", "accepted": "false", "why": why}


def stop_row(step: int, incumbent: Evaluation, text: str) -> dict[str, Any]:
    return {"step": step, "incumbent": describe(incumbent), "knob": "", "accepted": "", "why": f"stop: {text}",
            "verdict": incumbent.verdict, "config": incumbent.config.id}


def write_steps(tune_dir: Path, rows: list[dict[str, Any]]) -> None:
    rundir.write_csv(Path(tune_dir) / STEPS, rows, STEP_COLUMNS)


def write_results(tune_dir: Path, plan: TunePlan, evaluations: list[Evaluation]) -> None:
    """results.csv: one row per trial of every configuration trained, in the sweep's format."""
    if not evaluations:
        return
    from regcli.sweep.aggregate import write_results as write_sweep_results
    from regcli.sweep.spec import Sweep

    trials = [t for e in evaluations for t in e.config.trials(plan.seeds)]
    write_sweep_results(tune_dir, Sweep(Path(plan.source), plan.resolved(), trials, {}, plan.smoke, []))


def write_trajectory(tune_dir: Path, rows: list[dict[str, Any]]) -> None:
    from regcli.tune.plots import save_trajectory

    if any(r.get("val_mean") is not None for r in rows):
        save_trajectory(rows, Path(tune_dir) / TRAJECTORY)


def best_record(plan: TunePlan, incumbent: Evaluation, stop: dict[str, str], used: int, n_rows: int) -> dict[str, Any]:
    """best.json: the shipped configuration (the final incumbent), its run, its numbers and why the tune stopped."""
    seed = incumbent.best_seed()
    mean, std = incumbent.stats()
    record: dict[str, Any] = {
        "config": incumbent.config.id,
        "overrides": incumbent.config.overrides,
        "set": incumbent.config.sets(),
        "step": incumbent.config.step,
        "verdict": incumbent.verdict,
        "metric": "val_data_loss",
        "mean": mean,
        "std": std,
        "values": {str(s): v for s, v in incumbent.values().items()},
        "val_error_mean": incumbent.stats("val_error")[0],
        "train_error_mean": incumbent.stats("train_error")[0],
        "seeds": list(plan.seeds),
        "runs": [incumbent.runs[s]["run"] for s in plan.seeds],
        "shipped_run": incumbent.runs[seed]["run"] if seed is not None else None,
        "shipped_seed": seed,
        "stopped": stop,
        "trials_used": used,
        "budget": plan.budget,
        "decisions": n_rows,
        "smoke": plan.smoke,
        "notes": [],
    }
    if len(plan.seeds) > 1 and seed is not None:
        record["notes"].append(
            f"The shipped run is seed {seed}, the best validation value of {len(plan.seeds)} seeds: choosing the "
            f"luckiest seed is optimistic. Expect the mean over seeds, val_data_loss {pm(mean, std)}."
        )
    if plan.smoke:
        record["final_test_skipped"] = FINAL_TEST_SKIPPED_SMOKE
    return record


def final_test(tune_dir: Path, best: dict[str, Any]) -> None:
    """The shipped run's one look at the test split, through `regcli test`'s own code path and the
    ledger of the tune's `<out>` (where `regcli test` of a run beside it would record it).

    A resumed tune whose shipped run was already tested reuses that result instead of looking again.
    """
    from regcli.commands.final_test import consultation_warning
    from regcli.commands.final_test import final_test as test_once

    run = Path(tune_dir) / best["shipped_run"]
    summary = rundir.read_json(run / rundir.SUMMARY, "the shipped run's summary")
    tested = (summary.get("metrics") or {}).get("test")
    if tested is not None:
        best["final_test"] = {"run": best["shipped_run"], "metrics": tested, "reused": True}
        return
    result = test_once(run, ledger=Path(tune_dir).parent / LEDGER)
    best["final_test"] = {"run": best["shipped_run"], "metrics": result["metrics"], "n_test": result["n_test"],
                          "ledger": result["ledger"], "consulted_before": result["consulted_before"]}
    warning = consultation_warning(result)
    if warning:
        best["notes"].append(warning)
