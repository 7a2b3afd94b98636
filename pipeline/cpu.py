"""How many worker processes to use."""

from __future__ import annotations

import os


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(requested: int, items: int) -> int:
    """`requested` workers (0 = one per available core), never more than there are items."""
    return max(1, min(requested or available_cores(), items))
