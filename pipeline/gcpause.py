"""Pause Python's cyclic garbage collector around bulk object building.

Parsing or generating millions of small dicts and lists creates no reference
cycles, yet every allocation burst triggers a full collection that walks all
live objects; with a large archive in memory that made ingest and synth several
times slower. Reference counting still frees everything as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
