"""The diagnosis's inputs, normalized once: thresholds resolved, task metric chosen, model shape read.

`Run.build(history, summary, config, run_dir)` is the one place the diagnosis reads the
config; evidence, recommendations and warnings ask the `Run` (`run.kernel_l2()`,
`run.es("patience")`) instead of digging in the dicts themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from regcli import dotted
from regcli.replay import with_epoch_column
from regcli.values import finite_float

# Defaults of the `diagnosis:` keys. Each is read with `.get(key, default)`, so a config
# without the newer keys still diagnoses.
DEFAULTS: dict[str, float] = {
    "target_error": 0.0,  # null in the spec: no human-level/Bayes estimate, so all training error counts as avoidable
    "bias_tolerance": 0.05,  # SPEC §2: 5 points of avoidable error (accuracy) or 0.05 target std (mae) is high bias
    "gap_tolerance": 0.02,  # SPEC §2: val error 2 points (or 0.02 std) above the clean train error is high variance
    "not_learning_margin": 0.01,  # val error within 1 point of the majority-class / mean predictor: nothing learned
    "max_penalty_share": 0.5,  # penalty above half the loss: the optimizer mostly shrinks weights instead of fitting
    "curve_window": 10,  # last 10 epochs for slopes and noise: enough points to average, recent enough to mean "now"
}

TASKS = ("binary", "multiclass", "regression")
DROPOUT_LAYERS = ("dropout", "spatial_dropout2d")
# Layers between a kernel and a BatchNormalization that leave BN's scale invariance intact.
BN_TRANSPARENT = ("dropout", "spatial_dropout2d", "gaussian_noise")
OTHER_PENALTIES = (
    "bias_regularizer.l1",
    "bias_regularizer.l2",
    "activity_regularizer.l1",
    "activity_regularizer.l2",
)




def thresholds(config: Mapping[str, Any]) -> dict[str, float]:
    """The `diagnosis:` keys, each a finite number or its default; `curve_window` at least 2."""
    section = dotted.get(config, "diagnosis", {}) or {}
    th = {
        key: (finite_float(section.get(key)) if finite_float(section.get(key)) is not None else default)
        for key, default in DEFAULTS.items()
    }
    th["curve_window"] = max(2, int(th["curve_window"]))
    return th


def task_of(history: pd.DataFrame, summary: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """binary, multiclass or regression as recorded; else regression or classification from the metrics."""
    task = summary.get("task") or dotted.get(config, "model.task")
    if task in TASKS:
        return task
    train = dotted.get(summary, "metrics.train", {}) or {}
    regression = "mae" in train or ("mae" in history.columns and "accuracy" not in history.columns)
    return "regression" if regression else "classification"


@dataclass
class Run:
    """The inputs, normalized once: thresholds resolved, task metric chosen, model shape read."""

    history: pd.DataFrame
    summary: Mapping[str, Any]
    config: Mapping[str, Any]
    th: dict[str, float]
    task: str
    metric: str  # "accuracy" or "mae"
    run_dir: str
    warnings: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def build(cls, history, summary, config, run_dir) -> Run:
        history = with_epoch_column(history)
        summary = summary or {}
        config = config or {}
        task = task_of(history, summary, config)
        metric = "mae" if task == "regression" else "accuracy"
        return cls(history, summary, config, thresholds(config), task, metric, run_dir or "RUN_DIR")

    # ---- config, read defensively (the spec module validated it; old runs may lack keys)
    def cfg(self, key: str, default: Any = None) -> Any:
        return dotted.get(self.config, key, default)

    def es(self, key: str, default: Any = None) -> Any:
        return self.cfg(f"training.early_stopping.{key}", default)

    @property
    def layers(self) -> list[Mapping[str, Any]] | None:
        layers = self.cfg("model.layers")
        return [layer for layer in layers if isinstance(layer, Mapping)] if layers else None

    @property
    def hidden(self) -> list[int]:
        return [int(u) for u in (self.cfg("model.hidden") or [])]

    @property
    def builder(self) -> str | None:
        """model.builder: the user's own model function, or None for regcli's models."""
        value = self.cfg("model.builder")
        return value if isinstance(value, str) else None

    def passes(self, knob: str) -> bool:
        """Whether `model.<knob>` reaches the model: always for regcli's own; for a builder only the
        knobs its config.yaml lists (those passed to the function, the ones it accepts)."""
        if self.builder is None:
            return True
        model = self.cfg("model")
        return isinstance(model, Mapping) and knob in model

    def kernel_l2(self) -> float:
        """The largest kernel L2 factor anywhere in the model."""
        return self._largest_kernel_factor("l2")

    def kernel_l1(self) -> float:
        return self._largest_kernel_factor("l1")

    def _largest_kernel_factor(self, kind: str) -> float:
        if self.layers is not None:
            factors = [finite_float(dotted.get(la, f"kernel_regularizer.{kind}")) or 0.0 for la in self.layers]
            return max(factors, default=0.0)
        return finite_float(self.cfg(f"model.{kind}")) or 0.0

    def has_penalty(self) -> bool:
        if self.kernel_l1() > 0 or self.kernel_l2() > 0:
            return True
        if self.layers is not None:
            return any((finite_float(dotted.get(la, k)) or 0.0) > 0 for la in self.layers for k in OTHER_PENALTIES)
        return any((finite_float(self.cfg(k)) or 0.0) > 0 for k in ("model.bias_l2", "model.activity_l2", "model.output_l2"))

    def value_at(self, column: str, epoch: Any) -> float | None:
        """history.csv's `column` at 1-based `epoch`; None when either is missing or not finite."""
        if epoch is None or column not in self.history.columns:
            return None
        rows = self.history[pd.to_numeric(self.history["epoch"], errors="coerce") == int(epoch)]
        return finite_float(rows[column].iloc[-1]) if len(rows) else None

    def dropout_rates(self) -> list[float]:
        if self.layers is not None:
            return [finite_float(la.get("rate")) or 0.0 for la in self.layers if la.get("type") in DROPOUT_LAYERS]
        rate = finite_float(self.cfg("model.dropout")) or 0.0
        return [rate] if (self.hidden or self.builder) and rate > 0 else []

    def uses_batchnorm(self) -> bool:
        if self.layers is not None:
            return any(la.get("type") == "batchnorm" for la in self.layers)
        return bool(self.cfg("model.batchnorm", False)) and (bool(self.hidden) or self.builder is not None)

    def l2_before_batchnorm(self) -> bool:
        """Whether some L2-penalized kernel feeds a BatchNormalization (dropout/noise in between ignored)."""
        if self.layers is None:
            return self.uses_batchnorm() and self.kernel_l2() > 0
        for i, layer in enumerate(self.layers):
            if (finite_float(dotted.get(layer, "kernel_regularizer.l2")) or 0.0) <= 0:
                continue
            following = (nxt.get("type") for nxt in self.layers[i + 1 :])
            if next((kind for kind in following if kind not in BN_TRANSPARENT), None) == "batchnorm":
                return True
        return False
