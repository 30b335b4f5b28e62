"""`RunRecorder`: the Keras callback that turns a user's own `model.fit` into a regcli run directory.

One `model.fit` is one run directory, written as `regcli train` writes it (SPEC §4), so that
`regcli diagnose`, `report`, `compare`, `test` and `ls` read it as they read their own:

  on_train_begin  check the model and the data (bad input raises before the first step),
                  create `<out>/<name>-<UTC time>-<6 hex>`: config.yaml, status `running`,
                  environment.json, test_split.npz (when given `test_data`)
  on_epoch_end    the Keras logs, the penalty-free `data_loss` / `val_data_loss`, the clean
                  training metrics (inference mode, a fixed subset of `train_data`), lr and
                  seconds: one history.csv row, also added to the logs later callbacks see
  on_train_end    the shipped weights (the user's EarlyStopping's restore), their train metrics,
                  summary.json, model.keras, the diagnosis and learning_curves.png, status `completed`

The row and summary logic is regcli's own (`training.callbacks.EpochRecorder`,
`training.fit.finish`), as are the writers (`rundir`), the diagnosis and the plots.
"""

from __future__ import annotations

import atexit
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np

from regcli import rundir
from regcli.errors import BadInputError, RunFailedError
from regcli.experiment import environment_info, history_columns
from regcli.keras import modelinfo
from regcli.keras.recorded import RECORDER, write_test_split
from regcli.training.callbacks import EpochRecorder, clean_metrics
from regcli.training.feed import CLEAN_SUBSET_ROWS, Feeder

_TASK_CHOICES = ("auto", *modelinfo.TASKS)


def _pair(data: Any, key: str) -> tuple[np.ndarray, np.ndarray]:
    """`(x, y)` as numpy arrays with the same number of rows; BadInputError naming `key` otherwise."""
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise BadInputError(
            f"{key} must be a pair (x, y) of arrays, as model.fit takes them. Received: {type(data).__name__}"
            f"{f' of length {len(data)}' if isinstance(data, tuple | list) else ''}."
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
        raise BadInputError(
            f"{key} must be (x, y) with the same number of rows, at least one. Received: x of shape "
            f"{x.shape}, y of shape {y.shape}."
        )
    for part, array in (("x", x), ("y", y)):
        if array.dtype.kind not in "biuf":
            raise BadInputError(f"{key}: {part} must hold numbers (bool, int or float). Received: dtype {array.dtype}.")
    return x, y


def _labels(y: np.ndarray, task: str) -> np.ndarray:
    """Class indices of classification targets: 0/1, sparse indices, or one-hot rows."""
    if task == "multiclass" and y.ndim > 1 and y.shape[-1] > 1:
        return np.argmax(y, axis=-1)
    return np.rint(y.reshape(len(y), -1)[:, 0]).astype(np.int64)


def baseline_error(y_train: np.ndarray, y_val: np.ndarray, task: str, n_classes: int) -> float:
    """The validation error of the majority class (or, for regression, the training mean), as regcli.data has it."""
    if task == "regression":
        return float(np.mean(np.abs(y_val.astype(np.float64) - y_train.astype(np.float64).mean())))
    majority = int(np.argmax(np.bincount(_labels(y_train, task), minlength=n_classes)))
    return float(np.mean(_labels(y_val, task) != majority))


class RunRecorder(EpochRecorder):
    """Writes a regcli run directory from your own `model.fit`, so every regcli read command works on it.

    Use it when the model is your own code: a functional or subclassed Keras model with custom
    layers, your own optimizer, your own callbacks. `regcli diagnose`, `report`, `compare`, `test`
    and `ls` then read the run directory exactly as they read one of `regcli train`'s. Each
    `model.fit` it is passed to writes one new run directory (`recorder.run_dir`). Put it first
    in `callbacks` so that a later EarlyStopping can monitor `val_data_loss`.

    The model must be compiled with one loss and the task's metric (`metrics=["accuracy"]` for
    classification, `["mae"]` for regression) and fit with `validation_data` (or
    `validation_split`) evaluated every epoch. See docs/recorder.md for what each file holds.

    Args:
        out: the directory that holds run directories, as `regcli train --out` (e.g. `"runs/"`);
            created when missing.
        name: the run's name: the directory is `<out>/<name>-<UTC time>-<6 hex>`. Defaults to
            `None`: the model's name.
        train_data: `(x, y)`, the arrays `model.fit` trains on. Every epoch a fixed subset of it
            (up to 2048 rows, chosen by `seed`) is evaluated in inference mode: the clean curve.
        val_data: `(x_val, y_val)`, the arrays passed as `validation_data`. Not needed for the
            validation curve (Keras logs it); gives the diagnosis the validation size (how noisy
            the validation error is) and the majority-class baseline. Defaults to `None`.
        test_data: `(x_test, y_test)`, held out for `regcli test`: stored in the run directory,
            never evaluated by the recorder. Defaults to `None` (`regcli test` then exits 2).
        task: `"auto"`, `"binary"`, `"multiclass"` or `"regression"`; auto reads it from the
            compiled loss. Defaults to `"auto"`.
        seed: picks the clean subset. Defaults to `0`.

    Example:

    >>> recorder = RunRecorder("runs/", name="mine", train_data=(x, y))  # doctest: +SKIP
    >>> model.fit(x, y, validation_data=(xv, yv), epochs=20, callbacks=[recorder])  # doctest: +SKIP
    >>> recorder.run_dir  # doctest: +SKIP
    PosixPath('runs/mine-20261127T050141Z-777577')
    """

    def __init__(self, out: str | Path, *, name: str | None = None, train_data: Any = None, val_data: Any = None,
                 test_data: Any = None, task: str = "auto", seed: int = 0):
        super().__init__(clean_feed=None)
        if name is not None:
            rundir.check_run_name(name, "name")
        self.out = rundir.check_out_dir(Path(out), "out")
        if train_data is None:
            raise BadInputError("train_data is required: pass train_data=(x, y), the arrays model.fit trains on.")
        self.train_data = _pair(train_data, "train_data")
        self.val_data = None if val_data is None else _pair(val_data, "val_data")
        self.test_data = None if test_data is None else _pair(test_data, "test_data")
        if task not in _TASK_CHOICES:
            raise BadInputError(f"task must be one of {', '.join(_TASK_CHOICES)}. Received: task={task!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise BadInputError(f"seed must be an integer >= 0. Received: seed={seed!r}.")
        self.name, self.task, self.seed = name, task, seed
        self.run_dir: Path | None = None  # the run directory of the latest fit
        self._fit: SimpleNamespace | None = None  # what the fit in progress needs; None between fits

    # ---- a fit begins: checks first, then the run directory

    def on_train_begin(self, logs=None):
        self._abandon("a new model.fit began with this RunRecorder before the previous one ended")
        self.run_dir = None
        early = modelinfo.find_early_stopping(self)  # first: it reads the CallbackList that calls us
        model, (x, y) = self.model, self.train_data
        for key, data in (("train_data", self.train_data), ("val_data", self.val_data), ("test_data", self.test_data)):
            if data is not None:
                self._check_input(data[0], key)
        task, n_classes = modelinfo.infer_task(model, self.task, modelinfo.output_units(model, x))
        rows = np.sort(np.random.default_rng(self.seed).choice(len(x), size=min(CLEAN_SUBSET_ROWS, len(x)), replace=False))
        self.clean_feed = Feeder(self.seed).clean_batch(x[rows], y[rows])
        try:
            probe = clean_metrics(model, self.clean_feed)  # the clean metrics of epoch 0: do the data fit the model?
        except Exception as exc:  # Keras raises many types for arrays that do not fit a model
            reason = (str(exc).strip().splitlines() or [""])[0][:300]
            raise BadInputError(
                f"train_data does not fit the model: Keras could not evaluate it ({type(exc).__name__}: {reason}). "
                f"Pass train_data=(x, y), the arrays model.fit trains on."
            ) from None
        logged, metric = modelinfo.task_metric(probe, task)
        self.rows = []
        self._fit = SimpleNamespace(task=task, n_classes=n_classes, logged=logged, metric=metric, early=early,
                                    n_clean=len(rows), penalty=modelinfo.weight_penalty(model),
                                    started=time.perf_counter(), test_fingerprint=None)
        self._open_run_dir()

    def _check_input(self, x: np.ndarray, key: str) -> None:
        try:
            shape = self.model.input_shape
        except (AttributeError, ValueError):  # a subclassed or not yet built model: the probe checks instead
            return
        if isinstance(shape, list | dict):
            raise BadInputError(f"RunRecorder records a model with one input; this model has {len(shape)}.")
        expected = tuple(shape[1:])
        if len(expected) != x.ndim - 1 or any(e is not None and e != a for e, a in zip(expected, x.shape[1:], strict=True)):
            raise BadInputError(
                f"{key}: x has rows of shape {tuple(x.shape[1:])}, but the model's input takes "
                f"{tuple('None' if e is None else e for e in expected)}. Pass the arrays model.fit uses."
            )

    def _open_run_dir(self) -> None:
        """The run directory and its first files (config.yaml, status running, environment, test split)."""
        name = self.name or "".join(c if c.isalnum() or c in "._-" else "_" for c in self.model.name).strip("._-")
        self._fit.name = rundir.check_run_name(name or "recorded", "name")
        run = rundir.new_run_dir(self.out, self._fit.name)
        self._fit.env = {**environment_info("auto"), "recorded": True}
        try:
            rundir.atomic_write_text(run / rundir.CONFIG, self._config_yaml())
            rundir.write_status(run, "running")
            rundir.atomic_write_json(run / rundir.ENVIRONMENT, self._fit.env)
            if self.test_data is not None:
                self._fit.test_fingerprint = write_test_split(run, *self.test_data)
        except OSError as exc:
            rundir.discard_run_dir(run, created=True)
            self._fit = None
            raise BadInputError(
                f"out {self.out}: cannot write the run directory's first files ({exc.strerror or exc}: disk full "
                f"or not writable?); nothing was kept. Free space or choose another out."
            ) from None
        self.run_dir = run
        atexit.register(self._abandon, "the Python process ended before model.fit finished (on_train_end never "
                        "ran: training raised an error or was interrupted)")

    def _config_yaml(self) -> str:
        """config.yaml: what this run was, in the spec's words; not a spec `regcli train` can rerun."""
        import yaml

        from regcli.diagnosis import DEFAULTS

        model, fit = self.model, self._fit
        config = {
            "recorded": {"by": RECORDER, "reproducible": False, "model_class": type(model).__name__,
                         "loss": modelinfo.loss_name(model.loss)},
            "name": fit.name,
            "backend": keras.backend.backend(),
            "data": {"n_train": len(self.train_data[0]), "n_val": None if self.val_data is None else len(self.val_data[0]),
                     "n_test": 0 if self.test_data is None else len(self.test_data[0]), "clean_rows": fit.n_clean,
                     "clean_seed": self.seed, "test_split": rundir.TEST_SPLIT if self.test_data is not None else None},
            "model": {"task": fit.task, "layers": [modelinfo.describe_layer(layer) for layer in model.layers]},
            "training": {"epochs": self.params.get("epochs"), "steps_per_epoch": self.params.get("steps"),
                         **modelinfo.describe_optimizer(model.optimizer),
                         "early_stopping": modelinfo.describe_early_stopping(fit.early)},
            "diagnosis": {key: DEFAULTS[key] for key in ("bias_tolerance", "gap_tolerance")} | {"target_error": None},
        }
        header = (f"# Recorded by {RECORDER} from a model.fit in your own code: this describes that run for\n"
                  f"# regcli's read commands; it is not a spec `regcli train` can rerun. See docs/recorder.md.\n")
        return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=120)

    # ---- every epoch: one history row

    def on_epoch_begin(self, epoch, logs=None):
        if self._fit is not None and epoch != len(self.rows):
            self._discard()
            raise BadInputError(
                f"RunRecorder records a model.fit from its first epoch; this one starts at epoch {epoch + 1} "
                f"(initial_epoch={epoch}). Fit without initial_epoch, or give each stage its own model.fit."
            )
        super().on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._fit is None:
            return
        logs = logs if logs is not None else {}
        super().on_epoch_end(epoch, logs)  # the row: Keras's logs, clean_* (inference mode), lr, seconds
        row = self.rows[-1]
        if "val_loss" not in row:
            self._discard()
            raise BadInputError(
                "RunRecorder needs a validation loss every epoch, and this model.fit logs none: pass "
                "validation_data=(x_val, y_val) (or validation_split) to model.fit, with validation_freq=1."
            )
        extra = self._penalty_free(row)
        row.update(extra)
        logs.update(extra)  # a later EarlyStopping may monitor val_data_loss
        try:
            rundir.write_csv(self.run_dir / rundir.HISTORY, self.rows, history_columns(self.rows), durable=False)
        except OSError as exc:
            self._abandon(f"could not write history.csv: {exc}")
            raise RunFailedError(f"RunRecorder could not write {self.run_dir / rundir.HISTORY}: {exc.strerror or exc}.") from None

    def _penalty_free(self, row: dict[str, float]) -> dict[str, float]:
        """data_loss, val_data_loss, clean_data_loss and regcli's metric names for this epoch's row.

        `val_loss` and `clean_loss` are measured with the epoch's final weights, so the penalty
        they hold is that of those weights. `loss` is a running mean over the epoch's steps, whose
        weights (and penalty) change step by step: its penalty is taken as the mean of the penalty
        before the first step and after the last.
        """
        fit = self._fit
        penalty = modelinfo.weight_penalty(self.model)
        extra = {"data_loss": row["loss"] - (fit.penalty + penalty) / 2.0, "val_data_loss": row["val_loss"] - penalty}
        if "clean_loss" in row:
            extra["clean_data_loss"] = row["clean_loss"] - penalty
        fit.penalty = penalty
        if fit.logged != fit.metric:  # e.g. binary_accuracy, also as regcli's accuracy
            for prefix in ("", "val_", "clean_"):
                if prefix + fit.logged in row:
                    extra[prefix + fit.metric] = row[prefix + fit.logged]
        return extra

    # ---- the fit ends: the shipped weights and every other file

    def on_train_end(self, logs=None):
        if self._fit is None:
            return
        try:
            self._write_results()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                self._abandon("interrupted by the user (Ctrl-C) while writing the results", "interrupted")
                raise
            self._abandon(f"could not write the results: {type(exc).__name__}: {exc}")
            if isinstance(exc, OSError):
                raise RunFailedError(f"RunRecorder could not write the results of {self.run_dir}: {exc.strerror or exc}.") from None
            raise
        self._fit = None
        atexit.unregister(self._abandon)

    def _summary(self) -> tuple[dict[str, Any], bool]:
        """summary.json of the shipped weights (regcli's `finish`), and whether the run diverged."""
        from regcli.training.fit import Fitted, finish, with_error

        model, fit, early = self.model, self._fit, self._fit.early
        if early is not None and early.restore_best_weights and early.best_weights is not None:
            model.set_weights(early.best_weights)  # EarlyStopping's own restore, whichever of us ends first
        train = modelinfo.evaluate(model, *self.train_data, logged=fit.logged, metric=fit.metric)
        training = SimpleNamespace(epochs=self.params.get("epochs"), early_stopping=SimpleNamespace(
            monitor=early.monitor if early is not None else "val_loss",
            restore_best_weights=bool(early is not None and early.restore_best_weights)))
        seconds = time.perf_counter() - fit.started
        result = finish(Fitted(model, self.rows, early, training, seconds, {}, {"train": train, "val": {}}), None, None)
        summary = result.summary
        shipped = self.rows[summary["shipped_epoch"] - 1] if 0 < summary["shipped_epoch"] <= len(self.rows) else {}
        summary["metrics"]["val"] = with_error({k[4:]: v for k, v in shipped.items() if k.startswith("val_")}, fit.metric)
        penalty = modelinfo.weight_penalty(model)  # every trainable weight's regularizer, as the history has it
        loss = train.get("loss", math.nan)
        summary.update(penalty=penalty, penalty_share=penalty / loss if math.isfinite(loss) and loss > 0 else None,
                       activity_penalty=None)  # call-time penalties stay in the recorded data losses (docs/recorder.md)
        summary.update(self._facts(seconds))
        return summary, result.diverged

    def _facts(self, seconds: float) -> dict[str, Any]:
        """What summary.json says about the run beyond its training: sizes, data, where it came from."""
        fit, (x, y) = self._fit, self.train_data
        n_val = None if self.val_data is None else len(self.val_data[0])
        baseline = None if self.val_data is None else baseline_error(y, self.val_data[1], fit.task, fit.n_classes)
        return dict(
            run_name=self.run_dir.name, task=fit.task, n_classes=fit.n_classes, n_train=len(x), n_val=n_val,
            # seed: the fit's own seeding is the user's code; the recorder's seed only picks the clean subset.
            n_test=0 if self.test_data is None else len(self.test_data[0]), seconds=seconds, seed=None,
            backend=keras.backend.backend(), smoke=False, baseline_val_error=baseline, target_mean=None,
            target_std=None, data={"test_fingerprint": fit.test_fingerprint, "n_clean": fit.n_clean, "clean_seed": self.seed},
            recorded={"by": RECORDER, "metric": fit.logged, "task_metric": fit.metric},
        )

    def _write_results(self) -> None:
        """history.csv, model.keras, summary.json, the diagnosis, the curves; then the final status."""
        from regcli import plots
        from regcli.diagnosis import diagnose, render_markdown
        from regcli.training.fit import save_model

        run = self.run_dir
        summary, diverged = self._summary()
        state = "diverged" if diverged else "completed"
        summary.update(state=state, device=self._fit.env["device"])
        rundir.write_csv(run / rundir.HISTORY, self.rows, history_columns(self.rows))
        save_model(self.model, run / rundir.MODEL)
        rundir.atomic_write_json(run / rundir.SUMMARY, summary)
        files = rundir.RunFiles(run)  # the diagnosis reads the files back, as `regcli diagnose` does
        diagnosis = diagnose(files.history, files.summary, files.config, run_dir=str(run))
        rundir.atomic_write_json(run / rundir.DIAGNOSIS_JSON, diagnosis)
        rundir.atomic_write_text(run / rundir.DIAGNOSIS_MD, render_markdown(diagnosis, files.summary))
        plots.learning_curves(files.history, files.summary, run / rundir.CURVES)
        rundir.write_status(run, state, "the loss became NaN or infinite" if diverged else None)

    # ---- a fit that did not end: status.json says so

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        """`with RunRecorder(...) as recorder: model.fit(...)` records an exception that stopped the fit."""
        if exc is not None:
            state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            self._abandon(f"model.fit raised {type(exc).__name__}: {exc}" if state == "failed" else
                          "interrupted by the user (Ctrl-C)", state)
        return False

    def _abandon(self, error: str, state: str = "failed") -> None:
        """Marks the fit in progress `state` (its on_train_end will not come); nothing when none is."""
        if self._fit is None or self.run_dir is None:
            return
        self._fit = None
        atexit.unregister(self._abandon)
        try:
            rundir.write_status(self.run_dir, state, error)
        except OSError:
            pass  # the directory is gone or read-only: its status stays `running`, and `ls` says killed

    def _discard(self) -> None:
        """Removes the run directory of a fit refused as bad input after it was created."""
        if self.run_dir is not None:
            rundir.discard_run_dir(self.run_dir, created=True)
        self._fit, self.run_dir = None, None
        atexit.unregister(self._abandon)
