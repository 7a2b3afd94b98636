"""Discord records shared by the steps: messages, users (with their display-name history), channels.

Ids are Discord snowflakes held as Python ints (they fit in int64); times are epoch
milliseconds, UTC. A snowflake encodes its own creation time (`snowflake_ms`), which the
loaders use to catch clock skew in exported timestamps.
"""

from __future__ import annotations

import msgspec

DISCORD_EPOCH_MS = 1_420_070_400_000

DEFAULT_KIND = "Default"
REPLY_KIND = "Reply"
CONVERSATIONAL_KINDS = frozenset({DEFAULT_KIND, REPLY_KIND})
"""Every other kind (pins, joins, ThreadCreated, numeric kinds such as "20") is a system message."""


def snowflake_ms(snowflake: int) -> int:
    """The creation time (epoch ms, UTC) a Discord id encodes."""
    return (snowflake >> 22) + DISCORD_EPOCH_MS


def snowflake_at(ms: int, sequence: int = 0) -> int:
    """A snowflake minted at `ms` (for generated data and tests)."""
    return ((ms - DISCORD_EPOCH_MS) << 22) | (sequence & 0x3FFFFF)


class Message(msgspec.Struct, gc=False):
    """One message after loading: text normalized, times UTC, references as ids (0 = none)."""

    id: int
    channel_id: int
    thread: str  # "" outside a thread; a forum post's thread name (ai-news) otherwise
    ts_ms: int
    author_id: int
    content: str
    kind: str = DEFAULT_KIND
    reply_to: int = 0
    mentions: tuple[int, ...] = ()
    reactions: int = 0  # reactions received (sum of counts)
    attachments: tuple[str, ...] = ()  # file names
    edited: bool = False
    everyone: bool = False  # pings @everyone/@here (an announcement: a conversation boundary)
    interaction: bool = False  # a response to a slash command
    meaningful: bool = False  # set after scrubbing (pipeline.discord.filters.is_meaningful)


class NameSeen(msgspec.Struct):
    """A display name and the first and last time (epoch ms) an export showed it."""

    name: str
    first_ms: int
    last_ms: int


class User(msgspec.Struct):
    id: int
    name: str  # account name (username)
    display_names: list[NameSeen] = msgspec.field(default_factory=list)
    roles: list[str] = msgspec.field(default_factory=list)
    is_bot: bool = False

    @property
    def display_name(self) -> str:
        """The most recently seen display name, else the account name."""
        if not self.display_names:
            return self.name
        return max(self.display_names, key=lambda seen: seen.last_ms).name

    def saw(self, display: str | None, ms: int) -> None:
        if not display:
            return
        for seen in self.display_names:
            if seen.name == display:
                seen.first_ms = min(seen.first_ms, ms)
                seen.last_ms = max(seen.last_ms, ms)
                return
        self.display_names.append(NameSeen(display, ms, ms))


class Channel(msgspec.Struct):
    id: int
    name: str
    topic: str | None = None
    category: str | None = None
    guild: str | None = None
