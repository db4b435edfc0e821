"""Resource bounds a command checks before it starts work: this machine's memory and cores, and refusals that
state the estimate.

A number a user types (``--contexts 10000000``, ``--steps 1e20``, ``--workers
100000``) must not make a command swap, be killed, or run for years. Each command
estimates what it is asked to do from a small sample (the memory of a few contexts'
tensors, the time of one solve) before the real work, and refuses above a bound in
one line that gives the estimate, the bound and the flag that changes the request
(:class:`TooLarge`). The block size guard (:class:`did_core.blocks.SolveTooLarge`)
does the same for one block call.
"""

from __future__ import annotations

import math
import os

__all__ = ["TooLarge", "GIB", "MEMORY_SHARE", "machine_memory", "memory_limit", "check_memory", "available_cores",
           "duration"]

GIB = float(1 << 30)

#: The share of this machine's memory that one command's data (e.g. held-out contexts) may take.
MEMORY_SHARE = 0.5


class TooLarge(ValueError):
    """A request whose estimated memory or time is over its bound: refused before any work, in one line."""


def machine_memory() -> int:
    """This machine's physical memory in bytes (16 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def memory_limit() -> float:
    """The bytes one command's data may take: :data:`MEMORY_SHARE` of :func:`machine_memory`."""
    return MEMORY_SHARE * machine_memory()


def check_memory(each: float, count: int, what: str, flag: str) -> None:
    """Refuse, in one line naming ``flag``, ``count`` items (``what`` they are, e.g. "held-out contexts") of ``each``
    bytes apiece whose total is over :func:`memory_limit`."""
    limit = memory_limit()
    if each * count > limit:
        raise TooLarge(f"{count} {what} would take about {each * count / GIB:.3g} GiB ({each:.0f} bytes a context), "
                       f"over {limit / GIB:.1f} GiB, half of this machine's memory: at most {int(limit // each)} fit; "
                       f"lower {flag}")


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def duration(seconds: float) -> str:
    """A time for a message: ``"40 s"``, ``"12 min"``, ``"3.5 h"``, ``"2.1 days"``, ``"3e+08 years"``."""
    if not math.isfinite(seconds):
        return "forever"
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.2g} {unit}" if value >= 1e6 else f"{value:.1f} {unit}"
    return f"{seconds:.0f} s"
