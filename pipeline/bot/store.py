"""The bot's own SQL store (SQLAlchemy 2.x): SQLite embedded by default, PostgreSQL for deployment.

One schema for both; every table carries the bot's name so several bots share one database.
Columns are documented in pipeline/bot/README.md. `BotStore.init()` (`personas bot init`) runs the Alembic migrations in
pipeline/bot/migrations up to head: it creates the schema and later upgrades it (idempotent).
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


def content_hash(text: str) -> str:
    """What counts as "the same post": case, spacing and Unicode form do not make a post new."""
    norm = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(norm.encode()).hexdigest()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware everywhere: SQLite drops the zone, so values read back are marked UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: the bot store keeps UTC-aware times only")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("bot", "content_hash", name="uq_posts_bot_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot: Mapped[str] = mapped_column(String(64), index=True)
    tweet_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    prompt: Mapped[Any] = mapped_column(JSON)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    is_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    in_reply_to: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reward: Mapped[float | None] = mapped_column(Float)
    reward_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trained_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EngagementSnapshot(Base):
    __tablename__ = "engagement_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    age_s: Mapped[float] = mapped_column(Float)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    retweets: Mapped[int] = mapped_column(Integer, default=0)
    replies: Mapped[int] = mapped_column(Integer, default=0)
    quotes: Mapped[int] = mapped_column(Integer, default=0)
    bookmarks: Mapped[int | None] = mapped_column(Integer)
    impressions: Mapped[int | None] = mapped_column(Integer)
    # own posts < 30 days, user context only (NULL when X refused or did not send them)
    link_clicks: Mapped[int | None] = mapped_column(Integer)
    profile_clicks: Mapped[int | None] = mapped_column(Integer)
    engagements: Mapped[int | None] = mapped_column(Integer)
    organic_impressions: Mapped[int | None] = mapped_column(Integer)
    organic_likes: Mapped[int | None] = mapped_column(Integer)
    organic_retweets: Mapped[int | None] = mapped_column(Integer)
    organic_replies: Mapped[int | None] = mapped_column(Integer)
    metrics_scope: Mapped[str] = mapped_column(String(16), default="public", server_default="public")


class CommunityMember(Base):
    __tablename__ = "community"
    __table_args__ = (UniqueConstraint("bot", "handle", name="uq_community_bot_handle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot: Mapped[str] = mapped_column(String(64), index=True)
    handle: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(32))
    followers: Mapped[int | None] = mapped_column(Integer)
    following: Mapped[int | None] = mapped_column(Integer)
    bio: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(256))
    summary: Mapped[str | None] = mapped_column(Text)
    summary_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PersonaVoice(Base):
    """The persona's voice as RL moved it (`persona.adaptive`): style hints for the prompts."""

    __tablename__ = "persona_voice"

    bot: Mapped[str] = mapped_column(String(64), primary_key=True)
    style: Mapped[str] = mapped_column(Text)
    habits: Mapped[Any] = mapped_column(JSON)
    based_on: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    tweet_id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    author_id: Mapped[str | None] = mapped_column(String(32))
    author_handle: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SeenTweet(Base):
    __tablename__ = "seen_tweets"

    bot: Mapped[str] = mapped_column(String(64), primary_key=True)
    tweet_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    author_id: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    draft: Mapped[str | None] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Action(Base):
    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, already a dependency
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, future=True)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")  # the loops read while another writes
            cursor.close()

    return engine


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Any:
    """Alembic's config for the bot's migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class BotStore:
    def __init__(self, url: str, **engine_options: Any):
        self.url = url
        self.engine = _engine(url) if not engine_options else create_engine(url, **engine_options)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def init(self) -> list[str]:
        """Migrate the schema to the newest revision (creating it); returns the bot's table names."""
        alembic_log = logging.getLogger("alembic")
        if alembic_log.level == logging.NOTSET:
            # its INFO lines (plugins at import, "Context impl") would repeat every loop round
            alembic_log.setLevel(logging.WARNING)
        from alembic import command

        config = alembic_config(self.url)
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return sorted(Base.metadata.tables)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
