"""`regcli init`, `regcli schema` and shell completion, as users run them.

Most tests call the Typer app in-process (CliRunner: milliseconds); the import-time check,
the console-script check and the one real training run use subprocesses.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from regcli.cli import app
from regcli.commands.init import EXPERIMENT_SCHEMA_FILE, SWEEP_SCHEMA_FILE, Template, render_template
from regcli.spec import (
    SpecLoader,
    is_sweep_spec,
    load_experiment_spec,
    load_yaml_file,
    set_dotted,
    validate_experiment,
)
from regcli.sweep import load_sweep

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TEMPLATES = [t.value for t in Template]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# A table for the csv template: 40 rows are enough for validation, which never trains.
TABLE = "x1,x2,city,label\n" + "".join(f"{i * 0.5},{i % 7},{'ab'[i % 2]},{'yn'[i % 3 == 0]}\n" for i in range(40))


def invoke(*args, env=None):
    """`regcli ARGS` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args], prog_name="regcli", env=env)


def regcli(*args, cwd, timeout=120, flags=()):
    """`python [FLAGS] -m regcli ARGS` as a subprocess."""
    return subprocess.run(
        [sys.executable, *flags, "-m", "regcli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV, check=False,
    )


def yaml12(path: Path):
    """A spec as regcli and yaml-language-server read it (YAML 1.2: `1e-4` is a number, not a string)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=SpecLoader)  # noqa: S506 - a SafeLoader


def schema(sweep: bool = False) -> dict:
    result = invoke("schema", *(["--sweep"] if sweep else []))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@functools.cache
def validator(sweep: bool = False):
    """A validator for the schema `regcli schema` prints (built once per module: it takes ~0.1 s)."""
    return jsonschema.Draft202012Validator(schema(sweep))


def schema_errors(instance, sweep: bool = False) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(sweep).iter_errors(instance)]


def assert_clean_exit_2(result, *names):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for name in names:
        assert str(name) in result.output, result.output


# --------------------------------------------------------------------------------------
# regcli init
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_writes_a_spec_that_validates_with_its_schema_beside_it(tmp_path, template):
    spec = tmp_path / f"{template}.yaml"
    result = invoke("init", spec, "--template", template)
    assert result.exit_code == 0, result.output
    assert f"wrote {spec}" in result.stdout
    schema_name = SWEEP_SCHEMA_FILE if template == "sweep" else EXPERIMENT_SCHEMA_FILE
    assert spec.read_text().splitlines()[0] == f"# yaml-language-server: $schema={schema_name}"
    assert (tmp_path / schema_name).is_file()
    if template == "csv":
        assert "edit data.path and data.target" in result.stderr  # my_data.csv does not exist yet
        assert_clean_exit_2(invoke("validate", spec), "data.path", "my_data.csv")
        (tmp_path / "my_data.csv").write_text(TABLE)
    checked = invoke("validate", spec)
    assert checked.exit_code == 0, checked.output
    # The editor's view agrees: the file as written passes its own schema.
    assert schema_errors(yaml12(spec), sweep=template == "sweep") == []


def test_templates_say_what_they_promise():
    quickstart = load_experiment_spec_text(Template.quickstart)
    assert quickstart.data.source == "breast_cancer" and quickstart.model.l2 == 1e-4
    assert quickstart.model.dropout == 0.2 and quickstart.model.batchnorm
    assert quickstart.training.early_stopping.enabled and quickstart.training.early_stopping.patience == 5
    cnn = load_experiment_spec_text(Template.cnn)
    assert cnn.data.source == "digits" and cnn.model.layers[0].type == "conv2d"
    assert load_experiment_spec_text(Template.regression).data.source == "diabetes"


def load_experiment_spec_text(template: Template):
    raw = yaml.load(render_template(template), Loader=SpecLoader)  # noqa: S506 - a SafeLoader
    return validate_experiment(raw, Path.cwd())


def test_sweep_template_sweeps_l2_and_dropout_over_three_seeds(tmp_path):
    spec = tmp_path / "sweep.yaml"
    assert invoke("init", spec, "--template", "sweep").exit_code == 0
    sweep = load_sweep(spec)
    assert sweep.knobs == ["model.l2", "model.dropout"]
    assert sweep.resolved["seeds"] == [0, 1, 2]
    assert len(sweep.trials) == 4 * 3 * 3  # the count its comment gives


def test_the_modeline_is_a_comment_to_regclis_loader(tmp_path):
    text = render_template(Template.quickstart)
    first, rest = text.split("\n", 1)
    assert first == "# yaml-language-server: $schema=regcli.schema.json"
    spec = tmp_path / "a.yaml"
    spec.write_text(text)
    assert load_yaml_file(spec) == yaml.load(rest, Loader=SpecLoader)  # noqa: S506 - a SafeLoader
    assert load_experiment_spec(spec).name == "quickstart"


def test_default_paths_directories_and_missing_parents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "experiment.yaml").is_file() and (tmp_path / EXPERIMENT_SCHEMA_FILE).is_file()
    assert "next: regcli validate experiment.yaml && regcli train experiment.yaml" in result.stdout
    assert invoke("init", "--template", "sweep").exit_code == 0
    assert (tmp_path / "sweep.yaml").is_file() and (tmp_path / SWEEP_SCHEMA_FILE).is_file()
    (tmp_path / "experiments").mkdir()
    assert invoke("init", "experiments").exit_code == 0  # an existing directory: the default name inside
    assert (tmp_path / "experiments" / "experiment.yaml").is_file()
    result = invoke("init", "new/deeper/a.yml", "--template", "regression")
    assert result.exit_code == 0, result.output
    assert "created new/" in result.stdout and "created new/deeper/" in result.stdout
    assert (tmp_path / "new" / "deeper" / "a.yml").is_file()
    assert (tmp_path / "new" / "deeper" / EXPERIMENT_SCHEMA_FILE).is_file()


def test_init_refuses_to_overwrite_a_spec_without_force(tmp_path):
    spec = tmp_path / "experiment.yaml"
    spec.write_text("data: {source: iris}  # mine\n")
    result = invoke("init", spec)
    assert_clean_exit_2(result, spec, "already exists", "--force")
    assert spec.read_text() == "data: {source: iris}  # mine\n"
    assert not (tmp_path / EXPERIMENT_SCHEMA_FILE).exists()  # nothing written at all
    result = invoke("init", spec, "--force", "--template", "cnn")
    assert result.exit_code == 0, result.output
    assert "name: digits-cnn" in spec.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_init_keeps_a_different_schema_file_unless_forced(tmp_path):
    schema_file = tmp_path / EXPERIMENT_SCHEMA_FILE
    schema_file.write_text("{}\n")
    result = invoke("init", tmp_path / "a.yaml")
    assert result.exit_code == 0, result.output
    assert schema_file.read_text() == "{}\n"
    assert f"kept the existing {schema_file}" in result.stderr and "regcli schema --out" in result.stderr
    assert invoke("init", tmp_path / "a.yaml", "--force").exit_code == 0
    assert json.loads(schema_file.read_text())["title"] == "regcli experiment spec"
    result = invoke("init", tmp_path / "b.yaml")  # identical schema: nothing to say or write
    assert result.exit_code == 0 and result.stderr == "" and EXPERIMENT_SCHEMA_FILE not in result.stdout


def test_bad_init_inputs_exit_2_naming_the_option_or_path(tmp_path):
    result = invoke("init", tmp_path / "a.yaml", "--template", "transformer")
    assert_clean_exit_2(result, "--template", "transformer", *TEMPLATES)
    assert not (tmp_path / "a.yaml").exists()
    assert_clean_exit_2(invoke("init", tmp_path / "notes.txt"), "notes.txt", ".yaml or .yml", "notes.yaml")
    (tmp_path / "afile").write_text("x")
    assert_clean_exit_2(invoke("init", tmp_path / "afile" / "a.yaml"), tmp_path / "afile", "is a file")
    assert (tmp_path / "afile").read_text() == "x"


def test_quickstart_template_trains_for_real(tmp_path):
    """The one real training here: --smoke (2 epochs, 256 rows) checks wiring, not convergence."""
    assert invoke("init", tmp_path / "experiment.yaml").exit_code == 0
    proc = regcli("train", "experiment.yaml", "--smoke", "--quiet", "--out", "runs", cwd=tmp_path, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] <= 2 and summary["n_train"] <= 256
    assert json.loads((run / "status.json").read_text())["state"] == "completed"


# --------------------------------------------------------------------------------------
# regcli schema
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sweep", [False, True], ids=["experiment", "sweep"])
def test_schema_is_valid_json_schema_with_descriptions_and_closed_mappings(sweep):
    doc = schema(sweep)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["title"] == ("regcli sweep spec" if sweep else "regcli experiment spec")
    assert doc["additionalProperties"] is False
    for name, definition in doc["$defs"].items():
        if definition.get("type") == "object" and name not in ("ExperimentSpec",):
            assert definition["additionalProperties"] is False, name
    model = doc["$defs"]["ModelSpec"]["properties"]
    assert model["dropout"]["description"].startswith("Dropout rate after every block")
    assert model["dropout"]["minimum"] == 0 and model["dropout"]["exclusiveMaximum"] == 1
    assert doc["$defs"]["EarlyStoppingSpec"]["properties"]["patience"]["minimum"] == 0


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_bundled_config_and_its_resolved_form_pass_the_schema(config):
    raw = yaml12(config)
    sweep = is_sweep_spec(raw)
    assert schema_errors(raw, sweep) == []
    if not sweep:  # what `regcli validate` prints (every default filled in) passes too
        resolved = invoke("validate", config)
        assert resolved.exit_code == 0, resolved.output
        assert schema_errors(yaml.load(resolved.stdout, Loader=SpecLoader)) == []  # noqa: S506


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("model.dropuot", 0.2, "Additional properties"),  # extra=forbid -> additionalProperties: false
        ("model.dropout", 1.0, "model.dropout"),
        ("model.l2", -1e-4, "model.l2"),
        ("training.early_stopping.patience", -3, "training.early_stopping.patience"),
        ("training.epochs", "100", "training.epochs"),  # a quoted number is a string to regcli too
        ("data.val_fraction", 0.0, "data.val_fraction"),
        ("model.hidden", [0], "model.hidden"),
    ],
)
def test_schema_rejects_what_validate_rejects(tmp_path, key, value, where):
    raw = set_dotted(yaml12(ROOT / "configs" / "quickstart.yaml"), key, value)
    errors = schema_errors(raw)
    assert any(where in line for line in errors), errors
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert invoke("validate", path).exit_code == 2


def test_sweep_schema_checks_an_inline_base_and_accepts_a_base_file():
    inline = yaml12(ROOT / "configs" / "sweep_l2_dropout.yaml")
    inline["base"] = {"data": {"source": "iris"}, "model": {"dropuot": 0.2}}
    best = jsonschema.exceptions.best_match(validator(True).iter_errors(inline))
    assert list(best.absolute_path) == ["base", "model"] and "'dropuot' was unexpected" in best.message
    inline["base"] = {"data": {"source": "iris"}}
    assert schema_errors(inline, sweep=True) == []
    inline["bsae"] = "x.yaml"
    assert any("bsae" in line for line in schema_errors(inline, sweep=True))


def test_schema_out_writes_the_printed_schema_and_bad_out_exits_2(tmp_path):
    out = tmp_path / "schemas" / "sweep.json"
    result = invoke("schema", "--sweep", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out}\n"
    assert json.loads(out.read_text()) == schema(sweep=True)
    assert_clean_exit_2(invoke("schema", "--out", tmp_path), tmp_path, "is a directory")
    (tmp_path / "afile").write_text("x")
    assert_clean_exit_2(invoke("schema", "--out", tmp_path / "afile" / "s.json"), tmp_path / "afile")
    assert_clean_exit_2(invoke("schema", "--swep"), "--swep")


def test_init_and_schema_do_not_import_tensorflow_or_keras(tmp_path):
    for args in (["init", "--template", "cnn"], ["schema", "--sweep"], ["init", "--help"]):
        proc = regcli(*args, cwd=tmp_path, flags=["-X", "importtime"])
        assert proc.returncode == 0, proc.stderr[-2000:]
        names = {
            line.rsplit("|", 1)[1].strip()
            for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        }
        assert "typer" in names  # the importtime parse works
        assert not {"tensorflow", "keras", "jax", "torch"} & names, args


# --------------------------------------------------------------------------------------
# Shell completion (typer: --show-completion / --install-completion, _REGCLI_COMPLETE)
# --------------------------------------------------------------------------------------
def complete(words: str, env=None) -> list[str]:
    cword = len(words.split(" ")) - 1
    result = invoke(env={"_REGCLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword), **(env or {})})
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_command_names_and_template_choices_complete():
    assert {"train", "sweep", "validate", "init", "schema"} <= set(complete("regcli "))
    assert complete("regcli sw") == ["sweep"]
    assert complete("regcli init --template ") == TEMPLATES
    assert complete("regcli init --template c") == ["cnn", "csv"]
    assert "--sweep" in complete("regcli schema --")


def test_show_completion_prints_a_bash_script_for_regcli(monkeypatch):
    # Typer detects the shell from the process tree; this switch lets the test name it.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = invoke("--show-completion", "bash")
    assert result.exit_code == 0, result.output
    assert "_REGCLI_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _regcli_completion regcli" in result.stdout


def test_the_console_script_completes_through_the_shell_protocol(tmp_path):
    script = Path(sys.executable).parent / "regcli"
    if not script.exists():
        pytest.skip("the regcli console script is not installed next to this Python")
    env = {**ENV, "_REGCLI_COMPLETE": "complete_bash", "COMP_WORDS": "regcli init --template s", "COMP_CWORD": "3"}
    proc = subprocess.run([script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["sweep"]
