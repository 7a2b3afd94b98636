"""The engagement loop and the reward: snapshots of our posts' metrics, turned into a scalar.

Snapshots: every posted post younger than `loops.snapshot_max_age_days` is read, 100 ids per
request (the X maximum). Posts younger than 30 days are asked for `non_public_metrics` and
`organic_metrics` too (X gives them to user context for own posts < 30 days only); older ones, and
any X refuses ("Field Authorization Error", app-only auth), are read with public metrics only.

Reward: engagement grows with a post's age, so counts are first projected to their expected
final value, dividing by the share a post usually has at that age, 1 - exp(-age / tau) (tau
six hours by default, floored so a minutes-old post is not inflated without bound). The
projected likes and retweets are then scored by pipeline.scoring (`score_one`: t-digest
percentiles, the same as the datasets) against a build's digests (`digests` in bot.toml,
a `scores/digests.json` of `personas build`), else against the bot's own posts. The reward is
the composite percentile in [0, 1], stored on the post with its (prompt, output).

`export_rl_rows` writes what pipeline.train.rl reads: JSONL rows of `prompt` (messages),
`output` (the post) and `engagement` ({likes, retweets, followers}, age-projected), plus `reward`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import select, update

from pipeline.bot.config import BotConfig
from pipeline.bot.store import Action, BotStore, Comment, EngagementSnapshot, Post, utcnow
from pipeline.bot.x import PRIVATE_MAX_AGE_S, XInteractor, XPost
from pipeline.scoring import StreamingScorer, score_one
from pipeline.store.atomic import atomic_write_bytes

TAU_S = 6 * 3600.0
MIN_SHARE = 0.05


@dataclass
class SnapshotResult:
    posts: int
    snapshots: int
    missing: list[str]
    api_calls: int


def snapshot_engagement(
    bot: BotConfig, store: BotStore, x: XInteractor, *, now: datetime | None = None
) -> SnapshotResult:
    now = now or utcnow()
    oldest = now - timedelta(days=bot.loops.snapshot_max_age_days)
    with store.session() as s:
        rows = s.execute(
            select(Post.id, Post.tweet_id, Post.posted_at).where(
                Post.bot == bot.name,
                Post.status == "posted",
                Post.tweet_id.is_not(None),
                Post.posted_at >= oldest,
            )
        ).all()
    by_tweet = {tweet_id: (row_id, posted_at) for row_id, tweet_id, posted_at in rows if tweet_id}
    calls = x.calls
    young = [
        t
        for t, (_, at) in by_tweet.items()
        if at is not None and (now - at).total_seconds() < PRIVATE_MAX_AGE_S
    ]
    old = [t for t in by_tweet if t not in young]
    found = x.metrics(young, non_public=True) if young else {}
    if old:
        found.update(x.metrics(old))
    missing = [t for t in by_tweet if t not in found]
    with store.session() as s:
        for tweet_id, post in found.items():
            row_id, posted_at = by_tweet[tweet_id]
            m, np_, org = post.metrics, post.non_public, post.organic
            s.add(
                EngagementSnapshot(
                    post_id=row_id,
                    taken_at=now,
                    age_s=max(0.0, (now - posted_at).total_seconds()) if posted_at else 0.0,
                    likes=m.get("like_count", 0),
                    retweets=m.get("retweet_count", 0),
                    replies=m.get("reply_count", 0),
                    quotes=m.get("quote_count", 0),
                    bookmarks=m.get("bookmark_count"),
                    impressions=np_.get("impression_count", m.get("impression_count")),
                    link_clicks=np_.get("url_link_clicks", org.get("url_link_clicks")),
                    profile_clicks=np_.get("user_profile_clicks", org.get("user_profile_clicks")),
                    engagements=np_.get("engagements"),
                    organic_impressions=org.get("impression_count"),
                    organic_likes=org.get("like_count"),
                    organic_retweets=org.get("retweet_count"),
                    organic_replies=org.get("reply_count"),
                    metrics_scope="non_public" if np_ or org else "public",
                )
            )
        s.add(
            Action(
                bot=bot.name,
                action="snapshot",
                outcome="ok" if not missing else "partial",
                reason=f"{len(found)} of {len(by_tweet)} posts read"
                + (f"; gone or hidden: {', '.join(missing[:20])}" if missing else ""),
            )
        )
    return SnapshotResult(len(by_tweet), len(found), missing, x.calls - calls)


@dataclass
class Collected:
    posts_checked: int
    new_comments: int
    api_calls: int


def collect_comments(bot: BotConfig, store: BotStore, x: XInteractor) -> Collected:
    """Replies to and quotes of our posts into `comments`, only for posts whose latest snapshot
    shows more replies/quotes than are stored (each lookup is one request: 75 per 15 min)."""
    calls = x.calls
    latest = _latest(store, bot.name)
    with store.session() as s:
        known: dict[tuple[int, str], int] = {}
        for post_id, kind in s.execute(select(Comment.post_id, Comment.kind)):
            known[(post_id, kind)] = known.get((post_id, kind), 0) + 1
        stored = set(s.scalars(select(Comment.tweet_id)))
    found: list[Comment] = []
    checked = 0
    for post, snap in latest:
        if not post.tweet_id:
            continue
        wanted = [("quote", snap.quotes), ("reply", snap.replies)]
        if all(count <= known.get((post.id, kind), 0) for kind, count in wanted):
            continue
        checked += 1
        if snap.quotes > known.get((post.id, "quote"), 0):
            found += [_comment(post.id, "quote", q) for q in x.quote_tweets(post.tweet_id)]
        if snap.replies > known.get((post.id, "reply"), 0):
            found += [_comment(post.id, "reply", r) for r in x.conversation(post.tweet_id)]
    fresh = [c for c in found if c.tweet_id not in stored]
    with store.session() as s:
        s.add_all(fresh)
    return Collected(checked, len(fresh), x.calls - calls)


def _comment(post_id: int, kind: str, post: XPost) -> Comment:
    return Comment(
        post_id=post_id,
        tweet_id=post.id,
        kind=kind,
        author_id=post.author_id,
        author_handle=post.author_username,
        text=post.text,
        created_at=post.created_at,
    )


def age_share(age_s: float, tau_s: float = TAU_S) -> float:
    """The share of its final engagement a post usually has at this age."""
    return max(MIN_SHARE, 1.0 - math.exp(-max(0.0, age_s) / tau_s))


def projected(count: float, age_s: float, tau_s: float = TAU_S) -> float:
    return count / age_share(age_s, tau_s)


def reward(
    scorer: StreamingScorer,
    *,
    likes: float,
    retweets: float,
    age_s: float,
    followers: float | None,
    length: int,
) -> float:
    """The scalar reward of one post: age-projected engagement as a t-digest percentile (0-1)."""
    return score_one(
        scorer,
        likes=projected(likes, age_s),
        retweets=projected(retweets, age_s),
        followers=math.nan if followers is None else followers,
        length=float(length),
    )


@dataclass
class Rewarded:
    post_id: int
    reward: float
    likes: float
    retweets: float


def _latest(store: BotStore, bot: str) -> Sequence[tuple[Post, EngagementSnapshot]]:
    with store.session() as s:
        snaps = s.scalars(
            select(EngagementSnapshot)
            .join(Post, Post.id == EngagementSnapshot.post_id)
            .where(Post.bot == bot)
            .order_by(EngagementSnapshot.post_id, EngagementSnapshot.taken_at)
        ).all()
        latest = {snap.post_id: snap for snap in snaps}
        posts = {p.id: p for p in s.scalars(select(Post).where(Post.id.in_(latest))).all()}
    return [(posts[pid], snap) for pid, snap in latest.items()]


def compute_rewards(
    bot: BotConfig, store: BotStore, *, followers: int | None = None, scorer: StreamingScorer | None = None
) -> list[Rewarded]:
    """Reward every post with a snapshot from its latest one; stores `reward` on the post."""
    pairs = _latest(store, bot.name)
    if not pairs:
        return []
    if scorer is None and bot.digests is not None:
        scorer = StreamingScorer.load(bot.digests)
    if scorer is None:
        # no build history: score against the bot's own posts (all of them, as history)
        scorer = StreamingScorer()
        scorer.score(
            {
                "likes": np.array([projected(s.likes, s.age_s) for _, s in pairs]),
                "retweets": np.array([projected(s.retweets, s.age_s) for _, s in pairs]),
                "followers": np.full(len(pairs), math.nan if followers is None else float(followers)),
                "length": np.array([float(len(p.content)) for p, _ in pairs]),
            }
        )
    likes = np.array([projected(snap.likes, snap.age_s) for _, snap in pairs])
    retweets = np.array([projected(snap.retweets, snap.age_s) for _, snap in pairs])
    # one vectorized pass of the same scoring as score_one (history not updated)
    values = scorer.score(
        {
            "likes": likes,
            "retweets": retweets,
            "followers": np.full(len(pairs), math.nan if followers is None else float(followers)),
            "length": np.array([float(len(post.content)) for post, _ in pairs]),
        },
        update=False,
    ).quality
    now = utcnow()
    rewards = {post.id: float(value) for (post, _), value in zip(pairs, values, strict=True)}
    with store.session() as s:
        s.execute(
            update(Post),
            [{"id": pid, "reward": value, "reward_at": now} for pid, value in rewards.items()],
        )
    out = [
        Rewarded(post.id, rewards[post.id], float(lk), float(rt))
        for (post, _), lk, rt in zip(pairs, likes, retweets, strict=True)
    ]
    return out


def export_rl_rows(
    bot: BotConfig, store: BotStore, path: Path, *, followers: int | None = None, untrained_only: bool = True
) -> int:
    """Rewarded posts as pipeline.train.rl rows (JSONL): prompt, output, engagement, reward."""
    pairs = {post.id: snap for post, snap in _latest(store, bot.name)}
    with store.session() as s:
        query = select(Post).where(Post.bot == bot.name, Post.reward.is_not(None)).order_by(Post.id)
        if untrained_only:
            query = query.where(Post.trained_at.is_(None))
        posts = s.scalars(query).all()
    lines = []
    for post in posts:
        snap = pairs.get(post.id)
        if snap is None:
            continue
        engagement = {
            "likes": projected(snap.likes, snap.age_s),
            "retweets": projected(snap.retweets, snap.age_s),
            "followers": followers,
        }
        row = {"prompt": post.prompt, "output": post.content, "engagement": engagement, "reward": post.reward}
        lines.append(orjson.dumps(row))
    atomic_write_bytes(path, b"".join(line + b"\n" for line in lines))
    return len(lines)
