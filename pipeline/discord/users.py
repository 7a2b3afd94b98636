"""Per-user activity from an extracted data folder, and the pick of regular users.

For each user: messages, conversations, channels, days active, active hours (UTC),
response latency (time from the message answered, the reply parent or else the previous
message by someone else in the conversation), whom they reply to, reactions received,
and how often they repeat themselves.

**Regularity score** = days active × log2(1 + conversations) × (1 − duplicate share).
It grows with steady presence across days and conversations, barely with volume: a user
posting 500 messages in one afternoon scores below one posting 5 a day for a month, and
someone pasting the same line over and over is discounted by the repeats.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from pydantic import BaseModel, Field

from pipeline.discord.extract import DiscordData

DAY_MS = 86_400_000


class UserStats(BaseModel):
    user_id: str  # snowflakes as strings: JSON readers lose precision on 64-bit ints
    name: str
    display_name: str
    display_names: list[str] = Field(
        default_factory=list, description="every display name seen, oldest first"
    )
    messages: int = 0
    meaningful: int = 0
    conversations: int = 0
    channels: dict[str, int] = Field(default_factory=dict)
    days_active: int = 0
    first_at_ms: int = 0
    last_at_ms: int = 0
    active_hours: list[int] = Field(default_factory=lambda: [0] * 24, description="messages per UTC hour")
    median_latency_s: float | None = None
    replies: int = 0
    replies_to: dict[str, int] = Field(default_factory=dict, description="display name -> replies to them")
    replied_by: dict[str, int] = Field(default_factory=dict, description="display name -> replies from them")
    reactions_received: int = 0
    duplicate_share: float = 0.0
    score: float = 0.0

    @property
    def conversation_rate(self) -> float:
        """Conversations per active day."""
        return self.conversations / self.days_active if self.days_active else 0.0


def regularity_score(days_active: int, conversations: int, duplicate_share: float) -> float:
    return days_active * math.log2(1 + conversations) * (1.0 - duplicate_share)


def user_stats(data: DiscordData) -> dict[int, UserStats]:
    m = data.messages
    ids, authors, times = m["id"], m["author_id"], m["ts"]
    conversation = m["conversation_id"]
    index_of = {ident: i for i, ident in enumerate(ids)}
    by_user: dict[int, list[int]] = defaultdict(list)
    for i, author in enumerate(authors):
        by_user[author].append(i)
    # the message each one answers: its reply parent, else the last one by someone else in the conversation
    answered: list[int] = [-1] * len(ids)
    reply_column = m["reply_to"]
    state: dict[int, tuple[int, int, int]] = {}  # conversation -> (last index, its author, last by another)
    for i, conv in enumerate(conversation):
        author = authors[i]
        parent = reply_column[i]
        last, last_author, before = state.get(conv, (-1, -1, -1))
        j = index_of.get(parent, -1) if parent else -1
        if j < 0:
            j = last if last_author != author else before
        answered[i] = j if j < 0 or authors[j] != author else -1  # answering oneself is no response
        state[conv] = (i, author, last if last_author != author else before)
    names = {uid: user.display_name for uid, user in data.users.items()}
    channel_names = {cid: channel.name for cid, channel in data.channels.items()}
    replied_by: dict[int, Counter[str]] = defaultdict(Counter)
    stats: dict[int, UserStats] = {}
    channel_ids, reactions_column, contents, reply_to = (
        m["channel_id"],
        m["reactions"],
        m["content"],
        m["reply_to"],
    )
    for uid, rows in by_user.items():
        user = data.users.get(uid)
        name = user.name if user else str(uid)
        hours = [0] * 24
        days = set()
        channel_counts: Counter[int] = Counter()
        latencies: list[float] = []
        replies_to: Counter[str] = Counter()
        texts: Counter[str] = Counter()
        reactions = 0
        for i in rows:
            ts = times[i]
            hours[(ts // 3_600_000) % 24] += 1
            days.add(ts // DAY_MS)
            channel_counts[channel_ids[i]] += 1
            reactions += reactions_column[i]
            texts[contents[i].strip().lower()] += 1
            j = answered[i]
            if j >= 0:
                latencies.append((ts - times[j]) / 1000)
                if reply_to[i]:
                    target = names.get(authors[j], str(authors[j]))
                    replies_to[target] += 1
                    replied_by[authors[j]][names.get(uid, name)] += 1
        channels = Counter({channel_names.get(c, str(c)): n for c, n in channel_counts.items()})
        latencies.sort()
        duplicates = sum(n - 1 for n in texts.values())
        stats[uid] = UserStats(
            user_id=str(uid),
            name=name,
            display_name=names.get(uid, name),
            display_names=[s.name for s in sorted(user.display_names, key=lambda s: s.first_ms)]
            if user
            else [],
            messages=len(rows),
            meaningful=sum(1 for i in rows if m["meaningful"][i]),
            conversations=len({conversation[i] for i in rows}),
            channels=dict(channels.most_common()),
            days_active=len(days),
            first_at_ms=times[rows[0]],
            last_at_ms=times[rows[-1]],
            active_hours=hours,
            median_latency_s=latencies[len(latencies) // 2] if latencies else None,
            replies=sum(1 for i in rows if m["reply_to"][i]),
            replies_to=dict(replies_to.most_common(10)),
            reactions_received=reactions,
            duplicate_share=duplicates / len(rows),
        )
    for uid, counter in replied_by.items():
        if uid in stats:
            stats[uid].replied_by = dict(counter.most_common(10))
    for s in stats.values():
        s.score = regularity_score(s.days_active, s.conversations, s.duplicate_share)
    return stats


def top_users(stats: dict[int, UserStats], *, min_messages: int, top: int) -> list[UserStats]:
    """The `top` users with at least `min_messages`, by regularity score (ties: more messages, then id)."""
    eligible = [s for s in stats.values() if s.messages >= min_messages]
    eligible.sort(key=lambda s: (-s.score, -s.messages, int(s.user_id)))
    return eligible[:top]


def summary(stats: dict[int, UserStats]) -> dict[str, Any]:
    counts = sorted((s.messages for s in stats.values()), reverse=True)
    return {
        "users": len(counts),
        "users_20_plus": sum(1 for c in counts if c >= 20),
        "users_50_plus": sum(1 for c in counts if c >= 50),
        "users_100_plus": sum(1 for c in counts if c >= 100),
    }
