"""A configuration's seed runs, read back from their trial directories (`Evaluation`).

Everything comes from the files (status.json, summary.json, history.csv, config.yaml), never
from what a worker returned, so a resumed tune reads finished trials exactly as a fresh one
does. Each completed run is diagnosed again with `regcli.diagnosis.diagnose` (pure, no
TensorFlow), as `regcli diagnose` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regcli import rundir
from regcli.sweep import store
from regcli.tune.decide import consensus, mean_std
from regcli.tune.plan import Config


def read_trial(tune_dir: Path, trial_id: str) -> dict[str, Any]:
    """`{"state", "run", "val_data_loss", "val_error", "train_error", "verdict", "diagnosis"}` of one trial.

    Only a completed run has numbers; a diverged one has its diagnosis (verdict `diverged`).
    """
    run = store.trial_dir(tune_dir, trial_id)
    state = store.trial_state(tune_dir, trial_id)
    record: dict[str, Any] = {"state": state, "run": f"{store.TRIALS}/{trial_id}", "val_data_loss": None,
                              "val_error": None, "train_error": None, "verdict": None, "diagnosis": None}
    if state not in store.FINAL_STATES:
        return record
    from regcli.commands.diagnose import diagnosis_inputs
    from regcli.diagnosis import diagnose

    try:
        summary, history, config = diagnosis_inputs(rundir.RunFiles.open(run))
    except Exception as exc:  # noqa: BLE001 - a damaged trial is a failed trial, named in steps.csv
        record.update(state="failed", error=str(exc))
        return record
    diagnosis = diagnose(history, summary, config, run_dir=str(run))
    record.update(verdict=diagnosis["verdict"], diagnosis=diagnosis)
    if state == "completed":
        metrics = summary.get("metrics") or {}
        val, train = metrics.get("val") or {}, metrics.get("train") or {}
        record.update(val_data_loss=val.get("data_loss"), val_error=val.get("error"), train_error=train.get("error"))
    return record


@dataclass
class Evaluation:
    """One configuration trained over the seeds: each seed's run, and what they say together."""

    config: Config
    seeds: list[int]
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, tune_dir: Path, config: Config, seeds: list[int]) -> Evaluation:
        return cls(config, list(seeds), {s: read_trial(tune_dir, config.trial_id(s)) for s in seeds})

    def values(self, key: str = "val_data_loss") -> dict[int, float | None]:
        """seed -> `key` (None where that seed did not complete)."""
        return {s: self.runs[s].get(key) for s in self.seeds}

    def stats(self, key: str = "val_data_loss") -> tuple[float | None, float | None]:
        return mean_std(list(self.values(key).values()))

    @property
    def complete(self) -> bool:
        return all(self.runs[s]["state"] == "completed" and self.runs[s]["val_data_loss"] is not None
                   for s in self.seeds)

    def states(self) -> dict[int, str]:
        return {s: self.runs[s]["state"] for s in self.seeds}

    @property
    def diagnosis(self) -> dict[str, Any] | None:
        """The diagnosis that speaks for the configuration: the first seed with the most common verdict."""
        diagnosed = [s for s in self.seeds if self.runs[s]["diagnosis"] is not None]
        if not diagnosed:
            return None
        chosen = diagnosed[consensus([self.runs[s]["verdict"] for s in diagnosed])]
        return self.runs[chosen]["diagnosis"]

    @property
    def verdict(self) -> str | None:
        diagnosis = self.diagnosis
        return diagnosis["verdict"] if diagnosis else None

    def verdict_count(self) -> str:
        """`2 of 3 seeds`: how many seed runs share the consensus verdict."""
        verdicts = [r["verdict"] for r in self.runs.values() if r["verdict"]]
        return f"{verdicts.count(self.verdict)} of {len(self.seeds)} seeds" if verdicts else "no seed diagnosed"

    def best_seed(self) -> int | None:
        """The seed whose run has the lowest validation data loss (ties: the first seed)."""
        values = {s: v for s, v in self.values().items() if v is not None}
        return min(values, key=lambda s: (values[s], self.seeds.index(s))) if values else None
