"""Alembic migrations of the bot's store (`BotStore.init()` upgrades to head)."""
