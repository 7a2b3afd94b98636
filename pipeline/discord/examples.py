"""Instruction examples: one per (persona, target message), in the shared ChatML message schema.

An example is three messages:

- `system`: "You are {name}. {personality description}",
- `user`: the conversation so far in ElizaOS's recent-messages style (`HH:MM (N minutes
  ago) Name: text`, oldest first, times UTC), the message being answered, and an
  instruction drawn from the templates below,
- `assistant`: the persona's real message (`train: true`).

Messages carry the same fields as the Twitter datasets (`role, content, name, train,
tweet_ids, created_at`; for Discord, `tweet_ids` holds the source message ids), so
training code treats both sources alike.

Variation: the context length is drawn between 1 and `context_window` (sometimes the full
window), targets come from every position of a conversation (an opener has no context),
and the template is drawn among those that apply: the mention template needs someone
being answered, the topic template a profile topic that the message talks about.

Balancing: each persona gets `examples_per_user` examples. A persona with more targets is
sampled (seeded); one with fewer is upsampled with other templates and context lengths,
at most `max_variants_per_target` times per target.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.datasets.chatml import MESSAGE_TYPE
from pipeline.discord.extract import DiscordData
from pipeline.discord.privacy import Scrubber
from pipeline.discord.profiles import Profile, tokens

SYSTEM_TEMPLATE = "You are {USERNAME}. {PERSONALITY_DESCRIPTION}"
TEMPLATES: dict[str, str] = {
    "next_message": "Write the next message from the perspective of {USERNAME}.",
    "continue": "Continue the conversation as {USERNAME}.",
    "respond_to": "Respond to {MENTION} in the style of {USERNAME}.",
    "topic": "Address the topic of {TOPIC} as {USERNAME}.",
}

EXAMPLE_SCHEMA = pa.schema(
    [
        pa.field("messages", pa.list_(MESSAGE_TYPE)),
        pa.field("example_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("conversation_id", pa.int64()),
        pa.field("channel", pa.string()),
        pa.field("persona", pa.string()),
        pa.field("persona_user_id", pa.int64()),
        pa.field("template", pa.string()),
        pa.field("context_messages", pa.int32()),
        pa.field("position", pa.int32()),
        pa.field("target_id", pa.int64()),
        pa.field("created_at", pa.timestamp("ms", tz="UTC")),
    ]
)

EXAMPLE_FIELDS = {
    "messages": "system (persona and description), user (recent messages + instruction), assistant (the "
    "persona's real message, `train: true`); each with `role, content, name, train, tweet_ids` (source "
    "Discord message ids) and `created_at`",
    "example_id": "`{target message id}:{variant}`",
    "source": "`discord` (real messages)",
    "conversation_id": "id of the conversation's first message (splits never separate a conversation)",
    "channel": "channel name (and thread, after a slash)",
    "persona": "the persona's display name",
    "persona_user_id": "the persona's Discord user id",
    "template": "instruction template: " + ", ".join(f"`{k}`" for k in TEMPLATES),
    "context_messages": "earlier messages shown as context",
    "position": "index of the target message within its conversation",
    "target_id": "Discord id of the target message",
    "created_at": "time of the target message",
}


@dataclass
class ExampleOptions:
    examples_per_user: int = 200
    context_window: int = 10
    max_variants_per_target: int = 3
    seed: int = 0


def _relative(delta_ms: int) -> str:
    minutes = delta_ms // 60_000
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    days = hours // 24
    return f"{days} day{'s' if days != 1 else ''} ago"


def _clock(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M")


@dataclass
class _Target:
    row: int
    conversation: int
    position: int


class ExampleBuilder:
    """Builds examples for the profiled personas from a data folder."""

    def __init__(self, data: DiscordData, profiles: list[Profile], options: ExampleOptions):
        self.data = data
        self.profiles = {int(p.user_id): p for p in profiles}
        self.options = options
        self.scrubber = Scrubber()  # extract scrubbed already; this counts anything a profile brings in
        m = data.messages
        self.row_of = {ident: i for i, ident in enumerate(m["id"])}
        kept = {
            c
            for c, k in zip(data.conversations["conversation_id"], data.conversations["kept"], strict=True)
            if k
        }
        self.rows_of: dict[int, list[int]] = {}
        for i, conversation in enumerate(m["conversation_id"]):
            if conversation in kept:
                self.rows_of.setdefault(conversation, []).append(i)
        self.names = {uid: user.display_name for uid, user in data.users.items()}
        self.channel_names = {cid: c.name for cid, c in data.channels.items()}
        self._targets: dict[int, list[_Target]] | None = None

    def _name(self, uid: int) -> str:
        return self.names.get(uid, str(uid))

    def targets(self, uid: int) -> list[_Target]:
        """The persona's messages that can be targets, in id order."""
        if self._targets is None:
            m = self.data.messages
            authors, blocks = m["author_id"], m["target_block"]
            self._targets = {}
            for conversation, rows in self.rows_of.items():
                for position, i in enumerate(rows):
                    if blocks[i] is None and authors[i] in self.profiles:
                        self._targets.setdefault(authors[i], []).append(_Target(i, conversation, position))
            for found in self._targets.values():
                found.sort(key=lambda t: t.row)  # rows are in (channel, thread, time) order
        return list(self._targets.get(uid, []))

    def _answered(self, target: _Target) -> int | None:
        """The row the target answers: its reply parent, else the last message by someone else."""
        m = self.data.messages
        parent = m["reply_to"][target.row]
        if parent and parent in self.row_of:
            return self.row_of[parent]
        rows = self.rows_of[target.conversation]
        author = m["author_id"][target.row]
        for i in reversed(rows[: target.position]):
            if m["author_id"][i] != author:
                return i
        return None

    def _line(self, i: int, now_ms: int) -> str:
        m = self.data.messages
        ts = m["ts"][i]
        return f"{_clock(ts)} ({_relative(now_ms - ts)}) {self._name(m['author_id'][i])}: {m['content'][i]}"

    def example(self, target: _Target, variant: int, rng: random.Random) -> dict[str, Any]:
        m = self.data.messages
        i = target.row
        uid = m["author_id"][i]
        profile = self.profiles[uid]
        persona = self._name(uid)
        now = m["ts"][i]
        rows = self.rows_of[target.conversation]
        window = self.options.context_window
        length = 0 if not window else (window if rng.random() < 0.3 else rng.randint(1, window))
        context = rows[max(0, target.position - length) : target.position]
        answered = self._answered(target)
        lines = [self._line(j, now) for j in context]
        parts = ["# Conversation Messages", "\n".join(lines) if lines else "(no earlier messages)"]
        if answered is not None and answered not in context:
            parts += ["# In reply to", self._line(answered, now)]
        choices = ["next_message", "continue"]
        if answered is not None:
            choices.append("respond_to")
        target_words = set(tokens(m["content"][i]))
        topics = [t for t in profile.topics if t in target_words]
        if topics:
            choices.append("topic")
        template = choices[(variant + rng.randrange(len(choices))) % len(choices)]
        instruction = TEMPLATES[template].format(
            USERNAME=persona,
            MENTION=self._name(m["author_id"][answered]) if answered is not None else "",
            TOPIC=topics[0] if topics else "",
        )
        parts += ["# Instruction", instruction]
        description = profile.llm_summary or profile.description
        channel = self.channel_names.get(m["channel_id"][i], str(m["channel_id"][i]))
        if m["thread"][i]:
            channel = f"{channel}/{m['thread'][i]}"
        created = dt.datetime.fromtimestamp(now / 1000, dt.UTC)
        context_ids = [m["id"][j] for j in context]
        return {
            "messages": [
                {
                    "role": "system",
                    "content": self.scrubber.scrub(
                        SYSTEM_TEMPLATE.format(USERNAME=persona, PERSONALITY_DESCRIPTION=description)
                    ),
                    "name": None,
                    "train": False,
                    "tweet_ids": [],
                    "created_at": None,
                },
                {
                    "role": "user",
                    "content": "\n".join(parts),
                    "name": None,
                    "train": False,
                    "tweet_ids": context_ids,
                    "created_at": dt.datetime.fromtimestamp(m["ts"][context[-1]] / 1000, dt.UTC)
                    if context
                    else None,
                },
                {
                    "role": "assistant",
                    "content": m["content"][i],
                    "name": persona,
                    "train": True,
                    "tweet_ids": [m["id"][i]],
                    "created_at": created,
                },
            ],
            "example_id": f"{m['id'][i]}:{variant}",
            "source": "discord",
            "conversation_id": target.conversation,
            "channel": channel,
            "persona": persona,
            "persona_user_id": uid,
            "template": template,
            "context_messages": len(context),
            "position": target.position,
            "target_id": m["id"][i],
            "created_at": created,
        }

    def for_persona(self, uid: int) -> Iterator[dict[str, Any]]:
        """Exactly `examples_per_user` examples, or fewer when variants run out (balanced)."""
        options = self.options
        rng = random.Random(f"{options.seed}:{uid}")
        targets = self.targets(uid)
        rng.shuffle(targets)
        wanted = options.examples_per_user
        made = 0
        for variant in range(options.max_variants_per_target):
            for target in targets:
                if made >= wanted:
                    return
                yield self.example(target, variant, rng)
                made += 1

    def all(self) -> Iterator[dict[str, Any]]:
        for uid in self.profiles:
            yield from self.for_persona(uid)
