"""persona.adaptive: after an RL round the voice follows the top-quartile rewarded posts, survives
a restart and reaches the timeline prompts; with adaptive false nothing changes."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from pipeline.bot.config import BotConfig, ModelConfig, PersonaConfig, RLConfig, XConfig, XCredentials
from pipeline.bot.rl_loop import rl_round
from pipeline.bot.store import BotStore, PersonaVoice, Post, content_hash, utcnow
from pipeline.bot.timeline import persona_system, run_timeline_cycle
from pipeline.bot.voice import measure, style_hints
from pipeline.bot.x import XInteractor
from pipeline.inference import ChatClient, InferenceConfig
from tests.support.fake_x import ENV, FakeX, serve_fake_x
from tests.support.openai_server import OpenAIStandIn, serve_openai

pytestmark = pytest.mark.network_loopback

BEST = [
    f"why do small models {w} so well on evals?" for w in ("generalize", "transfer", "compress", "reason")
]
REST = [
    f"Shipping a new Data Pipeline for the {w} team today. Lots of YAML and CI config."
    for w in "ABCDEFGHIJKL"
]


@pytest.fixture
def fake() -> Iterator[FakeX]:
    server = FakeX()
    server.add_user("1", "amy")
    server.add_tweet("1", "scaling laws bend at small data sizes")
    with serve_fake_x(server):
        yield server


@pytest.fixture
def model() -> Iterator[OpenAIStandIn]:
    with serve_openai(OpenAIStandIn(["NO: not today"])) as stand_in:
        yield stand_in


def make(tmp_path: Path, fake: FakeX, model: OpenAIStandIn, adaptive: bool) -> tuple[BotConfig, BotStore]:
    bot = BotConfig(
        name="tpot",
        persona=PersonaConfig(name="Tpot", adaptive=adaptive),
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        x=XConfig(base_url=fake.url),
        inference=InferenceConfig(base_url=model.base_url, model="tiny-base", max_retries=0),
        model=ModelConfig(checkpoint_dir=tmp_path / "ckpt"),
        rl=RLConfig(min_new_rows=4),
    )
    store = BotStore(bot.database_url)
    store.init()
    now = utcnow()
    with store.session() as s:
        for i, text in enumerate(REST + BEST):  # BEST: the four highest rewards = the top quartile
            s.add(
                Post(
                    bot="tpot",
                    tweet_id=str(9000 + i),
                    prompt=[{"role": "user", "content": "write"}],
                    content=text,
                    content_hash=content_hash(text),
                    status="posted",
                    posted_at=now - timedelta(hours=20 - i),
                    reward=0.9 + i / 1000 if text in BEST else 0.1 + i / 100,
                    reward_at=now,
                )
            )
    return bot, store


def fake_train(config: Any, show_progress: bool = False) -> SimpleNamespace:
    config.out.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(out=config.out)


def rl_then_cycle(bot: BotConfig, store: BotStore, model: OpenAIStandIn) -> str:
    """One RL round, a restart (fresh store), one timeline cycle: the judge's system prompt."""
    with ChatClient(bot.inference) as chat:
        assert rl_round(bot, store, chat, train=fake_train).ran
    store.close()
    restarted = BotStore(bot.database_url)
    x = XInteractor(bot.x, XCredentials.from_env(ENV))
    with ChatClient(bot.inference) as chat:
        run_timeline_cycle(bot, restarted, x, chat, no_reply=True)
    judge = [r for r in model.requests if r.get("messages")][-1]
    restarted.close()
    return str(judge["messages"][0]["content"])


def test_measure_top_quartile_habits() -> None:
    habits = measure(BEST, REST)
    assert habits["lowercase"] == 1.0 and habits["questions"] == 1.0 and habits["hashtags"] == 0.0
    assert habits["median_length"] == int(statistics.median(len(t) for t in BEST))
    assert {"small", "models", "evals"} <= set(habits["topics"]) and "yaml" not in habits["topics"]
    hints = style_hints(habits)
    assert "lower case" in hints and "question" in hints and "small" in hints


def test_adaptive_voice_follows_best_posts(tmp_path: Path, fake: FakeX, model: OpenAIStandIn) -> None:
    bot, store = make(tmp_path, fake, model, adaptive=True)
    system = rl_then_cycle(bot, store, model)
    assert system.startswith(persona_system(bot.persona))
    assert "write in all lower case" in system and "often end with a question" in system
    assert "evals" in system and "yaml" not in system.lower()
    with BotStore(bot.database_url).session() as s:
        voice = s.get(PersonaVoice, "tpot")
        assert voice is not None and voice.based_on == 4 and voice.habits["questions"] == 1.0


def test_not_adaptive_changes_nothing(tmp_path: Path, fake: FakeX, model: OpenAIStandIn) -> None:
    bot, store = make(tmp_path, fake, model, adaptive=False)
    system = rl_then_cycle(bot, store, model)
    assert system == persona_system(bot.persona)
    with BotStore(bot.database_url).session() as s:
        assert s.scalar(select(func.count()).select_from(PersonaVoice)) == 0
