"""Which specs can share one packed model, and how a sweep groups its trials into packs.

Pure (no Keras): the sweep process groups trials without importing a backend; the
training itself is `regcli.training.packed.train_packed`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from typing import Any

# Keys of a spec that may differ inside one pack (everything else must be equal).
PER_TOWER_KEYS = ("model", "diagnosis", "name")
PER_TOWER_TRAINING_KEYS = ("early_stopping",)
# Towers per packed model: 8 fill one step's work for the small models swept here, and bound
# how much one failed pack has to retry.
MAX_PACK = 8


def pack_key(spec_dict: dict[str, Any]) -> str | None:
    """A key equal for specs that can share one packed model; None when a spec can't be packed.

    Same data, seed (the split, the batch order), backend, device and training settings but
    early stopping. Fine-tuning runs (`init_from`, `freeze`) and `model.builder` models (the
    user's own architecture, not regcli's towers) are trained alone.
    """
    model = spec_dict.get("model", {})
    if model.get("init_from") or model.get("freeze") or model.get("builder"):
        return None
    shared = {k: v for k, v in spec_dict.items() if k not in PER_TOWER_KEYS}
    shared["training"] = {k: v for k, v in spec_dict["training"].items() if k not in PER_TOWER_TRAINING_KEYS}
    shared["task"] = model.get("task")
    return json.dumps(shared, sort_keys=True, default=str)


def group_packs(items: Sequence[tuple[str, Hashable | None]], workers: int = 1, max_pack: int = MAX_PACK) -> list[list[str]]:
    """Splits `(id, key)` items into packs of equal keys (None: alone), in order, at most `max_pack` each.

    Each key's items are split evenly into the fewest packs that fit; while there are fewer
    packs than `workers`, the largest pack is split again, so that no worker idles.
    """
    if not items:  # a resumed sweep with every trial finished
        return []
    groups: dict[Any, list[str]] = {}
    for n, (item, key) in enumerate(items):
        groups.setdefault(("alone", n) if key is None else key, []).append(item)
    counts = {key: math.ceil(len(ids) / max_pack) for key, ids in groups.items()}
    while sum(counts.values()) < workers:
        key = max(counts, key=lambda k: len(groups[k]) / counts[k])
        if len(groups[key]) / counts[key] < 2:
            break
        counts[key] += 1
    packs = []
    for key, ids in groups.items():
        size, extra = divmod(len(ids), counts[key])
        start = 0
        for i in range(counts[key]):
            end = start + size + (1 if i < extra else 0)
            packs.append(ids[start:end])
            start = end
    return packs
