"""Tests of regcli/spec/: safe YAML, validation messages, overrides and round-trips."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regcli.errors import BadInputError, SpecError
from regcli.spec import (
    MAX_ALIASES,
    ExperimentSpec,
    apply_overrides,
    dump_spec_yaml,
    is_sweep_spec,
    load_experiment_spec,
    load_yaml_file,
    load_yaml_text,
    parse_override,
    spec_to_dict,
    spec_warnings,
    validate_experiment,
)

MINIMAL = {"data": {"source": "breast_cancer"}}


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(raw: dict, base_dir: Path | str = ".") -> list[str]:
    """The problem lines of the SpecError that validating `raw` raises."""
    with pytest.raises(SpecError) as info:
        validate_experiment(raw, Path(base_dir), source="spec.yaml")
    header, *lines = str(info.value).splitlines()
    assert header == "Invalid spec spec.yaml:"
    return [line.strip() for line in lines]


def with_overrides(*overrides: str, raw: dict | None = None) -> dict:
    return apply_overrides(raw or MINIMAL, overrides)


# ---------------------------------------------------------------------- safe YAML
@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-4", 1e-4), ("1E5", 1e5), ("-3e-2", -0.03), (".5e1", 5.0), ("1.0e-4", 1e-4), ("2.", 2.0), ("7", 7)],
)
def test_numbers_resolve_the_way_users_mean(text, value):
    loaded = load_yaml_text(f"x: {text}")["x"]
    assert loaded == value and type(loaded) is type(value)


def test_only_true_false_are_booleans():
    loaded = load_yaml_text("a: yes\nb: no\nc: on\nd: off\ne: y\nf: True\ng: FALSE\nh: 010\ni: 2024-01-01")
    assert loaded == {"a": "yes", "b": "no", "c": "on", "d": "off", "e": "y", "f": True, "g": False}.__or__(
        {"h": "010", "i": "2024-01-01"}
    )


def test_float_in_a_spec_file(tmp_path):
    spec = load_experiment_spec(write(tmp_path, "data: {source: wine}\nmodel:\n  l2: 1e-4\n  l1: 1E-5\n"))
    assert spec.model.l2 == 1e-4 and spec.model.l1 == 1e-5


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "data:\n  source: wine\nmodel:\n  l2: 1e-4\n  dropout: 0.2\n  l2: 1e-3\n")
    with pytest.raises(SpecError) as info:
        load_experiment_spec(path)
    assert str(info.value) == (
        f"Invalid YAML in {path}:6:3: duplicate key 'l2' in mapping (first given at line 4); "
        "PyYAML would silently keep the last one. Keep only one."
    )


def test_dropout_no_is_not_a_boolean(tmp_path):
    with pytest.raises(SpecError) as info:
        load_experiment_spec(write(tmp_path, "data: {source: wine}\nmodel: {dropout: no}\n"))
    assert str(info.value).splitlines()[1] == (
        "  model.dropout: must be a number in [0, 1). Received: 'no'. "
        "regcli reads only true/false as booleans; yes/no/on/off are plain strings."
    )


def test_python_tag_is_rejected(tmp_path):
    path = write(tmp_path, "data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(path)
    assert str(info.value) == (
        f"Invalid YAML in {path}:1:7: the tag '!!python/object/apply:os.system' is not allowed: regcli reads "
        "specs with a safe loader that builds only mappings, lists, strings, numbers, booleans and null. "
        "Remove the tag."
    )


def test_billion_laughs_is_rejected_quickly():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    start = time.perf_counter()
    with pytest.raises(SpecError, match="expands to more than 100,000 values"):
        load_yaml_text("\n".join(lines))
    assert time.perf_counter() - start < 1.0


def test_too_many_aliases_are_rejected():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]"
    with pytest.raises(SpecError, match=f"more than {MAX_ALIASES} aliases"):
        load_yaml_text(text)


def test_a_long_plain_list_is_refused_naming_its_key_not_as_billion_laughs():
    items = ", ".join(["0"] * 100_001)
    with pytest.raises(SpecError) as info:
        load_yaml_text(f"- [{items}]")
    assert str(info.value) == (
        "Invalid YAML in <string>:1:3: 0 has more than 10,000 entries; at most 10,000 are allowed in one list of a spec."
    )
    with pytest.raises(SpecError) as info:
        load_yaml_text("\n".join(f"- {i}" for i in range(100_001)))
    assert str(info.value) == (
        "Invalid YAML in <string>:1:1: the top-level list has more than 10,000 entries; "
        "at most 10,000 are allowed in one list of a spec."
    )
    with pytest.raises(SpecError) as info:
        load_yaml_text("data:\n  params: {" + ", ".join(f"k{i}: 1" for i in range(10_001)) + "}")
    assert str(info.value) == (
        "Invalid YAML in <string>:2:11: data.params has more than 10,000 keys; "
        "at most 10,000 are allowed in one mapping of a spec."
    )


def test_many_values_written_out_with_one_alias_are_not_an_alias_bomb():
    # 11 lists of 9,500 values: 104,500 values, over the 100,000 that aliases may add, but written out.
    lists = "\n".join(f"k{i}: [{', '.join(['1'] * 9_500)}]" for i in range(11))
    loaded = load_yaml_text(f"a: &a 1\nb: *a\n{lists}")
    assert loaded["b"] == 1 and len(loaded) == 13 and len(loaded["k10"]) == 9_500


def test_recursive_alias_is_rejected():
    with pytest.raises(SpecError, match="an alias refers to a node that contains it"):
        load_yaml_text("a: &a [*a]")


def test_malformed_yaml_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "data:\n  source: wine\nmodel: {l2: 1e-4\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(path)
    assert str(info.value) == (
        f"Invalid YAML in {path}:4:1: malformed YAML: expected ',' or '}}', but got '<stream end>' "
        "(while parsing a flow mapping at line 3, column 8)."
    )


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_yaml_file(path)
    assert str(info.value) == (
        f"Spec file {path} is empty; expected a mapping with at least data:, e.g. 'data: {{source: breast_cancer}}'."
    )


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- data\n- model\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(path)
    assert str(info.value) == (
        f"Spec file {path} must be a YAML mapping of keys such as data:, model:, training:; its top level is a list."
    )


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_experiment_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a directory; expected a YAML file"):
        load_experiment_spec(tmp_path)


def validate_in_subprocess(path: Path) -> subprocess.CompletedProcess:
    """`regcli validate PATH`; the deadline only catches a hang (it used to read /dev/zero forever)."""
    return subprocess.run(
        [sys.executable, "-m", "regcli", "validate", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/dev/zero", "a character device"), ("/dev/urandom", "a character device"), ("fifo", "a named pipe (FIFO)")],
)
def test_devices_and_fifos_are_refused_without_reading_them(tmp_path, path, kind):
    if path == "fifo":
        path = tmp_path / "spec.yaml"
        os.mkfifo(path)  # no writer: a blocking open would hang forever
    if not Path(path).exists():
        pytest.skip(f"{path} does not exist here")
    proc = validate_in_subprocess(Path(path))
    assert proc.returncode == 2, proc.stderr
    assert " ".join(proc.stderr.split()) == (
        f"error: Spec file {path} is {kind}, not a regular file; expected a YAML file such as "
        "configs/breast_cancer.yaml. regcli does not read specs from devices, pipes or sockets."
    )
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == (["spec.yaml"] if Path(path).parent == tmp_path else [])


def test_a_spec_file_over_the_cap_is_refused_after_reading_at_most_the_cap(tmp_path):
    path = write(tmp_path, "# " + "x" * 1_000_000 + "\ndata: {source: wine}\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(path)
    assert str(info.value) == (
        f"Spec file {path} is over 1,000,000 bytes; a spec is a short YAML file (regcli refuses more than 1,000,000 bytes)."
    )
    proc_file = Path("/proc/self/status")  # st_size 0, read up to the cap like any file
    if proc_file.exists():
        with pytest.raises(SpecError, match="^Invalid YAML in /proc/self/status:"):
            load_yaml_file(proc_file)


def test_a_file_with_no_spec_key_is_not_echoed(tmp_path):
    path = write(tmp_path, "root:*:20228:0:99999:7:::\nalice:$6$s3cr3t:20228:0:99999:7:::\n", name="shadow")
    with pytest.raises(SpecError) as info:
        load_experiment_spec(path)
    assert str(info.value) == (
        f"Spec file {path} is not an experiment spec: none of its 2 top-level keys is one of name, seed, backend, "
        "device, data, model, training, diagnosis, tracking (its content is not shown). Expected a YAML mapping "
        "with at least data:, e.g. 'data: {source: breast_cancer}'; check the path."
    )


def test_spec_error_is_bad_input():
    assert issubclass(SpecError, BadInputError) and SpecError.exit_code == 2


# ---------------------------------------------------------------------- validation messages
def test_unknown_keys_suggest_the_right_one():
    raw = {"data": {"source": "wine"}, "model": {"dropuot": 0.3}, "patience": 3, "training": {"xyz": 1}}
    assert problems(raw) == [
        "Unknown key 'model.dropuot'. Did you mean 'model.dropout'?",
        "Unknown key 'training.xyz'. Allowed keys here: epochs, batch_size, optimizer, learning_rate, "
        "weight_decay, early_stopping.",
        "Unknown key 'patience'. Did you mean 'training.early_stopping.patience'? "
        "'patience' belongs under training.early_stopping.",
    ]


def test_wrong_types_are_not_coerced():
    raw = {
        "seed": "5",
        "data": {"source": "wine", "stratify": "yes"},
        "training": {"epochs": True, "batch_size": 3.0},
    }
    assert problems(raw) == [
        "seed: must be an integer in [0, 4294967295]. Received: '5'. Write the integer without quotes.",
        "data.stratify: must be true or false. Received: 'yes'. "
        "regcli reads only true/false as booleans; yes/no/on/off are plain strings.",
        "training.epochs: must be an integer in [1, 100000]. Received: true. true/false are booleans, not integers.",
        "training.batch_size: must be an integer in [1, 1000000]. Received: 3.0. "
        "Write 3 without a decimal point or exponent.",
    ]


def test_an_int_is_accepted_where_a_float_is_expected():
    spec = validate_experiment(with_overrides("model.l2=0", "training.learning_rate=1"), Path("."))
    assert spec.model.l2 == 0.0 and isinstance(spec.model.l2, float)
    assert spec.training.learning_rate == 1.0


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "model.dropout=1.0",
            "model.dropout: must be a number in [0, 1). Received: 1.0. "
            "A rate of 1 would drop every unit; typical rates are 0.1 to 0.5.",
        ),
        (
            "model.l2=-1e-4",
            "model.l2: must be a number >= 0. Received: -0.0001. "
            "Use 0 for no L2 penalty; typical values are 1e-5 to 1e-2.",
        ),
        (
            "model.l1=.nan",
            "model.l1: must be a number >= 0. Received: nan. NaN and infinity are not allowed.",
        ),
        (
            "model.bias_l2=1e9",
            "model.bias_l2: must be at most 1000. Received: 1000000000.0. "
            "Larger values are no real experiment (a sanity bound in regcli/spec/fields.py).",
        ),
        (
            "training.early_stopping.patience=-3",
            "training.early_stopping.patience: must be an integer >= 0. "
            "Received: -3. Use 0 to stop at the first epoch without improvement.",
        ),
        (
            "training.early_stopping.min_delta=-0.1",
            "training.early_stopping.min_delta: must be a number >= 0. "
            "Received: -0.1. Use 0 to count any improvement.",
        ),
        (
            "training.early_stopping.monitor=val_acc",
            "training.early_stopping.monitor: must be one of val_loss, "
            "val_data_loss, val_accuracy, val_mae, loss, data_loss, accuracy, mae. Received: 'val_acc'. "
            "Did you mean 'val_accuracy'?",
        ),
        (
            "data.val_fraction=0",
            "data.val_fraction: must be a number in (0, 1). Received: 0. "
            "Validation drives early stopping and selection; 0.2 is typical.",
        ),
        (
            "data.test_fraction=1",
            "data.test_fraction: must be a number in [0, 1). Received: 1. "
            "Use 0 for no test split; 0.2 is typical.",
        ),
        (
            "data.train_fraction=0",
            "data.train_fraction: must be a number in (0, 1]. Received: 0. "
            "Use 1.0 to keep the whole training split.",
        ),
        (
            "data.label_noise=0.5",
            "data.label_noise: must be a number in [0, 0.5). Received: 0.5. "
            "At 0.5 the labels carry no signal; use 0.0 to 0.3.",
        ),
        (
            "model.hidden=[64, 0]",
            "model.hidden.1: must be an integer in [1, 65536]. Received: 0. "
            "Layer widths are positive integers.",
        ),
        (
            "model.hidden=[1000000000]",
            "model.hidden.0: must be an integer in [1, 65536]. Received: 1000000000. "
            "Layer widths are positive integers.",
        ),
        (
            "training.epochs=1000000000000",
            "training.epochs: must be an integer in [1, 100000]. "
            "Received: 1000000000000. Early stopping ends runs sooner; 100 is typical.",
        ),
        (
            "training.batch_size=0",
            "training.batch_size: must be an integer in [1, 1000000]. Received: 0. 32 to 256 is typical.",
        ),
        (
            "seed=4294967296",
            "seed: must be an integer in [0, 4294967295]. Received: 4294967296. "
            "Seeds are 32-bit unsigned integers.",
        ),
        (
            "training.learning_rate=0",
            "training.learning_rate: must be a number in (0, 10]. Received: 0. "
            "1e-3 is a good start for adam.",
        ),
        (
            "model.bn_momentum=1",
            "model.bn_momentum: must be a number in [0, 1). Received: 1. 0.99 is Keras's default.",
        ),
        (
            "name=../evil",
            "name: must be 1 to 100 characters from A-Z a-z 0-9 . _ - not starting with '.' or '-'. "
            "Received: '../evil'. It names the run directory inside the output directory, e.g. bc-l2-dropout.",
        ),
        (
            "name=.hidden",
            "name: must be 1 to 100 characters from A-Z a-z 0-9 . _ - not starting with '.' or '-'. "
            "Received: '.hidden'. It names the run directory inside the output directory, e.g. bc-l2-dropout.",
        ),
        ("backend=theano", "backend: must be one of tensorflow, jax, torch. Received: 'theano'."),
        (
            "model.activation=reLU",
            "model.activation: must be one of relu, gelu, elu, selu, tanh, sigmoid, swish, "
            "silu, leaky_relu, linear. Received: 'reLU'. Did you mean 'relu'?",
        ),
    ],
)
def test_out_of_range_values_name_key_expectation_value_and_fix(override, line):
    assert problems(with_overrides(override)) == [line]


def test_fractions_must_leave_training_rows():
    assert problems(with_overrides("data.val_fraction=0.6", "data.test_fraction=0.4")) == [
        "data.val_fraction + data.test_fraction: must be < 1 so that rows remain for training. "
        "Received: 0.6 + 0.4 = 1. Lower one of them; the defaults are 0.2 + 0.2."
    ]


def test_hidden_and_layers_are_mutually_exclusive():
    raw = with_overrides("model.hidden=[64]", "model.layers=[{type: dense, units: 8}]")
    assert problems(raw) == [
        "model: It is invalid to specify both model.hidden AND model.layers. "
        "Use model.hidden for the MLP shorthand or model.layers for full control, not both."
    ]


def test_shorthand_knobs_have_no_effect_with_layers():
    raw = with_overrides("model.dropout=0.5", "model.layers=[{type: dense, units: 8}]")
    assert problems(raw) == [
        "model.dropout: applies only to the model.hidden shorthand and has no effect with model.layers. "
        "Received: 0.5. Add {type: dropout, rate: 0.2} layers where you want dropout, or remove model.dropout."
    ]


def test_shorthand_knobs_are_refused_beside_layers_even_at_their_default_value():
    raw = with_overrides("model.l2=1.0e-4", "model.batchnorm=true", "model.layers=[{type: dense, units: 8}]")
    assert problems(raw) == [
        "model.batchnorm: applies only to the model.hidden shorthand and has no effect with model.layers. "
        "Received: true. Add {type: batchnorm} layers (after a dense layer with use_bias: false), or remove "
        "model.batchnorm.",
        "model.l2: applies only to the model.hidden shorthand and has no effect with model.layers. "
        "Received: 0.0001. Give the dense layers kernel_regularizer: {l2: 1.0e-4}, or remove model.l2.",
    ]


def test_the_resolved_spec_of_explicit_layers_leaves_the_shorthand_keys_out_and_round_trips(tmp_path):
    spec = validate_experiment(with_overrides("model.layers=[{type: dense, units: 8}]"), tmp_path)
    model = spec_to_dict(spec)["model"]
    assert not {"hidden", "l1", "l2", "dropout", "batchnorm", "bias_l2", "activity_l2", "bn_momentum",
                "activation", "output_l2"} & set(model)
    assert model["layers"][0]["units"] == 8
    again = validate_experiment(yaml.safe_load(dump_spec_yaml(spec)), tmp_path)
    assert again == spec
    # The shorthand keeps every key, with its default.
    shorthand = spec_to_dict(validate_experiment(MINIMAL, tmp_path))["model"]
    assert (shorthand["hidden"], shorthand["l2"], shorthand["output_l2"]) == ([256, 128], 1e-4, 0.0)


def test_a_penalty_written_inside_a_layer_points_to_its_regularizer():
    assert problems(with_overrides("model.layers=[{type: dense, units: 8, l2: 1.0e-4}, {type: dropout, rate: 0.1, "
                                   "batchnorm: true}]")) == [
        "Unknown key 'model.layers.0.l2'. A layer's penalties go in kernel_regularizer: {l2: 1.0e-4} "
        "(bias_regularizer, activity_regularizer likewise).",
        "Unknown key 'model.layers.1.batchnorm'. BatchNorm is a layer of its own: add {type: batchnorm} after this "
        "one (and use_bias: false here).",
    ]


def test_settings_that_do_nothing_are_warned_about():
    assert spec_warnings(validate_experiment(with_overrides("model.bias_l2=1e-3"), Path("."))) == [
        "model.bias_l2 (0.001) has no effect with model.batchnorm: true: a BatchNorm block's Dense layer has no "
        "bias (BatchNorm's beta takes its place). Remove model.bias_l2, or set model.batchnorm: false."
    ]
    assert spec_warnings(validate_experiment(with_overrides("model.bias_l2=1e-3", "model.batchnorm=false"), Path("."))) == []
    layers = "model.layers=[{type: dense, units: 8, use_bias: false, bias_regularizer: {l2: 1.0e-3}}]"
    assert spec_warnings(validate_experiment(with_overrides(layers), Path("."))) == [
        "model.layers.0.bias_regularizer has no effect: the layer has use_bias: false. Remove it, or set use_bias: true."
    ]


def test_layer_errors_use_plain_dotted_paths():
    layers = "[{type: dense, units: 8, unit: 3}, {type: lambda}, {type: dropout, rate: 1.0}, {type: dropout}]"
    assert problems(with_overrides(f"model.layers={layers}")) == [
        "Unknown key 'model.layers.0.unit'. Did you mean 'model.layers.0.units'?",
        "model.layers.1.type: must be one of dense, batchnorm, activation, dropout, conv2d, maxpool2d, flatten, "
        "spatial_dropout2d, gaussian_noise. Received: 'lambda'. Only these layer types can be built.",
        "model.layers.2.rate: must be a number in [0, 1). Received: 1.0. "
        "A rate of 1 would drop every unit; typical rates are 0.1 to 0.5.",
        "model.layers.3.rate: is required.",
    ]


def test_data_source_and_path_checks(tmp_path):
    assert problems({"data": {"source": "breast-cancer"}}) == [
        "data.source: must be one of breast_cancer, digits, wine, iris, diabetes, moons, synthetic_classification, "
        "synthetic_regression. Received: 'breast-cancer'. Did you mean 'breast_cancer'?"
    ]
    assert problems({"data": {}}) == [
        "data: needs data.source (a built-in data set) or data.path (a .csv, .parquet or .npz file). "
        "Built-in data sets: breast_cancer, digits, wine, iris, diabetes, moons, synthetic_classification, "
        "synthetic_regression."
    ]
    (tmp_path / "d.csv").write_text("x,y\n1,0\n")
    assert problems({"data": {"source": "wine", "path": "d.csv", "target": "y"}}, tmp_path) == [
        "data: It is invalid to specify both data.source AND data.path. "
        "Keep data.source for a built-in data set or data.path for your own file."
    ]
    assert problems({"data": {"path": "d.csv"}}, tmp_path) == [
        "data.target: is required for a .csv file: name its label column. For example: target: label."
    ]
    assert problems({"data": {"source": "wine", "target": "y"}}) == [
        "data.target: applies only to .csv and .parquet files; data.source wine brings its own labels. "
        "Received: 'y'. Remove data.target."
    ]
    assert problems({"data": {"path": "d.txt"}}, tmp_path) == [
        "data.path: must be a .csv, .parquet or .npz file. Received: 'd.txt'."
    ]


def test_missing_data_file_names_the_resolved_path(tmp_path):
    path = write(tmp_path, "data: {path: data/missing.csv, target: y}\n")
    with pytest.raises(SpecError) as info:
        load_experiment_spec(path)
    assert str(info.value).splitlines()[1] == (
        f"  data.path: file not found: {tmp_path / 'data' / 'missing.csv'}. Received: 'data/missing.csv'. "
        f"Relative paths are resolved against the spec file's directory ({tmp_path})."
    )


def test_init_from_must_be_a_directory(tmp_path):
    assert problems(with_overrides("model.init_from=runs/nope"), tmp_path) == [
        f"model.init_from: directory not found: {tmp_path / 'runs' / 'nope'}. Received: 'runs/nope'. "
        f"Point it at a finished run directory; relative paths are resolved against {tmp_path}."
    ]


def test_generated_data_must_fit_rows_times_features():
    raw = {"data": {"source": "synthetic_classification", "params": {"n_samples": 1_000_000, "n_features": 10_000}}}
    assert problems(raw) == [
        "data.params: n_samples x n_features = 1,000,000 x 10,000 would generate a 74.5 GiB feature matrix "
        "(rows x features x 8-byte floats, before splitting); regcli generates at most 2.0 GiB. "
        'Received: {"n_samples": 1000000, "n_features": 10000}. '
        "Lower n_samples or n_features, e.g. n_features: 268 with 1,000,000 rows."
    ]
    fits = {"data": {"source": "synthetic_regression", "params": {"n_samples": 1_000_000, "n_features": 268}}}
    assert validate_experiment(fits, Path(".")).data.params == {"n_samples": 1_000_000, "n_features": 268}
    defaults = {"data": {"source": "synthetic_regression", "params": {"n_features": 10_000}}}  # 1,000 rows
    assert validate_experiment(defaults, Path(".")).data.params == {"n_features": 10_000}


def test_params_only_for_generated_data():
    assert problems({"data": {"source": "iris", "params": {"n_samples": 100}}}) == [
        "data.params: is only for the generated data sets moons, synthetic_classification, synthetic_regression, "
        'not for data.source iris. Received: {"n_samples": 100}. Remove data.params.'
    ]
    assert problems({"data": {"source": "moons", "params": {"n_samplez": 100, "n_samples": 10**9}}}) == [
        "Unknown key 'data.params.n_samplez'. Did you mean 'data.params.n_samples'?",
        "data.params.n_samples: must be an integer in [10, 1000000]. Received: 1000000000. "
        "Fewer than 10 rows cannot be split.",
    ]


def test_task_and_monitor_must_fit_the_data():
    raw = {"data": {"source": "diabetes"}, "training": {"early_stopping": {"monitor": "val_accuracy"}}}
    assert problems(raw) == [
        "training.early_stopping.monitor: is a classification metric; this is a regression task. "
        "Received: 'val_accuracy'. Use val_mae or val_loss."
    ]
    assert problems({"data": {"source": "digits"}, "model": {"task": "binary"}}) == [
        "model.task: does not fit data.source digits, a multiclass data set. Received: 'binary'. "
        "Use task: auto (or multiclass)."
    ]


def test_missing_data_and_null_sections():
    assert problems({"model": None}) == [
        "data: is required. Add for example 'data: {source: breast_cancer}', "
        "or data.path: with your own .csv/.parquet/.npz file.",
        "model: must be a mapping. Received: null. Remove the empty key to use the defaults, or give it keys.",
    ]


# ---------------------------------------------------------------------- defaults and round-trips
def test_defaults_are_filled_in():
    data = spec_to_dict(validate_experiment(MINIMAL, Path(".")))
    assert data["model"]["hidden"] == [256, 128] and data["model"]["layers"] is None
    assert data["training"]["early_stopping"] == {
        "enabled": True,
        "monitor": "val_loss",
        "mode": "auto",
        "min_delta": 0.0,
        "patience": 5,
        "restore_best_weights": True,
        "start_from_epoch": 0,
        "baseline": None,
    }
    layered = validate_experiment(with_overrides("model.layers=[{type: flatten}]"), Path("."))
    assert layered.model.hidden is None


FULL_SPEC = """\
name: "1e5"
seed: 7
backend: jax
device: cpu
data:
  path: data/train.csv
  target: label
  split_seed: 3
  val_fraction: 0.25
  test_fraction: 0.0
  stratify: false
  train_fraction: 0.5
  label_noise: 0.1
  drift: {shift: 0.5, scale: 2}
model:
  task: binary
  init_from: runs/previous
  freeze: [0, dense_in]
  layers:
    - {type: dense, name: dense_in, units: 64, use_bias: false, kernel_regularizer: {l1: 1.0e-5, l2: 1e-4},
       bias_regularizer: {l2: 1.0e-4}, activity_regularizer: {l2: 1.0e-10}}
    - {type: batchnorm, momentum: 0.9}
    - {type: activation, activation: gelu}
    - {type: dropout, rate: 0.3}
    - {type: gaussian_noise, stddev: 0.1}
    - {type: dense, units: 1, activation: sigmoid}
training:
  epochs: 3
  batch_size: 8
  optimizer: adamw
  learning_rate: 3e-4
  weight_decay: 1e-2
  early_stopping: {monitor: val_accuracy, mode: max, min_delta: 1e-3, patience: 0, start_from_epoch: 1, baseline: 0.5}
diagnosis: {target_error: 0.01, bias_tolerance: 0.1, gap_tolerance: 0.05}
"""


def test_full_spec_round_trips(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("x,label\n1,0\n")
    (tmp_path / "runs" / "previous").mkdir(parents=True)
    spec = load_experiment_spec(write(tmp_path, FULL_SPEC))
    assert spec.data.path == str(tmp_path / "data" / "train.csv")
    assert spec.model.init_from == str(tmp_path / "runs" / "previous")
    assert spec.name == "1e5" and spec.training.learning_rate == 3e-4
    assert spec.model.layers[0].kernel_regularizer.l2 == 1e-4

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = load_experiment_spec(write(elsewhere, dump_spec_yaml(spec), "resolved.yaml"))
    assert again == spec
    assert spec_to_dict(again) == spec_to_dict(spec)


def test_minimal_spec_round_trips(tmp_path):
    spec = load_experiment_spec(write(tmp_path, "data: {source: breast_cancer}\n"))
    assert load_experiment_spec(write(tmp_path, dump_spec_yaml(spec), "again.yaml")) == spec


def test_spec_is_frozen():
    spec = validate_experiment(MINIMAL, Path("."))
    with pytest.raises(ValueError):
        spec.seed = 3  # type: ignore[misc]


# ---------------------------------------------------------------------- overrides
def test_parse_override_values_are_yaml():
    assert parse_override("model.l2=1e-3") == ("model.l2", 1e-3)
    assert parse_override("model.hidden=[64, 32]") == ("model.hidden", [64, 32])
    assert parse_override("data.split_seed=null") == ("data.split_seed", None)
    assert parse_override("data.path=a=b.csv") == ("data.path", "a=b.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model.l2",
            "Invalid --set 'model.l2': expected KEY=VALUE with a dotted key. "
            "Write KEY=VALUE, e.g. --set model.l2=1e-3.",
        ),
        (
            "=3",
            "Invalid --set '=3': the key must be a dotted path of letters, digits, '_' or '-' such as model.l2. "
            "Write KEY=VALUE, e.g. --set model.l2=1e-3.",
        ),
        (
            "model..l2=3",
            "Invalid --set 'model..l2=3': the key must be a dotted path of letters, digits, '_' or '-' "
            "such as model.l2. Write KEY=VALUE, e.g. --set model.l2=1e-3.",
        ),
        (
            "model.l2=",
            "Invalid --set 'model.l2=': the value is empty. Write model.l2=null to set it to null.",
        ),
        (
            "model.hidden=[64",
            "Invalid --set 'model.hidden=[64': the value is not valid YAML (malformed YAML: "
            "expected ',' or ']', but got '<stream end>' (while parsing a flow sequence at line 1, column 1)). "
            "Quote strings that contain ': ', '#' or start with '[', '{', '&', '*' or '!'.",
        ),
    ],
)
def test_bad_overrides(text, message):
    with pytest.raises(SpecError) as info:
        parse_override(text)
    assert str(info.value) == message


def test_apply_overrides_creates_mappings_and_does_not_mutate():
    raw = {"data": {"source": "wine", "drift": None}}
    result = apply_overrides(
        raw, ["data.drift.shift=0.5", "training.early_stopping.patience=2", "model.l2=1e-3"]
    )
    assert raw == {"data": {"source": "wine", "drift": None}}
    assert result["data"]["drift"] == {"shift": 0.5}
    spec = validate_experiment(result, Path("."))
    assert spec.training.early_stopping.patience == 2 and spec.model.l2 == 1e-3


def test_override_into_a_list_and_through_a_scalar():
    raw = with_overrides("model.layers=[{type: dense, units: 8}]", "model.layers.0.units=16")
    assert raw["model"]["layers"] == [{"type": "dense", "units": 16}]
    with pytest.raises(SpecError) as info:
        with_overrides("model.l2=1e-3", "model.l2.x=1")
    assert str(info.value) == "Cannot set model.l2.x: model.l2 is a number (0.001), not a mapping."


def test_unknown_key_from_an_override_is_caught(tmp_path):
    path = write(tmp_path, "data: {source: wine}\n")
    with pytest.raises(SpecError) as info:
        load_experiment_spec(path, ["model.dropot=0.3"])
    assert (
        str(info.value)
        == f"Invalid spec {path}:\n  Unknown key 'model.dropot'. Did you mean 'model.dropout'?"
    )


def test_path_overrides_resolve_against_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "mine.npz").write_bytes(b"")
    path = write(tmp_path / "configs", "data: {source: wine}\n")
    monkeypatch.chdir(tmp_path)
    spec = load_experiment_spec(path, ["data.source=null", "data.path=mine.npz"])
    assert spec.data.path == str(tmp_path / "mine.npz")


def test_sweep_specs_are_recognised(tmp_path):
    assert is_sweep_spec({"base": "x.yaml", "params": {}}) and not is_sweep_spec(MINIMAL)
    with pytest.raises(SpecError, match="is a sweep spec"):
        load_experiment_spec(write(tmp_path, "base: x.yaml\nparams: {model.l2: [0.0]}\n"))


@pytest.mark.parametrize(
    ("monitor", "mode", "expected"),
    [
        ("val_loss", "auto", "min"),
        ("val_accuracy", "auto", "max"),
        ("accuracy", "auto", "max"),
        ("val_mae", "auto", "min"),
        ("val_accuracy", "min", "min"),
        ("val_data_loss", "auto", "min"),
        ("data_loss", "auto", "min"),
    ],
)
def test_resolve_mode_for_every_spec_monitor(monitor, mode, expected):
    from regcli.replay import resolve_mode

    assert resolve_mode(mode, monitor) == expected


def test_import_is_light():
    code = (
        "import sys, regcli.spec; "
        "print(sorted(m for m in ('numpy', 'tensorflow', 'keras', 'pandas', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------- property tests
VALID = {
    "name": "prop",
    "seed": 1,
    "data": {
        "source": "synthetic_classification",
        "params": {"n_samples": 200, "n_classes": 3},
        "val_fraction": 0.2,
    },
    "model": {"hidden": [8, 4], "dropout": 0.1, "l2": 1e-4},
    "training": {"epochs": 3, "early_stopping": {"patience": 1, "monitor": "val_accuracy"}},
    "diagnosis": {"target_error": 0.0},
}
VALID_LAYERS = {
    "data": {"source": "moons", "params": {"noise": 0.2}},
    "model": {
        "layers": [
            {"type": "dense", "units": 4, "kernel_regularizer": {"l2": 0.01}},
            {"type": "dropout", "rate": 0.2},
        ]
    },
}

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["dense", "lambda", "no", "1e-4", "../x", "val_loss", "relu", "synthetic_regression"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=6) | st.integers(), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate(raw, data):
    import copy

    raw = copy.deepcopy(raw)
    paths = list(_paths(raw))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = raw
        for part in path[:-1]:
            if isinstance(parent, dict):
                parent = parent.get(part)
            elif isinstance(parent, list) and isinstance(part, int) and part < len(parent):
                parent = parent[part]
            else:
                parent = None
        if not isinstance(parent, dict | list) or not path:
            continue
        last = path[-1]
        in_list = isinstance(parent, list) and isinstance(last, int) and last < len(parent)
        if not (in_list or (isinstance(parent, dict) and last in parent)):
            continue
        op = data.draw(st.sampled_from(["delete", "replace", "add", "nest"]))
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = data.draw(junk)
        elif op == "add" and isinstance(parent[last], dict):
            parent[last][data.draw(st.text(max_size=8))] = data.draw(junk)
        elif op == "nest":
            parent[last] = {data.draw(st.text(max_size=4)): parent[last]}
    return raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_specs_give_a_spec_or_a_spec_error(data):
    raw = _mutate(data.draw(st.sampled_from([VALID, VALID_LAYERS])), data)
    try:
        spec = validate_experiment(raw, Path("."))
    except SpecError as exc:
        assert str(exc).startswith("Invalid spec <spec>:")
    else:
        assert isinstance(spec, ExperimentSpec)
        assert load_yaml_text(dump_spec_yaml(spec)) == spec_to_dict(spec)


yamlish = st.text(alphabet=st.sampled_from(list("ab1e-+.:[]{}&*!|>'\"#%@`,?~<= \n\t\\")), max_size=60)


@settings(max_examples=200, deadline=None)
@given(text=yamlish | st.text(max_size=40))
def test_random_text_gives_a_value_or_a_spec_error(text):
    try:
        load_yaml_text(text)
    except SpecError as exc:
        assert str(exc).startswith("Invalid YAML in <string>")
