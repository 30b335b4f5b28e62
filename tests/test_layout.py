"""The layout rules of docs/architecture.md, checked on the source itself (no training, no imports
of regcli): a module over 600 lines or a function over 60 holds two jobs; tests use public names;
each small helper exists once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "regcli").rglob("*.py"))
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def test_the_package_is_there_to_check():
    names = {p.relative_to(ROOT / "regcli").as_posix() for p in MODULES}
    assert {"cli.py", "spec/__init__.py", "training/fit.py", "experiment.py", "diagnosis/__init__.py",
            "commands/diagnose.py", "sweep/run.py", "dotted.py", "values.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_over_600_lines_and_no_function_over_60(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(ROOT)}: {', '.join(long)}"


def test_tests_import_public_names_only():
    private = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("regcli"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, private


@pytest.mark.parametrize("helper", ["flatten", "is_finite", "did_you_mean", "get_dotted", "_get", "_dig", "_finite",
                                    "_did_you_mean", "_closest", "_trial_state"])
def test_each_small_helper_is_defined_once(helper):
    """regcli.dotted and regcli.values hold the one copy; no module grows its own again."""
    where = [
        p.relative_to(ROOT).as_posix()
        for p in MODULES
        for node in ast.walk(_tree(p))
        if isinstance(node, ast.FunctionDef) and node.name == helper
    ]
    assert len(where) <= 1, where
