"""Alembic environment: runs on the connection BotStore hands over (or on sqlalchemy.url)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from pipeline.bot.store import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    # batch mode: SQLite cannot ALTER most things, Alembic rebuilds the table instead
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)  # type: ignore[arg-type]
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
