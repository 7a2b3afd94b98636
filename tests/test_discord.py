"""Discord: loaders in three formats, filters, threading, users, profiles, examples, splits, privacy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipeline.config import DiscordConfig
from pipeline.discord.extract import extract, read_data
from pipeline.discord.filters import target_reason
from pipeline.discord.generate import generate
from pipeline.discord.loaders import DiscordFormatError, Loader, detect_format
from pipeline.discord.privacy import Scrubber
from pipeline.discord.profiles import build_profiles
from pipeline.discord.users import top_users, user_stats
from tests.support.discord import ALICE, BOB, BOT, CAROL, Msg, chat, compact, dce, message_id, write


def _load(document: dict[str, object]) -> Loader:
    loader = Loader()
    loader.load_bytes(json.dumps(document).encode())
    return loader


def _config(**kw: object) -> DiscordConfig:
    return DiscordConfig.model_validate({"min_user_messages": 1, "top_users": 10, **kw})


# -- loaders ------------------------------------------------------------------------------------------


def test_detects_each_format_and_rejects_others() -> None:
    messages = chat(1)
    assert detect_format(json.dumps(dce(messages)).encode()) == "dce"
    assert detect_format(json.dumps(compact(messages)).encode()) == "compact"
    assert detect_format(json.dumps(compact(messages, ai_news=True)).encode()) == "ai-news"
    with pytest.raises(DiscordFormatError, match="not a Discord export"):
        detect_format(b'{"tweets": []}', "x.json")
    loader = Loader()
    with pytest.raises(DiscordFormatError, match="does not fit"):
        loader.load_bytes(b'{"users": {}, "messages": [{"id": "1"}], "channel": {"id": "2"}}', "bad.json")
    with pytest.raises(DiscordFormatError, match="does not fit"):
        loader.load_bytes(json.dumps(compact(messages)).encode()[:-40], "truncated.json")
    with pytest.raises(DiscordFormatError, match="empty file"):
        loader.load_bytes(b"  ", "empty.json")


def test_same_conversation_loads_alike_from_each_format() -> None:
    messages = chat(2)
    loaded = [
        _load(doc).corpus for doc in (dce(messages), compact(messages), compact(messages, ai_news=True))
    ]
    for corpus in loaded:
        ordered = sorted(corpus.messages.values(), key=lambda m: m.ts_ms)
        assert [m.content for m in ordered] == [m.content for m in messages]
        assert [m.author_id for m in ordered] == [int(m.author.id) for m in messages]
        # Pacific offsets and Z both become the same UTC epoch ms
        assert [m.ts_ms for m in ordered] == [
            m.ts_ms for m in sorted(loaded[0].messages.values(), key=lambda m: m.ts_ms)
        ]
        reply = ordered[1]
        assert reply.reply_to == int(message_id(messages[0]))
        assert reply.mentions == (int(ALICE.id),)
        assert corpus.users[int(BOB.id)].display_name == "Bobby"


def test_dce_metadata_attachments_reactions_interaction() -> None:
    messages = [
        Msg(ALICE, 0, "look at this", attachments=["diagram.png"], reactions=3),
        Msg(BOB, 1, "", attachments=["log.txt"]),
        Msg(BOT, 2, "Tipped 5 SOL", interaction=True),
        Msg(CAROL, 3, ""),  # no text, no attachment: skipped as empty
    ]
    corpus = _load(dce(messages)).corpus
    by_author = {m.author_id: m for m in corpus.messages.values()}
    alice = by_author[int(ALICE.id)]
    assert alice.content == "look at this [attachment: diagram.png]"
    assert alice.attachments == ("diagram.png",) and alice.reactions == 3
    assert by_author[int(BOB.id)].content == "[attachment: log.txt]"
    assert by_author[int(BOT.id)].interaction
    assert corpus.report.skipped["empty"] == 1
    assert corpus.users[int(BOT.id)].is_bot


def test_ai_news_renders_raw_mentions_and_keeps_threads_apart() -> None:
    messages = [
        Msg(ALICE, 0, "hey @Bobby can you look", mentions=[BOB]),
        Msg(BOB, 1, "sure thing, posting the fix now", attachments=["fix.diff"]),
        Msg(CAROL, 1.5, "this is in the forum thread", thread="Help: install fails"),
    ]
    document = compact(messages, ai_news=True)
    assert "<@100000000000000002>" in document["messages"][0]["content"]  # type: ignore[index]
    corpus = _load(document).corpus
    contents = {m.author_id: m for m in corpus.messages.values()}
    assert contents[int(ALICE.id)].content == "hey @Bobby can you look"
    assert contents[int(BOB.id)].content == "sure thing, posting the fix now [attachment: fix.diff]"
    assert contents[int(CAROL.id)].thread == "Help: install fails"


def test_overlapping_exports_dedupe_and_nickname_history(tmp_path: Path) -> None:
    messages = chat(2)
    renamed = [*compact(messages)["users"].items()]  # type: ignore[union-attr]
    first = compact(messages[:4], date="2024-11-05")
    second = compact(messages[2:], date="2024-11-08")
    second["users"] = {
        uid: ({**u, "nickname": "Alice (janitor)"} if uid == ALICE.id else u) for uid, u in renamed
    }
    loader = Loader()
    loader.load_bytes(json.dumps(first).encode())
    loader.load_bytes(json.dumps(second).encode())
    corpus = loader.corpus
    assert len(corpus.messages) == len(messages)
    assert corpus.report.duplicates == 2
    alice = corpus.users[int(ALICE.id)]
    assert [s.name for s in alice.display_names] == ["Alice A", "Alice (janitor)"]
    assert alice.display_name == "Alice (janitor)"  # the newest


def test_clock_skew_huge_and_empty_channel() -> None:
    messages = chat(1)
    document = compact(messages)
    document["messages"][0]["ts"] = "2024-11-06T09:00:00.000-08:00"  # type: ignore[index]  # a day off its snowflake
    document["messages"][1]["content"] = "x" * 9000  # type: ignore[index]
    loader = Loader()
    loader.load_bytes(json.dumps(document).encode())
    loader.load_bytes(json.dumps(compact([])).encode())
    report = loader.corpus.report
    assert report.clock_skew == 1 and report.skipped["too_long"] == 1 and report.empty_files == 1
    first = loader.corpus.messages[int(message_id(messages[0]))]
    assert first.ts_ms == int(document["messages"][0]["id"]) // (1 << 22) + 1_420_070_400_000  # type: ignore[index]


# -- filters, threading, extract ------------------------------------------------------------------------


def _extract(tmp_path: Path, messages: list[Msg], fmt: str = "compact", **config: object):  # type: ignore[no-untyped-def]
    document = dce(messages) if fmt == "dce" else compact(messages, ai_news=fmt == "ai-news")
    write(tmp_path / "in" / "chat.json", document)
    result = extract([tmp_path / "in"], tmp_path / "data", _config(**config))
    return result, read_data(tmp_path / "data")


@pytest.mark.parametrize("fmt", ["dce", "compact"])
def test_bots_and_system_messages_dropped_replies_kept(tmp_path: Path, fmt: str) -> None:
    messages = [
        *chat(1),
        Msg(BOT, 3, "Level up! alice reached level 3"),
        Msg(ALICE, 4, "Pinned a message.", kind="ChannelPinnedMessage", reply_to=0),
        Msg(BOB, 5, "Started a thread.", kind="ThreadCreated"),
        Msg(CAROL, 6, "Joined the server.", kind="GuildMemberJoin"),
        Msg(ALICE, 7, "/tip noise", kind="20"),
        Msg(BOB, 8, "thanks bot that was useful", reply_to=3, kind="Reply"),
    ]
    result, data = _extract(tmp_path, messages, fmt)
    assert result.report["dropped"] == {"bot": 1, "system": 4}
    assert result.report["kept"] == 4
    assert result.report["threading"]["reply_parent_dropped_bot"] == 1
    assert "Reply" in data.messages["kind"]


def test_threading_replies_gaps_announcements_channels(tmp_path: Path) -> None:
    messages = [
        Msg(ALICE, 0, "anyone know why the build fails on node 23"),
        Msg(BOB, 1, "try node 20 instead, it works there", reply_to=0),
        Msg(CAROL, 2, "node 23 breaks the sqlite bindings"),
        Msg(ALICE, 40, "totally different question about docker images"),  # gap > 15 min: new
        Msg(BOB, 41, "thanks that fixed the node build for me", reply_to=1),  # revives the first
        Msg(CAROL, 42, "@everyone release notes are out now"),  # announcement: new
        Msg(ALICE, 43, "great news, reading the notes now"),
    ]
    _, data = _extract(tmp_path, messages, min_messages=1)
    conv = dict(zip(data.messages["id"], data.messages["conversation_id"], strict=True))
    ids = [int(message_id(m)) for m in messages]
    assert conv[ids[0]] == conv[ids[1]] == conv[ids[2]] == conv[ids[4]]
    assert conv[ids[3]] == ids[3]
    assert conv[ids[5]] == conv[ids[6]] == ids[5]
    resolved = dict(zip(data.messages["id"], data.messages["reply_resolved"], strict=True))
    assert resolved[ids[1]] and resolved[ids[4]] and not resolved[ids[0]]
    assert data.report["threading"]["announcements"] == 1


def test_missing_parent_counted_and_small_conversations_not_kept(tmp_path: Path) -> None:
    messages = chat(1)
    document = compact(messages)
    document["messages"][1]["ref"] = "1299999999999999999"  # type: ignore[index]  # before the export
    write(tmp_path / "in" / "a.json", document)
    write(tmp_path / "in" / "b.json", compact([Msg(ALICE, 500, "just me talking to myself here")]))
    result = extract([tmp_path / "in"], tmp_path / "data", _config())
    assert result.report["threading"]["reply_parent_missing"] == 1
    assert result.report["threading"]["conversations_kept"] == 1
    assert result.report["threading"]["conversations_too_small"] == 1


def test_unknown_file_is_counted_not_fatal(tmp_path: Path) -> None:
    write(tmp_path / "in" / "good.json", compact(chat(1)))
    (tmp_path / "in" / "bad.json").write_text('{"hello": 1}')
    result = extract([tmp_path / "in"], tmp_path / "data", _config())
    assert list(result.failed) == [str(tmp_path / "in" / "bad.json")]
    assert result.report["kept"] == 3


def test_target_reasons() -> None:
    assert target_reason("https://github.com/elizaOS/eliza/pull/1") == "lone_link"
    assert target_reason("🔥🔥") == "reaction"
    assert target_reason("lol") == "reaction"
    assert target_reason(":pepe_laugh:") == "reaction"
    assert target_reason("thanks") == "one_word"
    assert target_reason("[attachment: a.png]") == "lone_attachment"
    assert target_reason("that fixed it, thanks") is None


def test_scrubber_counts() -> None:
    scrubber = Scrubber()
    text = (
        "mail bob.smith@example.com or call +1 (415) 555-2671; server 192.168.1.20; "
        "key sk-proj-abcdefghijklmnopqrstuvwx12; send to 0x52908400098527886E0F7030069857D2E4169EE7 "
        "or 7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV; localhost 127.0.0.1; git clone git@github.com:a/b"
    )
    out = scrubber.scrub(text)
    assert out == (
        "mail [EMAIL] or call [PHONE]; server [IP]; key [KEY]; send to [WALLET] or [WALLET]; "
        "localhost 127.0.0.1; git clone git@github.com:a/b"
    )
    assert scrubber.counts == {"email": 1, "phone": 1, "ip": 1, "key": 1, "wallet": 2}
    assert (
        scrubber.scrub("version 0.1.5 on 2024-11-05, issue #1234")
        == "version 0.1.5 on 2024-11-05, issue #1234"
    )


def test_blocklist_drops_messages(tmp_path: Path) -> None:
    result, data = _extract(tmp_path, chat(2), blocklist=["Twitter client"])
    assert result.report["dropped"] == {"blocklist": 2}
    assert not any("twitter client" in c.lower() for c in data.messages["content"])


# -- users, profiles, examples --------------------------------------------------------------------------


def _month(tmp_path: Path) -> Path:
    """Alice talks a little every day; Bob posts in one burst; Carol repeats one line; all converse."""
    messages: list[Msg] = []
    for day in range(10):
        t = day * 1440.0
        messages.append(Msg(ALICE, t, f"morning, working on the plugin loader again day {day}"))
        messages.append(Msg(CAROL, t + 1, "gm gm everyone have a great day"))
        messages.append(Msg(ALICE, t + 2, f"the embeddings cache is still slow on day {day}"))
        messages.append(Msg(CAROL, t + 3, "gm gm everyone have a great day"))
    for k in range(40):
        messages.append(
            Msg(BOB, 20 * 1440 + k * 0.5, f"burst message number {k} about tokens and prices", seq=k)
        )
        messages.append(
            Msg(ALICE, 20 * 1440 + k * 0.5 + 0.1, f"answering the burst number {k} politely", seq=k)
        )
    folder = tmp_path / "in"
    write(folder / "chat.json", compact(messages))
    extract([folder], tmp_path / "data", _config())
    return tmp_path / "data"


def test_regular_users_outrank_bursts_and_spam(tmp_path: Path) -> None:
    data = read_data(_month(tmp_path))
    stats = user_stats(data)
    alice, bob, carol = (stats[int(p.id)] for p in (ALICE, BOB, CAROL))
    assert (alice.messages, bob.messages, carol.messages) == (60, 40, 20)
    assert (alice.days_active, bob.days_active, carol.days_active) == (11, 1, 10)
    assert carol.duplicate_share == pytest.approx(19 / 20)
    # score = days active x log2(1 + conversations) x (1 - duplicate share)
    assert bob.score == pytest.approx(1 * 1.0 * 1.0)  # one day, one conversation: the burst counts once
    assert carol.score == pytest.approx(10 * math.log2(11) * (1 / 20))
    assert alice.score == pytest.approx(11 * math.log2(12))
    assert [s.name for s in top_users(stats, min_messages=1, top=3)] == ["alice", "carol", "bob"]
    assert [s.name for s in top_users(stats, min_messages=30, top=3)] == ["alice", "bob"]
    assert alice.replies_to == {} and alice.median_latency_s is not None


def test_profile_and_examples_balanced(tmp_path: Path) -> None:
    data = read_data(_month(tmp_path))
    chosen = top_users(user_stats(data), min_messages=1, top=2)
    profiles = build_profiles(data, chosen)
    alice = next(p for p in profiles if p.name == "alice")
    assert "loader" in alice.topics or "embeddings" in alice.topics
    assert alice.description.startswith("You write")
    out = tmp_path / "out" / "training.jsonl"
    config = _config(examples_per_user=25, heldout_user_fraction=0.0, context_window=4)
    result = generate(data, profiles, out, config)
    rows = [json.loads(line) for split in result.paths.values() for line in split.read_text().splitlines()]
    per = {p.display_name: sum(1 for r in rows if r["persona"] == p.display_name) for p in profiles}
    assert per["Alice A"] == 25
    for row in rows:
        system, user, assistant = row["messages"]
        assert system["role"] == "system" and system["content"].startswith(
            f"You are {row['persona']}. You write"
        )
        assert user["content"].startswith("# Conversation Messages")
        assert assistant["train"] is True and assistant["name"] == row["persona"]
        assert 0 <= row["context_messages"] <= 4
    assert (result.dataset_dir / "README.md").read_text().count("Discord persona instructions") >= 1
    assert {"next_message", "continue", "respond_to"} <= {r["template"] for r in rows}
