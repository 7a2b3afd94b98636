"""Entry point a Naptha node calls: `await run(module_run=EnvironmentRun(...).model_dump())`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from naptha_sdk.schemas import EnvironmentRun

from persona_chat_environment.schemas import InputSchema
from pipeline.naptha.runtime import run_chat_environment

LLM_CONFIGS = Path(__file__).parent / "configs" / "llm_configs.json"


async def run(module_run: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run the chat; the result holds the transcript (also stored when storage_config is fs)."""
    return await run_chat_environment(
        module_run, input_schema=InputSchema, run_model=EnvironmentRun, llm_configs=LLM_CONFIGS
    )
