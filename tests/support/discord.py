"""Hand-built Discord exports in the three shapes the loaders read (DCE JSON, compact, ai-news raw).

Messages are described once (`Msg`) and rendered into any format, so a test can check that
the same conversation loads the same way from each. Ids are real snowflakes minted from the
message time, as Discord's are.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.discord.model import snowflake_at

BASE = dt.datetime(2024, 11, 5, 9, 0, tzinfo=dt.UTC)
PACIFIC = dt.timezone(dt.timedelta(hours=-8))
CHANNEL = {"id": "1300025221834739744", "name": "coders", "topic": "code", "category": "Development"}
GUILD = {"id": "1253563208833433701", "name": "ElizaOS", "iconUrl": ""}


@dataclass
class Person:
    id: str
    name: str
    nickname: str | None = None
    bot: bool = False
    roles: list[str] = field(default_factory=list)


ALICE = Person("100000000000000001", "alice", "Alice A")
BOB = Person("100000000000000002", "bob", "Bobby")
CAROL = Person("100000000000000003", "carol", None)
BOT = Person("100000000000000009", "Carl-bot", "Carl-bot", bot=True)
PEOPLE = [ALICE, BOB, CAROL, BOT]


@dataclass
class Msg:
    author: Person
    minute: float  # minutes after BASE
    content: str
    kind: str = "Default"
    reply_to: int | None = None  # index of the parent in the same list
    mentions: list[Person] = field(default_factory=list)
    reactions: int = 0
    attachments: list[str] = field(default_factory=list)
    thread: str | None = None
    interaction: bool = False
    seq: int = 0


def message_id(m: Msg) -> str:
    return str(snowflake_at(int((BASE + dt.timedelta(minutes=m.minute)).timestamp() * 1000), m.seq))


def _ids(messages: list[Msg]) -> list[str]:
    return [message_id(m) for m in messages]


def _time(m: Msg, tz: dt.tzinfo) -> dt.datetime:
    return (BASE + dt.timedelta(minutes=m.minute)).astimezone(tz)


def _dce_user(p: Person) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "discriminator": "0000",
        "nickname": p.nickname or p.name,
        "color": None,
        "isBot": p.bot,
        "roles": [{"id": "1", "name": r, "color": None, "position": 1} for r in p.roles],
        "avatarUrl": "",
    }


def dce(messages: list[Msg], channel: dict[str, Any] | None = None) -> dict[str, Any]:
    ids = _ids(messages)
    channel = channel or CHANNEL
    out = []
    for m, ident in zip(messages, ids, strict=True):
        row: dict[str, Any] = {
            "id": ident,
            "type": m.kind,
            "timestamp": _time(m, PACIFIC).isoformat(timespec="milliseconds"),
            "timestampEdited": None,
            "callEndedTimestamp": None,
            "isPinned": False,
            "content": m.content,
            "author": _dce_user(m.author),
            "attachments": [
                {"id": "9", "url": f"https://cdn.example/{a}", "fileName": a, "fileSizeBytes": 10}
                for a in m.attachments
            ],
            "embeds": [],
            "stickers": [],
            "reactions": [
                {
                    "emoji": {"id": "", "name": "🔥", "code": "fire", "isAnimated": False, "imageUrl": ""},
                    "count": m.reactions,
                    "users": [],
                }
            ]
            if m.reactions
            else [],
            "mentions": [_dce_user(p) for p in m.mentions],
            "inlineEmojis": [],
        }
        if m.reply_to is not None:
            row["reference"] = {
                "type": "Default",
                "messageId": ids[m.reply_to],
                "channelId": channel["id"],
                "guildId": GUILD["id"],
            }
        if m.interaction:
            row["interaction"] = {"id": "5", "name": "tip", "user": _dce_user(m.author)}
        out.append(row)
    return {
        "guild": GUILD,
        "channel": {**channel, "type": "GuildTextChat", "categoryId": "7"},
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-11-27T00:00:00-08:00",
        "messages": out,
        "messageCount": len(out),
    }


def compact(
    messages: list[Msg],
    *,
    date: str = "2024-11-05",
    people: list[Person] | None = None,
    channel: dict[str, Any] | None = None,
    ai_news: bool = False,
) -> dict[str, Any]:
    """The compact shape; `ai_news=True` writes the ai-news raw variant (UTC `Z`, raw `<@id>` mentions)."""
    ids = _ids(messages)
    users = {}
    for p in people or PEOPLE:
        entry: dict[str, Any] = {"name": p.name, "nickname": p.nickname}
        if p.roles:
            entry["roles"] = p.roles
        if p.bot:
            entry["isBot"] = True
        users[p.id] = entry
    out = []
    for m, ident in zip(messages, ids, strict=True):
        when = _time(m, dt.UTC if ai_news else PACIFIC)
        ts = (
            when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if ai_news
            else when.isoformat(timespec="milliseconds")
        )
        content = m.content
        if ai_news:
            for p in m.mentions:
                content = content.replace(f"@{p.nickname or p.name}", f"<@{p.id}>")
        row: dict[str, Any] = {"id": ident, "ts": ts, "uid": m.author.id, "content": content}
        if m.kind != "Default":
            row["type"] = m.kind
        if m.mentions:
            row["mentions"] = [p.id for p in m.mentions]
        if m.reply_to is not None:
            row["ref"] = ids[m.reply_to]
            if ai_news:
                row["type"] = "Reply"
        if m.reactions:
            row["reactions"] = [{"emoji": "🔥", "count": m.reactions}]
        if ai_news and m.attachments:
            row["attachments"] = [
                {
                    "id": "9",
                    "filename": a,
                    "content_type": "image/png",
                    "size": 10,
                    "url": f"https://cdn.example/{a}",
                }
                for a in m.attachments
            ]
        if ai_news and m.thread:
            row["threadName"] = m.thread
        out.append(row)
    return {"channel": channel or CHANNEL, "date": date, "users": users, "messages": out}


def write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1))
    return path


def chat(rounds: int = 3, start: float = 0.0) -> list[Msg]:
    """A conversation: Alice asks, Bob answers (a reply), Carol chimes in; `rounds` times, a minute apart."""
    messages: list[Msg] = []
    t = start
    for r in range(rounds):
        messages.append(Msg(ALICE, t, f"how do I configure the twitter client for round {r}?"))
        messages.append(
            Msg(
                BOB,
                t + 1,
                f"set the env variables first, then restart round {r}",
                reply_to=len(messages) - 1,
                mentions=[ALICE],
            )
        )
        messages.append(Msg(CAROL, t + 2, f"also check the character file settings {r}"))
        t += 3
    return messages
