"""Splits for Discord examples: 80/10/10 by conversation, plus a held-out-users split.

Conversations go to train/dev/test by the project's group-disjoint hash
(`pipeline.datasets.splits`), so no conversation straddles two of them. On top, a seeded
hash picks `heldout_user_fraction` of the personas (at least one when there are two or
more); every example of theirs goes to `heldout_users`, so those personas are never a
training target, to measure how a model generalizes to people it has not seen. (Their
messages can still appear as *context* in other personas' examples: they are part of the
conversations everyone else had.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.datasets.splits import split_names, unit_hash

HELDOUT_USERS = "heldout_users"


def heldout_personas(user_ids: Sequence[int], fraction: float, seed: int) -> set[int]:
    if fraction <= 0 or len(user_ids) < 2:
        return set()
    ids = np.asarray(sorted(set(user_ids)), dtype=np.int64)
    scores = unit_hash(ids, seed=f"heldout:{seed}")
    count = max(1, round(fraction * len(ids)))
    return {int(ids[i]) for i in np.argsort(scores, kind="stable")[:count]}


def assign(
    conversation_ids: Sequence[int],
    persona_ids: Sequence[int],
    ratios: Mapping[str, float],
    heldout: set[int],
    seed: int,
) -> list[str]:
    """The split of each example (given its conversation and persona)."""
    names = split_names(np.asarray(conversation_ids, dtype=np.int64), ratios, seed=f"discord:{seed}")
    return [HELDOUT_USERS if p in heldout else s for s, p in zip(names, persona_ids, strict=True)]
