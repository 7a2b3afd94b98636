"""The archive quirks, on hand-built documents with exact expected rows."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pipeline.sources.archive_json import load_archive_json
from pipeline.sources.base import AccountArchive, SourceError
from pipeline.sources.normalize import normalize_archive, parse_twitter_time, status_link, unescape
from tests.support.archives import (
    BASE_MS,
    archive,
    mention,
    note,
    photo,
    snowflake,
    tid,
    tweet,
    url,
    write,
)


def run(doc: dict[str, Any], tmp_path: Any = None) -> AccountArchive:
    """Through the real byte decoder when a path is given (fast typed path), else from a dict."""
    if tmp_path is not None:
        return load_archive_json(write(tmp_path / "a.json", doc))
    return normalize_archive(doc, origin="test", source="archive")


def rows(archive: AccountArchive, table: str) -> list[dict[str, Any]]:
    return archive.tables[table].to_pylist()


def by_id(archive: AccountArchive) -> dict[int, dict[str, Any]]:
    return {r["tweet_id"]: r for r in rows(archive, "tweets")}


def test_twitter_time_and_iso_fallback() -> None:
    assert parse_twitter_time("Sat Feb 18 12:33:11 +0000 2023") == 1676723591000
    assert parse_twitter_time("Sat Feb 18 14:33:11 +0200 2023") == 1676723591000
    assert parse_twitter_time("2023-02-18T12:33:11.000Z") == 1676723591000


def test_unescape_is_exact_for_twitter_escaping() -> None:
    # Twitter escapes only &, < and >; a user who typed "&lt;" literally arrives as "&amp;lt;".
    assert unescape("a &amp; b &lt;3 &gt; c") == "a & b <3 > c"
    assert unescape("&amp;lt; stays") == "&lt; stays"
    assert unescape("&copy; is not an entity here") == "&copy; is not an entity here"


@pytest.mark.parametrize("typed_path", [True, False])
def test_basic_fields_string_counts_and_reply_keys(tmp_path: Any, typed_path: bool) -> None:
    doc = archive(
        tweets=[
            tweet(1, "hello &amp; welcome", likes="12", rts="3"),
            tweet(2, "@bob @carol sure thing", reply_to=999, reply_user="77", reply_name="bob"),
            tweet(3, "@bob no screen name on this reply", reply_to=998, reply_user="77"),
            tweet(4, "@dave an old-style mention, no status id", reply_user="88"),
        ]
    )
    result = run(doc, tmp_path if typed_path else None)
    t = by_id(result)
    first = t[tid(1)]
    assert first["full_text"] == "hello & welcome"
    assert (first["favorite_count"], first["retweet_count"]) == (12, 3)
    assert first["reply_to_tweet_id"] is None and first["reply_to_user_id"] is None
    assert first["created_at"].timestamp() * 1000 == BASE_MS + 60_000
    assert (first["account_id"], first["username"], first["source"]) == (1000, "alice", "archive")
    reply = t[tid(2)]
    assert (reply["reply_to_tweet_id"], reply["reply_to_user_id"], reply["reply_to_username"]) == (
        999,
        77,
        "bob",
    )
    assert reply["full_text"][reply["mention_prefix_len"] :] == "sure thing"
    assert t[tid(3)]["reply_to_username"] is None and t[tid(3)]["reply_to_tweet_id"] == 998
    old = t[tid(4)]
    assert old["reply_to_tweet_id"] is None and old["reply_to_user_id"] == 88
    assert result.report.counts["replies"] == 2


def test_media_prefers_extended_entities(tmp_path: Any) -> None:
    four = [photo(500 + i, i + 1) for i in range(4)]
    video = {
        **photo(600),
        "type": "video",
        "video_info": {
            "duration_millis": "21154",
            "variants": [
                {"bitrate": "256000", "content_type": "video/mp4", "url": "https://v/low.mp4"},
                {"bitrate": "2176000", "content_type": "video/mp4", "url": "https://v/high.mp4"},
                {"content_type": "application/x-mpegURL", "url": "https://v/pl.m3u8"},
            ],
        },
    }
    doc = archive(
        tweets=[
            tweet(1, "four photos", media=four[:1], ext_media=four),
            tweet(2, "legacy: entities.media only", media=[photo(700)]),
            tweet(3, "a video", media=[video], ext_media=[video]),
        ]
    )
    media = rows(run(doc, tmp_path), "media")
    assert [m["media_id"] for m in media if m["tweet_id"] == tid(1)] == [500, 501, 502, 503]
    assert [m["media_id"] for m in media if m["tweet_id"] == tid(2)] == [700]
    (v,) = [m for m in media if m["tweet_id"] == tid(3)]
    assert (v["media_type"], v["video_url"], v["duration_ms"], v["width"]) == (
        "video",
        "https://v/high.mp4",
        21154,
        1200,
    )


def test_edited_tweet_keeps_last_version(tmp_path: Any) -> None:
    v1, v2, v3 = tid(1), tid(2), tid(3)
    doc = archive(
        tweets=[
            tweet(1, "frist version", edit_ids=[v1, v2, v3]),
            tweet(2, "second version", edit_of=v1),
            tweet(3, "third version", edit_of=v1),
            tweet(
                4, "@alice replying to the first version", reply_to=v1, reply_user="1000", reply_name="alice"
            ),
        ]
    )
    result = run(doc, tmp_path)
    t = by_id(result)
    assert set(t) == {v3, tid(4)}
    assert t[v3]["full_text"] == "third version" and t[v3]["edit_initial_id"] == v1
    assert {(e["tweet_id"], e["final_tweet_id"]) for e in rows(result, "edits")} == {(v1, v3), (v2, v3)}
    assert result.report.counts["edits_superseded"] == 2


def test_retweets_quotes_and_status_links(tmp_path: Any) -> None:
    own = tid(3)
    doc = archive(
        tweets=[
            tweet(1, "RT @someone: this was said elsewhere…", mentions=[mention("someone")]),
            tweet(
                2,
                "look https://t.co/q",
                urls=[url("https://twitter.com/bob/status/111"), url("https://x.com/carol/status/222?s=20")],
            ),
            tweet(3, "my own photo link", urls=[url(f"https://twitter.com/alice/status/{own}/photo/1")]),
            tweet(4, "web link", urls=[url("https://twitter.com/i/web/status/333")]),
            tweet(5, "a blog", urls=[url("https://blog.example/post")]),
        ]
    )
    result = run(doc, tmp_path)
    t = by_id(result)
    assert t[tid(1)]["is_retweet"] and t[tid(1)]["retweeted_username"] == "someone"
    assert (t[tid(2)]["quoted_tweet_id"], t[tid(2)]["quoted_username"]) == (
        222,
        "carol",
    )  # the last status link
    assert t[tid(3)]["quoted_tweet_id"] is None  # a link to itself is not a quote
    assert (t[tid(4)]["quoted_tweet_id"], t[tid(4)]["quoted_username"]) == (333, None)
    assert t[tid(5)]["quoted_tweet_id"] is None
    assert status_link("https://mobile.twitter.com/Bob_1/statuses/12") == (12, "Bob_1")
    urls_rows = rows(result, "urls")
    assert [u["status_tweet_id"] for u in urls_rows if u["tweet_id"] == tid(2)] == [111, 222]
    assert result.report.counts["quotes"] == 2 and result.report.counts["retweets"] == 1


def test_note_tweets_merge_by_snowflake_time_and_text(tmp_path: Any) -> None:
    long_text = "First line of a long post that goes on and on. " * 12
    reply_long = "A long reply that continues well past the limit of a normal tweet; " * 8
    doc = archive(
        tweets=[
            tweet(1, long_text[:270] + "… https://t.co/media1"),
            tweet(2, "@bob " + reply_long[:260] + "…", reply_to=5, reply_user="77", reply_name="bob"),
            tweet(3, "a short unrelated tweet"),
        ],
        notes=[
            # the note's own t.co link differs from the tweet's: matching ignores t.co links
            note(
                1,
                long_text.strip(),
                urls=[{"shortUrl": "https://t.co/n1", "expandedUrl": "https://blog.example/deep"}],
            ),
            note(2, reply_long.strip(), offset_ms=41),
            note(3, "a note whose text is in no tweet at all " * 10),
        ],
    )
    result = run(doc, tmp_path)
    t = by_id(result)
    assert t[tid(1)]["is_note"] and t[tid(1)]["full_text"] == long_text.strip()
    assert t[tid(1)]["note_tweet_id"] == snowflake(BASE_MS + 60_000 - 20, 7)
    assert t[tid(2)]["is_note"] and t[tid(2)]["full_text"] == "@bob " + reply_long.strip()
    assert t[tid(2)]["mention_prefix_len"] == len("@bob ")
    assert not t[tid(3)]["is_note"]
    assert result.report.counts["notes_merged"] == 2
    assert result.report.counts["notes_unmatched"] == 1
    assert result.report.skipped["note-tweet without a matching tweet"] == 1
    assert "https://blog.example/deep" in {u["expanded_url"] for u in rows(result, "urls")}


def test_community_tweets_and_sections(tmp_path: Any) -> None:
    community = tweet(
        9, "in a community", community_id_str="1500000000000000001", community_id="1500000000000000001"
    )
    doc = archive(
        tweets=[tweet(1, "plain")],
        community=[community],
        likes=[
            {
                "like": {
                    "tweetId": "11",
                    "fullText": "liked &amp; loved",
                    "expandedUrl": "https://twitter.com/i/web/status/11",
                }
            },
            {"like": {"tWeetId": "12"}},
            {"like": {"tweetId": "11", "fullText": "duplicate"}},
        ],
        followers=["5", "6", "6"],
        following=["7"],
    )
    result = run(doc, tmp_path)
    assert by_id(result)[tid(9)]["community_id"] == 1500000000000000001
    likes = rows(result, "likes")
    assert [(like["tweet_id"], like["full_text"]) for like in likes] == [(11, "liked & loved"), (12, None)]
    assert [f["follower_id"] for f in rows(result, "followers")] == [5, 6]
    assert [f["following_id"] for f in rows(result, "following")] == [7]
    assert rows(result, "profiles")[0]["bio"] == "I am alice"


def test_withheld_likes_are_absent_not_empty(tmp_path: Any) -> None:
    result = run(archive(tweets=[tweet(1, "x")], likes=[], start=0, end=5, upload_likes=False), tmp_path)
    assert "likes" not in result.tables  # an earlier snapshot's likes must survive a merge
    assert "likes" in run(archive(tweets=[tweet(1, "x")], likes=[], start=0, end=5), tmp_path).tables


def test_snapshot_and_coverage_from_upload_options(tmp_path: Any) -> None:
    result = run(archive(tweets=[tweet(3, "x")], start=1, end=10), tmp_path)
    snap = result.snapshot
    assert snap.coverage_start is not None and snap.coverage_start.timestamp() * 1000 == BASE_MS + 60_000
    assert snap.observed_at.timestamp() * 1000 == BASE_MS + 600_000
    bare = run(archive(tweets=[tweet(3, "x"), tweet(4, "y")]), tmp_path).snapshot
    assert bare.coverage_start is None and bare.observed_at.timestamp() * 1000 == BASE_MS + 4 * 60_000


# -- bad input: counted skips and repairs, never a crash ------------------------------------------


@pytest.mark.parametrize("typed_path", [True, False])
def test_wrong_types_are_repaired_or_skipped_and_counted(tmp_path: Any, typed_path: bool) -> None:
    doc = archive(
        tweets=[
            tweet(1, "good"),
            tweet(2, "bad count", likes=["not", "a", "number"]),
            tweet(3, "bad id", id_override="abc"),
            tweet(4, "bad date", created_at="yesterday-ish"),
            "not even an object",
            tweet(5, "bad mention", mentions=[mention("ok"), "garbage"]),
            tweet(1, "duplicate of the first"),
            tweet(6, "text is a number", full_text=12345),
        ]
    )
    result = run(doc, tmp_path if typed_path else None)
    t = by_id(result)
    assert set(t) == {tid(1), tid(2), tid(5)}
    assert t[tid(1)]["full_text"] == "good"
    assert t[tid(2)]["favorite_count"] is None and t[tid(2)]["full_text"] == "bad count"
    assert [m["screen_name"] for m in rows(result, "mentions")] == ["ok"]
    skipped = result.report.skipped
    assert sum(skipped.values()) == 5
    assert skipped["duplicate tweet id"] == 1
    assert any("created_at" in reason for reason in skipped)
    assert any("id_str" in reason for reason in skipped)
    assert any("full_text" in reason for reason in skipped)
    assert result.report.coerced["tweet.favorite_count"] == 1
    assert result.report.coerced["tweet.entities.user_mentions"] == 1


def test_not_an_archive_is_a_clear_error(tmp_path: Any) -> None:
    for content, expected in (
        (b'{"foo": 1}', "no 'tweets' section"),
        (b"[1, 2, 3]", "not an object"),
        (b'{"tweets": [], "account": []}', "no 'account' section"),
        (b'{"tweets": {"a": 1}, "account": []}', "not a list"),
        (b'{"upload-options": {}, "account": [{"acc', "invalid JSON"),
        (b"", "empty file"),
    ):
        path = tmp_path / "x.json"
        path.write_bytes(content)
        with pytest.raises(SourceError) as info:
            load_archive_json(path)
        assert expected in str(info.value), (content, str(info.value))
        assert str(path) in str(info.value)


def test_control_characters_are_stripped_like_the_uploader(tmp_path: Any) -> None:
    raw = orjson.dumps(archive(tweets=[tweet(1, "clean")])).replace(b'"clean"', b'"cl\x01ean"')
    path = tmp_path / "ctl.json"
    path.write_bytes(raw)
    assert rows(load_archive_json(path), "tweets")[0]["full_text"] == "clean"
