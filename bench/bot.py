"""X bot benchmark, against the loopback fake X API (real tweepy over HTTP) and the tiny model.

    python -m bench.bot [--tweets 200] [--posts 10000]

- **timeline**: one `run_timeline_cycle` over `--tweets` unseen home-timeline posts (live mode,
  every reply summoned), the tiny random-weight model (pipeline.train.tiny) served by
  tests/support/chat_server.py (transformers, CPU). A random model almost never says YES, so the
  judge's answer is prefixed with "YES" by the harness: every post then costs one judging call and
  one generation call of the real model, the cycle's worst case. The seeded random model also
  repeats itself, so the harness numbers its drafts, else the no-duplicates rule blocks them. Wall time is split into API,
  judging, generation and store (the cycle's own clocks).
- **engagement**: one `snapshot_engagement` over `--posts` posted posts: X API calls made vs the
  minimum (ceil(posts / 100), ids batched 100 per request), wall time, then `compute_rewards`.
Results: bench/results/bot.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import machine
from pipeline.bot.config import BotConfig, LoopConfig, PersonaConfig, SafetyConfig, XConfig, XCredentials
from pipeline.bot.engagement import compute_rewards, snapshot_engagement
from pipeline.bot.store import BotStore, Post, content_hash, utcnow
from pipeline.bot.timeline import run_timeline_cycle
from pipeline.bot.x import XInteractor
from pipeline.inference import ChatClient, InferenceConfig
from tests.support.fake_x import ENV, ME_ID, FakeX, serve_fake_x

RESULTS = Path(__file__).parent / "results"


class AlwaysAnswer(ChatClient):
    """The harness: the model's verdict prefixed YES, its drafts numbered (see the module doc)."""

    drafts = 0

    def chat(self, messages: Any, model: str | None = None, **params: Any) -> str:
        text = super().chat(messages, model, **params)
        if "Answer YES or NO" in messages[-1]["content"]:
            return "YES " + text
        self.drafts += 1
        return f"{self.drafts}: {text}"


def timeline(tweets: int, tmp: Path) -> dict[str, Any]:
    from pipeline.train.tiny import build_tiny_model
    from tests.support.chat_server import ChatServer, serve

    tiny = build_tiny_model(tmp / "tiny")
    fake = FakeX(limits={"post": tweets + 10})
    fake.add_user("1", "amy")
    for i in range(tweets):
        fake.add_tweet(
            "1", f"@persona_bot post {i}: what do you make of small models trained on community data?"
        )
    with serve_fake_x(fake), serve(ChatServer({"tiny": tiny})) as base_url:
        bot = BotConfig(
            name="bench",
            persona=PersonaConfig(name="Bench"),
            database_url=f"sqlite:///{tmp / 'timeline.db'}",
            dry_run=False,
            loops=LoopConfig(timeline_length=tweets),
            x=XConfig(base_url=fake.url),
            inference=InferenceConfig(base_url=base_url, model="tiny"),
            safety=SafetyConfig(kill_switch=tmp / "STOP", max_posts_per_hour=10**6, max_posts_per_day=10**6),
        )
        store = BotStore(bot.database_url)
        store.init()
        x = XInteractor(bot.x, XCredentials.from_env(ENV))
        start = time.perf_counter()
        with AlwaysAnswer(bot.inference) as chat:
            result = run_timeline_cycle(bot, store, x, chat, chat_params={"max_tokens": 24})
        wall = time.perf_counter() - start
    outcomes: dict[str, int] = {}
    for c in result.answered + result.ignored:
        outcomes[c.outcome or c.decision] = outcomes.get(c.outcome or c.decision, 0) + 1
    return {
        "tweets": tweets,
        "wall_s": round(wall, 3),
        "split_s": {k: round(v, 3) for k, v in result.seconds.items()},
        "outcomes": outcomes,
        "x_api_calls": x.calls,
        "model_calls": 2 * len(result.answered) + len(result.ignored),
    }


def engagement(posts: int, tmp: Path) -> dict[str, Any]:
    fake = FakeX()
    bot = BotConfig(
        name="bench",
        persona=PersonaConfig(name="Bench"),
        database_url=f"sqlite:///{tmp / 'engagement.db'}",
        x=XConfig(base_url=fake.url),
    )
    with serve_fake_x(fake):
        bot.x.base_url = fake.url
        store = BotStore(bot.database_url)
        store.init()
        now = utcnow()
        with store.session() as s:
            for i in range(posts):
                text = f"bench post {i}"
                tweet = fake.add_tweet(ME_ID, text, on_timeline=False)
                fake.bump(tweet["id"], like_count=i % 17, retweet_count=i % 5)
                s.add(
                    Post(
                        bot="bench", tweet_id=tweet["id"], prompt=[], content=text, content_hash=content_hash(text),
                        status="posted", posted_at=now - timedelta(hours=1 + i % 48),
                    )
                )  # fmt: skip
        x = XInteractor(bot.x, XCredentials.from_env(ENV))
        start = time.perf_counter()
        snap = snapshot_engagement(bot, store, x)
        snapshot_s = time.perf_counter() - start
        start = time.perf_counter()
        rewarded = compute_rewards(bot, store, followers=1000)
        reward_s = time.perf_counter() - start
    return {
        "posts": posts,
        "snapshots": snap.snapshots,
        "x_api_calls": snap.api_calls,
        "minimum_calls": math.ceil(posts / 100),
        "snapshot_wall_s": round(snapshot_s, 3),
        "rewards": len(rewarded),
        "reward_wall_s": round(reward_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=200)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "bot.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        result = {
            **machine(),
            "timeline": timeline(args.tweets, tmp),
            "engagement": engagement(args.posts, tmp),
        }
    t, e = result["timeline"], result["engagement"]
    print("| measure | value |\n|---|---|")
    print(
        f"| timeline cycle, {t['tweets']} posts | {t['wall_s']} s ({', '.join(f'{k} {v} s' for k, v in t['split_s'].items())}) |"
    )
    print(
        f"| timeline outcomes | {t['outcomes']}; {t['x_api_calls']} X calls, {t['model_calls']} model calls |"
    )
    print(
        f"| engagement snapshot, {e['posts']:,} posts | {e['x_api_calls']} X calls (minimum {e['minimum_calls']}), {e['snapshot_wall_s']} s |"
    )
    print(f"| rewards, {e['rewards']:,} posts | {e['reward_wall_s']} s |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
