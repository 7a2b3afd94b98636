"""Entry point a Naptha node calls: `await run(module_run=AgentRun(...).model_dump())`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from naptha_sdk.schemas import AgentRun

from pipeline.naptha.runtime import run_agent
from tpot_persona_agent.schemas import InputSchema

LLM_CONFIGS = Path(__file__).parent / "configs" / "llm_configs.json"


async def run(module_run: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Answer as the persona; bad input or a down model server gives {"status": "error", ...}."""
    return await run_agent(module_run, input_schema=InputSchema, run_model=AgentRun, llm_configs=LLM_CONFIGS)
