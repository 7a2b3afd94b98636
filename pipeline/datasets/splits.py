"""Group-disjoint train/dev/test splits: every example of a group (a conversation tree) lands in one split.

Assignment is a deterministic hash of the group key, so it is stable across rebuilds and
machines, and a group never straddles two splits. Integer keys (tweet ids) are hashed with
splitmix64 in numpy; string keys with BLAKE2b.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_RATIOS: dict[str, float] = {"train": 0.9, "dev": 0.05, "test": 0.05}

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _MASK64


def _seed_int(seed: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=8).digest(), "little"))


def unit_hash(keys: Sequence[int] | Sequence[str] | np.ndarray, seed: str = "") -> np.ndarray:
    """A uniform value in [0, 1) per key, deterministic in (key, seed)."""
    integer_keys = (
        keys.dtype.kind in "iu"
        if isinstance(keys, np.ndarray)
        else bool(len(keys)) and isinstance(keys[0], int)
    )
    if integer_keys:
        as_int = np.asarray(keys, dtype=np.int64).view(np.uint64)
        hashed = _splitmix64(as_int ^ _seed_int(seed))
    else:
        hashed = np.array(
            [
                int.from_bytes(hashlib.blake2b(f"{seed}\0{k}".encode(), digest_size=8).digest(), "little")
                for k in keys
            ],
            dtype=np.uint64,
        )
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def validate_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    if not ratios or any(r < 0 for r in ratios.values()):
        raise ValueError(f"split ratios must be non-negative: {dict(ratios)}")
    total = sum(ratios.values())
    if total <= 0:
        raise ValueError("split ratios sum to zero")
    return {name: r / total for name, r in ratios.items()}


def assign_splits(
    keys: Sequence[int] | Sequence[str] | np.ndarray,
    ratios: Mapping[str, float] = DEFAULT_RATIOS,
    seed: str = "",
) -> np.ndarray:
    """The split index (into `list(ratios)`) of each key."""
    normalized = validate_ratios(ratios)
    bounds = np.cumsum(list(normalized.values()))
    bounds[-1] = 1.0
    return np.searchsorted(bounds, unit_hash(keys, seed), side="right").astype(np.int64)


def split_names(
    keys: Sequence[int] | Sequence[str] | np.ndarray,
    ratios: Mapping[str, float] = DEFAULT_RATIOS,
    seed: str = "",
) -> list[str]:
    names = list(ratios)
    return [names[i] for i in assign_splits(keys, ratios, seed).tolist()]


def time_split(
    times: np.ndarray, test_fraction: float, *, dev_fraction: float = 0.0
) -> tuple[np.ndarray, float, float]:
    """Split by time: the newest `test_fraction` of groups (by their `times`) is test, the next dev.

    Returns (split index per group: 0 train, 1 dev, 2 test), and the dev and test start times.
    """
    if not 0 <= test_fraction < 1 or not 0 <= dev_fraction < 1 or test_fraction + dev_fraction >= 1:
        raise ValueError("fractions must be in [0, 1) and sum below 1")
    test_start = float(np.quantile(times, 1 - test_fraction)) if len(times) and test_fraction else np.inf
    dev_start = (
        float(np.quantile(times, 1 - test_fraction - dev_fraction))
        if len(times) and dev_fraction
        else test_start
    )
    out = np.zeros(len(times), dtype=np.int64)
    out[times >= dev_start] = 1
    out[times >= test_start] = 2
    return out, dev_start, test_start
