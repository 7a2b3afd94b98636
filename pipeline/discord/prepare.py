"""Per-file work, in parallel: decode, normalize, filter, scrub; then merge the files in one process.

Everything that depends on one message alone runs in worker processes (one file per task):
decoding, timestamps, placeholders, the drop decision (bot, system, blocklist, with the
file's own user map), scrubbing and the meaningful flag. A worker returns its messages
msgpack-encoded, which the parent decodes straight into `Message` structs at a fraction
of the cost of the work. The parent merges files in path order (deduplicating by id,
merging users' name histories), so the result does not depend on the number of workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from pipeline.cpu import default_workers
from pipeline.discord.filters import compile_blocklist, drop_reason, is_meaningful
from pipeline.discord.loaders import Corpus, DiscordFormatError, Loader, LoadOptions, discover
from pipeline.discord.model import Channel, Message, User
from pipeline.discord.privacy import Scrubber
from pipeline.gcpause import gc_paused


class PreparedFile(msgspec.Struct):
    path: str
    kind: str = ""
    error: str | None = None
    messages: list[Message] = []
    dropped: list[tuple[int, str]] = []
    users: list[User] = []
    channels: list[Channel] = []
    read: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = {}
    clock_skew: int = 0
    empty: bool = False
    privacy: dict[str, int] = {}


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(PreparedFile)


def prepare_file(path: str, options: LoadOptions, blocklist_terms: list[str]) -> bytes:
    """One export, filtered and scrubbed, msgpack-encoded (the worker task)."""
    with gc_paused():
        return _prepare_file(path, options, blocklist_terms)


def _prepare_file(path: str, options: LoadOptions, blocklist_terms: list[str]) -> bytes:
    loader = Loader(options)
    try:
        kind = loader.load_file(Path(path))
    except (DiscordFormatError, OSError) as exc:
        reason = exc.reason if isinstance(exc, DiscordFormatError) else str(exc)
        return _ENCODER.encode(PreparedFile(path=path, error=reason))
    corpus = loader.corpus
    blocklist = compile_blocklist(blocklist_terms)
    scrubber = Scrubber()
    scrub = scrubber.scrub
    kept: list[Message] = []
    dropped: list[tuple[int, str]] = []
    users = corpus.users
    for message in corpus.messages.values():
        why = drop_reason(message, users, blocklist)
        if why is not None:
            dropped.append((message.id, why))
            continue
        message.content = scrub(message.content)
        message.meaningful = is_meaningful(message.content)
        kept.append(message)
    report = corpus.report
    return _ENCODER.encode(
        PreparedFile(
            path=path,
            kind=kind,
            messages=kept,
            dropped=dropped,
            users=list(users.values()),
            channels=list(corpus.channels.values()),
            read=report.messages_read,
            duplicates=report.duplicates,
            skipped=dict(report.skipped),
            clock_skew=report.clock_skew,
            empty=report.empty_files > 0,
            privacy=dict(scrubber.counts),
        )
    )


@dataclass
class Prepared:
    corpus: Corpus  # kept messages only
    dropped: dict[int, str] = field(default_factory=dict)
    privacy: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)


def _merge(prepared: Prepared, part: PreparedFile) -> None:
    corpus = prepared.corpus
    report = corpus.report
    if part.error is not None:
        prepared.failed[part.path] = part.error
        return
    report.files += 1
    report.formats[part.kind] += 1
    report.messages_read += part.read
    report.duplicates += part.duplicates
    report.skipped.update(part.skipped)
    report.clock_skew += part.clock_skew
    report.empty_files += int(part.empty)
    prepared.privacy.update(part.privacy)
    for user in part.users:
        held = corpus.users.get(user.id)
        if held is None:
            corpus.users[user.id] = user
            continue
        held.is_bot = held.is_bot or user.is_bot
        if user.roles:
            held.roles = user.roles
        for seen in user.display_names:
            held.saw(seen.name, seen.first_ms)
            held.saw(seen.name, seen.last_ms)
    for channel in part.channels:
        corpus.channels.setdefault(channel.id, channel)
    messages = corpus.messages
    for message in part.messages:
        held_message = messages.get(message.id)
        if held_message is not None:
            report.duplicates += 1
            if held_message.edited or not message.edited:
                continue
        messages[message.id] = message
    for ident, reason in part.dropped:
        if ident in prepared.dropped:
            report.duplicates += 1
        prepared.dropped[ident] = reason


def prepare(
    paths: Iterable[Path],
    options: LoadOptions,
    blocklist: list[str],
    *,
    workers: int = 0,
    on_file: Callable[[Path, int], None] | None = None,
) -> Prepared:
    files = [str(p) for p in discover(paths)]
    prepared = Prepared(Corpus())
    count = default_workers(workers, len(files))

    def take(encoded: bytes) -> None:
        part = _DECODER.decode(encoded)
        _merge(prepared, part)
        if on_file is not None:
            on_file(Path(part.path), part.read)

    if count <= 1 or len(files) <= 1:
        for path in files:
            take(prepare_file(path, options, blocklist))
    else:
        with ProcessPoolExecutor(max_workers=count) as pool:
            for encoded in pool.map(prepare_file, files, [options] * len(files), [blocklist] * len(files)):
                take(encoded)
    # a message both kept in one export and dropped in another (a user flagged as a bot later) is dropped
    for ident in prepared.dropped.keys() & prepared.corpus.messages.keys():
        del prepared.corpus.messages[ident]
    return prepared
