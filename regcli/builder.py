"""`model.builder`: the user's own model function, read without running it, then called to build the model.

A builder is `"path/to/models.py:build"` (a file, relative to the spec's directory) or
`"package.module:build"` (a module on the Python path). **It runs the user's own code, by
design**: `regcli train`, `sweep`, `tune` and `test` import it (a saved model's custom layers
are registered by that import). `regcli validate` does not: `signature` reads the function's
parameters and literal defaults from the source with `ast`, so a spec is checked without
TensorFlow and without executing anything.

regcli calls the function with keyword arguments only: each model knob the spec sets and the
function accepts (`l1`, `l2`, `dropout`, `batchnorm`, `hidden`, ...), `model.builder_args`,
and `input_shape`, `n_outputs`, `task` when the signature has them. It must return an
uncompiled `keras.Model` whose output is the task's: `Dense(1, "sigmoid")` (binary),
`Dense(n_outputs, "softmax")` (multiclass) or `Dense(n_outputs)` (regression).

Example (models.py beside the spec):

```python
def build(input_shape, n_outputs, dropout=0.2, l2=1e-4):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(64, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))(inputs)
    x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
```
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regcli.errors import BadInputError

# What regcli itself hands a builder when its signature asks for it.
DATA_ARGS = ("input_shape", "n_outputs", "task")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
NO_LITERAL = object()  # a default that is not a literal (`hidden=DEFAULT`): unknown without running the code


@dataclass(frozen=True)
class Signature:
    """A builder function's keyword parameters, read from its source.

    Attributes:
        params: the parameter names a keyword can fill, in order.
        any_keyword: the function takes `**kwargs`.
        defaults: parameter -> its default (a Python literal, or `NO_LITERAL`); required ones absent.
    """

    params: tuple[str, ...]
    any_keyword: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)

    def accepts(self, name: str) -> bool:
        return self.any_keyword or name in self.params

    def describe(self) -> str:
        shown = [*self.params, *(["**kwargs"] if self.any_keyword else [])]
        return f"({', '.join(shown)})" if shown else "()"


def split_ref(ref: str) -> tuple[str, str]:
    """`"models.py:build"` -> ("models.py", "build"); a ValueError names what is wrong."""
    target, sep, func = str(ref).rpartition(":")
    if not sep or not target or not _IDENTIFIER.fullmatch(func):
        raise ValueError("must be 'path/to/file.py:function' or 'package.module:function'")
    if not target.endswith(".py") and not _MODULE.fullmatch(target):
        raise ValueError(f"{target!r} is neither a .py file nor a dotted module name")
    return target, func


def is_file_ref(target: str) -> bool:
    return target.endswith(".py")


def module_file(module: str) -> Path:
    """The source file of a dotted module, found on sys.path without importing it (or its packages)."""
    parts = module.split(".")
    locations = None
    spec = None
    for depth in range(1, len(parts) + 1):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth]), locations)
        if spec is None:
            raise ValueError(f"module {module!r} is not on the Python path (no {'.'.join(parts[:depth])})")
        locations = spec.submodule_search_locations
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"module {module!r} has no Python source file regcli can read")
    return Path(spec.origin)


def source_file(ref: str) -> Path:
    """The .py file that defines the builder (a file reference is already absolute after validation)."""
    target, _ = split_ref(ref)
    return Path(target) if is_file_ref(target) else module_file(target)


def signature(ref: str) -> Signature:
    """The builder's parameters, from its source alone (`ast`): nothing is imported or run.

    Raises:
        ValueError: no such file, not Python, or no top-level `def <function>` in it.
    """
    _, func = split_ref(ref)
    path = source_file(ref)
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({type(exc).__name__})") from None
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"{path} is not valid Python ({exc.__class__.__name__}: {exc})") from None
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == func]
    if not found:
        defined = sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef))
        raise ValueError(f"{path} defines no top-level function {func!r} (it defines: {', '.join(defined) or 'none'})")
    args = found[-1].args
    positional = [*args.posonlyargs, *args.args]
    keyword_able = [a.arg for a in [*args.args, *args.kwonlyargs]]
    defaults: dict[str, Any] = {}
    for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True):
        defaults[arg.arg] = _literal(default)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is not None:
            defaults[arg.arg] = _literal(default)
    return Signature(tuple(keyword_able), args.kwarg is not None, defaults)


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NO_LITERAL


# --------------------------------------------------------------------------- running it (user code)


def import_builder(ref: str) -> Any:
    """Imports the builder's module (running the user's code) and returns the function.

    A file is imported under a name fixed by its path, once per process, so a saved model's
    custom layers (`keras.saving.register_keras_serializable`) are registered before loading.

    Raises:
        BadInputError: the import fails, or the name is not a callable.
    """
    target, func = split_ref(ref)
    try:
        module = _import_file(Path(target)) if is_file_ref(target) else importlib.import_module(target)
    except Exception as exc:  # the user's module may raise anything while importing
        raise BadInputError(
            f"model.builder {ref!r}: importing {target} failed: {type(exc).__name__}: {exc}. "
            f"Fix the module (it is your own code; regcli runs it as written)."
        ) from None
    function = getattr(module, func, None)
    if not callable(function):
        raise BadInputError(f"model.builder {ref!r}: {target} has no callable {func!r}.")
    return function


def _import_file(path: Path) -> Any:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"regcli_builder_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def builder_kwargs(model_spec: Any, knobs: tuple[str, ...], data: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the call: the knobs the spec sets, builder_args, and the data's shape."""
    sig = signature(model_spec.builder)
    kwargs = {k: getattr(model_spec, k) for k in knobs if k in model_spec.model_fields_set and sig.accepts(k)}
    kwargs.update(model_spec.builder_args)
    kwargs.update({k: v for k, v in data.items() if k in sig.params})
    return kwargs


def build_from_builder(model_spec: Any, knobs: tuple[str, ...], *, input_shape: tuple[int, ...], n_outputs: int,
                       task: str, name: str, fed_shape: tuple[int, ...] | None = None) -> Any:
    """Calls the user's builder and checks what it returns fits the data and the task's head.

    Images (an image folder, digits) are fed as flat rows: the function still gets their
    `(H, W, C)` as `input_shape`, and its model is wrapped behind a `Reshape` from `fed_shape`.

    Raises:
        BadInputError: the call raises, or the result is not a `keras.Model` with that input and output.
    """
    import keras

    function = import_builder(model_spec.builder)
    kwargs = builder_kwargs(model_spec, knobs, {"input_shape": tuple(input_shape), "n_outputs": n_outputs,
                                                "task": task})
    try:
        model = function(**kwargs)
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise BadInputError(
            f"model.builder {model_spec.builder!r} raised {type(exc).__name__}: {exc} (called with {shown})."
        ) from None
    if not isinstance(model, keras.Model):
        raise BadInputError(f"model.builder {model_spec.builder!r} returned {type(model).__name__}, not a keras.Model.")
    _check_shapes(model, model_spec.builder, tuple(input_shape), n_outputs, task)
    if fed_shape is None or tuple(fed_shape) == tuple(input_shape):
        return model
    rows = keras.Input(tuple(fed_shape), name="features")
    return keras.Model(rows, model(keras.layers.Reshape(tuple(input_shape), name="to_image")(rows)), name=name)


def _check_shapes(model: Any, ref: str, input_shape: tuple[int, ...], n_outputs: int, task: str) -> None:
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise BadInputError(f"model.builder {ref!r}: the model has {len(inputs)} input(s) and {len(outputs)} "
                            f"output(s); regcli trains a model with one input and one output.")
    got_in = tuple(inputs[0].shape[1:])
    if len(got_in) != len(input_shape) or any(g is not None and g != w for g, w in zip(got_in, input_shape, strict=False)):
        raise BadInputError(f"model.builder {ref!r}: the model's input shape is {got_in}, the data's is "
                            f"{input_shape}. Build the input with keras.Input(input_shape).")
    got_out = tuple(outputs[0].shape[1:])
    if got_out != (n_outputs,):
        kind = {"binary": "Dense(1, activation='sigmoid')", "multiclass": "Dense(n_outputs, activation='softmax')"}
        raise BadInputError(f"model.builder {ref!r}: the model's output shape is {got_out}; a {task} task needs "
                            f"({n_outputs},): end with {kind.get(task, 'Dense(n_outputs)')}.")
