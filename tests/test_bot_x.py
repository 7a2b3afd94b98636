"""XInteractor: the real tweepy client over HTTP against the loopback fake X API."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from pipeline.bot.config import XConfig, XCredentials
from pipeline.bot.x import CreditsDepleted, NotAllowed, RateLimited, XAuthError, XError, XInteractor
from tests.support.fake_x import ENV, ME_ID, FakeX, serve_fake_x

pytestmark = pytest.mark.network_loopback


@pytest.fixture
def fake() -> Iterator[FakeX]:
    server = FakeX()
    server.add_user("1", "amy", followers=400, description="ML things", location="SF")
    server.add_user("2", "bob", followers=9)
    with serve_fake_x(server):
        yield server


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def interactor(fake: FakeX, sleep: Sleeps | None = None, **config: object) -> XInteractor:
    return XInteractor(
        XConfig(base_url=fake.url, **config),  # type: ignore[arg-type]
        XCredentials.from_env(ENV),
        sleep=sleep or Sleeps(),
        backoff_s=0.01,
    )


def test_reads(fake: FakeX) -> None:
    old = fake.add_tweet("1", "first", created_at=datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC))
    new = fake.add_tweet("2", "second")
    x = interactor(fake)
    assert x.me().id == ME_ID and x.me().username == "persona_bot"
    assert fake.calls("me") == 1  # cached
    timeline = x.home_timeline(10)
    assert [p.id for p in timeline] == [new["id"], old["id"]]
    assert timeline[1].author_username == "amy" and timeline[1].created_at == datetime(
        2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC
    )
    assert timeline[1].conversation_id == old["id"] and timeline[1].metrics["like_count"] == 0
    assert [p.id for p in x.home_timeline(10, since_id=old["id"])] == [new["id"]]
    assert fake.requests[-1]["auth"] == "oauth1"  # user context, signature verified by the fake
    amy = x.user("@amy")
    assert amy is not None and (amy.followers, amy.description, amy.location) == (400, "ML things", "SF")
    assert x.user("nobody") is None  # X answers 200 + errors
    for i in range(7):
        fake.add_tweet("1", f"amy {i}")
    page, token = x.user_tweets("1", max_results=5)
    assert len(page) == 5 and token is not None
    rest, token = x.user_tweets("1", max_results=5, pagination_token=token)
    assert len(rest) == 3 and token is None
    assert x.home_timeline(10, since_id=max(fake.timeline, key=int)) == []  # empty list: no `data`
    for i in range(240):
        fake.add_tweet("2", f"bulk {i}")
    before = fake.calls("home")
    assert len(x.home_timeline(230)) == 230 and fake.calls("home") - before == 3  # pages of 100, 100, 30


def test_writes_and_policy(fake: FakeX) -> None:
    x = interactor(fake)
    plain = fake.add_tweet("1", "a thought about scaling laws")
    summons = fake.add_tweet("1", "@persona_bot what do you think?")
    mine = x.post("hello from the bot")
    assert fake.tweets[mine]["author_id"] == ME_ID
    with pytest.raises(NotAllowed) as refused:
        x.reply("I agree", plain["id"])
    assert refused.value.kind == "not_summoned" and refused.value.outcome == "not_allowed"
    reply = x.reply("Here is what I think", summons["id"])
    assert fake.tweets[reply]["referenced_tweets"] == [{"type": "replied_to", "id": summons["id"]}]
    quoting = fake.add_tweet("2", "look at this", quote_of=mine)
    assert x.reply("thanks for the quote", quoting["id"])  # quoting our post summons us too
    with pytest.raises(NotAllowed) as quote:
        x.quote("quoting", plain["id"])
    assert quote.value.kind == "quote"
    with pytest.raises(NotAllowed) as follow:
        x.follow("1")
    assert follow.value.kind == "follow"
    fake.allow_follows = True
    assert x.follow("1") and "1" in fake.following
    with pytest.raises(NotAllowed) as duplicate:
        x.post("hello from the bot")
    assert duplicate.value.kind == "duplicate"


def test_engagement_reads_batch_ids(fake: FakeX) -> None:
    x = interactor(fake)
    ids = [fake.add_tweet(ME_ID, f"post {i}", on_timeline=False)["id"] for i in range(250)]
    httpx.post(f"{fake.url}/_test/engagement", json={"id": ids[7], "like_count": 5, "impression_count": 90})
    before = fake.calls("tweets")
    metrics = x.metrics(ids + ids[:10])
    assert fake.calls("tweets") - before == 3  # 250 unique ids, 100 per request
    assert len(metrics) == 250 and metrics[ids[7]].metrics["like_count"] == 5
    assert x.metrics([ids[7]], non_public=True)[ids[7]].metrics["impression_count"] == 90
    fake.likers[ids[0]] = ["1", "2"]
    fake.retweeters[ids[0]] = ["2"]
    fake.add_tweet("1", "quoting you", quote_of=ids[0])
    assert [u.username for u in x.liking_users(ids[0])] == ["amy", "bob"]
    assert [u.username for u in x.retweeters(ids[0])] == ["bob"]
    quotes = x.quote_tweets(ids[0])
    assert [(q.text, q.author_username) for q in quotes] == [("quoting you", "amy")]
    assert x.metrics([ids[0]])[ids[0]].metrics["quote_count"] == 1


def test_auth_failures(fake: FakeX) -> None:
    wrong = dict(ENV, X_CONSUMER_SECRET="not-the-secret")
    x = XInteractor(XConfig(base_url=fake.url), XCredentials.from_env(wrong))
    with pytest.raises(XAuthError):
        x.home_timeline()  # the fake verifies the OAuth 1.0a signature
    with pytest.raises(XAuthError, match="X_CONSUMER_KEY"):
        XInteractor(XConfig(base_url=fake.url), XCredentials.from_env({}))


def test_rate_limit_headers_are_honoured(fake: FakeX) -> None:
    fake.window_s = 1
    fake.limit_per_route["home"] = 2
    sleeps = Sleeps()
    x = interactor(fake, sleeps)
    for _ in range(3):
        x.home_timeline(5)
    assert fake.calls("home") == 3 and len(sleeps.waits) == 1  # waited for the reset, no 429 sent
    assert 0 < sleeps.waits[0] <= 3
    assert not any(r["route"] == "home" for r in fake.requests if r.get("status") == 429)


def test_429_402_403_5xx_outcomes(fake: FakeX) -> None:
    sleeps = Sleeps()
    x = interactor(fake, sleeps, max_wait_s=5)
    fake.fail("home", 429, x_rate_limit_reset=str(int(time.time()) + 1))
    assert x.home_timeline(5) == []  # waited out, then answered
    assert len(sleeps.waits) == 1
    fake.fail("home", 429, x_rate_limit_reset=str(int(time.time()) + 3600))
    with pytest.raises(RateLimited) as limited:
        x.home_timeline(5)  # an hour away: no waiting, a clear outcome
    assert limited.value.reset_at is not None and limited.value.reset_at > time.time() + 3000
    assert len(sleeps.waits) == 1
    fake.fail(
        "post",
        402,
        body={
            "title": "CreditsDepleted",
            "detail": "Your account has no credits.",
            "type": "https://api.x.com/2/problems/credits",
            "status": 402,
        },
    )
    with pytest.raises(CreditsDepleted, match="credits"):
        x.post("anything")
    fake.fail("post", 429, x_user_limit_24hour_remaining="0", x_rate_limit_reset=str(int(time.time()) + 1))
    with pytest.raises(RateLimited) as capped:
        x.post("anything")
    assert capped.value.capped
    fake.fail("home", 503)
    assert x.home_timeline(5) == []  # retried after a server error
    fake.fail("home", 503, times=5)
    with pytest.raises(XError) as server:
        x.home_timeline(5)
    assert server.value.status == 503
    assert not fake.posts_by(ME_ID)


def test_secrets_never_logged(fake: FakeX, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    x = interactor(fake)
    x.home_timeline(5)
    fake.fail("home", 429, x_rate_limit_reset=str(int(time.time()) + 3600))
    with pytest.raises(RateLimited) as limited:
        x.home_timeline(5)
    text = caplog.text + str(limited.value) + repr(XCredentials.from_env(ENV))
    assert caplog.records  # DEBUG logging was on
    for secret in (
        ENV["X_BEARER_TOKEN"],
        ENV["X_CONSUMER_SECRET"],
        ENV["X_ACCESS_TOKEN_SECRET"],
        ENV["X_ACCESS_TOKEN"],
    ):
        assert secret not in text
