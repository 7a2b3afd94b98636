"""Cut a channel's message flow into conversations.

Walking each stream (a channel, or a thread inside it) in time order, a message joins:

1. its **reply parent's** conversation, when the parent is an earlier kept message of the
   same stream (a late answer revives the old conversation instead of starting one);
2. otherwise the **previous message's** conversation, when it came at most `max_gap_ms`
   later and is not an `@everyone`/`@here` announcement;
3. otherwise a new conversation.

Channel and thread changes are always boundaries. A reply whose parent is absent (outside
the export, or dropped as a bot/system message) falls back to rule 2 and is counted by
cause. A conversation is *kept* when it has at least `min_messages` meaningful messages
from at least two people; the others stay in the data, marked, and give no examples.

The default gap (15 min) is measured on the ElizaOS 💻-coders samples (README: 95% of
consecutive messages come within 14.6 min; a 2 h gap joins nearly the whole day).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.discord.model import Message

DEFAULT_MAX_GAP_MINUTES = 15.0


@dataclass
class Conversation:
    id: int  # the id of its first message
    channel_id: int
    thread: str
    start_ms: int
    end_ms: int
    message_ids: list[int] = field(default_factory=list)
    participants: dict[int, None] = field(default_factory=dict)  # authors, in order of first message
    meaningful: int = 0
    speakers: set[int] = field(default_factory=set)  # authors of meaningful messages
    kept: bool = False


@dataclass
class Threading:
    conversation_of: dict[int, int]  # message id -> conversation id
    conversations: dict[int, Conversation]
    counts: Counter[str]


def thread_messages(
    ordered: Sequence[Message],
    dropped: dict[int, str],
    *,
    max_gap_ms: int,
    min_messages: int = 3,
) -> Threading:
    """Assign every message of `ordered` (sorted by channel, thread, time, id) to a conversation."""
    conversation_of: dict[int, int] = {}
    conversations: dict[int, Conversation] = {}
    counts: Counter[str] = Counter()
    replies = resolved = announcements = 0
    previous: Message | None = None
    current: Conversation | None = None  # the previous message's conversation
    for message in ordered:
        same_stream = (
            previous is not None
            and previous.channel_id == message.channel_id
            and previous.thread == message.thread
        )
        conversation: Conversation | None = None
        parent = message.reply_to
        if parent:
            replies += 1
            held = conversation_of.get(parent)
            if held is None:
                counts[
                    f"reply_parent_dropped_{dropped[parent]}" if parent in dropped else "reply_parent_missing"
                ] += 1
            else:
                candidate = conversations[held]
                if candidate.channel_id == message.channel_id and candidate.thread == message.thread:
                    conversation = candidate
                    resolved += 1
                else:
                    counts["reply_parent_other_stream"] += 1
        if message.everyone:
            announcements += 1
        elif (
            conversation is None
            and same_stream
            and previous is not None
            and message.ts_ms - previous.ts_ms <= max_gap_ms
        ):
            conversation = current
        if conversation is None:
            conversation = Conversation(
                message.id, message.channel_id, message.thread, message.ts_ms, message.ts_ms
            )
            conversations[message.id] = conversation
        elif message.ts_ms > conversation.end_ms:
            conversation.end_ms = message.ts_ms
        conversation.message_ids.append(message.id)
        conversation.participants[message.author_id] = None
        if message.meaningful:
            conversation.meaningful += 1
            conversation.speakers.add(message.author_id)
        conversation_of[message.id] = conversation.id
        previous = message
        current = conversation
    counts["replies"] = replies
    counts["replies_resolved"] = resolved
    counts["announcements"] = announcements
    for conversation in conversations.values():
        conversation.kept = conversation.meaningful >= min_messages and len(conversation.speakers) >= 2
        counts["conversations_kept" if conversation.kept else "conversations_too_small"] += 1
    counts["conversations"] = len(conversations)
    return Threading(conversation_of, conversations, counts)
