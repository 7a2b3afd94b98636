"""Streaming t-digest percentiles: against history only, normalized over time, persisted for the bot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.scoring import QualityWeights, StreamingScorer, score_one


def signals(likes: list[float], followers: float = 100.0) -> dict[str, np.ndarray]:
    n = len(likes)
    return {
        "likes": np.array(likes, dtype=float),
        "retweets": np.array(likes, dtype=float) / 10,
        "followers": np.full(n, followers),
        "length": np.full(n, 50.0),
    }


def test_percentiles_are_against_earlier_tweets_only() -> None:
    scorer = StreamingScorer(chunk=1)
    result = scorer.score(signals([5, 1, 10, 3, 10]))
    p = result.percentiles["likes"]
    assert p[0] == 0.5  # no history yet: the prior
    assert p[1] < 0.5  # 1 is below the only earlier value (5)
    assert p[2] > 0.9  # 10 beats everything before it
    assert 0.2 < p[3] < 0.8
    assert np.isclose(scorer.digests["likes"].n_values, 5)


def test_same_likes_score_lower_when_the_community_grew() -> None:
    rng = np.random.default_rng(0)
    early = rng.lognormal(1.0, 1.0, 5000)  # small community: few likes
    late = rng.lognormal(3.0, 1.0, 5000)  # grown community: many likes
    scorer = StreamingScorer()
    scorer.score(signals(list(early)))
    probe_early = score_one(
        StreamingScorer.load_from_state(scorer.state()), likes=8, retweets=0.8, followers=100, length=50
    )
    scorer.score(signals(list(late)))
    probe_late = score_one(scorer, likes=8, retweets=0.8, followers=100, length=50)
    assert probe_early > 0.7 and probe_late < probe_early - 0.2


def test_reach_normalization_and_unknown_followers() -> None:
    scorer = StreamingScorer(QualityWeights(engagement=1.0, likes=0.0, retweets=0.0))
    rng = np.random.default_rng(1)
    scorer.score(
        {
            **signals(list(rng.integers(0, 50, 4000).astype(float))),
            "followers": rng.integers(10, 10_000, 4000).astype(float),
        }
    )
    small = score_one(scorer, likes=20, retweets=0, followers=50, length=40)
    big = score_one(scorer, likes=20, retweets=0, followers=50_000, length=40)
    assert small > big  # the same likes from a small audience are worth more
    unknown = scorer.score({**signals([20.0]), "followers": np.array([np.nan])}, update=False)
    assert np.isnan(unknown.percentiles["engagement"][0]) and np.isnan(
        unknown.quality[0]
    )  # nothing known to weigh


def test_state_round_trip(tmp_path: Path) -> None:
    scorer = StreamingScorer()
    scorer.score(signals([1, 2, 3, 4, 50, 60]))
    scorer.save(tmp_path / "digests.json")
    loaded = StreamingScorer.load(tmp_path / "digests.json")
    assert score_one(loaded, likes=30, retweets=3, followers=100, length=50) == score_one(
        scorer, likes=30, retweets=3, followers=100, length=50
    )
    assert loaded.quantiles("likes")["p50"] == scorer.quantiles("likes")["p50"]
