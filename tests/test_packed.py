"""Packed training: K towers in one model train as K separate runs would."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from regcli import rundir
from regcli.experiment import run_experiment, run_packed
from regcli.replay import replay_early_stopping
from regcli.spec import load_experiment_spec, spec_to_dict
from regcli.training.packs import pack_key

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "training": {"epochs": 8, "batch_size": 32, "learning_rate": 3e-3},
}
# Differ in L1/L2, bias_l2, BatchNorm, width and layer kind; no dropout, so every column is
# comparable. Towers 0 and 1, and 2 and 3, share a TowerStack (same shape); tower 4 is a
# [32, 8] stack of its own; tower 5 (explicit layers) is a separate sub-model of the pack.
MODELS = [
    {"hidden": [16], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    {"hidden": [16], "batchnorm": False, "dropout": 0.0, "l2": 1e-2, "l1": 1e-3, "bias_l2": 1e-3},
    {"hidden": [16], "batchnorm": True, "dropout": 0.0, "l2": 1e-3},
    {"hidden": [16], "batchnorm": True, "dropout": 0.0, "l2": 0.0, "l1": 1e-3},
    {"hidden": [32, 8], "batchnorm": False, "dropout": 0.0, "l2": 1e-2},
    {"layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
]
STACKED = [True, True, True, True, True, False]
ES = {"enabled": True, "monitor": "val_data_loss", "patience": 1, "restore_best_weights": True}


def specs(tmp_path, early_stopping):
    out = []
    for i, model in enumerate(MODELS):
        path = tmp_path / f"spec{i}.yaml"
        raw = {**BASE, "model": model, "training": {**BASE["training"], "early_stopping": early_stopping}}
        path.write_text(yaml.safe_dump(raw))
        out.append(load_experiment_spec(path))
    return out


@pytest.mark.parametrize("early_stopping", [{"enabled": False}, ES], ids=["no-es", "per-tower-es"])
def test_packed_towers_match_separate_runs(tmp_path, early_stopping):
    configs = specs(tmp_path, early_stopping)
    assert len({pack_key(spec_to_dict(s)) for s in configs}) == 1
    packed = run_packed(configs, [tmp_path / "packed" / f"t{i}" for i in range(len(configs))])
    assert [o.summary["packed"]["stacked"] for o in packed] == STACKED
    for spec, outcome in zip(configs, packed, strict=True):
        alone = run_experiment(spec, out=tmp_path / "alone")
        hp = pd.read_csv(outcome.run_dir / rundir.HISTORY)
        ha = pd.read_csv(alone.run_dir / rundir.HISTORY)
        assert len(hp) == len(ha)
        exact = ["val_data_loss", "val_accuracy", "clean_data_loss", "clean_accuracy", "data_loss", "accuracy"]
        np.testing.assert_allclose(hp[exact], ha[exact], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(hp["val_loss"], ha["val_loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(hp["loss"], ha["loss"], rtol=0.05)  # per-batch vs end-of-epoch penalty
        for key in ("best_epoch", "epochs_run", "stopped_early", "restored_best_weights"):
            assert outcome.summary[key] == alone.summary[key], key
        np.testing.assert_allclose(outcome.summary["metrics"]["val"]["data_loss"], alone.summary["metrics"]["val"]["data_loss"], rtol=1e-5)
        assert outcome.summary["packed"]["size"] == len(MODELS)
        assert sorted(p.name for p in outcome.run_dir.iterdir()) == sorted(p.name for p in alone.run_dir.iterdir())
        if early_stopping["enabled"]:
            replay = replay_early_stopping(list(hp["val_data_loss"]), mode="min", patience=1)
            assert outcome.summary["best_epoch"] == replay["shipped_epoch"]
            assert outcome.summary["epochs_run"] == replay["epochs_run"]


def test_incompatible_specs_are_not_packed(tmp_path):
    a, b, *_ = specs(tmp_path, {"enabled": False})
    other_lr = b.model_copy(update={"training": b.training.model_copy(update={"learning_rate": 1e-2})})
    assert pack_key(spec_to_dict(a)) != pack_key(spec_to_dict(other_lr))
    other_seed = b.model_copy(update={"seed": 1})
    assert pack_key(spec_to_dict(a)) != pack_key(spec_to_dict(other_seed))
    fine_tune = spec_to_dict(a)
    fine_tune["model"]["freeze"] = [0]
    assert pack_key(fine_tune) is None
    assert json.loads(pack_key(spec_to_dict(a)))["training"].get("early_stopping") is None


def test_dropout_rates_are_per_tower(tmp_path):
    """A dropout-free tower sharing a stack with a dropout tower trains exactly as it would alone."""
    raw = {**BASE, "training": {**BASE["training"], "epochs": 3}}
    configs = []
    for i, rate in enumerate([0.0, 0.5]):
        path = tmp_path / f"d{i}.yaml"
        path.write_text(yaml.safe_dump({**raw, "model": {"hidden": [16], "batchnorm": False, "dropout": rate}}))
        configs.append(load_experiment_spec(path))
    packed = run_packed(configs, [tmp_path / "packed" / f"t{i}" for i in range(2)])
    assert all(o.summary["packed"]["stacked"] for o in packed)
    alone = run_experiment(configs[0], out=tmp_path / "alone")
    hp, ha = (pd.read_csv(r.run_dir / rundir.HISTORY) for r in (packed[0], alone))
    np.testing.assert_allclose(hp["val_data_loss"], ha["val_data_loss"], rtol=1e-5, atol=1e-6)
    dropped = pd.read_csv(packed[1].run_dir / rundir.HISTORY)
    # Dropout on: the as-trained loss is worse than the clean (inference-mode) one on the same rows.
    assert (dropped["data_loss"] > dropped["clean_data_loss"]).all()
    assert not np.allclose(dropped["val_data_loss"], hp["val_data_loss"])
    # A tower's model.keras loads like an unpacked run's (`regcli test` does this), without warnings.
    import warnings

    from regcli.training.fit import load_shipped_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_shipped_model(packed[0].run_dir / rundir.MODEL)
    assert [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)] == []
    assert len(model.optimizer.variables) > 2
    # SPEC §5.2: every reported evaluation runs in inference mode. The dropout tower's shipped model,
    # evaluated alone by Keras (dropout off), gives the validation numbers its summary reports.
    from regcli.data import load_dataset
    from regcli.training.fit import evaluate_split

    ds = load_dataset(configs[1].data, seed=configs[1].seed, task=configs[1].model.task)
    shipped = load_shipped_model(packed[1].run_dir / rundir.MODEL)
    alone_val = evaluate_split(shipped, ds.x_val, ds.y_val, ds.task)
    for key in ("data_loss", "accuracy", "loss"):
        np.testing.assert_allclose(packed[1].summary["metrics"]["val"][key], alone_val[key], rtol=1e-5, err_msg=key)


JAX_CHECK = """
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
from regcli.spec import load_experiment_spec
from regcli.experiment import run_packed, run_experiment
tmp = Path(sys.argv[1])
specs = [load_experiment_spec(p) for p in sorted(tmp.glob("s*.yaml"))]
packed = run_packed(specs, [tmp / "packed" / f"t{i}" for i in range(len(specs))])
alone = run_experiment(specs[1], out=tmp / "alone")
hp, ha = (pd.read_csv(o.run_dir / "history.csv") for o in (packed[1], alone))
from regcli.training.packed import kept_model
kept = kept_model()
again = run_packed(specs, [tmp / "again" / f"t{i}" for i in range(len(specs))])  # reuses the traced model
hr = pd.read_csv(again[1].run_dir / "history.csv")
print(json.dumps({"stacked": [o.summary["packed"]["stacked"] for o in packed],
                  "reused": kept_model() is kept,
                  "reuse_diff": float(np.abs(hr["val_data_loss"] - hp["val_data_loss"]).max()),
                  "diff": float(np.abs(hp["val_data_loss"] - ha["val_data_loss"]).max()),
                  "best": [packed[1].summary["best_epoch"], alone.summary["best_epoch"]]}))
"""


def test_stacks_train_on_the_jax_backend_too(tmp_path):
    """The GPU runs use JAX: a BatchNorm stack with per-tower early stopping matches a separate JAX run."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    for i, model in enumerate([{"l2": 0.0}, {"l2": 1e-2}, {"l2": 1e-3, "dropout": 0.3}]):
        raw = {**BASE, "backend": "jax", "model": {"hidden": [16], "batchnorm": True, "dropout": 0.0, **model},
               "training": {**BASE["training"], "epochs": 5, "early_stopping": ES}}
        (tmp_path / f"s{i}.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", JAX_CHECK, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["stacked"] == [True, True, True]
    assert result["diff"] < 1e-5
    assert result["reused"] and result["reuse_diff"] == 0.0
    assert result["best"][0] == result["best"][1]


def test_a_pack_is_reproducible(tmp_path):
    """SPEC §5.6 for packed trials: the same specs and seed give the same histories and shipped weights."""
    from regcli.training.fit import load_shipped_model

    raw = {**BASE, "training": {**BASE["training"], "epochs": 3}}
    configs = []
    for i, model in enumerate([{"l2": 0.0, "dropout": 0.3}, {"l2": 1e-2, "dropout": 0.0}]):
        path = tmp_path / f"r{i}.yaml"
        path.write_text(yaml.safe_dump({**raw, "model": {"hidden": [16], "batchnorm": True, **model}}))
        configs.append(load_experiment_spec(path))
    first, second = (run_packed(configs, [tmp_path / run / f"t{i}" for i in range(2)]) for run in ("a", "b"))
    for a, b in zip(first, second, strict=True):
        ha, hb = (pd.read_csv(o.run_dir / rundir.HISTORY).drop(columns=["seconds"]) for o in (a, b))
        pd.testing.assert_frame_equal(ha, hb, check_exact=True)
        wa, wb = (load_shipped_model(o.run_dir / rundir.MODEL).get_weights() for o in (a, b))
        for x, y in zip(wa, wb, strict=True):
            np.testing.assert_array_equal(x, y)


def test_the_next_pack_of_the_same_shape_reuses_the_traced_model_exactly(tmp_path):
    """A worker's next pack of the same shape (another seed, other L2/dropout values) trains in the
    fused model kept from the last pack, without tracing again, and gets exactly what a new fused
    model gives it: weights, optimizer state, per-tower knobs and dropout stream are all reset."""
    from regcli.training import packed
    from regcli.training.fit import load_shipped_model

    def pack(name, seed, towers):
        configs = []
        for i, model in enumerate(towers):
            path = tmp_path / f"{name}{i}.yaml"
            raw = {**BASE, "seed": seed, "training": {**BASE["training"], "epochs": 4, "early_stopping": ES}}
            path.write_text(yaml.safe_dump({**raw, "model": {"hidden": [16, 8], "batchnorm": True, **model}}))
            configs.append(load_experiment_spec(path))
        return configs

    first = pack("a", 0, [{"l2": 0.0, "dropout": 0.3}, {"l2": 1e-2, "dropout": 0.0}, {"l2": 1e-3, "dropout": 0.1}])
    second = pack("b", 3, [{"l2": 3e-2, "dropout": 0.0}, {"l2": 0.0, "dropout": 0.5}, {"l2": 1e-4, "dropout": 0.2}])

    def run(configs, where):
        return run_packed(configs, [tmp_path / where / f"t{i}" for i in range(len(configs))])

    packed.forget_kept_model()
    fresh = run(second, "fresh")
    run(first, "first")
    kept = packed.kept_model()
    traced = kept.train_function
    reused = run(second, "reused")
    assert packed.kept_model() is kept and kept.train_function is traced  # nothing rebuilt or traced
    for a, b in zip(fresh, reused, strict=True):
        ha, hb = (pd.read_csv(o.run_dir / rundir.HISTORY).drop(columns=["seconds"]) for o in (a, b))
        pd.testing.assert_frame_equal(ha, hb, check_exact=True)
        for key in ("best_epoch", "epochs_run", "metrics", "penalty"):
            assert a.summary[key] == b.summary[key], key
        wa, wb = (load_shipped_model(o.run_dir / rundir.MODEL).get_weights() for o in (a, b))
        for x, y in zip(wa, wb, strict=True):
            np.testing.assert_array_equal(x, y)
    # Another shape (or structure: no tower with dropout) builds a new fused model.
    run(pack("c", 3, [{"l2": 1e-2, "dropout": 0.0}, {"l2": 0.0, "dropout": 0.0}, {"l2": 0.0, "dropout": 0.0}]), "other")
    assert packed.kept_model() is not kept
