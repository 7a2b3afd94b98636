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

from pipeline.bot.config import BotConfig, PersonaConfig, XConfig, XCredentials
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
from tests.support.fake_x import ENV, ME_ID, FakeX, serve_fake_x

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
