"""`regcli tune`: the acceptance rule and the step logic on hand-written numbers, then real tunes.

The rule and the loop's decisions are checked without training, on tables of per-seed validation
losses and hand-written diagnoses. The real tunes are tiny (hundreds of rows, at most 25 epochs,
2 seeds) and run their trials in this process, except the one that is killed: that one is a
`regcli tune` subprocess with its own worker, as a user would start it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import InProcessExecutor, flat, wait_for
from typer.testing import CliRunner

from regcli.cli import app
from regcli.commands.listing import list_runs
from regcli.commands.report import write_report
from regcli.errors import BadInputError
from regcli.spec import spec_to_dict, validate_experiment
from regcli.tune import loop
from regcli.tune.decide import (
    candidates,
    choose,
    consensus,
    fits_in_budget,
    paired_comparison,
    yaml_value,
)
from regcli.tune.loop import Tuner, run_tune
from regcli.tune.plan import Config, TunePlan, parse_seeds, prepare_tune
from regcli.tune.trials import Evaluation

ROOT = Path(__file__).resolve().parents[1]
REGCLI = [sys.executable, "-m", "regcli"]

# Overfits without early stopping (no penalty, 25 epochs on 350 rows): its diagnosis first asks to
# enable early stopping, which beats the base on both seeds by ~0.11 in val_data_loss (SE ~0.008);
# from there neither L2 x10 nor dropout 0.2 is beyond noise, so the tune stops after 10 trials.
OVERFIT = {
    "name": "tiny-overfit",
    "seed": 0,
    "data": {"source": "synthetic_classification", "params": {"n_samples": 500, "n_features": 30, "n_informative": 4},
             "val_fraction": 0.3, "split_seed": 0},
    "model": {"hidden": [96, 96], "batchnorm": False, "dropout": 0.0, "l2": 1.0e-3},
    "training": {"epochs": 25, "batch_size": 32, "early_stopping": {"enabled": False}},
}
# 3 epochs of an 8-unit MLP: the kill test checks resume wiring, not convergence.
TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    "training": {"epochs": 3, "early_stopping": {"enabled": False}},
}



def read_steps(tune_dir: Path) -> list[dict[str, str]]:
    with (tune_dir / "steps.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))



@pytest.fixture
def in_process(monkeypatch):
    monkeypatch.setattr(loop, "make_executor", lambda *args, **kwargs: InProcessExecutor())


# --------------------------------------------------------------------------- the rule


def test_a_gain_beyond_two_paired_standard_errors_beats_the_incumbent():
    result = paired_comparison({0: 0.50, 1: 0.52, 2: 0.49}, {0: 0.41, 1: 0.44, 2: 0.40})
    assert result.beats and result.n == 3
    assert result.gain == pytest.approx(0.26 / 3)
    assert result.se == pytest.approx(0.01 / 3)
    assert result.why == "beats the incumbent: val_data_loss gain 0.0867 > 2 x paired SE 0.00333 over 3 seeds"


def test_a_gain_within_seed_noise_is_rejected_even_with_a_lower_mean():
    # per-seed differences 0.19, -0.02: mean 0.085, SE 0.105
    result = paired_comparison({0: 0.74, 1: 0.52}, {0: 0.55, 1: 0.54})
    assert not result.beats
    assert result.why == "not beyond seed noise: val_data_loss gain 0.085 <= 2 x paired SE 0.105 over 2 seeds"


def test_one_seed_accepts_a_strictly_lower_value_and_says_there_is_no_noise_estimate():
    better = paired_comparison({0: 0.5}, {0: 0.49})
    assert better.beats and better.se is None
    assert "one seed: no noise estimate" in better.why
    assert not paired_comparison({0: 0.5}, {0: 0.5}).beats


def test_a_consistent_but_negligible_gain_is_not_worth_a_step():
    # L2 0 -> 1e-4 on a run that L2 barely touches: lower on every seed (0.0004 +- 0.00005, far beyond
    # noise) but 0.1% of the incumbent's 0.38; under the 1% floor it is rejected, and `why` says so.
    result = paired_comparison({0: 0.3800, 1: 0.3900, 2: 0.3700}, {0: 0.3796, 1: 0.3895, 2: 0.3697})
    assert not result.beats and result.gain > 2 * result.se
    assert result.why == ("too small to be worth a step: val_data_loss gain 0.0004 > 2 x paired SE 5.77e-05 over "
                          "3 seeds, but the gain is 0.1% of the incumbent's 0.38 (under 1%)")
    # The one-seed rule has the same floor: 0.5 -> 0.498 is lower, by 0.4%.
    assert not paired_comparison({0: 0.5}, {0: 0.498}).beats
    assert paired_comparison({0: 0.5}, {0: 0.49}).beats  # 2%: worth it


def test_a_candidate_with_a_seed_that_did_not_complete_is_rejected():
    result = paired_comparison({0: 0.5, 1: 0.5}, {0: 0.1, 1: None})
    assert not result.beats
    assert result.why == "rejected: seed(s) 1 did not complete (failed or diverged)"
    assert not paired_comparison({0: 0.5, 1: 0.5}, {0: 0.1, 1: float("nan")}).beats


def test_choose_takes_the_lowest_mean_among_the_candidates_beyond_noise():
    incumbent = {0: 0.50, 1: 0.50}
    steady = {0: 0.45, 1: 0.46}  # gain 0.045, SE 0.005: beyond noise
    noisy = {0: 0.30, 1: 0.60}  # lower mean (0.45 vs 0.455), but SE 0.15
    index, comparisons = choose(incumbent, [noisy, steady])
    assert index == 1 and [c.beats for c in comparisons] == [False, True]
    # ties go to the earlier candidate: the diagnosis's order
    assert choose(incumbent, [steady, dict(steady)])[0] == 0
    assert choose(incumbent, [noisy])[0] is None


def test_consensus_is_the_most_common_verdict_first_seed_on_ties():
    assert consensus(["high_variance", "good_fit", "good_fit"]) == 1
    assert consensus(["high_bias", "high_variance"]) == 0
    assert consensus(["good_fit"]) == 0


def test_recommendations_become_candidates_or_skips_and_advice_is_neither():
    recs = [
        {"knob": "model.layers", "from": 0.0, "to": 1e-4, "text": "raise kernel_regularizer.l2 in model.layers"},
        {"knob": "model.dropout", "from": 0.2, "to": 0.3, "text": "raise model.dropout from 0.2 to 0.3"},
        {"knob": "data.label_noise", "from": 0.2, "to": 0.0, "text": "lower data.label_noise"},
        {"knob": None, "from": None, "to": None, "text": "get more training data"},
    ]
    chosen, skipped = candidates(recs)
    assert [(c.knob, c.old, c.new) for c in chosen] == [("model.dropout", 0.2, 0.3)]
    assert [s.knob for s in skipped] == ["model.layers", "data.label_noise"]
    assert "is not one --set override" in skipped[0].why
    assert "changes the data, not the model" in skipped[1].why


def test_budget_and_values_as_set_writes_them():
    assert fits_in_budget(2, 3, 7) == 2 and fits_in_budget(2, 3, 5) == 1 and fits_in_budget(2, 3, 2) == 0
    assert [yaml_value(v) for v in (0.001, 1e-5, [16, 16], True, 0.2)] == ["0.001", "1.0e-05", "[16, 16]", "true", "0.2"]


def test_trial_ids_are_deterministic_in_step_overrides_and_seed():
    base = Config(0, {})
    a = base.turned("model.l2", 1e-3, 1)
    assert a.trial_id(0) == Config(1, {"model.l2": 1e-3}, "model.l2").trial_id(0)
    assert a.trial_id(0).startswith("s1-l2_0.001-") and a.trial_id(0).endswith("-s0")
    assert a.turned("model.dropout", 0.2, 2).id != base.turned("model.dropout", 0.2, 2).id  # other overrides
    assert base.trial_id(1) != base.trial_id(0)
    assert a.sets() == ["model.l2=0.001"]


def test_seeds_are_parsed_and_bad_ones_refused():
    assert parse_seeds("0, 1,2") == [0, 1, 2] and parse_seeds(None) is None
    for text, message in (("a,b", "--seeds must be a comma-separated list of integers >= 0. Received: 'a,b'."),
                          ("1,1", "--seeds lists a seed twice. Received: '1,1'.")):
        with pytest.raises(BadInputError) as info:
            parse_seeds(text)
        assert str(info.value).startswith(message)


# --------------------------------------------------------------------------- the steps, on a table


def _base_dict() -> dict:
    return spec_to_dict(validate_experiment({"data": {"source": "iris"}, "model": {"hidden": [8]}}, ROOT))


def _rec(knob, old, new):
    return {"knob": knob, "from": old, "to": new, "text": f"set {knob} from {old} to {new}"}


class Table:
    """Hand-written evaluations: overrides -> (per-seed val_data_loss, verdict, recommendations)."""

    def __init__(self, rows: dict, seeds: list[int]):
        self.rows, self.seeds, self.batches = rows, seeds, []

    def __call__(self, configs: list[Config]) -> list[Evaluation]:
        self.batches.append([c.overrides for c in configs])
        out = []
        for config in configs:
            values, verdict, recs = self.rows[json.dumps(config.overrides, sort_keys=True)]
            diagnosis = {"verdict": verdict, "recommendations": recs}
            runs = {s: {"state": "completed", "run": f"trials/{config.trial_id(s)}", "val_data_loss": v,
                        "val_error": v / 2, "train_error": 0.05, "verdict": verdict, "diagnosis": diagnosis}
                    for s, v in zip(self.seeds, values, strict=True)}
            out.append(Evaluation(config, self.seeds, runs))
        return out


def _tune_on(table_rows: dict, tmp_path: Path, budget: int = 30, seeds=(0, 1, 2)):
    tmp_path.mkdir(exist_ok=True)
    plan = TunePlan("spec.yaml", _base_dict(), "t-tune", list(seeds), budget)
    said: list[str] = []
    table = Table(table_rows, list(seeds))
    tuner = Tuner(plan, tmp_path, on_step=said.append, train=table)
    incumbent, stop = tuner.run()
    return tuner, incumbent, stop, said, table


L2_UP, DROPOUT_UP, EPOCHS_UP = _rec("model.l2", 1e-4, 1e-3), _rec("model.dropout", 0.2, 0.3), _rec("training.epochs", 20, 40)


def test_a_step_accepts_the_clear_candidate_and_stops_at_good_fit(tmp_path):
    rows = {
        "{}": ([0.50, 0.52, 0.49], "high_variance", [L2_UP, DROPOUT_UP, _rec(None, None, None)]),
        '{"model.l2": 0.001}': ([0.41, 0.44, 0.40], "good_fit", []),
        '{"model.dropout": 0.3}': ([0.35, 0.60, 0.50], "high_variance", []),  # lower on one seed only
    }
    tuner, incumbent, stop, said, table = _tune_on(rows, tmp_path)
    assert stop["code"] == "good_fit" and incumbent.config.overrides == {"model.l2": 1e-3}
    assert table.batches == [[{}], [{"model.l2": 1e-3}, {"model.dropout": 0.3}]]  # the two candidates together
    steps = read_steps(tmp_path)
    assert [(r["step"], r["knob"], r["accepted"]) for r in steps] == [
        ("0", "", "true"), ("1", "model.l2", "true"), ("1", "model.dropout", "false"), ("2", "", "")]
    assert steps[1]["incumbent"] == "base" and steps[1]["from"] == "0.0001" and steps[1]["to"] == "0.001"
    assert steps[2]["why"].startswith("not beyond seed noise: val_data_loss gain")
    assert steps[3]["why"] == "stop: the incumbent's diagnosis is good_fit: ship it"
    assert said[1] == "step 1: high_variance → trying model.l2 1e-4 → 0.001, model.dropout 0.2 → 0.3"
    assert tuner.used == 9


def test_when_neither_candidate_helps_the_third_is_tried_then_the_tune_stops(tmp_path):
    same = [0.50, 0.52, 0.49]
    rows = {
        "{}": (same, "high_variance", [L2_UP, DROPOUT_UP, EPOCHS_UP]),
        '{"model.l2": 0.001}': ([0.50, 0.53, 0.48], "high_variance", []),
        '{"model.dropout": 0.3}': ([0.51, 0.52, 0.49], "high_variance", []),
        '{"training.epochs": 40}': ([0.50, 0.52, 0.49], "high_variance", []),
    }
    tuner, incumbent, stop, said, table = _tune_on(rows, tmp_path)
    assert stop["code"] == "no_gain" and incumbent.config.overrides == {}
    assert table.batches[1:] == [[{"model.l2": 1e-3}, {"model.dropout": 0.3}], [{"training.epochs": 40}]]
    assert tuner.used == 12


def test_the_budget_ends_the_tune_and_unappliable_knobs_are_skipped_rows(tmp_path):
    layers = _rec("model.layers", 0.0, 1e-4)
    rows = {
        "{}": ([0.50, 0.52, 0.49], "high_variance", [layers, L2_UP, DROPOUT_UP]),
        '{"model.l2": 0.001}': ([0.41, 0.44, 0.40], "high_variance", [_rec("model.l2", 1e-3, 1e-2)]),
    }
    # 7 trials: the base (3) and one candidate (3); the second candidate and step 2 do not fit
    tuner, incumbent, stop, said, table = _tune_on(rows, tmp_path, budget=7)
    assert table.batches == [[{}], [{"model.l2": 1e-3}]]
    assert stop == {"code": "budget", "text": "budget spent: 6 of 7 trials used, a candidate needs 3"}
    steps = read_steps(tmp_path)
    assert steps[1]["knob"] == "model.layers" and steps[1]["accepted"] == "false" and steps[1]["seeds"] == ""
    assert "apply it by hand" in steps[1]["why"]
    assert incumbent.config.overrides == {"model.l2": 1e-3}


def test_a_batch_cut_by_the_budget_ends_on_the_budget_not_on_no_gain(tmp_path):
    rows = {
        "{}": ([0.50, 0.52, 0.49], "high_variance", [L2_UP, DROPOUT_UP]),
        '{"model.l2": 0.001}': ([0.50, 0.52, 0.49], "high_variance", []),  # no gain; dropout never fitted
    }
    tuner, incumbent, stop, said, table = _tune_on(rows, tmp_path, budget=8)
    assert table.batches == [[{}], [{"model.l2": 1e-3}]]
    assert stop == {"code": "budget", "text": "budget spent: 6 of 8 trials used, the next candidate needs 3"}


def test_the_same_numbers_give_the_same_steps(tmp_path):
    rows = {
        "{}": ([0.50, 0.52, 0.49], "high_variance", [L2_UP, DROPOUT_UP]),
        '{"model.l2": 0.001}': ([0.41, 0.44, 0.40], "good_fit", []),
        '{"model.dropout": 0.3}': ([0.41, 0.44, 0.40], "good_fit", []),  # a tie: the diagnosis's first wins
    }
    _tune_on(rows, tmp_path / "a")
    _tune_on(rows, tmp_path / "b")
    assert (tmp_path / "a" / "steps.csv").read_text() == (tmp_path / "b" / "steps.csv").read_text()
    assert read_steps(tmp_path / "a")[1]["knob"] == "model.l2"


# --------------------------------------------------------------------------- bad input


def test_bad_options_are_refused_with_exit_2_before_anything_is_created(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    runner = CliRunner()
    for args, message in (
        (["--seeds", "0,x"], "--seeds must be a comma-separated list of integers >= 0. Received: '0,x'."),
        (["--budget", "2"], "--budget 2 is smaller than the number of seeds (3): the base spec alone takes 3 trials."),
        (["--budget", "0"], "--budget must be an integer >= 1 (trials; each seed run is one). Received: 0."),
        (["--executor", "slurm"], "--executor must be one of local, ray. Received: 'slurm'."),
    ):
        result = runner.invoke(app, ["tune", str(spec), "--out", str(tmp_path / "runs"), *args])
        assert result.exit_code == 2, result.output
        assert message in flat(result.output) and "Traceback" not in result.output
    result = runner.invoke(app, ["tune", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "not a regcli tune directory (no tune.yaml)" in flat(result.output)
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- a real tune


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A real tune of OVERFIT over seeds 0 and 1, budget 30, trials trained in this process."""
    mp = pytest.MonkeyPatch()
    mp.setattr(loop, "make_executor", lambda *args, **kwargs: InProcessExecutor())
    root = tmp_path_factory.mktemp("tune")
    (root / "overfit.yaml").write_text(yaml.safe_dump(OVERFIT))
    said: list[str] = []
    try:
        result = run_tune(prepare_tune(root / "overfit.yaml", seeds=[0, 1], budget=30, out=root / "runs"),
                          on_step=said.append)
    finally:
        mp.undo()
    result.said = said
    return result


@pytest.mark.slow
def test_a_real_tune_accepts_the_knob_the_diagnosis_gave_and_stops_before_its_budget(tuned):
    steps = read_steps(tuned.tune_dir)
    best = tuned.best
    assert best["stopped"]["code"] == "no_gain" and best["trials_used"] < best["budget"] == 30
    accepted = [r for r in steps if r["accepted"] == "true" and r["knob"]]
    assert accepted, steps
    first = accepted[0]
    base_runs = [tuned.tune_dir / "trials" / f"{steps[0]['config']}-s{s}" for s in (0, 1)]
    base_recs = json.loads((base_runs[0] / "diagnosis.json").read_text())["recommendations"]
    # the accepted knob and value are what the base's diagnosis (seed 0's; both seeds agree) recommended
    assert steps[0]["verdict"] == "high_variance"
    assert (first["knob"], first["to"]) in [(r["knob"], yaml_value(r["to"])) for r in base_recs]
    assert first["knob"] == base_recs[0]["knob"] == "training.early_stopping.enabled"
    assert best["overrides"] == {"training.early_stopping.enabled": True}
    assert tuned.said[1] == "step 1: high_variance → trying training.early_stopping.enabled false → true, model.l2 0.001 → 0.01"
    assert any(line.startswith("step 1: accepted training.early_stopping.enabled false → true") for line in tuned.said)


@pytest.mark.slow
def test_the_tune_directory_tells_the_story_and_tests_once(tuned):
    d = tuned.tune_dir
    assert d.name.startswith("tiny-overfit-tune-")
    assert {"tune.yaml", "steps.csv", "trajectory.png", "best.json", "results.csv", "trials"} <= {p.name for p in d.iterdir()}
    stored = yaml.safe_load((d / "tune.yaml").read_text())
    assert stored["seeds"] == [0, 1] and stored["budget"] == 30 and stored["base"]["model"]["l2"] == 1e-3
    assert list(read_steps(d)[0]) == ["step", "incumbent", "knob", "from", "to", "seeds", "val_mean", "val_std",
                                      "accepted", "why", "verdict", "val_error", "train_error", "config"]
    assert (d / "trajectory.png").read_bytes().startswith(b"\x89PNG")
    best = tuned.best
    assert best == json.loads((d / "best.json").read_text())
    assert best["shipped_run"] in best["runs"] and best["set"] == ["training.early_stopping.enabled=true"]
    assert best["values"][str(best["shipped_seed"])] == min(best["values"].values())
    assert "choosing the luckiest seed is optimistic" in best["notes"][0]
    assert best["final_test"]["metrics"]["error"] is not None and best["final_test"]["consulted_before"] == 0
    ledger = [json.loads(line) for line in (d.parent / "test_ledger.jsonl").read_text().splitlines()]
    assert [e["run_name"] for e in ledger] == [Path(best["shipped_run"]).name]  # one look, the shipped run's
    with (d / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == best["trials_used"]
    (entry,) = list_runs(d.parent)  # `regcli ls`: the tune is one row, its shipped configuration's numbers
    assert entry["kind"] == "tune" and entry["name"] == d.name and entry["n_trials"] == best["trials_used"]
    assert entry["trial_states"] == {"completed": best["trials_used"]}
    assert entry["verdict"] == best["verdict"] and entry["stopped"] == best["stopped"]["code"]
    assert entry["best_validation"] == {"metric": "val_data_loss", "value": best["mean"], "epoch": None,
                                        "config": best["config"]}
    assert entry["test_error"] == best["final_test"]["metrics"]["error"]
    listing = CliRunner().invoke(app, ["ls", str(d.parent)])
    assert listing.exit_code == 0, listing.output
    assert "0 run(s), 1 tune(s)" in listing.output and f"stopped: {best['stopped']['code']}" in flat(listing.output)
    assert len(list_runs(d)) == best["trials_used"]  # `regcli ls TUNE_DIR`: its trials, as for a sweep


@pytest.mark.slow
def test_resuming_a_finished_tune_retrains_nothing_and_replays_the_same_steps(tuned, in_process):
    before = (tuned.tune_dir / "steps.csv").read_text()
    status = {p.name: p.read_text() for p in (tuned.tune_dir / "trials").glob("*/status.json")}
    result = run_tune(prepare_tune(None, resume=tuned.tune_dir))
    assert result.trained == 0
    assert (tuned.tune_dir / "steps.csv").read_text() == before
    assert {p.name: p.read_text() for p in (tuned.tune_dir / "trials").glob("*/status.json")} == status
    assert result.best["final_test"]["reused"] is True  # the test split is not looked at again


@pytest.mark.slow
def test_the_report_of_a_tune_shows_what_shipped_every_step_and_the_trajectory(tuned):
    page = write_report(tuned.tune_dir).read_text()
    assert 'id="verdict-text">Shipped: training.early_stopping.enabled=true' in page
    assert page.count("data:image/png;base64,") == 1
    assert "beats the incumbent: val_data_loss gain" in page and "Final test, the shipped run only, once" in page


# --------------------------------------------------------------------------- kill, resume, smoke


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_a_killed_tune_resumes_without_retraining_finished_trials(tmp_path, in_process):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    out = tmp_path / "runs"
    proc = subprocess.Popen([*REGCLI, "tune", str(tmp_path / "tiny.yaml"), "--seeds", "0,1", "--budget", "6",
                             "--out", str(out), "--quiet"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "stderr.txt").open("w"), env={**os.environ, "PYTHONPATH": str(ROOT)})

    def completed():
        return [p for p in out.glob("*/trials/*/status.json") if json.loads(p.read_text() or "{}").get("state") == "completed"]

    try:
        wait_for(lambda: completed() or proc.poll() is not None, 120, "a completed trial", poll=0.05)
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 30, "the orphaned worker to exit", poll=0.05)
    finished = {p.parent.name: json.loads(p.read_text())["started"] for p in completed()}
    assert 1 <= len(finished) < 6  # killed mid-way: some trials done, the rest left to the resume
    (tune_dir,) = out.glob("tiny-tune-*")
    result = CliRunner().invoke(app, ["tune", "--resume", str(tune_dir)])
    assert result.exit_code == 0, result.output
    assert "took over the stale lock" in flat(result.output)
    for trial, started in finished.items():
        assert json.loads((tune_dir / "trials" / trial / "status.json").read_text())["started"] == started
    best = json.loads((tune_dir / "best.json").read_text())
    assert best["trials_used"] == 6 and len(list((tune_dir / "trials").iterdir())) == 6


@pytest.mark.slow
def test_a_smoke_tune_never_touches_the_test_split(tmp_path, in_process):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    result = CliRunner().invoke(app, ["tune", str(tmp_path / "tiny.yaml"), "--smoke", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (tune_dir,) = (tmp_path / "runs").glob("tiny-tune-*")
    best = json.loads((tune_dir / "best.json").read_text())
    assert "final_test_skipped" in best and "final_test" not in best
    assert best["seeds"] == [0] and best["trials_used"] <= 3
    assert not list(tmp_path.rglob("test_ledger.jsonl"))
    for summary in tune_dir.glob("trials/*/summary.json"):
        data = json.loads(summary.read_text())
        assert "test" not in data["metrics"] and data["epochs_run"] <= 2 and data["n_train"] <= 256
