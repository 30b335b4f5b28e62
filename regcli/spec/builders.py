"""The spec side of `model.builder`: the reference resolved, the function's knobs read, its knobs checked.

Nothing here imports or runs the user's module: `regcli.builder.signature` reads the
function's parameters and literal defaults with `ast`. A knob the function takes and the
spec leaves out gets the function's own default, so config.yaml says what the model was
built with and the diagnosis can recommend "model.dropout 0.5 -> 0.6" from the right value.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from regcli import builder
from regcli.spec.fields import Problem, expand_user

if TYPE_CHECKING:
    from regcli.spec.models import ExperimentSpec

# The model knobs a builder may take by name; its other parameters come from model.builder_args.
BUILDER_KNOBS = (
    "hidden", "activation", "batchnorm", "dropout", "l1", "l2", "bias_l2", "activity_l2", "bn_momentum", "output_l2",
)
# ModelSpec keys that are regcli's own with a builder too (they are not passed to the function).
_OWN_KEYS = ("task", "builder", "builder_args", "init_from", "freeze", "layers")


def resolve_ref(value: str, base: Path) -> str:
    """`models.py:build` with the file made absolute against `base`; a module reference as it is.

    Raises:
        ValueError: a malformed reference, a missing file, or no such top-level function in it.
    """
    target, func = builder.split_ref(value)
    if builder.is_file_ref(target):
        path = expand_user(target)
        path = path if path.is_absolute() else base / path
        path = Path(path).resolve()
        if not path.is_file():
            raise ValueError(f"file not found: {path} (relative paths are resolved against {base})")
        value = f"{path}:{func}"
    builder.signature(value)  # the function exists (read, not run)
    return value


def fill_function_defaults(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The `model:` mapping with each knob the builder takes, and the spec leaves out, set to the function's
    own literal default. Unchanged when the reference is not valid yet (its field reports that)."""
    ref = data.get("builder")
    if not isinstance(ref, str) or data.get("layers") is not None:
        return data
    try:
        sig = builder.signature(resolve_ref(ref, base))
    except (ValueError, OSError):
        return data
    filled = dict(data)
    for knob in BUILDER_KNOBS:
        default = sig.defaults.get(knob, builder.NO_LITERAL)
        if knob not in filled and knob in sig.params and default is not builder.NO_LITERAL:
            filled[knob] = list(default) if isinstance(default, tuple) else default
    return filled


def check_builder(spec: ExperimentSpec) -> list[Problem]:
    """With model.builder: no layers; every knob written is a parameter of the function; builder_args too."""
    model = spec.model
    if model.builder is None:
        return [Problem("model.builder_args", "applies only with model.builder.", model.builder_args,
                        "Remove it, or set model.builder: 'models.py:build'.")] if model.builder_args else []
    if model.layers is not None:
        return [Problem("model", "It is invalid to specify both model.builder AND model.layers.",
                        fix="The builder's function builds the whole model: remove model.layers.")]
    try:
        sig = builder.signature(model.builder)
    except ValueError:
        return []  # the field validator reported it
    problems = [
        Problem(f"model.{knob}", f"is not a parameter of the builder {builder.split_ref(model.builder)[1]}"
                f"{sig.describe()}, so it would have no effect.", getattr(model, knob),
                f"Remove model.{knob}, or add a `{knob}` parameter to the function.")
        for knob in BUILDER_KNOBS if knob in model.model_fields_set and not sig.accepts(knob)
    ]
    for key, value in model.builder_args.items():
        if key in BUILDER_KNOBS or key in builder.DATA_ARGS:
            fix = f"Set model.{key} instead." if key in BUILDER_KNOBS else "regcli passes it from the data."
            problems.append(Problem(f"model.builder_args.{key}", "is not a builder argument of its own.", value, fix))
        elif not sig.accepts(key):
            problems.append(Problem(f"model.builder_args.{key}", f"is not a parameter of the builder "
                                    f"{builder.split_ref(model.builder)[1]}{sig.describe()}.", value,
                                    f"Remove it, or add a `{key}` parameter to the function."))
    return problems


def unset_knobs(spec: Any) -> list[str]:
    """The shorthand keys a builder spec leaves out of its resolved form: the ones not passed to the function."""
    if spec.model.builder is None:
        return []
    return [k for k in BUILDER_KNOBS if k not in spec.model.model_fields_set]
