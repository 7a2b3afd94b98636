"""Engagement loop and reward: snapshots via the fake X API, t-digest rewards, RL rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from sqlalchemy import select

from pipeline.bot.config import BotConfig, LoopConfig, PersonaConfig, XConfig, XCredentials
from pipeline.bot.engagement import (
    age_share,
    collect_comments,
    compute_rewards,
    export_rl_rows,
    projected,
    reward,
    snapshot_engagement,
)
from pipeline.bot.store import BotStore, Comment, EngagementSnapshot, Post, content_hash, utcnow
from pipeline.bot.x import XInteractor
from pipeline.scoring import StreamingScorer
from tests.support.fake_x import ENV, ME_ID, FakeX, serve_fake_x, x_time

pytestmark = pytest.mark.network_loopback


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with serve_fake_x(FakeX()) as server:
        yield server


def setup(
    tmp_path: Path, fake: FakeX, n: int, **bot: object
) -> tuple[BotConfig, BotStore, XInteractor, list[str]]:
    config = BotConfig(
        name="tpot",
        persona=PersonaConfig(name="Tpot"),
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        x=XConfig(base_url=fake.url),
        **bot,  # type: ignore[arg-type]
    )
    store = BotStore(config.database_url)
    store.init()
    now = utcnow()
    ids = []
    with store.session() as s:
        for i in range(n):
            text = f"post number {i} about models"
            tweet = fake.add_tweet(ME_ID, text, on_timeline=False)
            ids.append(tweet["id"])
            s.add(
                Post(
                    bot="tpot",
                    tweet_id=tweet["id"],
                    prompt=[{"role": "user", "content": f"prompt {i}"}],
                    content=text,
                    content_hash=content_hash(text),
                    status="posted",
                    posted_at=now - timedelta(hours=2),
                )
            )
    return config, store, XInteractor(config.x, XCredentials.from_env(ENV)), ids


def test_snapshots_batch_ids_and_track_growth(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x, ids = setup(tmp_path, fake, 250)
    first = snapshot_engagement(bot, store, x)
    assert (first.posts, first.snapshots, first.api_calls) == (250, 250, 3)  # ceil(250 / 100)
    httpx.post(
        f"{fake.url}/_test/engagement",
        json={"id": ids[3], "like_count": 7, "retweet_count": 2, "impression_count": 500},
    )
    del fake.tweets[ids[4]]  # deleted on X
    second = snapshot_engagement(bot, store, x)
    assert second.snapshots == 249 and second.missing == [ids[4]]
    with store.session() as s:
        post_id = s.scalars(select(Post.id).where(Post.tweet_id == ids[3])).one()
        snaps = s.scalars(
            select(EngagementSnapshot)
            .where(EngagementSnapshot.post_id == post_id)
            .order_by(EngagementSnapshot.id)
        ).all()
    assert [(v.likes, v.retweets, v.impressions) for v in snaps] == [(0, 0, 0), (7, 2, 500)]
    assert 7100 < snaps[1].age_s < 7300


def test_own_recent_posts_get_non_public_and_organic_metrics(tmp_path: Path, fake: FakeX) -> None:
    """< 30 days: non_public + organic metrics stored; older (or refused by X): public only, none lost."""
    bot, store, x, ids = setup(tmp_path, fake, 3, loops=LoopConfig(snapshot_max_age_days=60))
    old_at = utcnow() - timedelta(days=40)
    fake.tweets[ids[1]]["created_at"] = x_time(old_at)
    fake.tweets[ids[2]]["created_at"] = x_time(old_at)  # our row says 2 h: X refuses, we fall back
    with store.session() as s:
        s.scalars(select(Post).where(Post.tweet_id == ids[1])).one().posted_at = old_at
    fake.bump(
        ids[0], like_count=4, impression_count=300, engagements=12, url_link_clicks=2, user_profile_clicks=3
    )
    fake.bump(ids[1], like_count=1, impression_count=50, engagements=9)
    result = snapshot_engagement(bot, store, x)
    assert (result.snapshots, result.missing) == (3, [])
    private = [
        r
        for r in fake.requests
        if r["route"] == "tweets" and "non_public_metrics" in r["query"]["tweet.fields"]
    ]
    assert len(private) == 1 and "organic_metrics" in private[0]["query"]["tweet.fields"]
    assert sorted(private[0]["query"]["ids"].split(",")) == sorted(
        [ids[0], ids[2]]
    )  # the 40-day one not asked
    with store.session() as s:
        snaps = {
            t: snap
            for t, snap in s.execute(
                select(Post.tweet_id, EngagementSnapshot).join(Post, Post.id == EngagementSnapshot.post_id)
            )
        }
    young, old, refused = snaps[ids[0]], snaps[ids[1]], snaps[ids[2]]
    assert (young.metrics_scope, young.likes, young.impressions, young.engagements) == (
        "non_public",
        4,
        300,
        12,
    )
    assert (young.link_clicks, young.profile_clicks) == (2, 3)
    assert (young.organic_impressions, young.organic_likes, young.organic_retweets) == (300, 4, 0)
    for snap in (old, refused):
        assert snap.metrics_scope == "public" and snap.engagements is None and snap.organic_likes is None
    assert (old.likes, old.impressions) == (1, 50)


def test_non_public_refused_outright_falls_back_to_public(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x, _ = setup(tmp_path, fake, 2)
    fake.fail(
        "tweets",
        403,
        body={
            "title": "Unsupported Authentication",
            "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.",
            "type": "https://api.twitter.com/2/problems/unsupported-authentication",
            "status": 403,
        },
    )
    result = snapshot_engagement(bot, store, x)
    assert (result.snapshots, result.missing, result.api_calls) == (2, [], 2)
    with store.session() as s:
        assert {snap.metrics_scope for snap in s.scalars(select(EngagementSnapshot))} == {"public"}


def test_old_posts_are_not_snapshotted(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x, _ = setup(tmp_path, fake, 2)
    with store.session() as s:
        s.scalars(select(Post)).first().posted_at = utcnow() - timedelta(days=40)  # type: ignore[union-attr]
    assert snapshot_engagement(bot, store, x).posts == 1


def test_reward_normalizes_by_age_and_history() -> None:
    assert age_share(0) == 0.05 and age_share(6 * 3600) == pytest.approx(1 - np.exp(-1))
    assert projected(10, 10 * 24 * 3600) == pytest.approx(10, rel=1e-6)
    history = StreamingScorer()
    rng = np.random.default_rng(0)
    n = 2000
    history.score(
        {
            "likes": rng.poisson(5, n).astype(float),
            "retweets": rng.poisson(1, n).astype(float),
            "followers": np.full(n, 1000.0),
            "length": np.full(n, 100.0),
        }
    )
    young = reward(history, likes=4, retweets=1, age_s=1800, followers=1000, length=100)
    old = reward(history, likes=4, retweets=1, age_s=3 * 24 * 3600, followers=1000, length=100)
    popular = reward(history, likes=30, retweets=5, age_s=3 * 24 * 3600, followers=1000, length=100)
    assert 0 <= old < young <= 1  # the same count, reached sooner, is worth more
    assert popular > 0.95 and old < 0.6


def test_rewards_stored_and_exported_for_rl(tmp_path: Path, fake: FakeX) -> None:
    digests = tmp_path / "digests.json"
    history = StreamingScorer()
    history.score(
        {
            "likes": np.arange(50.0),
            "retweets": np.arange(50.0) / 5,
            "followers": np.full(50, 200.0),
            "length": np.full(50, 40.0),
        }
    )
    history.save(digests)
    bot, store, x, ids = setup(tmp_path, fake, 6, digests=digests)
    for i, tweet_id in enumerate(ids):
        fake.bump(tweet_id, like_count=i * 5, retweet_count=i)
    snapshot_engagement(bot, store, x)
    rewarded = compute_rewards(bot, store, followers=200)
    values = [r.reward for r in sorted(rewarded, key=lambda r: r.post_id)]
    assert len(values) == 6 and values == sorted(values) and values[0] < values[-1]
    with store.session() as s:
        last = s.scalars(select(EngagementSnapshot).order_by(EngagementSnapshot.id.desc())).first()
        assert last is not None
        one = reward(
            StreamingScorer.load(digests),
            likes=last.likes,
            retweets=last.retweets,
            age_s=last.age_s,
            followers=200,
            length=len("post number 5 about models"),
        )
    assert values[-1] == pytest.approx(one)  # the batch equals score_one, post by post
    with store.session() as s:
        assert all(p.reward is not None and p.reward_at is not None for p in s.scalars(select(Post)))
    out = tmp_path / "rl.jsonl"
    assert export_rl_rows(bot, store, out, followers=200) == 6
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert rows[5]["output"] == "post number 5 about models" and rows[5]["prompt"] == [
        {"role": "user", "content": "prompt 5"}
    ]
    assert rows[5]["engagement"]["likes"] > 25  # projected from 25 likes at two hours
    from pipeline.train.rl import fit_from_rows, load_rows

    table = load_rows(out)  # the training side reads the file as is
    assert {"prompt", "output", "engagement"} <= set(table.column_names)
    model = fit_from_rows(table, digests)
    assert model.predict(["post number 5 about models"]).shape == (1,)
    with store.session() as s:
        for post in s.scalars(select(Post)):
            post.trained_at = utcnow()
    assert export_rl_rows(bot, store, out) == 0  # only new rows by default


def test_replies_and_quotes_collected(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x, ids = setup(tmp_path, fake, 3)
    fake.add_user("1", "amy")
    fake.add_tweet("1", "replying to you", reply_to=ids[0])
    fake.add_tweet("1", "quoting you", quote_of=ids[0])
    fake.add_tweet("1", "another reply", reply_to=ids[1])
    snapshot_engagement(bot, store, x)
    first = collect_comments(bot, store, x)
    assert (first.posts_checked, first.new_comments, first.api_calls) == (2, 3, 3)  # post 2 has none: no call
    with store.session() as s:
        got = sorted((c.kind, c.text, c.author_handle) for c in s.scalars(select(Comment)))
    assert got == [
        ("quote", "quoting you", "amy"),
        ("reply", "another reply", "amy"),
        ("reply", "replying to you", "amy"),
    ]
    snapshot_engagement(bot, store, x)
    again = collect_comments(bot, store, x)
    assert (again.posts_checked, again.api_calls) == (0, 0)  # nothing new: nothing fetched
