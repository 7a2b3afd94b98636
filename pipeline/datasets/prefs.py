"""Preference pairs (prompt, chosen, rejected) from the replies to a tweet.

Two kinds:
- **gold**: a reply by a gold account (default @visakanv) is chosen over another account's reply
  to the same tweet, drawn at random with a seed (deterministic per tweet, whatever the order).
- **engagement**: among a tweet's replies, a *later* reply with higher normalized quality is chosen
  over an *earlier* one of similar length (within a relative tolerance) with lower quality. Later
  replies had less time and exposure, so the order works against the chosen side: when it still
  wins on reach-normalized, time-normalized quality, the preference is not just early-bird luck.

Each pair keeps both tweet ids, times, authors and quality scores, in TRL's conversational
preference format (`prompt`, `chosen`, `rejected` as lists of messages).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.datasets.chatml import DEFAULT_SYSTEM_TEMPLATE

TURN = pa.struct([("role", pa.string()), ("content", pa.string())])

PREF_SCHEMA = pa.schema(
    [
        pa.field("prompt", pa.list_(TURN)),
        pa.field("chosen", pa.list_(TURN)),
        pa.field("rejected", pa.list_(TURN)),
        pa.field("kind", pa.string()),
        pa.field("conversation_id", pa.int64()),
        pa.field("prompt_tweet_id", pa.int64()),
        pa.field("chosen_tweet_id", pa.int64()),
        pa.field("rejected_tweet_id", pa.int64()),
        pa.field("chosen_created_at", pa.timestamp("ms", tz="UTC")),
        pa.field("rejected_created_at", pa.timestamp("ms", tz="UTC")),
        pa.field("chosen_author", pa.string()),
        pa.field("rejected_author", pa.string()),
        pa.field("chosen_score", pa.float64()),
        pa.field("rejected_score", pa.float64()),
        pa.field("margin", pa.float64()),
    ]
)

PREF_FIELDS = {
    "prompt": "system message and the tweet being replied to (`user`)",
    "chosen": "the preferred reply (`assistant`)",
    "rejected": "the other reply (`assistant`)",
    "kind": "`gold` (a gold account's reply vs another) or `engagement` (later, higher quality vs earlier, lower)",
    "conversation_id": "root tweet of the tree (splits never separate a tree)",
    "prompt_tweet_id": "the tweet replied to",
    "chosen_tweet_id": "source tweet of `chosen`",
    "rejected_tweet_id": "source tweet of `rejected`",
    "chosen_created_at": "time of `chosen`",
    "rejected_created_at": "time of `rejected`",
    "chosen_author": "handle of `chosen`'s author",
    "rejected_author": "handle of `rejected`'s author",
    "chosen_score": "quality of `chosen` (0-1)",
    "rejected_score": "quality of `rejected` (0-1)",
    "margin": "chosen_score - rejected_score (usable as a reward-model margin)",
}


class PairConfig(BaseModel):
    gold_accounts: list[str] = Field(default_factory=lambda: ["visakanv"])
    margin: float = Field(0.1, ge=0, description="engagement: minimum quality difference")
    length_tolerance: float = Field(0.3, ge=0, description="engagement: max relative length difference")
    max_pairs_per_tweet: int = Field(3, ge=1)
    engagement_assistant: str = Field(
        "a member of the community", description="assistant name in engagement prompts"
    )
    seed: int = 0


@dataclass
class Reply:
    tweet_id: int
    author: int
    handle: str
    created_ms: int
    text: str
    quality: float


def _rng(seed: int, *keys: int) -> random.Random:
    digest = hashlib.blake2b(repr((seed, *keys)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _pair(
    kind: str,
    conversation_id: int,
    prompt_id: int,
    prompt: list[dict[str, str]],
    chosen: Reply,
    rejected: Reply,
) -> dict[str, Any]:
    known = chosen.quality == chosen.quality and rejected.quality == rejected.quality
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen.text}],
        "rejected": [{"role": "assistant", "content": rejected.text}],
        "kind": kind,
        "conversation_id": conversation_id,
        "prompt_tweet_id": prompt_id,
        "chosen_tweet_id": chosen.tweet_id,
        "rejected_tweet_id": rejected.tweet_id,
        "chosen_created_at": _time(chosen.created_ms),
        "rejected_created_at": _time(rejected.created_ms),
        "chosen_author": chosen.handle,
        "rejected_author": rejected.handle,
        "chosen_score": chosen.quality if chosen.quality == chosen.quality else None,
        "rejected_score": rejected.quality if rejected.quality == rejected.quality else None,
        "margin": chosen.quality - rejected.quality if known else None,
    }


def pairs_for_tweet(
    *,
    conversation_id: int,
    parent_id: int,
    parent_text: str,
    parent_name: str,
    parent_ms: int,
    replies: list[Reply],
    gold: set[str],
    config: PairConfig,
    system_template: str = DEFAULT_SYSTEM_TEMPLATE,
    skipped: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Gold and engagement pairs among the replies to one tweet (replies sorted by time)."""
    skipped = skipped if skipped is not None else {}
    date = _time(parent_ms).date().isoformat()

    def prompt(assistant: str) -> list[dict[str, str]]:
        system = system_template.format(user=parent_name, assistant=assistant, date=date)
        return [{"role": "system", "content": system}, {"role": "user", "content": parent_text}]

    for chosen in replies:
        if chosen.handle.lower() not in gold:
            continue
        others = [r for r in replies if r.author != chosen.author]
        if not others:
            skipped["gold reply with no other account's reply to compare"] = (
                skipped.get("gold reply with no other account's reply to compare", 0) + 1
            )
            continue
        rejected = _rng(config.seed, parent_id, chosen.tweet_id).choice(others)
        yield _pair("gold", conversation_id, parent_id, prompt(chosen.handle), chosen, rejected)

    made = 0
    for later_index, later in enumerate(replies):
        if made >= config.max_pairs_per_tweet or later.quality != later.quality:
            continue
        best: Reply | None = None
        for earlier in replies[:later_index]:
            if earlier.quality != earlier.quality or earlier.created_ms >= later.created_ms:
                continue
            if later.quality - earlier.quality < config.margin:
                continue
            longest = max(len(later.text), len(earlier.text), 1)
            if abs(len(later.text) - len(earlier.text)) / longest > config.length_tolerance:
                continue
            if best is None or abs(len(earlier.text) - len(later.text)) < abs(
                len(best.text) - len(later.text)
            ):
                best = earlier
        if best is not None:
            made += 1
            yield _pair(
                "engagement", conversation_id, parent_id, prompt(config.engagement_assistant), later, best
            )
