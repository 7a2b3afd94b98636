"""Group-disjoint hash splits and time splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.datasets.splits import assign_splits, split_names, time_split, unit_hash


def test_deterministic_and_proportional() -> None:
    keys = np.arange(1_500_000_000_000_000_000, 1_500_000_000_000_100_000, dtype=np.int64)
    first = assign_splits(keys, {"train": 0.8, "dev": 0.1, "test": 0.1})
    assert (first == assign_splits(keys, {"train": 0.8, "dev": 0.1, "test": 0.1})).all()
    shares = np.bincount(first, minlength=3) / len(keys)
    assert np.allclose(shares, [0.8, 0.1, 0.1], atol=0.01)
    reseeded = assign_splits(keys, {"train": 0.8, "dev": 0.1, "test": 0.1}, seed="other")
    assert (reseeded != first).mean() > 0.2


def test_string_keys_and_list_keys_agree_with_arrays() -> None:
    assert (
        split_names(["conv-a", "conv-b", "conv-a"], {"a": 0.5, "b": 0.5})[0]
        == split_names(["conv-a"], {"a": 0.5, "b": 0.5})[0]
    )
    ints = [12345, 67890]
    assert (assign_splits(ints) == assign_splits(np.array(ints, dtype=np.int64))).all()
    u = unit_hash(np.arange(10_000, dtype=np.int64))
    assert u.min() >= 0 and u.max() < 1


@given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=1, max_size=200))
def test_every_group_in_exactly_one_split(keys: list[int]) -> None:
    # rows of the same group, repeated and shuffled, always get the same split
    rows = keys + keys[::-1]
    splits = assign_splits(rows)
    by_key: dict[int, set[int]] = {}
    for key, split in zip(rows, splits.tolist(), strict=True):
        by_key.setdefault(key, set()).add(split)
    assert all(len(s) == 1 for s in by_key.values())


def test_time_split_puts_the_newest_in_test() -> None:
    times = np.arange(100, dtype=np.float64)
    split, dev_start, test_start = time_split(times, 0.1, dev_fraction=0.1)
    assert (split[times >= test_start] == 2).all() and (split == 2).sum() == 10
    assert (split == 1).sum() == 10 and (split == 0).sum() == 80 and dev_start < test_start
    with pytest.raises(ValueError):
        time_split(times, 0.6, dev_fraction=0.5)


def test_bad_ratios_are_rejected() -> None:
    with pytest.raises(ValueError):
        assign_splits([1, 2], {"train": -1.0, "test": 2.0})
