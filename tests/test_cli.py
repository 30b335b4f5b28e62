"""The command line as users run it: real subprocesses, exit codes, stdout/stderr, files."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.0},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
}


def regcli(*args, cwd=None, timeout=180, env=None):
    """Runs `python -m regcli ARGS` and returns the CompletedProcess (text)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "regcli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=full_env, check=False,
    )


def write(tmp_path, raw, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def imported_modules(*args):
    """Top-level modules imported by `python -X importtime -m regcli ARGS`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "regcli", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return proc, names


def test_help_and_validate_do_not_import_tensorflow_or_keras(tmp_path):
    proc, names = imported_modules("--help")
    assert proc.returncode == 0 and "train" in proc.stdout
    assert "typer" in names  # the importtime parse works
    assert not {"tensorflow", "keras", "jax"} & names
    proc, names = imported_modules("validate", str(ROOT / "configs" / "quickstart.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pydantic" in names
    assert not {"tensorflow", "keras", "jax"} & names


def test_help_lists_every_bool_option_as_a_flag_without_a_value_placeholder():
    from typer.main import get_command
    from typer.testing import CliRunner

    from regcli.cli import app

    runner = CliRunner()
    for command in ("train", "sweep"):
        result = runner.invoke(app, [command, "--help"], terminal_width=120)
        assert result.exit_code == 0, result.output
        (line,) = [line for line in result.output.splitlines() if "--smoke" in line]
        assert line.split()[:3] == ["│", "--smoke", "CI"], line  # no `<bool>` between the flag and its help
    group = get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            if getattr(param, "type_descriptor", None) is not None and param.type_descriptor.annotation is bool:
                assert param.is_flag, f"regcli {name} {param.opts}: a bool option must be a flag"
        result = runner.invoke(app, [name, "--help"], terminal_width=120)
        assert result.exit_code == 0 and "<bool>" not in result.output, (name, result.output)
    assert "<bool>" not in runner.invoke(app, ["--help"], terminal_width=120).output
    smoke_true = runner.invoke(app, ["train", "configs/quickstart.yaml", "--smoke", "true"])
    assert smoke_true.exit_code == 2  # a flag takes no value: `true` is an extra argument


def test_validate_prints_the_spec_with_every_default_filled_in():
    proc = regcli("validate", "configs/quickstart.yaml", "--set", "model.l2=1e-3")
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert resolved["model"]["l2"] == pytest.approx(1e-3)
    assert resolved["training"]["early_stopping"]["restore_best_weights"] is True
    assert resolved["diagnosis"]["gap_tolerance"] == pytest.approx(0.02)
    assert resolved["data"]["val_fraction"] == pytest.approx(0.2)


BAD_SPECS = {
    # kind: (yaml text, text the error must contain)
    "dropout out of range": ("data: {source: iris}\nmodel: {dropout: 1.0}\n", "model.dropout"),
    "negative l2": ("data: {source: iris}\nmodel: {l2: -1e-4}\n", "model.l2"),
    "negative patience": ("data: {source: iris}\ntraining: {early_stopping: {patience: -3}}\n", "training.early_stopping.patience"),
    "fractions sum to 1": ("data: {source: iris, val_fraction: 0.5, test_fraction: 0.5}\n", "test_fraction"),
    "wrong type": ("data: {source: iris}\ntraining: {epochs: ten}\n", "training.epochs"),
    "string number": ("data: {source: iris}\ntraining: {batch_size: '32'}\n", "training.batch_size"),
    "yaml 1.1 boolean": ("data: {source: iris}\nmodel: {dropout: no}\n", "model.dropout"),
    "unknown key": ("data: {source: iris}\nmodel: {dropuot: 0.2}\n", "dropout"),
    "unknown source": ("data: {source: mnist}\n", "data.source"),
    "missing data file": ("data: {path: nowhere.csv, target: y}\n", "data.path"),
    "disallowed layer": ("data: {source: digits}\nmodel: {layers: [{type: lambda, function: x}]}\n", "model.layers.0"),
    "python tag": ("data: !!python/object/apply:os.system [echo hacked]\n", "python"),
    "malformed yaml": ("data: {source: iris\nmodel: [\n", "line"),
    "empty file": ("", "empty"),
    "duplicate key": ("data: {source: iris}\nmodel: {l2: 1e-4, l2: 1e-3}\n", "l2"),
    "huge epochs": ("data: {source: iris}\ntraining: {epochs: 1000000000000}\n", "training.epochs"),
    "huge layer": ("data: {source: iris}\nmodel: {hidden: [1000000000]}\n", "model.hidden"),
    "hidden and layers": ("data: {source: iris}\nmodel: {hidden: [8], layers: [{type: flatten}]}\n", "model.layers"),
    "top level list": ("- data\n- model\n", "mapping"),
    "missing data": ("model: {hidden: [8]}\n", "data"),
}


@pytest.mark.parametrize("kind", sorted(BAD_SPECS))
def test_bad_spec_exits_2_naming_the_key_without_traceback_or_run_dir(tmp_path, kind):
    text, must_contain = BAD_SPECS[kind]
    spec = write(tmp_path, text)
    out = tmp_path / "runs"
    proc = regcli("train", spec, "--out", out, "--quiet")
    assert proc.returncode == 2, (kind, proc.stdout, proc.stderr)
    assert must_contain in proc.stderr, (kind, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists() or not any(out.iterdir())
    assert "hacked" not in proc.stdout


def test_bad_set_override_and_missing_config_exit_2(tmp_path):
    proc = regcli("validate", "configs/quickstart.yaml", "--set", "model.l2")
    assert proc.returncode == 2 and "model.l2" in proc.stderr and "Traceback" not in proc.stderr
    proc = regcli("validate", "configs/quickstart.yaml", "--set", "model.l22=1e-3")
    assert proc.returncode == 2 and "model.l22" in proc.stderr
    proc = regcli("train", tmp_path / "absent.yaml")
    assert proc.returncode == 2 and "absent.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_name_cannot_escape_the_output_dir(tmp_path):
    spec = write(tmp_path, TINY)
    proc = regcli("train", spec, "--out", tmp_path / "runs", "--name", "../../etc", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert "--name" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "etc").exists()


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "SPEC", "--out", ""], "error: --out must name a directory. Received: ''. Give one, e.g. --out runs "
         "(--out . for the current folder), or leave --out out for its default."),
        (["train", "SPEC", "--out", "runs", "--name", ""], "error: --name must be 1-100 characters of letters, "
         "digits, '.', '_' or '-', starting with a letter or digit, so the run directory stays inside the output "
         "directory. Received: ''."),
        (["sweep", "SPEC", "--out", " "], "error: --out must name a directory. Received: ' '."),
        (["diagnose", "RUN", "--fail-on", ""], "error: --fail-on must list at least one verdict, e.g. --fail-on "
         "high_variance,diverged. Valid verdicts: high_bias, high_variance, high_bias_and_variance, good_fit, "
         "diverged, not_learning. Received: ''. Leave --fail-on out to never fail."),
        (["diagnose", "RUN", "--fail-on", " , "], "error: --fail-on must list at least one verdict"),
    ],
)
def test_empty_option_values_are_refused_naming_the_option(tmp_path, args, message):
    spec = write(tmp_path, TINY)
    run = tmp_path / "run"
    run.mkdir()
    args = [{"SPEC": spec, "RUN": run}.get(a, a) for a in args]
    proc = regcli(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert one_paragraph(proc.stderr).startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "spec.yaml"] and not any(run.iterdir())


def test_generated_data_too_big_for_memory_is_refused_at_validation(tmp_path):
    raw = {"data": {"source": "synthetic_classification", "params": {"n_samples": 1000000, "n_features": 10000}}}
    spec = write(tmp_path, raw)
    for command in ("validate", "train"):
        proc = regcli(command, spec, "--out", tmp_path / "runs") if command == "train" else regcli(command, spec)
        assert proc.returncode == 2, proc.stderr
        assert one_paragraph(proc.stderr).startswith(
            f"error: Invalid spec {spec}: data.params: n_samples x n_features = 1,000,000 x 10,000 would generate "
            "a 74.5 GiB feature matrix"
        ), proc.stderr
        assert "Traceback" not in proc.stderr and "ArrayMemoryError" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="RLIMIT_AS: Linux")
def test_running_out_of_memory_while_loading_data_is_a_clean_error(tmp_path):
    import resource

    # 1,000,000 x 200 float64 is 1.49 GiB: valid (under 2 GiB), but not under a 1 GiB address-space limit.
    raw = {**TINY, "data": {"source": "synthetic_classification", "params": {"n_samples": 1000000, "n_features": 200}}}
    spec = write(tmp_path, raw)
    limit = 1024**3

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    threads = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-m", "regcli", "train", str(spec), "--out", str(tmp_path / "runs"), "--quiet"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, env={**os.environ, **threads},
        preexec_fn=cap_memory, check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = one_paragraph(proc.stderr)
    assert message.startswith(
        "error: data: loading and splitting data.source 'synthetic_classification' ran out of memory (Unable to "
        "allocate 1.49 GiB for an array with shape (1000000, 200) and data type float64)."
    ), message
    assert message.endswith(
        "this process may use at most 1.0 GiB (ulimit -v). Lower data.params.n_samples or n_features, "
        "or use a smaller data file."
    ), message
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_train_smoke_prints_only_the_summary_to_a_pipe_and_diagnose_reads_it_back(tmp_path):
    out = tmp_path / "runs"
    proc = regcli("train", "configs/quickstart.yaml", "--smoke", "--out", out, "--seed", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(proc.stdout.splitlines()[0].strip())
    assert run.parent == out and run.name.startswith("quickstart-")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] <= 2 and summary["n_train"] <= 256 and summary["seed"] == 3
    assert "shipped epoch" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no progress bars or colour codes into a pipe

    before = {p.name: p.read_bytes() for p in run.iterdir() if not p.name.startswith("diagnosis")}
    proc = regcli("diagnose", run, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    verdict = result["diagnosis"]["verdict"]
    assert verdict == json.loads((run / "diagnosis.json").read_text())["verdict"]
    assert {p.name: p.read_bytes() for p in run.iterdir() if not p.name.startswith("diagnosis")} == before
    proc = regcli("diagnose", run, "--fail-on", verdict)
    assert proc.returncode == 1
    proc = regcli("diagnose", run, "--fail-on", "nonsense")
    assert proc.returncode == 2 and "--fail-on" in proc.stderr

    proc = regcli("diagnose", run, "--json", "--replay", "patience=0,min_delta=0.5")
    assert proc.returncode == 0, proc.stderr
    replay = json.loads(proc.stdout)["replay"]
    assert replay["settings"]["patience"] == 0 and replay["settings"]["min_delta"] == 0.5
    assert replay["replay"]["epochs_run"] <= summary["epochs_run"]
    proc = regcli("diagnose", run, "--replay", "patience=-1")
    assert proc.returncode == 2 and "patience" in proc.stderr and "Traceback" not in proc.stderr

    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "running"}))
    proc = regcli("diagnose", run)
    assert proc.returncode == 2 and "still running" in proc.stderr
    (run / "summary.json").unlink()
    (run / "status.json").write_text(json.dumps(status))
    proc = regcli("diagnose", run)
    assert proc.returncode == 2 and "summary.json" in proc.stderr and "Traceback" not in proc.stderr


def test_diagnose_on_a_corrupt_run_dir_exits_2(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text('{"state": "completed", "star')
    (run / "config.yaml").write_text("seed: 0\n")
    proc = regcli("diagnose", run)
    assert proc.returncode == 2 and "status.json" in proc.stderr and "Traceback" not in proc.stderr
    proc = regcli("diagnose", tmp_path / "nothing-here")
    assert proc.returncode == 2 and "nothing-here" in proc.stderr


def test_jax_backend_trains_through_the_same_path(tmp_path):
    pytest.importorskip("jax")
    spec = write(tmp_path, TINY)
    proc = regcli("train", spec, "--backend", "jax", "--out", tmp_path / "runs", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(proc.stdout.splitlines()[0].strip())
    assert json.loads((run / "summary.json").read_text())["backend"] == "jax"
    assert json.loads((run / "environment.json").read_text())["backend"] == "jax"


def test_diverged_run_exits_1(tmp_path):
    raw = {**TINY, "data": {"source": "diabetes"},
           "training": {"epochs": 5, "optimizer": "sgd", "learning_rate": 10.0, "early_stopping": {"enabled": False}},
           "model": {"hidden": [64, 64], "batchnorm": False, "dropout": 0.0}}
    proc = regcli("train", write(tmp_path, raw), "--out", tmp_path / "runs", "--quiet")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "diverged" in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_leaves_a_consistent_interrupted_run_and_exits_130(tmp_path):
    raw = {**TINY, "training": {"epochs": 100000, "early_stopping": {"enabled": False}}}
    out = tmp_path / "runs"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "regcli", "train", str(write(tmp_path, raw)), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )
    deadline = time.time() + 120
    history = None
    while time.time() < deadline:
        found = list(out.glob("*/history.csv")) if out.exists() else []
        if found and len(found[0].read_text().splitlines()) >= 3:
            history = found[0]
            break
        time.sleep(0.2)
    assert history is not None, "training never recorded an epoch"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    status = json.loads((history.parent / "status.json").read_text())
    assert status["state"] == "interrupted" and status["ended"]
    lines = history.read_text().splitlines()
    assert lines[0].startswith("epoch,") and all(len(x.split(",")) == len(lines[0].split(",")) for x in lines)


def test_validate_accepts_a_sweep_spec_without_importing_tensorflow():
    proc, names = imported_modules("validate", str(ROOT / "configs" / "sweep_l2_dropout.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = yaml.safe_load(proc.stdout)
    assert "model.l2" in resolved["params"] and resolved["base"]["data"]["source"]
    assert not {"tensorflow", "keras", "jax", "ray"} & names


def test_device_gpu_without_a_gpu_and_a_missing_backend_are_bad_input(tmp_path):
    spec = write(tmp_path, TINY)
    out = tmp_path / "runs"
    proc = regcli("train", spec, "--set", "device=gpu", "--out", out, "--quiet")
    assert proc.returncode == 2 and "device: gpu" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    if importlib.util.find_spec("torch") is None:
        proc = regcli("train", spec, "--backend", "torch", "--out", out, "--quiet")
        assert proc.returncode == 2 and "torch is not installed" in proc.stderr
