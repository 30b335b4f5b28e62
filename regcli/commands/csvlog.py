"""`regcli diagnose history.csv`: a Keras CSVLogger file, read and diagnosed from its curves alone.

`keras.callbacks.CSVLogger` writes one row per epoch: `epoch` (0-based), `loss`, `val_loss`, and each
compiled metric beside its `val_` twin, columns sorted by name, `NA` in a cell whose key the epoch's
logs lacked (the `val_` cells of the epochs `validation_freq` skipped). This module reads such a file
with the csv module (no pandas parser, no TensorFlow), checks it once, every problem one BadInputError
(exit code 2) naming the file, the line and the column, and hands the curves to
`regcli.diagnosis.curves_only`, which says what curves alone cannot tell. Nothing is written: the
diagnosis is printed (or `--json`), never saved next to the user's file.

Example:

>>> log = read_csv_log(Path("history.csv"))  # doctest: +SKIP
>>> log.metric, log.column, len(log.history)  # doctest: +SKIP
('accuracy', 'binary_accuracy', 20)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from regcli import rundir
from regcli.errors import BadInputError
from regcli.spec.layers import Strict
from regcli.spec.models import DiagnosisSpec
from regcli.spec.overrides import parse_override, set_dotted
from regcli.spec.problems import translate

# Keras's names for the metric the diagnosis reads, most common first: metrics=["accuracy"] logs
# `accuracy`; metrics=[keras.metrics.BinaryAccuracy()] logs `binary_accuracy`; "mae" logs `mae`.
ACCURACY_COLUMNS = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy")
MAE_COLUMNS = ("mae", "mean_absolute_error")
TASKS = ("auto", "classification", "regression")
NA = "NA"  # CSVLogger's cell for a key missing from an epoch's logs
DELIMITERS = (",", "\t", ";")  # CSVLogger(separator=...): the first of these that the header holds
SUFFIXES = (".csv", ".log", ".tsv", ".txt")  # a path that does not exist but names a log file
COMPILE_HINT = 'Add metrics=["accuracy"] (classification) or metrics=["mae"] (regression) to model.compile'
VALIDATION_HINT = "Pass validation_data=(x_val, y_val) or validation_split=0.2 to model.fit"


@dataclass(frozen=True)
class LogOptions:
    """What a CSVLogger file cannot tell, given on the command line; the same for every file passed.

    Args:
        task: "classification", "regression", or "auto": from the columns (accuracy or mae).
            Defaults to `"auto"`.
        n_train: Rows of the training split, so that the training error carries its standard error.
            Defaults to `None` (unknown: no standard error).
        n_val: Rows of the validation split. Defaults to `None`.
        diagnosis: `diagnosis:` thresholds from `--set diagnosis.KEY=VALUE`, validated by
            `DiagnosisSpec`; the keys not set keep its defaults. Defaults to `{}`.
    """

    task: str = "auto"
    n_train: int | None = None
    n_val: int | None = None
    diagnosis: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, task: str = "auto", n_train: int | None = None, n_val: int | None = None, overrides: Sequence[str] = ()
    ) -> LogOptions:
        """The options as typed; a wrong task or a malformed, unknown or out-of-range --set is bad input."""
        if task not in TASKS:
            raise BadInputError(f"--task must be one of {', '.join(TASKS)}. Received: {task!r}.")
        return cls(task, n_train, n_val, _thresholds(overrides or ()))

    def given(self) -> list[str]:
        """The flags of the options that were passed."""
        passed = {
            "--task": self.task != "auto",
            "--n-train": self.n_train is not None,
            "--n-val": self.n_val is not None,
            "--set": bool(self.diagnosis),
        }
        return [flag for flag, on in passed.items() if on]


class _Thresholds(Strict):
    """`--set diagnosis.KEY=VALUE`, validated where a spec's diagnosis section is."""

    diagnosis: DiagnosisSpec = DiagnosisSpec()


def _thresholds(overrides: Sequence[str]) -> dict[str, Any]:
    """The `diagnosis:` keys set by `--set`, validated; other keys are refused."""
    raw: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        if not key.startswith("diagnosis.") or key.count(".") != 1:
            allowed = ", ".join(f"diagnosis.{name}" for name in DiagnosisSpec.model_fields)
            raise BadInputError(
                f"diagnose --set takes the diagnosis thresholds of a CSVLogger file: {allowed}. Received: "
                f"{key}. A run directory's thresholds are in its config.yaml."
            )
        raw = set_dotted(raw, key, value)
    try:
        return _Thresholds.model_validate(raw).diagnosis.model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise translate(exc, raw, "--set") from None


def is_csv_log(path: Path) -> bool:
    """Whether `diagnose` reads `path` as a CSVLogger file: a file, or a missing path named like one."""
    path = Path(path)
    return path.is_file() or (not path.exists() and path.suffix.lower() in SUFFIXES)


def check_log_options(paths: Sequence[Path], options: LogOptions, replay: str | None) -> None:
    """--replay needs a run directory; the CSVLogger options need a CSVLogger file among `paths`."""
    logs = [Path(p) for p in paths if is_csv_log(Path(p))]
    if logs and replay:
        raise BadInputError(
            f"--replay replays early stopping against a run's own settings and shipped epoch, which the "
            f"CSVLogger file {logs[0]} does not record. Leave out --replay, or pass the CSVLogger files to a "
            "diagnose command of their own."
        )
    given = options.given()
    if given and not logs:
        raise BadInputError(
            f"{', '.join(given)} describe{'s' if len(given) == 1 else ''} a Keras CSVLogger file, and none was "
            "passed: a run directory records its task, split sizes and diagnosis thresholds itself "
            f"(summary.json, config.yaml). Leave {'it' if len(given) == 1 else 'them'} out."
        )


@dataclass(frozen=True)
class CsvLog:
    """A CSVLogger file, read and checked.

    `history` holds `epoch` (1-based: CSVLogger's epoch 0 is epoch 1), `loss`, `val_loss`, and the
    task's metric under its regcli name (`accuracy`/`val_accuracy` or `mae`/`val_mae`), one row per
    epoch that ran validation; `column` is the metric's name in the file (`binary_accuracy`, say).
    """

    path: Path
    history: pd.DataFrame
    metric: str
    column: str
    epochs_without_validation: int = 0


def read_csv_log(path: Path, task: str = "auto") -> CsvLog:
    """Reads and checks a CSVLogger file.

    Raises:
        BadInputError (exit code 2): the path is missing, not text, empty, not a CSVLogger file, lacks
            val_loss or the task's metric, or holds a non-numeric cell, a duplicate epoch or a NaN
            metric beside finite losses. A NaN or inf loss is not an error: the training diverged.
    """
    path = Path(path)
    header, rows = _rows(path, _text(path))
    metric, column = _metric_column(path, header, task)
    names = {"loss": "loss", "val_loss": "val_loss", metric: column, f"val_{metric}": f"val_{column}"}
    epochs, table = _parse(path, header, rows, names)
    _check_epochs(path, epochs, [line for line, _ in rows])
    keep = _validated_rows(path, table, names, [line for line, _ in rows])
    history = pd.DataFrame(
        {"epoch": [epochs[i] + 1 for i in keep], **{name: [table[name][i] for i in keep] for name in names}}
    )
    return CsvLog(path, history, metric, column, len(rows) - len(keep))


def _text(path: Path) -> str:
    """The file's text; a clear error for a missing, binary or empty file, or a run's own history.csv."""
    if not path.exists():
        raise BadInputError(
            f"{path} does not exist. Pass the file keras.callbacks.CSVLogger(filename) wrote, or a run directory."
        )
    if path.name == rundir.HISTORY and (path.parent / rundir.STATUS).is_file():
        raise BadInputError(
            f"{path} is the history.csv of the regcli run directory {path.parent}: diagnose the directory "
            f"instead (regcli diagnose {path.parent}), which also holds the clean training curve and the "
            "penalty split this file alone lacks."
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(
            f"{path} is not a text file, so it is not a Keras CSVLogger file. Pass the file "
            "keras.callbacks.CSVLogger(filename) wrote during model.fit, or a run directory."
        ) from None
    except OSError as exc:
        raise BadInputError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if not text.strip():
        raise BadInputError(
            f"{path} is empty: CSVLogger writes its header and first row when the first epoch ends, so no epoch "
            "of this training finished. Pass the file of a training that ran at least one epoch."
        )
    return text


def _rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(the column names, [(line number, cells)] of the non-blank rows), each row as long as the header."""
    first = text.splitlines()[0]
    delimiter = next((d for d in DELIMITERS if d in first), ",")
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    if "epoch" not in header:
        shown = first if len(first) <= 80 else first[:77] + "..."
        raise BadInputError(
            f"{path} is not a Keras CSVLogger file: its first line ({shown!r}) has no epoch column. Pass the "
            "file keras.callbacks.CSVLogger(filename) wrote during model.fit, or a run directory."
        )
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise BadInputError(f"{path} names the column {twice[0]} twice in its header: it is not a CSVLogger file.")
    rows = [(reader.line_num, cells) for cells in reader if any(cell.strip() for cell in cells)]
    if not rows:
        raise BadInputError(
            f"{path} has a header but no epochs: no row follows the column names. Pass the file of a training "
            "that ran at least one epoch."
        )
    for line, cells in rows:
        if len(cells) != len(header):
            raise BadInputError(
                f"{path} line {line} has {len(cells)} cells where the header has {len(header)}: the file is "
                "truncated, or a training with other metrics was appended to it (CSVLogger(append=True)). "
                "Keep one training per file."
            )
    return header, rows


def _metric_column(path: Path, header: Sequence[str], task: str) -> tuple[str, str]:
    """("accuracy" or "mae", the metric's name in the file), from the columns or from --task."""
    for name in ("loss", "val_loss"):
        if name not in header:
            hint = f" {VALIDATION_HINT}, and CSVLogger records val_loss." if name == "val_loss" else ""
            raise BadInputError(
                f"{path} has no {name} column (columns: {', '.join(header)}), so there is no "
                f"{'validation' if name == 'val_loss' else 'training'} curve to diagnose.{hint}"
            )
    accuracy = next((c for c in ACCURACY_COLUMNS if c in header or f"val_{c}" in header), None)
    mae = next((c for c in MAE_COLUMNS if c in header or f"val_{c}" in header), None)
    if task == "auto" and accuracy and mae:
        raise BadInputError(
            f"{path} records both {accuracy} and {mae}, so the task is ambiguous. Pass --task classification "
            f"(error = 1 - {accuracy}) or --task regression (error = {mae})."
        )
    if task == "auto" and not (accuracy or mae):
        raise BadInputError(
            f"{path} records no accuracy or mae column (columns: {', '.join(header)}), so the diagnosis has no "
            f"error to compare: it reads 1 - accuracy or the mae, not the loss. {COMPILE_HINT} and train again."
        )
    metric = {"classification": "accuracy", "regression": "mae"}.get(task) or ("accuracy" if accuracy else "mae")
    column = accuracy if metric == "accuracy" else mae
    if column is None:
        other = "regression" if task == "classification" else "classification"
        raise BadInputError(
            f"--task {task} needs {'an accuracy' if metric == 'accuracy' else 'an mae'} column, and {path} has "
            f"none (columns: {', '.join(header)}). Add metrics=[\"{metric}\"] to model.compile, or pass "
            f"--task {other}."
        )
    for name in (column, f"val_{column}"):
        if name not in header:
            raise BadInputError(
                f"{path} has no {name} column beside {column if name != column else f'val_{column}'}: the "
                f"diagnosis compares the training and the validation {column}."
            )
    return metric, column


def _parse(
    path: Path, header: Sequence[str], rows: Sequence[tuple[int, list[str]]], names: Mapping[str, str]
) -> tuple[list[int], dict[str, list[float | None]]]:
    """(the epochs, {name: one float per row, None for NA}) of the columns the diagnosis reads."""
    at = {name: header.index(column) for name, column in names.items()}
    where = header.index("epoch")
    epochs, table = [], {name: [] for name in names}
    for line, cells in rows:
        try:
            epochs.append(int(cells[where].strip()))
        except ValueError:
            raise BadInputError(
                f"{path} line {line}, column epoch: {cells[where]!r} is not a whole number. CSVLogger writes "
                "the 0-based epoch index there."
            ) from None
        for name, index in at.items():
            table[name].append(_number(path, line, names[name], cells[index]))
    return epochs, table


def _number(path: Path, line: int, column: str, cell: str) -> float | None:
    """One cell as a float ("nan" and "inf" included: a diverged epoch); None for CSVLogger's NA."""
    text = cell.strip()
    if text == NA:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadInputError(
            f"{path} line {line}, column {column}: {cell!r} is not a number. A CSVLogger file holds one number "
            "per cell; fix or remove that line."
        ) from None


def _check_epochs(path: Path, epochs: Sequence[int], lines: Sequence[int]) -> None:
    """Each epoch once, increasing down the file, as CSVLogger writes them."""
    seen: dict[int, int] = {}
    for i, (epoch, line) in enumerate(zip(epochs, lines, strict=True)):
        if epoch in seen:
            raise BadInputError(
                f"{path} has epoch {epoch} twice (lines {seen[epoch]} and {line}): CSVLogger(append=True) "
                "appended a second training to the same file. Keep one training per file: delete the other "
                "training's lines, or log each training to a file of its own."
            )
        if i and epoch < epochs[i - 1]:
            raise BadInputError(
                f"{path} line {line}: epoch {epoch} comes after epoch {epochs[i - 1]}. CSVLogger writes the "
                "epochs in increasing order; sort the lines or keep one training per file."
            )
        seen[epoch] = line


def _validated_rows(
    path: Path, table: Mapping[str, list[float | None]], names: Mapping[str, str], lines: Sequence[int]
) -> list[int]:
    """The rows that ran validation, each complete; a NaN metric beside finite losses is bad input."""
    keep = [i for i, value in enumerate(table["val_loss"]) if value is not None]
    if not keep:
        raise BadInputError(
            f"{path} has val_loss NA on every line: model.fit ran without validation data, so there is no "
            f"validation curve to diagnose. {VALIDATION_HINT}."
        )
    for i in keep:
        missing = next((name for name in names if table[name][i] is None), None)
        if missing is not None:
            raise BadInputError(
                f"{path} line {lines[i]}, column {names[missing]}: NA (not measured) on an epoch that has a "
                "val_loss. Fix or remove that line."
            )
        losses_finite = math.isfinite(table["loss"][i]) and math.isfinite(table["val_loss"][i])
        bad = next((name for name in names if not math.isfinite(table[name][i])), None)
        if losses_finite and bad is not None:
            raise BadInputError(
                f"{path} line {lines[i]}, column {names[bad]}: {table[bad][i]} while loss and val_loss are finite "
                f"there. model.fit logs a finite {names[bad]} wherever the loss is finite, so the line was edited "
                "or corrupted; fix or remove it."
            )
    return keep


def diagnose_csv_log(path: Path, options: LogOptions | None = None) -> dict[str, Any]:
    """`{"csv_log": path, "diagnosis": ...}` of one CSVLogger file, from its curves alone; writes nothing."""
    from regcli.diagnosis.curves_only import diagnose_curves

    options = options or LogOptions()
    log = read_csv_log(path, options.task)
    diagnosis = diagnose_curves(
        log.history,
        n_train=options.n_train,
        n_val=options.n_val,
        thresholds=options.diagnosis,
        name=str(log.path),
        column=log.column,
        epochs_without_validation=log.epochs_without_validation,
    )
    return {"csv_log": str(log.path), "diagnosis": diagnosis}
