"""What `regcli tune` prints on stdout at the end: the tune directory and what was shipped."""

from __future__ import annotations

from typing import Any

from regcli.rundir import format_cell


def summary_text(result: Any) -> str:
    """Three lines: the tune directory; the shipped overrides, run and mean ± std; the one final test."""
    best = result.best
    shipped = ", ".join(best["set"]) or "the base spec, unchanged"
    std = f" ± {format_cell(best['std'])}" if best.get("std") is not None else ""
    lines = [
        str(result.tune_dir),
        f"shipped: {shipped} ({best['shipped_run']}); val_data_loss {format_cell(best['mean'])}{std} over "
        f"{len(best['seeds'])} seed(s); stopped: {best['stopped'].get('text')}",
    ]
    test = (best.get("final_test") or {}).get("metrics")
    if test:
        lines.append(f"final test (once): error {format_cell(test.get('error'))}, data_loss {format_cell(test.get('data_loss'))}")
    elif best.get("final_test_skipped"):
        lines.append(f"no final test: {best['final_test_skipped']}")
    return "\n".join(lines)
