"""The same 8-configuration L2 grid as `benchmarks/sweep_costs.py`, run by KerasTuner's GridSearch.

What a user would write instead of `regcli sweep`: the seed template built by hand
(`keras_baselines.build`), `hp.Choice("l2", ...)`, `keras_tuner.GridSearch(objective="val_loss")`,
`tuner.search(x, y, validation_data=..., epochs=N)` on the exact rows regcli trains on.
The caller times the whole process (imports included), as it times `regcli sweep`.

    python benchmarks/kerastuner_grid.py configs/quickstart.yaml --epochs 15 --dir /tmp/kt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import keras_tuner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keras_baselines import build  # noqa: E402 - the sibling script

from regcli.data import load_dataset  # noqa: E402
from regcli.spec import load_experiment_spec  # noqa: E402

L2_VALUES = [0.0, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3]  # sweep_jobs.PACK_L2_VALUES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--dir", type=Path, required=True, help="KerasTuner's project directory (scratch).")
    args = parser.parse_args(argv)
    spec = load_experiment_spec(args.spec)
    ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)

    def hypermodel(hp):
        l2 = hp.Choice("l2", L2_VALUES)
        model = build(spec.model.model_copy(update={"l2": l2}), ds.x_train.shape[1])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=spec.training.learning_rate),
                      loss="binary_crossentropy", metrics=["accuracy"])
        return model

    keras.utils.set_random_seed(spec.seed)
    tuner = keras_tuner.GridSearch(hypermodel, objective="val_loss", directory=str(args.dir), project_name="grid",
                                   overwrite=True)
    y_train = ds.y_train.reshape(-1, 1).astype("float32")
    y_val = ds.y_val.reshape(-1, 1).astype("float32")
    tuner.search(ds.x_train, y_train, validation_data=(ds.x_val, y_val), epochs=args.epochs,
                 batch_size=spec.training.batch_size, verbose=0)
    trials = len(tuner.oracle.trials)
    if trials != len(L2_VALUES):
        raise SystemExit(f"KerasTuner ran {trials} trials, not {len(L2_VALUES)}")
    print(tuner.get_best_hyperparameters(1)[0].get("l2"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
