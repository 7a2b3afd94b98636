"""community.summary: statistics from the bio and recent posts (fake X API), polished by the model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.bot.config import BotConfig, PersonaConfig, XConfig, XCredentials
from pipeline.bot.jumpstart import refresh_community
from pipeline.bot.store import BotStore, CommunityMember
from pipeline.bot.x import XInteractor
from pipeline.inference import ChatClient, InferenceConfig
from tests.support.fake_x import ENV, FakeX, serve_fake_x
from tests.support.openai_server import OpenAIStandIn, serve_openai

pytestmark = pytest.mark.network_loopback


@pytest.fixture
def fake() -> Iterator[FakeX]:
    server = FakeX()
    server.add_user("1", "amy", description="I build evals for language models")
    server.add_user("2", "bob", description="gardening and bread")
    start = datetime.now(UTC) - timedelta(days=4)
    for i in range(8):  # two posts a day
        server.add_tweet(
            "1", f"new eval benchmark {i} for reasoning models", created_at=start + timedelta(hours=12 * i)
        )
    for i in range(4):
        server.add_tweet(
            "2",
            f"sourdough loaf number {i} came out great, my garden tomatoes too",
            created_at=start + timedelta(days=i),
        )
    with serve_fake_x(server):
        yield server


def setup(tmp_path: Path, fake: FakeX) -> tuple[BotConfig, BotStore, XInteractor]:
    bot = BotConfig(
        name="tpot",
        persona=PersonaConfig(name="Tpot"),
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        follow=["amy", "bob"],
        x=XConfig(base_url=fake.url),
    )
    store = BotStore(bot.database_url)
    store.init()
    return bot, store, XInteractor(bot.x, XCredentials.from_env(ENV))


def summaries(store: BotStore) -> dict[str, str | None]:
    with store.session() as s:
        return {m.handle: m.summary for m in s.scalars(select(CommunityMember))}


def test_statistics_summary_on_refresh(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x = setup(tmp_path, fake)
    assert refresh_community(bot, store, x) == {"amy": "1", "bob": "2"}
    got = summaries(store)
    amy, bob = got["amy"] or "", got["bob"] or ""
    assert amy.startswith("posts about ") and "eval" in amy and "benchmark" in amy and "sourdough" not in amy
    assert "sourdough" in bob and "eval" not in bob
    assert "2.0 posts a day" in amy and "from 8 recent posts" in amy and "0% replies" in amy
    assert f"typically {len('new eval benchmark 0 for reasoning models')} characters" in amy
    assert fake.calls("user_tweets") == 2
    refresh_community(bot, store, x)  # fresh summaries: profiles only, no timeline reads
    assert fake.calls("user_tweets") == 2 and fake.calls("users_by") == 2


def test_summary_polished_by_the_model(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x = setup(tmp_path, fake)
    with serve_openai(OpenAIStandIn(["Writes about LLM evaluation, twice a day."])) as model:
        chat = ChatClient(InferenceConfig(base_url=model.base_url, model="tiny-base", max_retries=0))
        refresh_community(bot, store, x, chat=chat)
        assert summaries(store)["amy"] == "Writes about LLM evaluation, twice a day."
        prompt = model.requests[0]["messages"][-1]["content"]
        assert "Measured: posts about" in prompt and "@amy" in prompt
        model.fail(times=5, status=500)
        refresh_community(bot, store, x, chat=chat, summary_max_age=timedelta(0))
        chat.close()
    assert (summaries(store)["amy"] or "").startswith("posts about ")  # model down: statistics kept


def test_summaries_reach_the_timeline_prompts(tmp_path: Path, fake: FakeX) -> None:
    """The judge and the draft see what the bot knows of a followed author, ahead of the post."""
    from pipeline.bot.timeline import run_timeline_cycle

    bot, store, x = setup(tmp_path, fake)
    refresh_community(bot, store, x)
    amy = summaries(store)["amy"]
    assert amy
    stand_in = OpenAIStandIn(reply=lambda body: "YES: worth it")
    with (
        serve_openai(stand_in) as model,
        ChatClient(InferenceConfig(base_url=model.base_url, model="tiny-base", max_retries=0)) as chat,
    ):
        run_timeline_cycle(bot, store, x, chat, no_reply=True)
    prompts = [r["messages"][-1]["content"] for r in model.requests]
    by_amy = [p for p in prompts if "@amy posted:" in p]
    assert by_amy and all(p.startswith(f"About @amy: {amy}\n\n@amy posted:") for p in by_amy)
    assert not any("About @bob" in p for p in prompts if "@amy posted:" in p)
