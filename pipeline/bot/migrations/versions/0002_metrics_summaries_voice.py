"""non-public/organic metrics on snapshots, community.summary_at, persona_voice

Revision ID: 0002
Revises: 0001
Created: 2026-11-23 12:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (
    "link_clicks",
    "profile_clicks",
    "engagements",
    "organic_impressions",
    "organic_likes",
    "organic_retweets",
    "organic_replies",
)


def upgrade() -> None:
    with op.batch_alter_table("engagement_snapshots") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("metrics_scope", sa.String(length=16), server_default="public", nullable=False)
        )
    with op.batch_alter_table("community") as batch:
        batch.add_column(sa.Column("summary_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "persona_voice",
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("style", sa.Text(), nullable=False),
        sa.Column("habits", sa.JSON(), nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bot"),
    )


def downgrade() -> None:
    op.drop_table("persona_voice")
    with op.batch_alter_table("community") as batch:
        batch.drop_column("summary_at")
    with op.batch_alter_table("engagement_snapshots") as batch:
        batch.drop_column("metrics_scope")
        for name in reversed(COLUMNS):
            batch.drop_column(name)
