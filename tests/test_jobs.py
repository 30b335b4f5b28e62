"""`--jobs auto`, the default of `regcli sweep`: workers chosen from the cores, the trials, their
packs and the measured costs (regcli.sweep.jobs)."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from typer.testing import CliRunner

from regcli.cli import app
from regcli.errors import BadInputError
from regcli.sweep.jobs import SWEEP_S, available_memory, choose_workers, makespan, parse_jobs


def items(configs: int, seeds: int = 1, key=lambda c, s: f"seed{s}"):
    return [(f"t{c}-s{s}", key(c, s)) for s in range(seeds) for c in range(configs)]


@pytest.mark.parametrize(("sizes", "workers", "measured"), [
    ([8], 1, 17.4),        # 8 quickstart trials, one pack, --jobs 1 (docs/benchmarks.md)
    ([4, 4], 2, 14.1),     # two packs of 4, --jobs 2
    ([1] * 8, 1, 39.5),    # --no-pack --jobs 1
    ([1] * 8, 2, 25.9),    # --no-pack --jobs 2
])
def test_the_cost_model_reproduces_the_measured_sweeps_within_10_percent(sizes, workers, measured):
    assert makespan(sizes, workers, cores=2) == pytest.approx(measured, rel=0.10)


def test_auto_chooses_one_worker_for_one_trial_and_both_cores_when_two_packs_pay():
    assert choose_workers(items(1), packing=True, cores=2).workers == 1
    eight = choose_workers(items(8), packing=True, cores=2)
    assert (eight.workers, eight.tasks) == (2, 2)  # 2 packs of 4: 14.3 s modelled against 17.5 s for one of 8
    assert eight.estimate_s > SWEEP_S
    assert choose_workers(items(8), packing=False, cores=2).workers == 2


def test_auto_adds_a_worker_only_when_it_pays_and_never_more_than_cores_trials_or_memory():
    many = choose_workers(items(15, seeds=3), packing=True, cores=16)  # the bundled 45-trial sweep
    assert 2 <= many.workers <= 16
    assert choose_workers(items(1), packing=True, cores=16).workers == 1
    assert choose_workers(items(3), packing=False, cores=16).workers <= 3
    assert choose_workers(items(8), packing=False, cores=16, memory=1_500_000_000).workers == 1
    assert choose_workers(items(8), packing=False, cores=1).workers == 1


def test_unpackable_trials_are_spread_over_the_workers():
    alone = choose_workers(items(6, key=lambda c, s: None), packing=True, cores=4)
    assert alone.tasks == 6 and alone.workers >= 2


@pytest.mark.parametrize(("given", "expected"), [(None, None), ("auto", "auto"), ("AUTO", "auto"), ("3", 3), (2, 2)])
def test_jobs_values(given, expected):
    assert parse_jobs(given) == expected


def test_a_bad_jobs_value_exits_2_naming_the_option_and_creates_nothing(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"data": {"source": "breast_cancer"}}))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"base": "base.yaml", "params": {"model.l2": [0.0, 1e-3]}}))
    for bad, said in (("many", "--jobs must be an integer >= 1 or auto. Received: 'many'"), ("0", "--jobs must be")):
        result = CliRunner().invoke(app, ["sweep", str(tmp_path / "sweep.yaml"), "--jobs", bad, "--out", str(tmp_path / "runs")])
        assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
    with pytest.raises(BadInputError):
        parse_jobs("1.5")


def test_a_default_sweep_says_what_auto_chose_above_its_progress_bar_and_in_its_manifest(tmp_path, monkeypatch):
    from helpers import InProcessExecutor
    from rich.console import Console

    from regcli.sweep import run as sweep_run
    from regcli.sweep.console import sweep_progress
    from regcli.sweep.run import prepare_sweep, run_sweep

    base = {"seed": 0, "data": {"source": "breast_cancer"}, "model": {"hidden": [8], "batchnorm": False},
            "training": {"epochs": 2, "early_stopping": {"enabled": False}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"base": "base.yaml", "params": {"model.l2": [0.0, 1e-3]}}))
    plan = prepare_sweep(tmp_path / "sweep.yaml", out=tmp_path / "runs")
    assert plan.jobs is None  # auto
    made = []

    def executor(kind, address, jobs, n, keep_open=False):
        made.append(jobs)
        return InProcessExecutor()

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200)
    monkeypatch.setattr(sweep_run, "make_executor", executor)
    with sweep_progress(console) as progress:
        result = run_sweep(plan, progress=progress)
    chosen = choose_workers([(t.id, "same") for t in plan.sweep.trials], packing=True, memory=available_memory())
    assert made == [chosen.workers]
    line = chosen.describe(2)
    assert line in screen.getvalue()
    manifest = json.loads((result.sweep_dir / "sweep.json").read_text())
    assert manifest["executions"][-1]["jobs"] == line
