"""Load Discord exports in any of three shapes, detected from their content.

- **DiscordChatExporter JSON** (`guild`, `channel`, `messages` with full `author` objects),
- **compact** (`channel`, `date`, `users`, `messages` with `ts`/`uid`/`ref`; made by
  discord-summarizer from DCE; Pacific-time offsets, one file per local day),
- **ai-news raw** (the compact shape written by discord.js: UTC `Z` times, Discord-API
  attachments, forum posts flattened with `threadName`, raw `<@id>` mentions).

Files are decoded straight into typed structs with msgspec (the compact path is the hot
one). Everything lands in one `Corpus`: messages deduplicated by id across overlapping
exports, users keyed by snowflake with every display name an export showed (nicknames
change), channels. Times become UTC epoch ms; a timestamp that disagrees with the time
its snowflake id encodes by more than `max_skew_s` is replaced by the snowflake's and
counted. A file whose shape is none of these is a `DiscordFormatError` naming the file.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from pipeline.discord.model import DEFAULT_KIND, REPLY_KIND, Channel, Message, User, snowflake_ms

log = logging.getLogger(__name__)

FORMATS = ("dce", "compact", "ai-news")


class DiscordFormatError(ValueError):
    """A file that is not a Discord export in a known shape."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# -- compact and ai-news raw --------------------------------------------------------------------------


class _Reaction(msgspec.Struct):
    emoji: Any = None
    count: int = 0


class _ApiAttachment(msgspec.Struct):
    filename: str | None = None
    fileName: str | None = None
    url: str | None = None


class _Sticker(msgspec.Struct):
    name: str | None = None


class _CompactMessage(msgspec.Struct):
    id: int  # snowflakes are strings in the file; strict=False decoding makes them ints
    ts: str
    uid: int
    content: str = ""
    type: str | int | None = None
    mentions: list[int] = []
    ref: int | None = None
    edited: str | None = None
    reactions: list[_Reaction] = []
    attachments: list[_ApiAttachment] = []
    embeds: list[Any] = []
    sticker_items: list[_Sticker] = []
    threadName: str | None = None


class _CompactUser(msgspec.Struct):
    name: str
    nickname: str | None = None
    roles: list[str] = []
    isBot: bool = False


class _CompactChannel(msgspec.Struct):
    id: str
    name: str = ""
    topic: str | None = None
    category: str | None = None


class _CompactFile(msgspec.Struct):
    channel: _CompactChannel
    users: dict[str, _CompactUser]
    messages: list[_CompactMessage]
    date: str | None = None


# -- DiscordChatExporter ------------------------------------------------------------------------------


class _DceRole(msgspec.Struct):
    name: str = ""


class _DceUser(msgspec.Struct):
    id: str
    name: str = ""
    nickname: str | None = None
    isBot: bool = False
    roles: list[_DceRole] = []


class _DceEmoji(msgspec.Struct):
    name: str | None = None


class _DceReaction(msgspec.Struct):
    emoji: _DceEmoji | None = None
    count: int = 0


class _DceReference(msgspec.Struct):
    messageId: str | None = None
    channelId: str | None = None


class _DceMessage(msgspec.Struct):
    id: str
    timestamp: str
    author: _DceUser
    type: str | int = "Default"
    content: str = ""
    timestampEdited: str | None = None
    attachments: list[_ApiAttachment] = []
    embeds: list[Any] = []
    stickers: list[_Sticker] = []
    reactions: list[_DceReaction] = []
    mentions: list[_DceUser] = []
    reference: _DceReference | None = None
    interaction: Any = None


class _DceChannel(msgspec.Struct):
    id: str
    name: str = ""
    topic: str | None = None
    category: str | None = None


class _DceGuild(msgspec.Struct):
    id: str | None = None
    name: str | None = None


class _DceFile(msgspec.Struct):
    guild: _DceGuild
    channel: _DceChannel
    messages: list[_DceMessage]
    exportedAt: str | None = None


_COMPACT_DECODER = msgspec.json.Decoder(_CompactFile, strict=False)
_DCE_DECODER = msgspec.json.Decoder(_DceFile)


# -- the corpus ---------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    files: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    messages_read: int = 0
    duplicates: int = 0  # same id seen in overlapping exports (kept once)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> messages not loaded
    clock_skew: int = 0  # timestamps replaced by their snowflake time
    empty_files: int = 0  # exports with no messages (an empty channel or day)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "formats": dict(self.formats),
            "messages_read": self.messages_read,
            "duplicates": self.duplicates,
            "skipped": dict(self.skipped),
            "clock_skew": self.clock_skew,
            "empty_files": self.empty_files,
        }


@dataclass
class Corpus:
    messages: dict[int, Message] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    report: LoadReport = field(default_factory=LoadReport)


@dataclass
class LoadOptions:
    max_skew_s: float = 300.0  # a timestamp this far from its snowflake's time is clock skew
    max_message_chars: int = 8000  # longer is not a chat message (Discord caps at 4,000): skipped


def discover(paths: Iterable[Path]) -> list[Path]:
    """JSON files among `paths` (folders searched recursively), sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return found


def detect_format(data: bytes, path: Path | str = "<bytes>") -> str:
    """'dce', 'compact' or 'ai-news', from a cheap look at the document's keys and first timestamp."""
    head = data[:65536]
    if b'"guild"' in head and b'"author"' in head:
        return "dce"
    if b'"uid"' in head or b'"users"' in head:
        # the users map comes first and can be long: look for the first timestamp in the whole text
        match = _FIRST_TS.search(data)
        if match is not None:
            return "ai-news" if match.group(1).endswith(b"Z") else "compact"
        if b'"messages"' in data:
            return "compact"  # an empty day: no timestamp to tell by, and nothing to load either way
    raise DiscordFormatError(path, "not a Discord export (no DCE guild/author or compact users/uid keys)")


_FIRST_TS = re.compile(rb'"ts"\s*:\s*"([^"]+)"')
_MENTION = re.compile(r"<(@!?|@&|#)(\d+)>|<a?(:\w+:)\d+>")
_EVERYONE = re.compile(r"@(everyone|here)\b")


def _parse_iso_ms(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # DCE always writes an offset; a bare time is taken as UTC
    return int(moment.timestamp() * 1000)


_HOUR_MS: dict[str, int] = {}


def _parse_ms(text: str) -> int:
    """Epoch ms of an ISO 8601 time with an offset or Z, e.g. 2024-10-27T02:18:04.765-07:00.

    The hot path of loading: the UTC start of each (local hour, offset) is computed once with
    `fromisoformat` and cached, and minutes, seconds and 1-3 fractional digits are added to it
    (`datetime.timestamp()` alone costs more than all of this). Anything unusual takes the slow path.
    """
    n = len(text)
    if n < 20 or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return _parse_iso_ms(text)
    if text[-1] == "Z":
        zone, end = "+00:00", n - 1
    elif text[-6] in "+-" and text[-3] == ":":
        zone, end = text[-6:], n - 6
    else:
        return _parse_iso_ms(text)
    key = text[:13] + zone
    base = _HOUR_MS.get(key)
    if base is None:
        base = _parse_iso_ms(key[:13] + ":00:00" + zone)
        _HOUR_MS[key] = base
    # int() rejects non-digits; an out-of-range value (minute 75) ends up far from the message's
    # snowflake time and is caught as clock skew
    ms = base + int(text[14:16]) * 60_000 + int(text[17:19]) * 1000
    if end > 19:
        if text[19] != ".":
            return _parse_iso_ms(text)
        ms += int((text[20:end] + "00")[:3])
    return ms


class Loader:
    """Accumulates files into a Corpus."""

    def __init__(self, options: LoadOptions | None = None):
        self.options = options or LoadOptions()
        self.corpus = Corpus()
        self._role_names: dict[int, str] = {}

    # -- shared pieces --

    def _user(
        self, uid: int, name: str, display: str | None, roles: list[str], is_bot: bool, ms: int
    ) -> None:
        user = self.corpus.users.get(uid)
        if user is None:
            user = User(id=uid, name=name or str(uid), roles=list(roles), is_bot=is_bot)
            self.corpus.users[uid] = user
        else:
            user.is_bot = user.is_bot or is_bot
            if roles:
                user.roles = list(roles)
        user.saw(display or None, ms)

    def _time(self, text: str, ident: int) -> int | None:
        try:
            ms = _parse_ms(text)
        except ValueError:
            self.corpus.report.skipped["bad_timestamp"] += 1
            return None
        minted = snowflake_ms(ident)
        if abs(ms - minted) > self.options.max_skew_s * 1000:
            self.corpus.report.clock_skew += 1
            return minted
        return ms

    def _render(self, content: str) -> str:
        """Raw Discord markup (ai-news keeps it) to what DCE shows: @name, #channel, :emoji:."""
        if "<" not in content:
            return content
        users = self.corpus.users
        channels = self.corpus.channels

        def replace(match: re.Match[str]) -> str:
            if match.group(3):
                return match.group(3)
            sigil, ident = match.group(1), int(match.group(2))
            if sigil == "#":
                channel = channels.get(ident)
                return f"#{channel.name}" if channel else "#channel"
            if sigil == "@&":
                return f"@{self._role_names.get(ident, 'role')}"
            user = users.get(ident)
            return f"@{user.display_name}" if user else "@user"

        return _MENTION.sub(replace, content)

    def _add(self, message: Message) -> None:
        if len(message.content) > self.options.max_message_chars:
            self.corpus.report.skipped["too_long"] += 1
            return
        if not message.content.strip() and not message.attachments:
            self.corpus.report.skipped["empty"] += 1
            return
        held = self.corpus.messages.get(message.id)
        if held is not None:
            self.corpus.report.duplicates += 1
            if held.edited or not message.edited:
                return  # the first copy stays unless only the new one carries an edit
        self.corpus.messages[message.id] = message

    # -- formats --

    def load_file(self, path: Path) -> str:
        data = path.read_bytes()
        kind = self.load_bytes(data, path)
        return kind

    def load_bytes(self, data: bytes, path: Path | str = "<bytes>") -> str:
        if not data.strip():
            raise DiscordFormatError(path, "empty file")
        kind = detect_format(data, path)
        try:
            if kind == "dce":
                self._load_dce(_DCE_DECODER.decode(data))
            else:
                self._load_compact(_COMPACT_DECODER.decode(data), kind)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise DiscordFormatError(path, f"looks like {kind} but does not fit it: {exc}") from None
        self.corpus.report.files += 1
        self.corpus.report.formats[kind] += 1
        return kind

    def _load_compact(self, doc: _CompactFile, kind: str) -> None:
        report = self.corpus.report
        channel_id = int(doc.channel.id)
        self.corpus.channels.setdefault(
            channel_id, Channel(channel_id, doc.channel.name, doc.channel.topic, doc.channel.category)
        )
        if not doc.messages:
            report.empty_files += 1
        # the users map is the whole channel's at export time: date the names by the file's day
        seen_ms = _parse_ms(doc.date + "T00:00:00+00:00") if doc.date else 0
        for uid, info in doc.users.items():
            self._user(int(uid), info.name, info.nickname, info.roles, info.isBot, seen_ms)
        render = kind == "ai-news"
        add = self._add
        for raw in doc.messages:
            report.messages_read += 1
            ident = raw.id
            ms = self._time(raw.ts, ident)
            if ms is None:
                continue
            content = raw.content
            if render:
                content = self._render(content)
            attachments: tuple[str, ...] = ()
            if raw.attachments or raw.sticker_items or (raw.embeds and not content):
                attachments, content = _placeholders(raw.attachments, raw.sticker_items, raw.embeds, content)
            add(
                Message(
                    id=ident,
                    channel_id=channel_id,
                    thread=raw.threadName or "",
                    ts_ms=ms,
                    author_id=raw.uid,
                    content=content,
                    kind=DEFAULT_KIND if raw.type is None else str(raw.type),
                    reply_to=raw.ref or 0,
                    mentions=tuple(raw.mentions),
                    reactions=sum(r.count for r in raw.reactions) if raw.reactions else 0,
                    attachments=attachments,
                    edited=raw.edited is not None,
                    everyone="@everyone" in content or "@here" in content,
                )
            )

    def _load_dce(self, doc: _DceFile) -> None:
        report = self.corpus.report
        channel_id = int(doc.channel.id)
        self.corpus.channels.setdefault(
            channel_id,
            Channel(channel_id, doc.channel.name, doc.channel.topic, doc.channel.category, doc.guild.name),
        )
        if not doc.messages:
            report.empty_files += 1
        for raw in doc.messages:
            report.messages_read += 1
            try:
                ident = int(raw.id)
                author = int(raw.author.id)
            except ValueError:
                report.skipped["bad_id"] += 1
                continue
            ms = self._time(raw.timestamp, ident)
            if ms is None:
                continue
            a = raw.author
            self._user(author, a.name, a.nickname, [r.name for r in a.roles], a.isBot, ms)
            for mentioned in raw.mentions:
                if mentioned.id.isdigit():
                    self._user(int(mentioned.id), mentioned.name, mentioned.nickname, [], mentioned.isBot, ms)
            attachments, content = _placeholders(raw.attachments, raw.stickers, raw.embeds, raw.content)
            reference = raw.reference
            reply_to = 0
            if reference is not None and reference.messageId and reference.messageId.isdigit():
                reply_to = int(reference.messageId)
            self._add(
                Message(
                    id=ident,
                    channel_id=channel_id,
                    thread="",
                    ts_ms=ms,
                    author_id=author,
                    content=content,
                    kind=str(raw.type),
                    reply_to=reply_to,
                    mentions=tuple(int(m.id) for m in raw.mentions if m.id.isdigit()),
                    reactions=sum(r.count for r in raw.reactions),
                    attachments=attachments,
                    edited=raw.timestampEdited is not None,
                    everyone=bool(_EVERYONE.search(content)),
                    interaction=raw.interaction is not None,
                )
            )


def _placeholders(
    attachments: list[_ApiAttachment], stickers: list[_Sticker], embeds: list[Any], content: str
) -> tuple[tuple[str, ...], str]:
    """Attachment file names as metadata, and readable placeholders appended to the text."""
    names = tuple((a.fileName or a.filename or "file") for a in attachments)
    parts = [content] if content else []
    parts.extend(f"[attachment: {name}]" for name in names)
    parts.extend(f"[sticker: {s.name or 'sticker'}]" for s in stickers)
    if embeds and not content:
        title = next((e.get("title") for e in embeds if isinstance(e, dict) and e.get("title")), None)
        parts.append(f"[embed: {title}]" if title else "[embed]")
    return names, " ".join(parts)


__all__ = [
    "FORMATS",
    "REPLY_KIND",
    "Corpus",
    "DiscordFormatError",
    "LoadOptions",
    "LoadReport",
    "Loader",
    "detect_format",
    "discover",
]
