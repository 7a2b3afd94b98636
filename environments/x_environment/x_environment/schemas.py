"""Inputs of the X environment, validated by the node with InputSchema(**inputs)."""

from __future__ import annotations

from pipeline.bot.environment import XEnvironmentInput as InputSchema

__all__ = ["InputSchema"]
