"""What `regcli.keras.RunRecorder` costs per epoch: plain `model.fit` vs the same fit recorded.

    .venv/bin/python benchmarks/recorder.py                  # 3 rounds x 30 epochs (~1-2 min, 2 cores)
    .venv/bin/python benchmarks/recorder.py --epochs 50 --rounds 5

The model is the quickstart model (`configs/quickstart.yaml`: breast_cancer, 256/128, BatchNorm,
dropout 0.2, L2 1e-4 on the hidden kernels, batch 32), built by regcli and compiled as a user
would (`adam`, `binary_crossentropy`, `metrics=["accuracy"]`), early stopping off, fed numpy
arrays as a user's `model.fit(x, y, validation_data=(xv, yv))` is. Both sides start from the
same seed; the rounds alternate the sides, so a busy machine slows both alike.

An epoch's time is the wall time between two consecutive epoch ends (a callback after every
other one stamps them): training, validation and, on the recorded side, the recorder's own
epoch end (clean metrics on the training subset, the penalty, the history.csv write). The
first epoch (tracing) is left out; the median over the rest and over rounds is reported. On a
busy machine two medians of ~0.3 s epochs differ by more than the recorder costs, so the
recorder's own hooks are also timed directly (their sum per epoch, and its ratio to a plain
epoch), as are its one-time costs: the checks and first files at the start; summary.json,
model.keras, the diagnosis and learning_curves.png at the end.

`--penalty-check` also measures how close the recorded `data_loss` (the running `loss` minus the
mean of the penalty before the epoch's first step and after its last) is to `loss` minus the
exact mean penalty over the epoch's steps (read before every step by a batch callback).
Nothing is asserted; the numbers are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def epoch_stamps():
    """A callback taking wall-clock stamps at every epoch end, after every other callback has run."""
    import keras

    class EpochStamps(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.stamps = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):
            self.stamps.append(time.perf_counter())

    return EpochStamps()


def quickstart():
    """The quickstart spec, its data (float32 targets as a binary head takes them) and a model builder."""
    from regcli.training import backend

    backend.select("tensorflow", "cpu")
    backend.import_keras_quietly()
    from regcli.data import load_dataset
    from regcli.spec import load_experiment_spec
    from regcli.training.feed import targets
    from regcli.training.fit import prepare_model

    spec = load_experiment_spec(QUICKSTART, ["training.early_stopping.enabled=false"])
    ds = load_dataset(spec.data, seed=spec.seed, task=spec.model.task)

    def build():
        import keras

        model = prepare_model(spec, ds).model  # seeded: both sides start from the same weights
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
        return model

    data = (ds.x_train, targets(ds.y_train, ds.task)), (ds.x_val, targets(ds.y_val, ds.task))
    return build, data


def timed_recorder(*args, **kwargs):
    """A RunRecorder that also times its own hooks: what it adds to each epoch, and at the start and end."""
    from regcli.keras import RunRecorder

    class TimedRecorder(RunRecorder):
        hooks: dict[str, list[float]] = {}

        def _timed(self, hook: str, method, *a):
            started = time.perf_counter()
            try:
                return method(*a)
            finally:
                self.hooks.setdefault(hook, []).append(time.perf_counter() - started)

        def on_train_begin(self, logs=None):
            self._timed("begin", super().on_train_begin, logs)

        def on_epoch_begin(self, epoch, logs=None):
            self._timed("epoch", super().on_epoch_begin, epoch, logs)

        def on_epoch_end(self, epoch, logs=None):
            self._timed("epoch", super().on_epoch_end, epoch, logs)

        def on_train_end(self, logs=None):
            self._timed("end", super().on_train_end, logs)

    return TimedRecorder(*args, **kwargs)


def one_fit(build, data, epochs: int, out: Path | None, extra=()) -> tuple[list[float], float, object]:
    """(per-epoch seconds after the first, the whole fit's seconds, the recorder or None)."""
    (x, y), (xv, yv) = data
    model = build()
    stamps = epoch_stamps()
    recorder = timed_recorder(out, name="bench", train_data=(x, y), val_data=(xv, yv)) if out is not None else None
    callbacks = ([recorder] if recorder else []) + list(extra) + [stamps]
    started = time.perf_counter()
    model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
    total = time.perf_counter() - started
    epoch_seconds = [b - a for a, b in zip(stamps.stamps[1:], stamps.stamps[2:], strict=False)]
    return epoch_seconds, total, recorder


def overhead(build, data, epochs: int, rounds: int) -> None:
    plain, recorded, hooks = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for side in ("plain", "recorded") if r % 2 == 0 else ("recorded", "plain"):
                seconds, _, recorder = one_fit(build, data, epochs, Path(tmp) / "runs" if side == "recorded" else None)
                (plain if side == "plain" else recorded).extend(seconds)
                if recorder is not None:
                    hooks = recorder.hooks
    p, q = statistics.median(plain), statistics.median(recorded)
    # An epoch's two hooks (begin, end) after the first epoch, summed per epoch.
    per_epoch = [a + b for a, b in zip(hooks["epoch"][2::2], hooks["epoch"][3::2], strict=False)]
    own = statistics.median(per_epoch)
    print(f"quickstart model, {epochs} epochs x {rounds} rounds (medians; the first epoch, with tracing, left out):")
    print(f"  plain model.fit            {p * 1e3:7.1f} ms / epoch")
    print(f"  with RunRecorder           {q * 1e3:7.1f} ms / epoch   measured ratio {q / p:.3f}x")
    print(f"  the recorder's own hooks   {own * 1e3:7.1f} ms / epoch   ratio to plain {(p + own) / p:.3f}x")
    print(f"  one-time: start {statistics.median(hooks['begin']):.2f} s (checks, first files), "
          f"end {statistics.median(hooks['end']):.2f} s (model.keras, diagnosis, curves)")


def penalty_check(build, data, epochs: int) -> None:
    """The recorded data_loss against loss minus the exact per-step mean penalty."""
    import keras

    from regcli.keras.modelinfo import weight_penalty

    class StepPenalty(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.weighted, self.rows = 0.0, 0

        def on_train_batch_begin(self, batch, logs=None):
            n = min(32, len(data[0][0]) - batch * 32)  # the last batch is partial
            self.weighted += weight_penalty(self.model) * n
            self.rows += n

        def on_epoch_end(self, epoch, logs=None):
            self.exact = getattr(self, "exact", []) + [self.weighted / self.rows]

    step = StepPenalty()
    with tempfile.TemporaryDirectory() as tmp:
        _, _, recorder = one_fit(build, data, epochs, Path(tmp) / "runs", extra=[step])
        rows = recorder.rows
    errors = [abs(row["data_loss"] - (row["loss"] - exact)) for row, exact in zip(rows, step.exact, strict=True)]
    shares = [e / row["data_loss"] for e, row in zip(errors, rows, strict=True)]
    print(f"data_loss vs loss minus the exact mean penalty over {epochs} epochs: largest difference "
          f"{max(errors):.2e} ({max(shares):.1e} of data_loss); penalty at the end {rows[-1]['loss'] - rows[-1]['data_loss']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="Epochs per fit. Defaults to 30.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of (plain, recorded) fits. Defaults to 3.")
    parser.add_argument("--penalty-check", action="store_true", help="Also measure data_loss's penalty approximation.")
    args = parser.parse_args()
    build, data = quickstart()
    overhead(build, data, args.epochs, args.rounds)
    if args.penalty_check:
        penalty_check(build, data, args.epochs)


if __name__ == "__main__":
    main()
