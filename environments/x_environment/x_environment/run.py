"""Entry point a Naptha node calls: `await run(module_run=EnvironmentRun(...).model_dump())`."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.bot.environment import run_x_environment


async def run(module_run: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Apply the agent's actions (post/reply/skip), then return the unseen timeline posts."""
    return await asyncio.to_thread(run_x_environment, module_run)
