"""The real public samples in ../shared/data, end to end, with counts checked by hand.

The expected numbers were counted independently of this code from the raw JSON: tweets by
`id_str`; replies by the presence of `in_reply_to_status_id_str`; retweets by the "RT @"
prefix; quotes as tweets with a status link to another tweet; edits from `edit_info`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ingest import ingest_files
from pipeline.stats import store_stats
from pipeline.store import Store

EXPECTED = {
    # name: (tweets kept, replies, retweets, quotes, notes merged, edits superseded, media, urls, likes, followers, following)
    "exgenesis_mock": (7, 6, 0, 0, 0, 0, 4, 0, 0, 3, 3),
    "ranigupta_20": (335, 322, 0, 0, 1, 0, 15, 0, 866, 76, 185),
    # 374 urls: 370 from tweet entities plus 4 links that only the long posts' note-tweets carry
    "alrocar_2024-11": (1218, 819, 12, 156, 41, 5, 711, 374, 0, 0, 0),
}


@pytest.mark.parametrize("kind", ["archive", "twitter-export"])
def test_real_archives_exact_counts(shared_data: Path, tmp_path: Path, kind: str) -> None:
    ca = shared_data / "community-archive"
    store = Store(tmp_path / "store", gc_grace_s=0)
    if kind == "archive":
        inputs = sorted((ca / "archive-json").glob("*.archive.json"))
    else:
        inputs = sorted(p for p in (ca / "twitter-export").iterdir() if p.is_dir())
    result = ingest_files(store, inputs, kind=kind, workers=2, show_progress=False)
    assert not result.failed
    assert not result.report.skipped and not result.report.coerced
    con = store.connect()
    for name, expected in EXPECTED.items():
        username = {
            "exgenesis_mock": "exGenesis",
            "ranigupta_20": "ranigupta_20",
            "alrocar_2024-11": "alrocar",
        }[name]
        row = con.execute(
            """SELECT count(*), count(reply_to_tweet_id), count(*) FILTER (is_retweet), count(quoted_tweet_id),
                      count(*) FILTER (is_note), count(DISTINCT e.tweet_id)
               FROM tweets t LEFT JOIN edits e ON e.final_tweet_id = t.tweet_id WHERE t.username = ?""",
            [username],
        ).fetchone()
        account_id = con.execute("SELECT account_id FROM accounts WHERE username = ?", [username]).fetchone()[
            0
        ]
        media = con.execute(
            "SELECT count(*) FROM media m JOIN tweets t USING (tweet_id) WHERE t.account_id = ?", [account_id]
        ).fetchone()[0]
        urls = con.execute(
            "SELECT count(*) FROM urls u JOIN tweets t USING (tweet_id) WHERE t.account_id = ?", [account_id]
        ).fetchone()[0]
        social = [
            con.execute(f"SELECT count(*) FROM {table} WHERE account_id = ?", [account_id]).fetchone()[0]
            for table in ("likes", "followers", "following")
        ]
        # the edits join counts each final version once per superseded version: 5 single edits here
        assert (*row[:5], row[5], media, urls, *social) == expected, name
    stats = store_stats(store)
    assert stats.tweets == 7 + 335 + 1218 and stats.deleted == 0
    # the note-tweet of a reply keeps the reply's leading mention
    text, prefix = con.execute(
        "SELECT full_text, mention_prefix_len FROM tweets WHERE username = 'ranigupta_20' AND is_note"
    ).fetchone()
    assert (
        text.startswith("@BeautyofIndia9 Banaras") and text[prefix:].startswith("Banaras") and len(text) > 280
    )


def test_archive_then_export_of_the_same_account_merges(shared_data: Path, tmp_path: Path) -> None:
    ca = shared_data / "community-archive"
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest_files(
        store,
        [ca / "archive-json" / "alrocar_2024-11.archive.json"],
        kind="archive",
        workers=1,
        show_progress=False,
    )
    ingest_files(
        store,
        [ca / "twitter-export" / "alrocar_2024-11"],
        kind="twitter-export",
        workers=1,
        show_progress=False,
    )
    con = store.connect()
    assert con.execute("SELECT count(*), count(*) FILTER (deleted) FROM tweets").fetchone() == (1218, 0)
    assert len(store.read_manifest().accounts["52338276"].snapshots) == 2
