"""regcli's cache directory: files regcli can always rebuild, never results.

`$REGCLI_CACHE_DIR` when set; otherwise `$XDG_CACHE_HOME/regcli`, or `~/.cache/regcli`.
It holds the JAX compilation cache (`jax/`, see `regcli.training.backend`) and the sweep
workers' launcher (`bin/`, see `regcli.sweep.launch`). Deleting it is always safe
(`rm -rf ~/.cache/regcli`): the next run rebuilds what it needs, only slower.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "REGCLI_CACHE_DIR"


def cache_dir() -> Path:
    """The cache directory (not created here)."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "regcli"
