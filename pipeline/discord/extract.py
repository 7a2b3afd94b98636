"""`personas discord extract`: exports -> a data folder of filtered, scrubbed, threaded messages.

The folder (each file replaced atomically; `extract-report.json` is written last):

    messages.parquet        one row per kept message, in (channel, thread, time) order
    conversations.parquet   one row per conversation (participants, channel, start, end, kept)
    users.json              every user: name, display-name history, roles, bot flag
    channels.json           every channel: name, topic, category, guild
    extract-report.json     counts: read, duplicates, skipped and dropped by reason, replies, privacy
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import DiscordConfig
from pipeline.discord.filters import target_reason
from pipeline.discord.loaders import Corpus, LoadOptions
from pipeline.discord.model import Channel, Message, User
from pipeline.discord.prepare import Prepared, prepare
from pipeline.discord.threads import Threading, thread_messages
from pipeline.gcpause import gc_paused
from pipeline.store.atomic import atomic_write_bytes

MESSAGES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("channel_id", pa.int64()),
        pa.field("thread", pa.string()),
        pa.field("ts", pa.timestamp("ms", tz="UTC")),
        pa.field("author_id", pa.int64()),
        pa.field("content", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("reply_to", pa.int64()),  # 0: not a reply
        pa.field("reply_resolved", pa.bool_()),  # the parent is in the same conversation
        pa.field("mentions", pa.list_(pa.int64())),
        pa.field("reactions", pa.int32()),
        pa.field("attachments", pa.list_(pa.string())),
        pa.field("edited", pa.bool_()),
        pa.field("conversation_id", pa.int64()),
        pa.field("meaningful", pa.bool_()),
        pa.field("target_block", pa.string()),  # why it cannot be a target (null: it can)
    ]
)

CONVERSATIONS_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.int64()),
        pa.field("channel_id", pa.int64()),
        pa.field("thread", pa.string()),
        pa.field("start", pa.timestamp("ms", tz="UTC")),
        pa.field("end", pa.timestamp("ms", tz="UTC")),
        pa.field("messages", pa.int32()),
        pa.field("meaningful", pa.int32()),
        pa.field("participants", pa.list_(pa.int64())),
        pa.field("kept", pa.bool_()),
    ]
)


class ExtractError(ValueError):
    pass


@dataclass
class ExtractResult:
    out: Path
    report: dict[str, Any]
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _write_parquet(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def load(
    paths: Iterable[Path], config: DiscordConfig, *, on_file: Callable[[Path, int], None] | None = None
) -> Prepared:
    """Every export under `paths`, decoded, filtered and scrubbed file by file (in parallel)."""
    options = LoadOptions(max_skew_s=config.max_skew_s, max_message_chars=config.max_message_chars)
    return prepare(paths, options, list(config.blocklist), workers=config.workers, on_file=on_file)


def process(prepared: Prepared, config: DiscordConfig) -> tuple[list[Message], Threading, dict[str, Any]]:
    """Thread the kept messages. Returns them (in threading order), the threading, and the counts."""
    corpus = prepared.corpus
    dropped = dict(prepared.dropped)
    # the per-file decision knew one file's users; a user flagged as a bot anywhere is a bot everywhere
    ordered = sorted(corpus.messages.values(), key=attrgetter("channel_id", "thread", "ts_ms", "id"))
    bots = {uid for uid, user in corpus.users.items() if user.is_bot}
    kept = [m for m in ordered if m.author_id not in bots]
    dropped.update((m.id, "bot") for m in ordered if m.author_id in bots)
    threading = thread_messages(
        kept, dropped, max_gap_ms=int(config.max_gap_minutes * 60_000), min_messages=config.min_messages
    )
    counts = {
        "loaded": corpus.report.as_dict(),
        "unique_messages": len(ordered) + len(prepared.dropped),
        "kept": len(kept),
        "dropped": dict(Counter(dropped.values())),
        "threading": dict(threading.counts),
        "privacy": dict(prepared.privacy),
        "max_gap_minutes": config.max_gap_minutes,
        "min_messages": config.min_messages,
    }
    return kept, threading, counts


def _messages_table(kept: list[Message], threading: Threading) -> tuple[pa.Table, Counter[str]]:
    conversation_of = threading.conversation_of
    blocks: list[str | None] = []
    block_counts: Counter[str] = Counter()
    for m in kept:
        reason = None if m.meaningful else target_reason(m.content) or "one_word"
        blocks.append(reason)
        if reason:
            block_counts[reason] += 1
    columns = {
        "id": [m.id for m in kept],
        "channel_id": [m.channel_id for m in kept],
        "thread": [m.thread for m in kept],
        "ts": [m.ts_ms for m in kept],
        "author_id": [m.author_id for m in kept],
        "content": [m.content for m in kept],
        "kind": [m.kind for m in kept],
        "reply_to": [m.reply_to for m in kept],
        "reply_resolved": [
            bool(m.reply_to) and conversation_of.get(m.reply_to) == conversation_of[m.id] for m in kept
        ],
        "mentions": [list(m.mentions) for m in kept],
        "reactions": [m.reactions for m in kept],
        "attachments": [list(m.attachments) for m in kept],
        "edited": [m.edited for m in kept],
        "conversation_id": [conversation_of[m.id] for m in kept],
        "meaningful": [m.meaningful for m in kept],
        "target_block": blocks,
    }
    return pa.Table.from_pydict(columns, schema=MESSAGES_SCHEMA), block_counts


def _conversations_table(threading: Threading) -> pa.Table:
    rows = list(threading.conversations.values())
    return pa.Table.from_pydict(
        {
            "conversation_id": [c.id for c in rows],
            "channel_id": [c.channel_id for c in rows],
            "thread": [c.thread for c in rows],
            "start": [c.start_ms for c in rows],
            "end": [c.end_ms for c in rows],
            "messages": [len(c.message_ids) for c in rows],
            "meaningful": [c.meaningful for c in rows],
            "participants": [list(c.participants) for c in rows],
            "kept": [c.kept for c in rows],
        },
        schema=CONVERSATIONS_SCHEMA,
    )


def write_data(
    out: Path, corpus: Corpus, kept: list[Message], threading: Threading, counts: dict[str, Any]
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    messages, block_counts = _messages_table(kept, threading)
    counts = {**counts, "not_targets": dict(block_counts)}
    _write_parquet(out / "messages.parquet", messages)
    _write_parquet(out / "conversations.parquet", _conversations_table(threading))
    users = sorted(corpus.users.values(), key=lambda u: u.id)
    atomic_write_bytes(out / "users.json", msgspec.json.encode(users))
    channels = sorted(corpus.channels.values(), key=lambda c: c.id)
    atomic_write_bytes(out / "channels.json", msgspec.json.encode(channels))
    atomic_write_bytes(out / "extract-report.json", orjson.dumps(counts, option=orjson.OPT_INDENT_2))
    return counts


def extract(
    paths: Iterable[Path],
    out: Path,
    config: DiscordConfig,
    *,
    on_file: Callable[[Path, int], None] | None = None,
) -> ExtractResult:
    started = time.perf_counter()
    with gc_paused():  # millions of small acyclic objects: collections would only rescan them
        return _extract(paths, out, config, on_file, started)


def _extract(
    paths: Iterable[Path],
    out: Path,
    config: DiscordConfig,
    on_file: Callable[[Path, int], None] | None,
    started: float,
) -> ExtractResult:
    prepared = load(paths, config, on_file=on_file)
    failed = prepared.failed
    if not prepared.corpus.report.files and failed:
        raise ExtractError(
            f"no input could be read ({len(failed)} failed; first: {next(iter(failed.items()))})"
        )
    kept, threading, counts = process(prepared, config)
    counts["failed_files"] = failed
    report = write_data(out, prepared.corpus, kept, threading, counts)
    return ExtractResult(out, report, failed, time.perf_counter() - started)


# -- reading a data folder back ---------------------------------------------------------------------


@dataclass
class DiscordData:
    """A data folder read back: column lists of messages and conversations, users and channels."""

    messages: dict[str, list[Any]]
    conversations: dict[str, list[Any]]
    users: dict[int, User]
    channels: dict[int, Channel]
    report: dict[str, Any]


def read_data(folder: Path) -> DiscordData:
    with gc_paused():
        return _read_data(folder)


def _read_data(folder: Path) -> DiscordData:
    report_path = folder / "extract-report.json"
    if not report_path.is_file():
        raise FileNotFoundError(
            f"{folder} is not an extracted Discord data folder (run personas discord extract)"
        )
    messages = pq.read_table(folder / "messages.parquet")
    conversations = pq.read_table(folder / "conversations.parquet")
    as_ms = {"ts", "start", "end"}

    def columns(table: pa.Table) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for name in table.column_names:
            column = table.column(name)
            if name in as_ms:
                column = column.cast(pa.int64())
            out[name] = column.to_pylist()
        return out

    users = msgspec.json.decode((folder / "users.json").read_bytes(), type=list[User])
    channels = msgspec.json.decode((folder / "channels.json").read_bytes(), type=list[Channel])
    return DiscordData(
        messages=columns(messages),
        conversations=columns(conversations),
        users={u.id: u for u in users},
        channels={c.id: c for c in channels},
        report=orjson.loads(report_path.read_bytes()),
    )
