"""Checks a `.keras` file before Keras reads it: only regcli's own models are loaded.

A `.keras` file is a zip of config.json, metadata.json and model.weights.h5. Keras's
`safe_mode=True` refuses Lambda layers; regcli goes further and refuses any file whose
config names a class outside the layers regcli builds, or an object from outside the parts
of Keras a model is made of (layers, initializers, regularizers, constraints, optimizers,
losses, metrics: not `keras.utils.get_file`, not a module `keras_evil`), and any archive
member whose name could escape an extraction directory (`../x`, `/etc/x`). So a model "from
outside regcli" is never deserialized. No TensorFlow here: zipfile + json.
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
# The Keras packages a saved model's objects come from (`keras.<family>...` or `keras.src.<family>...`);
# `keras` itself holds DTypePolicy. Anything else (keras.utils, keras.saving, keras_evil) is refused.
ALLOWED_MODULE_FAMILIES = frozenset(
    {"layers", "initializers", "regularizers", "constraints", "optimizers", "losses", "metrics", "models",
     "dtype_policies"}
)
CODE_CLASSES = ("Lambda", "TFOpLambda", "function", "__lambda__")  # code, not configuration: always refused
_MAX_CONFIG_BYTES = 10_000_000  # a regcli config.json is a few KB


def _modules(node: Any, where: str = ""):
    """Yields every (class_name, module, location, registered_name) in a Keras config tree (location:
    e.g. `config.layers.1.config`)."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node.get("class_name"), node.get("module"), where, node.get("registered_name")
        for key, value in node.items():
            yield from _modules(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _modules(value, f"{where}.{i}" if where else str(i))


def allowed_module(module: str) -> bool:
    """True for `keras` and `keras.[src.]<family>...` with a family a model is made of; False for `keras_evil`."""
    if module == "keras":
        return True
    parts = module.split(".")
    if parts[0] != "keras" or len(parts) < 2:
        return False
    family = parts[2] if parts[1] == "src" and len(parts) > 2 else parts[1]
    return family in ALLOWED_MODULE_FAMILIES


def unsafe_member(name: str) -> str | None:
    """Why an archive member name could write outside an extraction directory, or None when it is safe."""
    if not name or "\x00" in name:
        return "is empty or holds a NUL byte"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if "\\" in name:
        return "holds a backslash, which Windows reads as a directory separator"
    if ".." in name.split("/"):
        return "has a '..' component, which points outside the archive's directory"
    return None


def _check_members(path: Path, archive: zipfile.ZipFile) -> None:
    seen: set[str] = set()
    for name in archive.namelist():
        why = unsafe_member(name)
        if why:
            raise RunDirError(
                f"{path} holds the archive member {name!r}, whose name {why}: extracting it could write "
                f"outside the model's directory. A .keras file regcli writes holds only "
                f"{', '.join(_REQUIRED_MEMBERS)}; refusing to load it."
            )
        if name in seen:
            raise RunDirError(
                f"{path} holds the archive member {name!r} twice, so which copy Keras reads is ambiguous; "
                f"a .keras file regcli writes holds each member once. Refusing to load it."
            )
        seen.add(name)


def check_model_file(path: Path, builder: str | None = None) -> None:
    """Raises RunDirError unless `path` is a regcli-built `.keras` model (nothing is executed).

    A `model.builder` run's model is the user's own architecture: any Keras layer may appear,
    and a custom class passes when the builder's module registered it
    (`keras.saving.register_keras_serializable`; the module is imported here, the user's own
    code by design). Code objects (Lambda) and classes from anywhere else are still refused.
    """
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path} is missing: the run has no shipped model.")
    if path.stat().st_size == 0:
        raise RunDirError(f"{path} is empty (0 bytes): the model was not saved completely.")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(path, archive)
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
    if builder is None:
        _check_layers(path, config)
        _check_modules(path, config)
    else:
        _check_modules(path, config, registered=_registered_by(builder))


def _registered_by(builder: str) -> frozenset[str]:
    """The custom objects registered once the builder's module is imported (`package>Name`)."""
    import keras

    from regcli.builder import import_builder

    import_builder(builder)
    return frozenset(keras.saving.get_custom_objects())


def _check_layers(path: Path, config: dict[str, Any]) -> None:
    """Every layer of the model's config.json is one regcli builds."""
    inner = config.get("config")
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    for layer in layers if isinstance(layers, list) else []:
        name = layer.get("class_name") if isinstance(layer, dict) else None
        if name not in ALLOWED_LAYER_CLASSES:
            raise RunDirError(
                f"{path} contains a {name!r} layer, which regcli never builds (allowed: "
                f"{', '.join(sorted(ALLOWED_LAYER_CLASSES))}); refusing to load it."
            )


def _check_modules(path: Path, config: dict[str, Any], registered: frozenset[str] = frozenset()) -> None:
    """No object in config.json is code, or comes from a module outside Keras's model packages
    (unless its `registered_name` is one of `registered`: a builder's own serializable classes)."""
    for class_name, module, where, registered_name in _modules(config):
        if registered_name in registered and class_name not in CODE_CLASSES:
            continue
        if class_name in CODE_CLASSES:
            raise RunDirError(
                f"{path} contains a {class_name} (arbitrary code) at {where or 'the top'} of its config.json; "
                f"refusing to load it."
            )
        # Without a module, Keras looks the name up itself: only its own markers (`__keras_tensor__`) pass.
        nameless = module is None and not (isinstance(class_name, str) and class_name.startswith("__"))
        if nameless or (module is not None and not allowed_module(str(module))):
            raise RunDirError(
                f"{path} refers to {class_name!r} from module {module!r} at {where or 'the top'} of its "
                f"config.json, which is not part of a Keras model (only keras.layers, initializers, "
                f"regularizers, constraints, optimizers, losses and metrics are): deserializing it could run "
                f"code, read files or fetch URLs. Refusing to load it."
            )
