"""Jump start: round-robin download from the fake X API into shards, then LoRA SFT (tiny model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from pipeline.bot.config import BotConfig, ModelConfig, PersonaConfig, XConfig, XCredentials
from pipeline.bot.jumpstart import download, sft_rows, train_jumpstart
from pipeline.bot.store import BotStore, CommunityMember
from pipeline.bot.x import XInteractor
from tests.support.fake_x import ENV, FakeX, serve_fake_x

pytestmark = pytest.mark.network_loopback


@pytest.fixture
def fake() -> Iterator[FakeX]:
    server = FakeX()
    server.add_user("1", "amy", followers=321, description="evals", location="Berlin")
    server.add_user("2", "bob")
    for i in range(250):
        server.add_tweet("1", f"amy post {i} on evaluation", on_timeline=False)
    for i in range(30):
        server.add_tweet("2", f"bob post {i} on data", on_timeline=False)
    with serve_fake_x(server):
        yield server


def setup(tmp_path: Path, fake: FakeX, base: str = "tiny") -> tuple[BotConfig, BotStore, XInteractor]:
    bot = BotConfig(
        name="tpot",
        persona=PersonaConfig(name="Tpot"),
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        follow=["@amy", "bob", "nobody"],
        x=XConfig(base_url=fake.url),
        model=ModelConfig(base=base, checkpoint_dir=tmp_path / "ckpt"),
    )
    store = BotStore(bot.database_url)
    store.init()
    return bot, store, XInteractor(bot.x, XCredentials.from_env(ENV))


def test_download_all_into_shards(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x = setup(tmp_path, fake)
    result = download(bot, store, x, tmp_path / "shards", shard_bytes=5000)
    assert result.stopped_by == "exhausted" and result.missing == ["nobody"]
    assert fake.calls("users_by") == 1  # three handles, one lookup
    assert result.per_account == {"amy": 250, "bob": 30}
    assert fake.calls("user_tweets") == 4  # amy: 3 pages of 100, bob: 1
    assert [p.name for p in result.shards] == [f"{i}.json" for i in range(len(result.shards))]
    shards = [orjson.loads(p.read_bytes()) for p in result.shards]
    assert len(shards) > 3 and sum(len(s) for s in shards) == 280
    assert all(p.stat().st_size < 5000 + 200 for p in result.shards)
    assert {r["author"] for s in shards for r in s} == {"amy", "bob"}
    with store.session() as s:
        amy = s.scalars(select(CommunityMember).where(CommunityMember.handle == "amy")).one()
        assert (amy.user_id, amy.followers, amy.bio, amy.location) == ("1", 321, "evals", "Berlin")


def test_budget_and_memory_cap_stop_round_robin(tmp_path: Path, fake: FakeX) -> None:
    bot, store, x = setup(tmp_path, fake)
    result = download(bot, store, x, tmp_path / "a", token_budget=800)
    assert result.stopped_by == "token_budget" and 800 <= result.tokens < 820
    assert result.per_account["amy"] == 100 and 0 < result.per_account["bob"] <= 30  # bob's turn came
    capped = download(bot, store, x, tmp_path / "b", memory_cap_bytes=3000)
    assert capped.stopped_by == "memory_cap" and 3000 <= capped.bytes < 3200
    assert sum(len(orjson.loads(p.read_bytes())) for p in capped.shards) == capped.posts


@pytest.mark.slow
def test_sft_on_the_shards(tiny_model: Path, tmp_path: Path, fake: FakeX) -> None:
    bot, store, x = setup(tmp_path, fake, base=str(tiny_model))
    result = download(bot, store, x, tmp_path / "shards", token_budget=200)
    rows = sft_rows(bot, result.shards)
    assert rows[0]["messages"][-1] == {
        "role": "assistant",
        "content": "amy post 249 on evaluation",
        "train": True,
    }
    overrides = {
        "max_steps": 1,
        "batch_size": 2,
        "max_length": 128,
        "lora": {"r": 4, "alpha": 8, "targets": ["q_proj", "k_proj", "v_proj"]},
    }
    adapter = train_jumpstart(bot, result.shards, overrides=overrides)
    config = orjson.loads((adapter / "adapter_config.json").read_bytes())
    assert sorted(config["target_modules"]) == ["k_proj", "q_proj", "v_proj"]
    assert adapter == tmp_path / "ckpt" / "tpot" / "jumpstart" / "adapter"
