"""What is in the store: counts per source and account, date range, tweet kinds, recent ingests."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from pipeline.store import Store
from pipeline.store.manifest import IngestRun


class AccountStats(BaseModel):
    account_id: int
    username: str
    tweets: int
    replies: int
    quotes: int
    retweets: int
    notes: int
    deleted: int
    first: dt.datetime | None
    last: dt.datetime | None
    sources: str


class StoreStats(BaseModel):
    accounts: int
    tweets: int
    live_tweets: int
    deleted: int
    replies: int
    replies_parent_in_store: int
    self_replies: int
    quotes: int
    quotes_target_in_store: int
    retweets: int
    notes: int
    community: int
    edited: int
    urls: int
    media: int
    mentions: int
    likes: int
    followers: int
    following: int
    first: dt.datetime | None
    last: dt.datetime | None
    per_source: dict[str, int]
    per_account: list[AccountStats]
    recent_ingests: list[IngestRun]


def _count(con: object, sql: str) -> int:
    row = con.execute(sql).fetchone()  # type: ignore[attr-defined]
    return int(row[0] or 0) if row else 0


def store_stats(store: Store, *, top: int = 20) -> StoreStats:
    manifest = store.read_manifest()
    con = store.connect()
    try:
        row = con.execute(
            """SELECT count(*), count(*) FILTER (NOT deleted), count(*) FILTER (deleted),
                      count(reply_to_tweet_id), count(*) FILTER (reply_to_user_id = account_id),
                      count(quoted_tweet_id), count(*) FILTER (is_retweet), count(*) FILTER (is_note),
                      count(community_id), count(edit_initial_id), min(created_at), max(created_at)
               FROM tweets"""
        ).fetchone()
        assert row is not None
        parent_in_store = _count(
            con, "SELECT count(*) FROM tweets t SEMI JOIN tweets p ON t.reply_to_tweet_id = p.tweet_id"
        )
        quote_in_store = _count(
            con, "SELECT count(*) FROM tweets t SEMI JOIN tweets q ON t.quoted_tweet_id = q.tweet_id"
        )
        per_source = dict(
            con.execute("SELECT source, count(*) FROM tweets GROUP BY source ORDER BY 2 DESC").fetchall()
        )
        accounts = con.execute(
            f"""SELECT account_id, any_value(username), count(*), count(reply_to_tweet_id), count(quoted_tweet_id),
                       count(*) FILTER (is_retweet), count(*) FILTER (is_note), count(*) FILTER (deleted),
                       min(created_at), max(created_at), string_agg(DISTINCT source, ',')
                FROM tweets GROUP BY account_id ORDER BY 3 DESC LIMIT {int(top)}"""
        ).fetchall()
        return StoreStats(
            accounts=len(manifest.accounts),
            tweets=row[0],
            live_tweets=row[1],
            deleted=row[2],
            replies=row[3],
            replies_parent_in_store=parent_in_store,
            self_replies=row[4],
            quotes=row[5],
            quotes_target_in_store=quote_in_store,
            retweets=row[6],
            notes=row[7],
            community=row[8],
            edited=row[9],
            urls=_count(con, "SELECT count(*) FROM urls"),
            media=_count(con, "SELECT count(*) FROM media"),
            mentions=_count(con, "SELECT count(*) FROM mentions"),
            likes=_count(con, "SELECT count(*) FROM likes"),
            followers=_count(con, "SELECT count(*) FROM followers"),
            following=_count(con, "SELECT count(*) FROM following"),
            first=row[10],
            last=row[11],
            per_source=per_source,
            per_account=[
                AccountStats(
                    account_id=a[0],
                    username=a[1],
                    tweets=a[2],
                    replies=a[3],
                    quotes=a[4],
                    retweets=a[5],
                    notes=a[6],
                    deleted=a[7],
                    first=a[8],
                    last=a[9],
                    sources=a[10],
                )
                for a in accounts
            ],
            recent_ingests=manifest.history[-10:],
        )
    finally:
        con.close()
