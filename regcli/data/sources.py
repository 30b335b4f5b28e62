"""The built-in `data.source`s: scikit-learn's bundled sets and its seeded generators.

Which sources are generated, and which `data.params` each accepts, is `regcli.spec.SOURCE_PARAMS`:
the spec has checked the source name and every parameter (names, types, ranges) before any of
this runs, so what is left to reject is what only scikit-learn knows (e.g. too many clusters
for `n_informative`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from regcli.data.raw import Raw
from regcli.errors import DataError

# Defaults of the generated sources; 1000 rows keep a CPU epoch well under a second.
GENERATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "moons": {"n_samples": 1000, "noise": 0.25},
    "synthetic_classification": {"n_samples": 1000, "n_features": 20, "n_informative": 10, "n_classes": 2},
    "synthetic_regression": {"n_samples": 1000, "n_features": 20, "noise": 10.0},
}
_GENERATORS = {
    "moons": "make_moons",
    "synthetic_classification": "make_classification",
    "synthetic_regression": "make_regression",
}
_BUNDLED = {
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "wine": "load_wine",
    "iris": "load_iris",
    "diabetes": "load_diabetes",
}
# (rows, features, class names or None for regression) of the bundled sets, so `regcli validate`
# describes them without importing scikit-learn; tests/test_data.py checks them against it.
BUNDLED_SHAPES: dict[str, tuple[int, int, list[str] | None]] = {
    "breast_cancer": (569, 30, ["malignant", "benign"]),
    "digits": (1797, 64, [str(d) for d in range(10)]),
    "wine": (178, 13, ["class_0", "class_1", "class_2"]),
    "iris": (150, 4, ["setosa", "versicolor", "virginica"]),
    "diabetes": (442, 10, None),
}


def load_bundled(source: str) -> Raw:
    """One of scikit-learn's bundled data sets (a copy inside the package: no network)."""
    from sklearn import datasets

    bunch = getattr(datasets, _BUNDLED[source])()
    regression = source == "diabetes"
    return Raw(
        x=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target, dtype=np.float64 if regression else np.int64),
        feature_names=[str(name) for name in bunch.feature_names],
        where=f"data.source '{source}'",
        origin={"source": source, "path": None},
        kind="regression" if regression else "classification",
        class_names=None if regression else [str(name) for name in bunch.target_names],
        image_shape=(8, 8, 1) if source == "digits" else None,
    )


def source_shape(source: str, params: dict[str, Any]) -> tuple[int, int, list[str] | None]:
    """(rows, features, class names or None for regression) of a built-in source, without loading it."""
    if source in BUNDLED_SHAPES:
        return BUNDLED_SHAPES[source]
    args = {**GENERATOR_DEFAULTS[source], **params}
    n_features = 2 if source == "moons" else int(args["n_features"])
    if source == "synthetic_regression":
        return int(args["n_samples"]), n_features, None
    return int(args["n_samples"]), n_features, [str(c) for c in range(2 if source == "moons" else args["n_classes"])]


def generate(source: str, params: dict[str, Any], seed: int) -> Raw:
    """A generated source: `GENERATOR_DEFAULTS` overridden by `data.params`, `random_state=seed`."""
    from sklearn import datasets

    args = {**GENERATOR_DEFAULTS[source], **params}
    if source == "synthetic_classification":
        # Shrinking n_features alone should just work: keep informative + redundant <= n_features.
        n_features = args["n_features"]
        if "n_informative" not in params:
            args["n_informative"] = min(args["n_informative"], n_features)
        if "n_redundant" not in params:
            args["n_redundant"] = max(0, min(2, n_features - args["n_informative"]))
    generator = getattr(datasets, _GENERATORS[source])
    try:
        x, y = generator(**args, random_state=seed)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"data.params for the '{source}' generator were rejected by scikit-learn's {generator.__name__}: "
            f"{exc} Received: {args!r}. Fix the values under data.params."
        ) from None
    regression = source == "synthetic_regression"
    return Raw(
        x=np.asarray(x, dtype=np.float64),
        y=np.asarray(y, dtype=np.float64 if regression else np.int64),
        feature_names=[f"x{i}" for i in range(x.shape[1])],
        where=f"data.source '{source}'",
        origin={"source": source, "path": None, "params": _jsonable(args)},
        kind="regression" if regression else "classification",
        class_names=source_shape(source, params)[2],
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
