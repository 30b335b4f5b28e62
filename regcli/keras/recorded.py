"""A `RunRecorder` run read back by `regcli test`: its stored test split and its own model.

A run that `regcli.keras.RunRecorder` recorded has no spec to rebuild its data from, and its
model.keras is the user's own architecture. So:

- the test split given as `test_data=` is stored in the run directory as `test_split.npz`
  (arrays `x` and `y`, read with `allow_pickle=False`) and fingerprinted in summary.json the
  way regcli fingerprints a spec's test split; the recorder never evaluates it, `regcli test`
  alone reads it (SPEC §5.5), and refuses a file whose fingerprint changed;
- model.keras is checked before Keras is imported (no archive member that could escape an
  extraction directory, no Lambda or other code object), then loaded with
  `keras.saving.load_model(..., safe_mode=True)` only when every custom class it names is
  registered in this process (`keras.saving.register_keras_serializable`): regcli never
  imports code that a run directory names.

No Keras at import time: `regcli test` checks everything it can before a backend is loaded.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from regcli import rundir
from regcli.errors import BadInputError, RunDirError
from regcli.modelfile import CODE_CLASSES, allowed_module, unsafe_member

RECORDER = "regcli.keras.RunRecorder"


def is_recorded(summary: Mapping[str, Any]) -> bool:
    """True for the summary.json of a run that `RunRecorder` wrote."""
    recorded = summary.get("recorded")
    return isinstance(recorded, Mapping) and recorded.get("by") == RECORDER


def no_test_split(run: Path) -> BadInputError:
    """The error for a recorded run that was given no `test_data`."""
    return BadInputError(
        f"{run} was recorded by regcli.keras.RunRecorder without test_data, so it holds no test split "
        f"and there is nothing to test. Pass test_data=(x_test, y_test) to RunRecorder and record the run "
        f"again; the recorder stores it in {rundir.TEST_SPLIT} for regcli test alone."
    )


def _fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    from regcli.data import fingerprint  # the one definition: a spec's test split's

    return fingerprint(x, y)


def write_test_split(run: Path, x: np.ndarray, y: np.ndarray) -> str:
    """Stores `(x, y)` as `<run>/test_split.npz` (atomically) and returns its fingerprint."""
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    rundir.atomic_write_bytes(Path(run) / rundir.TEST_SPLIT, buf.getvalue())
    return _fingerprint(x, y)


def read_test_split(run: Path, fingerprint: str) -> tuple[np.ndarray, np.ndarray]:
    """The stored test split; RunDirError when it is missing, unreadable or not what was recorded."""
    path = Path(run) / rundir.TEST_SPLIT
    if not path.is_file():
        raise RunDirError(f"{path} is missing: the test split this run was recorded with is gone. Record the run again.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except Exception as exc:  # a truncated zip, a pickled (object) array, a missing member
        raise RunDirError(f"{path} cannot be read ({type(exc).__name__}: {exc}): it is corrupt. Record the run again.") from None
    now = _fingerprint(x, y)
    if now != fingerprint:
        raise BadInputError(
            f"{path} has changed since the run was recorded: its fingerprint is now {now[:12]}, summary.json "
            f"recorded {fingerprint[:12]}. This model would be tested on rows it was not held out from. "
            f"Restore the file, or record the run again."
        )
    return x, y


def custom_classes(path: Path) -> list[str]:
    """The registered names of the custom classes model.keras names, after its safety checks.

    Raises RunDirError for a file that is not a .keras archive, an archive member whose name
    could escape an extraction directory, or a code object (Lambda). Nothing is executed.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise RunDirError(f"{path} is missing or empty: the run has no shipped model.")
    found: list[str] = []

    def visit(node: dict) -> dict:
        name, module = node.get("class_name"), node.get("module")
        if name in CODE_CLASSES:
            raise RunDirError(f"{path} contains a {name} (arbitrary code) in its config.json; refusing to load it.")
        if not isinstance(name, str) or name.startswith("__") or module == "builtins":
            return node  # not a class, one of Keras's own markers (`__keras_tensor__`), or a function by name
        if module is None or not allowed_module(str(module)):  # a custom class: Keras saves no module for it
            found.append(str(node.get("registered_name") or name))
        return node

    try:
        with zipfile.ZipFile(path) as archive:
            bad = [(m, unsafe_member(m)) for m in archive.namelist() if unsafe_member(m)]
            if bad:
                raise RunDirError(f"{path} holds the archive member {bad[0][0]!r}, whose name {bad[0][1]}; refusing to load it.")
            json.loads(archive.read("config.json"), object_hook=visit)
    except (zipfile.BadZipFile, KeyError):
        raise RunDirError(f"{path} is not a complete .keras archive: it is truncated or corrupt.") from None
    except (ValueError, UnicodeDecodeError):
        raise RunDirError(f"{path}: its config.json is not valid JSON; the file is corrupt.") from None
    return sorted(set(found))


def load_model(path: Path):
    """model.keras with `safe_mode=True`, once every custom class it names is registered here."""
    import keras

    missing = [name for name in custom_classes(path) if name not in keras.saving.get_custom_objects()]
    if missing:
        raise RunDirError(
            f"{path} uses the custom class(es) {', '.join(missing)}, which are not registered in this process: "
            f"regcli never imports code that a run directory names. Run the test in a Python process that "
            f"imports the module registering them: python -c \"import <your module>; from regcli.cli import app; "
            f"app(['test', '{path.parent}'])\". The test split is not looked at."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=True)
    except Exception as exc:  # Keras raises many types for a damaged or foreign archive
        first = (str(exc).strip().splitlines() or ["no message"])[0][:300]
        raise RunDirError(f"{path} cannot be loaded ({type(exc).__name__}: {first}). Record the run again.") from None


def evaluate_once(run: Path, summary: Mapping[str, Any], env: Mapping[str, Any],
                  x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loads the run's model with the backend it was recorded on and evaluates `(x, y)` once."""
    from regcli.training import backend

    backend.select(str(env.get("backend") or "tensorflow"), "cpu" if env.get("device") == "cpu" else "auto")
    backend.import_keras_quietly()
    from regcli.keras.modelinfo import evaluate

    model = load_model(Path(run) / rundir.MODEL)
    recorded = summary["recorded"]
    return evaluate(model, x, y, logged=str(recorded.get("metric")), metric=str(recorded.get("task_metric")))
