"""Which messages are conversation, and which of those can be a training target.

Dropped before threading (counted by reason): bot authors, system messages (every kind
but Default and Reply: pins, joins, ThreadCreated, numeric kinds such as "20", the
slash-command response), ai-news's unlabelled system notices, and blocklisted messages.
Replies stay. A kept message is *meaningful* (it counts towards a conversation's
exchanges and may be a target) unless it is a pure reaction (emoji or "+1"), a lone link,
a lone attachment, or a single word.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from pipeline.discord.model import CONVERSATIONAL_KINDS, Message, User

# what DCE writes as the content of system messages, for exports that do not label their kind
SYSTEM_TEXTS = frozenset(
    {
        "Pinned a message.",
        "Started a thread.",
        "Joined the server.",
        "Started a call.",
        "Changed the channel name.",
        "Changed the channel icon.",
        "Added a recipient.",
        "Removed a recipient.",
    }
)

_URL = re.compile(r"<?https?://\S+>?")
_PLACEHOLDER = re.compile(r"\[(attachment|sticker|embed)[^\]]*\]")
_MENTION_TOKEN = re.compile(r"@\S+")
_CUSTOM_EMOJI = re.compile(r":\w+:")
_WORD = re.compile(r"[^\W\d_]{2,}")
_NEEDS_CLEANING = re.compile(r"https?:|\[|@|:\w+:")
_REACTION_WORDS = frozenset({"+1", "-1", "lol", "lmao", "lmfao", "ty", "thx", "gm", "gn", "ok", "k", "kk"})


def drop_reason(message: Message, users: dict[int, User], blocklist: re.Pattern[str] | None) -> str | None:
    """Why a message is not conversation, or None when it is."""
    user = users.get(message.author_id)
    if user is not None and user.is_bot:
        return "bot"
    if message.interaction:
        return "slash_command"
    if message.kind not in CONVERSATIONAL_KINDS:
        return "system"
    if message.content in SYSTEM_TEXTS:
        return "system"
    if blocklist is not None and blocklist.search(message.content):
        return "blocklist"
    return None


def is_meaningful(content: str) -> bool:
    """At least two words of text once links, placeholders, mentions and emoji are removed."""
    if not _NEEDS_CLEANING.search(content):  # the common case: plain text
        first = _WORD.search(content)
        return first is not None and _WORD.search(content, first.end()) is not None
    text = _URL.sub(" ", content)
    text = _PLACEHOLDER.sub(" ", text)
    text = _MENTION_TOKEN.sub(" ", text)
    text = _CUSTOM_EMOJI.sub(" ", text)
    return len(_WORD.findall(text)) >= 2


def target_reason(content: str) -> str | None:
    """Why a kept message cannot be a target (counted), or None."""
    stripped = content.strip()
    if _URL.fullmatch(stripped):
        return "lone_link"
    if _PLACEHOLDER.fullmatch(stripped):
        return "lone_attachment"
    if stripped.lower() in _REACTION_WORDS or not _WORD.search(_CUSTOM_EMOJI.sub(" ", stripped)):
        return "reaction"
    if not is_meaningful(stripped):
        return "one_word"
    return None


def compile_blocklist(terms: Iterable[str]) -> re.Pattern[str] | None:
    words = [re.escape(t.strip()) for t in terms if t.strip()]
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)


def partition(
    messages: Iterable[Message], users: dict[int, User], blocklist: re.Pattern[str] | None
) -> tuple[list[Message], dict[int, str], Counter[str]]:
    """(kept messages, {dropped id: reason}, counts of drop reasons)."""
    kept: list[Message] = []
    dropped: dict[int, str] = {}
    counts: Counter[str] = Counter()
    for message in messages:
        reason = drop_reason(message, users, blocklist)
        if reason is None:
            kept.append(message)
        else:
            dropped[message.id] = reason
            counts[reason] += 1
    return kept, dropped, counts
