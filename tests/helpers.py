"""Small helpers shared by test files (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_sweep(directory: Path, sweep: dict, *, base: dict, name: str = "sweep.yaml") -> Path:
    """Writes `base` as base.yaml and a sweep spec `name` that uses it; returns the sweep spec's path."""
    (directory / "base.yaml").write_text(yaml.safe_dump(base))
    path = directory / name
    path.write_text(yaml.safe_dump({"base": "base.yaml", **sweep}, sort_keys=False))
    return path


def flat(text: str) -> str:
    """rich may wrap stderr: compare messages with whitespace runs collapsed."""
    return " ".join(text.split())
