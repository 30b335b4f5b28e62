"""Tests of regcli.data: real (tiny) data sets, exact split sizes and messages."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from regcli.data import Dataset, load_dataset, smoke_limit
from regcli.errors import DataError, SpecError
from regcli.spec import SOURCE_PARAMS, validate_experiment

HOUSING_CSV = Path(__file__).resolve().parents[1] / "configs" / "data" / "housing_small.csv"
SPEC_BASE = {"model": {"hidden": [8]}}  # with a data block, a valid experiment spec


def data_spec(**overrides):
    """A `data:` block with the SPEC §2 defaults, duck-typed like spec.DataSpec."""
    fields = {
        "source": None,
        "path": None,
        "impute": "none",
        "target": None,
        "params": {},
        "split_seed": None,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "stratify": True,
        "standardize": True,
        "train_fraction": 1.0,
        "label_noise": 0.0,
        "drift": None,
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


def load(seed=0, task="auto", **overrides) -> Dataset:
    return load_dataset(data_spec(**overrides), seed=seed, task=task)


def id_npz(tmp_path, n=100, n_classes=2) -> str:
    """An .npz whose first feature is the row id, so splits can be checked row by row."""
    path = tmp_path / "ids.npz"
    x = np.stack([np.arange(n), np.arange(n) % 7], axis=1).astype(np.float64)
    np.savez(path, X=x, y=np.arange(n) % n_classes)
    return str(path)


def row_ids(ds: Dataset, split: str) -> set[int]:
    return {int(v) for v in getattr(ds, f"x_{split}")[:, 0]}


def assert_same_arrays(a: Dataset, b: Dataset) -> None:
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and left.tobytes() == right.tobytes(), name


# --- built-ins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "task", "n_classes", "n_rows", "n_features"),
    [
        ("breast_cancer", "binary", 2, 569, 30),
        ("digits", "multiclass", 10, 1797, 64),
        ("wine", "multiclass", 3, 178, 13),
        ("iris", "multiclass", 3, 150, 4),
        ("diabetes", "regression", 1, 442, 10),
        ("moons", "binary", 2, 1000, 2),
        ("synthetic_classification", "binary", 2, 1000, 20),
        ("synthetic_regression", "regression", 1, 1000, 20),
    ],
)
def test_builtin_sources_load_with_task_and_shapes(source, task, n_classes, n_rows, n_features):
    ds = load(source=source)
    n_test = n_val = round(0.2 * n_rows)
    assert ds.task == task and ds.n_classes == n_classes
    assert ds.x_train.shape == (n_rows - n_test - n_val, n_features)
    assert ds.x_val.shape == (n_val, n_features) and ds.x_test.shape == (n_test, n_features)
    assert ds.x_train.dtype == np.float32 and len(ds.feature_names) == n_features
    assert ds.y_train.dtype == (np.float32 if task == "regression" else np.int32)
    assert ds.y_train.shape == (len(ds.x_train),)
    if task == "regression":
        assert ds.class_names == [] and ds.target_std is not None
    else:
        assert len(ds.class_names) == n_classes and ds.target_mean is None
        assert set(np.unique(ds.y_train)) == set(range(n_classes))
    info = json.loads(json.dumps(ds.info))  # JSON-able as it is
    assert (info["source"], info["n_train"], info["n_val"], info["n_test"]) == (
        source,
        len(ds.y_train),
        n_val,
        n_test,
    )


@pytest.mark.parametrize("source", sorted(SOURCE_PARAMS) + ["breast_cancer", "digits", "wine", "iris", "diabetes"])
def test_source_shape_is_what_loading_gives(source):
    """`regcli validate` describes built-in sources from `source_shape`, without loading them."""
    from regcli.data.sources import source_shape

    ds = load(source=source)
    n_rows, n_features, class_names = source_shape(source, {})
    assert (n_rows, n_features) == (ds.info["n_rows"], ds.n_features)
    assert class_names == (ds.class_names if ds.task != "regression" else None)


def test_digits_records_image_shape_and_breast_cancer_class_names():
    digits = load(source="digits")
    assert digits.image_shape == (8, 8, 1) and digits.n_features == 64
    assert digits.x_train.reshape(-1, *digits.image_shape).shape == (len(digits.x_train), 8, 8, 1)
    assert load(source="breast_cancer").class_names == ["malignant", "benign"]
    assert load(source="iris").image_shape is None


def test_generator_params_are_used_and_what_only_scikit_learn_knows_is_rejected(tmp_path):
    ds = load(source="synthetic_classification", params={"n_samples": 50, "n_features": 5, "n_classes": 3})
    assert ds.x_train.shape == (30, 5) and ds.n_classes == 3 and ds.task == "multiclass"
    assert ds.info["params"]["n_informative"] == 5  # shrunk with n_features
    # Valid one by one, so the spec passes them; make_classification needs 3 * 100 <= 2**2 clusters.
    params = {"n_classes": 3, "n_clusters_per_class": 100, "n_features": 3, "n_informative": 2}
    spec = validate_experiment(
        {**SPEC_BASE, "data": {"source": "synthetic_classification", "params": params}}, tmp_path
    )
    with pytest.raises(DataError) as err:
        load_dataset(spec.data, seed=spec.seed)
    assert str(err.value).startswith(
        "data.params for the 'synthetic_classification' generator were rejected by scikit-learn's "
        "make_classification: n_classes(3) * n_clusters_per_class(100) must be smaller or equal 2**n_informative(2)"
    )


# One valid value of every generator parameter the spec allows.
PARAM_VALUES = {
    "n_samples": 60,
    "n_features": 6,
    "n_informative": 3,
    "n_redundant": 1,
    "n_classes": 3,
    "n_clusters_per_class": 1,
    "class_sep": 2.0,
    "flip_y": 0.0,
    "noise": 0.1,
    "bias": 1.5,
}


@pytest.mark.parametrize("source", sorted(SOURCE_PARAMS))
def test_every_parameter_the_spec_allows_reaches_the_generator(source, tmp_path):
    params = {key: PARAM_VALUES[key] for key in SOURCE_PARAMS[source]}
    spec = validate_experiment({**SPEC_BASE, "data": {"source": source, "params": params}}, tmp_path)
    ds = load_dataset(spec.data, seed=spec.seed)
    assert {key: ds.info["params"][key] for key in params} == params
    assert ds.info["n_rows"] == 60


# --- what the spec checks before loading ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "data: needs data.source (a built-in data set) or data.path (a .csv, .parquet or .npz file)."),
        (
            {"source": "iris", "path": "t.csv"},
            "data: It is invalid to specify both data.source AND data.path.",
        ),
        ({"source": "breast-cancer"}, "Received: 'breast-cancer'. Did you mean 'breast_cancer'?"),
        (
            {"source": "moons", "params": {"n_sample": 10}},
            "Unknown key 'data.params.n_sample'. Did you mean 'data.params.n_samples'?",
        ),
        (
            {"source": "moons", "params": {"random_state": 3}},
            "Unknown key 'data.params.random_state'. Allowed keys here: n_samples, noise.",
        ),
        (
            {"source": "moons", "params": {"noise": "loud"}},
            "data.params.noise: must be a number >= 0. Received: 'loud'.",
        ),
        (
            {"source": "synthetic_classification", "params": {"weights": [0.5, 0.5]}},
            "Unknown key 'data.params.weights'.",
        ),
        (
            {"source": "synthetic_regression", "params": {"effective_rank": 3}},
            "Unknown key 'data.params.effective_rank'.",
        ),
        (
            {"source": "synthetic_regression", "params": {"tail_strength": 0.5}},
            "Unknown key 'data.params.tail_strength'.",
        ),
        (
            {"source": "iris", "params": {"n_samples": 100}},
            "data.params: is only for the generated data sets",
        ),
        ({"source": "iris", "target": "x"}, "data.target: applies only to .csv and .parquet files"),
        (
            {"path": "ids.npz", "target": "y"},
            "data.target: applies only to .csv and .parquet files; .npz files",
        ),
        ({"path": "t.csv"}, "data.target: is required for a .csv file: name its label column."),
        ({"path": "x.xlsx", "target": "t"}, "data.path: must be a .csv, .parquet or .npz file."),
        ({"path": "absent.csv", "target": "t"}, "data.path: file not found:"),
        ({"source": "iris", "split_seed": 2**32}, "data.split_seed: must be an integer in [0, 4294967295]."),
    ],
)
def test_the_spec_rejects_what_load_dataset_trusts(tmp_path, data, message):
    """load_dataset re-checks none of these: each stops at the spec, with the message users see."""
    id_npz(tmp_path)
    pd.DataFrame({"a": [1.0, 2.0], "t": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(SpecError) as err:
        validate_experiment({**SPEC_BASE, "data": data}, tmp_path)
    assert message in str(err.value)


# --- splits ------------------------------------------------------------------------------


def test_splits_are_disjoint_cover_all_rows_and_match_fractions(tmp_path):
    ds = load(path=id_npz(tmp_path, n=100), standardize=False, val_fraction=0.15, test_fraction=0.25)
    train, val, test = row_ids(ds, "train"), row_ids(ds, "val"), row_ids(ds, "test")
    assert (len(train), len(val), len(test)) == (60, 15, 25)
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(range(100))


def test_stratification_keeps_class_shares():
    ds = load(source="breast_cancer")
    overall = 357 / 569  # benign share of the whole data set
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert abs(np.mean(y == 1) - overall) < 0.01
    unstratified = load(source="breast_cancer", stratify=False)
    assert unstratified.info["stratify"] is False


def test_same_seed_is_byte_identical_and_split_seed_pins_the_split():
    assert_same_arrays(load(source="wine", seed=3), load(source="wine", seed=3))
    assert not np.array_equal(load(source="wine", seed=3).y_test, load(source="wine", seed=4).y_test)
    pinned = load(source="wine", seed=3, split_seed=7)
    assert_same_arrays(pinned, load(source="wine", seed=99, split_seed=7))
    assert not np.array_equal(pinned.x_test, load(source="wine", seed=3, split_seed=8).x_test)
    assert pinned.info["split_seed"] == 7


def test_zero_test_fraction_gives_empty_test_arrays():
    ds = load(source="iris", test_fraction=0.0)
    assert ds.x_test.shape == (0, 4) and ds.y_test.shape == (0,)
    assert (len(ds.y_train), len(ds.y_val)) == (120, 30)


def test_a_class_too_small_to_stratify_is_named(tmp_path):
    path = tmp_path / "rare.csv"
    pd.DataFrame({"a": range(20), "label": ["x"] * 10 + ["y"] * 9 + ["z"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"data.stratify: class 'z' of data.path '.*rare.csv' has only 1 row"):
        load(path=str(path), target="label")
    assert load(path=str(path), target="label", stratify=False).n_classes == 3


def test_too_few_rows_to_split(tmp_path):
    path = tmp_path / "tiny.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "t": [0.5, 1.5, 2.5]}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load(path=str(path), target="t")
    assert (
        f"data.path '{path}' has 3 rows: data.test_fraction=0.2 takes 1 and data.val_fraction=0.2 takes 1"
        in str(err.value)
    )
    assert "leaving 1 for training; at least 2 are needed" in str(err.value)


# --- transforms --------------------------------------------------------------------------


def test_standardization_uses_training_statistics_only():
    raw = load(source="wine", standardize=False)
    ds = load(source="wine")
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-5)
    assert np.abs(ds.x_val.mean(axis=0)).max() > 0.01  # val is scaled with train's mean, not its own
    mean, std = raw.x_train.astype(np.float64).mean(axis=0), raw.x_train.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(ds.x_test, (raw.x_test - mean) / std, rtol=1e-4, atol=1e-4)


def test_constant_column_gets_std_one(tmp_path):
    path = tmp_path / "const.csv"
    pd.DataFrame({"c": [5.0] * 30, "a": np.arange(30.0), "t": [0, 1] * 15}).to_csv(path, index=False)
    ds = load(path=str(path), target="t")
    assert np.all(ds.x_train[:, 0] == 0.0) and np.all(np.isfinite(ds.x_val))


def test_label_noise_flips_exactly_that_share_of_training_labels_only():
    clean = load(source="iris")
    noisy = load(source="iris", label_noise=0.1)
    assert int(np.sum(clean.y_train != noisy.y_train)) == round(0.1 * 90) == 9
    assert noisy.info["label_noise_flipped"] == 9 and noisy.info["label_noise"] == 0.1
    assert np.array_equal(clean.y_val, noisy.y_val) and np.array_equal(clean.y_test, noisy.y_test)
    assert np.array_equal(clean.x_train, noisy.x_train)
    assert_same_arrays(noisy, load(source="iris", label_noise=0.1))  # seeded


def test_regression_label_noise_replaces_targets_with_other_training_targets():
    clean = load(source="diabetes", standardize=False)
    noisy = load(source="diabetes", standardize=False, label_noise=0.25)
    changed = clean.y_train != noisy.y_train
    assert noisy.info["label_noise_flipped"] == round(0.25 * 266) and 0 < changed.sum() <= 66
    assert set(noisy.y_train[changed].tolist()) <= set(clean.y_train.tolist())
    assert np.array_equal(clean.y_val, noisy.y_val)


def test_drift_changes_validation_and_test_features_only():
    base = load(source="wine")
    drifted = load(source="wine", drift=SimpleNamespace(shift=0.5, scale=2.0))
    assert np.array_equal(base.x_train, drifted.x_train)
    np.testing.assert_allclose(drifted.x_val, base.x_val * 2.0 + 0.5, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(drifted.x_test, base.x_test * 2.0 + 0.5, rtol=1e-6, atol=1e-6)
    assert np.array_equal(base.y_test, drifted.y_test)
    assert drifted.info["drift"] == {"shift": 0.5, "scale": 2.0}


def test_train_fraction_subsets_the_training_split_only(tmp_path):
    path = id_npz(tmp_path, n=200)
    full = load(path=path, standardize=False)
    half = load(path=path, standardize=False, train_fraction=0.25)
    assert len(half.y_train) == 30 and row_ids(half, "train") < row_ids(full, "train")
    assert np.array_equal(full.x_val, half.x_val) and np.array_equal(full.x_test, half.x_test)
    assert np.bincount(half.y_train).tolist() == [15, 15]  # stratified
    assert (half.info["train_rows_before_fraction"], half.info["train_rows_kept"]) == (120, 30)


def test_regression_targets_are_standardized_with_training_statistics():
    raw = load(source="diabetes", standardize=False)
    ds = load(source="diabetes")
    mean, std = float(raw.y_train.astype(np.float64).mean()), float(raw.y_train.astype(np.float64).std())
    assert ds.target_mean == pytest.approx(mean) and ds.target_std == pytest.approx(std)
    assert abs(ds.y_train.mean()) < 1e-5 and ds.y_train.std() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(ds.y_val * ds.target_std + ds.target_mean, raw.y_val, rtol=1e-4)
    expected = float(np.mean(np.abs(ds.y_val.astype(np.float64) - ds.y_train.astype(np.float64).mean())))
    assert ds.info["baseline_val_error"] == pytest.approx(expected) and 0.5 < expected < 1.0
    assert (raw.target_mean, raw.target_std) == (0.0, 1.0)


def test_classification_baseline_is_the_majority_class_error():
    ds = load(source="breast_cancer")
    assert ds.info["baseline_val_error"] == pytest.approx(float(np.mean(ds.y_val != 1)))
    assert ds.info["class_counts"]["val"] == {"malignant": 43, "benign": 71}


def test_test_fingerprint_is_stable_and_follows_the_test_split():
    fingerprint = load(source="iris", seed=0).info["test_fingerprint"]
    assert len(fingerprint) == 64 and fingerprint == load(source="iris", seed=0).info["test_fingerprint"]
    assert fingerprint != load(source="iris", seed=1).info["test_fingerprint"]
    # The same held-out rows, whatever is done to the training split:
    assert (
        fingerprint
        == load(source="iris", seed=0, train_fraction=0.5, label_noise=0.2).info["test_fingerprint"]
    )
    assert (
        load(source="iris").info["data_fingerprint"] == load(source="iris", seed=5).info["data_fingerprint"]
    )


def test_smoke_limit_keeps_at_most_that_many_training_rows():
    ds = load(source="digits")
    small = smoke_limit(ds, max_train_rows=100)
    assert small.x_train.shape == (100, 64) and small.info["n_train"] == 100
    assert np.array_equal(small.x_val, ds.x_val) and small.info["smoke_train_rows"] == 100
    assert set(np.unique(small.y_train)) == set(range(10))  # stratified: every digit kept
    assert smoke_limit(small) is small  # already small enough
    assert_same_arrays(small, smoke_limit(ds, max_train_rows=100))


# --- task --------------------------------------------------------------------------------


def test_explicit_task_is_checked():
    with pytest.raises(DataError) as err:
        load(source="iris", task="binary")
    assert str(err.value) == (
        "model.task is 'binary' but the targets of data.source 'iris' have 3 classes ('setosa', 'versicolor', "
        "'virginica'). Use model.task: multiclass (or auto)."
    )
    with pytest.raises(
        DataError, match="model.task is 'binary' but data.source 'diabetes' is a regression data set"
    ):
        load(source="diabetes", task="binary")
    with pytest.raises(
        DataError, match="model.task is 'regression' but the targets of data.source 'wine' are class"
    ):
        load(source="wine", task="regression")
    assert load(source="moons", task="multiclass").task == "multiclass"


def test_numeric_targets_are_inferred(tmp_path):
    path = tmp_path / "num.csv"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "grade": [1, 2, 3] * 20, "price": rng.normal(size=60)})
    frame.to_csv(path, index=False)
    graded = load(path=str(path), target="grade")
    assert (graded.task, graded.class_names) == ("multiclass", ["1", "2", "3"])
    assert load(path=str(path), target="grade", task="regression").task == "regression"
    assert load(path=str(path), target="price").task == "regression"
    with pytest.raises(DataError, match=r"non-integer values \(e.g. "):
        load(path=str(path), target="price", task="binary")


# --- files -------------------------------------------------------------------------------


def test_shipped_housing_csv_is_binary_with_one_hot_region():
    ds = load(path=str(HOUSING_CSV), target="expensive")
    assert (ds.task, ds.class_names) == ("binary", ["no", "yes"])
    assert ds.feature_names == [
        "area_m2",
        "rooms",
        "age_years",
        "distance_km",
        "region_east",
        "region_north",
        "region_south",
        "region_west",
    ]
    assert ds.info["n_rows"] == 300 and HOUSING_CSV.stat().st_size < 40_000


def test_csv_categorical_column_is_one_hot_encoded(tmp_path):
    path = tmp_path / "cat.csv"
    frame = pd.DataFrame(
        {"size": np.arange(40.0), "region": ["b", "a", "c", "a"] * 10, "label": ["no", "yes"] * 20}
    )
    frame.to_csv(path, index=False)
    ds = load(path=str(path), target="label", standardize=False)
    assert ds.feature_names == ["size", "region_a", "region_b", "region_c"]
    assert np.all(ds.x_train[:, 1:].sum(axis=1) == 1.0)
    sizes = ds.x_train[:, 0].astype(int)
    regions = np.array(["b", "a", "c", "a"])[sizes % 4]
    assert np.array_equal(ds.x_train[:, 2] == 1.0, regions == "b")


def test_csv_missing_target_column_lists_columns(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"age": [1, 2], "Label": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load(path=str(path), target="label")
    assert str(err.value) == (
        f"data.target column 'label' is not in data.path '{path}'. Did you mean 'Label'? "
        "Columns: age, Label. Set data.target to one of them."
    )


def test_csv_nan_names_the_column_and_row_count(tmp_path):
    path = tmp_path / "nan.csv"
    pd.DataFrame({"ok": range(10), "age": [1.0, None, 3.0, None] + [5.0] * 6, "t": [0, 1] * 5}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError) as err:
        load(path=str(path), target="t")
    assert str(err.value) == (
        f"Feature columns of data.path '{path}' have missing (NaN) values: 'age' (2 rows). Set data.impute: "
        "median (or mean, most_frequent) to fill numeric columns with that statistic of the training split and "
        'give string columns a "missing" level, or drop or fill those rows before training.'
    )
    path_t = tmp_path / "nan_target.csv"
    pd.DataFrame({"a": range(10), "t": [0, 1, None] + [1] * 7}).to_csv(path_t, index=False)
    for impute in ("none", "median"):  # data.impute never fills a target
        with pytest.raises(DataError) as err:
            load(path=str(path_t), target="t", impute=impute)
        assert str(err.value) == (
            f"data.target column 't' of data.path '{path_t}' has 1 of 10 rows with a missing (NaN) or infinite "
            "value. data.impute fills features only, never targets: drop those rows from the file."
        )


def test_infinite_feature_values_are_refused_whatever_the_impute_mode(tmp_path):
    path = tmp_path / "inf.csv"
    pd.DataFrame({"x": [1.0, np.inf, 3.0, np.nan] * 5, "t": [0, 1] * 10}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load(path=str(path), target="t", impute="mean")
    assert str(err.value) == (
        f"Feature columns of data.path '{path}' have infinite values: 'x' (5 rows). data.impute fills missing "
        "(NaN) values only: replace or drop those rows before training."
    )


def test_free_text_column_is_refused(tmp_path):
    path = tmp_path / "text.csv"
    pd.DataFrame({"note": [f"visit {i}" for i in range(30)], "t": [0, 1] * 15}).to_csv(path, index=False)
    with pytest.raises(
        DataError, match=r"Column 'note' of .* is non-numeric with 30 distinct values in 30 rows.*Drop it"
    ):
        load(path=str(path), target="t")


def test_string_target_classes_are_sorted(tmp_path):
    path = tmp_path / "s.parquet"
    pd.DataFrame({"a": np.arange(30.0), "kind": ["cat", "ant", "bee"] * 10}).to_parquet(path)
    ds = load(path=str(path), target="kind", standardize=False)
    assert ds.class_names == ["ant", "bee", "cat"]
    kinds = np.array(["cat", "ant", "bee"])[ds.x_train[:, 0].astype(int) % 3]
    assert np.array_equal(np.array(ds.class_names)[ds.y_train], kinds)


def test_parquet_round_trip(tmp_path):
    frame = pd.read_csv(HOUSING_CSV)
    path = tmp_path / "housing.parquet"
    frame.to_parquet(path)
    from_csv = load(path=str(HOUSING_CSV), target="expensive")
    from_parquet = load(path=str(path), target="expensive")
    assert_same_arrays(from_csv, from_parquet)
    assert from_parquet.feature_names == from_csv.feature_names


def test_npz_round_trip_with_images(tmp_path):
    x = np.arange(40 * 4 * 3, dtype=np.float32).reshape(40, 4, 3)
    path = tmp_path / "img.npz"
    np.savez(path, X=x, y=np.array(["a", "b"] * 20))
    ds = load(path=str(path), standardize=False)
    assert ds.image_shape == (4, 3, 1) and ds.n_features == 12 and ds.class_names == ["a", "b"]
    rows = ds.x_train[:, 0].astype(int) // 12
    np.testing.assert_array_equal(ds.x_train, x.reshape(40, 12)[rows])
    np.testing.assert_array_equal(ds.y_train, rows % 2)


def test_npz_object_arrays_and_missing_arrays_are_refused(tmp_path):
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.zeros((10, 2)), y=np.array([{"a": 1}] * 10, dtype=object))
    with pytest.raises(
        DataError, match=r"Array 'y' of data.path '.*obj.npz' is an object array \(dtype=object\)"
    ):
        load(path=str(obj))
    missing = tmp_path / "missing.npz"
    np.savez(missing, features=np.zeros((10, 2)), y=np.zeros(10))
    with pytest.raises(DataError) as err:
        load(path=str(missing))
    assert str(err.value) == (
        f"data.path '{missing}' lacks the array(s) 'X'. It holds: 'features', 'y'. Write it with np.savez(path, X=X, y=y)."
    )


def test_unreadable_and_misnamed_files(tmp_path):
    corrupt = tmp_path / "broken.parquet"
    corrupt.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match=r"data.path '.*broken.parquet' could not be read as a parquet file"):
        load(path=str(corrupt), target="t")
    bad_npz = tmp_path / "broken.npz"
    bad_npz.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"could not be read as an .npz archive"):
        load(path=str(bad_npz))
    # The spec saw the file; it was removed before loading (or is no regular file: a FIFO would hang).
    with pytest.raises(DataError, match=r"does not exist or is not a file"):
        load(path=str(tmp_path / "absent.csv"), target="t")
