"""Packed training: K towers in one model train as K separate runs would."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from regcli import rundir
from regcli.packed import pack_key
from regcli.replay import replay_early_stopping
from regcli.runner import run_experiment, run_packed
from regcli.spec import load_experiment_spec, spec_to_dict

BASE = {
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "training": {"epochs": 8, "batch_size": 32, "learning_rate": 3e-3},
}
# Differ in L2, BatchNorm and width; no dropout, so every column is comparable.
MODELS = [
    {"hidden": [16], "batchnorm": False, "dropout": 0.0, "l2": 0.0},
    {"hidden": [16], "batchnorm": True, "dropout": 0.0, "l2": 1e-3},
    {"hidden": [32, 8], "batchnorm": False, "dropout": 0.0, "l2": 1e-2},
]
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
        assert outcome.summary["packed"]["size"] == 3
        assert sorted(p.name for p in outcome.run_dir.iterdir()) == sorted(p.name for p in alone.run_dir.iterdir())
        if early_stopping["enabled"]:
            replay = replay_early_stopping(list(hp["val_data_loss"]), mode="min", patience=1)
            assert outcome.summary["best_epoch"] == replay["shipped_epoch"]
            assert outcome.summary["epochs_run"] == replay["epochs_run"]


def test_incompatible_specs_are_not_packed(tmp_path):
    a, b, _ = specs(tmp_path, {"enabled": False})
    other_lr = b.model_copy(update={"training": b.training.model_copy(update={"learning_rate": 1e-2})})
    assert pack_key(spec_to_dict(a)) != pack_key(spec_to_dict(other_lr))
    other_seed = b.model_copy(update={"seed": 1})
    assert pack_key(spec_to_dict(a)) != pack_key(spec_to_dict(other_seed))
    fine_tune = spec_to_dict(a)
    fine_tune["model"]["freeze"] = [0]
    assert pack_key(fine_tune) is None
    assert json.loads(pack_key(spec_to_dict(a)))["training"].get("early_stopping") is None
