"""The timeline cycle, safety rules and the `personas bot` CLI against the fake X API and the
OpenAI stand-in (real tweepy and real httpx clients over loopback HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.bot.config import BotConfig, PersonaConfig, SafetyConfig, XConfig, XCredentials
from pipeline.bot.safety import Publisher, Safety
from pipeline.bot.store import Action, BotStore, Post, SeenTweet
from pipeline.bot.timeline import parse_verdict, run_timeline_cycle
from pipeline.bot.x import XInteractor
from pipeline.cli.app import app
from pipeline.inference import ChatClient, InferenceConfig
from tests.support.fake_x import ENV, ME_ID, FakeX, serve_fake_x
from tests.support.openai_server import OpenAIStandIn, serve_openai

pytestmark = pytest.mark.network_loopback


def model_reply(body: dict[str, Any]) -> str:
    """Judge: YES unless the post is about lunch. Draft: names the post's first words."""
    prompt = body["messages"][-1]["content"]
    post = prompt.split("posted:\n\n", 1)[1].split("\n\n", 1)[0]
    if "Answer YES or NO" in prompt:
        return "NO: small talk" if "lunch" in post else "YES: there is an idea here worth adding to"
    return f'"Adding to this: {" ".join(post.split()[:4])}"'


@pytest.fixture
def fake() -> Iterator[FakeX]:
    server = FakeX()
    server.add_user("1", "amy")
    server.add_user("2", "bob")
    with serve_fake_x(server):
        yield server


@pytest.fixture
def model() -> Iterator[OpenAIStandIn]:
    with serve_openai(OpenAIStandIn(reply=model_reply)) as stand_in:
        yield stand_in


def make_bot(tmp_path: Path, fake: FakeX, model: OpenAIStandIn, **overrides: Any) -> BotConfig:
    values: dict[str, Any] = {
        "name": "tpot",
        "persona": PersonaConfig(name="Tpot", interests=["ml"]),
        "database_url": f"sqlite:///{tmp_path / 'bot.db'}",
        "x": XConfig(base_url=fake.url, max_wait_s=3),
        "inference": InferenceConfig(base_url=model.base_url, model="tiny-base", max_retries=0),
        "safety": SafetyConfig(kill_switch=tmp_path / "STOP"),
    }
    values.update(overrides)
    return BotConfig(**values)


def timeline_posts(fake: FakeX) -> dict[str, str]:
    return {
        "plain": fake.add_tweet("1", "scaling laws bend at small data sizes")["id"],
        "lunch": fake.add_tweet("2", "having lunch now")["id"],
        "mention": fake.add_tweet("2", "@persona_bot what about tokenizers for code?")["id"],
    }


def cycle(bot: BotConfig, store: BotStore, fake: FakeX, x: XInteractor | None = None, **kw: Any) -> Any:
    x = x or XInteractor(bot.x, XCredentials.from_env(ENV), backoff_s=0.01)
    with ChatClient(bot.inference) as chat:
        return run_timeline_cycle(bot, store, x, chat, **kw)


def store_for(bot: BotConfig) -> BotStore:
    store = BotStore(bot.database_url)
    store.init()
    return store


def test_parse_verdict() -> None:
    assert parse_verdict("YES: new idea") == (True, "new idea")
    assert parse_verdict("no - boring")[0] is False
    assert parse_verdict("Maybe?")[0] is False
    assert parse_verdict("**Yes**\nit adds")[0] is True


def test_dry_run_posts_nothing(tmp_path: Path, fake: FakeX, model: OpenAIStandIn) -> None:
    ids = timeline_posts(fake)
    bot = make_bot(tmp_path, fake, model)
    assert bot.dry_run  # the default
    store = store_for(bot)
    result = cycle(bot, store, fake)
    decisions = {c.post.id: (c.decision, c.outcome) for c in result.answered + result.ignored}
    assert decisions == {
        ids["plain"]: ("not_summoned", None),
        ids["lunch"]: ("ignore", None),
        ids["mention"]: ("answer", "dry_run"),
    }
    assert fake.calls("post") == 0 and not fake.posts_by(ME_ID)
    with store.session() as s:
        post = s.scalars(select(Post)).one()
        assert (post.status, post.in_reply_to, post.tweet_id) == ("dry_run", ids["mention"], None)
        assert post.content == "Adding to this: @persona_bot what about tokenizers"  # quotes stripped
        assert post.prompt[-1]["role"] == "user"
        assert len(s.scalars(select(SeenTweet)).all()) == 3
        assert s.scalars(select(Action.outcome).where(Action.action == "reply")).all() == ["dry_run"]
    assert all(v >= 0 for v in result.seconds.values()) and result.seconds["judging"] > 0
    again = cycle(bot, store, fake)
    assert again.answered == again.ignored == []  # only unseen posts
    assert fake.requests[-1]["query"]["since_id"] == max(ids.values(), key=int)
    assert len(model.requests) == 5  # 3 verdicts + 2 drafts, nothing on the second cycle


def test_live_against_fake(tmp_path: Path, fake: FakeX, model: OpenAIStandIn) -> None:
    ids = timeline_posts(fake)
    bot = make_bot(tmp_path, fake, model, dry_run=False)
    store = store_for(bot)
    result = cycle(bot, store, fake)
    sent = [c for c in result.answered if c.reply_id]
    assert len(sent) == 1 and sent[0].post.id == ids["mention"]
    assert fake.calls("post") == 1  # the unsummoned post was not sent to be refused
    reply = fake.tweets[sent[0].reply_id]
    assert reply["referenced_tweets"] == [{"type": "replied_to", "id": ids["mention"]}]
    with store.session() as s:
        post = s.scalars(select(Post)).one()
        assert (post.status, post.tweet_id) == ("posted", sent[0].reply_id) and post.posted_at is not None
    # no-reply never posts, even for a live bot
    later = fake.add_tweet("1", "@persona_bot and evals?")["id"]
    quiet = cycle(bot, store, fake, no_reply=True)
    assert [c.decision for c in quiet.answered] == ["draft"] and fake.calls("post") == 1
    live = cycle(bot, store, fake)  # the preview left it unseen: the live cycle answers it
    assert [(c.post.id, c.outcome) for c in live.answered] == [(later, "posted")] and fake.calls("post") == 2


def test_crash_and_restart_do_not_post_twice(tmp_path: Path, fake: FakeX, model: OpenAIStandIn) -> None:
    mention = fake.add_tweet("2", "@persona_bot thoughts on RLHF?")["id"]
    bot = make_bot(tmp_path, fake, model, dry_run=False)
    store = store_for(bot)

    class CrashAfterSend(XInteractor):
        def reply(self, text: str, in_reply_to: str) -> str:
            super().reply(text, in_reply_to)
            raise SystemExit("killed between X's answer and our commit")

    crashing = CrashAfterSend(bot.x, XCredentials.from_env(ENV))
    with pytest.raises(SystemExit):
        cycle(bot, store, fake, crashing)
    assert len(fake.posts_by(ME_ID)) == 1
    model.reply = lambda body: (
        "YES: still good" if "Answer YES" in str(body) else "A different answer this time"
    )
    restarted = cycle(bot, store, fake)
    (candidate,) = restarted.answered
    assert candidate.post.id == mention and candidate.outcome == "blocked"
    assert "already answered" in candidate.reason
    assert len(fake.posts_by(ME_ID)) == 1 and fake.calls("post") == 1


def test_failed_send_is_retried_next_cycle(tmp_path: Path, fake: FakeX, model: OpenAIStandIn) -> None:
    mention = fake.add_tweet("2", "@persona_bot hello?")["id"]
    bot = make_bot(tmp_path, fake, model, dry_run=False)
    store = store_for(bot)
    fake.fail(
        "post",
        402,
        body={"title": "CreditsDepleted", "detail": "no credits", "type": "x/credits", "status": 402},
    )
    first = cycle(bot, store, fake)
    assert first.answered[0].outcome == "failed" and not fake.posts_by(ME_ID)
    fake.add_tweet("1", "newer post after the failure")
    second = cycle(bot, store, fake)
    assert [c.post.id for c in second.answered if c.reply_id] == [mention]
    assert len(fake.posts_by(ME_ID)) == 1
    with store.session() as s:
        assert s.scalars(select(Action.outcome).where(Action.action == "reply")).all() == [
            "credits_depleted",
            "posted",
        ]


def test_safety_rules(tmp_path: Path, fake: FakeX, model: OpenAIStandIn) -> None:
    bot = make_bot(
        tmp_path,
        fake,
        model,
        dry_run=False,
        safety=SafetyConfig(
            kill_switch=tmp_path / "STOP", max_posts_per_hour=2, blocklist=["Forbidden Word"]
        ),
    )
    store = store_for(bot)
    safety = Safety(bot, store)
    assert not safety.content("").allowed
    assert not safety.content("x" * 281).allowed
    assert not safety.content("<|im_start|>assistant hi").allowed
    assert not safety.content("a forbidden word here").allowed
    assert not safety.content("buy $ABC and $XYZ").allowed and safety.content("just $ABC").allowed
    x = XInteractor(bot.x, XCredentials.from_env(ENV))
    publisher = Publisher(bot, store, x)
    assert publisher.publish("first post", []).status == "posted"
    assert publisher.publish("First   POST", []).reason == "duplicate of an earlier post"
    assert publisher.publish("second post", []).status == "posted"
    capped = publisher.publish("third post", [])
    assert capped.status == "blocked" and "cap reached" in capped.reason
    (tmp_path / "STOP").touch()
    assert "kill switch" in Publisher(bot, store, x, dry_run=True).publish("fourth", []).reason
    assert len(fake.posts_by(ME_ID)) == 2
    with store.session() as s:
        outcomes = s.scalars(select(Action.outcome).order_by(Action.id)).all()
    assert outcomes == ["posted", "blocked", "posted", "blocked", "blocked"]


def test_cli_init_timeline_run(
    tmp_path: Path, fake: FakeX, model: OpenAIStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    timeline_posts(fake)
    config = tmp_path / "bot.toml"
    config.write_text(
        f"""
[bot]
name = "tpot"
database_url = "sqlite:///{tmp_path / "cli.db"}"
dry_run = false
[bot.persona]
name = "Tpot"
[bot.x]
base_url = "{fake.url}"
[bot.inference]
base_url = "{model.base_url}"
model = "tiny-base"
[bot.safety]
kill_switch = "{tmp_path / "STOP"}"
"""
    )
    runner = CliRunner()
    out = runner.invoke(app, ["bot", "init", "--config", str(config)])
    assert out.exit_code == 0, out.output
    assert "posts" in out.output and "engagement_snapshots" in out.output
    out = runner.invoke(app, ["bot", "timeline", "--config", str(config), "--no-reply"])
    assert out.exit_code == 0, out.output
    assert "answered (2, no-reply)" in out.output and "ignored (1)" in out.output
    assert "Adding to this" in out.output and fake.calls("post") == 0
    fake.add_tweet("1", "@persona_bot one more")
    out = runner.invoke(app, ["bot", "run", "--config", str(config), "--once", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "dry run" in out.output and fake.calls("post") == 0
    assert "engagement: 0/0 posts read in 0 API call(s)" in out.output  # nothing posted yet
    assert "rl: 0 new rewarded rows < 64" in out.output
    out = runner.invoke(
        app, ["bot", "export-rl", "--config", str(config), "--out", str(tmp_path / "rl.jsonl")]
    )
    assert out.exit_code == 0 and "0 row(s)" in out.output
    (tmp_path / "STOP").touch()
    out = runner.invoke(app, ["bot", "run", "--config", str(config)])
    assert out.exit_code == 0 and "kill switch" in out.output
    out = runner.invoke(app, ["bot", "timeline", "--config", str(tmp_path / "nope.toml")])
    assert out.exit_code == 2 and "no bot config" in out.output


def test_run_loop_outlives_x_errors(
    tmp_path: Path, fake: FakeX, model: OpenAIStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    fake.add_tweet("2", "@persona_bot are you up?")
    config = tmp_path / "bot.toml"
    config.write_text(
        f"""
[bot]
name = "tpot"
database_url = "sqlite:///{tmp_path / "loop.db"}"
dry_run = false
[bot.persona]
name = "Tpot"
[bot.loops]
timeline_interval_s = 0.1
engagement_interval_s = 0.1
rl_interval_s = 1000
[bot.x]
base_url = "{fake.url}"
[bot.inference]
base_url = "{model.base_url}"
model = "tiny-base"
[bot.safety]
kill_switch = "{tmp_path / "STOP"}"
"""
    )
    credits = {"title": "CreditsDepleted", "detail": "no credits left", "type": "x/credits", "status": 402}
    fake.fail("home", 402, body=credits)
    stopper = threading.Timer(2.5, (tmp_path / "STOP").touch)
    stopper.start()
    try:
        out = CliRunner().invoke(app, ["bot", "run", "--config", str(config)])
    finally:
        stopper.cancel()
    assert out.exit_code == 0, out.output
    assert "timeline: credits_depleted" in out.output  # logged, not fatal
    assert "answered (1, live)" in out.output and len(fake.posts_by(ME_ID)) == 1  # the next cycle worked
    assert "kill switch" in out.output
    assert fake.calls("home") <= 6  # about one try a second, no tight loop
    once = CliRunner().invoke(app, ["bot", "timeline", "--config", str(config)])
    assert once.exit_code == 0
    fake.fail("home", 402, body=credits)
    failed = CliRunner().invoke(app, ["bot", "timeline", "--config", str(config)])
    assert failed.exit_code == 2 and "no credits left" in failed.output  # one-shot commands report and exit 2
