"""The task head: what the output layer of a task is, and whether explicit `layers:` end in one.

Keras users end their model with its output layer: `Dense(1, activation="sigmoid")` for a
binary task, `Dense(n_classes, activation="softmax")`, `Dense(1)` for regression. regcli
builds `model.layers` as written, so it must not add a second head after theirs:

- a trailing dense layer whose units equal the task's outputs IS the output layer (its
  activation must be the task's: sigmoid, softmax; for regression any but softmax);
- a trailing dense layer with no activation followed by `{type: activation}` with the
  task's activation is the same head written in two layers (Keras users write both);
- otherwise regcli adds the head; a trailing sigmoid/softmax that is not a head (wrong
  units, or an activation layer after a hidden layer) is refused: it would squash a
  hidden layer and then feed it to a second output layer.

No Keras here: `regcli validate` reads the data and checks the head without a backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regcli.errors import BadInputError

# Activations only an output layer has: on a hidden layer they squash it into (0, 1).
HEAD_ONLY_ACTIVATIONS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class TaskHead:
    """What a task needs from Keras: output units and activation, loss, metrics."""

    task: str
    units: int
    activation: str | None
    metric_name: str  # "accuracy" or "mae": the column name in history.csv


def task_head(task: str, n_classes: int) -> TaskHead:
    """Returns the output layer shape and metric name for `task`."""
    if task == "binary":
        return TaskHead(task, 1, "sigmoid", "accuracy")
    if task == "multiclass":
        return TaskHead(task, n_classes, "softmax", "accuracy")
    return TaskHead(task, 1, None, "mae")


def _activation(entry: Any) -> str | None:
    value = getattr(entry, "activation", None)
    return None if value in (None, "linear") else value


def _fits(activation: str | None, head: TaskHead) -> bool:
    """A classification head needs the task's activation; a regression head any but softmax
    (a one-unit softmax is the constant 1): Keras users end positive targets with relu."""
    if head.task == "regression":
        return activation != "softmax"
    return activation == head.activation


def _expected(head: TaskHead) -> str:
    if head.task == "regression":
        return "no activation (linear) or another one than softmax"
    return f"activation: {head.activation}"


def explicit_head(entries: list[Any], head: TaskHead) -> int:
    """How many trailing entries of `model.layers` are the output layer: 0 (regcli adds it), 1 or 2.

    Raises:
        BadInputError: the layers end in what looks like an output layer but is not this
            task's (units or activation), naming `model.layers.N`.
    """
    if not entries:
        return 0
    last, n = entries[-1], len(entries) - 1
    if last.type == "dense" and last.units == head.units:
        if not _fits(_activation(last), head):
            raise BadInputError(
                f"model.layers.{n} is the output layer (a dense layer with units {last.units}, the "
                f"{head.task} task's outputs, ends the model), so it needs {_expected(head)}. Received: "
                f"activation={last.activation!r}. Write {{type: dense, units: {head.units}"
                f"{', activation: ' + head.activation if head.activation else ''}}}, or end model.layers with a "
                f"hidden layer and regcli adds the output layer."
            )
        return 1
    if last.type == "activation" and last.activation in HEAD_ONLY_ACTIVATIONS:
        before = entries[-2] if len(entries) > 1 else None
        if (before is not None and before.type == "dense" and before.units == head.units
                and _activation(before) is None and _fits(last.activation, head)):
            return 2
        raise BadInputError(_not_a_head(n, f"an activation layer with {last.activation}", head))
    if last.type == "dense" and _activation(last) in HEAD_ONLY_ACTIVATIONS:
        units = f"{last.units} unit{'' if last.units == 1 else 's'}"
        raise BadInputError(_not_a_head(n, f"a dense layer with {units} and {last.activation}", head))
    return 0


def _not_a_head(n: int, what: str, head: TaskHead) -> str:
    return (
        f"model.layers.{n} is {what}, an activation only an output layer has, but it is not this "
        f"{head.task} task's output layer, which is a dense layer with units {head.units} and "
        f"{_expected(head)}. Make model.layers.{n} that output layer, or end model.layers with a hidden "
        f"layer (e.g. activation: relu) and regcli adds the output layer."
    )
