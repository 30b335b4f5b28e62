"""What `regcli diagnose` and `regcli train` print: the answer first, the evidence behind --verbose.

One real run is trained per module (breast_cancer, hidden [8], 3 epochs, model.l2 = 1 so that the
diagnosis has a knob to recommend: these tests check the printing, not convergence). The texts
compared come from the run's own diagnosis (`--json`), never written out here, so the diagnosis
core can reword its headline and recommendations without breaking these tests.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from regcli.cli import app
from regcli.commands.diagnose import print_diagnosis

TINY = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0, "l2": 1.0},
    "training": {"epochs": 3, "early_stopping": {"enabled": False}},
}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run directory, train's stdout lines, the run's diagnosis as `diagnose --json` prints it)."""
    base = tmp_path_factory.mktemp("diagnose-cli")
    spec = base / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    result = invoke("train", spec, "--out", base / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    run = Path(lines[0])
    diagnosis = json.loads(invoke("diagnose", run, "--json").stdout)["diagnosis"]
    assert diagnosis["recommendations"], diagnosis  # the ordering tests below need one
    return run, lines, diagnosis


def answer_lines(run: Path, diagnosis: dict) -> list[str]:
    """The lines the default output opens with, in order: run and verdict, headline, recommendations, warnings."""
    return [
        f"{run}: {diagnosis['verdict']}",
        diagnosis["headline"],
        *(f"{i}. {rec['text']}" for i, rec in enumerate(diagnosis["recommendations"], start=1)),
        *(f"warning: {warning['text']}" for warning in diagnosis["warnings"]),
    ]


def evidence_line(key: str, value) -> str:
    """How --verbose shows one scalar evidence value: floats to 4 significant digits."""
    return f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}"


def scalar_evidence(diagnosis: dict) -> dict:
    return {k: v for k, v in diagnosis["evidence"].items() if not isinstance(v, (dict, list))}


def test_train_prints_the_headline_and_the_next_knob_after_its_table(trained):
    run, lines, diagnosis = trained
    assert lines[0] == str(run)  # still the first line, for `RUN=$(regcli train ... | head -n 1)`
    caption = next(i for i, line in enumerate(lines) if line.endswith(f"verdict: {diagnosis['verdict']}"))
    assert lines[caption + 1:] == [diagnosis["headline"], f"next: {diagnosis['recommendations'][0]['text']}"]


def test_diagnose_prints_the_answer_first_and_no_evidence(trained):
    run, _, diagnosis = trained
    result = invoke("diagnose", run)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == answer_lines(run, diagnosis)  # nothing else: no evidence rows
    for key in ("val_noise", "curve_window", "evidence"):
        assert key not in result.stdout
    assert not [key for key in diagnosis["evidence"] if f"{key}:" in result.stdout]


def test_diagnose_verbose_adds_every_scalar_of_the_evidence_after_the_answer(trained):
    run, _, diagnosis = trained
    result = invoke("diagnose", run, "--verbose")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    answer = answer_lines(run, diagnosis)
    assert lines[: len(answer)] == answer and lines[len(answer)] == "evidence:"
    evidence = lines[len(answer) + 1:]
    scalars = scalar_evidence(diagnosis)
    assert [evidence_line(k, v) for k, v in scalars.items()] == [
        line for line in evidence if line.split(":")[0].strip() in scalars
    ]
    assert any(line.startswith("  val_noise: ") for line in evidence) == ("val_noise" in scalars)
    # The evidence stays in the files either way.
    assert json.loads((run / "diagnosis.json").read_text())["evidence"].keys() == diagnosis["evidence"].keys()


def test_diagnose_json_is_the_full_diagnosis_with_or_without_verbose(trained):
    run, _, diagnosis = trained
    plain, verbose = invoke("diagnose", run, "--json"), invoke("diagnose", run, "--json", "--verbose")
    assert plain.exit_code == verbose.exit_code == 0, plain.output + verbose.output
    assert json.loads(plain.stdout) == json.loads(verbose.stdout)
    assert json.loads(plain.stdout)["diagnosis"] == diagnosis == json.loads((run / "diagnosis.json").read_text())


@pytest.mark.parametrize("verbose", [[], ["--verbose"]])
def test_fail_on_exit_codes_are_unchanged(trained, verbose):
    run, _, diagnosis = trained
    verdict = diagnosis["verdict"]
    gate = invoke("diagnose", run, "--fail-on", verdict, *verbose)
    assert gate.exit_code == 1 and gate.stdout.splitlines()[0] == f"{run}: {verdict}"  # printed, then the answer
    other = "good_fit" if verdict != "good_fit" else "diverged"
    assert invoke("diagnose", run, "--fail-on", other, *verbose).exit_code == 0
    assert invoke("diagnose", run, "--fail-on", "nonsense", *verbose).exit_code == 2


def test_replay_panel_comes_last_after_the_evidence(trained):
    run, _, diagnosis = trained
    result = invoke("diagnose", run, "--verbose", "--replay", "patience=0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    answer = answer_lines(run, diagnosis)
    assert lines[: len(answer)] == answer
    panel = next(i for i, line in enumerate(lines) if "early-stopping replay" in line)
    assert lines.index("evidence:") < panel
    assert "patience=0" in " ".join(lines[panel:])


def test_several_runs_print_one_block_each_separated_by_a_blank_line(trained, tmp_path):
    run, _, diagnosis = trained
    other = Path(shutil.copytree(run, tmp_path / run.name))
    result = invoke("diagnose", run, other)
    assert result.exit_code == 0, result.output
    first, second = answer_lines(run, diagnosis), answer_lines(other, diagnosis)
    assert result.stdout.splitlines() == [*first, "", *second]


# --- the rendering on its own (no training) --------------------------------------------

LONG = (
    "check the labels and features (data.target, data.source): val error 0.544 is no better than "
    "the majority-class predictor's 0.377, so no regularization knob can help yet"
)
RESULT = {
    "run_dir": "runs/demo-20260101T000000Z-abcdef",
    "diagnosis": {
        "verdict": "high_variance",
        "headline": "High variance — the gap 0.29 is far above the tolerance 0.02.",
        "evidence": {"gap": 0.2912345, "n_val": 30, "still_improving": False, "focus": None,
                     "signs": ["a", "b"], "split": {"n_train": 90, "share": 0.123456}},
        "recommendations": [
            {"knob": "model.hidden", "from": [8], "to": [16], "text": "widen model.hidden from [8] to [16]"},
            {"knob": None, "from": None, "to": None, "text": LONG},
        ],
        "warnings": [{"code": "tiny_val", "text": "only 30 validation rows: [bold]not markup[/bold]"}],
    },
}


def render(*, terminal: bool, width: int, verbose: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None, soft_wrap=True)
    print_diagnosis(console, RESULT, verbose=verbose)
    return out.getvalue()


def test_a_pipe_gets_one_line_per_item_never_folded_and_no_markup_read():
    lines = render(terminal=False, width=40, verbose=True).splitlines()
    assert lines == [
        "runs/demo-20260101T000000Z-abcdef: high_variance",
        "High variance — the gap 0.29 is far above the tolerance 0.02.",
        "1. widen model.hidden from [8] to [16]",
        f"2. {LONG}",
        "warning: only 30 validation rows: [bold]not markup[/bold]",
        "evidence:",
        "  gap: 0.2912",
        "  n_val: 30",
        "  still_improving: False",
        "  focus: None",
        "  signs: [a, b]",
        "  split: {n_train: 90, share: 0.1235}",
    ]


def test_a_narrow_terminal_wraps_each_item_under_its_text_and_truncates_nothing():
    text = render(terminal=True, width=40)
    lines = text.splitlines()
    assert lines[0] == f"{RESULT['run_dir']}: high_variance"  # one line: the terminal folds it, a copy-paste stays whole
    assert all(len(line) <= 40 for line in lines[1:]) and "…" not in text
    assert " ".join(LONG.split()) in " ".join(text.split())  # every word, in order
    second = next(i for i, line in enumerate(lines) if line.startswith("2. "))
    assert lines[second + 1].startswith("   ") and lines[second + 1].strip()  # a hanging indent under the text
