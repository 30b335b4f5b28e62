"""The `tracking:` block: TensorBoard event files and MLflow runs, read back and checked against history.csv.

Real tiny trainings (80 rows, 3 epochs): they check wiring, not convergence. Bad input goes
through the CLI: exit 2, the key path in the message, no traceback.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from regcli import rundir, tracking
from regcli.cli import app
from regcli.spec import load_experiment_spec

ROOT = Path(__file__).resolve().parents[1]
# 80 rows and 3 epochs: a second of training; enough epochs to compare curves per step.
BASE = {
    "seed": 0,
    "data": {"source": "moons", "params": {"n_samples": 80}},
    "model": {"hidden": [8], "batchnorm": False, "dropout": 0.1, "l2": 1e-3},
    "training": {"epochs": 3, "batch_size": 16, "early_stopping": {"enabled": False}},
}


def write_spec(directory: Path, tracking_block, name: str = "spec.yaml", **extra) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    raw = {**BASE, **extra}
    if tracking_block is not None:
        raw["tracking"] = tracking_block
    path = directory / name
    path.write_text(yaml.safe_dump(raw))
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def read_tensorboard(log_dir: Path) -> dict[tuple[str, str], dict[int, float]]:
    """{(writer, tag): {step: value}} from the event files, failing on a step written twice."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    out: dict[tuple[str, str], dict[int, float]] = {}
    for path in sorted(log_dir.glob("*/events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                steps = out.setdefault((path.parent.name, value.tag), {})
                assert event.step not in steps, f"{path.parent.name}/{value.tag} step {event.step} written twice"
                assert value.metadata.plugin_data.plugin_name == "scalars"
                steps[event.step] = float(tf.make_ndarray(value.tensor))
    return out


def assert_tensorboard_matches_history(run: Path):
    history = pd.read_csv(run / rundir.HISTORY)
    scalars = read_tensorboard(run / tracking.TENSORBOARD_DIR)
    for column in ("loss", "val_loss", "data_loss", "val_data_loss", "clean_loss", "clean_data_loss",
                   "accuracy", "val_accuracy", "clean_accuracy", "lr"):
        writer, tag = next((w, t) for w, t, _ in tracking.tensorboard_scalars({column: 0.0}))
        logged = scalars[(writer, tag)]
        assert sorted(logged) == history["epoch"].tolist(), column  # steps are the 1-based epochs
        for epoch, value in zip(history["epoch"], history[column], strict=True):
            assert math.isclose(logged[epoch], value, rel_tol=1e-6, abs_tol=1e-7), (column, epoch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ======================================================================================
# Spec: validate prints the block; bad keys are exit 2 with the key path
# ======================================================================================
def test_tracking_is_off_by_default_and_validate_prints_the_resolved_block(tmp_path):
    spec = load_experiment_spec(write_spec(tmp_path, None))
    assert spec.tracking.tensorboard is False and spec.tracking.mlflow is None

    path = write_spec(tmp_path, {"tensorboard": True, "mlflow": {"uri": "store/mlruns"}})
    result = invoke("validate", path, "--set", "tracking.mlflow.experiment=bc")
    if not tracking.mlflow_installed():
        pytest.skip("mlflow is not installed")
    assert result.exit_code == 0, result.output
    block = yaml.safe_load(result.stdout)["tracking"]  # stderr carries the data summary
    # A relative store is resolved against the spec file's directory and printed absolute.
    assert block == {"tensorboard": True, "mlflow": {"uri": str(tmp_path / "store" / "mlruns"), "experiment": "bc"}}
    assert not (tmp_path / "store").exists()  # validate creates nothing


def test_validate_and_help_do_not_import_mlflow_or_tensorflow(tmp_path):
    path = write_spec(tmp_path, {"tensorboard": True, "mlflow": {"uri": str(tmp_path / "mlruns")}})
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom regcli.cli import app\n"
        f"r = CliRunner().invoke(app, ['validate', {str(path)!r}])\n"
        "print(r.exit_code, 'mlflow' in sys.modules, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    expected_code = "0" if tracking.mlflow_installed() else "2"
    assert out.stdout.split() == [expected_code, "False", "False", "False"], out.stderr[-2000:]


@pytest.mark.parametrize(
    ("block", "key", "words"),
    [
        ({"tensorbord": True}, "tracking.tensorbord", "Did you mean 'tracking.tensorboard'"),
        ({"tensorboard": "yes"}, "tracking.tensorboard", "must be true or false"),
        ({"tensorboard": 1}, "tracking.tensorboard", "must be true or false"),
        ({"mlflow": True}, "tracking.mlflow", "must be a mapping such as {uri: mlruns"),
        ({"mlflow": "mlruns"}, "tracking.mlflow", "must be a mapping"),
        ({"mlflow": {}}, "tracking.mlflow.uri", "is required"),
        ({"mlflow": {"uri": "mlruns", "experimnt": "x"}}, "tracking.mlflow.experimnt", "Did you mean 'tracking.mlflow.experiment'"),
        ({"mlflow": {"uri": 5}}, "tracking.mlflow.uri", "must be a non-empty string"),
        ({"mlflow": {"uri": ""}}, "tracking.mlflow.uri", "must be a non-empty string"),
        ({"mlflow": {"uri": "ftp://host/mlruns"}}, "tracking.mlflow.uri", "must be a directory path or a file, sqlite, http, https URI"),
        ({"mlflow": {"uri": "http://"}}, "tracking.mlflow.uri", "must name the tracking server"),
        ({"mlflow": {"uri": "http://localhost:99999"}}, "tracking.mlflow.uri", "has an invalid port"),
        ({"mlflow": {"uri": "file://server/share/mlruns"}}, "tracking.mlflow.uri", "absolute path"),
        ({"mlflow": {"uri": "sqlite://"}}, "tracking.mlflow.uri", "must name a database file"),
        ({"mlflow": {"uri": "mlruns", "experiment": ""}}, "tracking.mlflow.experiment", "experiment name"),
        ({"mlflow": {"uri": "mlruns", "experiment": 3}}, "tracking.mlflow.experiment", "experiment name"),
        (None, "tracking", "must be a mapping"),
    ],
)
def test_bad_tracking_keys_exit_2_naming_the_key(tmp_path, block, key, words):
    path = write_spec(tmp_path, {})
    raw = yaml.safe_load(path.read_text())
    raw["tracking"] = block
    path.write_text(yaml.safe_dump(raw))
    result = invoke("validate", path)
    assert result.exit_code == 2, result.output
    assert key in result.output and words in result.output, result.output
    assert "Traceback" not in result.output


def test_mlflow_not_installed_is_exit_2_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "mlflow_installed", lambda: False)
    path = write_spec(tmp_path, {"mlflow": {"uri": "mlruns"}})
    for args in (("validate", path), ("train", path, "--out", tmp_path / "runs", "--quiet")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "tracking.mlflow" in result.output and "pip install 'regcli[mlflow]'" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("kind", ["server", "file_in_the_way", "sqlite_dir"])
def test_unusable_mlflow_store_fails_fast_before_training(tmp_path, kind):
    if not tracking.mlflow_installed():
        pytest.skip("mlflow is not installed")
    (tmp_path / "a_file").write_text("not a directory")
    uri = {
        "server": f"http://127.0.0.1:{free_port()}",  # nothing listens there: connection refused
        "file_in_the_way": str(tmp_path / "a_file" / "mlruns"),
        "sqlite_dir": f"sqlite:///{tmp_path}",
    }[kind]
    path = write_spec(tmp_path, {"mlflow": {"uri": uri}})
    out = tmp_path / "runs"
    started = time.monotonic()
    for args in (("validate", path), ("train", path, "--out", out, "--quiet")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "tracking.mlflow.uri" in result.output and "Traceback" not in result.output
    assert time.monotonic() - started < 15  # no hang, no training
    assert not out.exists() or not any(out.iterdir())  # no half-written run directory


def test_a_sweep_with_an_unusable_mlflow_store_stops_before_any_trial(tmp_path):
    if not tracking.mlflow_installed():
        pytest.skip("mlflow is not installed")
    path = write_spec(tmp_path, {"mlflow": {"uri": f"http://127.0.0.1:{free_port()}"}})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "tracked", "base": path.name, "params": {"model.l2": [0.0, 1e-3]}}))
    out = tmp_path / "runs"
    result = invoke("sweep", sweep, "--out", out, "--quiet")
    assert result.exit_code == 2, result.output
    assert "tracking.mlflow.uri" in result.output and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())  # no sweep directory, no trial started


# ======================================================================================
# A real run with TensorBoard and MLflow (file store)
# ======================================================================================
@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    from regcli.experiment import run_experiment

    pytest.importorskip("mlflow")
    tmp = tmp_path_factory.mktemp("tracked")
    store = tmp / "mlruns"
    spec = load_experiment_spec(
        write_spec(tmp, {"tensorboard": True, "mlflow": {"uri": "mlruns", "experiment": "regcli-test"}})
    )
    outcome = run_experiment(spec, out=tmp / "runs")
    return outcome, store


def test_tensorboard_scalars_equal_history_per_epoch(tracked_run):
    outcome, _ = tracked_run
    assert {p.name for p in (outcome.run_dir / "tensorboard").iterdir()} == {"train", "validation", "clean"}
    assert_tensorboard_matches_history(outcome.run_dir)


def test_mlflow_run_holds_params_metric_histories_tags_and_artifacts(tracked_run):
    from mlflow.tracking import MlflowClient

    outcome, store = tracked_run
    run_dir = outcome.run_dir
    record = json.loads((run_dir / tracking.TRACKING_FILE).read_text())["mlflow"]
    assert record["uri"] == str(store) and "error" not in record

    client = MlflowClient(tracking_uri=str(store))
    experiment = client.get_experiment_by_name("regcli-test")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [record["run_id"]]
    mlrun = runs[0]
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == run_dir.name

    params = mlrun.data.params
    assert params["model.l2"] == "0.001" and params["training.epochs"] == "3"
    assert params["data.params.n_samples"] == "80" and params["model.hidden"] == "[8]"
    assert params["tracking.mlflow.experiment"] == "regcli-test"

    tags = mlrun.data.tags
    summary = json.loads((run_dir / rundir.SUMMARY).read_text())
    diagnosis = json.loads((run_dir / rundir.DIAGNOSIS_JSON).read_text())
    assert tags["verdict"] == diagnosis["verdict"]
    assert tags["best_epoch"] == str(summary["best_epoch"]) and tags["state"] == "completed"

    history = pd.read_csv(run_dir / rundir.HISTORY)
    for column in ("loss", "val_loss", "data_loss", "val_data_loss", "clean_loss", "clean_accuracy", "lr"):
        points = sorted((m.step, m.value) for m in client.get_metric_history(mlrun.info.run_id, column))
        assert [s for s, _ in points] == history["epoch"].tolist(), column
        assert [v for _, v in points] == pytest.approx(history[column].tolist(), rel=1e-12), column
    metrics = mlrun.data.metrics
    assert metrics["summary.metrics.val.data_loss"] == pytest.approx(summary["metrics"]["val"]["data_loss"])
    assert metrics["summary.best_epoch"] == summary["best_epoch"]

    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {rundir.CURVES, rundir.DIAGNOSIS_JSON, rundir.DIAGNOSIS_MD, rundir.MODEL, rundir.CONFIG,
            rundir.SUMMARY, rundir.HISTORY} <= artifacts


def test_mlflow_failure_after_training_is_a_warning_recorded_in_tracking_json(tracked_run, tmp_path, monkeypatch, capsys):
    outcome, _ = tracked_run
    copy = tmp_path / "copy"
    shutil.copytree(outcome.run_dir, copy)

    def broken(*args, **kwargs):
        raise RuntimeError("store went away")

    monkeypatch.setattr(tracking, "log_mlflow", broken)
    spec = load_experiment_spec(copy / rundir.CONFIG)
    record = tracking.RunTracker(copy, spec.model_copy(
        update={"tracking": spec.tracking.model_copy(update={"tensorboard": False})})).finish(outcome)
    assert record["mlflow"]["error"] == "RuntimeError: store went away"
    assert "could not be logged to MLflow" in capsys.readouterr().err
    assert json.loads((copy / tracking.TRACKING_FILE).read_text()) == record


# ======================================================================================
# Resume and packed training
# ======================================================================================
def test_resumed_run_has_each_epoch_once_in_tensorboard(tmp_path, monkeypatch):
    from regcli.errors import Interrupted
    from regcli.experiment import resume_run, run_experiment
    from regcli.training import callbacks

    monkeypatch.setattr(callbacks, "CHECKPOINT_SECONDS", 0.0)  # a checkpoint every epoch
    spec = load_experiment_spec(write_spec(tmp_path, {"tensorboard": True}, training={**BASE["training"], "epochs": 4}))

    def stop_at_epoch_3(row):
        if row["epoch"] == 3:
            raise KeyboardInterrupt  # after epoch 3 was logged, before its checkpoint

    with pytest.raises(Interrupted):
        run_experiment(spec, out=tmp_path / "runs", on_epoch=stop_at_epoch_3)
    run = next((tmp_path / "runs").iterdir())
    assert max(read_tensorboard(run / "tensorboard")[("train", "epoch_loss")]) == 3

    outcome = resume_run(run)
    assert outcome.state == "completed"
    assert json.loads((run / rundir.ENVIRONMENT).read_text())["resumed_from_epoch"] == 2
    assert len(pd.read_csv(run / rundir.HISTORY)) == 4
    assert_tensorboard_matches_history(run)  # epoch 3 once, from the resumed run


def test_packed_towers_each_get_their_own_tensorboard_and_mlflow_run(tmp_path):
    from regcli.experiment import run_packed

    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    block = {"tensorboard": True, "mlflow": {"uri": "sqlite:///mlflow.db", "experiment": "packed"}}
    specs = [
        load_experiment_spec(write_spec(tmp_path, block, f"t{k}.yaml", model={**BASE["model"], "l2": l2}))
        for k, l2 in enumerate((0.0, 1e-2))
    ]
    outcomes = run_packed(specs, [tmp_path / "trials" / "a", tmp_path / "trials" / "b"])
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("packed")
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()  # beside the database
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"a", "b"}
    for outcome, l2 in zip(outcomes, ("0.0", "0.01"), strict=True):
        assert_tensorboard_matches_history(outcome.run_dir)
        mlrun = runs[outcome.run_dir.name]
        assert mlrun.data.params["model.l2"] == l2
        history = pd.read_csv(outcome.run_dir / rundir.HISTORY)
        logged = sorted((m.step, m.value) for m in client.get_metric_history(mlrun.info.run_id, "val_data_loss"))
        assert [v for _, v in logged] == pytest.approx(history["val_data_loss"].tolist(), rel=1e-12)


def test_example_config_with_tracking_validates():
    spec = load_experiment_spec(ROOT / "configs" / "tracking_example.yaml")
    assert spec.tracking.tensorboard is True and spec.tracking.mlflow is None
