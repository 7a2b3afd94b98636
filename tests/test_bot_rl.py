"""The bot's RL loop: a real (tiny, offline) GRPO round on rewarded posts, the adapter hot-loaded
into the OpenAI/vLLM stand-in, and rollback when rewards fall."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.bot.config import BotConfig, ModelConfig, PersonaConfig, RLConfig
from pipeline.bot.rl_loop import adapter_state, check_rollback, rl_round, serving_model
from pipeline.bot.store import BotStore, EngagementSnapshot, Post, content_hash, utcnow
from pipeline.inference import ChatClient, InferenceConfig
from tests.support.openai_server import OpenAIStandIn, serve_openai

pytestmark = [pytest.mark.network_loopback, pytest.mark.slow]

TINY_RUN: dict[str, Any] = {
    "max_steps": 1,
    "batch_size": 2,
    "num_generations": 2,
    "max_completion_length": 4,
    "max_length": 128,
    "logging_steps": 1,
    "lora": {"r": 4, "alpha": 8},
}


@pytest.fixture
def chat() -> Iterator[tuple[ChatClient, OpenAIStandIn]]:
    with serve_openai(OpenAIStandIn()) as stand_in:
        client = ChatClient(InferenceConfig(base_url=stand_in.base_url, model="tiny-base", max_retries=0))
        yield client, stand_in
        client.close()


def add_posts(store: BotStore, rewards: list[float], start: int = 0) -> None:
    now = utcnow()
    with store.session() as s:
        for i, value in enumerate(rewards, start):
            text = f"small models post {i}"
            post = Post(
                bot="tpot",
                tweet_id=str(9000 + i),
                prompt=[{"role": "user", "content": f"write about topic {i}"}],
                content=text,
                content_hash=content_hash(text),
                status="posted",
                posted_at=now - timedelta(hours=3),
                reward=value,
                reward_at=now,
            )
            s.add(post)
            s.flush()
            s.add(EngagementSnapshot(post_id=post.id, age_s=3 * 3600, likes=int(value * 20), retweets=1))


def test_rl_round_hot_load_and_rollback(
    tiny_model: Path, tmp_path: Path, chat: tuple[ChatClient, OpenAIStandIn]
) -> None:
    client, server = chat
    bot = BotConfig(
        name="tpot",
        persona=PersonaConfig(name="Tpot"),
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        model=ModelConfig(base=str(tiny_model), checkpoint_dir=tmp_path / "ckpt"),
        rl=RLConfig(min_new_rows=4, rollback_margin=0.1),
    )
    store = BotStore(bot.database_url)
    store.init()
    add_posts(store, [0.2, 0.4])
    assert not rl_round(bot, store, client).ran  # 2 < 4 rows
    add_posts(store, [0.6, 0.8], start=2)
    first = rl_round(bot, store, client, overrides=TINY_RUN)
    assert first.ran and first.rows == 4 and first.mean_reward == pytest.approx(0.5)
    assert first.adapter is not None and (first.adapter / "adapter_config.json").is_file()
    assert server.adapters == {"tpot": str(first.adapter)}  # hot-loaded under the stable name
    assert serving_model(bot) == "tpot"
    with store.session() as s:
        assert all(p.trained_at is not None for p in s.scalars(select(Post)))
    assert not rl_round(bot, store, client).ran  # nothing new

    # a second round (its training stubbed to keep the test short), then rewards fall: roll back
    add_posts(store, [0.9, 0.9, 0.9, 0.9], start=10)

    class Result:
        out = tmp_path / "round2"

    Result.out.mkdir()
    second = rl_round(bot, store, client, train=lambda config, show_progress: Result)
    assert second.ran and server.adapters == {"tpot": str(Result.out)}
    assert not check_rollback(bot, store, client)  # no posts under the new adapter yet
    add_posts(store, [0.1, 0.2, 0.1, 0.2], start=20)
    assert check_rollback(bot, store, client)
    assert server.adapters == {"tpot": str(first.adapter)}
    state = adapter_state(bot)
    assert state["active"]["round"] == 1 and state["rolled_back"]["round"] == 2


def test_rollback_restores_the_voice_of_the_restored_adapter(
    tmp_path: Path, chat: tuple[ChatClient, OpenAIStandIn]
) -> None:
    """persona.adaptive: each round records the voice it served with; a rollback puts that voice
    back together with the adapter (training stubbed: the voice bookkeeping is under test)."""
    from pipeline.bot.store import PersonaVoice
    from pipeline.bot.voice import current_style

    client, _ = chat
    bot = BotConfig(
        name="tpot",
        persona=PersonaConfig(name="Tpot", adaptive=True),
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        model=ModelConfig(base="unused", checkpoint_dir=tmp_path / "ckpt"),
        rl=RLConfig(min_new_rows=4, rollback_margin=0.1),
    )
    store = BotStore(bot.database_url)
    store.init()

    def stub(name: str) -> Any:
        class Result:
            out = tmp_path / name

        Result.out.mkdir()
        return lambda config, show_progress: Result

    add_posts(store, [0.1 * i for i in range(8)])
    assert rl_round(bot, store, client, train=stub("round1")).ran
    voice_1 = current_style(bot, store)
    assert voice_1 and adapter_state(bot)["active"]["voice"] == voice_1

    with store.session() as s:  # round 2 learns from shouting, question-asking posts
        for i in range(8):
            text = f"WHY DO SMALL MODELS WIN {i}?"
            s.add(Post(bot="tpot", tweet_id=str(9500 + i), prompt=[], content=text,
                       content_hash=content_hash(text), status="posted", posted_at=utcnow(),
                       reward=0.9 + i / 100, reward_at=utcnow()))  # fmt: skip
    assert rl_round(bot, store, client, train=stub("round2")).ran
    voice_2 = current_style(bot, store)
    assert voice_2 and voice_2 != voice_1

    add_posts(store, [0.0, 0.0, 0.0, 0.0], start=40)  # rewards fall under round 2
    assert check_rollback(bot, store, client)
    assert current_style(bot, store) == voice_1
    with store.session() as s:
        assert s.get(PersonaVoice, "tpot") is not None
