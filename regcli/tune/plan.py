"""What a tune runs: the validated base spec and options (`TunePlan`), its configurations and trial ids.

`prepare_tune` checks everything that can be wrong with the input (the spec, the options, the
directory to resume) and creates nothing. `tune.yaml`, written once into the tune directory, is
self-contained: the base spec resolved with every default filled in and paths made absolute, the
seeds, the budget and whether it is a --smoke tune; `--resume` reads it back and nothing else.

A configuration (`Config`) is the base plus cumulative overrides (`knob -> value`, as
`--set knob=value` would apply them); its trial ids are deterministic in (step, overrides,
seed), so a resumed tune finds the trials it already trained. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regcli import rundir
from regcli.errors import BadInputError, RunDirError
from regcli.spec import MAX_SEED, SpecDumper, load_experiment_spec, spec_to_dict, validate_experiment
from regcli.sweep.expand import Trial, format_value, knob_labels
from regcli.sweep.run import check_executor_options
from regcli.sweep.spec import spec_differences, trial_spec
from regcli.tune.decide import yaml_value

TUNE_SPEC = "tune.yaml"
STEPS = "steps.csv"
TRAJECTORY = "trajectory.png"
BEST = "best.json"
RESULTS = "results.csv"
TRIALS = "trials"
DEFAULT_SEEDS = (0, 1, 2)  # three seeds: the fewest that give the paired rule a noise estimate worth the name
DEFAULT_BUDGET = 24  # trials: with 3 seeds, the base and three steps of two candidates (3 + 3 x 6 = 21)
SMOKE_BUDGET = 3  # --smoke: the base and one step of two candidates, one seed each, at most 2 epochs
MAX_SEEDS = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class TunePlan:
    """A validated tune and how to run it; nothing has been created yet.

    Attributes:
        source: the spec file the base came from (for a resumed tune: as tune.yaml recorded it).
        base: the resolved base spec (every default filled in, paths absolute).
        name: the tune directory's name prefix (`<name>-tune-<time>-<id>`).
        seeds: every configuration is trained once per seed.
        budget: the most trials (seed runs) the tune may train, finished ones included.
        smoke: a --smoke tune (one seed, at most 2 epochs and 256 rows, no final test).
        executor / jobs: where and how many trials train at once.
        address: the Ray cluster for `executor="ray"` (None: a local Ray started for the tune).
        out: the directory the tune directory is created in.
        resume: the tune directory to continue, or None.
    """

    source: str
    base: dict[str, Any]
    name: str
    seeds: list[int]
    budget: int
    smoke: bool = False
    executor: str = "local"
    jobs: int | None = None
    out: Path = Path("runs")
    resume: Path | None = None
    warnings: list[str] = field(default_factory=list)
    address: str | None = None

    def resolved(self) -> dict[str, Any]:
        """What tune.yaml holds."""
        return {"name": self.name, "source": self.source, "seeds": list(self.seeds), "budget": self.budget,
                "smoke": self.smoke, "executor": self.executor, "jobs": self.jobs,
                "rule": {"metric": "val_data_loss", "noise": "mean gain > 2 x paired standard error over seeds"},
                "base": self.base}


def dump_tune_yaml(plan: TunePlan) -> str:
    return yaml.dump(plan.resolved(), Dumper=SpecDumper, sort_keys=False, default_flow_style=None, allow_unicode=True)


def is_tune_dir(path: Path) -> bool:
    return (Path(path) / TUNE_SPEC).is_file()


def parse_seeds(text: str | None) -> list[int] | None:
    """`--seeds 0,1,2` -> [0, 1, 2]; None when not given.

    Raises:
        BadInputError: not a comma-separated list of distinct integers in [0, 2**32 - 1].
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    example = "Write them comma-separated, e.g. --seeds 0,1,2."
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise BadInputError(f"--seeds must be a comma-separated list of integers >= 0. Received: {text!r}. {example}")
    seeds = [int(p) for p in parts]
    if any(s > MAX_SEED for s in seeds):
        raise BadInputError(f"--seeds must be integers in [0, {MAX_SEED}]. Received: {text!r}.")
    if len(set(seeds)) != len(seeds):
        raise BadInputError(f"--seeds lists a seed twice. Received: {text!r}. Each seed is one run of every configuration.")
    if len(seeds) > MAX_SEEDS:
        raise BadInputError(f"--seeds lists {len(seeds)} seeds; at most {MAX_SEEDS} are allowed.")
    return seeds


def _check_options(executor: str, address: str | None, jobs: int | None, budget: int | None) -> None:
    if budget is not None and budget < 1:
        raise BadInputError(f"--budget must be an integer >= 1 (trials; each seed run is one). Received: {budget}.")
    check_executor_options(executor, address, jobs)


def _check_budget(budget: int, seeds: list[int]) -> None:
    if budget < len(seeds):
        raise BadInputError(
            f"--budget {budget} is smaller than the number of seeds ({len(seeds)}): the base spec alone takes "
            f"{len(seeds)} trials. Use --budget {len(seeds) * 3} or more (the base and one step of two candidates)."
        )


def prepare_tune(config: Path | None, *, budget: int | None = None, seeds: list[int] | None = None,
                 jobs: int | None = None, executor: str = "local", address: str | None = None,
                 out: Path | None = None, resume: Path | None = None, smoke: bool = False) -> TunePlan:
    """Validates the base spec (or the tune directory to resume) and the options; creates nothing.

    Raises:
        SpecError / BadInputError / RunDirError (exit code 2): a bad spec, option or tune directory,
            or `--resume` with a spec or seeds that differ from the stored tune.yaml.
    """
    _check_options(executor, address, jobs, budget)
    if resume is not None:
        plan = _resume_plan(config, Path(resume), budget=budget, seeds=seeds, jobs=jobs, executor=executor,
                            out=out, smoke=smoke)
        plan.address = address
        return plan
    if config is None:
        raise BadInputError("regcli tune needs an experiment spec (SPEC.yaml), or --resume TUNE_DIR to continue one.")
    spec = load_experiment_spec(config)
    from regcli import tracking

    tracking.preflight(spec)
    seeds = list(seeds) if seeds is not None else list(DEFAULT_SEEDS)
    budget = budget if budget is not None else DEFAULT_BUDGET
    if smoke:  # SPEC §1: a smoke run is the same code path, tiny: one seed, one step
        seeds, budget = seeds[:1], min(budget, SMOKE_BUDGET)
    _check_budget(budget, seeds)
    name = f"{spec.name or spec.data.source or _stem(spec.data.path)}-tune"
    rundir.check_run_name(name, "name")
    return TunePlan(str(Path(config).absolute()), spec_to_dict(spec), name, seeds, budget, smoke, executor, jobs,
                    Path(out) if out is not None else Path("runs"), address=address)


def _stem(path: Any) -> str:
    return _UNSAFE.sub("_", Path(str(path or "run")).stem) or "run"


def _resume_plan(config: Path | None, tune_dir: Path, *, budget: int | None, seeds: list[int] | None,
                 jobs: int | None, executor: str, out: Path | None, smoke: bool) -> TunePlan:
    """The plan stored in `tune_dir`/tune.yaml; only --budget, --jobs, --executor and --address may change."""
    if out is not None:
        raise BadInputError(f"--out does not apply with --resume: the trials are written into {tune_dir}. Remove --out.")
    stored = read_tune_yaml(tune_dir)
    if smoke and not stored["smoke"]:
        raise BadInputError(f"--resume {tune_dir}: this tune was started without --smoke; resume it without --smoke "
                            f"(a smoke run of it is a new tune).")
    if seeds is not None and list(seeds) != stored["seeds"]:
        raise BadInputError(
            f"--resume {tune_dir}: --seeds {','.join(map(str, seeds))} differs from the tune's seeds "
            f"{','.join(map(str, stored['seeds']))} (tune.yaml). Leave --seeds out to resume, or start a new tune."
        )
    if config is not None:
        given = spec_to_dict(load_experiment_spec(config))
        diffs = [d for d in spec_differences(stored["base"], given) if d != "name"]
        if diffs:
            raise BadInputError(
                f"--resume {tune_dir}: {config} is not the spec this tune started from (they differ in "
                f"{', '.join(diffs[:6])}). The stored {TUNE_SPEC} is authoritative: resume with "
                f"`regcli tune --resume {tune_dir}` alone, or start a new tune with `regcli tune {config}`."
            )
    budget = budget if budget is not None else stored["budget"]
    _check_budget(budget, stored["seeds"])
    return TunePlan(stored["source"], stored["base"], stored["name"], stored["seeds"], budget, stored["smoke"],
                    executor, jobs, tune_dir.parent, tune_dir)


def read_tune_yaml(tune_dir: Path) -> dict[str, Any]:
    """tune.yaml of a tune directory, checked; the base spec validated again.

    Raises:
        RunDirError: not a tune directory, or its tune.yaml is unreadable or incomplete.
    """
    tune_dir = Path(tune_dir)
    path = tune_dir / TUNE_SPEC
    if not tune_dir.is_dir() or not path.is_file():
        raise RunDirError(f"--resume {tune_dir}: not a regcli tune directory (no {TUNE_SPEC}). Pass the directory "
                          f"`regcli tune` printed; a sweep resumes with regcli sweep --resume.")
    try:
        stored = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunDirError(f"{path} cannot be read ({type(exc).__name__}): the file is corrupt.") from None
    keys = ("name", "source", "seeds", "budget", "smoke", "base")
    if not isinstance(stored, dict) or any(k not in stored for k in keys):
        raise RunDirError(f"{path} lacks one of {', '.join(keys)}: it is corrupt or was not written by regcli tune.")
    validate_experiment(stored["base"], tune_dir, source=f"{path} (base)")
    return stored


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Config:
    """A configuration of the tune: the base with `overrides` (knob -> value, in the order applied).

    Attributes:
        step: the step that first trained it (0: the base).
        overrides: every knob changed from the base, cumulative over the accepted steps.
        changed: the knob this step turned (None for the base).
    """

    step: int
    overrides: dict[str, Any] = field(hash=False)
    changed: str | None = None

    @property
    def key(self) -> str:
        """Equal for equal override sets (the same configuration reached twice is trained once)."""
        return json.dumps(self.overrides, sort_keys=True, default=str)

    @property
    def id(self) -> str:
        """`s1-l2_1e-3-3f2a`: the step, the knob turned and its value, a hash of every override."""
        label = "base"
        if self.changed is not None:
            short = knob_labels([self.changed])[self.changed]
            label = _UNSAFE.sub("", f"{short}_{format_value(self.overrides[self.changed])}")[:60] or "knob"
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:4]
        return f"s{self.step}-{label}-{digest}"

    def trial_id(self, seed: int) -> str:
        return f"{self.id}-s{seed}"

    def turned(self, knob: str, value: Any, step: int) -> Config:
        """This configuration with one more knob turned, as trained first at `step`."""
        overrides = {k: v for k, v in self.overrides.items() if k != knob}
        overrides[knob] = value
        return Config(step, overrides, knob)

    def sets(self) -> list[str]:
        """The overrides as `--set` arguments: `model.l2=0.001`."""
        return [f"{k}={yaml_value(v)}" for k, v in self.overrides.items()]

    def trials(self, seeds: list[int]) -> list[Trial]:
        varied = (self.changed,) if self.changed else ()
        return [Trial(self.trial_id(s), self.id, self.step, dict(self.overrides), varied, s) for s in seeds]


def config_specs(base: dict[str, Any], config: Config, seeds: list[int]) -> dict[str, Any]:
    """trial id -> its validated experiment spec (the base, the overrides, the seed).

    Raises:
        SpecError: the overrides make an invalid spec (the caller skips that candidate).
    """
    return {t.id: trial_spec(base, t, source=f"tune configuration {config.id}") for t in config.trials(seeds)}
