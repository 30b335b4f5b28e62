"""`data.impute` and what `regcli validate` says about the data: real files in tmp_path.

The data tests call `load_dataset` on a validated spec; the validate tests call the Typer app
in-process (CliRunner: stdout and stderr apart), and one subprocess checks that validating a
data file imports no TensorFlow or Keras.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from regcli.cli import app
from regcli.data import load_dataset
from regcli.errors import DataError, SpecError
from regcli.spec import validate_experiment

ROOT = Path(__file__).resolve().parents[1]
N = 40


def spec(data: dict, **top):
    return validate_experiment({"data": data, "model": {"hidden": [8]}, **top}, ROOT)


def load(data: dict, seed: int = 0):
    validated = spec(data, seed=seed)
    return load_dataset(validated.data, seed=validated.seed, task=validated.model.task)


def gappy_csv(tmp_path: Path, name: str = "gappy.csv") -> Path:
    """40 rows: `size` is the row id, `age` misses every 4th value, `city` every 8th, target alternates."""
    frame = pd.DataFrame(
        {
            "size": np.arange(N, dtype=float),
            "age": [np.nan if i % 4 == 0 else float(i) for i in range(N)],
            "city": [None if i % 8 == 0 else "xyz"[i % 3] for i in range(N)],
            "t": ["no", "yes"] * (N // 2),
        }
    )
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def invoke(*args):
    """`regcli ARGS` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args], prog_name="regcli")


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"data": data, "model": {"hidden": [8]}}))
    return path


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


# --- the spec ----------------------------------------------------------------------------------


def test_impute_defaults_to_none_and_names_its_choices(tmp_path):
    assert spec({"source": "iris"}).data.impute == "none"
    with pytest.raises(SpecError) as err:
        spec({"source": "iris", "impute": "avg"})
    assert "data.impute: must be one of none, mean, median, most_frequent. Received: 'avg'." in str(err.value)


# --- imputation --------------------------------------------------------------------------------


def test_impute_none_refuses_missing_values_naming_the_columns_and_the_fix(tmp_path):
    path = gappy_csv(tmp_path)
    with pytest.raises(DataError) as err:
        load({"path": str(path), "target": "t"})
    assert str(err.value) == (
        f"Feature columns of data.path '{path}' have missing (NaN) values: 'age' (10 rows), 'city' (5 rows). "
        "Set data.impute: median (or mean, most_frequent) to fill numeric columns with that statistic of the "
        'training split and give string columns a "missing" level, or drop or fill those rows before training.'
    )


@pytest.mark.parametrize("mode", ["mean", "median", "most_frequent"])
def test_numeric_columns_are_filled_with_the_training_statistic_only(tmp_path, mode):
    path = gappy_csv(tmp_path)
    ds = load({"path": str(path), "target": "t", "impute": mode, "standardize": False})
    assert ds.feature_names == ["size", "age", "city_missing", "city_x", "city_y", "city_z"]
    train_ids = ds.x_train[:, 0].astype(int)
    observed = np.array([float(i) for i in train_ids if i % 4])  # the training rows' ages
    expected = {
        "mean": observed.mean(),
        "median": np.median(observed),
        "most_frequent": observed.min(),  # every age occurs once: the smallest of the tied values
    }[mode]
    for split in ("train", "val", "test"):
        x = getattr(ds, f"x_{split}")
        gaps = x[:, 0].astype(int) % 4 == 0
        assert gaps.any(), split  # every split has a filled value, so the check below bites
        np.testing.assert_allclose(x[gaps, 1], np.float32(expected))
        np.testing.assert_array_equal(x[~gaps, 1], x[~gaps, 0])  # observed ages untouched
    entry = ds.info["imputed"]["age"]
    assert entry["strategy"] == mode and entry["value"] == pytest.approx(expected)
    assert (entry["train"], entry["val"], entry["test"]) == tuple(
        int(np.sum(getattr(ds, f"x_{s}")[:, 0].astype(int) % 4 == 0)) for s in ("train", "val", "test")
    )
    assert json.loads(json.dumps(ds.info))["impute"] == mode


def test_the_fill_value_comes_from_training_rows_not_from_all_rows(tmp_path):
    """Training rows hold 1.0s, a held-out row holds 1000: the mean filled into validation is 1.0."""
    ids = np.arange(N)
    frame = pd.DataFrame({"id": ids.astype(float), "v": np.ones(N), "t": [0, 1] * (N // 2)})
    probe = load({"path": str(_write(tmp_path, frame)), "target": "t", "standardize": False})
    val_ids, test_ids = probe.x_val[:, 0].astype(int), probe.x_test[:, 0].astype(int)
    frame.loc[test_ids[0], "v"] = 1000.0  # a test value: the all-rows mean would be pulled up by it
    frame.loc[val_ids[:2], "v"] = np.nan  # two validation gaps to fill
    ds = load({"path": str(_write(tmp_path, frame)), "target": "t", "standardize": False, "impute": "mean"})
    filled = ds.x_val[np.isin(ds.x_val[:, 0].astype(int), val_ids[:2]), 1]
    all_rows_mean = frame["v"].mean()
    assert all_rows_mean > 20 and filled.tolist() == [1.0, 1.0]
    assert ds.info["imputed"]["v"] == {"strategy": "mean", "value": 1.0, "train": 0, "val": 2, "test": 0}


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "probe.csv"
    frame.to_csv(path, index=False)
    return path


def test_string_columns_get_a_missing_level_whatever_the_mode(tmp_path):
    path = gappy_csv(tmp_path)
    ds = load({"path": str(path), "target": "t", "impute": "mean", "standardize": False})
    for split in ("train", "val", "test"):
        x = getattr(ds, f"x_{split}")
        missing = x[:, 0].astype(int) % 8 == 0
        np.testing.assert_array_equal(x[:, 2], missing.astype(np.float32))  # city_missing
        np.testing.assert_array_equal(x[:, 2:].sum(axis=1), 1.0)  # one level per row
    assert ds.info["one_hot"] == {"city": 4}
    entry = ds.info["imputed"]["city"]
    assert (entry["strategy"], entry["value"]) == ("missing_level", "missing")
    assert entry["train"] + entry["val"] + entry["test"] == 5


def test_a_column_with_no_training_value_is_refused(tmp_path):
    frame = pd.DataFrame({"x": [np.nan] * N, "t": [0, 1] * (N // 2)})
    path = tmp_path / "empty.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load({"path": str(path), "target": "t", "impute": "median"})
    assert str(err.value) == (
        f"Column 'x' of data.path '{path}' has no value in any of its 24 training rows, so data.impute: median "
        "has nothing to fit its 40 missing values on. Drop the column or fill it before training."
    )


def test_npz_features_are_imputed_too(tmp_path):
    x = np.stack([np.arange(N, dtype=float), np.where(np.arange(N) % 4 == 0, np.nan, 2.0)], axis=1)
    path = tmp_path / "gappy.npz"
    np.savez(path, X=x, y=np.arange(N) % 2)
    with pytest.raises(DataError, match=r"Array 'X' of .* has missing \(NaN\) values in 10 rows \(feature columns x1\)"):
        load({"path": str(path)})
    ds = load({"path": str(path), "impute": "median", "standardize": False})
    assert np.all(ds.x_train[:, 1] == 2.0) and ds.info["imputed"]["x1"]["value"] == 2.0


def test_without_missing_values_impute_changes_nothing(tmp_path):
    path = ROOT / "configs" / "data" / "housing_small.csv"
    plain = load({"path": str(path), "target": "expensive"})
    imputed = load({"path": str(path), "target": "expensive", "impute": "median"})
    assert plain.x_train.tobytes() == imputed.x_train.tobytes() and imputed.info["imputed"] == {}
    assert plain.info["test_fingerprint"] == imputed.info["test_fingerprint"]


# --- regcli validate ---------------------------------------------------------------------------


def test_validate_refuses_a_file_that_train_refuses(tmp_path):
    path = gappy_csv(tmp_path)
    result = invoke("validate", write_spec(tmp_path, {"path": str(path), "target": "t"}))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert one_paragraph(result.stderr).startswith(
        f"error: Feature columns of data.path '{path}' have missing (NaN) values: 'age' (10 rows), 'city' (5 rows). "
        "Set data.impute: median"
    )
    assert "Traceback" not in result.stderr


def test_validate_refuses_a_missing_target_whatever_the_impute_mode(tmp_path):
    frame = pd.read_csv(gappy_csv(tmp_path))
    frame.loc[[3, 7], "t"] = None
    path = tmp_path / "target.csv"
    frame.to_csv(path, index=False)
    result = invoke("validate", write_spec(tmp_path, {"path": str(path), "target": "t", "impute": "median"}))
    assert result.exit_code == 2, result.output
    assert one_paragraph(result.stderr) == (
        f"error: data.target column 't' of data.path '{path}' has 2 of 40 rows with a missing (NaN) or infinite "
        "value. data.impute fills features only, never targets: drop those rows from the file."
    )


def test_validate_prints_the_data_summary_to_stderr_and_the_spec_alone_to_stdout(tmp_path):
    path = gappy_csv(tmp_path)
    result = invoke("validate", write_spec(tmp_path, {"path": str(path), "target": "t", "impute": "median"}))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["data"]["impute"] == "median"  # stdout is the resolved spec alone
    ds = load({"path": str(path), "target": "t", "impute": "median"})
    age, city = ds.info["imputed"]["age"], ds.info["imputed"]["city"]
    assert result.stderr.splitlines() == [
        f"data: data.path '{path}': 40 rows, 6 features; binary (2 classes: no, yes); 24 train / 8 val / 8 test",
        "one-hot encoded: city (4 levels)",
        "imputed (data.impute: median, fitted on the training split only): "
        f"age: 10 values set to {age['value']:.6g} (train {age['train']}, val {age['val']}, test {age['test']}); "
        f"city: 5 values as a 'missing' level (train {city['train']}, val {city['val']}, test {city['test']})",
    ]


def test_validate_describes_a_built_in_source_from_its_shape(tmp_path):
    result = invoke("validate", write_spec(tmp_path, {"source": "iris"}))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "data: data.source 'iris': 150 rows, 4 features; multiclass (3 classes: setosa, versicolor, virginica); "
        "90 train / 30 val / 30 test (built-in source: shapes checked, not loaded)"
    ]
    big = {"source": "synthetic_regression", "params": {"n_samples": 1_000_000, "n_features": 200}}
    result = invoke("validate", write_spec(tmp_path, big))  # 1.5 GiB if generated: it is not
    assert result.exit_code == 0, result.output
    assert "1,000,000 rows, 200 features; regression; 600,000 train" in result.stderr


def test_validate_checks_the_split_sizes_of_a_built_in_source(tmp_path):
    result = invoke("validate", write_spec(tmp_path, {"source": "iris", "train_fraction": 0.01}))
    assert result.exit_code == 2, result.output
    assert "data.train_fraction: 0.01 keeps 1 of the 90 training rows" in one_paragraph(result.stderr)


def test_validate_checks_a_sweep_base_data_file(tmp_path):
    path = gappy_csv(tmp_path)
    write_spec(tmp_path, {"path": str(path), "target": "t"}, name="base.yaml")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "params": {"model.l2": [0.0, 1e-4]}, "seeds": [0, 1]}))
    result = invoke("validate", sweep)
    assert result.exit_code == 2, result.output
    assert "'age' (10 rows), 'city' (5 rows). Set data.impute: median" in one_paragraph(result.stderr)
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "params": {"data.impute": ["mean", "median"]}}))
    result = invoke("validate", sweep)
    assert result.exit_code == 0, result.output
    assert "imputed (data.impute: mean" in result.stderr
    assert result.stderr.splitlines()[-1] == "(2 different data: blocks among the trials, each checked; the first is shown)"


def test_validating_a_data_file_imports_no_tensorflow_or_keras(tmp_path):
    path = gappy_csv(tmp_path)
    spec_path = write_spec(tmp_path, {"path": str(path), "target": "t", "impute": "mean"})
    probe = (
        "import sys\nfrom regcli.cli import main\nsys.argv = ['regcli', 'validate', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\nelse:\n    code = 0\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'jax', 'torch'})\n"
        "print('HEAVY', heavy, code, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(spec_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert "HEAVY [] 0" in proc.stderr, proc.stderr[-2000:]
    assert "one-hot encoded: city (4 levels)" in proc.stderr
