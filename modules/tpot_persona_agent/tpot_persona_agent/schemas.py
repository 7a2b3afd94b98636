"""Inputs of the TPOT persona agent, validated by the node with InputSchema(**inputs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class HistoryTurn(BaseModel):
    speaker: str = Field(min_length=1)
    text: str


class InputSchema(BaseModel):
    tool_name: Literal["chat"] = "chat"
    question: str = Field("", max_length=8000, description="what the persona is asked")
    tool_input_data: str | dict[str, Any] | None = Field(None, description="the question, Naptha-style")
    history: list[HistoryTurn] = Field(default_factory=list, max_length=200)
    persona: str | None = Field(None, description="a persona file name, instead of the deployment's")
    model: str | None = Field(None, description="served model or LoRA adapter, instead of the llm_config's")
    max_tokens: int | None = Field(None, ge=1, le=4096)

    @model_validator(mode="after")
    def _question_from_tool_input(self) -> InputSchema:
        if not self.question and isinstance(self.tool_input_data, str):
            self.question = self.tool_input_data
        elif not self.question and isinstance(self.tool_input_data, dict):
            self.question = str(self.tool_input_data.get("question") or "")
        return self
