"""Inputs of the persona chat environment, validated by the node with InputSchema(**inputs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pipeline.persona import Persona


class ChatInput(BaseModel):
    topic: str = Field(min_length=1, max_length=2000)
    personas: list[str | Persona] = Field(
        min_length=2, max_length=16, description="persona file names or files"
    )
    rounds: int = Field(6, ge=1, le=100)
    policy: Literal["round_robin", "relevance"] = "round_robin"
    max_tokens: int = Field(128, ge=1, le=4096, description="per turn")
    stop_phrases: list[str] = Field(default_factory=list)
    models: dict[str, str] = Field(
        default_factory=dict, description="persona name -> served model / LoRA adapter"
    )


class InputSchema(BaseModel):
    func_name: Literal["run_chat"] = "run_chat"
    func_input_data: ChatInput
