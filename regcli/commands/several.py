"""Read commands over several directories (`diagnose RUN_DIR...`, `report DIR...`): all or nothing.

Every directory is read and checked before anything is written, so one bad path among
`runs/overfit-demo-*` leaves every directory as it was; the error names each bad path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from regcli.errors import RegcliError

T = TypeVar("T")


def each_or_none(paths: Sequence[Path], read: Callable[[Path], T], doing: str) -> list[T]:
    """`read(path)` of every path, in order; when any fails, one error for all of them and no result.

    With one path its error is raised as it is. With several, the first bad path's message comes
    first, then the other bad paths are named and the message says that none was `doing`.

    Example:
        >>> each_or_none([Path("a"), Path("b")], lambda p: p.name, "diagnosed")
        ['a', 'b']
    """
    results: list[T] = []
    failed: list[tuple[Path, RegcliError]] = []
    for path in paths:
        try:
            results.append(read(path))
        except RegcliError as exc:
            if len(paths) == 1:
                raise
            failed.append((path, exc))
    if not failed:
        return results
    (first_path, first), others = failed[0], failed[1:]
    more = ""
    if others:
        named = ", ".join(str(path) for path, _ in others)
        more = f" {len(others)} more of them cannot be {doing} either: {named}."
    raise type(first)(
        f"{first}{more} None of the {len(paths)} directories was {doing}: fix or leave out "
        f"{'each bad one' if others else first_path} and run the command again."
    ) from None
