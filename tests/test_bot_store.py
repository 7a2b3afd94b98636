"""The bot's SQL store on SQLite and on a real PostgreSQL (127.0.0.1:5432, database `test`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from pipeline.bot.config import BotFileError, load_bots, parse_bots, select_bot
from pipeline.bot.store import (
    Action,
    BotStore,
    Comment,
    CommunityMember,
    EngagementSnapshot,
    Post,
    SeenTweet,
    content_hash,
)

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_up() -> bool:
    try:
        import psycopg

        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=2).close()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def bot_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BotStore]:
    if request.param == "sqlite":
        store = BotStore(f"sqlite:///{tmp_path / 'bot.db'}")
        store.init()
        yield store
        store.close()
        return
    if not _postgres_up():
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432 (.ci/run starts it)")
    schema = f"bot_{uuid.uuid4().hex[:10]}"  # one schema per test: no clash with other suites
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    store = BotStore(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    store.init()
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _post(content: str, **kw: object) -> Post:
    values: dict[str, object] = {
        "bot": "tpot",
        "prompt": [{"role": "user", "content": "write"}],
        "content": content,
        "content_hash": content_hash(content),
        "status": "posted",
    }
    values.update(kw)
    return Post(**values)


def test_schema_round_trip(bot_store: BotStore) -> None:
    assert bot_store.init() == [
        "actions",
        "comments",
        "community",
        "engagement_snapshots",
        "persona_voice",
        "posts",
        "seen_tweets",
    ]  # idempotent
    posted = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    with bot_store.session() as s:
        post = _post("hello world", tweet_id="101", posted_at=posted, is_reply=True, in_reply_to="7")
        s.add(post)
        s.flush()
        s.add(EngagementSnapshot(post_id=post.id, age_s=3600, likes=3, retweets=1, replies=2, quotes=0))
        s.add(Comment(post_id=post.id, tweet_id="102", kind="quote", text="nice", author_handle="amy"))
        s.add(CommunityMember(bot="tpot", handle="amy", followers=10, following=5, bio="b", location="SF"))
        s.add(SeenTweet(bot="tpot", tweet_id="7", decision="answer", reason="newsworthy"))
        s.add(Action(bot="tpot", action="reply", target="7", outcome="posted", reason="judged substantive"))
    with bot_store.session() as s:
        got = s.scalars(select(Post)).one()
        assert got.prompt == [{"role": "user", "content": "write"}]
        assert got.posted_at == posted and got.created_at.tzinfo is not None
        assert got.is_reply and got.in_reply_to == "7"
        snap = s.scalars(select(EngagementSnapshot)).one()
        assert (snap.likes, snap.retweets, snap.replies, snap.impressions) == (3, 1, 2, None)
        assert s.scalars(select(Comment.kind)).one() == "quote"
        assert s.scalars(select(CommunityMember.location)).one() == "SF"


def test_duplicate_content_rejected_per_bot(bot_store: BotStore) -> None:
    with bot_store.session() as s:
        s.add(_post("Same  words"))
    with pytest.raises(IntegrityError), bot_store.session() as s:
        s.add(_post("same words"))  # case and spacing do not make it new
    with bot_store.session() as s:
        s.add(_post("same words", bot="other"))  # another bot may say it
        assert len(s.scalars(select(Post)).all()) == 2


def test_snapshots_cascade_with_post(bot_store: BotStore) -> None:
    with bot_store.session() as s:
        post = _post("x")
        s.add(post)
        s.flush()
        for hours in (1, 2):
            s.add(EngagementSnapshot(post_id=post.id, age_s=hours * 3600, likes=hours))
    with bot_store.session() as s:
        s.delete(s.scalars(select(Post)).one())
    with bot_store.session() as s:
        assert s.scalars(select(EngagementSnapshot)).all() == []


def test_naive_datetimes_refused(bot_store: BotStore) -> None:
    with pytest.raises(Exception, match="naive"), bot_store.session() as s:
        s.add(_post("x", posted_at=datetime(2026, 1, 1) + timedelta(0)))


def test_config_file_several_bots(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(
        """
database_url = "sqlite:///shared.db"
[inference]
base_url = "http://127.0.0.1:9/v1"

[[bots]]
name = "alpha"
follow = ["@amy", "bob"]
[bots.persona]
name = "Alpha"
interests = ["ml"]

[[bots]]
name = "beta"
dry_run = false
database_url = "sqlite:///beta.db"
[bots.persona]
name = "Beta"
[bots.safety]
max_posts_per_day = 3
"""
    )
    alpha, beta = load_bots(path)
    assert alpha.database_url == "sqlite:///shared.db" and beta.database_url == "sqlite:///beta.db"
    assert alpha.follow == ["amy", "bob"] and alpha.dry_run is True and beta.dry_run is False
    assert alpha.inference.base_url == beta.inference.base_url == "http://127.0.0.1:9/v1"
    assert beta.safety.max_posts_per_day == 3 and alpha.safety.max_posts_per_day == 20
    assert alpha.model.base == "HuggingFaceTB/SmolLM2-360M-Instruct"
    assert select_bot([alpha, beta], "beta") is beta
    with pytest.raises(BotFileError, match="--bot"):
        select_bot([alpha, beta], None)
    with pytest.raises(BotFileError, match="unique"):
        parse_bots({"bots": [{"name": "a", "persona": {"name": "A"}}] * 2})
    with pytest.raises(BotFileError, match="no bot config"):
        load_bots(tmp_path / "missing.toml")


def test_readme_bot_toml_is_valid() -> None:
    """The bot.toml shown in README's 'X bot' section loads."""
    import re
    import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## X bot", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```toml\n(.+?)\n```", section, re.DOTALL)
    assert block is not None
    (bot,) = parse_bots(tomllib.loads(block.group(1)))
    assert bot.name == "tpot" and bot.dry_run and bot.inference.model == "tpot"
    assert bot.safety.kill_switch == Path("data/bot/STOP")


def test_migrations_match_the_models(bot_store: BotStore) -> None:
    """Alembic's head schema is exactly the SQLAlchemy models (a model change needs a migration)."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from pipeline.bot.store import Base, alembic_config

    with bot_store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == "0002"
        assert compare_metadata(context, Base.metadata) == []
    config = alembic_config(bot_store.url)
    with bot_store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with bot_store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is None
    bot_store.init()
    with bot_store.session() as s:
        s.add(_post("after a downgrade and upgrade"))
