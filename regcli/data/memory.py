"""What memory this process can use, read without heavy imports: MemAvailable and `ulimit -v`.

`load_dataset` names it when loading runs out of memory; `images` checks an image folder
against it before decoding a single file.
"""

from __future__ import annotations

__all__ = ["available_bytes", "memory_note"]


def _limits() -> tuple[int | None, int | None]:
    """(MemAvailable of /proc/meminfo, the RLIMIT_AS of `ulimit -v`) in bytes; None where unknown or unlimited."""
    available = limit = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            available = 1024 * next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        limit = None if soft == resource.RLIM_INFINITY else int(soft)
    except (ImportError, OSError, ValueError):
        pass
    return available, limit


def available_bytes() -> int | None:
    """The smaller of MemAvailable and `ulimit -v`; None when neither is known."""
    known = [n for n in _limits() if n is not None]
    return min(known) if known else None


def memory_note() -> str:
    """`This machine has 5.2 GiB of memory available; ... (ulimit -v). `, or "" when nothing is known."""
    available, limit = _limits()
    notes = []
    if available is not None:
        notes.append(f"this machine has {available / 1024**3:.1f} GiB of memory available")
    if limit is not None:
        notes.append(f"this process may use at most {limit / 1024**3:.1f} GiB (ulimit -v)")
    text = "; ".join(notes)
    return f"{text[:1].upper()}{text[1:]}. " if notes else ""
