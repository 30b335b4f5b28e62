"""What `regcli validate` says about the data: the checks `train` makes, without training.

A data file (.csv, .parquet, .npz) is loaded, encoded, imputed and split exactly as `train`
does it (`load_dataset`), so a file that train would refuse fails validation with the same
message, exit code 2. A built-in source is checked from its shape alone, so validating a
10**6-row generator stays instant: its task against `model.task` and its split sizes against
the fractions, without scikit-learn. An image folder is listed, not decoded: its classes, the
image files of each, the memory its images would take, and its split sizes (stratified as
train splits it). Nothing here imports TensorFlow or Keras.

Example:
    >>> for line in data_report([spec]):
    ...     print(line)
    data: data.path 'houses.csv': 300 rows, 8 features; binary (2 classes: no, yes); 180 train / 60 val / 60 test
    one-hot encoded: region (4 levels)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from regcli.data import load_dataset
from regcli.data.images import scan_folder
from regcli.data.raw import Raw, resolve_task
from regcli.data.sources import source_shape
from regcli.data.split import split_rows, split_sizes
from regcli.head import explicit_head, task_head

__all__ = ["check_data", "data_report", "describe_data"]


def check_data(data: Any, *, seed: int, task: str = "auto") -> dict[str, Any]:
    """The `info` that train records for a data file, or its shape-only part for a built-in
    source or an image folder.

    Raises:
        DataError: train would refuse the data (exit code 2).
    """
    if getattr(data, "image_size", None) is not None:
        return _folder_info(data, seed, task)
    if data.path is not None:
        return load_dataset(data, seed=seed, task=task).info
    return _builtin_info(data, task)


def data_report(specs: Iterable[Any]) -> list[str]:
    """Check the data of every distinct `data:` block of `specs` (one spec, or a sweep's trials).

    A block is checked once, with the first seed that uses it; explicit `model.layers` are
    checked against the task's output layer (`regcli.head`). Returns the lines describing
    the first block, for stderr.
    """
    infos: dict[str, dict[str, Any]] = {}
    for spec in specs:
        block = {k: v for k, v in spec.data.model_dump(mode="json").items() if k != "split_seed"}
        key = json.dumps([block, spec.model.task], sort_keys=True)
        if key not in infos:
            infos[key] = check_data(spec.data, seed=spec.seed, task=spec.model.task)
        if spec.model.layers is not None:  # does model.layers end in this task's output layer? (train's check)
            info = infos[key]
            explicit_head(list(spec.model.layers), task_head(info["task"], info["n_classes"]))
    if not infos:
        return []
    lines = describe_data(next(iter(infos.values())))
    if len(infos) > 1:
        lines.append(f"({len(infos)} different data: blocks among the trials, each checked; the first is shown)")
    return lines


def describe_data(info: dict[str, Any]) -> list[str]:
    """A few lines on `info`: rows, features, task and classes, split sizes, one-hot and imputed columns."""
    where = f"data.path '{info['path']}'" if info.get("path") else f"data.source '{info['source']}'"
    task = info["task"]
    if task != "regression":
        task += f" ({info['n_classes']} classes: {_shorten(info['class_names'])})"
    size = f"{info['n_rows']:,} rows, {info['n_features']:,} features"
    note = "" if info.get("path") else " (built-in source: shapes checked, not loaded)"
    if info.get("color_mode"):
        height, width, channels = info["image_shape"]
        size = f"{info['n_rows']:,} images, {height}x{width} {info['color_mode']} ({info['n_features']:,} features)"
        note = " (image folder: files listed, not decoded)"
    lines = [
        f"data: {where}: {size}; {task}; "
        f"{info['n_train']:,} train / {info['n_val']:,} val / {info['n_test']:,} test{note}"
    ]
    if info.get("one_hot"):
        encoded = (f"{name} ({levels} levels)" for name, levels in info["one_hot"].items())
        lines.append(f"one-hot encoded: {', '.join(encoded)}")
    if info.get("imputed"):
        imputed = (_describe_imputed(name, entry) for name, entry in info["imputed"].items())
        lines.append(f"imputed (data.impute: {info['impute']}, fitted on the training split only): {'; '.join(imputed)}")
    return lines


def _describe_imputed(name: str, entry: dict[str, Any]) -> str:
    counts = f"train {entry['train']}, val {entry['val']}, test {entry['test']}"
    n = entry["train"] + entry["val"] + entry["test"]
    values = f"{n} value" if n == 1 else f"{n} values"
    if entry["strategy"] == "missing_level":
        return f"{name}: {values} as a '{entry['value']}' level ({counts})"
    return f"{name}: {values} set to {entry['value']:.6g} ({counts})"


def _shorten(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f", ... ({len(names)} in all)" if len(names) > shown else "")


def _builtin_info(data: Any, requested: str) -> dict[str, Any]:
    """Task and split sizes of a built-in source, from its shape: what train checks before any row is drawn."""
    n_rows, n_features, class_names = source_shape(data.source, dict(data.params or {}))
    where = f"data.source '{data.source}'"
    classification = class_names is not None
    y = np.arange(len(class_names)) if classification else np.zeros(1)
    task, names = _task(y, n_features, class_names, where, requested)
    sizes = split_sizes(n_rows, data, len(names), where)
    return {
        **_shape_info(data, task, names, n_rows, n_features),
        "source": data.source,
        "path": None,
        "n_train": sizes.train,
        "n_val": sizes.val,
        "n_test": sizes.test,
    }


def _folder_info(data: Any, seed: int, requested: str) -> dict[str, Any]:
    """Classes, task and split sizes of an image folder, from its file listing: no image is decoded.

    The split is train's own (stratified rows of the class labels), so a class too small to
    stratify or a too small train_fraction is refused here with train's message.
    """
    folder = scan_folder(Path(data.path), tuple(data.image_size), data.color_mode or "rgb")
    n_features = int(np.prod(folder.image_shape))
    task, names = _task(folder.labels, n_features, folder.class_names, folder.where, requested)
    split_seed = int(data.split_seed if data.split_seed is not None else seed)
    labels = folder.labels if data.stratify else None
    rows = split_rows(len(folder.labels), data, labels, names, split_seed, folder.where)
    return {
        **_shape_info(data, task, names, len(folder.labels), n_features),
        "source": None,
        "path": str(data.path),
        "image_shape": list(folder.image_shape),
        "color_mode": data.color_mode or "rgb",
        "n_train": len(rows.train),
        "n_val": len(rows.val),
        "n_test": len(rows.test),
    }


def _task(
    y: np.ndarray, n_features: int, class_names: list[str] | None, where: str, requested: str
) -> tuple[str, list[str]]:
    """(task, class names) of targets known without loading: `resolve_task` on an empty `Raw`."""
    classification = class_names is not None
    raw = Raw(
        x=np.empty((0, n_features)),
        y=y,
        feature_names=[],
        where=where,
        origin={},
        kind="classification" if classification else "regression",
        class_names=class_names,
    )
    task, _, names = resolve_task(raw, requested)
    return task, names


def _shape_info(data: Any, task: str, names: list[str], n_rows: int, n_features: int) -> dict[str, Any]:
    """The info entries every shape-only check gives: task, classes, rows, features, no encoding."""
    return {
        "task": task,
        "n_classes": len(names) if names else 1,
        "class_names": names,
        "n_rows": n_rows,
        "n_features": n_features,
        "one_hot": {},
        "impute": str(data.impute),
        "imputed": {},
    }
