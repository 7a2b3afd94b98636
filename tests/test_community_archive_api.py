"""The Community Archive REST source against a PostgREST stand-in on loopback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipeline.config import CommunityArchiveConfig
from pipeline.ingest import ingest_archives, ingest_files
from pipeline.sources import community_archive as ca
from pipeline.store import Store
from pipeline.timefmt import iso_time
from tests.support.postgrest import PostgrestStandIn, parse_sql_inserts, serve

KEY = "test-anon-key"
BASE_MS = 1_720_000_000_000


def make_tables(accounts: dict[str, int], tweets_per_account: int) -> dict[str, list[dict[str, Any]]]:
    """Rows shaped like the Community Archive's tables: TEXT ids, ISO timestamps, int counts."""
    tables: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "account",
            "archive_upload",
            "profile",
            "tweets",
            "tweet_urls",
            "tweet_media",
            "user_mentions",
            "mentioned_users",
        )
    }
    tables["mentioned_users"].append({"user_id": "9", "name": "Outside", "screen_name": "outsider"})
    for n, (username, account_id) in enumerate(accounts.items()):
        aid = str(account_id)
        tables["account"].append(
            {
                "account_id": aid,
                "username": username,
                "account_display_name": username.upper(),
                "created_at": "2015-01-01T00:00:00+00:00",
                "created_via": "web",
            }
        )
        upload_id = n + 1
        tables["archive_upload"].append(
            {
                "id": upload_id,
                "account_id": aid,
                "archive_at": iso_time(BASE_MS),
                "created_at": iso_time(BASE_MS + 1000 + n),
                "start_date": None,
                "end_date": None,
                "upload_phase": "completed",
            }
        )
        tables["profile"].append(
            {
                "account_id": aid,
                "bio": f"bio of {username}",
                "website": None,
                "location": None,
                "avatar_media_url": None,
                "header_media_url": None,
            }
        )
        for k in range(tweets_per_account):
            tweet_id = str(1_800_000_000_000_000_000 + account_id * 100_000 + k)
            row = {
                "tweet_id": tweet_id,
                "account_id": aid,
                "created_at": iso_time(BASE_MS - (tweets_per_account - k) * 60_000),
                "full_text": f"tweet {k} by {username} &amp; friends",
                "retweet_count": k % 3,
                "favorite_count": k,
                "reply_to_tweet_id": None,
                "reply_to_user_id": None,
                "reply_to_username": None,
                "archive_upload_id": upload_id,
            }
            if k % 10 == 1:
                row.update(
                    reply_to_tweet_id=str(int(tweet_id) - 1), reply_to_user_id=aid, reply_to_username=username
                )
            tables["tweets"].append(row)
            if k % 5 == 0:
                tables["tweet_urls"].append(
                    {
                        "id": len(tables["tweet_urls"]) + 1,
                        "tweet_id": tweet_id,
                        "url": "https://t.co/x",
                        "expanded_url": f"https://blog.example/{k}",
                        "display_url": "blog.example",
                    }
                )
            if k % 7 == 0:
                tables["tweet_media"].append(
                    {
                        "media_id": int(tweet_id) + 7,
                        "tweet_id": tweet_id,
                        "media_url": "https://pbs.twimg.com/media/a.jpg",
                        "media_type": "photo",
                        "width": 10,
                        "height": 20,
                    }
                )
            tables["user_mentions"].append(
                {"id": len(tables["user_mentions"]) + 1, "tweet_id": tweet_id, "mentioned_user_id": "9"}
            )
    return tables


def config(url: str, **kwargs: Any) -> CommunityArchiveConfig:
    values: dict[str, Any] = {
        "url": url,
        "anon_key": SecretStr(KEY),
        "page_size": 50,
        "id_chunk": 20,
        "backoff_s": 0.01,
    }
    values.update(kwargs)
    return CommunityArchiveConfig(**values)


def fetch(store: Store, client: ca.CommunityArchiveClient, plan: ca.FetchPlan, raw_dir: Path) -> Any:
    known = store.read_manifest().known_digests()
    return ingest_archives(
        store, ca.download_accounts(client, plan, raw_dir, known), source=ca.SOURCE, show_progress=False
    )


def test_users_are_fetched_with_paging_and_entities(tmp_path: Path) -> None:
    standin = PostgrestStandIn(make_tables({"alice": 11, "bob": 22}, 130), api_key=KEY)
    store = Store(tmp_path / "store", gc_grace_s=0)
    with serve(standin) as url, ca.CommunityArchiveClient(config(url)) as client:
        plan = ca.plan_users(client, ["ALICE", "nobody"])
        assert plan.not_found == ["nobody"] and [a["username"] for a, _ in plan.targets] == ["alice"]
        result = fetch(store, client, plan, tmp_path / "raw")
        again = fetch(store, client, plan, tmp_path / "raw")  # same rows again: nothing to merge
        assert again.unchanged == ["community-archive:alice"] and not again.accounts
    assert not result.failed
    con = store.connect()
    tweets = con.execute(
        "SELECT count(*), count(reply_to_tweet_id), sum(favorite_count) FROM tweets"
    ).fetchone()
    assert tweets == (130, 13, sum(range(130)))
    assert con.execute("SELECT full_text FROM tweets ORDER BY tweet_id LIMIT 1").fetchone() == (
        "tweet 0 by alice & friends",
    )
    assert con.execute("SELECT count(*) FROM urls").fetchone() == (26,)
    assert con.execute("SELECT count(*) FROM media").fetchone() == (19,)
    assert con.execute("SELECT count(*), min(screen_name) FROM mentions").fetchone() == (130, "outsider")
    assert con.execute("SELECT bio FROM profiles").fetchone() == ("bio of alice",)
    # 130 tweets at 50 per page: 3 pages, keyset-paged, for each of the two downloads
    assert standin.count("tweets") == 6
    pages = [q for r, q, _ in standin.requests if r == "tweets"]
    assert "tweet_id" not in pages[0] and pages[1]["tweet_id"].startswith("gt.")
    # the key goes in both headers, as Supabase wants
    assert all(h["apikey"] == KEY and h["authorization"] == f"Bearer {KEY}" for _, _, h in standin.requests)
    raw = list((tmp_path / "raw").glob("*.json"))
    assert [p.name for p in raw] == ["alice_20240703T094641Z.json"]
    # the raw download is a real archive.json: re-ingesting it offline gives the same tweets
    again = Store(tmp_path / "again", gc_grace_s=0)
    ingest_files(again, raw, kind="archive", workers=1, show_progress=False)
    assert again.connect().execute("SELECT count(*), sum(favorite_count) FROM tweets").fetchone() == (
        130,
        sum(range(130)),
    )


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    standin = PostgrestStandIn(make_tables({"alice": 11}, 20), api_key=KEY)
    standin.fail("tweets", times=2, status=503)
    standin.fail("tweet_urls", times=1, status=429, headers={"Retry-After": "2"})
    standin.fail("tweet_media", times=1, status=200, body=b"<html>gateway hiccup</html>")
    sleeps: list[float] = []
    with serve(standin) as url, ca.CommunityArchiveClient(config(url), sleep=sleeps.append, seed=1) as client:
        result = fetch(Store(tmp_path / "s"), client, ca.plan_users(client, ["alice"]), tmp_path / "raw")
        assert client.retries == 4
    assert not result.failed and result.tweets == 20
    assert 2.0 in sleeps  # Retry-After honoured
    assert len(sleeps) == 4 and max(sleeps) <= config("x").max_backoff_s


def test_persistent_failure_fails_one_account_not_the_run(tmp_path: Path) -> None:
    standin = PostgrestStandIn(make_tables({"alice": 11, "bob": 22}, 10), api_key=KEY)
    store = Store(tmp_path / "s", gc_grace_s=0)
    with (
        serve(standin) as url,
        ca.CommunityArchiveClient(config(url, max_attempts=3), sleep=lambda s: None) as client,
    ):
        plan = ca.plan_users(client, ["alice", "bob"])
        standin.fail("tweets", times=3, status=500)  # alice's first page fails three times
        result = fetch(store, client, plan, tmp_path / "raw")
    assert list(result.failed) == ["community-archive:alice"]
    assert "HTTP 500 after 3 attempts" in result.failed["community-archive:alice"]
    assert store.connect().execute("SELECT DISTINCT username FROM tweets").fetchall() == [("bob",)]


def test_garbage_and_auth_errors_are_clear(tmp_path: Path) -> None:
    standin = PostgrestStandIn(make_tables({"alice": 11}, 5), api_key=KEY)
    with serve(standin) as url:
        with ca.CommunityArchiveClient(config(url, max_attempts=2), sleep=lambda s: None) as client:
            standin.fail("account", times=2, status=200, body=b'{"not": "a list"}')
            with pytest.raises(ca.FetchError, match="expected a JSON array"):
                client.find_account("alice")
        with (
            ca.CommunityArchiveClient(config(url, anon_key=SecretStr("wrong"))) as client,
            pytest.raises(ca.FetchError, match="HTTP 401"),
        ):
            client.find_account("alice")
        assert standin.count("account") == 3  # a 401 is not retried


def test_poll_fetches_only_newer_uploads(tmp_path: Path) -> None:
    tables = make_tables({"alice": 11, "bob": 22, "carol": 33}, 5)
    standin = PostgrestStandIn(tables, api_key=KEY)
    store = Store(tmp_path / "s", gc_grace_s=0)

    def held() -> dict[int, tuple[set[int], int]]:
        return store.read_manifest().uploads_held()

    with serve(standin) as url, ca.CommunityArchiveClient(config(url)) as client:
        fetch(store, client, ca.plan_users(client, ["alice", "bob"]), tmp_path / "raw")
        assert ca.plan_poll(client, held()).targets == []
        # bob uploads again (newer, with one more tweet); carol is not in the store
        tables["archive_upload"].append(
            {**tables["archive_upload"][1], "id": 99, "created_at": iso_time(BASE_MS + 86_400_000)}
        )
        tables["tweets"].append(
            {**tables["tweets"][5], "tweet_id": "1800000000002209999", "full_text": "fresh"}
        )
        plan = ca.plan_poll(client, held())
        assert [a["username"] for a, _ in plan.targets] == ["bob"] and plan.up_to_date == ["11"]
        fetch(store, client, plan, tmp_path / "raw")
        assert ca.plan_poll(client, held()).targets == []
        assert [a["username"] for a, _ in ca.plan_poll(client, held(), everything=True).targets] == ["carol"]
    counts = dict(store.connect().execute("SELECT username, count(*) FROM tweets GROUP BY 1").fetchall())
    assert counts == {"alice": 5, "bob": 6}
    bob = store.read_manifest().accounts["22"]
    assert [s.upload_id for s in bob.snapshots] == [2, 99]


def test_secrets_never_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    standin = PostgrestStandIn(make_tables({"alice": 11}, 3), api_key=KEY)
    standin.fail("tweets", times=1, status=502)
    caplog.set_level(logging.DEBUG)
    with serve(standin) as url, ca.CommunityArchiveClient(config(url), sleep=lambda s: None) as client:
        fetch(Store(tmp_path / "s"), client, ca.plan_users(client, ["alice"]), tmp_path / "raw")
        assert KEY not in repr(client.config) and KEY not in str(client.config.model_dump())
    assert "retry" in caplog.text
    assert KEY not in caplog.text


def test_real_rows_from_the_community_archive(shared_data: Path, tmp_path: Path) -> None:
    """Real CA rows (Sept 2024, @emergentvibe) through the stand-in; counts checked by hand against the SQL."""
    tables = parse_sql_inserts(
        (shared_data / "community-archive" / "rest-rows" / "public-data.sql").read_text()
    )
    for upload in tables["archive_upload"]:
        upload["upload_phase"] = "completed"  # the 2024 schema predates upload phases
    standin = PostgrestStandIn(tables, api_key=KEY)
    store = Store(tmp_path / "s", gc_grace_s=0)
    with serve(standin) as url, ca.CommunityArchiveClient(config(url)) as client:
        result = fetch(store, client, ca.plan_users(client, ["emergentvibe"]), tmp_path / "raw")
    assert not result.failed
    con = store.connect()
    # 17 tweet rows; 11 have reply_to_tweet_id; 1 photo (on 1826262228494131479); no URL row is for these tweets;
    # 8 user_mentions rows point at these tweets but mentioned_users lacks those ids, so no screen name to keep.
    assert con.execute(
        "SELECT count(*), count(reply_to_tweet_id), sum(favorite_count) FROM tweets"
    ).fetchone() == (17, 11, 15)
    assert con.execute("SELECT tweet_id, media_type, width FROM media").fetchall() == [
        (1826262228494131479, "photo", 628)
    ]
    assert con.execute("SELECT count(*) FROM urls").fetchone() == (0,)
    assert con.execute("SELECT username, display_name FROM accounts").fetchall() == [
        ("emergentvibe", "Emergent")
    ]
    assert con.execute(
        "SELECT count(*) FROM tweets WHERE full_text LIKE '%i''m okay with the pile%'"
    ).fetchone() == (1,)
    snap = store.read_manifest().accounts["1796120648281923584"].snapshots[0]
    assert snap.upload_id == 17 and snap.observed_at.isoformat().startswith("2024-09-04T07:53:14")
