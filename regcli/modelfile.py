"""Checks a `.keras` file before Keras reads it: only regcli's own models are loaded.

A `.keras` file is a zip of config.json, metadata.json and model.weights.h5. Keras's
`safe_mode=True` refuses Lambda layers; regcli goes further and refuses any file whose
config names a class outside the layers regcli builds or a module outside Keras, so a
model "from outside regcli" is never deserialized. No TensorFlow here: zipfile + json.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from regcli.errors import RunDirError

# Everything `regcli.model.build_model` can produce, plus the Functional container.
ALLOWED_LAYER_CLASSES = frozenset(
    {
        "InputLayer", "Dense", "BatchNormalization", "Activation", "Dropout", "Conv2D",
        "MaxPooling2D", "Flatten", "SpatialDropout2D", "GaussianNoise", "Reshape",
    }
)
_REQUIRED_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
_MAX_CONFIG_BYTES = 10_000_000  # a regcli config.json is a few KB


def _modules(node: Any):
    """Yields every (class_name, module) pair in a Keras config tree."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node.get("class_name"), node.get("module")
        for value in node.values():
            yield from _modules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _modules(value)


def check_model_file(path: Path) -> None:
    """Raises RunDirError unless `path` is a regcli-built `.keras` model (nothing is executed)."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} is missing: the run has no shipped model.")
    if path.stat().st_size == 0:
        raise RunDirError(f"{path} is empty (0 bytes): the model was not saved completely.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [m for m in _REQUIRED_MEMBERS if m not in names]
            if missing:
                raise RunDirError(f"{path} is not a complete .keras model: it lacks {', '.join(missing)}.")
            if archive.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:
                raise RunDirError(f"{path}: config.json is implausibly large for a regcli model; refusing it.")
            config = json.loads(archive.read("config.json"))
    except zipfile.BadZipFile:
        raise RunDirError(f"{path} is not a .keras archive (not a zip file): it is truncated or corrupt.") from None
    except (ValueError, UnicodeDecodeError):
        raise RunDirError(f"{path}: its config.json is not valid JSON; the file is corrupt.") from None
    if not isinstance(config, dict) or config.get("class_name") != "Functional":
        raise RunDirError(f"{path} was not written by regcli (expected a Functional model); refusing to load it.")
    layers = config.get("config", {}).get("layers", [])
    for layer in layers if isinstance(layers, list) else []:
        name = layer.get("class_name") if isinstance(layer, dict) else None
        if name not in ALLOWED_LAYER_CLASSES:
            raise RunDirError(
                f"{path} contains a {name!r} layer, which regcli never builds (allowed: "
                f"{', '.join(sorted(ALLOWED_LAYER_CLASSES))}); refusing to load it."
            )
    for class_name, module in _modules(config):
        if module is not None and not str(module).startswith("keras"):
            raise RunDirError(
                f"{path} refers to {class_name!r} from module {module!r}, outside Keras; refusing to load it."
            )
        if class_name in ("Lambda", "TFOpLambda", "function"):
            raise RunDirError(f"{path} contains a {class_name} (arbitrary code); refusing to load it.")
