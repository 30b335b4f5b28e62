"""`model.builder`: the user's own model function, checked without running it, trained as regcli's own models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import flat
from typer.testing import CliRunner

from regcli import builder
from regcli.cli import app
from regcli.diagnosis import diagnose
from regcli.spec import load_experiment_spec, spec_to_dict

ROOT = Path(__file__).resolve().parents[1]

# A functional model with a custom serializable layer: what a Keras user writes in models.py.
MODELS_PY = '''
import keras


@keras.saving.register_keras_serializable(package="regcli_test")
class Scale(keras.layers.Layer):
    """Multiplies by one learned scalar: a custom layer that must survive save and load."""

    def build(self, input_shape):
        self.alpha = self.add_weight(shape=(), initializer="ones", name="alpha")

    def call(self, x):
        return x * self.alpha


def build(input_shape, n_outputs, task, dropout=0.3, l2=1e-4, width=16):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))(inputs)
    x = Scale()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(n_outputs, activation="sigmoid" if task == "binary" else "softmax")(x)
    return keras.Model(inputs, outputs)


def wrong_output(input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))
'''
# 3 epochs on breast_cancer: these tests check the wiring, not convergence.
SPEC = {"name": "byom", "data": {"source": "breast_cancer"}, "model": {"builder": "models.py:build", "l2": 1.0e-3},
        "training": {"epochs": 3, "early_stopping": {"enabled": False}}}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "models.py").write_text(MODELS_PY)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    return tmp_path


def train_spec(directory: Path, spec: dict, name: str) -> Path:
    """Writes `spec` as `name` in `directory`, trains it with `regcli train` into directory/runs; the run dir."""
    (directory / name).write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["train", str(directory / name), "--out", str(directory / "runs")])
    assert result.exit_code == 0, result.output
    return Path(result.output.splitlines()[0])


def write_spec(directory: Path, model: dict, name: str = "bad.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump({**SPEC, "model": model}))
    return path


def test_the_signature_is_read_from_the_source_without_running_it(tmp_path):
    (tmp_path / "m.py").write_text("raise SystemExit('imported!')\n"
                                   "def build(input_shape, *, dropout=0.5, hidden=(64, 32), act=ACT, **kw): ...\n")
    sig = builder.signature(f"{tmp_path / 'm.py'}:build")
    assert sig.params == ("input_shape", "dropout", "hidden", "act") and sig.any_keyword
    assert sig.defaults["dropout"] == 0.5 and sig.defaults["hidden"] == (64, 32)
    assert sig.defaults["act"] is builder.NO_LITERAL  # not a literal: unknown without running the code
    with pytest.raises(ValueError, match=r"defines no top-level function 'make' \(it defines: build\)"):
        builder.signature(f"{tmp_path / 'm.py'}:make")


def test_the_resolved_spec_holds_the_knobs_passed_and_the_functions_own_defaults(project):
    spec = load_experiment_spec(project / "spec.yaml")
    assert spec.model.builder == f"{project / 'models.py'}:build"  # made absolute, like data.path
    model = spec_to_dict(spec)["model"]
    # l2 as written, dropout from the function's default; knobs it does not take are left out
    assert model["l2"] == 1.0e-3 and model["dropout"] == 0.3
    assert not {"hidden", "batchnorm", "activation", "l1", "output_l2"} & set(model)
    again = project / "resolved.yaml"
    again.write_text(yaml.safe_dump(spec_to_dict(spec)))
    assert spec_to_dict(load_experiment_spec(again)) == spec_to_dict(spec)  # round-trips


def test_validate_reads_the_builder_without_tensorflow_or_running_it(project):
    (project / "models.py").write_text("import sys\nsys.exit('user code ran')\n" + MODELS_PY)
    code = ("import sys\nfrom regcli.cli import main\nsys.argv = ['regcli', 'validate', sys.argv[1]]\n"
            "try:\n    main()\nfinally:\n    print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(project / "spec.yaml")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "TF False False" in proc.stdout and "user code ran" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"builder": "models.py"}, "model.builder: must be 'path/to/file.py:function' or 'package.module:function'."),
        ({"builder": "nope.py:build"}, "model.builder: file not found: {d}/nope.py (relative paths are resolved "
                                       "against {d})."),
        ({"builder": "models.py:make"}, "model.builder: {d}/models.py defines no top-level function 'make' "
                                        "(it defines: build, wrong_output)."),
        ({"builder": "no_such_pkg_xyz.mod:build"}, "model.builder: module 'no_such_pkg_xyz.mod' is not on the "
                                                   "Python path (no no_such_pkg_xyz)."),
        ({"builder": "models.py:build", "batchnorm": True},
         "model.batchnorm: is not a parameter of the builder build(input_shape, n_outputs, task, dropout, l2, width), "
         "so it would have no effect."),
        ({"builder": "models.py:build", "builder_args": {"depth": 3}},
         "model.builder_args.depth: is not a parameter of the builder build(input_shape, n_outputs, task, dropout, "
         "l2, width)."),
        ({"builder": "models.py:build", "builder_args": {"dropout": 0.1}},
         "model.builder_args.dropout: is not a builder argument of its own."),
        ({"builder": "models.py:build", "layers": [{"type": "dense", "units": 4}]},
         "It is invalid to specify both model.builder AND model.layers."),
        ({"builder_args": {"width": 8}}, "model.builder_args: applies only with model.builder."),
    ],
)
def test_a_bad_builder_is_refused_before_anything_runs(project, model, message):
    path = write_spec(project, model)
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(project / "runs")])
    assert result.exit_code == 2, result.output
    assert message.format(d=project) in flat(result.output)
    assert "Traceback" not in result.output and not (project / "runs").exists()


@pytest.mark.slow
def test_a_builder_model_trains_ships_tests_and_diagnoses_like_regclis_own(project):
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(project / "spec.yaml"), "--out", str(project / "runs")])
    assert result.exit_code == 0, result.output
    run = Path(result.output.splitlines()[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["state"] == "completed" and summary["epochs_run"] == 3
    # the builder's own L2 (1e-3, passed to it) is in loss and not in data_loss
    assert summary["penalty"] > 0 and summary["metrics"]["val"]["loss"] > summary["metrics"]["val"]["data_loss"]
    assert len(summary["weight_stats"]) == 2  # the kernels of the user's two Dense layers
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["dropout"] == 0.3 and config["model"]["builder"].endswith("models.py:build")
    tested = runner.invoke(app, ["test", str(run), "--json"])  # model.keras loads (safe_mode) with its custom layer
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.output[tested.output.index("{"):])["metrics"]["error"] < 0.5
    diagnosed = runner.invoke(app, ["diagnose", str(run), "--json"])
    assert diagnosed.exit_code == 0, diagnosed.output
    recs = json.loads(diagnosed.output)["diagnosis"]["recommendations"]
    # every knob it names is one the function takes; the rest is advice for the user's code
    assert {r["knob"] for r in recs if r["knob"]} <= {"model.l2", "model.dropout", "training.epochs",
                                                      "training.early_stopping.enabled", "training.learning_rate"}


def test_a_knob_the_builder_does_not_take_is_advice_for_its_code_not_a_set():
    import pandas as pd

    # An underfit builder model (70% on both splits, 3000/1000 rows) whose function takes dropout but no hidden.
    config = {"model": {"builder": "/x/models.py:build", "dropout": 0.1}, "training": {"epochs": 40}}
    history = pd.DataFrame([{"epoch": e, "loss": 0.69 - 0.001 * e, "val_loss": 0.69 - 0.001 * e,
                             "data_loss": 0.69 - 0.001 * e, "val_data_loss": 0.69 - 0.001 * e,
                             "clean_data_loss": 0.69 - 0.001 * e, "clean_accuracy": 0.6, "accuracy": 0.6,
                             "val_accuracy": 0.6} for e in range(1, 41)])
    summary = {"state": "completed", "best_epoch": 40, "epochs_run": 40, "n_train": 3000, "n_val": 1000,
               "metrics": {"train": {"accuracy": 0.7, "error": 0.3, "data_loss": 0.6},
                           "val": {"accuracy": 0.7, "error": 0.3, "data_loss": 0.6}}}
    result = diagnose(history, summary, config, run_dir="RUN")
    assert result["verdict"] == "high_bias"
    assert result["recommendations"] == [
        {"knob": None, "from": None, "to": None,
         "text": "give the model more capacity (wider or more layers) — in your builder's code: build() takes no "
                 "`hidden` parameter (add one to let regcli turn it, or change the model by hand)"},
        {"knob": "model.dropout", "from": 0.1, "to": 0.0, "text": "lower model.dropout from 0.1 to 0"},
        {"knob": "training.epochs", "from": 40, "to": 80,
         "text": "train longer: validation still improving at epoch 40 — raise training.epochs from 40 to 80"},
    ]


def test_a_builder_that_returns_the_wrong_output_is_refused_naming_the_fix(project):
    path = write_spec(project, {"builder": "models.py:wrong_output"})
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(project / "runs")])
    assert result.exit_code == 2, result.output
    assert ("model.builder '" + str(project / "models.py") + ":wrong_output': the model's output shape is (3,); a "
            "binary task needs (1,): end with Dense(1, activation='sigmoid').") in flat(result.output)
    assert not (project / "runs").exists() or not list((project / "runs").iterdir())


@pytest.mark.slow
def test_a_sweep_over_the_builders_own_knobs_runs_aggregates_and_plots(project):
    (project / "sweep.yaml").write_text(yaml.safe_dump({
        "base": "spec.yaml", "name": "byom-sweep", "seeds": [0],
        "params": {"model.dropout": [0.0, 0.5], "model.builder_args.width": [4, 8]},
    }))
    result = CliRunner().invoke(app, ["sweep", str(project / "sweep.yaml"), "--out", str(project / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    (sweep_dir,) = (project / "runs").glob("byom-sweep-*")
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["config"] and len(list((sweep_dir / "trials").iterdir())) == 4
    for knob in ("model.dropout", "model.builder_args.width"):
        assert (sweep_dir / f"val_vs_{knob}.png").stat().st_size > 0
    widths = set()
    for config in (sweep_dir / "trials").glob("*/config.yaml"):
        widths.add(yaml.safe_load(config.read_text())["model"]["builder_args"]["width"])
    assert widths == {4, 8}


def write_image_folder(root: Path, size: int = 32, per_class: int = 10) -> Path:
    """Two classes of noisy solid-colour PNGs: red and blue."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in (("blue", (40, 40, 200)), ("red", (200, 40, 40))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(colour, 40, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_transfer_learning_with_a_frozen_backbone_keeps_its_batchnorm_in_inference_mode(tmp_path):
    """configs/byom/transfer.py: a keras.applications backbone (weights=None: nothing downloaded),
    frozen, called with training=False; its BatchNormalization statistics never move."""
    import keras
    import numpy as np

    images = write_image_folder(tmp_path / "images")
    spec = {"name": "transfer", "data": {"path": str(images), "image_size": [32, 32], "val_fraction": 0.25,
                                         "test_fraction": 0.2},
            "model": {"builder": str(ROOT / "configs" / "byom" / "transfer.py") + ":build", "dropout": 0.1},
            "training": {"epochs": 2, "batch_size": 8, "early_stopping": {"enabled": False}}}
    run = train_spec(tmp_path, spec, "transfer.yaml")
    tested = CliRunner().invoke(app, ["test", str(run)])
    assert tested.exit_code == 0, tested.output
    from regcli.training.fit import load_shipped_model

    model = load_shipped_model(run / "model.keras", builder=spec["model"]["builder"])
    backbone = next(layer for layer in model._flatten_layers() if layer.name.startswith("mobilenetv2"))
    assert not backbone.trainable
    norms = [la for la in backbone._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    assert norms
    for norm in norms:  # initialised to 0 / 1 and never updated: inference mode throughout training
        assert np.allclose(norm.moving_mean.numpy(), 0.0) and np.allclose(norm.moving_variance.numpy(), 1.0)


@pytest.mark.slow
def test_the_same_model_through_a_builder_and_through_run_recorder_gets_the_same_verdict(project):
    """Issue 18's must-show: models.py:build (a custom serializable layer) trained by `regcli train`, and
    the same function's model trained by the user's own `model.fit` with RunRecorder, on the same split."""
    import importlib.util

    import keras

    from regcli.data import load_dataset
    from regcli.keras import RunRecorder

    # The overfit demo's data (150 training rows, 40 features) and a wide model without a penalty: both
    # must read as overfitting, whichever loop trained it.
    spec = {"name": "overfit-builder", "seed": 0,
            "data": {"source": "synthetic_classification", "params": {"n_samples": 500, "n_features": 40,
                     "n_informative": 5}, "val_fraction": 0.3, "test_fraction": 0.2, "train_fraction": 0.6,
                     "split_seed": 0},
            "model": {"builder": "models.py:build", "dropout": 0.0, "l2": 0.0, "builder_args": {"width": 256}},
            "training": {"epochs": 60, "batch_size": 32, "early_stopping": {"enabled": False}}}
    built_run = train_spec(project, spec, "overfit.yaml")

    loaded = load_experiment_spec(project / "overfit.yaml")
    ds = load_dataset(loaded.data, seed=0, task="auto")
    module_spec = importlib.util.spec_from_file_location("byom_models_for_recorder", project / "models.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    keras.utils.set_random_seed(0)
    model = module.build(input_shape=(40,), n_outputs=1, task="binary", dropout=0.0, l2=0.0, width=256)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    recorder = RunRecorder(project / "runs", name="overfit-recorded", train_data=(ds.x_train, ds.y_train),
                           val_data=(ds.x_val, ds.y_val))
    model.fit(ds.x_train, ds.y_train, validation_data=(ds.x_val, ds.y_val), epochs=60, batch_size=32, verbose=0,
              callbacks=[recorder])

    verdicts = []
    for run in (built_run, recorder.run_dir):
        diagnosed = CliRunner().invoke(app, ["diagnose", str(run), "--json"])
        assert diagnosed.exit_code == 0, diagnosed.output
        verdicts.append(json.loads(diagnosed.output)["diagnosis"]["verdict"])
    assert verdicts == ["high_variance", "high_variance"]
